//! Runs a [`Flow`] to completion: sub-requests through the inner service, the consent step
//! through the [`Authorizer`](crate::Authorizer), registrations and dropped tokens through the
//! store.

use std::sync::Arc;

use mcp_oauth_flow::discovery::Purpose;
use mcp_oauth_flow::token::TokenType;
use mcp_oauth_flow::{Action, Error, ErrorKind, Flow, FlowOutcome, FlowSecrets, FlowStart};
use tracing::{debug, debug_span, info_span, warn, Instrument};

use crate::client::HttpClient;
use crate::clock::Clock;
use crate::dpop::{self, DpopState};
use crate::flight::LogoutGeneration;
use crate::state::LayerState;
use crate::store::{StoreLock, TokenStore};
use crate::timer::{human, within, Deadline};

/// The result of a successful run.
pub(crate) struct Run {
    pub(crate) outcome: FlowOutcome,
    /// Whether the flow dropped the tokens it started from (a refused refresh).
    pub(crate) dropped_tokens: bool,
    /// The logouts when the flow started: its tokens are installed only if none
    /// happened since (a logout wins over a flow running meanwhile).
    pub(crate) generation: LogoutGeneration,
}

/// Fresh `state` and PKCE verifier from the OS's randomness.
pub(crate) fn random_secrets() -> Result<FlowSecrets, Error> {
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

/// Drives one flow. Nothing stored is removed unless the server refused it for good.
///
/// Every flow runs in an `oauth_flow` span (origin and trigger), every sub-request in an
/// `oauth_request` span (purpose, method, URL). URLs are discovery and endpoint URLs only; the
/// authorization request is logged through its redacting `Debug`, never with its query.
///
/// `generation` is the logouts the caller saw before it read the tokens the flow starts from:
/// a logout since then overrules the flow's tokens.
///
/// `lock` is the store's refresh lock when the flow starts from a refresh: it is released as
/// soon as the refresh is refused for good, so the authorization that follows (a user at a
/// browser, for minutes) does not keep other callers and processes waiting.
pub(crate) async fn run(
    state: &LayerState,
    client: HttpClient,
    start: FlowStart,
    generation: LogoutGeneration,
    key: &str,
    lock: &mut Option<StoreLock>,
    deadline: &mut Deadline<'_>,
) -> Result<Run, Error> {
    let span = info_span!("oauth_flow", origin = key, trigger = ?start.trigger);
    // Every request judged by the address policy, and by what its name resolves to; every
    // sub-request of the flow, and of its authorizer, bounded on its own, its name's lookup
    // included (a resolver that never answers fails the request, not the whole flow later).
    let client = crate::resolve::guarded(
        client,
        Arc::clone(&state.config.url_policy),
        state.resolver.clone(),
        start.server_url.clone(),
    )
    .bounded_by(state.limits.request_timeout, state.timer.as_ref());
    let (outcome, dropped_tokens) = drive(state, client, start, key, lock, deadline)
        .instrument(span)
        .await?;
    // Logged out of during the flow (a user at the consent page for minutes, say): its tokens
    // are dropped here, before anything is stored.
    generation.check(&state.flights, Some(outcome.protected_resource.as_str()))?;
    Ok(Run {
        outcome,
        dropped_tokens,
        generation,
    })
}

async fn drive(
    state: &LayerState,
    client: HttpClient,
    start: FlowStart,
    key: &str,
    lock: &mut Option<StoreLock>,
    deadline: &mut Deadline<'_>,
) -> Result<(FlowOutcome, bool), Error> {
    let held = start.held.clone();
    // Interactive authorizations are budgeted per MCP server: a gateway's servers on one
    // origin each need their own consent, and only one that keeps refusing fresh tokens
    // must stop asking.
    let server = String::from(start.server_url.as_str());
    let held_resource = start.protected_resource.clone();
    let mut dropped_tokens = false;
    let mut flow = Flow::new(
        Arc::clone(&state.config),
        start,
        random_secrets()?,
        state.now(),
    );
    // The non-interactive part of the flow shares the flight's deadline (what the store steps
    // before it left); the consent wait is not counted, it has its own bound below.
    let timer = state.timer.as_deref();
    let mut device_waits = crate::device::DeviceWaits::new();
    loop {
        let decision = match deadline
            .run(next_decision(
                &mut flow,
                &client,
                state.store.as_ref(),
                &state.clock,
                &state.dpop,
            ))
            .await
        {
            Ok(decision) => decision?,
            Err(_) => {
                // Ended through the flow, so the error carries the discovery report so far;
                // the next turn yields it at once.
                flow.fail(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "the authorization flow for {key} did not finish within its {} deadline \
                         (consent time not counted)",
                        human(deadline.limit())
                    ),
                ));
                continue;
            }
        };
        match decision {
            Action::DropTokens => {
                dropped_tokens = true;
                if let Some(resource) = &held_resource {
                    debug!(resource = %resource, "refresh refused for good; dropping the tokens");
                    // Only the refused ones: tokens installed since (a web login completed
                    // while this refresh ran, `OAuthLayer::adopt_login`) stay.
                    match &held {
                        Some(refused) => state.cache.remove_if_holding(resource, refused),
                        None => state.cache.remove(resource),
                    }
                    let drop =
                        state
                            .store
                            .compare_and_swap_tokens(resource.as_str(), held.as_ref(), None);
                    // Within a deadline of its own, as the writes after a flow: refused tokens
                    // left in the store are refused again for every process that reads them.
                    let missed = "the token store did not drop the refused tokens";
                    if let Err(e) = state.deadline().step(missed, drop).await {
                        warn!(error = %e, "could not drop the refused tokens from the store");
                    }
                }
                if let Some(lock) = lock.take() {
                    release(lock, &mut state.deadline()).await;
                }
            }
            Action::Authorize(request) => {
                // Consent can take minutes; whatever the refresh lock guarded is over by now.
                if let Some(lock) = lock.take() {
                    release(lock, &mut state.deadline()).await;
                }
                let limits = &state.limits;
                if let Err(e) = state.flights.spend_authorization(
                    &server,
                    state.now(),
                    limits.authorization_budget,
                    limits.budget_window,
                ) {
                    flow.fail(e);
                    continue;
                }
                debug!(?request, "requesting consent");
                let limit = state.limits.consent_timeout;
                let consent = within(
                    timer,
                    limit,
                    state.authorizer.authorize(request, client.clone()),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(Error::new(
                        ErrorKind::ConsentTimeout,
                        format!(
                            "no authorization response for {key} within the layer's consent \
                             timeout of {}",
                            human(limit)
                        ),
                    ))
                });
                match consent {
                    Ok(response) => {
                        // The user's answer starts a new stretch: the code exchange gets the
                        // whole deadline, not what the store steps and discovery left before
                        // the user spent minutes at the consent page.
                        deadline.restart();
                        flow.handle_authorization_response_at(response, state.now())
                    }
                    Err(e) => flow.fail(e),
                }
            }
            Action::ShowUserCode(code) => {
                // The user approves elsewhere, for minutes: as with consent in a browser, the
                // refresh lock is released and the authorization budget spent.
                if let Some(lock) = lock.take() {
                    release(lock, &mut state.deadline()).await;
                }
                let limits = &state.limits;
                if let Err(e) = state.flights.spend_authorization(
                    &server,
                    state.now(),
                    limits.authorization_budget,
                    limits.budget_window,
                ) {
                    flow.fail(e);
                    continue;
                }
                debug!(?code, "showing the device code");
                match &state.device_prompt {
                    Some(prompt) => prompt.show(&code),
                    None => crate::device::DeviceCodePrompt::show(&crate::StderrPrompt, &code),
                }
                device_waits.shown(timer);
            }
            Action::PollAfter(wait) => {
                match device_waits
                    .sleep(timer, wait, state.limits.consent_timeout, key)
                    .await
                {
                    Ok(()) => {
                        // Each poll follows a wait for the user, as the code exchange follows
                        // consent: it gets the whole deadline, so a slow token endpoint polled
                        // through ten minutes of the user's time does not end the flow.
                        deadline.restart();
                        flow.handle_poll_due(state.now())
                    }
                    Err(e) => flow.fail(e),
                }
            }
            Action::ObtainAssertion(request) => {
                debug!(kind = ?request.kind, issuer = %request.issuer, "obtaining the assertion");
                // The application's source (a file, a closure, a metadata service) is part of
                // the flow's non-interactive work: a source that never answers ends at the
                // deadline like a stalled sub-request.
                let assertion = match &state.assertions {
                    Some(source) => {
                        let missed = "the assertion source did not answer";
                        deadline.step(missed, source.assertion(&request)).await
                    }
                    None => Err(crate::assertion::no_source()),
                };
                flow.handle_assertion(assertion, state.now());
            }
            Action::Complete(outcome) => {
                debug!(
                    resource = %outcome.protected_resource,
                    issuer = outcome.tokens.issuer(),
                    refreshed = outcome.refreshed,
                    "tokens obtained"
                );
                // What was tried on the way, as after a failure: a server passed over shows.
                debug!("discovery report:\n{}", outcome.report);
                return Ok((*outcome, dropped_tokens));
            }
            Action::Failed(error) => {
                debug!(error = %error, kind = ?error.kind(), "authorization failed");
                if let Some(report) = error.report() {
                    debug!("discovery report:\n{report}");
                }
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

/// Performs the actions every driver handles alike (sub-requests through the inner service,
/// registrations through the store) and returns the next one that needs the caller: consent,
/// dropped tokens, or the end.
pub(crate) async fn next_decision(
    flow: &mut Flow,
    client: &HttpClient,
    store: &dyn TokenStore,
    clock: &Clock,
    dpop: &DpopState,
) -> Result<Action, Error> {
    // The DPoP key the last token request proved, which the tokens it got are bound to.
    let mut proved = None;
    loop {
        let Some(action) = flow.poll_action() else {
            return Err(Error::new(
                ErrorKind::InvalidTransition,
                "the flow stalled without an action",
            ));
        };
        match action {
            Action::Send(sub) => {
                let span = debug_span!(
                    "oauth_request",
                    purpose = %sub.purpose,
                    method = %sub.request.method(),
                    url = %crate::origin::loggable(sub.request.uri()),
                );
                let purpose = sub.purpose;
                let (sent, key) =
                    dpop::token::send_sub_request(client, dpop, flow, sub, || clock.now())
                        .instrument(span.clone())
                        .await;
                if purpose == Purpose::Token {
                    proved = key;
                }
                match sent {
                    Ok(response) => {
                        span.in_scope(|| debug!(status = response.status().as_u16(), "response"));
                        flow.handle_response(response, clock.now());
                    }
                    Err(e) => {
                        span.in_scope(|| debug!(error = %e, "failed"));
                        // Another listed authorization server may be tried instead.
                        flow.handle_send_failure(e);
                    }
                }
            }
            Action::LoadClient { issuer } => match store.load_client(&issuer).await {
                Ok(stored) => flow.handle_stored_client(stored),
                Err(e) => flow.fail(e),
            },
            Action::SaveClient(registration) => {
                debug!(issuer = %registration.issuer, client_id = %registration.client_id, "registered client");
                if let Err(e) = store.save_client(&registration).await {
                    // The flow goes on with the registration in hand; only its reuse is lost.
                    warn!(error = %e, "could not store the client registration");
                }
            }
            Action::DropClient { issuer, client_id } => {
                debug!(%issuer, "client refused; dropping its registration");
                // Only if it is still the refused client: a user or process sharing the store
                // may have registered anew since.
                if let Err(e) = store.remove_refused_client(&issuer, &client_id).await {
                    warn!(error = %e, "could not drop the refused registration");
                }
            }
            Action::Complete(mut outcome) => {
                if let Some(key) = proved.take() {
                    // RFC 9449 §5: tokens issued against a proof are bound to its key; it is
                    // kept (and stored) with them.
                    outcome.tokens = outcome.tokens.clone().with_dpop_key(Some(key));
                }
                // A `DPoP` token for a request that carried no proof is bound to no key this
                // client holds (RFC 9449 §5): presented without a proof it is refused at every
                // request, each refusal running a flow that gets another such token.
                if outcome.tokens.token_type() == TokenType::DPoP
                    && outcome.tokens.dpop_key().is_none()
                {
                    return Err(Error::new(
                        ErrorKind::InvalidTokenResponse,
                        "the token endpoint issued a DPoP-bound token (token_type DPoP) to a \
                         request that carried no DPoP proof; it cannot be presented (RFC 9449 \
                         §5): turn DPoP on for this server, or have it issue Bearer tokens",
                    ));
                }
                return Ok(Action::Complete(outcome));
            }
            other => return Ok(other),
        }
    }
}

/// Gives the store's refresh lock back within `within` (a deadline of its own, or the writes'
/// after a flow: never what a long flow left, which would hold a lease through the user's
/// consent until it expires). A store
/// that does not answer in time keeps the lock until its own bound (a lease's expiry; a
/// guard's drop gives it back at once): waiting longer would hold this flight's callers for a
/// lock the flow no longer needs.
pub(crate) async fn release(lock: StoreLock, within: &mut Deadline<'_>) {
    if within.run(lock.release()).await.is_err() {
        warn!(
            "the token store did not release its refresh lock within the flow's {} deadline; \
             it is dropped",
            human(within.limit())
        );
    }
}
