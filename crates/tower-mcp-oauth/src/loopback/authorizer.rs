//! [`LoopbackReceiver`] as an [`Authorizer`]: announce the URL, open the browser, wait for the
//! callback.

use mcp_oauth_flow::{
    authorization::{AuthorizationRequest, AuthorizationResponse},
    Error, ErrorKind,
};
use tracing::debug;
use url::Url;

use super::browser::open_browser;
use super::receiver::LoopbackReceiver;
use crate::authorize::Authorizer;
use crate::client::HttpClient;
use crate::BoxFuture;

impl Authorizer for LoopbackReceiver {
    /// Waits for the callback of `request` on this receiver. The layer checks `state` (again)
    /// and `iss` on what comes back; the receiver never sends anything through `client`.
    ///
    /// Dropping the future (the flow was cancelled) stops waiting: a later callback for this
    /// request gets the "no sign-in in progress" page. The listener itself stays bound.
    fn authorize(
        &self,
        request: AuthorizationRequest,
        _client: HttpClient,
    ) -> BoxFuture<'static, Result<AuthorizationResponse, Error>> {
        let receiver = self.clone();
        Box::pin(async move { receiver.receive(request).await })
    }
}

impl LoopbackReceiver {
    async fn receive(&self, request: AuthorizationRequest) -> Result<AuthorizationResponse, Error> {
        let inner = &self.inner;
        if !same_uri(request.redirect_uri(), &inner.redirect_uri) {
            // The browser would be sent somewhere this receiver never hears of; fail now rather
            // than at the timeout.
            return Err(Error::new(
                ErrorKind::InvalidRedirectUri,
                format!(
                    "the authorization request redirects to {} but the loopback receiver listens \
                     at {}; build the ClientConfig from LoopbackReceiver::redirect_uri()",
                    request.redirect_uri(),
                    inner.redirect_uri
                ),
            ));
        }
        // Registered before the URL goes out, so even an instant callback finds its flow.
        let (registration, callback) = inner
            .waiters
            .register(request.state().secret(), request.issuer());
        (inner.sink)(request.url());
        if inner.open_browser {
            if let Err(e) = open_browser(request.url()) {
                // The URL has been handed out; the user can open it by hand.
                debug!(error = %e, "could not open a browser");
            }
        }
        let outcome = tokio::time::timeout(inner.timeout, callback).await;
        drop(registration);
        match outcome {
            // The callback, or the error of a callback that ended this sign-in.
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(Error::new(
                ErrorKind::Consent,
                "the loopback receiver stopped before the authorization response arrived",
            )),
            Err(_) => Err(Error::new(
                ErrorKind::ConsentTimeout,
                format!(
                    "no authorization response reached {} within {} s",
                    inner.redirect_uri,
                    inner.timeout.as_secs_f32()
                ),
            )),
        }
    }
}

/// Whether two redirect URIs name the same place (compared as parsed URLs, so `localhost` and
/// `LOCALHOST`, or an explicit `:80`, do not matter).
fn same_uri(a: &str, b: &str) -> bool {
    match (Url::parse(a), Url::parse(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
