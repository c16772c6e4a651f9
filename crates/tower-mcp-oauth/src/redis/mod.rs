//! [`RedisStore`]: tokens and client registrations in Redis, shared by a fleet of processes,
//! with an atomic compare-and-swap and a refresh lease.
//!
//! Why a fleet needs both: with rotating refresh tokens every refresh invalidates the refresh
//! token it used (RFC 6749 §6), and an authorization server that sees an invalidated one again
//! may take it for a stolen token and revoke the whole grant (RFC 6749 §10.4). So of all the
//! processes that find the same token due, exactly one may send its refresh token, and the
//! others must adopt what it got. The layer does that under [`TokenStore::lock`] (here a Redis
//! lease), re-reading the store first and writing with
//! [`TokenStore::compare_and_swap_tokens`] (here a Lua script, atomic in Redis).
//!
//! With the `web` feature a [`RedisStore`] is also a
//! [`PendingLoginStore`](crate::web::PendingLoginStore): the logins of a web app served by
//! several processes wait in Redis between `start` and `complete`, each taken once (a
//! get-and-delete script, atomic on any Redis version).

mod codec;
mod lease;
// Pending web logins (`PendingLoginStore`) exist with the `web` feature only.
mod errors;
#[cfg(feature = "web")]
mod pending;
mod scripts;
mod writes;

use std::fmt;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::Cmd;
use mcp_oauth_flow::{client::ClientRegistration, token::TokenSet, Error};
use serde::de::DeserializeOwned;

use crate::store::{LastFlow, Replaced, StoreLock, TokenStore};
use crate::BoxFuture;

use crate::store::sealing::SealingKey;
use codec::{decode, encode, key_id, Shown};
use errors::{redact_url, redis_error};
use scripts::{COMPARE_AND_SWAP, RELEASE, REMOVE_REFUSED_CLIENT};

/// The key prefix of a [`RedisStore`] unless [`RedisStore::prefix`] sets another.
///
/// ```
/// assert_eq!(tower_mcp_oauth::redis::DEFAULT_PREFIX, "mcp-oauth");
/// ```
pub const DEFAULT_PREFIX: &str = "mcp-oauth";

/// How long a refresh lease lives if its holder never releases it: it frees the lease of a
/// process that crashed while refreshing. See [`RedisStore::lock_ttl`].
///
/// ```
/// assert_eq!(tower_mcp_oauth::redis::DEFAULT_LOCK_TTL.as_secs(), 30);
/// ```
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(30);

/// How long [`TokenStore::lock`] waits for a lease held by someone else. Longer than
/// [`DEFAULT_LOCK_TTL`], so a waiter outlives the lease of a crashed holder. See
/// [`RedisStore::lock_wait`].
///
/// ```
/// use tower_mcp_oauth::redis::{DEFAULT_LOCK_TTL, DEFAULT_LOCK_WAIT};
/// assert!(DEFAULT_LOCK_WAIT > DEFAULT_LOCK_TTL);
/// ```
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(45);

/// The shortest lease [`RedisStore::lock_ttl`] takes: it is renewed every third of its TTL, and
/// a shorter one would be renewed more often than a refresh sends bytes.
const MIN_LOCK_TTL: Duration = Duration::from_millis(100);
/// The longest: a day. Redis refuses a `PX` past what a 64-bit count of milliseconds holds,
/// and a crashed holder's lease keeps every other process from refreshing for its TTL.
const MAX_LOCK_TTL: Duration = Duration::from_secs(24 * 3600);

/// How long a record of how a server's last flow ended lives in Redis (30 days): a status page
/// reads it, and an app that makes up a user id per anonymous visitor writes one per visitor,
/// so records nobody renews must not pile up for ever. See [`RedisStore::status_ttl`].
///
/// ```
/// assert_eq!(tower_mcp_oauth::redis::DEFAULT_STATUS_TTL.as_secs(), 30 * 24 * 3600);
/// ```
pub const DEFAULT_STATUS_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

const TOKENS: &str = "tokens";
const CLIENT: &str = "client";
const LOCK: &str = "lock";
const STATUS: &str = "status";

/// A [`TokenStore`] in Redis, for a fleet of processes that share one login per protected
/// resource.
///
/// - Tokens live under `{prefix}:tokens:{resource}` and registrations under
///   `{prefix}:client:{issuer}`, as the serde JSON of [`TokenSet`] and [`ClientRegistration`]
///   (the forms [`FileStore`](crate::FileStore) writes; expiry is an absolute time). Keys hold
///   URLs, and under the web API the user's id ([`UserTokenStore`](crate::web::UserTokenStore)
///   keys), never a token.
/// - The store is the fleet's memory of its logins: run Redis so that it keeps what it
///   acknowledged. Token keys have no TTL; one lost (a restart without persistence, an
///   eviction, a failover to a replica the write had not reached) reads to every
///   process as a logout, and a lost compare-and-swap brings back a refresh token the server has
///   rotated away. So: persistence (AOF), and `maxmemory-policy noeviction` (a `volatile-*`
///   policy evicts the keys that have a TTL: a held refresh lease among them, which lets a
///   second process refresh with the same refresh token). Replication is asynchronous: a
///   failover may lose the last writes (`min-replicas-to-write` narrows the window).
/// - With the `web` feature, pending web logins live under
///   `{prefix}:pending:{H(user)}:{H(user, state)}` (hex SHA-256: keys name neither the user nor
///   the `state`) for their time-to-live, set with `PX`, and are taken with a get-and-delete
///   script, so each is used once across the fleet. See
///   [`WebLogin::pending_login_store`](crate::web::WebLogin::pending_login_store).
/// - How a server's last flow ended (for [`OAuthLayer::status`](crate::OAuthLayer::status))
///   lives under `{prefix}:status:{server}` for [`status_ttl`](Self::status_ttl) after its
///   last write.
/// - [`compare_and_swap_tokens`](TokenStore::compare_and_swap_tokens) and
///   [`remove_refused_client`](TokenStore::remove_refused_client) are Lua scripts, atomic in
///   Redis.
/// - [`lock`](TokenStore::lock) is a lease: `SET {prefix}:lock:{resource} <random> NX PX <ttl>`,
///   retried with a bounded backoff until [`lock_wait`](Self::lock_wait) runs out, and renewed
///   every third of its TTL while held (a compare-and-`PEXPIRE` script), so a refresh slower
///   than the TTL keeps it. Dropping the
///   guard deletes the lease if it is still this holder's (a compare-and-delete script, spawned
///   on the runtime that took the lease, since `Drop` cannot wait); a crashed holder's lease,
///   or that of a process whose runtime ended before the release ran, expires after
///   [`lock_ttl`](Self::lock_ttl).
/// - The connection is a [`ConnectionManager`], which reconnects after a dropped connection. A
///   Redis error is an [`ErrorKind::Store`] error; one of the connection (refused, dropped,
///   timed out) is [transient](crate::Error::is_transient): the layer keeps every credential
///   and the next call tries again.
/// - `Debug` shows the server without its password.
///
/// It needs a tokio runtime. Cloning is cheap and clones share the connection.
///
/// ```no_run
/// use tower_mcp_oauth::redis::RedisStore;
/// use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthLayer};
///
/// # async fn run() -> Result<(), tower_mcp_oauth::Error> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379/").await?.prefix("my-agent");
/// let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:8976/callback"), HeadlessAuthorizer::new())
///     .token_store(store);
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    /// Where the connection goes, for `Debug`: the URL without its password and query.
    server: String,
    prefix: String,
    lock_ttl: Duration,
    lock_wait: Duration,
    status_ttl: Duration,
    /// The key every value is sealed with ([`RedisStore::sealed_with`]), or none: JSON.
    seal: Option<SealingKey>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.server)
            .field("prefix", &self.prefix)
            .field("lock_ttl", &self.lock_ttl)
            .field("lock_wait", &self.lock_wait)
            .field("status_ttl", &self.status_ttl)
            .field("sealed", &self.seal.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to the Redis server at `url` (`redis://[[user]:password@]host[:port][/db]`,
    /// `rediss://…`, `redis+unix:///path`; see the `redis` crate) and waits for the connection.
    ///
    /// An invalid URL or an unreachable server is an [`ErrorKind::Store`] error whose message
    /// names the server without its password.
    ///
    /// ```no_run
    /// use tower_mcp_oauth::redis::RedisStore;
    /// # async fn run() -> Result<(), tower_mcp_oauth::Error> {
    /// let store = RedisStore::connect("redis://:secret@redis.internal:6379/2").await?;
    /// assert!(!format!("{store:?}").contains("secret"));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// What a failure looks like, with no server needed:
    ///
    /// ```
    /// use tower_mcp_oauth::redis::RedisStore;
    /// use tower_mcp_oauth::ErrorKind;
    /// # tokio_test::block_on(async {
    /// let error = RedisStore::connect("http://:secret@redis.internal/").await.unwrap_err();
    /// assert_eq!(error.kind(), ErrorKind::Store);
    /// assert!(!error.is_transient()); // a wrong URL stays wrong
    /// assert!(!format!("{error:#}").contains("secret"), "{error:#}");
    /// # });
    /// ```
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with_config(url, ConnectionManagerConfig::new()).await
    }

    /// Like [`connect`](Self::connect), with the `redis` crate's reconnection and timeout
    /// settings. The defaults retry a refused connection 6 times with exponential backoff
    /// (several seconds) before `connect` fails, and time a command out after 500 ms.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use redis::aio::ConnectionManagerConfig;
    /// use tower_mcp_oauth::redis::RedisStore;
    /// # async fn run() -> Result<(), tower_mcp_oauth::Error> {
    /// let config = ConnectionManagerConfig::new()
    ///     .set_number_of_retries(2)
    ///     .set_response_timeout(Some(Duration::from_secs(2)));
    /// let store = RedisStore::connect_with_config("redis://127.0.0.1:6379/", config).await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// A server that is not there (nothing listens on port 1), without retries:
    ///
    /// ```
    /// use redis::aio::ConnectionManagerConfig;
    /// use tower_mcp_oauth::redis::RedisStore;
    /// use tower_mcp_oauth::ErrorKind;
    /// # tokio_test::block_on(async {
    /// let config = ConnectionManagerConfig::new().set_number_of_retries(0);
    /// let error = RedisStore::connect_with_config("redis://127.0.0.1:1/", config).await.unwrap_err();
    /// assert_eq!(error.kind(), ErrorKind::Store);
    /// assert!(error.is_transient()); // the server may come up: the next call tries again
    /// # });
    /// ```
    pub async fn connect_with_config(
        url: &str,
        config: ConnectionManagerConfig,
    ) -> Result<Self, Error> {
        let server = redact_url(url);
        let client = ::redis::Client::open(url)
            .map_err(|e| redis_error(format!("invalid Redis URL {server}"), e))?;
        let mut conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| redis_error(format!("cannot connect to Redis at {server}"), e))?;
        // Loaded now, each script is one round trip later (EVALSHA), which matters most for the
        // release spawned when a lease is dropped: it must finish before its runtime ends.
        for script in [&*COMPARE_AND_SWAP, &*RELEASE] {
            script
                .load_async(&mut conn)
                .await
                .map_err(|e| redis_error(format!("cannot load a script into {server}"), e))?;
        }
        Ok(Self::with_server(conn, server))
    }

    /// A store over a connection the application set up itself (TLS, timeouts, retries).
    ///
    /// ```no_run
    /// use redis::aio::ConnectionManager;
    /// use tower_mcp_oauth::redis::RedisStore;
    /// # async fn run() -> redis::RedisResult<()> {
    /// let client = redis::Client::open("redis://127.0.0.1:6379/")?;
    /// let store = RedisStore::from_connection_manager(ConnectionManager::new(client).await?);
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_connection_manager(conn: ConnectionManager) -> Self {
        Self::with_server(conn, "<connection manager>".to_owned())
    }

    fn with_server(conn: ConnectionManager, server: String) -> Self {
        Self {
            conn,
            server,
            prefix: DEFAULT_PREFIX.to_owned(),
            lock_ttl: DEFAULT_LOCK_TTL,
            lock_wait: DEFAULT_LOCK_WAIT,
            status_ttl: DEFAULT_STATUS_TTL,
            seal: None,
        }
    }

    /// Seals every value this store writes with `key` (XChaCha20-Poly1305, see
    /// [`SealingKey`]): tokens, refresh tokens, client secrets, DPoP keys and pending web
    /// logins are ciphertext in Redis, its snapshots (RDB, AOF) and its replicas, useless
    /// without the key, which every process of the fleet gets from a secret manager rather
    /// than from Redis. Beside the ciphertext a value shows only what the store's scripts
    /// compare: the id of the key that sealed it, keyed fingerprints of its tokens
    /// (compare-and-swap compares those, and sends Redis no token) and a registration's
    /// `client_id`. Each value is bound to its kind and its key: copied under another key
    /// (another user's, another server's), it does not open there.
    ///
    /// Values written before the store was sealed are read as they are, and sealed when next
    /// written: tokens at their next refresh or login (the compare-and-swap brings the plain
    /// value back, compares it in the process and names it to Redis by its SHA-1, so no token
    /// goes to Redis then either), a registration when the client next registers, a status at
    /// the next flow. A sealed value this key does not open (another key sealed it, or it was
    /// changed), or one a store without a key meets, is an [`ErrorKind::Store`] error (a
    /// refused client's removal leaves it in place, without one), and no read, write, removal
    /// or compare-and-swap touches it (forgetting a web user's pending logins deletes them
    /// all, as it is asked to). One key per prefix: every process sharing it seals with the same one; a value is not bound to
    /// the prefix (so that a prefix can be renamed), so prefixes that must stay apart (tenants
    /// of one Redis) need keys of their own.
    ///
    /// ```no_run
    /// use tower_mcp_oauth::redis::RedisStore;
    /// use tower_mcp_oauth::SealingKey;
    /// # async fn run(key_from_the_secret_manager: [u8; 32]) -> Result<(), tower_mcp_oauth::Error> {
    /// let store = RedisStore::connect("redis://127.0.0.1:6379/").await?
    ///     .sealed_with(SealingKey::from_bytes(key_from_the_secret_manager));
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub fn sealed_with(mut self, key: SealingKey) -> Self {
        self.seal = Some(key);
        self
    }

    /// Puts every key under `prefix` (default [`DEFAULT_PREFIX`]), so several applications, or
    /// several test runs, can share one Redis database without seeing each other's tokens.
    ///
    /// ```no_run
    /// use tower_mcp_oauth::redis::RedisStore;
    /// # async fn run() -> Result<(), tower_mcp_oauth::Error> {
    /// // Keys: billing-agent:tokens:<resource>, billing-agent:client:<issuer>, billing-agent:lock:<resource>
    /// let store = RedisStore::connect("redis://127.0.0.1:6379/").await?.prefix("billing-agent");
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long a record of how a server's last flow ended lives after its last write (default
    /// [`DEFAULT_STATUS_TTL`]; at least 1 ms, at most a hundred years, as Redis refuses an
    /// expiry past its clock's range: `Duration::MAX` means "as long as it can"). Past it, a status page shows what the layer
    /// knows in memory (nothing, in a new process) rather than the old record; the tokens are
    /// not affected.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use tower_mcp_oauth::redis::RedisStore;
    /// # async fn run() -> Result<(), tower_mcp_oauth::Error> {
    /// let store = RedisStore::connect("redis://127.0.0.1:6379/")
    ///     .await?
    ///     .status_ttl(Duration::from_secs(7 * 24 * 3600));
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub fn status_ttl(mut self, ttl: Duration) -> Self {
        const LONGEST: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
        self.status_ttl = ttl.clamp(Duration::from_millis(1), LONGEST);
        self
    }

    /// How long a refresh lease lives if its holder never releases it (default
    /// [`DEFAULT_LOCK_TTL`]; at least 100 ms and at most a day, a value outside taken as the
    /// nearest bound).
    ///
    /// A holder renews its lease every third of the TTL for as long as it holds it, so a
    /// refresh slower than the TTL keeps the lease; the TTL is how long a holder that crashed
    /// (or lost its connection to Redis) keeps the others waiting. Without the renewal, an
    /// expired lease would let another process refresh with the same refresh token, which a
    /// server with reuse detection answers by revoking the grant (RFC 6749 §10.4).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use tower_mcp_oauth::redis::RedisStore;
    /// # async fn run() -> Result<(), tower_mcp_oauth::Error> {
    /// let store = RedisStore::connect("redis://127.0.0.1:6379/").await?
    ///     .lock_ttl(Duration::from_secs(60))
    ///     .lock_wait(Duration::from_secs(90));
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl.clamp(MIN_LOCK_TTL, MAX_LOCK_TTL);
        self
    }

    /// How long [`lock`](TokenStore::lock) waits for a lease someone else holds before it fails
    /// with an [`ErrorKind::Store`] error (default [`DEFAULT_LOCK_WAIT`]). Keep it longer than
    /// [`lock_ttl`](Self::lock_ttl), so a waiter outlives the lease of a crashed holder.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use tower_mcp_oauth::redis::RedisStore;
    /// # async fn run() -> Result<(), tower_mcp_oauth::Error> {
    /// let store = RedisStore::connect("redis://127.0.0.1:6379/").await?
    ///     .lock_ttl(Duration::from_secs(10))
    ///     .lock_wait(Duration::from_secs(15));
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}:{kind}:{name}", self.prefix)
    }

    async fn get<T: DeserializeOwned>(&self, kind: &str, name: &str) -> Result<Option<T>, Error> {
        let raw: Option<String> = self
            .query(Cmd::get(self.key(kind, name)), || {
                format!("cannot read the {kind} of {name}")
            })
            .await?;
        raw.map(|json| decode(&json, kind, name, self.seal.as_ref()))
            .transpose()
    }

    async fn query<T: ::redis::FromRedisValue>(
        &self,
        cmd: Cmd,
        what: impl FnOnce() -> String,
    ) -> Result<T, Error> {
        let mut conn = self.conn.clone();
        cmd.query_async(&mut conn)
            .await
            .map_err(|e| redis_error(what(), e))
    }
}

impl TokenStore for RedisStore {
    fn load_tokens<'a>(
        &'a self,
        resource: &'a str,
    ) -> BoxFuture<'a, Result<Option<TokenSet>, Error>> {
        Box::pin(self.get(TOKENS, resource))
    }

    fn save_tokens<'a>(
        &'a self,
        resource: &'a str,
        tokens: &'a TokenSet,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let value = encode(
                tokens,
                TOKENS,
                resource,
                self.seal.as_ref(),
                Shown::tokens(tokens),
            )?;
            self.guarded_write(self.key(TOKENS, resource), Some((value, None)), || {
                format!("cannot store the tokens of {resource}")
            })
            .await
        })
    }

    fn compare_and_swap_tokens<'a>(
        &'a self,
        resource: &'a str,
        current: Option<&'a TokenSet>,
        new: Option<&'a TokenSet>,
    ) -> BoxFuture<'a, Result<Replaced, Error>> {
        Box::pin(self.swap(resource, current, new))
    }

    fn load_client<'a>(
        &'a self,
        issuer: &'a str,
    ) -> BoxFuture<'a, Result<Option<ClientRegistration>, Error>> {
        Box::pin(async move {
            let stored: Option<ClientRegistration> = self.get(CLIENT, issuer).await?;
            Ok(stored.filter(|r| r.issuer == issuer))
        })
    }

    fn save_client<'a>(
        &'a self,
        registration: &'a ClientRegistration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let issuer = &registration.issuer;
            let value = encode(
                registration,
                CLIENT,
                issuer,
                self.seal.as_ref(),
                Shown::client(registration),
            )?;
            self.guarded_write(self.key(CLIENT, issuer), Some((value, None)), || {
                format!("cannot store the registration for {issuer}")
            })
            .await
        })
    }

    fn remove_client<'a>(&'a self, issuer: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.guarded_write(self.key(CLIENT, issuer), None, || {
                format!("cannot remove the registration for {issuer}")
            })
            .await
        })
    }

    fn remove_refused_client<'a>(
        &'a self,
        issuer: &'a str,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            REMOVE_REFUSED_CLIENT
                .key(self.key(CLIENT, issuer))
                .arg(client_id)
                .arg(key_id(self.seal.as_ref()))
                .invoke_async::<i64>(&mut conn)
                .await
                .map(drop)
                .map_err(|e| redis_error(format!("cannot remove the registration for {issuer}"), e))
        })
    }

    fn lock<'a>(&'a self, resource: &'a str) -> BoxFuture<'a, Result<StoreLock, Error>> {
        Box::pin(async move {
            let lease = self.acquire(resource).await?;
            // Released explicitly when the layer is done; dropped, the lease spawns its release.
            Ok(StoreLock::with_release(move || {
                Box::pin(lease.release_now())
            }))
        })
    }

    fn save_last_flow<'a>(
        &'a self,
        server: &'a str,
        record: &'a LastFlow,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let ttl = u64::try_from(self.status_ttl.as_millis()).unwrap_or(u64::MAX);
            let value = encode(record, STATUS, server, self.seal.as_ref(), Shown::default())?;
            self.guarded_write(self.key(STATUS, server), Some((value, Some(ttl))), || {
                format!("cannot store the status of {server}")
            })
            .await
        })
    }

    fn load_last_flow<'a>(
        &'a self,
        server: &'a str,
    ) -> BoxFuture<'a, Result<Option<LastFlow>, Error>> {
        Box::pin(self.get(STATUS, server))
    }
}

// The throwaway redis-server the tests run on lives in the testkit, which the integration tests
// share; the testkit does not depend on this crate, so its types are the same in both.
#[cfg(test)]
use mcp_oauth_testkit::redis as test_server;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod sealed_tests;

#[cfg(all(test, feature = "web"))]
mod pending_tests;
