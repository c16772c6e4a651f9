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

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Cmd, RedisError, Script};
use mcp_oauth_flow::{ClientRegistration, Error, ErrorKind, TokenSet};
use serde::de::DeserializeOwned;
use tokio::runtime::Handle;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::store::{Replaced, StoreLock, TokenStore};
use crate::BoxFuture;

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

/// The first pause between two attempts to take a held lease; it doubles up to
/// [`LEASE_POLL_MAX`]. A refresh is one token request, so most waits are short.
const LEASE_POLL_FIRST: Duration = Duration::from_millis(5);
const LEASE_POLL_MAX: Duration = Duration::from_millis(200);

const TOKENS: &str = "tokens";
const CLIENT: &str = "client";
const LOCK: &str = "lock";

/// Replaces the tokens only if the stored ones are still the expected ones, with
/// [`TokenSet::same_tokens`] semantics (same access token, same refresh token or both absent).
/// One script, so no other client can write between the read and the write.
///
/// KEYS[1]: the tokens key. ARGV: [1] "1" if tokens are expected ("0": nothing stored),
/// [2] the expected access token, [3] "1" if a refresh token is expected, [4] that refresh token,
/// [5] "1" to store ARGV[6] ("0": delete the key), [6] the new tokens as JSON.
/// Returns {"swapped"}, or {"conflict"[, what is stored now]}.
static COMPARE_AND_SWAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local stored = redis.call('GET', KEYS[1])
local same
if not stored then
  same = ARGV[1] == '0'
elseif ARGV[1] == '0' then
  same = false
else
  local ok, tokens = pcall(cjson.decode, stored)
  if not ok or type(tokens) ~= 'table' then
    return redis.error_reply('the stored tokens are not valid JSON')
  end
  local refresh = tokens['refresh_token']
  if type(refresh) ~= 'string' then refresh = nil end
  local expected_refresh = nil
  if ARGV[3] == '1' then expected_refresh = ARGV[4] end
  same = tokens['access_token'] == ARGV[2] and refresh == expected_refresh
end
if not same then
  if stored then return {'conflict', stored} end
  return {'conflict'}
end
if ARGV[5] == '1' then
  redis.call('SET', KEYS[1], ARGV[6])
else
  redis.call('DEL', KEYS[1])
end
return {'swapped'}
"#,
    )
});

/// Deletes a lease only if it is still ours: after our lease expired, someone else's lease may
/// sit under the same key. KEYS[1]: the lease key, ARGV[1]: our lease token.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#,
    )
});

/// A [`TokenStore`] in Redis, for a fleet of processes that share one login per protected
/// resource.
///
/// - Tokens live under `{prefix}:tokens:{resource}` and registrations under
///   `{prefix}:client:{issuer}`, as the serde JSON of [`TokenSet`] and [`ClientRegistration`]
///   (the forms [`FileStore`](crate::FileStore) writes; expiry is an absolute time). Keys hold
///   URLs only, never a token.
/// - [`compare_and_swap_tokens`](TokenStore::compare_and_swap_tokens) is one Lua script, atomic
///   in Redis.
/// - [`lock`](TokenStore::lock) is a lease: `SET {prefix}:lock:{resource} <random> NX PX <ttl>`,
///   retried with a bounded backoff until [`lock_wait`](Self::lock_wait) runs out. Dropping the
///   guard deletes the lease if it is still this holder's (a compare-and-delete script, spawned
///   on the runtime that took the lease, since `Drop` cannot wait); a crashed holder's lease,
///   or that of a process whose runtime ended before the release ran, expires after
///   [`lock_ttl`](Self::lock_ttl).
/// - The connection is a [`ConnectionManager`], which reconnects after a dropped connection. A
///   Redis error is an [`ErrorKind::Store`] error, which is transient: the layer keeps every
///   credential and the next call tries again.
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
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.server)
            .field("prefix", &self.prefix)
            .field("lock_ttl", &self.lock_ttl)
            .field("lock_wait", &self.lock_wait)
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
        }
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

    /// How long a refresh lease lives if its holder never releases it (default
    /// [`DEFAULT_LOCK_TTL`], at least 1 ms).
    ///
    /// Make it longer than the slowest token request you tolerate: a holder that overruns its
    /// lease lets another process refresh with the same refresh token. The compare-and-swap
    /// still keeps the store right (the second writer adopts the first one's tokens), but a
    /// server with reuse detection may already have revoked the grant (RFC 6749 §10.4).
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
        self.lock_ttl = ttl.max(Duration::from_millis(1));
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
        raw.map(|json| decode(&json, kind, name)).transpose()
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

    async fn swap(
        &self,
        resource: &str,
        current: Option<&TokenSet>,
        new: Option<&TokenSet>,
    ) -> Result<Replaced, Error> {
        let new_json = new.map(encode).transpose()?;
        let (expected_access, expected_refresh) = match current {
            Some(tokens) => (
                Some(tokens.access_token().secret().as_str()),
                tokens.refresh_token().map(|t| t.secret().as_str()),
            ),
            None => (None, None),
        };
        let flag = |present: bool| if present { "1" } else { "0" };
        let mut conn = self.conn.clone();
        let reply: Vec<String> = COMPARE_AND_SWAP
            .key(self.key(TOKENS, resource))
            .arg(flag(current.is_some()))
            .arg(expected_access.unwrap_or_default())
            .arg(flag(expected_refresh.is_some()))
            .arg(expected_refresh.unwrap_or_default())
            .arg(flag(new_json.is_some()))
            .arg(new_json.as_deref().unwrap_or_default())
            .invoke_async(&mut conn)
            .await
            .map_err(|e| redis_error(format!("cannot replace the tokens of {resource}"), e))?;
        match reply.as_slice() {
            [status] if status == "swapped" => Ok(Replaced::Swapped),
            [status] if status == "conflict" => Ok(Replaced::Conflict(None)),
            [status, stored] if status == "conflict" => Ok(Replaced::Conflict(Some(Box::new(
                decode(stored, TOKENS, resource)?,
            )))),
            _ => Err(Error::new(
                ErrorKind::Store,
                format!(
                    "unexpected reply from the compare-and-swap script for {resource} ({} items)",
                    reply.len()
                ),
            )),
        }
    }

    async fn acquire(&self, resource: &str) -> Result<Lease, Error> {
        let runtime = Handle::try_current().map_err(|e| {
            Error::new(ErrorKind::Store, "RedisStore::lock needs a tokio runtime").with_source(e)
        })?;
        // Returned once the SET succeeds; dropped on any other way out, which deletes the key
        // only if it holds this lease's token. After an error that matters: the SET may have
        // been applied with only its reply lost, and must not block the fleet for a whole TTL.
        let lease = Lease {
            conn: self.conn.clone(),
            key: self.key(LOCK, resource),
            token: lease_token()?,
            runtime,
        };
        let ttl_ms = u64::try_from(self.lock_ttl.as_millis()).unwrap_or(u64::MAX);
        let mut set = ::redis::cmd("SET");
        set.arg(&lease.key)
            .arg(&lease.token)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms);
        let mut conn = self.conn.clone();
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            match set.query_async::<Option<String>>(&mut conn).await {
                Ok(Some(_)) => return Ok(lease),
                Ok(None) => {}
                Err(e) => {
                    return Err(redis_error(
                        format!("cannot take the refresh lease of {resource}"),
                        e,
                    ))
                }
            }
            let waited = started.elapsed();
            if waited >= self.lock_wait {
                return Err(Error::new(
                    ErrorKind::Store,
                    format!(
                        "the refresh lease of {resource} was still held by another process after \
                         {:?}",
                        self.lock_wait
                    ),
                ));
            }
            if attempt == 0 {
                debug!(%resource, "refresh lease held by another process; waiting");
            }
            tokio::time::sleep(poll_delay(attempt).min(self.lock_wait - waited)).await;
            attempt = attempt.saturating_add(1);
        }
    }
}

/// A held refresh lease. Dropping it deletes the lease key if it still holds this lease's token.
struct Lease {
    conn: ConnectionManager,
    key: String,
    token: String,
    /// The runtime the lease was taken on: `Drop` is synchronous, so the release (one round trip)
    /// is spawned there. If that runtime is gone, the TTL frees the lease.
    runtime: Handle,
}

impl Lease {
    /// Releases the lease now and waits for the answer.
    async fn release_now(mut self) {
        let mut conn = self.conn.clone();
        let key = std::mem::take(&mut self.key);
        let token = std::mem::take(&mut self.token);
        if let Err(e) = release(&mut conn, &key, &token).await {
            warn!(%key, error = %e, "could not release a refresh lease; it expires with its TTL");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.key.is_empty() {
            // Already released by `release_now`.
            return;
        }
        let mut conn = self.conn.clone();
        let key = std::mem::take(&mut self.key);
        let token = std::mem::take(&mut self.token);
        self.runtime.spawn(async move {
            if let Err(e) = release(&mut conn, &key, &token).await {
                warn!(%key, error = %e, "could not release a refresh lease; it expires with its TTL");
            }
        });
    }
}

/// Deletes the lease at `key` if it still holds `token`; returns whether it did.
async fn release(conn: &mut ConnectionManager, key: &str, token: &str) -> Result<bool, RedisError> {
    let deleted: i64 = RELEASE.key(key).arg(token).invoke_async(conn).await?;
    Ok(deleted == 1)
}

/// A lease token: random, so a holder can tell its own lease from a later holder's.
fn lease_token() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| {
        Error::new(ErrorKind::Store, "no randomness for a refresh lease").with_source(e)
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The pause before attempt `attempt + 1` to take a held lease: doubling from
/// [`LEASE_POLL_FIRST`] up to [`LEASE_POLL_MAX`], scaled by a random 50–150 % so the processes
/// of a fleet do not poll in lockstep.
fn poll_delay(attempt: u32) -> Duration {
    let base = LEASE_POLL_FIRST
        .saturating_mul(1 << attempt.min(8))
        .min(LEASE_POLL_MAX);
    let mut bytes = [0u8; 4];
    let sample = match getrandom::getrandom(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    };
    base.mul_f64(0.5 + sample)
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value)
        .map_err(|e| Error::new(ErrorKind::Store, format!("cannot encode for Redis: {e}")))
}

/// Parses a stored value. The serde error is not attached: its text may quote part of the
/// value, which may be a token; its category and position are enough to find the problem.
fn decode<T: DeserializeOwned>(json: &str, kind: &str, name: &str) -> Result<T, Error> {
    serde_json::from_str(json).map_err(|e| {
        Error::new(
            ErrorKind::Store,
            format!(
                "the stored {kind} of {name} are not valid ({:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            ),
        )
    })
}

fn redis_error(message: String, source: RedisError) -> Error {
    Error::new(ErrorKind::Store, format!("{message}: {source}")).with_source(source)
}

/// `url` without its password and query (a `redis+unix` URL carries the password as `pass=`).
fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "<unparsable Redis URL>".to_owned();
    };
    if parsed.password().is_some() {
        // Only fails for URLs that cannot have a password, which then have none.
        let _ = parsed.set_password(Some("***"));
    }
    parsed.set_query(None);
    parsed.set_fragment(None);
    parsed.to_string()
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
            let cmd = Cmd::set(self.key(TOKENS, resource), encode(tokens)?);
            self.query(cmd, || format!("cannot store the tokens of {resource}"))
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
            let cmd = Cmd::set(self.key(CLIENT, issuer), encode(registration)?);
            self.query(cmd, || {
                format!("cannot store the registration for {issuer}")
            })
            .await
        })
    }

    fn remove_client<'a>(&'a self, issuer: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let cmd = Cmd::del(self.key(CLIENT, issuer));
            self.query::<i64>(cmd, || {
                format!("cannot remove the registration for {issuer}")
            })
            .await
            .map(drop)
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
}

#[cfg(test)]
#[path = "../../../tests/support/redis.rs"]
mod test_server;

#[cfg(test)]
mod tests {
    use super::test_server::RedisServer;
    use super::*;
    use mcp_oauth_flow::{ClientSecret, RefreshToken, TokenType};
    use std::time::UNIX_EPOCH;

    const RESOURCE: &str = "https://mcp.example.com/mcp";

    fn tokens(access: &str, refresh: Option<&str>) -> TokenSet {
        TokenSet::new(
            access,
            TokenType::Bearer,
            "https://as.example.com",
            "client-1",
        )
        .with_refresh_token(refresh.map(|r| RefreshToken::new(r.to_owned())))
        .with_expires_at(Some(UNIX_EPOCH + Duration::from_secs(2_000_000_000)))
    }

    async fn connect(server: &RedisServer) -> RedisStore {
        RedisStore::connect(&server.url()).await.unwrap()
    }

    async fn raw<T: ::redis::FromRedisValue>(store: &RedisStore, cmd: &Cmd) -> T {
        cmd.query_async(&mut store.conn.clone()).await.unwrap()
    }

    fn assert_swapped(outcome: Replaced) {
        assert!(matches!(outcome, Replaced::Swapped), "{outcome:?}");
    }

    /// The access token of the tokens a conflict reports (`None`: nothing stored).
    fn conflict(outcome: Replaced) -> Option<String> {
        match outcome {
            Replaced::Conflict(current) => current.map(|t| t.access_token().secret().clone()),
            Replaced::Swapped => panic!("expected a conflict, got a swap"),
        }
    }

    #[tokio::test]
    async fn tokens_and_registrations_round_trip_as_json_under_prefixed_keys() {
        let server = RedisServer::start();
        let store = connect(&server).await.prefix("app-a");
        let saved = tokens("at-secret", Some("rt-secret"));
        store.save_tokens(RESOURCE, &saved).await.unwrap();

        let back = store.load_tokens(RESOURCE).await.unwrap().unwrap();
        assert!(back.same_tokens(&saved));
        assert_eq!(back.expires_at(), saved.expires_at());
        // The value is the TokenSet's JSON, the form FileStore writes.
        let json: String = raw(&store, &Cmd::get(format!("app-a:tokens:{RESOURCE}"))).await;
        let parsed: TokenSet = serde_json::from_str(&json).unwrap();
        assert!(parsed.same_tokens(&saved));

        let registration = ClientRegistration {
            issuer: "https://as.example.com".to_owned(),
            client_id: "client-1".to_owned(),
            client_secret: Some(ClientSecret::new("cs-secret".to_owned())),
            client_secret_expires_at: None,
            token_endpoint_auth_method: Some("client_secret_basic".to_owned()),
            redirect_uris: vec!["http://127.0.0.1:8976/callback".to_owned()],
        };
        store.save_client(&registration).await.unwrap();
        let loaded = store
            .load_client("https://as.example.com")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(loaded.client_id, "client-1");
        assert_eq!(loaded.client_secret.unwrap().secret(), "cs-secret");

        // Keys name URLs only, never a secret.
        let mut keys: Vec<String> = raw(&store, &::redis::cmd("KEYS").arg("*").to_owned()).await;
        keys.sort();
        assert_eq!(
            keys,
            [
                "app-a:client:https://as.example.com".to_owned(),
                format!("app-a:tokens:{RESOURCE}")
            ]
        );

        // Another prefix is another store; unknown names are absent, not errors.
        let other = connect(&server).await.prefix("app-b");
        assert!(other.load_tokens(RESOURCE).await.unwrap().is_none());
        assert!(other
            .load_client("https://as.example.com")
            .await
            .unwrap()
            .is_none());

        store.remove_client("https://as.example.com").await.unwrap();
        store.remove_client("https://as.example.com").await.unwrap();
        assert!(store
            .load_client("https://as.example.com")
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn compare_and_swap_replaces_only_the_expected_tokens() {
        let server = RedisServer::start();
        let store = connect(&server).await;
        let (a, b, c) = (
            tokens("at-a", Some("rt-a")),
            tokens("at-b", Some("rt-b")),
            tokens("at-c", None),
        );

        // Nothing stored: only a caller expecting nothing may write.
        assert_eq!(
            conflict(
                store
                    .compare_and_swap_tokens(RESOURCE, Some(&a), Some(&b))
                    .await
                    .unwrap()
            ),
            None
        );
        assert_swapped(
            store
                .compare_and_swap_tokens(RESOURCE, None, Some(&a))
                .await
                .unwrap(),
        );
        assert_eq!(
            conflict(
                store
                    .compare_and_swap_tokens(RESOURCE, None, Some(&b))
                    .await
                    .unwrap()
            )
            .as_deref(),
            Some("at-a")
        );

        // Same access token, another refresh token: not the same grant state.
        let rotated = tokens("at-a", Some("rt-other"));
        assert!(conflict(
            store
                .compare_and_swap_tokens(RESOURCE, Some(&rotated), Some(&b))
                .await
                .unwrap()
        )
        .is_some());
        let no_refresh = tokens("at-a", None);
        assert!(conflict(
            store
                .compare_and_swap_tokens(RESOURCE, Some(&no_refresh), Some(&b))
                .await
                .unwrap()
        )
        .is_some());

        // Same tokens with other metadata (expiry): the same grant state.
        let same = a
            .clone()
            .with_expires_at(Some(UNIX_EPOCH + Duration::from_secs(1)));
        assert_swapped(
            store
                .compare_and_swap_tokens(RESOURCE, Some(&same), Some(&c))
                .await
                .unwrap(),
        );
        // A token set without a refresh token compares as such.
        assert!(conflict(
            store
                .compare_and_swap_tokens(RESOURCE, Some(&tokens("at-c", Some("x"))), None)
                .await
                .unwrap()
        )
        .is_some());
        assert_swapped(
            store
                .compare_and_swap_tokens(RESOURCE, Some(&c), None)
                .await
                .unwrap(),
        );
        assert!(store.load_tokens(RESOURCE).await.unwrap().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_swaps_from_the_same_tokens_have_one_winner() {
        let server = RedisServer::start();
        let (one, two) = (connect(&server).await, connect(&server).await);
        let start = tokens("at-0", Some("rt-0"));
        one.save_tokens(RESOURCE, &start).await.unwrap();
        let attempts: Vec<_> = (0..20)
            .map(|i| {
                let store = if i % 2 == 0 { one.clone() } else { two.clone() };
                let start = start.clone();
                tokio::spawn(async move {
                    let mine = tokens(&format!("at-{}", i + 1), Some("rt-new"));
                    store
                        .compare_and_swap_tokens(RESOURCE, Some(&start), Some(&mine))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut swapped = 0;
        for attempt in attempts {
            if matches!(attempt.await.unwrap(), Replaced::Swapped) {
                swapped += 1;
            }
        }
        assert_eq!(swapped, 1);
    }

    #[tokio::test]
    async fn a_corrupt_value_is_a_store_error_that_quotes_nothing() {
        let server = RedisServer::start();
        let store = connect(&server).await;
        let corrupt =
            r#"{"access_token":"at","token_type":"sekrit-value","issuer":"i","client_id":"c"}"#;
        let _: () = raw(
            &store,
            &Cmd::set(format!("{DEFAULT_PREFIX}:tokens:{RESOURCE}"), corrupt),
        )
        .await;
        let err = store.load_tokens(RESOURCE).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Store);
        assert!(!format!("{err} {err:?}").contains("sekrit"), "{err}");

        let _: () = raw(
            &store,
            &Cmd::set(format!("{DEFAULT_PREFIX}:tokens:{RESOURCE}"), "{not json"),
        )
        .await;
        let err = store
            .compare_and_swap_tokens(RESOURCE, Some(&tokens("at", None)), None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Store);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_lease_excludes_another_handle_until_dropped() {
        let server = RedisServer::start();
        let (one, two) = (connect(&server).await, connect(&server).await);
        let guard = one.lock(RESOURCE).await.unwrap();
        // Another resource is another lease.
        let _other = two.lock("https://other.example.com/mcp").await.unwrap();

        let waiting = tokio::spawn({
            let two = two.clone();
            async move { two.lock(RESOURCE).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "a held lease was taken twice");
        drop(guard);
        let second = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the released lease was taken")
            .unwrap();
        assert!(second.is_ok());

        // A waiter gives up after its wait limit with a typed error.
        let impatient = one.clone().lock_wait(Duration::from_millis(50));
        let started = Instant::now();
        let err = impatient.lock(RESOURCE).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Store);
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(err.to_string().contains("still held"), "{err}");
    }

    #[tokio::test]
    async fn a_crashed_holders_lease_expires_after_its_ttl() {
        let server = RedisServer::start();
        let crashed = connect(&server).await.lock_ttl(Duration::from_millis(300));
        let survivor = connect(&server).await;
        let taken = Instant::now();
        let lease = crashed.acquire(RESOURCE).await.unwrap();
        let pttl: i64 = raw(&crashed, ::redis::cmd("PTTL").arg(&lease.key)).await;
        assert!((1..=300).contains(&pttl), "{pttl}");
        // A crash: the guard is never dropped, so the lease is never released.
        std::mem::forget(lease);

        let _guard = tokio::time::timeout(Duration::from_secs(5), survivor.lock(RESOURCE))
            .await
            .expect("the expired lease was taken")
            .unwrap();
        // Not before the TTL (less Redis's millisecond rounding).
        assert!(taken.elapsed() >= Duration::from_millis(295));
    }

    #[tokio::test]
    async fn dropping_the_guard_releases_its_own_lease_only() {
        let server = RedisServer::start();
        let store = connect(&server).await;
        let key = format!("{DEFAULT_PREFIX}:lock:{RESOURCE}");
        let guard = store.lock(RESOURCE).await.unwrap();
        let exists = Cmd::exists(&key);
        assert_eq!(raw::<i64>(&store, &exists).await, 1);
        drop(guard);
        let deadline = Instant::now() + Duration::from_secs(5);
        while raw::<i64>(&store, &exists).await == 1 {
            assert!(
                Instant::now() < deadline,
                "the dropped lease is still there"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }

        // Our lease expired and someone else took the key: releasing ours leaves theirs.
        let lease = store.acquire(RESOURCE).await.unwrap();
        let _: () = raw(&store, &Cmd::set(&key, "someone-else")).await;
        let mut conn = store.conn.clone();
        assert!(!release(&mut conn, &lease.key, &lease.token).await.unwrap());
        let holder: String = raw(&store, &Cmd::get(&key)).await;
        assert_eq!(holder, "someone-else");
        let _: () = raw(&store, &Cmd::set(&key, &lease.token)).await;
        assert!(release(&mut conn, &lease.key, &lease.token).await.unwrap());
    }

    #[tokio::test]
    async fn neither_debug_nor_errors_show_the_password() {
        assert_eq!(
            redact_url("redis://user:hunter2@redis.internal:6380/2"),
            "redis://user:***@redis.internal:6380/2"
        );
        assert_eq!(
            redact_url("redis+unix:///run/redis.sock?db=1&pass=hunter2"),
            "redis+unix:///run/redis.sock"
        );
        assert!(!redact_url("hunter2://::").contains("hunter2"));

        let server = RedisServer::start();
        let store = connect(&server).await.prefix("my-app");
        let shown = format!("{store:?}");
        assert!(
            shown.contains("127.0.0.1") && shown.contains("my-app"),
            "{shown}"
        );

        // Nothing listens on a port that was just free: a typed error, without the password.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let once = ConnectionManagerConfig::new().set_number_of_retries(0);
        let url = format!("redis://:hunter2@127.0.0.1:{port}/");
        let err = RedisStore::connect_with_config(&url, once)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Store);
        assert!(err.is_transient());
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("127.0.0.1"), "{shown}");
        // A URL the redis crate refuses.
        let err = RedisStore::connect("redis://:hunter2@127.0.0.1:6379/not-a-db")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Store);
        assert!(!format!("{err} {err:?}").contains("hunter2"), "{err}");
    }
}
