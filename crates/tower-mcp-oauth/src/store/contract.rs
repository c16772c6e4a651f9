//! Checks every store of this crate must pass, run against each (memory, file, Redis, a web
//! user's view) by its own tests.

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
