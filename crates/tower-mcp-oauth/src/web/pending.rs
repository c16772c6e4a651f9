//! Logins waiting for their callback: per user, for a limited time, each used at most once.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use mcp_oauth_flow::{authorization::constant_time_eq, secrets::CsrfToken, Flow};
use url::Url;

/// One login between [`start`](super::WebLogin::start) and
/// [`complete`](super::WebLogin::complete). The flow holds the PKCE verifier and the
/// discovery results; `state` is a copy of the value the flow will check again.
pub(super) struct PendingLogin {
    pub(super) state: CsrfToken,
    pub(super) flow: Flow,
    pub(super) server_url: Url,
    pub(super) started: SystemTime,
}

/// The pending logins of every user.
///
/// Keyed by the user, so that a callback is only ever matched against the logins *its
/// presenter* started: a callback carried to another user's session finds nothing there and
/// takes nothing away from its owner (RFC 6749 §10.12).
pub(super) struct PendingLogins {
    ttl: Duration,
    max_per_user: usize,
    by_user: Mutex<HashMap<String, Vec<PendingLogin>>>,
}

impl std::fmt::Debug for PendingLogins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Counts only: the entries hold `state` values and PKCE verifiers.
        f.debug_struct("PendingLogins")
            .field("ttl", &self.ttl)
            .field("pending", &self.len())
            .finish()
    }
}

impl PendingLogins {
    pub(super) fn new(ttl: Duration, max_per_user: usize) -> Self {
        Self {
            ttl,
            max_per_user: max_per_user.max(1),
            by_user: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn set_ttl(&mut self, ttl: Duration) {
        self.ttl = ttl;
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Vec<PendingLogin>>> {
        // Every mutation is a push, a remove or a retain: a poisoned map is still consistent.
        self.by_user.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `login` for `user`. A user may have several logins in flight (two tabs, two
    /// servers); past [`max_per_user`](Self::new) the oldest is forgotten.
    pub(super) fn insert(&self, user: &str, login: PendingLogin, now: SystemTime) {
        let mut map = self.map();
        purge(&mut map, now, self.ttl);
        let list = map.entry(user.to_owned()).or_default();
        if list.len() >= self.max_per_user {
            list.remove(0);
        }
        list.push(login);
    }

    /// Removes and returns the login of `user` whose `state` is `state`. Expired logins are
    /// purged first, so an expired one is never returned; a returned one is gone, so a replayed
    /// callback finds nothing.
    pub(super) fn take(&self, user: &str, state: &str, now: SystemTime) -> Option<PendingLogin> {
        let mut map = self.map();
        purge(&mut map, now, self.ttl);
        let list = map.get_mut(user)?;
        let index = list
            .iter()
            .position(|p| constant_time_eq(p.state.secret().as_bytes(), state.as_bytes()))?;
        let login = list.remove(index);
        if list.is_empty() {
            map.remove(user);
        }
        Some(login)
    }

    /// How many logins are pending, over all users (expired ones included until the next
    /// purge).
    pub(super) fn len(&self) -> usize {
        self.map().values().map(Vec::len).sum()
    }

    /// Forgets every pending login of `user`.
    pub(super) fn forget(&self, user: &str) {
        self.map().remove(user);
    }
}

/// Drops the logins older than `ttl`, and users left with none. A clock that went backwards
/// makes a login younger, not expired.
fn purge(map: &mut HashMap<String, Vec<PendingLogin>>, now: SystemTime, ttl: Duration) {
    map.retain(|_, list| {
        list.retain(|p| now.duration_since(p.started).map_or(true, |age| age < ttl));
        !list.is_empty()
    });
}
