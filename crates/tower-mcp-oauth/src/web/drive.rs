//! Runs a [`Flow`] for the web API until it needs the user (the consent step) or finishes.
//!
//! The layer's driver (`crate::driver`) runs a flow in one go, consent included; a web login is
//! cut at the consent step instead, so the flow can wait for the callback in another request.
//! Sub-requests and stored registrations are handled by the same code as there
//! (`driver::next_decision`).

use std::sync::Arc;

use mcp_oauth_flow::{
    authorization::AuthorizationRequest, Action, ClientConfig, Error, ErrorKind, Flow, FlowOutcome,
    FlowStart,
};
use tracing::debug;

use crate::client::HttpClient;
use crate::clock::Clock;
use crate::dpop::DpopState;
use crate::driver::next_decision;
use crate::store::TokenStore;

/// Where a drive stopped.
pub(super) enum Step {
    /// The flow waits for the user's consent.
    Authorize(AuthorizationRequest),
    /// The flow produced tokens.
    Complete(Box<FlowOutcome>),
}

/// What a drive needs besides the flow.
pub(super) struct Io<'a> {
    pub(super) client: &'a HttpClient,
    /// The app's store: registrations are per issuer and shared by every user.
    pub(super) store: &'a dyn TokenStore,
    pub(super) clock: &'a Clock,
    /// The login's DPoP key and nonces (RFC 9449).
    pub(super) dpop: &'a DpopState,
}

/// A new flow for `start` at `now`, with fresh `state` and PKCE verifier.
pub(super) fn new_flow(
    config: &Arc<ClientConfig>,
    start: FlowStart,
    now: std::time::SystemTime,
) -> Result<Flow, Error> {
    Ok(Flow::new(
        Arc::clone(config),
        start,
        crate::driver::random_secrets()?,
        now,
    ))
}

/// Performs the flow's actions until it asks for consent, completes, or fails.
pub(super) async fn drive(flow: &mut Flow, io: &Io<'_>) -> Result<Step, Error> {
    loop {
        match next_decision(flow, io.client, io.store, io.clock, io.dpop).await? {
            Action::DropTokens => {
                // A web login starts from no tokens, so there is nothing to drop; the flow goes
                // on to a new authorization either way.
                debug!("the flow dropped held tokens; a web login holds none");
            }
            // `AuthorizationRequest`'s Debug shows the endpoint only, never the `state`.
            Action::Authorize(request) => {
                debug!(?request, "login waits for the user's consent");
                return Ok(Step::Authorize(request));
            }
            Action::Complete(outcome) => return Ok(Step::Complete(outcome)),
            Action::Failed(error) => {
                debug!(error = %error, "web login failed");
                return Err(error);
            }
            // A web login is a user at a browser; a config with an assertion grant belongs on
            // an `OAuthLayer`, which has the assertion source.
            Action::ObtainAssertion(_) => {
                return Err(Error::new(
                    ErrorKind::GrantNotSupported,
                    "WebLogin logs users in through the browser; the assertion grants (workload \
                     identity, enterprise-managed authorization) run on an OAuthLayer with an \
                     assertion source",
                ))
            }
            // The device grant (RFC 8628) shows a code and polls; a web login hands the user a
            // redirect instead, so it belongs on an `OAuthLayer` with a prompt.
            Action::ShowUserCode(_) | Action::PollAfter(_) => {
                return Err(Error::new(
                    ErrorKind::GrantNotSupported,
                    "WebLogin logs users in through the browser redirect; the device \
                     authorization grant runs on an OAuthLayer with a device-code prompt",
                ))
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
