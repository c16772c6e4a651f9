//! Getting a usable token for a request: join or start the single flow for its origin, adopt
//! what the store or another caller already has, refresh, or authorize.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use http::Uri;
use mcp_oauth_flow::{
    discovery::server_url_from_uri, token::is_spent, Error, ErrorKind, FlowStart,
};

use crate::bounds::{InnerService, ResponseBody};
use crate::cache::{Provenance, Sent, Session};
use crate::client::HttpClient;
use crate::driver;
use crate::flight::{Joined, LogoutGeneration};
use crate::need::Need;
use crate::state::LayerState;
use crate::store::StoreLock;
use crate::stored::{self, Held, Start};
use crate::timer::Deadline;

pub(crate) use crate::flight::flight_key;

/// The most rounds [`obtain`] runs for its own server (its own flows, and flows it joined for
/// another need of the same server) before giving up: a bound that only keeps a bug from
/// looping.
const MAX_ROUNDS: usize = 8;
/// The most flows of other servers on its origin [`obtain`] waits through. Each is a whole
/// flow that ends (the flow deadline, the consent timeout), and a gateway's servers may all
/// need one at once (a client connecting to each at start): the bound is a gateway's size,
/// not a handful.
const MAX_OTHER_SERVERS_WAITED: usize = 1024;

/// A session for `uri` newer than what the request was `sent` with that answers `need` (see
/// [`answers`]; after a flow this caller ran, whatever it was granted): its header for the
/// retry, and what the retry's answer is judged by (its tokens, where they came from), as one
/// snapshot.
pub(crate) async fn obtain<S, B, RB>(
    state: &Arc<LayerState>,
    inner: S,
    uri: &Uri,
    sent: Sent,
    need: Need,
) -> Result<Session, Error>
where
    S: InnerService<B, RB>,
    B: Send + 'static,
    RB: ResponseBody,
{
    let key = flight_key(uri);
    // Failures and their backoff are the server's; the flight is the origin's (see
    // `flight_key`).
    let server = crate::flight::server_key(uri).unwrap_or_else(|| key.clone());
    // Each round either ends or waits for a flow on this origin to end: another server's
    // (counted apart: a gateway's many servers queue on one origin), or one run for another
    // need of this server.
    let (mut rounds, mut other_servers_waited) = (0, 0);
    while rounds < MAX_ROUNDS && other_servers_waited < MAX_OTHER_SERVERS_WAITED {
        let now = state.now();
        // Someone else already got a newer token: use it, no flow. For a step-up, also one
        // that lacks the scopes when the user was already asked for them (a step-up for them
        // ran, which this caller did not join in time): the answer stands for this request,
        // and a later one that meets the same refusal asks again, within the bound.
        if let Some(header) = state.cache.newer(uri, sent, now) {
            // The session of that header (another may have replaced it since: then this round
            // goes on to the flight, which finds the newest).
            let session = state
                .cache
                .session(uri)
                .filter(|s| *s.authorization() == header);
            if let Some(s) = session.filter(|s| answers(&need, s)) {
                return Ok(s);
            }
        }
        if let Some(error) =
            state
                .flights
                .recent_failure(&server, now, state.limits.failure_backoff)
        {
            return Err(error);
        }
        let refresh = matches!(need, Need::Expiring);
        let (flight, joined) = state.flights.join_or_start(&key, &server, refresh, |id| {
            let state = Arc::clone(state);
            let client = HttpClient::from_service(inner.clone(), state.max_response_bytes);
            let (uri, need, key, server) = (uri.clone(), need.clone(), key.clone(), server.clone());
            Box::pin(async move {
                // The writes after the flow get a stretch of the flow deadline of their own
                // (see `Deadline`), counted only while they run.
                let mut writes = state.deadline();
                // A panic (a bug, or input no check foresaw) must not leave a poisoned flow in
                // the map that every later caller of this origin would join: it ends as an
                // error like any other failure.
                let flight = run_flight(&state, client, &uri, need, sent, &mut writes);
                let result = AssertUnwindSafe(flight)
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| {
                        Err(Error::new(
                            ErrorKind::InvalidTransition,
                            "the authorization flow panicked and was abandoned",
                        ))
                    });
                // Kept for the status (per server, in the store too) before the flow leaves
                // the map, so a caller that sees it gone finds its record. The store is the
                // application's: one that panics here must not keep the flow from leaving the
                // map, nor its waiters from their answer.
                if let Some(server) = crate::flight::server_key(&uri) {
                    let record = crate::outcomes::record(&state, &server, &result, &mut writes);
                    if AssertUnwindSafe(record).catch_unwind().await.is_err() {
                        tracing::warn!(server = %server, "the token store panicked keeping a flow's outcome");
                    }
                }
                state
                    .flights
                    .finish(&key, &server, id, &result, state.now());
                result
            })
        });
        let started = joined == Joined::Started;
        // A token still valid is no reason to wait for a user: one due for refresh, while a
        // flow that may ask one runs on this origin (another server's, whose user may be at
        // its consent page for minutes; a step-up of this server), goes out with the token in
        // hand, and a later request refreshes it. Another caller's refresh of it is waited
        // for: a token request, and every caller then sends the new token.
        let waits_for_a_refresh = joined == Joined::SameServer { refresh: true };
        if refresh && !started && !waits_for_a_refresh {
            let now = state.now();
            let valid = state
                .cache
                .session(uri)
                .filter(|s| !s.tokens.is_expired(now, std::time::Duration::ZERO));
            if let Some(session) = valid {
                return Ok(session);
            }
        }
        if joined == Joined::OtherServer {
            other_servers_waited += 1;
        } else {
            rounds += 1;
        }
        if started {
            if let Some(spawn) = &state.spawn {
                // Driven to its end on the executor whatever happens to its waiters: a refresh
                // cancelled mid-flight could lose a rotated refresh token the server already
                // issued, and an abandoned flow would keep its store lock.
                let driven = flight.clone();
                spawn(Box::pin(async move {
                    let _ = driven.await;
                }));
            }
        }
        match flight.await {
            Ok(()) => {}
            // Another server's flow failed: that says nothing of this server's, which runs
            // next.
            Err(_) if joined == Joined::OtherServer => continue,
            Err(e) => return Err(e),
        }
        let session = state.cache.session(uri);
        match session {
            // A flow this caller ran may have been granted fewer scopes than it asked for: the
            // new token is used anyway, the resource decides, and the step-up bound keeps a
            // server that never grants them from making the layer ask forever; so is a
            // step-up it joined (see `answers`).
            // The session in hand: looked up again, a logout in between could have removed it.
            Some(s) if s.epoch > sent.epoch && (started || answers(&need, &s)) => return Ok(s),
            // Joined a flow run for another need: run ours next.
            _ if !started => continue,
            _ => break,
        }
    }
    Err(Error::new(
        ErrorKind::InvalidTransition,
        "the authorization flow finished without a token for this request",
    ))
}

/// Whether a `session` newer than a caller sent answers its `need`: its tokens meet it, or,
/// for a step-up, they are the user's answer to a step-up for every scope it needs (one this
/// caller joined, or one that ran while its request was on its way), even when it granted
/// fewer: asking again at once, once per caller, would only repeat the question. A later
/// request that meets the same refusal asks again, within the step-up bound.
fn answers(need: &Need, session: &Session) -> bool {
    need.met_by(&session.tokens)
        || match (need.step_up_scopes(), &session.provenance) {
            (Some(needed), Provenance::SteppedUp(asked)) => asked.contains_all(&needed),
            _ => false,
        }
}

/// One flow: under the store's lock when refreshing, adopting tokens someone else already
/// stored, then the sans-IO flow, then a compare-and-swap write (see [`crate::stored`]).
///
/// The store steps before the flow share the flow's deadline; its writes and the lock's
/// release run within `writes`.
async fn run_flight<'s>(
    state: &'s Arc<LayerState>,
    client: HttpClient,
    uri: &Uri,
    need: Need,
    sent: Sent,
    writes: &mut Deadline<'s>,
) -> Result<(), Error> {
    // The logouts so far, taken before the tokens the flow starts from are read: a logout
    // that runs while this flow waits (for the store's lock, its reads, the user) comes after
    // it, and overrules what the flow gets.
    let generation = state
        .flights
        .logout_generation(server_url_from_uri(uri)?.as_str());
    let now = state.now();
    // One deadline for the flight's store steps and its flow together.
    let mut deadline = state.deadline();
    // The flow that served this need may have finished between the caller's check and this
    // flow's start: then there is nothing left to do.
    let session = state.cache.session(uri);
    if let Some(session) = &session {
        // Spent tokens (expired, nothing to refresh them) are no token, however new: a 401
        // while holding them needs a new authorization, never a retry with them.
        let still_needed = match need {
            Need::Expiring => session.refresh_at.is_some_and(|at| at <= now),
            _ => {
                session.epoch <= sent.epoch
                    || !answers(&need, session)
                    || is_spent(&session.tokens, now)
            }
        };
        if !still_needed {
            return Ok(());
        }
    }
    state.flights.count_started();
    let held: Option<Held> = match session {
        Some(s) => Some(((*s.tokens).clone(), s.resource.clone())),
        // Nothing in memory: tokens from an earlier run may be in the store.
        None => {
            let read = stored::start_from(state, uri, &need, now);
            match deadline.step(crate::stored::NOT_READ, read).await? {
                Start::Adopted => return Ok(()),
                Start::From(held) => held,
            }
        }
    };

    let refreshing = held
        .as_ref()
        .is_some_and(|(t, _)| t.refresh_token().is_some())
        && !matches!(need, Need::InsufficientScope(_));
    let lock = match (&held, refreshing) {
        (Some((_, resource)), true) => Some(
            deadline
                .step(
                    "the token store did not give its refresh lock",
                    state.store.lock(resource.as_str()),
                )
                .await?,
        ),
        _ => None,
    };
    let mut holding = Holding {
        lock,
        deadline,
        writes,
    };
    let result = under_lock(state, client, uri, need, held, generation, &mut holding).await;
    // Given back as soon as the work is done, and waited for: a process that exits right
    // after a refresh must not leave the others waiting out a lease.
    if let Some(lock) = holding.lock.take() {
        driver::release(lock, holding.writes).await;
    }
    result
}

/// [`stored::reread`] within `deadline`; a grant gone from the store is, for an app whose users
/// must connect in the browser, their authorizer's refusal (a web layer's `ConnectRequired`),
/// as for any grant gone. Gone, the tokens the flight `began_from` leave the cache too (the
/// re-read removes those it was given, which may be newer ones found since).
async fn reread(
    state: &LayerState,
    need: &Need,
    held: Held,
    refreshing: bool,
    server_url: &url::Url,
    began_from: Option<&mcp_oauth_flow::token::TokenSet>,
    deadline: &mut Deadline<'_>,
) -> Result<Start, Error> {
    let resource = held.1.clone();
    let read = stored::reread(state, need, held, state.now(), refreshing);
    match deadline.step(crate::stored::NOT_READ, read).await {
        Err(e) if e.kind() == ErrorKind::LoggedOut => {
            if let Some(began_from) = began_from {
                state.cache.remove_if_holding(&resource, began_from);
            }
            state.authorizer.check_prompt(server_url)?;
            Err(e)
        }
        other => other,
    }
}

/// What a flight holds while it works: the store's refresh lock, if it took one, the deadline
/// its store steps and its flow share, and the one of the writes after the flow.
struct Holding<'t, 'w> {
    lock: Option<StoreLock>,
    deadline: Deadline<'t>,
    writes: &'w mut Deadline<'t>,
}

/// The part of a flight that runs under the refresh lock (if one was taken before it, or once
/// the re-read finds refreshable tokens the flight began without): adopt what is
/// stored, else run the flow and write its tokens back.
async fn under_lock(
    state: &Arc<LayerState>,
    client: HttpClient,
    uri: &Uri,
    need: Need,
    held: Option<Held>,
    generation: LogoutGeneration,
    holding: &mut Holding<'_, '_>,
) -> Result<(), Error> {
    let Holding {
        lock,
        deadline,
        writes,
    } = holding;
    let server_url = server_url_from_uri(uri)?;
    // What the flight began from (the cache's tokens, or the store's when it held none): the
    // re-read may start the flow from newer ones another process stored, and the cache still
    // holding these then is no sign it took others meanwhile (see `write_back`).
    let began_from = held.as_ref().map(|(tokens, _)| tokens.clone());
    let held = match held {
        Some(held) => {
            let refreshing = lock.is_some();
            match reread(
                state,
                &need,
                held,
                refreshing,
                &server_url,
                began_from.as_ref(),
                deadline,
            )
            .await?
            {
                Start::Adopted => return Ok(()),
                Start::From(held) => held,
            }
        }
        None => None,
    };
    // Read without the lock (the tokens the flight began from had no refresh token), the
    // store may have held another process's tokens that do: refreshing them needs the lock as
    // any refresh does (two processes sending one refresh token lose the grant where the
    // server detects the reuse), and what the store holds once it is taken.
    let refreshes = held
        .as_ref()
        .is_some_and(|(t, _)| t.refresh_token().is_some())
        && !matches!(need, Need::InsufficientScope(_));
    let held = match held {
        Some(found) if refreshes && lock.is_none() => {
            let taken = state.store.lock(found.1.as_str());
            let missed = "the token store did not give its refresh lock";
            *lock = Some(deadline.step(missed, taken).await?);
            match reread(
                state,
                &need,
                found,
                true,
                &server_url,
                began_from.as_ref(),
                deadline,
            )
            .await?
            {
                Start::Adopted => return Ok(()),
                Start::From(held) => held,
            }
        }
        held => held,
    };
    let must_prompt = matches!(need, Need::InsufficientScope(_))
        || held
            .as_ref()
            .is_none_or(|(t, _)| t.refresh_token().is_none());
    // Asked first: an authorizer that cannot prompt here (a web app's user must connect in
    // the browser) refuses without spending one of the step-up's few attempts.
    if must_prompt {
        state.authorizer.check_prompt(&server_url)?;
    }
    let key = flight_key(uri);
    // Never more than a few authorizations for the same missing scopes: a resource that
    // keeps refusing them must not make the layer prompt the user forever.
    let counted = match &need {
        Need::InsufficientScope(challenge) => {
            let scope = challenge.scope().unwrap_or("");
            state
                .flights
                .try_step_up(&key, scope, state.limits.step_up_attempts)?;
            Some(scope.to_owned())
        }
        _ => None,
    };
    let (held_tokens, resource) = match &held {
        Some((t, r)) => (Some(t.clone()), Some(r.clone())),
        None => (None, None),
    };
    let start = FlowStart::new(server_url)
        .challenge(need.challenge())
        .trigger(need.trigger())
        .held(held_tokens, resource);
    let run = match driver::run(state, client, start, generation, &key, lock, deadline).await {
        Ok(run) => run,
        Err(e) => {
            // A step-up whose flow failed on the server's passing trouble (no answer, a 5xx,
            // a 429: no token given, so none refused), or found no one it could ask (an
            // authorizer that learns only at the authorization server that a user is needed),
            // spends none of the attempts. One the user refused, let time out, or the server
            // refused keeps its attempt: given back, the user would be asked again at every 403.
            let nobody_asked = e.is_transient() || e.kind() == ErrorKind::InteractionRequired;
            if let (Some(scope), true) = (counted, nobody_asked) {
                state.flights.step_up_given_back(&key, &scope);
            }
            return Err(e);
        }
    };
    let step_up = need.step_up_scopes();
    stored::write_back(state, run, held, began_from, step_up, writes).await
}
