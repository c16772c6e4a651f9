//! Where a [`FileStore`](super::FileStore) keeps a key's record: in the file named for the key,
//! or, when another key's record holds that name, in an overflow file of the key's own.
//!
//! A record's file name is readable (the key's first characters) and told apart by a hash of
//! the key: 64-bit FNV-1a, the name every build of this store has written. FNV resists chance,
//! not a chosen key: in a store one application keeps for many users (a
//! [`UserTokenStore`](crate::web::UserTokenStore) key holds the user's name), a user who could
//! pick a name whose key shares another's first characters and hashes like it would have
//! written over that user's tokens, or removed them with a logout. Every file records its key,
//! so such a file was never read as the other's; now it is never written over or removed
//! either. A key whose name another key's record holds is kept under a name made from the
//! key's SHA-256 (FIPS 180-4), which no chosen key collides with. Every key whose name is free,
//! which is every key not chosen to collide, keeps the name it had: a directory written by an
//! earlier build reads as before, and an earlier build's processes sharing the directory see
//! the same files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use mcp_oauth_flow::client::ClientRegistration;
use mcp_oauth_flow::Error;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::{Files, StatusFile, TokensFile};

/// A record that names its own key, so that a file under a name two keys share is told apart.
pub(super) trait Keyed: DeserializeOwned {
    /// The key the record was written for.
    fn key(&self) -> &str;
}

impl Keyed for TokensFile {
    fn key(&self) -> &str {
        &self.resource
    }
}

impl Keyed for StatusFile {
    fn key(&self) -> &str {
        &self.server
    }
}

impl Keyed for ClientRegistration {
    fn key(&self) -> &str {
        &self.issuer
    }
}

/// The name a key's record has always had: readable, and told apart by a stable hash (FNV-1a;
/// std's hasher is not stable across releases).
pub(super) fn file_name(prefix: &str, key: &str, ext: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{prefix}-{}-{hash:016x}.{ext}", readable(key))
}

/// The name of a key's overflow file: its first 128 bits of SHA-256, 32 hexadecimal digits
/// where [`file_name`]'s hash has 16, so the two never name the same file.
fn overflow_name(prefix: &str, key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut hex = String::with_capacity(32);
    for byte in &digest[..16] {
        let _ = write!(hex, "{byte:02x}");
    }
    format!("{prefix}-{}-{hex}.json", readable(key))
}

/// The key's first 60 characters, scheme left out, with anything but letters, digits, `.` and
/// `-` as `_`: a name a person can place, that no key can turn into a path.
fn readable(key: &str) -> String {
    key.trim_start_matches("https://")
        .trim_start_matches("http://")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect()
}

/// Whether the file at `path` holds another key's record than `key`'s. An unreadable file is
/// no other key's: it goes with the key it is named for, as before.
fn taken_by_another<T: Keyed>(path: &Path, key: &str) -> bool {
    matches!(Files::read::<T>(path), Ok(Some(record)) if record.key() != key)
}

impl Files {
    /// The path a record of `key` among the files `prefix` has always had.
    pub(super) fn own_path(&self, prefix: &str, key: &str) -> PathBuf {
        self.dir.join((self.name)(prefix, key, "json"))
    }

    fn overflow_path(&self, prefix: &str, key: &str) -> PathBuf {
        self.dir.join(overflow_name(prefix, key))
    }

    /// The record of `key`: its own file's when that holds it, else its overflow file's.
    pub(super) fn read_record<T: Keyed>(
        &self,
        prefix: &str,
        key: &str,
    ) -> Result<Option<T>, Error> {
        match Self::read::<T>(&self.own_path(prefix, key))? {
            Some(record) if record.key() == key => Ok(Some(record)),
            // Another key's, or none: a record written while its name was taken is in its
            // overflow file (and stays there after the other key's record is removed).
            _ => Ok(Self::read::<T>(&self.overflow_path(prefix, key))?.filter(|r| r.key() == key)),
        }
    }

    /// Writes `bytes`, the record of `key`, to its own file unless another key's record holds
    /// that, and then to its overflow file.
    pub(super) fn write_record<T: Keyed>(
        &self,
        prefix: &str,
        key: &str,
        bytes: &[u8],
    ) -> Result<(), Error> {
        let own = self.own_path(prefix, key);
        if taken_by_another::<T>(&own, key) {
            return Self::write_atomic(&self.overflow_path(prefix, key), bytes);
        }
        Self::write_atomic(&own, bytes)?;
        // A copy written while the name was taken would be read again, a replaced or removed
        // record come back, once the file under the name is gone without it (removed by an
        // earlier build, which knows no overflow file): gone, now the record is home.
        Self::remove(&self.overflow_path(prefix, key))
    }

    /// Removes the record of `key`, wherever it is, and never another key's.
    pub(super) fn remove_record<T: Keyed>(&self, prefix: &str, key: &str) -> Result<(), Error> {
        let own = self.own_path(prefix, key);
        if !taken_by_another::<T>(&own, key) {
            Self::remove(&own)?;
        }
        Self::remove(&self.overflow_path(prefix, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_readable_and_safe() {
        let a = file_name("tokens", "https://mcp.example.com/mcp", "json");
        assert_eq!(
            a,
            file_name("tokens", "https://mcp.example.com/mcp", "json")
        );
        // The name every earlier build wrote (FNV-1a computed apart, by a Python one-liner):
        // directories they filled read as before.
        assert_eq!(a, "tokens-mcp.example.com_mcp-977f7f8679b5852e.json");
        assert!(!file_name("tokens", "https://x/../../etc", "json").contains('/'));
        assert_ne!(
            a,
            file_name("tokens", "https://mcp.example.com/mcq", "json")
        );
        // SHA-256 of the key, its first 16 bytes (computed apart, by Python's `hashlib`).
        let overflow = overflow_name("tokens", "https://mcp.example.com/mcp");
        assert_eq!(
            overflow,
            "tokens-mcp.example.com_mcp-7a930d27a3f5c4643da88c1794444840.json"
        );
        assert_ne!(overflow, a);
        assert!(!overflow_name("tokens", "https://x/../../etc").contains('/'));
    }
}
