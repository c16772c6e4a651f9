//! [`UserTokenStore`]: one user's view of a store shared by every user of a web app.

use std::sync::Arc;

use mcp_oauth_flow::{client::ClientRegistration, token::TokenSet, Error};

use crate::store::{LastFlow, Replaced, StoreLock, TokenStore};
use crate::BoxFuture;

/// One user's view of a [`TokenStore`] shared by every user of a web app.
///
/// Tokens are per (user, protected resource): every token key, and every refresh lock, is
/// prefixed by the user, so one user's calls never see, refresh or drop another's tokens.
/// Client registrations are the app's, not the user's: they pass through unprefixed and are
/// shared, so the app registers once per authorization server, not once per user.
///
/// The prefix is `user:<byte length of the id>:<id>|`. The length makes the mapping from
/// (user, resource) to key one-to-one whatever characters a user id holds: without it, the
/// user `a|b` and the user `a` could meet on the same key.
///
/// ```
/// use std::sync::Arc;
/// use tower_mcp_oauth::web::UserTokenStore;
/// use tower_mcp_oauth::{MemoryStore, TokenSet, TokenStore, TokenType};
/// # tokio_test::block_on(async {
/// let shared: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
/// let alice = UserTokenStore::new("alice", Arc::clone(&shared));
/// let bob = UserTokenStore::new("bob", Arc::clone(&shared));
/// let tokens = TokenSet::new("at", TokenType::Bearer, "https://as.example.com", "app");
/// alice.save_tokens("https://mcp.example.com/mcp", &tokens).await.unwrap();
/// assert!(alice.load_tokens("https://mcp.example.com/mcp").await.unwrap().is_some());
/// assert!(bob.load_tokens("https://mcp.example.com/mcp").await.unwrap().is_none());
/// # });
/// ```
#[derive(Clone)]
pub struct UserTokenStore {
    prefix: String,
    inner: Arc<dyn TokenStore>,
}

impl std::fmt::Debug for UserTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserTokenStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl UserTokenStore {
    /// `user`'s view of `inner`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tower_mcp_oauth::web::UserTokenStore;
    /// use tower_mcp_oauth::MemoryStore;
    /// let store = UserTokenStore::new("alice", Arc::new(MemoryStore::new()));
    /// assert_eq!(store.key("https://mcp.example.com/mcp"), "user:5:alice|https://mcp.example.com/mcp");
    /// ```
    pub fn new(user: &str, inner: Arc<dyn TokenStore>) -> Self {
        Self {
            prefix: format!("user:{}:{user}|", user.len()),
            inner,
        }
    }

    /// The key under which the shared store keeps this user's tokens for `resource`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tower_mcp_oauth::web::UserTokenStore;
    /// use tower_mcp_oauth::MemoryStore;
    /// let shared = Arc::new(MemoryStore::new());
    /// let a = UserTokenStore::new("a|https://x", shared.clone());
    /// let b = UserTokenStore::new("a", shared);
    /// assert_ne!(a.key("/"), b.key("https://x/"));
    /// ```
    pub fn key(&self, resource: &str) -> String {
        format!("{}{resource}", self.prefix)
    }
}

impl TokenStore for UserTokenStore {
    fn load_tokens<'a>(
        &'a self,
        resource: &'a str,
    ) -> BoxFuture<'a, Result<Option<TokenSet>, Error>> {
        Box::pin(async move { self.inner.load_tokens(&self.key(resource)).await })
    }

    fn save_tokens<'a>(
        &'a self,
        resource: &'a str,
        tokens: &'a TokenSet,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move { self.inner.save_tokens(&self.key(resource), tokens).await })
    }

    fn compare_and_swap_tokens<'a>(
        &'a self,
        resource: &'a str,
        current: Option<&'a TokenSet>,
        new: Option<&'a TokenSet>,
    ) -> BoxFuture<'a, Result<Replaced, Error>> {
        Box::pin(async move {
            self.inner
                .compare_and_swap_tokens(&self.key(resource), current, new)
                .await
        })
    }

    fn load_client<'a>(
        &'a self,
        issuer: &'a str,
    ) -> BoxFuture<'a, Result<Option<ClientRegistration>, Error>> {
        self.inner.load_client(issuer)
    }

    fn save_client<'a>(
        &'a self,
        registration: &'a ClientRegistration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.save_client(registration)
    }

    fn remove_client<'a>(&'a self, issuer: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.remove_client(issuer)
    }

    // Users share registrations: one user's refused client must not drop the one another
    // user registered since.
    fn remove_refused_client<'a>(
        &'a self,
        issuer: &'a str,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.remove_refused_client(issuer, client_id)
    }

    fn lock<'a>(&'a self, resource: &'a str) -> BoxFuture<'a, Result<StoreLock, Error>> {
        // Per user as well: two users refreshing their own tokens for one resource never wait
        // on each other.
        Box::pin(async move { self.inner.lock(&self.key(resource)).await })
    }

    // Per user like tokens: one user's failed login never shows on another's status.
    fn save_last_flow<'a>(
        &'a self,
        server: &'a str,
        record: &'a LastFlow,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move { self.inner.save_last_flow(&self.key(server), record).await })
    }

    fn load_last_flow<'a>(
        &'a self,
        server: &'a str,
    ) -> BoxFuture<'a, Result<Option<LastFlow>, Error>> {
        Box::pin(async move { self.inner.load_last_flow(&self.key(server)).await })
    }
}
