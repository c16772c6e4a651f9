//! [`RedisStore`] as a [`PendingLoginStore`]: the logins of a web app served by several
//! processes wait in Redis, so the callback may reach any of them.
//!
//! - A login lives under `{prefix}:pending:{H(user)}:{H(user, state)}` (`H`: hex SHA-256), as
//!   the serde JSON of [`PendingLogin`]. The key names neither the user nor the `state` (a
//!   secret), and the callback of one user never finds the key of another's login.
//! - `put` is `SET key value PX ttl NX`: Redis drops the login when its time is up.
//! - `take` is a script that gets and deletes the key in one step (what `GETDEL` does from
//!   Redis 6.2 on, on any version): of two processes that receive the same callback at once,
//!   one gets the login and the other nothing.
//! - `forget_user` scans `{prefix}:pending:{H(user)}:*` and deletes what it finds.
//! - Unlike [`MemoryPendingLogins`](crate::web::MemoryPendingLogins), it keeps no count per
//!   user: every login is bounded by its time-to-live alone, so rate-limit `start` in the app
//!   as you would any endpoint that writes.
//!
//! The value holds the login's PKCE verifier and `state`, and a confidential client's secret,
//! as the tokens key holds tokens: protect the Redis server accordingly.

use std::time::Duration;

use ::redis::Cmd;
use mcp_oauth_flow::{Error, ErrorKind};
use sha2::{Digest, Sha256};

use super::scripts::TAKE;
use super::{redis_error, RedisStore};
use crate::web::{PendingLogin, PendingLoginStore};
use crate::BoxFuture;

const PENDING: &str = "pending";
/// How many keys one `SCAN` step asks for when a user's logins are forgotten.
const SCAN_BATCH: usize = 100;

impl RedisStore {
    /// The key of `user`'s logins without the last part: what `forget_user` scans for.
    fn pending_user_key(&self, user: &str) -> String {
        format!("{}:{PENDING}:{}", self.prefix, hash(&[user.as_bytes()]))
    }

    fn pending_key(&self, user: &str, state: &str) -> String {
        // The NUL keeps ("ab", "c") and ("a", "bc") apart.
        let login = hash(&[user.as_bytes(), b"\0", state.as_bytes()]);
        format!("{}:{login}", self.pending_user_key(user))
    }

    async fn put_pending(
        &self,
        user: &str,
        state: &str,
        login: &PendingLogin,
        ttl: Duration,
    ) -> Result<(), Error> {
        let json = serde_json::to_string(login).map_err(|e| {
            Error::new(
                ErrorKind::Store,
                format!("cannot encode a pending login: {e}"),
            )
        })?;
        // At least 1 ms: `PX 0` is an error in Redis.
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let cmd = ::redis::cmd("SET")
            .arg(self.pending_key(user, state))
            .arg(json)
            .arg("PX")
            .arg(millis)
            .arg("NX")
            .to_owned();
        let set: Option<String> = self
            .query(cmd, || "cannot store a pending login".to_owned())
            .await?;
        // `state` is 256 random bits: a login already under its key means a broken source
        // of randomness, or a caller putting one login twice. Either way, not overwritten.
        match set {
            Some(_) => Ok(()),
            None => Err(Error::new(
                ErrorKind::Store,
                "a pending login with this state is already stored; it is not replaced",
            )),
        }
    }

    async fn take_pending(&self, user: &str, state: &str) -> Result<Option<PendingLogin>, Error> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = TAKE
            .key(self.pending_key(user, state))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| redis_error("cannot take a pending login".to_owned(), e))?;
        raw.map(|json| {
            // The serde error is not attached: its text may quote the value, which holds
            // the login's secrets.
            serde_json::from_str(&json).map_err(|e| {
                Error::new(
                    ErrorKind::Store,
                    format!(
                        "the stored pending login is not valid ({:?} error at line {}, column {})",
                        e.classify(),
                        e.line(),
                        e.column()
                    ),
                )
            })
        })
        .transpose()
    }

    async fn forget_pending(&self, user: &str) -> Result<(), Error> {
        let pattern = format!("{}:*", glob_escape(&self.pending_user_key(user)));
        let mut cursor: u64 = 0;
        loop {
            let cmd = ::redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_BATCH)
                .to_owned();
            let (next, keys): (u64, Vec<String>) = self
                .query(cmd, || "cannot list a user's pending logins".to_owned())
                .await?;
            if !keys.is_empty() {
                self.query::<i64>(Cmd::del(keys), || {
                    "cannot delete a user's pending logins".to_owned()
                })
                .await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

impl PendingLoginStore for RedisStore {
    fn put<'a>(
        &'a self,
        user: &'a str,
        state: &'a str,
        login: &'a PendingLogin,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.put_pending(user, state, login, ttl))
    }

    fn take<'a>(
        &'a self,
        user: &'a str,
        state: &'a str,
    ) -> BoxFuture<'a, Result<Option<PendingLogin>, Error>> {
        Box::pin(self.take_pending(user, state))
    }

    fn forget_user<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.forget_pending(user))
    }
}

/// Hex SHA-256 of the concatenated parts.
fn hash(parts: &[&[u8]]) -> String {
    let digest = parts
        .iter()
        .fold(Sha256::new(), |h, part| h.chain_update(part))
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `raw` as a literal in a Redis `MATCH` pattern: the prefix is the application's and may hold
/// glob characters.
fn glob_escape(raw: &str) -> String {
    let mut escaped = String::with_capacity(raw.len());
    for c in raw.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_of_a_prefix_are_matched_literally() {
        assert_eq!(glob_escape("app*[1]?:x"), r"app\*\[1\]\?:x");
        assert_eq!(glob_escape("plain:pending"), "plain:pending");
    }

    #[test]
    fn the_hash_separates_its_parts_by_content() {
        assert_eq!(hash(&[b"ab", b"c"]), hash(&[b"a", b"bc"]), "concatenation");
        assert_ne!(
            hash(&[b"ab", b"\0", b"c"]),
            hash(&[b"a", b"\0", b"bc"]),
            "hence the NUL between user and state"
        );
        assert_eq!(hash(&[b""]).len(), 64);
    }
}
