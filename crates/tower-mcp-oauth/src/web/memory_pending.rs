//! [`MemoryPendingLogins`]: logins waiting for their callback in this process's memory, per
//! user, for a limited time, each taken at most once.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use mcp_oauth_flow::{authorization::constant_time_eq, Error};

use super::pending_store::{PendingLogin, PendingLoginStore};
use crate::clock::Clock;
use crate::store::ready;
use crate::BoxFuture;

/// How many logins one user may have waiting at once in a [`MemoryPendingLogins`] (two tabs,
/// two servers); a newer one pushes the oldest out.
pub const MAX_PENDING_PER_USER: usize = 8;

/// How many logins a [`MemoryPendingLogins`] holds over all users by default; past it, the one
/// closest to expiry is dropped. See [`MemoryPendingLogins::max_logins`].
///
/// ```
/// assert_eq!(tower_mcp_oauth::web::DEFAULT_MAX_PENDING_LOGINS, 100_000);
/// ```
pub const DEFAULT_MAX_PENDING_LOGINS: usize = 100_000;

struct Entry {
    state: String,
    login: PendingLogin,
    deadline: SystemTime,
}

/// The default [`PendingLoginStore`] of a [`WebLogin`](super::WebLogin): this process's
/// memory. Right for an app served by one process (or with sticky sessions); with several,
/// give them a shared store instead ([`RedisStore`](crate::redis::RedisStore)).
///
/// Keyed by the user, so a callback is only ever matched against the logins *its presenter*
/// started: a callback carried to another user's session finds nothing there and takes nothing
/// away from its owner (RFC 6749 §10.12). Bounded: [`MAX_PENDING_PER_USER`] per user (the
/// oldest goes first) and [`max_logins`](Self::max_logins) in all; expired logins are dropped
/// whenever a login is put or taken. `Debug` shows counts only.
///
/// ```
/// use std::time::Duration;
/// use tower_mcp_oauth::web::{MemoryPendingLogins, PendingLoginStore};
/// # tokio_test::block_on(async {
/// let store = MemoryPendingLogins::new();
/// // Nothing waits for this callback.
/// assert!(store.take("alice", "some-state").await.unwrap().is_none());
/// assert_eq!(store.count(), Some(0));
/// # });
/// ```
pub struct MemoryPendingLogins {
    clock: Clock,
    max_logins: usize,
    by_user: Mutex<HashMap<String, Vec<Entry>>>,
}

impl std::fmt::Debug for MemoryPendingLogins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Counts only: the entries hold `state` values and PKCE verifiers.
        f.debug_struct("MemoryPendingLogins")
            .field("pending", &self.waiting())
            .field("max_logins", &self.max_logins)
            .finish()
    }
}

impl Default for MemoryPendingLogins {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryPendingLogins {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self {
            clock: Clock::system(),
            max_logins: DEFAULT_MAX_PENDING_LOGINS,
            by_user: Mutex::new(HashMap::new()),
        }
    }

    /// The clock that dates puts and judges expiry. Default: [`SystemTime::now`].
    /// [`WebLogin::clock`](super::WebLogin::clock) sets it on the store `WebLogin` made itself.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::{Duration, SystemTime};
    /// use tower_mcp_oauth::web::MemoryPendingLogins;
    /// let now = Arc::new(Mutex::new(SystemTime::UNIX_EPOCH));
    /// let clock = Arc::clone(&now);
    /// let store = MemoryPendingLogins::new().clock(move || *clock.lock().unwrap());
    /// # let _ = store;
    /// ```
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Clock::given(clock);
        self
    }

    pub(super) fn with_shared_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// How many logins the store holds over all users (at least 1; default
    /// [`DEFAULT_MAX_PENDING_LOGINS`]). A store that is full drops the login closest to
    /// expiry, so a flood of `start` calls costs bounded memory.
    ///
    /// ```
    /// use tower_mcp_oauth::web::MemoryPendingLogins;
    /// let store = MemoryPendingLogins::new().max_logins(1_000);
    /// # let _ = store;
    /// ```
    pub fn max_logins(mut self, max: usize) -> Self {
        self.max_logins = max.max(1);
        self
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Vec<Entry>>> {
        // Every mutation is a push, a remove or a retain: a poisoned map is still consistent.
        self.by_user.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many logins are held (expired ones included until the next put or take).
    fn waiting(&self) -> usize {
        self.map().values().map(Vec::len).sum()
    }

    fn insert(&self, user: &str, state: &str, login: &PendingLogin, ttl: Duration) {
        let now = self.clock.now();
        let mut map = self.map();
        purge(&mut map, now);
        let list = map.entry(user.to_owned()).or_default();
        if list.len() >= MAX_PENDING_PER_USER {
            list.remove(0);
        }
        list.push(Entry {
            state: state.to_owned(),
            login: login.clone(),
            deadline: now.checked_add(ttl).unwrap_or(now),
        });
        let total: usize = map.values().map(Vec::len).sum();
        if total > self.max_logins {
            drop_closest_to_expiry(&mut map);
        }
    }

    fn remove(&self, user: &str, state: &str) -> Option<PendingLogin> {
        let mut map = self.map();
        purge(&mut map, self.clock.now());
        let list = map.get_mut(user)?;
        let index = list
            .iter()
            .position(|e| constant_time_eq(e.state.as_bytes(), state.as_bytes()))?;
        let entry = list.remove(index);
        if list.is_empty() {
            map.remove(user);
        }
        Some(entry.login)
    }
}

impl PendingLoginStore for MemoryPendingLogins {
    fn put<'a>(
        &'a self,
        user: &'a str,
        state: &'a str,
        login: &'a PendingLogin,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.insert(user, state, login, ttl);
        ready(Ok(()))
    }

    fn take<'a>(
        &'a self,
        user: &'a str,
        state: &'a str,
    ) -> BoxFuture<'a, Result<Option<PendingLogin>, Error>> {
        ready(Ok(self.remove(user, state)))
    }

    fn forget_user<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.map().remove(user);
        ready(Ok(()))
    }

    fn count(&self) -> Option<usize> {
        Some(self.waiting())
    }
}

/// Drops the logins whose deadline has come, and users left with none. A clock that went
/// backwards makes a login younger, not expired.
fn purge(map: &mut HashMap<String, Vec<Entry>>, now: SystemTime) {
    map.retain(|_, list| {
        list.retain(|e| now < e.deadline);
        !list.is_empty()
    });
}

fn drop_closest_to_expiry(map: &mut HashMap<String, Vec<Entry>>) {
    let closest = map
        .iter()
        .flat_map(|(user, list)| {
            list.iter()
                .enumerate()
                .map(move |(i, e)| (e.deadline, user, i))
        })
        .min()
        .map(|(_, user, i)| (user.clone(), i));
    if let Some((user, index)) = closest {
        if let Some(list) = map.get_mut(&user) {
            list.remove(index);
            if list.is_empty() {
                map.remove(&user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    type Now = Arc<Mutex<SystemTime>>;

    fn store() -> (MemoryPendingLogins, Now) {
        let now: Now = Arc::new(Mutex::new(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_000),
        ));
        let clock = Arc::clone(&now);
        let store = MemoryPendingLogins::new().clock(move || *clock.lock().unwrap());
        (store, now)
    }

    fn login(server: &str) -> PendingLogin {
        PendingLogin::for_tests(server, SystemTime::UNIX_EPOCH)
    }

    fn server_of(login: Option<PendingLogin>) -> Option<String> {
        login.map(|l| l.server_url().to_string())
    }

    const TTL: Duration = Duration::from_secs(600);

    #[tokio::test]
    async fn a_login_is_taken_once_and_only_by_its_user() {
        let (store, _) = store();
        store
            .put("alice", "s1", &login("https://a.example/"), TTL)
            .await
            .unwrap();
        assert!(
            store.take("bob", "s1").await.unwrap().is_none(),
            "not bob's"
        );
        assert!(
            store.take("alice", "s2").await.unwrap().is_none(),
            "another state"
        );
        assert_eq!(store.count(), Some(1), "the misses took nothing");
        let taken = store.take("alice", "s1").await.unwrap();
        assert_eq!(server_of(taken).as_deref(), Some("https://a.example/"));
        assert!(
            store.take("alice", "s1").await.unwrap().is_none(),
            "taken once"
        );
        assert_eq!(store.count(), Some(0));
    }

    #[tokio::test]
    async fn concurrent_takes_of_one_login_have_one_winner() {
        let store = Arc::new(MemoryPendingLogins::new());
        store
            .put("alice", "s1", &login("https://a.example/"), TTL)
            .await
            .unwrap();
        let takes: Vec<_> = (0..8)
            .map(|_| {
                let store = Arc::clone(&store);
                tokio::spawn(async move { store.take("alice", "s1").await.unwrap().is_some() })
            })
            .collect();
        let mut winners = 0;
        for take in takes {
            winners += usize::from(take.await.unwrap());
        }
        assert_eq!(winners, 1);
    }

    #[tokio::test]
    async fn a_login_expires_after_its_ttl() {
        let (store, now) = store();
        store
            .put("alice", "s1", &login("https://a.example/"), TTL)
            .await
            .unwrap();
        store
            .put("alice", "s2", &login("https://b.example/"), TTL * 2)
            .await
            .unwrap();
        *now.lock().unwrap() += TTL - Duration::from_secs(1);
        store
            .put("bob", "s3", &login("https://c.example/"), TTL)
            .await
            .unwrap();
        assert_eq!(store.count(), Some(3), "nothing expired yet");
        *now.lock().unwrap() += Duration::from_secs(1);
        assert!(
            store.take("alice", "s1").await.unwrap().is_none(),
            "expired"
        );
        assert_eq!(store.count(), Some(2), "and dropped");
        assert!(
            store.take("alice", "s2").await.unwrap().is_some(),
            "its own ttl"
        );
        // A clock that goes backwards expires nothing.
        *now.lock().unwrap() -= TTL * 3;
        assert!(store.take("bob", "s3").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn the_store_is_bounded_per_user_and_in_all() {
        let (store, now) = store();
        for i in 0..=MAX_PENDING_PER_USER {
            store
                .put("alice", &format!("a{i}"), &login("https://a.example/"), TTL)
                .await
                .unwrap();
        }
        assert_eq!(store.count(), Some(MAX_PENDING_PER_USER));
        assert!(
            store.take("alice", "a0").await.unwrap().is_none(),
            "the oldest went"
        );

        let store = store.max_logins(2);
        store.forget_user("alice").await.unwrap();
        store
            .put("u1", "s", &login("https://a.example/"), TTL)
            .await
            .unwrap();
        *now.lock().unwrap() += Duration::from_secs(1);
        store
            .put("u2", "s", &login("https://a.example/"), TTL)
            .await
            .unwrap();
        store
            .put("u3", "s", &login("https://a.example/"), TTL)
            .await
            .unwrap();
        assert_eq!(store.count(), Some(2));
        assert!(
            store.take("u1", "s").await.unwrap().is_none(),
            "closest to expiry"
        );
        assert!(store.take("u3", "s").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn debug_shows_counts_only() {
        let (store, _) = store();
        store
            .put("alice", "the-state", &login("https://a.example/"), TTL)
            .await
            .unwrap();
        let shown = format!("{store:?}");
        assert!(
            !shown.contains("the-state") && !shown.contains("alice"),
            "{shown}"
        );
        assert!(shown.contains("pending: 1"), "{shown}");
    }
}
