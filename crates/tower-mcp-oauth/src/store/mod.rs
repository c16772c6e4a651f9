//! Where tokens and client registrations are kept: the [`TokenStore`] trait and its built-in
//! implementations.

#[cfg(test)]
pub(crate) mod contract;
mod disk;
mod file;
mod file_lock;
mod file_safety;
mod last_flow;
pub(crate) mod memory;
pub(crate) mod sealing;

pub use file::FileStore;
pub use last_flow::{LastError, LastFlow};
pub use memory::MemoryStore;
pub use sealing::SealingKey;

use mcp_oauth_flow::{client::ClientRegistration, token::TokenSet, Error};

use crate::BoxFuture;

/// The outcome of [`TokenStore::compare_and_swap_tokens`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Replaced {
    /// The store held the expected tokens and now holds the new ones.
    Swapped,
    /// Someone else changed the tokens first; here is what the store holds now. The caller
    /// adopts these instead of its own (never overwriting a winner's rotated refresh token).
    Conflict(Option<Box<TokenSet>>),
}

type Release = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// A held store lock. [`release`](Self::release) gives it back and waits until that is done;
/// dropping it releases it as well as a synchronous `Drop` can (a store whose release needs a
/// round trip spawns it, or lets the lease expire).
///
/// The layer always calls `release` when it is done, so a process that exits right after a
/// refresh does not leave other processes waiting out a lease.
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use tower_mcp_oauth::StoreLock;
/// # tokio_test::block_on(async {
/// let released = Arc::new(AtomicBool::new(false));
/// let flag = released.clone();
/// let lock = StoreLock::with_release(move || Box::pin(async move { flag.store(true, Ordering::SeqCst) }));
/// lock.release().await;
/// assert!(released.load(Ordering::SeqCst));
/// # });
/// ```
#[must_use = "the lock is released when this is dropped"]
pub struct StoreLock {
    guard: Option<Box<dyn Send>>,
    release: Option<Release>,
}

impl StoreLock {
    /// A lock that guards nothing (for stores only one process uses).
    ///
    /// ```
    /// use tower_mcp_oauth::StoreLock;
    /// # tokio_test::block_on(async {
    /// let lock = StoreLock::none();
    /// assert_eq!(format!("{lock:?}"), "StoreLock { .. }");
    /// lock.release().await; // nothing to give back, so it returns at once
    /// # });
    /// ```
    pub fn none() -> Self {
        Self {
            guard: None,
            release: None,
        }
    }

    /// A lock released when `guard` is dropped.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use tower_mcp_oauth::StoreLock;
    /// # tokio_test::block_on(async {
    /// let mutex = Arc::new(Mutex::new(()));
    /// // An owned guard: here a clone of the Arc, dropped with the lock.
    /// let lock = StoreLock::new(Arc::clone(&mutex));
    /// assert_eq!(Arc::strong_count(&mutex), 2);
    /// lock.release().await;
    /// assert_eq!(Arc::strong_count(&mutex), 1);
    /// # });
    /// ```
    pub fn new(guard: impl Send + 'static) -> Self {
        Self {
            guard: Some(Box::new(guard)),
            release: None,
        }
    }

    /// A lock released by running `release` (for leases whose release is a round trip). If
    /// the lock is dropped instead, `release` is dropped unrun: whatever it owns must then
    /// release on its own `Drop` (or expire).
    pub fn with_release(release: impl FnOnce() -> BoxFuture<'static, ()> + Send + 'static) -> Self {
        Self {
            guard: None,
            release: Some(Box::new(release)),
        }
    }

    /// Releases the lock and waits until it is released.
    pub async fn release(mut self) {
        if let Some(release) = self.release.take() {
            release().await;
        }
        self.guard.take();
    }
}

impl std::fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreLock").finish_non_exhaustive()
    }
}

/// Keeps tokens per protected resource and client registrations per issuer.
///
/// Tokens are keyed by the protected resource (the metadata's `resource`, or a 2025-03-26
/// server's origin). Registrations are keyed by the issuer that made them, because a client
/// identifier means nothing at another server (SEP-2352).
///
/// Rotating refresh tokens make the store a point of coordination: two refreshers that both
/// send the same refresh token can get the whole grant revoked (reuse detection). The layer
/// therefore refreshes under [`lock`](Self::lock), re-reads the store first (adopting tokens
/// another process already refreshed), and writes with
/// [`compare_and_swap_tokens`](Self::compare_and_swap_tokens), so a store shared by several
/// processes sees each refresh token used once.
///
/// The methods return boxed futures so the trait is object safe (`Arc<dyn TokenStore>`).
///
/// ```
/// use tower_mcp_oauth::{MemoryStore, Replaced, TokenStore};
/// use mcp_oauth_flow::token::{TokenSet, TokenType};
/// # tokio_test::block_on(async {
/// let store = MemoryStore::new();
/// let first = TokenSet::new("at-1", TokenType::Bearer, "https://as.example.com", "client");
/// store.save_tokens("https://mcp.example.com/mcp", &first).await.unwrap();
/// let second = TokenSet::new("at-2", TokenType::Bearer, "https://as.example.com", "client");
/// // Replaces only what this caller started from.
/// let outcome = store.compare_and_swap_tokens("https://mcp.example.com/mcp", Some(&first), Some(&second)).await.unwrap();
/// assert!(matches!(outcome, Replaced::Swapped));
/// let stale = store.compare_and_swap_tokens("https://mcp.example.com/mcp", Some(&first), None).await.unwrap();
/// assert!(matches!(stale, Replaced::Conflict(Some(t)) if t.access_token().secret() == "at-2"));
/// # });
/// ```
pub trait TokenStore: Send + Sync + 'static {
    /// The tokens stored for `resource`.
    fn load_tokens<'a>(
        &'a self,
        resource: &'a str,
    ) -> BoxFuture<'a, Result<Option<TokenSet>, Error>>;

    /// Stores the tokens for `resource`, replacing any, unconditionally.
    fn save_tokens<'a>(
        &'a self,
        resource: &'a str,
        tokens: &'a TokenSet,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// Replaces the tokens of `resource` with `new` (`None` removes them) only if the store
    /// still holds `current` (compared with [`TokenSet::same_tokens`]; `None`: nothing stored).
    fn compare_and_swap_tokens<'a>(
        &'a self,
        resource: &'a str,
        current: Option<&'a TokenSet>,
        new: Option<&'a TokenSet>,
    ) -> BoxFuture<'a, Result<Replaced, Error>>;

    /// The registration stored for `issuer`.
    fn load_client<'a>(
        &'a self,
        issuer: &'a str,
    ) -> BoxFuture<'a, Result<Option<ClientRegistration>, Error>>;

    /// Stores a registration under its issuer.
    fn save_client<'a>(
        &'a self,
        registration: &'a ClientRegistration,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// Forgets the registration of `issuer`, whatever it is.
    fn remove_client<'a>(&'a self, issuer: &'a str) -> BoxFuture<'a, Result<(), Error>>;

    /// Forgets the registration of `issuer` only if it is still the client `client_id`, which
    /// the authorization server refused (`invalid_client`, RFC 6749 §5.2): another user or
    /// process sharing the store may have registered anew since, and that registration is
    /// kept. The layer calls this, never [`remove_client`](Self::remove_client).
    ///
    /// The default reads, compares and removes, and another process can write in between;
    /// [`MemoryStore`](crate::MemoryStore), [`FileStore`](crate::FileStore) and the Redis store
    /// do it atomically, and a shared store of your own should too.
    ///
    /// ```
    /// use tower_mcp_oauth::{ClientRegistration, MemoryStore, TokenStore};
    /// # tokio_test::block_on(async {
    /// let store = MemoryStore::new();
    /// let registration = |client_id: &str| ClientRegistration {
    ///     issuer: "https://as.example.com".into(),
    ///     client_id: client_id.into(),
    ///     client_secret: None,
    ///     client_secret_expires_at: None,
    ///     token_endpoint_auth_method: Some("none".into()),
    ///     redirect_uris: vec![],
    ///     grant_types: Vec::new(),
    /// };
    /// // Another process registered again after this one's client was refused.
    /// store.save_client(&registration("new")).await.unwrap();
    /// store.remove_refused_client("https://as.example.com", "old").await.unwrap();
    /// let kept = store.load_client("https://as.example.com").await.unwrap().unwrap();
    /// assert_eq!(kept.client_id, "new");
    /// store.remove_refused_client("https://as.example.com", "new").await.unwrap();
    /// assert!(store.load_client("https://as.example.com").await.unwrap().is_none());
    /// # });
    /// ```
    fn remove_refused_client<'a>(
        &'a self,
        issuer: &'a str,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            match self.load_client(issuer).await? {
                Some(stored) if stored.client_id == client_id => self.remove_client(issuer).await,
                _ => Ok(()),
            }
        })
    }

    /// Takes the refresh lock of `resource`, waiting while another holder (a task, or another
    /// process for shared stores) has it. The default guards nothing.
    fn lock<'a>(&'a self, resource: &'a str) -> BoxFuture<'a, Result<StoreLock, Error>> {
        let _ = resource;
        Box::pin(std::future::ready(Ok(StoreLock::none())))
    }

    /// Keeps how the last authorization flow for the MCP server `server` ended (its URL
    /// without query, as [`OAuthLayer::status`](crate::OAuthLayer::status) is asked for it),
    /// so that a status page in another process, or in the next run, shows it. The record
    /// holds no secret. The default keeps nothing: the layer then remembers it in memory only.
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use tower_mcp_oauth::{ErrorKind, LastError, LastFlow, MemoryStore, TokenStore};
    /// # tokio_test::block_on(async {
    /// let store = MemoryStore::new();
    /// let failed = LastFlow::Failed(LastError::new(ErrorKind::Timeout, "no answer", SystemTime::now()));
    /// store.save_last_flow("https://mcp.example.com/a", &failed).await.unwrap();
    /// assert_eq!(store.load_last_flow("https://mcp.example.com/a").await.unwrap(), Some(failed));
    /// // Per server: another on the same origin has its own.
    /// assert!(store.load_last_flow("https://mcp.example.com/b").await.unwrap().is_none());
    /// # });
    /// ```
    fn save_last_flow<'a>(
        &'a self,
        server: &'a str,
        record: &'a LastFlow,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let _ = (server, record);
        Box::pin(std::future::ready(Ok(())))
    }

    /// The record [`save_last_flow`](Self::save_last_flow) kept for `server`. The default
    /// has none.
    fn load_last_flow<'a>(
        &'a self,
        server: &'a str,
    ) -> BoxFuture<'a, Result<Option<LastFlow>, Error>> {
        let _ = server;
        Box::pin(std::future::ready(Ok(None)))
    }
}

#[allow(dead_code)]
fn _object_safe(_: &dyn TokenStore) {}

/// A shared store is a store: hand an `Arc<FileStore>`, or an `Arc<dyn TokenStore>` that
/// several layers (or a layer and the application) use, wherever a store is taken.
///
/// ```
/// use std::sync::Arc;
/// use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, MemoryStore, OAuthLayer, TokenStore};
/// use mcp_oauth_flow::token::{TokenSet, TokenType};
/// # tokio_test::block_on(async {
/// let shared: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
/// let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:1/cb"), HeadlessAuthorizer::new())
///     .token_store(Arc::clone(&shared));
/// # let _ = layer;
/// // What one holder writes, the other reads.
/// let tokens = TokenSet::new("at", TokenType::Bearer, "https://as.example.com", "client");
/// Arc::clone(&shared).save_tokens("https://mcp.example.com/mcp", &tokens).await.unwrap();
/// assert!(shared.load_tokens("https://mcp.example.com/mcp").await.unwrap().is_some());
/// # });
/// ```
impl<T: TokenStore + ?Sized> TokenStore for std::sync::Arc<T> {
    fn load_tokens<'a>(
        &'a self,
        resource: &'a str,
    ) -> BoxFuture<'a, Result<Option<TokenSet>, Error>> {
        (**self).load_tokens(resource)
    }

    fn save_tokens<'a>(
        &'a self,
        resource: &'a str,
        tokens: &'a TokenSet,
    ) -> BoxFuture<'a, Result<(), Error>> {
        (**self).save_tokens(resource, tokens)
    }

    fn compare_and_swap_tokens<'a>(
        &'a self,
        resource: &'a str,
        current: Option<&'a TokenSet>,
        new: Option<&'a TokenSet>,
    ) -> BoxFuture<'a, Result<Replaced, Error>> {
        (**self).compare_and_swap_tokens(resource, current, new)
    }

    fn load_client<'a>(
        &'a self,
        issuer: &'a str,
    ) -> BoxFuture<'a, Result<Option<ClientRegistration>, Error>> {
        (**self).load_client(issuer)
    }

    fn save_client<'a>(
        &'a self,
        registration: &'a ClientRegistration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        (**self).save_client(registration)
    }

    fn remove_client<'a>(&'a self, issuer: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        (**self).remove_client(issuer)
    }

    // Forwarded too: the default is not atomic for a store that is.
    fn remove_refused_client<'a>(
        &'a self,
        issuer: &'a str,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<(), Error>> {
        (**self).remove_refused_client(issuer, client_id)
    }

    // Forwarded too: the default would take no lock at all for a store that has one.
    fn lock<'a>(&'a self, resource: &'a str) -> BoxFuture<'a, Result<StoreLock, Error>> {
        (**self).lock(resource)
    }

    fn save_last_flow<'a>(
        &'a self,
        server: &'a str,
        record: &'a LastFlow,
    ) -> BoxFuture<'a, Result<(), Error>> {
        (**self).save_last_flow(server, record)
    }

    fn load_last_flow<'a>(
        &'a self,
        server: &'a str,
    ) -> BoxFuture<'a, Result<Option<LastFlow>, Error>> {
        (**self).load_last_flow(server)
    }
}

/// A finished future, for stores whose operations complete synchronously.
pub(crate) fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

/// Compares what a store holds with what a caller expects.
pub(crate) fn matches(stored: Option<&TokenSet>, expected: Option<&TokenSet>) -> bool {
    match (stored, expected) {
        (None, None) => true,
        (Some(a), Some(b)) => a.same_tokens(b),
        _ => false,
    }
}
