//! [`FileStore`]: one JSON file per protected resource and per issuer, written atomically.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use futures_util::lock::{Mutex as AsyncMutex, OwnedMutexGuard};
use mcp_oauth_flow::{client::ClientRegistration, token::TokenSet, Error, ErrorKind};
use serde::{Deserialize, Serialize};

use super::disk::{self, Disk};
use super::memory::lock as lock_std;
use super::sealing::SealingKey;
use super::{file_lock, file_safety};
use super::{matches, LastFlow, Replaced, StoreLock, TokenStore};
use crate::BoxFuture;
use slots::file_name;
use zeroize::Zeroizing;

/// A [`TokenStore`] on disk: tokens survive restarts and are shared by every process that
/// points at the same directory.
///
/// - One JSON file per protected resource (`tokens-<name>.json`) and per issuer
///   (`client-<name>.json`), readable by the owner only (mode `0600`, directory `0700`). Each
///   file records its key; a key whose file name another key's record holds (names collide
///   only when a key was chosen to) is kept in a file of its own beside it, not over it.
/// - Nothing on disk is trusted that this user did not write: a directory owned by another
///   user or writable by group or others is refused at [`new`](Self::new), and a credential or
///   lock file that is a symbolic link or belongs to another user is refused when used
///   ([`ErrorKind::Store`], naming the path and the fix).
/// - Every write goes to a temporary file that is synced and then renamed over the old one, so
///   a crash mid-write leaves the previous file whole.
/// - Expiry is stored as an absolute time, so a token read back after a restart knows whether
///   it is still valid.
/// - [`sealed_with`](Self::sealed_with) seals every record (XChaCha20-Poly1305) under a key the
///   application keeps apart, in the OS keychain: the files are then no use to whoever copies
///   them (a synced home directory, a backup, a data-loss scanner).
/// - [`lock`](TokenStore::lock) is an advisory file lock (plus an in-process lock), so two
///   processes, or two store handles in one process, never send the same refresh token twice.
///
/// The file work (opens, reads, writes, syncs) runs on a thread of the store's own, started
/// at its first use and ended with its last handle, and the lock waits on helper threads: none
/// of it blocks an executor's thread, so a disk that stops answering (a network mount that
/// went away) is a store that does not answer, which the layer's deadlines bound, not a runtime
/// that hangs.
///
/// ```
/// use tower_mcp_oauth::{FileStore, TokenStore};
/// use mcp_oauth_flow::token::{TokenSet, TokenType};
/// # tokio_test::block_on(async {
/// let dir = std::env::temp_dir().join(format!("tower-mcp-oauth-doc-{}", std::process::id()));
/// let store = FileStore::new(&dir).unwrap();
/// let tokens = TokenSet::new("at", TokenType::Bearer, "https://as.example.com", "client");
/// store.save_tokens("https://mcp.example.com/mcp", &tokens).await.unwrap();
/// let again = FileStore::new(&dir).unwrap(); // another handle, or another process
/// assert!(again.load_tokens("https://mcp.example.com/mcp").await.unwrap().is_some());
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # });
/// ```
#[derive(Clone)]
pub struct FileStore {
    files: Arc<Files>,
    disk: Arc<Disk>,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.files.dir)
            .finish()
    }
}

mod io;
mod slots;

/// The store's directory and what it does there, synchronously: on the store's disk thread
/// ([`Disk`]), never on a caller's.
struct Files {
    dir: PathBuf,
    /// The name a key's record is written under when no other key's holds it: [`file_name`].
    /// The tests give one under which every key's name is the same.
    name: fn(&str, &str, &str) -> String,
    /// The key every record is sealed with ([`FileStore::sealed_with`]), or none: JSON.
    seal: Option<SealingKey>,
}

/// The prefixes of the three kinds of record file (see [`slots`]).
const TOKENS: &str = "tokens";
const STATUS: &str = "status";
const CLIENT: &str = "client";

/// The last flow's record for one server (`status-<name>.json`); it holds no secret, but is
/// written like the credentials (owner only, atomically).
#[derive(Serialize, Deserialize)]
struct StatusFile {
    server: String,
    last_flow: LastFlow,
}

#[derive(Serialize, Deserialize)]
struct TokensFile {
    resource: String,
    tokens: TokenSet,
}

/// A record's JSON, as the store writes it (before any seal), wiped when dropped (see
/// `sealing::record_json`).
fn record_json(record: &impl Serialize, what: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    super::sealing::record_json(record, true)
        .map_err(|e| Error::new(ErrorKind::Store, format!("cannot encode {what}: {e}")))
}

pub(super) fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    // A slow or interrupted disk may answer next time; a permission denied, a missing
    // directory or a full disk will not without someone acting, so those are not transient.
    let transient = matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::Interrupted
            | std::io::ErrorKind::WouldBlock
    );
    let error =
        Error::new(ErrorKind::Store, format!("{what} {}: {e}", path.display())).with_source(e);
    if transient {
        error.mark_transient()
    } else {
        error
    }
}

impl FileStore {
    /// A store in `dir`, created (mode `0700`) if missing. A directory that cannot be created
    /// is an [`ErrorKind::Store`] error naming it.
    ///
    /// ```
    /// use tower_mcp_oauth::{ErrorKind, FileStore};
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = FileStore::new(dir.path().join("tokens")).unwrap();
    /// assert!(store.dir().is_dir());
    ///
    /// // A path under a file cannot be a directory.
    /// let file = dir.path().join("a-file");
    /// std::fs::write(&file, b"").unwrap();
    /// let err = FileStore::new(file.join("tokens")).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Store);
    /// assert!(!err.is_transient());
    /// ```
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let dir = dir.into();
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder
            .create(&dir)
            .map_err(|e| io_error("cannot create the token store directory", &dir, e))?;
        let meta = std::fs::metadata(&dir)
            .map_err(|e| io_error("cannot inspect the token store directory", &dir, e))?;
        file_safety::check_store_dir(&dir, &meta)?;
        Ok(Self {
            files: Arc::new(Files {
                dir,
                name: file_name,
                seal: None,
            }),
            disk: Arc::default(),
        })
    }

    /// Seals every record this store writes with `key` (XChaCha20-Poly1305, see
    /// [`SealingKey`]): tokens, refresh tokens, client secrets and DPoP keys are ciphertext on
    /// disk, useless to a synced folder, a backup or a data-loss scanner without the key, which
    /// the application keeps apart (the OS keychain).
    ///
    /// Each record is bound to its kind (tokens, registration, status), and the file store
    /// checks that a record is the one of the key it is read for. Records written before the
    /// store was sealed are read as they are, and sealed when next written: tokens at their next
    /// refresh or login, a registration when the client next registers, a status at the next
    /// flow (remove the plain files, or log out and in, to seal everything at once). A sealed
    /// record that this key does not open (another key sealed it, or it was changed), or one a
    /// store without a key meets, is an [`ErrorKind::Store`] error naming the file, and no read,
    /// write, removal or compare-and-swap touches it: give the store its key, or remove the
    /// file the error names to sign in afresh. One key per directory: every process sharing it
    /// seals with the same one.
    ///
    /// ```
    /// use tower_mcp_oauth::{ErrorKind, FileStore, SealingKey, TokenStore};
    /// use mcp_oauth_flow::token::{TokenSet, TokenType};
    /// # tokio_test::block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let key = SealingKey::generate().unwrap(); // in real life: from the OS keychain
    /// let store = FileStore::new(dir.path()).unwrap().sealed_with(key.clone());
    /// let tokens = TokenSet::new("secret-access-token", TokenType::Bearer, "https://as.example.com", "client");
    /// store.save_tokens("https://mcp.example.com/mcp", &tokens).await.unwrap();
    ///
    /// // On disk, nothing of the token.
    /// for file in std::fs::read_dir(dir.path()).unwrap() {
    ///     let bytes = std::fs::read(file.unwrap().path()).unwrap();
    ///     assert!(!String::from_utf8_lossy(&bytes).contains("secret-access-token"));
    /// }
    /// // The same key reads it back; no key, or another, is refused, and loses nothing.
    /// let again = FileStore::new(dir.path()).unwrap().sealed_with(key);
    /// assert!(again.load_tokens("https://mcp.example.com/mcp").await.unwrap().is_some());
    /// let without = FileStore::new(dir.path()).unwrap();
    /// let err = without.load_tokens("https://mcp.example.com/mcp").await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Store);
    /// assert!(without.save_tokens("https://mcp.example.com/mcp", &tokens).await.is_err());
    /// assert!(again.load_tokens("https://mcp.example.com/mcp").await.unwrap().is_some());
    /// # });
    /// ```
    pub fn sealed_with(self, key: SealingKey) -> Self {
        let files = Files {
            dir: self.files.dir.clone(),
            name: self.files.name,
            seal: Some(key),
        };
        Self {
            files: Arc::new(files),
            disk: self.disk,
        }
    }

    /// The directory the store writes to.
    pub fn dir(&self) -> &Path {
        &self.files.dir
    }

    /// Runs `work` on the store's files, on its disk thread.
    async fn on_disk<T, F>(&self, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Files) -> Result<T, Error> + Send + 'static,
    {
        let files = Arc::clone(&self.files);
        self.disk.run(move || work(&files)).await
    }

    /// An exclusive lock (`kind` of `key`: "cas" of a resource's tokens, "client-cas" of an
    /// issuer's registration, "status-cas" of a server's status, "lock" the refresh lock of a
    /// resource; named as the key's record is, so keys whose names collide share it), held while the returned
    /// file is open: opened and tried on the disk thread, and if another holder has it, waited
    /// for off the executor (a holder stopped while holding it must not hang a runtime thread).
    async fn short_lock(&self, key: &str, kind: &'static str) -> Result<LockFile, Error> {
        let key = key.to_owned();
        let disk = Arc::clone(&self.disk);
        let (path, file, taken) = self
            .on_disk(move |files| {
                let (path, file, taken) = files.try_lock(&key, kind)?;
                Ok((path, LockFile::new(file, disk), taken))
            })
            .await?;
        if taken {
            return Ok(file);
        }
        file.wait_for()
            .await
            .map_err(|e| io_error("cannot lock", &path, e))
    }
}

impl Files {
    #[cfg(test)]
    fn tokens_path(&self, resource: &str) -> PathBuf {
        self.own_path(TOKENS, resource)
    }

    #[cfg(test)]
    fn status_path(&self, server: &str) -> PathBuf {
        self.own_path(STATUS, server)
    }

    #[cfg(test)]
    fn client_path(&self, issuer: &str) -> PathBuf {
        self.own_path(CLIENT, issuer)
    }

    fn load_tokens_now(&self, resource: &str) -> Result<Option<TokenSet>, Error> {
        let file: Option<TokensFile> = self.read_record(TOKENS, resource)?;
        Ok(file.map(|f| f.tokens))
    }

    fn save_tokens_now(&self, resource: &str, tokens: Option<&TokenSet>) -> Result<(), Error> {
        match tokens {
            Some(tokens) => {
                let file = TokensFile {
                    resource: resource.to_owned(),
                    tokens: tokens.clone(),
                };
                let bytes = record_json(&file, "tokens")?;
                self.write_record::<TokensFile>(TOKENS, resource, &bytes)
            }
            None => self.remove_record::<TokensFile>(TOKENS, resource),
        }
    }

    /// Opens (creating) the lock file `kind` of `key` and tries its lock once: `true` when
    /// taken.
    fn try_lock(&self, key: &str, kind: &str) -> Result<(PathBuf, File, bool), Error> {
        let (path, file) = self.lock_file(key, kind)?;
        let taken = file_lock::try_lock(&file).map_err(|e| io_error("cannot lock", &path, e))?;
        Ok((path, file, taken))
    }

    /// The path of the lock file `kind` of `key`.
    fn lock_path(&self, key: &str, kind: &str) -> PathBuf {
        self.dir.join((self.name)(TOKENS, key, kind))
    }

    /// Opens (creating) a lock file.
    fn lock_file(&self, resource: &str, kind: &str) -> Result<(PathBuf, File), Error> {
        let path = self.lock_path(resource, kind);
        file_safety::refuse_symlink(&path)?;
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options
            .open(&path)
            .map_err(|e| io_error("cannot open lock file", &path, e))?;
        Ok((path, file))
    }
}

/// An open lock file, locked or not: closed on a disk thread wherever it is dropped (a caller
/// that gave up, an answer nobody took), since closing a locked file is a call to the file
/// system (on a network mount, an unlock sent to its server) that must not hold an executor's
/// thread either. Dropped on a disk thread (work done or skipped there), it closes at once.
struct LockFile {
    file: Option<File>,
    disk: Arc<Disk>,
}

impl LockFile {
    fn new(file: File, disk: Arc<Disk>) -> Self {
        Self {
            file: Some(file),
            disk,
        }
    }

    /// Waits off the executor until the lock, which another holder had at the last try, is
    /// taken (see [`file_lock::wait_for`]).
    async fn wait_for(mut self) -> std::io::Result<Self> {
        let Some(file) = self.file.take() else {
            return Err(std::io::Error::other("the lock file was already closed"));
        };
        let file = file_lock::wait_for(file).await?;
        Ok(Self::new(file, Arc::clone(&self.disk)))
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            if disk::on_disk_thread() {
                drop(file);
            } else {
                self.disk.detach(move || drop(file));
            }
        }
    }
}

/// A refresh lock a [`FileStore`] holds: the lock file, and the in-process lock beside it.
/// Both are given back on the store's disk thread, the file first. Released and waited for
/// (`StoreLock::release`), or dropped and left to the disk thread.
struct HeldLock {
    held: Option<(LockFile, OwnedMutexGuard<()>)>,
    disk: Arc<Disk>,
}

impl HeldLock {
    async fn release(mut self) {
        if let Some((file, in_process)) = self.held.take() {
            // Given back even if this wait is cut short: the work owns both.
            let _ = self
                .disk
                .run(move || {
                    drop(file);
                    drop(in_process);
                    Ok(())
                })
                .await;
        }
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        if let Some((file, in_process)) = self.held.take() {
            self.disk.detach(move || {
                drop(file);
                drop(in_process);
            });
        }
    }
}

/// In-process locks per lock file: a file lock does not exclude another handle of the same
/// process reliably on every platform, and waiting on it would block a thread anyway.
fn process_lock(path: &Path) -> Arc<AsyncMutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<AsyncMutex<()>>>>> = OnceLock::new();
    let map = LOCKS.get_or_init(Default::default);
    Arc::clone(lock_std(map).entry(path.to_owned()).or_default())
}

impl TokenStore for FileStore {
    fn load_tokens<'a>(
        &'a self,
        resource: &'a str,
    ) -> BoxFuture<'a, Result<Option<TokenSet>, Error>> {
        let resource = resource.to_owned();
        Box::pin(self.on_disk(move |files| files.load_tokens_now(&resource)))
    }

    fn save_tokens<'a>(
        &'a self,
        resource: &'a str,
        tokens: &'a TokenSet,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            // Under the compare-and-swap's lock: a swap never writes over a save made between
            // its read and its write, and two keys whose names collide (see `slots`) never
            // both find the name free and write it. (Between processes of this build: an
            // earlier one saves without it.)
            let lock = self.short_lock(resource, "cas").await?;
            let (resource, tokens) = (resource.to_owned(), tokens.clone());
            self.on_disk(move |files| {
                let saved = files.save_tokens_now(&resource, Some(&tokens));
                drop(lock);
                saved
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
        Box::pin(async move {
            // A short exclusive lock of its own makes read-compare-write atomic across
            // processes. Held for microseconds by a live process, but one stopped while holding
            // it would hang a blocking wait: waited for off the executor (see `file_lock`).
            let lock = self.short_lock(resource, "cas").await?;
            let (resource, current, new) = (resource.to_owned(), current.cloned(), new.cloned());
            // The lock goes with the work: released when it is done, or when it is skipped
            // because this caller gave up first.
            self.on_disk(move |files| {
                let stored = files.load_tokens_now(&resource)?;
                let outcome = if matches(stored.as_ref(), current.as_ref()) {
                    files.save_tokens_now(&resource, new.as_ref())?;
                    Replaced::Swapped
                } else {
                    Replaced::Conflict(stored.map(Box::new))
                };
                drop(lock);
                Ok(outcome)
            })
            .await
        })
    }

    fn load_client<'a>(
        &'a self,
        issuer: &'a str,
    ) -> BoxFuture<'a, Result<Option<ClientRegistration>, Error>> {
        let issuer = issuer.to_owned();
        Box::pin(
            self.on_disk(move |files| files.read_record::<ClientRegistration>(CLIENT, &issuer)),
        )
    }

    fn save_client<'a>(
        &'a self,
        registration: &'a ClientRegistration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let bytes = record_json(registration, "registration")?;
            // Under the lock `remove_refused_client` takes, so that it never removes a
            // registration written after its read.
            let lock = self.short_lock(&registration.issuer, "client-cas").await?;
            let issuer = registration.issuer.clone();
            self.on_disk(move |files| {
                let written = files.write_record::<ClientRegistration>(CLIENT, &issuer, &bytes);
                drop(lock);
                written
            })
            .await
        })
    }

    fn remove_client<'a>(&'a self, issuer: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            // Only this issuer's: another issuer whose name hashes to the same file name keeps
            // its registration (under the lock `save_client` takes, so that the file it reads
            // as this issuer's is the one it removes). A file under this issuer's name that does
            // not parse, or that the store refuses to read, goes with it; a sealed one this
            // store cannot open, or one it could not read at all, stays (see `slots`).
            let lock = self.short_lock(issuer, "client-cas").await?;
            let issuer = issuer.to_owned();
            self.on_disk(move |files| {
                let removed = files.remove_record::<ClientRegistration>(CLIENT, &issuer);
                drop(lock);
                removed
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
            // Under a short lock of its own, as the tokens' compare-and-swap: another process
            // cannot register between the read and the removal.
            let lock = self.short_lock(issuer, "client-cas").await?;
            let (issuer, client_id) = (issuer.to_owned(), client_id.to_owned());
            self.on_disk(move |files| {
                let stored: Option<ClientRegistration> = files.read_record(CLIENT, &issuer)?;
                if stored.is_some_and(|r| r.client_id == client_id) {
                    files.remove_record::<ClientRegistration>(CLIENT, &issuer)?;
                }
                drop(lock);
                Ok(())
            })
            .await
        })
    }

    fn lock<'a>(&'a self, resource: &'a str) -> BoxFuture<'a, Result<StoreLock, Error>> {
        Box::pin(async move {
            // The in-process lock first (no file opened while waiting for it), then the file's,
            // which another process may hold for a whole refresh: waited for off the
            // executor, and no longer once this future is dropped.
            let in_process = process_lock(&self.files.lock_path(resource, "lock"))
                .lock_owned()
                .await;
            let file = self.short_lock(resource, "lock").await?;
            let held = HeldLock {
                held: Some((file, in_process)),
                disk: Arc::clone(&self.disk),
            };
            Ok(StoreLock::with_release(move || Box::pin(held.release())))
        })
    }

    fn save_last_flow<'a>(
        &'a self,
        server: &'a str,
        record: &'a LastFlow,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let file = StatusFile {
                server: server.to_owned(),
                last_flow: record.clone(),
            };
            let bytes = record_json(&file, "a status")?;
            // Under a short lock, which servers whose file names collide share: two never both
            // find the name free and write it (see `slots`).
            let lock = self.short_lock(server, "status-cas").await?;
            self.on_disk(move |files| {
                let written = files.write_record::<StatusFile>(STATUS, &file.server, &bytes);
                drop(lock);
                written
            })
            .await
        })
    }

    fn load_last_flow<'a>(
        &'a self,
        server: &'a str,
    ) -> BoxFuture<'a, Result<Option<LastFlow>, Error>> {
        let server = server.to_owned();
        Box::pin(self.on_disk(move |files| {
            let file: Option<StatusFile> = files.read_record(STATUS, &server)?;
            Ok(file.map(|f| f.last_flow))
        }))
    }
}

#[cfg(test)]
mod sealed_tests;
#[cfg(test)]
mod tests;
