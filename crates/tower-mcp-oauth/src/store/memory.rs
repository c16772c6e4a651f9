//! [`MemoryStore`]: the default, in-process store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::lock::Mutex as AsyncMutex;
use mcp_oauth_flow::{client::ClientRegistration, token::TokenSet, Error};

use super::{matches, ready, LastFlow, Replaced, StoreLock, TokenStore};
use crate::BoxFuture;

/// The most status records ([`LastFlow`]) a [`MemoryStore`] keeps; past it, a new server's
/// takes the place of the oldest.
const MAX_LAST_FLOWS: usize = 16_384;

/// The in-memory [`TokenStore`], the default. Everything is lost when the process ends.
///
/// Its [`lock`](TokenStore::lock) is real, so several layers sharing one `Arc<MemoryStore>`
/// refresh each token once.
///
/// ```
/// use futures_util::FutureExt;
/// use tower_mcp_oauth::{MemoryStore, TokenSet, TokenStore, TokenType};
/// # tokio_test::block_on(async {
/// let store = MemoryStore::new();
/// let resource = "https://mcp.example.com/mcp";
/// assert!(store.load_tokens(resource).await.unwrap().is_none());
/// let tokens = TokenSet::new("at", TokenType::Bearer, "https://as.example.com", "client");
/// store.save_tokens(resource, &tokens).await.unwrap();
/// assert_eq!(store.load_tokens(resource).await.unwrap().unwrap().access_token().secret(), "at");
///
/// // The refresh lock is held until released: a second taker waits.
/// let lock = store.lock(resource).await.unwrap();
/// assert!(store.lock(resource).now_or_never().is_none());
/// lock.release().await;
/// assert!(store.lock(resource).now_or_never().is_some());
/// # });
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    tokens: Mutex<HashMap<String, TokenSet>>,
    clients: Mutex<HashMap<String, ClientRegistration>>,
    locks: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
    last_flows: Mutex<HashMap<String, LastFlow>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned map is still a consistent map: every mutation is a single insert or remove.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TokenStore for MemoryStore {
    fn load_tokens<'a>(
        &'a self,
        resource: &'a str,
    ) -> BoxFuture<'a, Result<Option<TokenSet>, Error>> {
        ready(Ok(lock(&self.tokens).get(resource).cloned()))
    }

    fn save_tokens<'a>(
        &'a self,
        resource: &'a str,
        tokens: &'a TokenSet,
    ) -> BoxFuture<'a, Result<(), Error>> {
        lock(&self.tokens).insert(resource.to_owned(), tokens.clone());
        ready(Ok(()))
    }

    fn compare_and_swap_tokens<'a>(
        &'a self,
        resource: &'a str,
        current: Option<&'a TokenSet>,
        new: Option<&'a TokenSet>,
    ) -> BoxFuture<'a, Result<Replaced, Error>> {
        let mut map = lock(&self.tokens);
        if !matches(map.get(resource), current) {
            return ready(Ok(Replaced::Conflict(
                map.get(resource).cloned().map(Box::new),
            )));
        }
        match new {
            Some(tokens) => map.insert(resource.to_owned(), tokens.clone()),
            None => map.remove(resource),
        };
        ready(Ok(Replaced::Swapped))
    }

    fn load_client<'a>(
        &'a self,
        issuer: &'a str,
    ) -> BoxFuture<'a, Result<Option<ClientRegistration>, Error>> {
        ready(Ok(lock(&self.clients).get(issuer).cloned()))
    }

    fn save_client<'a>(
        &'a self,
        registration: &'a ClientRegistration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        lock(&self.clients).insert(registration.issuer.clone(), registration.clone());
        ready(Ok(()))
    }

    fn remove_client<'a>(&'a self, issuer: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        lock(&self.clients).remove(issuer);
        ready(Ok(()))
    }

    fn remove_refused_client<'a>(
        &'a self,
        issuer: &'a str,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let mut clients = lock(&self.clients);
        if clients
            .get(issuer)
            .is_some_and(|r| r.client_id == client_id)
        {
            clients.remove(issuer);
        }
        ready(Ok(()))
    }

    fn lock<'a>(&'a self, resource: &'a str) -> BoxFuture<'a, Result<StoreLock, Error>> {
        let mutex = Arc::clone(lock(&self.locks).entry(resource.to_owned()).or_default());
        Box::pin(async move { Ok(StoreLock::new(mutex.lock_owned().await)) })
    }

    fn save_last_flow<'a>(
        &'a self,
        server: &'a str,
        record: &'a LastFlow,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let mut records = lock(&self.last_flows);
        LastFlow::keep_bounded(&mut records, server, record.clone(), MAX_LAST_FLOWS);
        ready(Ok(()))
    }

    fn load_last_flow<'a>(
        &'a self,
        server: &'a str,
    ) -> BoxFuture<'a, Result<Option<LastFlow>, Error>> {
        ready(Ok(lock(&self.last_flows).get(server).cloned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_client_is_removed_only_while_it_is_the_one_stored() {
        crate::store::contract::removes_only_the_refused_client(&MemoryStore::new()).await;
    }
}
