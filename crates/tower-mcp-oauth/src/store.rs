//! Where tokens and client registrations are kept.

use std::collections::HashMap;
use std::sync::Mutex;

use mcp_oauth_flow::{ClientRegistration, Error, TokenSet};

use crate::BoxFuture;

/// Keeps tokens per protected resource and client registrations per issuer.
///
/// Tokens are keyed by the protected resource (the metadata's `resource`, or a 2025-03-26
/// server's origin). Registrations are keyed by the issuer that made them, because a client
/// identifier means nothing at another server (SEP-2352): a resource that moves to a new
/// authorization server gets a new registration there, and the old one is never sent to it.
///
/// The methods return boxed futures so the trait is object safe (`Arc<dyn TokenStore>`).
///
/// ```
/// use tower_mcp_oauth::{MemoryStore, TokenStore};
/// use mcp_oauth_flow::{TokenSet, TokenType};
/// # tokio_test::block_on(async {
/// let store = MemoryStore::new();
/// let tokens = TokenSet::new("at", TokenType::Bearer, "https://as.example.com", "client");
/// store.save_tokens("https://mcp.example.com/mcp", &tokens).await.unwrap();
/// let back = store.load_tokens("https://mcp.example.com/mcp").await.unwrap().unwrap();
/// assert_eq!(back.access_token().secret(), "at");
/// # });
/// ```
pub trait TokenStore: Send + Sync + 'static {
    /// The tokens stored for `resource`.
    fn load_tokens<'a>(
        &'a self,
        resource: &'a str,
    ) -> BoxFuture<'a, Result<Option<TokenSet>, Error>>;
    /// Stores the tokens for `resource`, replacing any.
    fn save_tokens<'a>(
        &'a self,
        resource: &'a str,
        tokens: &'a TokenSet,
    ) -> BoxFuture<'a, Result<(), Error>>;
    /// Forgets the tokens for `resource`.
    fn remove_tokens<'a>(&'a self, resource: &'a str) -> BoxFuture<'a, Result<(), Error>>;
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
}

#[allow(dead_code)]
fn _object_safe(_: &dyn TokenStore) {}

/// The in-memory [`TokenStore`], the default. Everything is lost when the process ends.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tokens: Mutex<HashMap<String, TokenSet>>,
    clients: Mutex<HashMap<String, ClientRegistration>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TokenStore for MemoryStore {
    fn load_tokens<'a>(
        &'a self,
        resource: &'a str,
    ) -> BoxFuture<'a, Result<Option<TokenSet>, Error>> {
        let found = lock(&self.tokens).get(resource).cloned();
        Box::pin(std::future::ready(Ok(found)))
    }

    fn save_tokens<'a>(
        &'a self,
        resource: &'a str,
        tokens: &'a TokenSet,
    ) -> BoxFuture<'a, Result<(), Error>> {
        lock(&self.tokens).insert(resource.to_owned(), tokens.clone());
        Box::pin(std::future::ready(Ok(())))
    }

    fn remove_tokens<'a>(&'a self, resource: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        lock(&self.tokens).remove(resource);
        Box::pin(std::future::ready(Ok(())))
    }

    fn load_client<'a>(
        &'a self,
        issuer: &'a str,
    ) -> BoxFuture<'a, Result<Option<ClientRegistration>, Error>> {
        let found = lock(&self.clients).get(issuer).cloned();
        Box::pin(std::future::ready(Ok(found)))
    }

    fn save_client<'a>(
        &'a self,
        registration: &'a ClientRegistration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        lock(&self.clients).insert(registration.issuer.clone(), registration.clone());
        Box::pin(std::future::ready(Ok(())))
    }
}
