//! The files of a [`FileStore`](super::FileStore) one at a time: a record read (owned by this
//! user, no symlink), written atomically (a temporary file of a name no other writer holds,
//! synced, renamed), and removed.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind as IoErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use mcp_oauth_flow::{Error, ErrorKind};

use zeroize::Zeroizing;

use super::{io_error, Files};
use crate::store::file_safety;
use crate::store::sealing::{self, Opened};

impl Files {
    /// The record of kind `kind` (its files' prefix: what a sealed record is bound to) at
    /// `path`, if there is one.
    pub(super) fn read<T: serde::de::DeserializeOwned>(
        &self,
        path: &Path,
        kind: &str,
    ) -> Result<Option<T>, Error> {
        let Some(bytes) = Self::read_bytes(path)? else {
            return Ok(None);
        };
        let bytes = self.unsealed(bytes, path, kind)?;
        // The serde error's text is left out: it may quote part of the file, which may be a
        // token; its category and position are enough to find the problem (as Redis's codec).
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::new(
                ErrorKind::Store,
                format!(
                    "{} is not a valid store file ({:?} error at line {}, column {})",
                    path.display(),
                    e.classify(),
                    e.line(),
                    e.column()
                ),
            )
        })
    }

    /// The bytes of the file at `path`, if there is one: read into a buffer of the file's size,
    /// so that no copy of a record is left behind by a buffer that grew, and wiped when dropped.
    pub(super) fn read_bytes(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
        let Some(mut file) = file_safety::open_own_file(path)? else {
            return Ok(None);
        };
        let size = file
            .metadata()
            .map(|m| usize::try_from(m.len()).unwrap_or(0))
            .unwrap_or(0);
        let mut bytes = Zeroizing::new(Vec::with_capacity(size.saturating_add(1)));
        file.read_to_end(&mut bytes)
            .map_err(|e| io_error("cannot read", path, e))?;
        Ok(Some(bytes))
    }

    /// A record's bytes as read from `path`, opened when sealed (see
    /// [`FileStore::sealed_with`](super::FileStore::sealed_with)).
    pub(super) fn unsealed(
        &self,
        bytes: Zeroizing<Vec<u8>>,
        path: &Path,
        kind: &str,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let what = path.display().to_string();
        match &self.seal {
            Some(key) => match sealing::open(key, &bytes, kind, &what)? {
                Opened::Sealed(record) => Ok(record),
                // Written before the store was sealed: read as it is, sealed when next written.
                Opened::Plain => Ok(bytes),
            },
            None if sealing::is_sealed(&bytes) => Err(Error::new(
                ErrorKind::Store,
                format!(
                    "{what} is sealed, and this store has no key to open it: give the store \
                     its key (FileStore::sealed_with)"
                ),
            )),
            None => Ok(bytes),
        }
    }

    /// `record`, of kind `kind`, as this store writes it: sealed with its key, if it has one.
    pub(super) fn to_disk<'a>(&self, record: &'a [u8], kind: &str) -> Result<Cow<'a, [u8]>, Error> {
        match &self.seal {
            Some(key) => sealing::seal(key, record, kind).map(Cow::Owned),
            None => Ok(Cow::Borrowed(record)),
        }
    }

    /// Writes `bytes` to `path` atomically: temporary file (0600), sync, rename.
    ///
    /// The temporary file's name is one no other writer holds: the process id and a counter
    /// tell this process's writes apart, and 64 random bits the processes that share an id
    /// (containers sharing the store's volume, each app process 1; an id reused after a crash
    /// left a temporary file behind). A name taken anyway is passed over for another, and a
    /// file this write did not create is never removed: it may be another writer's, about to
    /// be renamed.
    pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut attempts = 0;
        let (mut file, tmp) = loop {
            let tmp = Self::temporary_path(path);
            match options.open(&tmp) {
                Ok(file) => break (file, tmp),
                Err(e) if e.kind() == IoErrorKind::AlreadyExists && attempts < 3 => attempts += 1,
                Err(e) => return Err(io_error("cannot write", path, e)),
            }
        };
        let result = (|| {
            file.write_all(bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)?;
            // Make the rename itself durable (best effort: not every platform can sync a dir).
            if let Some(parent) = path.parent() {
                if let Ok(dir) = File::open(parent) {
                    let _ = dir.sync_all();
                }
            }
            Ok(())
        })();
        result.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_error("cannot write", path, e)
        })
    }

    /// A fresh temporary path beside `path` (see [`write_atomic`](Self::write_atomic)).
    pub(super) fn temporary_path(path: &Path) -> PathBuf {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut random = [0u8; 8];
        // Without randomness the process id and the counter still part most writers.
        let _ = getrandom::getrandom(&mut random);
        path.with_extension(format!(
            "tmp-{}-{}-{:016x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            u64::from_le_bytes(random)
        ))
    }

    pub(super) fn remove(path: &Path) -> Result<(), Error> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == IoErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("cannot remove", path, e)),
        }
    }
}
