//! Getting a usable token for a request: join or start the single flow for its origin, adopt
//! what the store or another caller already has, refresh, or authorize.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use http::{HeaderValue, Uri};
use mcp_oauth_flow::{
    server_url_from_uri, Challenge, Error, ErrorKind, FlowStart, Scopes, TokenSet, Trigger,
};
use tracing::{debug, warn};
use url::Url;

use crate::bounds::{InnerService, ResponseBody};
use crate::cache::{covers, Sent};
use crate::client::InnerClient;
use crate::driver;
use crate::service::Shared;
use crate::store::{Replaced, StoreLock};

/// Why a token is needed.
#[derive(Clone, Debug)]
pub(crate) enum Need {
    /// A `401` (with its challenge, if any).
    Unauthorized(Option<Challenge>),
    /// A `403 insufficient_scope`.
    InsufficientScope(Challenge),
    /// The token is due for refresh.
    Expiring,
}

impl Need {
    fn trigger(&self) -> Trigger {
        match self {
            Need::Unauthorized(_) => Trigger::Unauthorized,
            Need::InsufficientScope(_) => Trigger::InsufficientScope,
            Need::Expiring => Trigger::Expiring,
        }
    }

    fn challenge(&self) -> Option<Challenge> {
        match self {
            Need::Unauthorized(c) => c.clone(),
            Need::InsufficientScope(c) => Some(c.clone()),
            Need::Expiring => None,
        }
    }

    /// Whether `tokens` meet this need (for a step-up: hold every challenged scope).
    fn met_by(&self, tokens: &TokenSet) -> bool {
        match self {
            Need::InsufficientScope(c) => {
                let wanted = Scopes::parse(c.scope().unwrap_or(""));
                tokens
                    .scopes()
                    .is_some_and(|held| held.contains_all(&wanted))
            }
            _ => true,
        }
    }
}

/// The single-flight key: the request's origin. One flow per origin at a time; a caller whose
/// need the finished flow did not meet runs its own next.
pub(crate) fn flight_key(uri: &Uri) -> String {
    format!(
        "{}://{}",
        uri.scheme_str().unwrap_or("http"),
        uri.authority().map(|a| a.as_str()).unwrap_or("")
    )
    .to_ascii_lowercase()
}

/// A header for `uri` that meets `need`, newer than what the request was `sent` with.
pub(crate) async fn obtain<S, B, RB>(
    shared: &Arc<Shared>,
    inner: S,
    uri: &Uri,
    sent: Sent,
    need: Need,
) -> Result<HeaderValue, Error>
where
    S: InnerService<B, RB>,
    B: Send + 'static,
    RB: ResponseBody,
{
    let key = flight_key(uri);
    for _ in 0..2 {
        let now = (shared.clock)();
        // Someone else already got a newer token: use it, no flow.
        if let Some(header) = shared.cache.newer(uri, sent, now) {
            let meets = shared
                .cache
                .session(uri)
                .is_some_and(|s| need.met_by(&s.tokens));
            if meets {
                return Ok(header);
            }
        }
        if let Some(error) = shared
            .flights
            .recent_failure(&key, now, shared.limits.failure_backoff)
        {
            return Err(error);
        }
        let (flight, started) = shared.flights.join_or_start(&key, |id| {
            let shared = Arc::clone(shared);
            let client = InnerClient::from_service(inner.clone(), shared.max_response_bytes);
            let (uri, need, key) = (uri.clone(), need.clone(), key.clone());
            Box::pin(async move {
                // A panic (a bug, or input no check foresaw) must not leave a poisoned flow in
                // the map that every later caller of this origin would join: it ends as an
                // error like any other failure.
                let result = AssertUnwindSafe(run_flight(&shared, client, &uri, need, sent))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| {
                        Err(Error::new(
                            ErrorKind::InvalidTransition,
                            "the authorization flow panicked and was abandoned",
                        ))
                    });
                shared.flights.finish(&key, id, &result, (shared.clock)());
                result
            })
        });
        if started {
            if let Some(spawn) = &shared.spawn {
                // Driven to its end on the executor whatever happens to its waiters: a refresh
                // cancelled mid-flight could lose a rotated refresh token the server already
                // issued, and an abandoned flow would keep its store lock.
                let driven = flight.clone();
                spawn(Box::pin(async move {
                    let _ = driven.await;
                }));
            }
        }
        flight.await?;
        let session = shared.cache.session(uri);
        match session {
            // A flow this caller ran may have been granted fewer scopes than it asked for: the
            // new token is used anyway, the resource decides, and the step-up bound keeps a
            // server that never grants them from making the layer ask forever.
            Some(s) if s.epoch > sent.epoch && (started || need.met_by(&s.tokens)) => {
                return Ok(shared
                    .cache
                    .header(uri)
                    .map(|(h, _)| h)
                    .expect("session present"))
            }
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

/// Store keys a token for `uri` may sit under, most specific first: the URL itself and each
/// parent path, down to the origin.
fn store_candidates(uri: &Uri) -> Vec<Url> {
    let Ok(mut url) = server_url_from_uri(uri) else {
        return Vec::new();
    };
    let mut out = vec![url.clone()];
    while url.path() != "/" {
        let path = url.path().trim_end_matches('/');
        let parent = path[..path.rfind('/').unwrap_or(0)].to_owned();
        url.set_path(if parent.is_empty() { "/" } else { &parent });
        out.push(url.clone());
    }
    out
}

/// Before the first request to an origin: adopts tokens an earlier run (or another process)
/// left in the store, so a restarted client sends its first request with a token instead of
/// paying a `401` round trip. Store errors are logged, not returned: the request then goes out
/// without a token and the usual `401` path takes over.
pub(crate) async fn adopt_stored(shared: &Shared, uri: &Uri) {
    // Marked first: callers racing in meanwhile simply go the 401 way.
    shared.cache.mark_origin_checked(uri);
    if shared.cache.session(uri).is_some() {
        return;
    }
    match find_stored(shared, uri).await {
        Ok(Some((resource, stored))) => {
            debug!(%resource, "found stored tokens before the first request");
            install(shared, resource, stored);
        }
        Ok(None) => {}
        Err(e) => warn!(error = %e, "could not read the token store; sending without a token"),
    }
}

/// The tokens stored for `uri`: under the URL itself or the nearest parent path that covers
/// it (see [`store_candidates`]).
async fn find_stored(shared: &Shared, uri: &Uri) -> Result<Option<(Url, TokenSet)>, Error> {
    for candidate in store_candidates(uri) {
        if let Some(stored) = shared.deps.store.load_tokens(candidate.as_str()).await? {
            if covers(&candidate, uri) {
                return Ok(Some((candidate, stored)));
            }
        }
    }
    Ok(None)
}

/// One flow: under the store's lock when refreshing, adopting tokens someone else already
/// stored, then the sans-IO flow, then a compare-and-swap write.
async fn run_flight(
    shared: &Arc<Shared>,
    client: InnerClient,
    uri: &Uri,
    need: Need,
    sent: Sent,
) -> Result<(), Error> {
    let store = &shared.deps.store;
    let now = (shared.clock)();
    // The flow that served this need may have finished between the caller's check and this
    // flow's start: then there is nothing left to do.
    let session = shared.cache.session(uri);
    if let Some(session) = &session {
        let still_needed = match need {
            Need::Expiring => session.refresh_at.is_some_and(|at| at <= now),
            _ => session.epoch <= sent.epoch || !need.met_by(&session.tokens),
        };
        if !still_needed {
            return Ok(());
        }
    }
    let mut held: Option<(TokenSet, Url)> =
        session.map(|s| ((*s.tokens).clone(), s.resource.clone()));

    if held.is_none() {
        // Nothing in memory: tokens from an earlier run may be in the store.
        if let Some((resource, stored)) = find_stored(shared, uri).await? {
            if !stored.is_expired(now, std::time::Duration::ZERO) && need.met_by(&stored) {
                debug!(%resource, "adopting stored tokens");
                install(shared, resource, stored);
                return Ok(());
            }
            held = Some((stored, resource));
        }
    }

    let refreshing = held
        .as_ref()
        .is_some_and(|(t, _)| t.refresh_token().is_some())
        && !matches!(need, Need::InsufficientScope(_));
    let mut lock = match (&held, refreshing) {
        (Some((_, resource)), true) => Some(store.lock(resource.as_str()).await?),
        _ => None,
    };
    let result = under_lock(shared, client, uri, need, held, &mut lock).await;
    // Given back as soon as the work is done, and waited for: a process that exits right
    // after a refresh must not leave the others waiting out a lease.
    if let Some(lock) = lock.take() {
        lock.release().await;
    }
    result
}

/// The part of a flight that runs under the refresh lock (if one was taken): adopt what is
/// stored, else run the flow and write its tokens with compare-and-swap.
async fn under_lock(
    shared: &Arc<Shared>,
    client: InnerClient,
    uri: &Uri,
    need: Need,
    mut held: Option<(TokenSet, Url)>,
    lock: &mut Option<StoreLock>,
) -> Result<(), Error> {
    let store = &shared.deps.store;
    let now = (shared.clock)();
    if let Some((tokens, resource)) = &mut held {
        // Another caller, process or store handle may have changed the tokens already: adopt
        // them if they do the job, else go on from them (they hold the latest refresh token).
        if let Some(stored) = store.load_tokens(resource.as_str()).await? {
            if !stored.same_tokens(tokens) {
                let usable =
                    !stored.is_expired(now, std::time::Duration::ZERO) && need.met_by(&stored);
                let due = matches!(need, Need::Expiring) && shared.refresh_due(&stored, now);
                if usable && !due {
                    debug!(resource = %resource, "adopting tokens stored by someone else");
                    install(shared, resource.clone(), stored);
                    return Ok(());
                }
                *tokens = stored;
            }
        }
    }

    let (held_tokens, resource) = match held {
        Some((t, r)) => (Some(t), Some(r)),
        None => (None, None),
    };
    if let Need::InsufficientScope(challenge) = &need {
        // Never more than a few authorizations for the same missing scopes: a resource that
        // keeps answering 403 must not make the layer prompt the user forever.
        shared.flights.try_step_up(
            &flight_key(uri),
            challenge.scope().unwrap_or(""),
            shared.limits.step_up_attempts,
        )?;
    }
    let server_url = server_url_from_uri(uri)?;
    let must_prompt = matches!(need, Need::InsufficientScope(_))
        || held_tokens
            .as_ref()
            .is_none_or(|t| t.refresh_token().is_none());
    if must_prompt {
        shared.deps.authorizer.check_prompt(&server_url)?;
    }
    let start = FlowStart::new(server_url)
        .challenge(need.challenge())
        .trigger(need.trigger())
        .held(held_tokens.clone(), resource.clone());
    let run = driver::run(shared, client, start, &flight_key(uri), lock).await?;
    let outcome = run.outcome;
    let key = outcome.protected_resource.as_str().to_owned();
    // What the store should still hold: the tokens this flow started from, unless it dropped
    // them, or they were stored under another resource.
    let expected = if run.dropped_tokens || resource.as_ref().map(Url::as_str) != Some(key.as_str())
    {
        store
            .load_tokens(&key)
            .await
            .ok()
            .flatten()
            .filter(|_| !run.dropped_tokens)
    } else {
        held_tokens
    };
    match store
        .compare_and_swap_tokens(&key, expected.as_ref(), Some(&outcome.tokens))
        .await
    {
        Ok(Replaced::Swapped) => {}
        Ok(Replaced::Conflict(Some(winner))) if outcome.refreshed => {
            debug!(resource = %key, "lost a refresh race; adopting the winner's tokens");
            install(shared, outcome.protected_resource, *winner);
            return Ok(());
        }
        Ok(_) => {
            // A new authorization is what the user just approved: it wins.
            if let Err(e) = store.save_tokens(&key, &outcome.tokens).await {
                warn!(error = %e, "could not store tokens; they are kept in memory");
            }
        }
        Err(e) => warn!(error = %e, "could not store tokens; they are kept in memory"),
    }
    install(shared, outcome.protected_resource, outcome.tokens);
    Ok(())
}

fn install(shared: &Shared, resource: Url, tokens: TokenSet) {
    let refresh_at = shared.refresh_at(&tokens);
    shared.cache.install(resource, tokens, refresh_at);
}
