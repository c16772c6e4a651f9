//! Where logins wait between [`start`](super::WebLogin::start) and
//! [`complete`](super::WebLogin::complete): the [`PendingLoginStore`] trait and the record it
//! keeps, [`PendingLogin`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mcp_oauth_flow::{Error, PendingAuthorization};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::BoxFuture;

/// The version of [`PendingLogin`]'s stored form this crate writes and reads.
///
/// ```
/// assert_eq!(tower_mcp_oauth::web::PENDING_LOGIN_VERSION, 1);
/// ```
pub const PENDING_LOGIN_VERSION: u32 = 1;

/// One login waiting for its callback: the flow stopped at the consent step
/// ([`PendingAuthorization`]: `state`, PKCE verifier, redirect URI, the protected resource,
/// the authorization server's metadata, the scopes asked for, the client) and when it expires.
/// The user it belongs to is the key it is stored under.
///
/// Its serde form (JSON in [`RedisStore`](crate::redis::RedisStore)) holds the login's
/// secrets, the PKCE verifier and `state`, and a confidential client's secret: whoever
/// completes the login needs them. Keep pending logins where you keep tokens. `Debug` shows
/// none of them.
///
/// ```
/// use tower_mcp_oauth::web::PendingLogin;
/// fn describe(login: &PendingLogin) -> String {
///     format!("a login to {} through {}", login.server_url(), login.issuer())
/// }
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    /// [`PENDING_LOGIN_VERSION`] when written.
    version: u32,
    /// Seconds since the Unix epoch, by the clock of the process that started the login.
    expires_at: u64,
    authorization: PendingAuthorization,
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogin")
            .field("expires_at", &self.expires_at)
            .field("authorization", &self.authorization)
            .finish_non_exhaustive()
    }
}

impl PendingLogin {
    pub(crate) fn new(authorization: PendingAuthorization, expires_at: SystemTime) -> Self {
        Self {
            version: PENDING_LOGIN_VERSION,
            expires_at: unix_secs(expires_at),
            authorization,
        }
    }

    /// The MCP server URL the login was started for.
    pub fn server_url(&self) -> &Url {
        self.authorization.server_url()
    }

    /// The issuer of the authorization server the user was sent to.
    pub fn issuer(&self) -> &str {
        self.authorization.issuer()
    }

    /// When the login stops waiting for its callback. A record whose expiry no clock can hold
    /// (a shared store's corrupt or forged record) is expired: refused, not a panic.
    pub fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH
            .checked_add(Duration::from_secs(self.expires_at))
            .unwrap_or(UNIX_EPOCH)
    }

    /// A record for the store tests: a public client's login to `server`, holding the
    /// secrets `state-secret`, `verifier-secret` and `client-secret`.
    #[cfg(test)]
    pub(crate) fn for_tests(server: &str, expires_at: SystemTime) -> Self {
        let json = serde_json::json!({
            "version": mcp_oauth_flow::PENDING_AUTHORIZATION_VERSION,
            "server_url": server,
            "redirect_uri": "https://app.example.com/callback",
            "state": "state-secret",
            "code_verifier": "verifier-secret",
            "resource": server,
            "protected_resource": server,
            "authorization_server": {"issuer": "https://as.example.com"},
            "client_issuer": "https://as.example.com",
            "scopes": "read",
            "client_id": "app",
            "client_secret": "client-secret",
            "client_auth_method": "client_secret_basic",
        });
        Self::new(serde_json::from_value(json).unwrap(), expires_at)
    }

    pub(super) fn version(&self) -> u32 {
        self.version
    }

    pub(super) fn into_authorization(self) -> PendingAuthorization {
        self.authorization
    }
}

/// Seconds since the epoch, rounded up so a login never expires early.
fn unix_secs(at: SystemTime) -> u64 {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    since.as_secs() + u64::from(since.subsec_nanos() > 0)
}

/// Keeps the logins that wait for their callback, per user and `state`, each for a limited
/// time and for one [`take`](Self::take) only.
///
/// [`WebLogin`](super::WebLogin) keeps them in a [`MemoryPendingLogins`](super::MemoryPendingLogins)
/// unless told otherwise; an app served by several processes gives every process the same
/// shared store ([`RedisStore`](crate::redis::RedisStore) with the `redis` feature), so the
/// callback may reach any of them.
///
/// The contract:
///
/// - [`put`](Self::put) keeps `login` under (`user`, `state`) for `ttl`; after that it is gone.
/// - [`take`](Self::take) removes and returns the login under (`user`, `state`) in one atomic
///   step: of two processes that take the same login at once, one gets it and the other
///   `None`. A login is only found by the user who started it.
/// - `state` is a secret: never log it or use it as a key in the clear.
///
/// Object safe, like [`TokenStore`](crate::TokenStore):
///
/// ```
/// use std::sync::Arc;
/// use tower_mcp_oauth::web::{MemoryPendingLogins, PendingLoginStore};
/// let store: Arc<dyn PendingLoginStore> = Arc::new(MemoryPendingLogins::new());
/// assert_eq!(store.count(), Some(0));
/// ```
pub trait PendingLoginStore: Send + Sync + 'static {
    /// Keeps `login` of `user`, whose authorization request carried `state`, for `ttl`.
    fn put<'a>(
        &'a self,
        user: &'a str,
        state: &'a str,
        login: &'a PendingLogin,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// Removes and returns the login of `user` whose `state` is `state`, if it is still there:
    /// atomically, so it is returned once however many callers race for it.
    fn take<'a>(
        &'a self,
        user: &'a str,
        state: &'a str,
    ) -> BoxFuture<'a, Result<Option<PendingLogin>, Error>>;

    /// Forgets every login `user` has waiting.
    fn forget_user<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<(), Error>>;

    /// How many logins wait, over all users, if the store can tell without a round trip.
    /// Default: `None`.
    fn count(&self) -> Option<usize> {
        None
    }
}

/// A shared store is a store: `Arc<MemoryPendingLogins>`, `Arc<dyn PendingLoginStore>`.
///
/// ```
/// use std::sync::Arc;
/// use bytes::Bytes;
/// use tower_mcp_oauth::web::{MemoryPendingLogins, WebLogin};
/// use tower_mcp_oauth::{ClientConfig, HttpClient};
/// let shared = Arc::new(MemoryPendingLogins::new());
/// let client = HttpClient::from_fn(|_req| async { Ok(http::Response::new(Bytes::new())) });
/// let login = WebLogin::new(ClientConfig::new("https://forum.example.com/callback"), client)
///     .pending_login_store(Arc::clone(&shared));
/// # let _ = login;
/// ```
impl<T: PendingLoginStore + ?Sized> PendingLoginStore for std::sync::Arc<T> {
    fn put<'a>(
        &'a self,
        user: &'a str,
        state: &'a str,
        login: &'a PendingLogin,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        (**self).put(user, state, login, ttl)
    }

    fn take<'a>(
        &'a self,
        user: &'a str,
        state: &'a str,
    ) -> BoxFuture<'a, Result<Option<PendingLogin>, Error>> {
        (**self).take(user, state)
    }

    fn forget_user<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        (**self).forget_user(user)
    }

    fn count(&self) -> Option<usize> {
        (**self).count()
    }
}

fn _object_safe(_: &dyn PendingLoginStore) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expiry_no_clock_can_hold_is_an_expired_login() {
        let mut login = PendingLogin::for_tests("https://a.example/", UNIX_EPOCH);
        login.expires_at = u64::MAX;
        assert_eq!(login.expires_at(), UNIX_EPOCH);
    }

    #[test]
    fn expiry_rounds_up_to_the_second() {
        assert_eq!(unix_secs(UNIX_EPOCH + Duration::from_millis(1_500)), 2);
        assert_eq!(unix_secs(UNIX_EPOCH + Duration::from_secs(7)), 7);
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_secs(7)), 0);
    }
}
