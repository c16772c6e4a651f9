//! [`MemoryPendingLogins`]: logins waiting for their callback in this process's memory, per
//! user, for a limited time, each taken at most once.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
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
    /// Its place in [`Logins::by_deadline`], with `deadline` and the user.
    seq: u64,
}

/// The logins, per user, and the same logins ordered by deadline: a put or take finds what
/// expired, and what is closest to expiry, without going over every login (a flood of `start`
/// calls fills the store to its bound, and each call held the lock for a scan of all of it).
#[derive(Default)]
struct Logins {
    by_user: HashMap<Arc<str>, Vec<Entry>>,
    by_deadline: BTreeSet<(SystemTime, u64, Arc<str>)>,
    total: usize,
    next_seq: u64,
}

impl Logins {
    /// Drops the logins whose deadline has come, and users left with none. A clock that went
    /// backwards makes a login younger, not expired.
    fn purge(&mut self, now: SystemTime) {
        while self.by_deadline.first().is_some_and(|first| first.0 <= now) {
            self.drop_closest_to_expiry();
        }
    }

    /// Removes `user`'s first entry that `which` picks from the per-user lists (not from the
    /// deadline index), keeping the count.
    fn take_entry(&mut self, user: &str, which: impl Fn(&Entry) -> bool) -> Option<Entry> {
        let list = self.by_user.get_mut(user)?;
        let index = list.iter().position(which)?;
        let entry = list.remove(index);
        if list.is_empty() {
            self.by_user.remove(user);
        }
        self.total -= 1;
        Some(entry)
    }

    /// Removes `user`'s first entry that `which` picks, from both.
    fn remove_entry(&mut self, user: &str, which: impl Fn(&Entry) -> bool) -> Option<Entry> {
        let entry = self.take_entry(user, which)?;
        let user: Arc<str> = Arc::from(user);
        self.by_deadline.remove(&(entry.deadline, entry.seq, user));
        Some(entry)
    }

    fn push(&mut self, user: &str, state: &str, login: &PendingLogin, deadline: SystemTime) {
        let user = match self.by_user.get_key_value(user) {
            Some((name, _)) => Arc::clone(name),
            None => Arc::from(user),
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_deadline.insert((deadline, seq, Arc::clone(&user)));
        self.by_user.entry(user).or_default().push(Entry {
            state: state.to_owned(),
            login: login.clone(),
            deadline,
            seq,
        });
        self.total += 1;
    }

    /// Drops the login closest to expiry.
    fn drop_closest_to_expiry(&mut self) {
        if let Some((_, seq, user)) = self.by_deadline.pop_first() {
            self.take_entry(&user, |e| e.seq == seq);
        }
    }
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
    logins: Mutex<Logins>,
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
            logins: Mutex::default(),
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

    fn logins(&self) -> MutexGuard<'_, Logins> {
        // Every mutation keeps the two views and the count together before it returns: a
        // poisoned lock (a panic elsewhere while it was held) still guards a consistent state.
        self.logins.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many logins are held (expired ones included until the next put or take).
    fn waiting(&self) -> usize {
        self.logins().total
    }

    fn insert(&self, user: &str, state: &str, login: &PendingLogin, ttl: Duration) {
        let now = self.clock.now();
        let mut logins = self.logins();
        logins.purge(now);
        if logins.by_user.get(user).map_or(0, Vec::len) >= MAX_PENDING_PER_USER {
            // The user's oldest login.
            logins.remove_entry(user, |_| true);
        }
        logins.push(user, state, login, now.checked_add(ttl).unwrap_or(now));
        if logins.total > self.max_logins {
            logins.drop_closest_to_expiry();
        }
    }

    fn remove(&self, user: &str, state: &str) -> Option<PendingLogin> {
        let mut logins = self.logins();
        logins.purge(self.clock.now());
        let entry = logins.remove_entry(user, |e| {
            constant_time_eq(e.state.as_bytes(), state.as_bytes())
        })?;
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
        let mut logins = self.logins();
        while logins.remove_entry(user, |_| true).is_some() {}
        ready(Ok(()))
    }

    fn count(&self) -> Option<usize> {
        Some(self.waiting())
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

    /// Both views and the count agree.
    fn consistent(store: &MemoryPendingLogins) {
        let logins = store.logins();
        let listed: usize = logins.by_user.values().map(Vec::len).sum();
        assert_eq!(listed, logins.total);
        assert_eq!(logins.by_deadline.len(), logins.total);
        for (deadline, seq, user) in &logins.by_deadline {
            let entry = logins.by_user[user].iter().find(|e| e.seq == *seq).unwrap();
            assert_eq!(entry.deadline, *deadline);
        }
        assert!(logins.by_user.values().all(|list| !list.is_empty()));
    }

    #[tokio::test]
    async fn the_deadline_index_follows_every_put_take_purge_and_drop() {
        let (store, now) = store();
        let store = store.max_logins(50);
        // Users, states and lifetimes in a fixed mix: per-user overflow, expiry, the overall
        // bound and takes all happen.
        for i in 0u64..400 {
            let user = format!("u{}", i % 13);
            let ttl = Duration::from_secs(1 + (i * 7919) % 50);
            store
                .put(&user, &format!("s{i}"), &login("https://a.example/"), ttl)
                .await
                .unwrap();
            if i % 3 == 0 {
                store.take(&user, &format!("s{}", i / 2)).await.unwrap();
            }
            if i % 5 == 0 {
                *now.lock().unwrap() += Duration::from_secs(1);
            }
            if i % 97 == 0 {
                store.forget_user("u3").await.unwrap();
            }
            consistent(&store);
            assert!(store.count().unwrap() <= 50);
        }
        *now.lock().unwrap() += Duration::from_secs(100);
        store.take("nobody", "s").await.unwrap();
        consistent(&store);
        assert_eq!(store.count(), Some(0), "all expired");
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
