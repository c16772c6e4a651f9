//! [`RedisStore`] as a [`PendingLoginStore`]: the logins of a web app served by several
//! processes wait in Redis, so the callback may reach any of them.
//!
//! - A login lives under `{prefix}:pending:{H(user)}:{H(user, state)}` (`H`: hex SHA-256), as
//!   the serde JSON of [`PendingLogin`]. The key names neither the user nor the `state` (a
//!   secret), and the callback of one user never finds the key of another's login.
//! - `put` sets the key with `PX ttl NX` (Redis drops the login when its time is up) and notes it
//!   in its user's index, in one script.
//! - `take` is a script that gets and deletes the key in one step (what `GETDEL` does from
//!   Redis 6.2 on, on any version): of two processes that receive the same callback at once,
//!   one gets the login and the other nothing.
//! - Each user's login keys are noted in a set, `{prefix}:pending-index:{H(user)}`, which lives
//!   as long as the user's longest-lived login, and sheds the keys of expired logins as new
//!   ones are put (a few checked at each put); `forget_user` deletes the logins it names and
//!   the set, in one script, however many keys the database holds.
//! - Unlike [`MemoryPendingLogins`](crate::web::MemoryPendingLogins), it keeps no count per
//!   user: every login is bounded by its time-to-live alone, so rate-limit `start` in the app
//!   as you would any endpoint that writes.
//!
//! The value holds the login's PKCE verifier and `state`, and a confidential client's secret,
//! as the tokens key holds tokens: protect the Redis server accordingly.

use std::time::Duration;

use mcp_oauth_flow::{Error, ErrorKind};
use sha2::{Digest, Sha256};

use super::scripts::{FORGET_PENDING, PUT_PENDING, TAKE_PENDING};
use super::{redis_error, RedisStore};
use crate::web::{PendingLogin, PendingLoginStore};
use crate::BoxFuture;

const PENDING: &str = "pending";
const PENDING_INDEX: &str = "pending-index";
/// A pending login's kind, as a sealed one is bound to it (with its key).
const PENDING_KIND: &str = "pending login";

impl RedisStore {
    /// The key of `user`'s logins without the last part: what `forget_user` scans for.
    fn pending_user_key(&self, user: &str) -> String {
        format!("{}:{PENDING}:{}", self.prefix, hash(&[user.as_bytes()]))
    }

    /// The set of `user`'s login keys: what `forget_user` deletes, without scanning the
    /// database (which on a Redis shared with millions of keys takes one round trip per hundred
    /// of them).
    fn pending_index_key(&self, user: &str) -> String {
        format!(
            "{}:{PENDING_INDEX}:{}",
            self.prefix,
            hash(&[user.as_bytes()])
        )
    }

    /// A key without the store's prefix: what a sealed value is bound to (so a prefix can be
    /// renamed), as the store's other values are bound to their names.
    fn unprefixed<'k>(&self, key: &'k str) -> &'k str {
        key.strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix(':'))
            .unwrap_or(key)
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
        // Sealed, in a sealed store: it holds the login's PKCE verifier and its state. Bound
        // to its key, which names the user and the state (hashed): moved to another user's, it
        // does not open.
        let key = self.pending_key(user, state);
        let json = super::codec::encode(
            login,
            PENDING_KIND,
            self.unprefixed(&key),
            self.seal.as_ref(),
            Default::default(),
        )?;
        // At least 1 ms: `PX 0` is an error in Redis.
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.conn.clone();
        let set: i64 = PUT_PENDING
            .key(&key)
            .key(self.pending_index_key(user))
            .arg(json)
            .arg(millis)
            .arg(super::scripts::PENDING_INDEX_PRUNED)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| redis_error("cannot store a pending login".to_owned(), e))?;
        // `state` is 256 random bits: a login already under its key means a broken source
        // of randomness, or a caller putting one login twice. Either way, not overwritten.
        match set {
            1 => Ok(()),
            _ => Err(Error::new(
                ErrorKind::Store,
                "a pending login with this state is already stored; it is not replaced",
            )),
        }
    }

    async fn take_pending(&self, user: &str, state: &str) -> Result<Option<PendingLogin>, Error> {
        let mut conn = self.conn.clone();
        let key = self.pending_key(user, state);
        let raw: Option<String> = TAKE_PENDING
            .key(&key)
            .key(self.pending_index_key(user))
            .arg(super::codec::key_id(self.seal.as_ref()))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| redis_error("cannot take a pending login".to_owned(), e))?;
        // The serde error is not attached (see `codec::decode`): its text may quote the value,
        // which holds the login's secrets.
        raw.map(|json| {
            super::codec::decode(
                &json,
                PENDING_KIND,
                self.unprefixed(&key),
                self.seal.as_ref(),
            )
        })
        .transpose()
    }

    async fn forget_pending(&self, user: &str) -> Result<(), Error> {
        let mut conn = self.conn.clone();
        let _: i64 = FORGET_PENDING
            .key(self.pending_index_key(user))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| redis_error("cannot delete a user's pending logins".to_owned(), e))?;
        Ok(())
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
    crate::hex::lower_hex(&digest)
}

#[cfg(test)]
mod tests {
    use super::*;

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
