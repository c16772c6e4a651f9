//! The Lua scripts of a [`RedisStore`](super::RedisStore): each runs atomically in Redis.

use std::sync::LazyLock;

use ::redis::Script;

/// The Lua of whether a stored value is sealed under another key than ARGV's `key_id` (any
/// key, for a store without one, whose `key_id` is empty): a value this store could never
/// read again once written over or removed. A value that starts as a sealed one but does not
/// parse is left alone too.
const FOREIGN: &str = r#"
local function foreign(stored, key_id)
  if string.sub(stored, 1, 11) ~= '{"sealed":"' then return false end
  local ok, value = pcall(cjson.decode, stored)
  if not ok or type(value) ~= 'table' then return true end
  return value['key_id'] ~= key_id
end
"#;

/// Replaces the tokens only if the stored ones are still the expected ones, with
/// [`TokenSet::same_tokens`](mcp_oauth_flow::token::TokenSet::same_tokens) semantics (same access
/// token, same refresh token or both absent). One script, so no other client can write between
/// the read and the write.
///
/// KEYS[1]: the tokens key. ARGV: [1] "1" if tokens are expected ("0": nothing stored),
/// [2] the expected access token, [3] "1" if a refresh token is expected, [4] that refresh token,
/// [5] "1" to store ARGV[6] ("0": delete the key), [6] the new tokens as stored, [7] and [8]
/// the keyed fingerprints of the expected tokens (empty without a key), [9] the store's key
/// id (empty without a key), [10] how a plain value is compared: "1" by the tokens in [2] and
/// [4] (a store without a key), "2" by the SHA-1 in [11] of the value as the caller read it,
/// "0" not at all (a sealed store, which sends no token).
///
/// A sealed value (see `codec`) is compared by its fingerprints, and one sealed under another
/// key is a conflict (which the caller cannot open: nothing is written). A plain value, under
/// "0", is sent back as {"plain", value}: the caller compares it, and asks again under "2" with
/// its SHA-1, so that a sealed store's tokens never reach Redis as arguments (which `SLOWLOG`
/// and `MONITOR` show, and Redis before 5 replicates). Returns {"swapped"}, {"plain", value},
/// or {"conflict"[, what is stored now]}.
pub(super) static COMPARE_AND_SWAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{FOREIGN}{}",
        r#"
local function matches(access, refresh, expected_access, expected_refresh)
  if type(refresh) ~= 'string' then refresh = nil end
  if ARGV[3] ~= '1' then expected_refresh = nil end
  return type(access) == 'string' and access == expected_access and refresh == expected_refresh
end
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
  if type(tokens['sealed']) == 'string' then
    if foreign(stored, ARGV[9]) then return {'conflict', stored} end
    same = matches(tokens['access_token_fingerprint'], tokens['refresh_token_fingerprint'], ARGV[7], ARGV[8])
  elseif ARGV[10] == '1' then
    same = matches(tokens['access_token'], tokens['refresh_token'], ARGV[2], ARGV[4])
  elseif ARGV[10] == '2' then
    same = redis.sha1hex(stored) == ARGV[11]
  else
    return {'plain', stored}
  end
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
"#
    ))
});

/// Sets or deletes a value unless it is sealed under another key than the store's.
///
/// KEYS[1]: the key. ARGV: [1] "set" or "del", [2] the value to set, [3] its time-to-live in
/// milliseconds (empty: none), [4] the store's key id (empty without a key).
/// Returns "ok", or "foreign" (nothing done).
pub(super) static GUARDED_WRITE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{FOREIGN}{}",
        r#"
local stored = redis.call('GET', KEYS[1])
if stored and foreign(stored, ARGV[4]) then return 'foreign' end
if ARGV[1] == 'del' then
  redis.call('DEL', KEYS[1])
elseif ARGV[3] ~= '' then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 'ok'
"#
    ))
});

/// Deletes a registration only if it is still the refused client: another process may have
/// registered anew since. KEYS[1]: the registration key, ARGV[1]: the refused client id,
/// ARGV[2]: the store's key id (empty without a key). Returns 1 if deleted, 0 if not (nothing
/// stored, another client, not JSON, or sealed under another key: kept).
pub(super) static REMOVE_REFUSED_CLIENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{FOREIGN}{}",
        r#"
local stored = redis.call('GET', KEYS[1])
if not stored then return 0 end
if foreign(stored, ARGV[2]) then return 0 end
local ok, registration = pcall(cjson.decode, stored)
if ok and type(registration) == 'table' and registration['client_id'] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#
    ))
});

/// Deletes a lease only if it is still ours: after our lease expired, someone else's lease may
/// sit under the same key. KEYS[1]: the lease key, ARGV[1]: our lease token.
pub(super) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#,
    )
});

/// Extends a lease only if it is still ours. KEYS[1]: the lease key, ARGV[1]: our lease token,
/// ARGV[2]: the new time-to-live in milliseconds. Returns 1 if extended, 0 if not ours.
pub(super) static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"#,
    )
});

/// Puts a pending web login unless one is stored under its key, and notes its key in its
/// user's index, which lives as long as the user's longest-lived login.
/// KEYS[1]: the login's key, KEYS[2]: the user's index. ARGV[1]: the login (JSON), ARGV[2]: its
/// time to live in milliseconds. Returns 1 if stored, 0 if a login was already there.
///
/// The index drops the keys of logins whose time ran out (Redis dropped them, not the index):
/// up to [`PENDING_INDEX_PRUNED`] of its members, picked at random, are checked at each put.
/// A user who starts logins faster than they expire, the index always living on, would
/// otherwise grow it for ever (and `forget_user`'s one script with it); pruned, it holds
/// about their live logins.
#[cfg(feature = "web")]
pub(super) static PUT_PENDING: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return 0 end
for _, login in ipairs(redis.call('SRANDMEMBER', KEYS[2], ARGV[3])) do
  if redis.call('EXISTS', login) == 0 then redis.call('SREM', KEYS[2], login) end
end
redis.call('SADD', KEYS[2], KEYS[1])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return 1
"#,
    )
});

/// How many members of a user's pending-login index a put checks ([`PUT_PENDING`]).
#[cfg(feature = "web")]
pub(super) const PENDING_INDEX_PRUNED: u32 = 16;

/// Takes a pending web login: returns it and deletes its key and its entry in its user's index,
/// in one step, so that of two clients taking it at once one gets it and the other nothing.
/// (`GETDEL` does the first part from Redis 6.2 on; this runs on every Redis the store runs on,
/// where `GETDEL` on an older server failed every web login's callback.)
/// KEYS[1]: the login's key, KEYS[2]: its user's index; ARGV[1]: the store's key id (empty
/// without a key): a login sealed under another key is left as it is, an error. Returns the
/// login, or nil.
#[cfg(feature = "web")]
pub(super) static TAKE_PENDING: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{FOREIGN}{}",
        r#"
local value = redis.call('GET', KEYS[1])
if value and foreign(value, ARGV[1]) then
  return redis.error_reply('the pending login is sealed under another key than this store\'s; it was left as it is')
end
if value then redis.call('DEL', KEYS[1]) end
redis.call('SREM', KEYS[2], KEYS[1])
return value
"#
    ))
});

/// Forgets a user's pending web logins: deletes every login its index names, and the index.
/// KEYS[1]: the user's index. Returns how many logins were named.
#[cfg(feature = "web")]
pub(super) static FORGET_PENDING: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local logins = redis.call('SMEMBERS', KEYS[1])
for _, login in ipairs(logins) do redis.call('DEL', login) end
redis.call('DEL', KEYS[1])
return #logins
"#,
    )
});
