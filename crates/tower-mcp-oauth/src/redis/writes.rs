//! A [`RedisStore`]'s writes that look before they write, each one Lua script: the tokens'
//! compare-and-swap, and a set or delete that leaves alone a value sealed under another key
//! (see [`RedisStore::sealed_with`]).

use mcp_oauth_flow::{token::TokenSet, Error, ErrorKind};

use super::codec::{decode, fingerprint, key_id, Shown};
use super::scripts::{COMPARE_AND_SWAP, GUARDED_WRITE};
use super::{encode, redis_error, RedisStore, TOKENS};
use crate::store::Replaced;

impl RedisStore {
    pub(super) async fn swap<'a>(
        &self,
        resource: &str,
        current: Option<&'a TokenSet>,
        new: Option<&TokenSet>,
    ) -> Result<Replaced, Error> {
        let seal = self.seal.as_ref();
        let new_json = new
            .map(|tokens| encode(tokens, TOKENS, resource, seal, Shown::tokens(tokens)))
            .transpose()?;
        let (expected_access, expected_refresh) = match current {
            Some(tokens) => (
                Some(tokens.access_token().secret().as_str()),
                tokens.refresh_token().map(|t| t.secret().as_str()),
            ),
            None => (None, None),
        };
        // A sealed store sends no token: the script compares fingerprints with a sealed value;
        // a value written before the store was sealed comes back to be compared here, and is
        // then named by its SHA-1 (`scripts::COMPARE_AND_SWAP`).
        let (mut mode, mut seen) = (if seal.is_none() { "1" } else { "0" }, String::new());
        for _ in 0..2 {
            let flag = |present: bool| if present { "1" } else { "0" };
            let plain = |token: Option<&'a str>| -> &'a str {
                match seal {
                    None => token.unwrap_or_default(),
                    Some(_) => "",
                }
            };
            let print = |token: Option<&str>| {
                fingerprint(seal, TOKENS, resource, token.unwrap_or_default())
            };
            let mut conn = self.conn.clone();
            let reply: Vec<String> = COMPARE_AND_SWAP
                .key(self.key(TOKENS, resource))
                .arg(flag(current.is_some()))
                .arg(plain(expected_access))
                .arg(flag(expected_refresh.is_some()))
                .arg(plain(expected_refresh))
                .arg(flag(new_json.is_some()))
                .arg(new_json.as_deref().unwrap_or_default())
                .arg(print(expected_access))
                .arg(print(expected_refresh))
                .arg(key_id(seal))
                .arg(mode)
                .arg(&seen)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| redis_error(format!("cannot replace the tokens of {resource}"), e))?;
            return match reply.as_slice() {
                [status, stored] if status == "plain" && mode == "0" => {
                    let stored_tokens: TokenSet = decode(stored, TOKENS, resource, seal)?;
                    if !current.is_some_and(|c| c.same_tokens(&stored_tokens)) {
                        return Ok(Replaced::Conflict(Some(Box::new(stored_tokens))));
                    }
                    (mode, seen) = ("2", sha1_hex(stored));
                    continue;
                }
                [status] if status == "swapped" => Ok(Replaced::Swapped),
                [status] if status == "conflict" => Ok(Replaced::Conflict(None)),
                [status, stored] if status == "conflict" => Ok(Replaced::Conflict(Some(
                    Box::new(decode(stored, TOKENS, resource, seal)?),
                ))),
                _ => Err(Error::new(
                    ErrorKind::Store,
                    format!(
                        "unexpected reply from the compare-and-swap script for {resource} ({} items)",
                        reply.len()
                    ),
                )),
            };
        }
        Err(Error::new(
            ErrorKind::Store,
            format!("the compare-and-swap script for {resource} sent the stored tokens twice"),
        ))
    }

    /// Sets (`Some`, with a time-to-live in milliseconds if given) or deletes (`None`) `key`,
    /// unless it holds a value sealed under another key than this store's (or, for a store
    /// without one, under any key): that one could never be read again by whoever sealed it.
    pub(super) async fn guarded_write(
        &self,
        key: String,
        value: Option<(String, Option<u64>)>,
        what: impl Fn() -> String,
    ) -> Result<(), Error> {
        let (op, value, ttl) = match value {
            Some((value, ttl)) => ("set", value, ttl.map(|t| t.to_string())),
            None => ("del", String::new(), None),
        };
        let mut conn = self.conn.clone();
        let reply: String = GUARDED_WRITE
            .key(key)
            .arg(op)
            .arg(value)
            .arg(ttl.unwrap_or_default())
            .arg(key_id(self.seal.as_ref()))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| redis_error(what(), e))?;
        match reply.as_str() {
            "ok" => Ok(()),
            _ => Err(Error::new(
                ErrorKind::Store,
                format!(
                    "{}: the value there is sealed under another key than this store's (give the \
                     store its key, RedisStore::sealed_with); it was left as it is",
                    what()
                ),
            )),
        }
    }
}

/// The SHA-1 of `value` in lowercase hex, as Redis's Lua `redis.sha1hex` gives it.
fn sha1_hex(value: &str) -> String {
    use sha1::{Digest, Sha1};
    crate::hex::lower_hex(&Sha1::digest(value.as_bytes()))
}
