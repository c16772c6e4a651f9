//! Checks every store of this crate must pass, run against each (memory, file, Redis) by its
//! own tests; and that the wrappers (`Arc`, a web user's view) forward the atomic removal.

use mcp_oauth_flow::client::ClientRegistration;

use super::TokenStore;

const ISSUER: &str = "https://as.example.com";

fn registration(client_id: &str) -> ClientRegistration {
    ClientRegistration {
        issuer: ISSUER.into(),
        client_id: client_id.into(),
        client_secret: None,
        client_secret_expires_at: None,
        token_endpoint_auth_method: Some("none".into()),
        redirect_uris: vec![],
        grant_types: Vec::new(),
    }
}

async fn stored_client(store: &impl TokenStore) -> Option<String> {
    let stored = store.load_client(ISSUER).await.unwrap();
    stored.map(|r| r.client_id)
}

/// `remove_refused_client` drops the registration only while it is the refused client: one
/// registered anew since (by another user or process) is kept.
pub(crate) async fn removes_only_the_refused_client(store: &impl TokenStore) {
    // Nothing stored: nothing to do, no error.
    store.remove_refused_client(ISSUER, "old").await.unwrap();
    assert_eq!(stored_client(store).await, None);
    // Registered anew since the refusal: kept.
    store.save_client(&registration("new")).await.unwrap();
    store.remove_refused_client(ISSUER, "old").await.unwrap();
    assert_eq!(stored_client(store).await.as_deref(), Some("new"));
    // Another issuer's refused client with the same id: kept.
    store
        .remove_refused_client("https://other.example.com", "new")
        .await
        .unwrap();
    assert_eq!(stored_client(store).await.as_deref(), Some("new"));
    // The refused client itself: dropped.
    store.remove_refused_client(ISSUER, "new").await.unwrap();
    assert_eq!(stored_client(store).await, None);
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use mcp_oauth_flow::token::TokenSet;
    use mcp_oauth_flow::Error;

    use super::*;
    use crate::store::Replaced;
    use crate::BoxFuture;

    /// A store with an atomic removal of its own. Nothing else may be reached: the trait's
    /// default removal (read, compare, remove) would call `load_client`.
    #[derive(Default)]
    struct OwnRemoval(Mutex<Vec<String>>);

    impl TokenStore for OwnRemoval {
        fn load_tokens<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Option<TokenSet>, Error>> {
            unreachable!("not part of a removal")
        }
        fn save_tokens<'a>(
            &'a self,
            _: &'a str,
            _: &'a TokenSet,
        ) -> BoxFuture<'a, Result<(), Error>> {
            unreachable!("not part of a removal")
        }
        fn compare_and_swap_tokens<'a>(
            &'a self,
            _: &'a str,
            _: Option<&'a TokenSet>,
            _: Option<&'a TokenSet>,
        ) -> BoxFuture<'a, Result<Replaced, Error>> {
            unreachable!("not part of a removal")
        }
        fn load_client<'a>(
            &'a self,
            _: &'a str,
        ) -> BoxFuture<'a, Result<Option<ClientRegistration>, Error>> {
            unreachable!("the default removal, not the store's own")
        }
        fn save_client<'a>(
            &'a self,
            _: &'a ClientRegistration,
        ) -> BoxFuture<'a, Result<(), Error>> {
            unreachable!("not part of a removal")
        }
        fn remove_client<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), Error>> {
            unreachable!("the default removal, not the store's own")
        }
        fn remove_refused_client<'a>(
            &'a self,
            issuer: &'a str,
            client_id: &'a str,
        ) -> BoxFuture<'a, Result<(), Error>> {
            self.0.lock().unwrap().push(format!("{issuer} {client_id}"));
            Box::pin(std::future::ready(Ok(())))
        }
    }

    #[tokio::test]
    async fn wrappers_forward_the_stores_own_removal() {
        let own = Arc::new(OwnRemoval::default());
        let shared: Arc<dyn TokenStore> = own.clone();
        shared.remove_refused_client(ISSUER, "a").await.unwrap();
        Arc::new(Arc::clone(&shared))
            .remove_refused_client(ISSUER, "b")
            .await
            .unwrap();
        #[cfg(feature = "web")]
        crate::web::UserTokenStore::new("alice", Arc::clone(&shared))
            .remove_refused_client(ISSUER, "c")
            .await
            .unwrap();
        let mut expected = vec![format!("{ISSUER} a"), format!("{ISSUER} b")];
        if cfg!(feature = "web") {
            // Registrations are shared by the users: the issuer is not made per user.
            expected.push(format!("{ISSUER} c"));
        }
        assert_eq!(*own.0.lock().unwrap(), expected);
    }
}
