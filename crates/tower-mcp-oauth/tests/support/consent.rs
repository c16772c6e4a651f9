//! An authorizer that holds the user at the consent page until the test lets them through, for
//! tests of what happens meanwhile (a logout, another login).

use std::sync::Arc;

use tokio::sync::Notify;
use tower_mcp_oauth::{
    AuthorizationRequest, AuthorizationResponse, Authorizer, BoxFuture, Error, HeadlessAuthorizer,
    HttpClient,
};

/// Approves like the headless authorizer, but only once the test lets it.
pub(crate) struct HeldConsent {
    /// Notified when the flow reaches the consent page.
    pub(crate) reached: Arc<Notify>,
    /// Notify to let the user through.
    pub(crate) release: Arc<Notify>,
}

impl Authorizer for HeldConsent {
    fn authorize(
        &self,
        request: AuthorizationRequest,
        client: HttpClient,
    ) -> BoxFuture<'static, Result<AuthorizationResponse, Error>> {
        let (reached, release) = (Arc::clone(&self.reached), Arc::clone(&self.release));
        Box::pin(async move {
            reached.notify_one();
            release.notified().await;
            HeadlessAuthorizer::new().authorize(request, client).await
        })
    }
}
