//! Where a [`FileStore`](super::FileStore) keeps a key's record: in the file named for the key,
//! or, when another key's record holds that name, in an overflow file of the key's own.
//!
//! A record's file name is readable (the key's first characters) and told apart by a hash of
//! the key: 64-bit FNV-1a, the name every build of this store has written. FNV resists chance,
//! not a chosen key: in a store one application keeps for many users (a
//! [`UserTokenStore`](crate::web::UserTokenStore) key holds the user's name), a user who could
//! pick a name whose key shares another's first characters and hashes like it would have
//! written over that user's tokens, or removed them with a logout. Every file records its key,
//! so such a file was never read as the other's; now this build never writes over or removes
//! it either. A key whose name another key's record holds is kept under a name made from the
//! key's SHA-256 (FIPS 180-4), which no chosen key collides with. Writes decide where a record
//! goes under a lock that keys whose names collide share, so two of them never both find the
//! name free.
//!
//! Every key whose name is free, which is every key not chosen to collide, keeps the name it
//! had: a directory written by an earlier build reads as before, and an earlier build's
//! processes sharing the directory read and write the same files. What they cannot do is see
//! an overflow file: against a colliding key they write over and remove by name, as they always
//! did, and a record this build keeps beside its name is invisible to them.
use std::path::{Path, PathBuf};

use mcp_oauth_flow::client::ClientRegistration;
use mcp_oauth_flow::{Error, ErrorKind};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::{Files, StatusFile, TokensFile};
use crate::store::file_safety;

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
    let hex = crate::hex::lower_hex(&digest[..16]);
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

impl Files {
    /// Whether the file at `path` (of kind `prefix`) holds another key's record than `key`'s.
    /// A file that does not parse, or that the store refuses to read (a link, another user's
    /// file), is no other key's: it goes with the key it is named for, as before; but a sealed
    /// one this store cannot open, or one it could not read at all, may be anyone's, and is
    /// not written over or removed (see [`openable`](Self::openable)).
    fn taken_by_another<T: Keyed>(
        &self,
        path: &Path,
        prefix: &str,
        key: &str,
    ) -> Result<bool, Error> {
        match self.read::<T>(path, prefix) {
            Ok(Some(record)) => Ok(record.key() != key),
            Ok(None) => Ok(false),
            // Not read for now: nothing is decided on it.
            Err(e) if e.is_transient() => Err(e),
            Err(_) => self.openable(path, prefix).map(|()| false),
        }
    }

    /// The path a record of `key` among the files `prefix` has always had.
    pub(super) fn own_path(&self, prefix: &str, key: &str) -> PathBuf {
        self.dir.join((self.name)(prefix, key, "json"))
    }

    pub(super) fn overflow_path(&self, prefix: &str, key: &str) -> PathBuf {
        self.dir.join(overflow_name(prefix, key))
    }

    /// The record of `key` (see [`find`]).
    pub(super) fn read_record<T: Keyed>(
        &self,
        prefix: &str,
        key: &str,
    ) -> Result<Option<T>, Error> {
        let (own, overflow) = (self.own_path(prefix, key), self.overflow_path(prefix, key));
        find(key, |place| match place {
            Place::Own => self.read(&own, prefix),
            Place::Overflow => self.read(&overflow, prefix),
        })
    }

    /// Writes `bytes`, the record of `key`, to its own file unless another key's record holds
    /// that, and then to its overflow file.
    pub(super) fn write_record<T: Keyed>(
        &self,
        prefix: &str,
        key: &str,
        bytes: &[u8],
    ) -> Result<(), Error> {
        let (own, overflow) = (self.own_path(prefix, key), self.overflow_path(prefix, key));
        let bytes = self.to_disk(bytes, prefix)?;
        if self.taken_by_another::<T>(&own, prefix, key)? {
            self.openable(&overflow, prefix)?;
            return Self::write_atomic(&overflow, &bytes);
        }
        self.openable(&overflow, prefix)?;
        Self::write_atomic(&own, &bytes)?;
        // A copy written while the name was taken would be read again, a replaced or removed
        // record come back, once the file under the name is gone without it (removed by an
        // earlier build, which knows no overflow file): gone, now the record is home.
        Self::remove(&overflow)
    }

    /// Fails when the file at `path` may not be written over or removed: a sealed record this
    /// store cannot open (written over or removed, it could never be read again, by the key
    /// that sealed it, which this store may be missing by mistake), or a file it could not read
    /// at all (which may be one). Decided on the seal, not on what it holds: a record that
    /// opens but does not parse (a newer build's) goes with its name, as a plain one that does
    /// not parse does.
    fn openable(&self, path: &Path, prefix: &str) -> Result<(), Error> {
        let bytes = match Self::read_bytes(path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(()),
            // Refused as unsafe to read (a link, another user's file): replaced by the rename.
            Err(_) if file_safety::replaceable_refusal(path) => return Ok(()),
            // Anything else unread (a disk that did not answer, a file this user may not read)
            // may be a sealed record: it is not written over blind.
            Err(e) => {
                let refusal = Error::new(
                    ErrorKind::Store,
                    format!(
                        "{e}; it may be a sealed record, and is not written over unread (remove \
                         it, and this store will write there again)"
                    ),
                );
                return Err(if e.is_transient() {
                    refusal.mark_transient()
                } else {
                    refusal
                });
            }
        };
        // Opened as a read opens it: a plain file, or a sealed one this key opens, may go.
        self.unsealed(bytes, path, prefix).map(drop)
    }

    /// Removes the record of `key`, wherever it is, and never another key's.
    pub(super) fn remove_record<T: Keyed>(&self, prefix: &str, key: &str) -> Result<(), Error> {
        // The copy beside first: stopped between the two, the store keeps the newest record
        // (under the name) rather than an older one coming back from beside it.
        // Both decided before either is removed: a refusal leaves both as they were.
        let (own, overflow) = (self.own_path(prefix, key), self.overflow_path(prefix, key));
        let own_is_ours = !self.taken_by_another::<T>(&own, prefix, key)?;
        self.openable(&overflow, prefix)?;
        Self::remove(&overflow)?;
        if own_is_ours {
            Self::remove(&own)?;
        }
        Ok(())
    }
}

/// One of the two files a key's record may be in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// The file named for the key ([`file_name`]).
    Own,
    /// The key's overflow file ([`overflow_name`]).
    Overflow,
}

/// The record of `key`, from what `read` finds in each place: its own file's when that holds
/// it, else its overflow file's. Reads take no lock, so a record may move home (written under
/// its name, then its overflow copy removed, by another handle or process) between the two
/// reads: found in neither, the name is read again, and a record that moved is found there.
/// An unreadable file under the name is an error only when the record is not beside it.
fn find<T: Keyed>(
    key: &str,
    mut read: impl FnMut(Place) -> Result<Option<T>, Error>,
) -> Result<Option<T>, Error> {
    let own = match read(Place::Own) {
        Ok(Some(record)) if record.key() == key => return Ok(Some(record)),
        other => other,
    };
    if let Some(record) = read(Place::Overflow)?.filter(|r| r.key() == key) {
        return Ok(Some(record));
    }
    own?;
    Ok(read(Place::Own)?.filter(|r| r.key() == key))
}

#[cfg(test)]
mod tests {
    use mcp_oauth_flow::ErrorKind;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Record {
        key: String,
        value: u32,
    }

    impl Keyed for Record {
        fn key(&self) -> &str {
            &self.key
        }
    }

    fn record(key: &str, value: u32) -> Option<Record> {
        Some(Record {
            key: key.into(),
            value,
        })
    }

    /// `find` over a script of what each read sees, in order; the places it read.
    fn find_in(
        script: Vec<(Place, Result<Option<Record>, Error>)>,
    ) -> (Result<Option<Record>, Error>, Vec<Place>) {
        let mut script = script.into_iter();
        let mut read = Vec::new();
        let found = find("k", |place| {
            read.push(place);
            let (expected, seen) = script.next().expect("no read past the script");
            assert_eq!(place, expected);
            seen
        });
        (found, read)
    }

    #[test]
    fn a_record_is_found_under_its_name_first_then_beside_it() {
        use Place::*;
        // Under its name: a copy beside (left by a stop between a move's two steps) is not
        // even read.
        let (found, read) = find_in(vec![(Own, Ok(record("k", 2)))]);
        assert_eq!(found.unwrap(), record("k", 2));
        assert_eq!(read, [Own]);
        // Another key's under the name: its own beside it.
        let (found, _) = find_in(vec![
            (Own, Ok(record("other", 1))),
            (Overflow, Ok(record("k", 3))),
        ]);
        assert_eq!(found.unwrap(), record("k", 3));
        // An unreadable file under the name does not hide the record beside it...
        let unreadable = || Err(Error::new(ErrorKind::Store, "not a valid store file"));
        let (found, _) = find_in(vec![(Own, unreadable()), (Overflow, Ok(record("k", 4)))]);
        assert_eq!(found.unwrap(), record("k", 4));
        // ...and is the answer when the record is nowhere else.
        let (found, _) = find_in(vec![(Own, unreadable()), (Overflow, Ok(None))]);
        assert_eq!(found.unwrap_err().kind(), ErrorKind::Store);
    }

    #[test]
    fn a_record_moving_home_between_the_reads_is_found() {
        use Place::*;
        // Not under the name, then no longer beside it: it was moved home in between.
        let (found, read) = find_in(vec![
            (Own, Ok(record("other", 1))),
            (Overflow, Ok(None)),
            (Own, Ok(record("k", 5))),
        ]);
        assert_eq!(found.unwrap(), record("k", 5));
        assert_eq!(read, [Own, Overflow, Own]);
        // Nowhere, and still not under the name: not stored.
        let (found, _) = find_in(vec![(Own, Ok(None)), (Overflow, Ok(None)), (Own, Ok(None))]);
        assert_eq!(found.unwrap(), None);
        // Another key's record is never taken for this one's, wherever it lies.
        let (found, _) = find_in(vec![
            (Own, Ok(record("other", 1))),
            (Overflow, Ok(record("other", 2))),
            (Own, Ok(record("other", 3))),
        ]);
        assert_eq!(found.unwrap(), None);
    }

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
