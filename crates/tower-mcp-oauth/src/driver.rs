//! Runs a [`Flow`] to completion: sub-requests through the inner service, the consent step
//! through the [`Authorizer`](crate::Authorizer), registrations through the store.

use std::sync::Arc;
use std::time::SystemTime;

use mcp_oauth_flow::{
    Action, ClientConfig, Error, ErrorKind, Flow, FlowOutcome, FlowSecrets, FlowStart,
};
use tracing::{debug, warn};

use crate::authorize::Authorizer;
use crate::client::InnerClient;
use crate::store::TokenStore;

/// Everything a flow needs that lives in the layer.
pub(crate) struct FlowDeps {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) authorizer: Arc<dyn Authorizer>,
    pub(crate) store: Arc<dyn TokenStore>,
}

fn random_secrets() -> Result<FlowSecrets, Error> {
    let mut state = [0u8; 32];
    let mut verifier = [0u8; 32];
    getrandom::getrandom(&mut state)
        .and_then(|()| getrandom::getrandom(&mut verifier))
        .map_err(|e| {
            Error::new(
                ErrorKind::Transport,
                format!("no randomness available: {e}"),
            )
        })?;
    Ok(FlowSecrets::from_entropy(state, verifier))
}

/// Drives one flow. Nothing stored is removed here, whatever happens: a failed flow leaves the
/// store as it found it, plus any registration it made.
pub(crate) async fn run(
    deps: &FlowDeps,
    client: InnerClient,
    start: FlowStart,
) -> Result<FlowOutcome, Error> {
    let mut flow = Flow::new(Arc::clone(&deps.config), start, random_secrets()?);
    loop {
        let Some(action) = flow.poll_action() else {
            return Err(Error::new(
                ErrorKind::InvalidTransition,
                "the flow stalled without an action",
            ));
        };
        match action {
            Action::Send(sub) => {
                debug!(purpose = %sub.purpose, method = %sub.request.method(), url = %sub.request.uri(), "oauth sub-request");
                match client.send(sub.request).await {
                    Ok(response) => {
                        debug!(status = response.status().as_u16(), "oauth sub-response");
                        flow.handle_response(response, SystemTime::now());
                    }
                    Err(e) => flow.fail(e),
                }
            }
            Action::LoadClient { issuer } => match deps.store.load_client(&issuer).await {
                Ok(stored) => flow.handle_stored_client(stored),
                Err(e) => flow.fail(e),
            },
            Action::SaveClient(registration) => {
                debug!(issuer = %registration.issuer, client_id = %registration.client_id, "registered client");
                if let Err(e) = deps.store.save_client(&registration).await {
                    // The flow can go on with the registration in hand; only its reuse is lost.
                    warn!(error = %e, "could not store the client registration");
                }
            }
            Action::Authorize(request) => {
                debug!(?request, "requesting consent");
                match deps.authorizer.authorize(request, client.clone()).await {
                    Ok(response) => flow.handle_authorization_response(response),
                    Err(e) => flow.fail(e),
                }
            }
            Action::Complete(outcome) => {
                debug!(resource = %outcome.protected_resource, issuer = outcome.tokens.issuer(), "authorization complete");
                return Ok(*outcome);
            }
            Action::Failed(error) => {
                debug!(error = %error, "authorization failed");
                return Err(error);
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidTransition,
                    "unknown flow action",
                ))
            }
        }
    }
}
