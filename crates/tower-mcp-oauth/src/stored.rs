//! The store protocol: how the layer reads tokens someone else may have written (an earlier run,
//! another process, another store handle) and writes its own without overwriting theirs.
//!
//! - Before the first request to an origin, stored tokens are adopted ([`adopt_stored`]).
//! - Before a flow, what the store holds is looked at first ([`start_from`]); under the refresh
//!   lock it is read again ([`reread`]), since another holder may have refreshed meanwhile.
//! - After a flow, its tokens are written with compare-and-swap against what the flow started
//!   from ([`write_back`]); a refresh that lost the race adopts the winner's tokens, never
//!   overwriting a rotated refresh token.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::Uri;
use mcp_oauth_flow::{
    authorization::Scopes,
    client::ClientRegistration,
    discovery::server_url_from_uri,
    token::{is_spent, TokenSet},
    Error, ErrorKind, FlowOutcome,
};
use tracing::{debug, warn};
use url::Url;

use crate::cache::Provenance;
use crate::need::Need;
use crate::scope::covers;
use crate::state::LayerState;
use crate::store::{Replaced, TokenStore};
use crate::timer::Deadline;

/// What a write of tokens says when the store did not answer within its deadline (see
/// [`Deadline::step`]): after a flow, and after a web login.
pub(crate) const NOT_WRITTEN: &str = "the token store did not write the tokens";
/// What a store that misses the write of a client registration did not do.
const REGISTRATION_NOT_WRITTEN: &str = "the token store did not write the client registration";
/// The same for a read of tokens: before and under the lock of a flight, before a first
/// request, for a write, a logout or a status.
pub(crate) const NOT_READ: &str = "the token store did not read";

/// Tokens a flow starts from, with the resource they are stored under.
pub(crate) type Held = (TokenSet, Url);

/// What the store says before a flow.
// Built once per flow and matched at once: boxing the tokens would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Start {
    /// Usable tokens were found and installed: no flow is needed.
    Adopted,
    /// The flow starts from these tokens (none: a new authorization).
    From(Option<Held>),
}

/// Installs `tokens` in the cache, with the refresh point the layer's policy gives them.
pub(crate) fn install(state: &LayerState, resource: Url, tokens: TokenSet) {
    install_from(state, resource, tokens, Provenance::Other);
}

/// [`install`], saying where the tokens came from.
fn install_from(state: &LayerState, resource: Url, tokens: TokenSet, provenance: Provenance) {
    let refresh_at = state.refresh_at(&tokens);
    state
        .cache
        .install_from(resource, tokens, refresh_at, provenance);
}

/// Store keys a token for `uri` may sit under, most specific first: the URL itself and each
/// parent path, down to the origin; each path as the URL writes it, then with or without a
/// trailing slash. Tokens are kept under their resource as the server's metadata wrote it,
/// and `https://x/mcp/` covers a server at `https://x/mcp` (and `https://x/mcp` one at
/// `https://x/mcp/`): a key the other spelling would miss is a login lost at every restart,
/// and a logout that leaves the tokens stored.
fn store_candidates(uri: &Uri) -> Vec<Url> {
    let Ok(mut url) = server_url_from_uri(uri) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut path = url.path().to_owned();
    loop {
        let bare = path.trim_end_matches('/');
        if bare.is_empty() {
            url.set_path("/");
            out.push(url);
            return out;
        }
        let slashed = format!("{bare}/");
        let bare = bare.to_owned();
        let (first, second) = if path.ends_with('/') {
            (slashed, bare.clone())
        } else {
            (bare.clone(), slashed)
        };
        for spelling in [first, second] {
            url.set_path(&spelling);
            out.push(url.clone());
        }
        path = bare[..bare.rfind('/').unwrap_or(0)].to_owned();
    }
}

/// The tokens stored for `uri`: under the URL itself or the nearest parent path that covers
/// it (see [`store_candidates`]).
pub(crate) async fn find_stored(state: &LayerState, uri: &Uri) -> Result<Option<Held>, Error> {
    for candidate in store_candidates(uri) {
        if let Some(stored) = state.store.load_tokens(candidate.as_str()).await? {
            if covers(&candidate, uri) {
                return Ok(Some((stored, candidate)));
            }
        }
    }
    Ok(None)
}

/// Before the first request to an origin: adopts tokens an earlier run (or another process)
/// left in the store, so a restarted client sends its first request with a token instead of
/// paying a `401` round trip. Store errors are logged, not returned: the request then goes out
/// without a token and the usual `401` path takes over. So is a store that does not answer
/// within the flow deadline: the first request to an origin never waits on it longer.
pub(crate) async fn adopt_stored(state: &LayerState, uri: &Uri) {
    // Marked first: callers racing in meanwhile simply go the 401 way.
    state.cache.mark_origin_checked(uri);
    if state.cache.session(uri).is_some() {
        return;
    }
    // A logout that begins while the store is read (it wipes the cache, then the store) must
    // not have its tokens brought back by this read: the adoption is checked against it, as a
    // flow's install is.
    let generation =
        crate::flight::server_key(uri).map(|server| state.flights.logout_generation(&server));
    let read = find_stored(state, uri);
    match state.deadline().step(NOT_READ, read).await {
        // Spent tokens are no token: the request goes without one, and its 401 starts a flow
        // from them (`start_from`), which authorizes afresh.
        Ok(Some((stored, resource))) if is_spent(&stored, state.now()) => {
            debug!(%resource, "stored tokens have expired and cannot be refreshed");
        }
        Ok(Some((_, resource)))
            if generation
                .as_ref()
                .is_some_and(|g| g.check(&state.flights, Some(resource.as_str())).is_err()) =>
        {
            debug!(%resource, "logged out while the store was read; not adopted");
        }
        Ok(Some((stored, resource))) => {
            debug!(%resource, "found stored tokens before the first request");
            install(state, resource, stored);
        }
        Ok(None) => {}
        Err(e) => warn!(error = %e, "could not read the token store; sending without a token"),
    }
}

/// Before a flow that holds nothing in memory: tokens from an earlier run may be in the store.
/// Adopted when they are unexpired and meet `need`, else the flow starts from them (they hold
/// the latest refresh token).
pub(crate) async fn start_from(
    state: &LayerState,
    uri: &Uri,
    need: &Need,
    now: SystemTime,
) -> Result<Start, Error> {
    let Some((stored, resource)) = find_stored(state, uri).await? else {
        return Ok(Start::From(None));
    };
    if !stored.is_expired(now, Duration::ZERO) && need.met_by(&stored) {
        debug!(%resource, "adopting stored tokens");
        install(state, resource, stored);
        return Ok(Start::Adopted);
    }
    Ok(Start::From(Some((stored, resource))))
}

/// Under the refresh lock (if one was taken): another caller, process or store handle may have
/// changed the tokens already. Adopts them if they do the job (returns [`Start::Adopted`]), else
/// the flow goes on from them instead of from `held`. A refresh (`refreshing`) that finds
/// nothing stored, where nothing is known to be missing from the store, finds a logout (in
/// another process sharing the store): [`ErrorKind::LoggedOut`], before any refresh is sent.
pub(crate) async fn reread(
    state: &LayerState,
    need: &Need,
    held: Held,
    now: SystemTime,
    refreshing: bool,
) -> Result<Start, Error> {
    let (tokens, resource) = held;
    let Some(stored) = state.store.load_tokens(resource.as_str()).await? else {
        // Its tokens would be discarded at the write (a refresh does not bring a login back,
        // see `write_and_install`); sent, the refresh would mint a grant no one revokes where
        // the server has no revocation endpoint, or was revoked already.
        // The rule the write applies (see `write_and_install`): an empty store is a logout
        // unless it is known to have missed the first write of these tokens.
        let missed_the_login = matches!(state.flights.store_behind(resource.as_str()), Some(None));
        if refreshing && !missed_the_login {
            state.cache.remove_if_holding(&resource, &tokens);
            return Err(Error::new(
                ErrorKind::LoggedOut,
                format!(
                    "the tokens for {resource} were removed from the store (a logout); they \
                     were not refreshed"
                ),
            ));
        }
        return Ok(Start::From(Some((tokens, resource))));
    };
    if stored.same_tokens(&tokens) {
        // The store holds the tokens in memory (a write that failed, or seemed to, landed):
        // it is not behind.
        state.flights.store_caught_up(resource.as_str());
        return Ok(Start::From(Some((tokens, resource))));
    }
    // The store is behind the tokens in memory (a write of them failed) and still holds what
    // it held then: those are older, their refresh token spent by the refresh that made ours
    // (sent again, it would be refused, or get the grant revoked as a reuse).
    let behind = state.flights.store_behind(resource.as_str());
    if behind
        .flatten()
        .is_some_and(|older| older.same_tokens(&stored))
    {
        return Ok(Start::From(Some((tokens, resource))));
    }
    // Someone else's tokens: the memory's are superseded, whatever the store was behind.
    state.flights.store_caught_up(resource.as_str());
    let usable = !stored.is_expired(now, Duration::ZERO) && need.met_by(&stored);
    let due = matches!(need, Need::Expiring) && state.refresh_due(&stored, now);
    if usable && !due {
        debug!(resource = %resource, "adopting tokens stored by someone else");
        install(state, resource, stored);
        return Ok(Start::Adopted);
    }
    Ok(Start::From(Some((stored, resource))))
}

/// After a flow: writes its tokens with compare-and-swap against what the store should still
/// hold, and installs whichever tokens won. `held` is what the flow started from;
/// `run.dropped_tokens` says whether it dropped them (a refused refresh).
///
/// A logout of the server (or of the resource) since the flow started wins: nothing is written
/// ([`ErrorKind::LoggedOut`](mcp_oauth_flow::ErrorKind::LoggedOut)), and a logout that
/// began while the tokens were being written has them removed again here, since its own wipe
/// may have run before the write landed.
///
/// Each store access runs within `writes`. A store that does not answer in time is a store
/// that failed: the tokens are kept in memory (and written at the next flow), as when a write
/// fails; a call holding tokens is never made to wait on the store for ever.
pub(crate) async fn write_back(
    state: &LayerState,
    run: crate::driver::Run,
    held: Option<Held>,
    began_from: Option<TokenSet>,
    step_up: Option<Scopes>,
    writes: &mut Deadline<'_>,
) -> Result<(), Error> {
    let crate::driver::Run {
        mut outcome,
        dropped_tokens,
        generation,
    } = run;
    let resource = outcome.protected_resource.clone();
    let registration = outcome.registration.take();
    generation.check(&state.flights, Some(resource.as_str()))?;
    let provenance = match step_up {
        _ if outcome.refreshed => Provenance::Refreshed,
        Some(asked) => Provenance::SteppedUp(Arc::new(asked)),
        None => Provenance::Other,
    };
    let installed = write_and_install(
        state,
        outcome,
        held,
        began_from,
        dropped_tokens,
        provenance,
        writes,
    )
    .await?;
    if let Err(e) = generation.check(&state.flights, Some(resource.as_str())) {
        debug!(%resource, "logged out while the tokens were written; removing them");
        state.cache.remove(&resource);
        let remove = state
            .store
            .compare_and_swap_tokens(resource.as_str(), Some(&installed), None);
        if let Err(e) = writes.step(NOT_WRITTEN, remove).await {
            warn!(error = %e, "could not remove the tokens a logout overtook");
        }
        return Err(e);
    }
    if let Some(registration) = registration {
        save_registration(state.store.as_ref(), &registration, &mut state.deadline()).await;
    }
    Ok(())
}

/// Stores the client registration a flow handed over with the tokens it got
/// ([`FlowOutcome::registration`]), now that they are kept: within `deadline`, one of its own
/// (the tokens' writes may have spent theirs), and a failure only costs its reuse (and, for a
/// confidential client, the tokens' refresh), not the tokens in hand.
pub(crate) async fn save_registration(
    store: &dyn TokenStore,
    registration: &ClientRegistration,
    deadline: &mut Deadline<'_>,
) {
    let save = store.save_client(registration);
    if let Err(e) = deadline.step(REGISTRATION_NOT_WRITTEN, save).await {
        warn!(error = %e, issuer = %registration.issuer, "could not store the client registration");
    }
}

/// The pauses before the second and third attempt to write a refresh's tokens (none without
/// a timer: the attempts then follow each other at once).
const WRITE_RETRY_PAUSES: [Duration; 2] = [Duration::from_millis(50), Duration::from_millis(250)];

/// Compares and swaps `new` for `expected` under `key`; for a refresh (`retry`), attempted
/// again, twice, after [`WRITE_RETRY_PAUSES`], when the store fails with a passing trouble (a
/// reply timed out, a connection dropped and made again). Such a failure must not leave a
/// refresh's tokens in this process alone: the refresh still holds the store's refresh lock
/// here, and once it is given back, another process sharing the store reads the tokens the
/// refresh started from and would send their refresh token, which the server has rotated away
/// (refused, or, where the server detects reuse, the whole grant revoked). An attempt that
/// finds this refresh's own tokens stored (an earlier one landed, its reply lost) is a write
/// done; one that finds others is the conflict a refresh always answers by adopting them (or,
/// finding none, as a logout), never by writing over them.
///
/// A new authorization's write is attempted once: it takes no lock, and a conflict met after a
/// failed attempt could not tell tokens that replaced its own landed write (another process's
/// refresh of them, which it must not write over) from tokens that were there before (which a
/// new authorization, what the user just approved, replaces).
async fn swap_retrying(
    store: &dyn TokenStore,
    key: &str,
    expected: Option<&TokenSet>,
    new: &TokenSet,
    retry: bool,
    writes: &mut Deadline<'_>,
) -> Result<Replaced, Error> {
    let mut pauses = WRITE_RETRY_PAUSES.into_iter().filter(|_| retry);
    let mut failed_before = false;
    loop {
        let swap = store.compare_and_swap_tokens(key, expected, Some(new));
        let e = match writes.step(NOT_WRITTEN, swap).await {
            Ok(Replaced::Conflict(Some(found))) if failed_before && found.same_tokens(new) => {
                return Ok(Replaced::Swapped)
            }
            Ok(replaced) => return Ok(replaced),
            Err(e) => e,
        };
        // Only a passing trouble is worth another attempt; past the deadline, one could only
        // time out again.
        let pause = pauses
            .next()
            .filter(|_| e.is_transient() && !writes.is_spent());
        let Some(pause) = pause else {
            return Err(e);
        };
        debug!(resource = %key, error = %e, "the token store did not write the refreshed tokens; trying again");
        failed_before = true;
        writes.pause(pause).await;
    }
}

/// The write of [`write_back`]; returns the tokens installed (the flow's, or a refresh race's
/// winner's), or [`ErrorKind::LoggedOut`] when a refresh finds its tokens removed from the
/// store.
async fn write_and_install(
    state: &LayerState,
    outcome: FlowOutcome,
    held: Option<Held>,
    began_from: Option<TokenSet>,
    dropped_tokens: bool,
    provenance: Provenance,
    writes: &mut Deadline<'_>,
) -> Result<TokenSet, Error> {
    let store = &state.store;
    let key = outcome.protected_resource.as_str().to_owned();
    let (held_tokens, resource) = match held {
        Some((t, r)) => (Some(t), Some(r)),
        None => (None, None),
    };
    // What the cache held when the flow started, for a refresh's install below.
    let started_from = outcome.refreshed.then(|| held_tokens.clone()).flatten();
    // What the store should still hold: the tokens this flow started from, unless it dropped
    // them, or they were stored under another resource (then what it holds now). A store behind
    // the tokens in memory (an earlier write of them failed) may still hold what it held then
    // rather than what this flow started from: the write is compared with what it holds if it
    // is that, else a refresh of the tokens in memory would lose to the store's older ones and
    // install them, their refresh token spent. Either case reads the store, once.
    let started_elsewhere =
        dropped_tokens || resource.as_ref().map(Url::as_str) != Some(key.as_str());
    let behind = state.flights.store_behind(&key);
    let now_stored = if started_elsewhere || behind.is_some() {
        Some(writes.step(NOT_READ, store.load_tokens(&key)).await)
    } else {
        None
    };
    let mut expected = if started_elsewhere {
        now_stored
            .clone()
            .and_then(Result::ok)
            .flatten()
            .filter(|_| !dropped_tokens)
    } else {
        held_tokens
    };
    if let (Some(older), Some(Ok(now_stored))) = (&behind, now_stored) {
        let still_behind = match (&now_stored, older) {
            (Some(stored), Some(older)) => stored.same_tokens(older),
            (None, None) => true,
            _ => false,
        };
        if still_behind {
            expected = now_stored;
        }
    }
    let mut swapped = swap_retrying(
        store.as_ref(),
        &key,
        expected.as_ref(),
        &outcome.tokens,
        outcome.refreshed,
        writes,
    )
    .await;
    // The store was behind and the read above, which would have said so, failed: the write
    // expected the tokens in memory and found the older ones the store was behind on. They
    // are no race's winner (their refresh token is spent, by the refresh that made the tokens
    // this one started from): the write goes on over them.
    if let (Ok(Replaced::Conflict(Some(found))), Some(Some(older))) = (&swapped, &behind) {
        if outcome.refreshed && found.same_tokens(older) {
            debug!(resource = %key, "the store still holds the tokens it was behind on; writing over them");
            let found = (**found).clone();
            swapped = swap_retrying(
                store.as_ref(),
                &key,
                Some(&found),
                &outcome.tokens,
                outcome.refreshed,
                writes,
            )
            .await;
        }
    }
    match swapped {
        Ok(Replaced::Swapped) => state.flights.store_caught_up(&key),
        Ok(Replaced::Conflict(Some(winner))) if outcome.refreshed => {
            debug!(resource = %key, "lost a refresh race; adopting the winner's tokens");
            state.flights.store_caught_up(&key);
            // Another process's refresh: tokens no one was asked for, as ours would have been.
            install_from(
                state,
                outcome.protected_resource,
                (*winner).clone(),
                Provenance::Refreshed,
            );
            return Ok(*winner);
        }
        // The tokens the refresh started from were removed while it ran: a logout, in this
        // process after the flow's generation was taken, or in another sharing the store. A
        // refresh only renews a login, so it does not bring one back; the new tokens are
        // dropped (not revoked: the logout revoked the grant they came from, where the server
        // can).
        // (Tokens that never reached a store that held none, because it failed when they were
        // written, are not a logout when the store still holds none: they are written now,
        // below.)
        Ok(Replaced::Conflict(None)) if outcome.refreshed && !matches!(behind, Some(None)) => {
            debug!(resource = %key, "the stored tokens were removed during the refresh");
            // The store and this process agree again: neither holds tokens.
            state.flights.store_caught_up(&key);
            state.cache.remove(&outcome.protected_resource);
            return Err(Error::new(
                ErrorKind::LoggedOut,
                format!(
                    "the tokens for {key} were removed from the store (a logout) while they were \
                     being refreshed; the refreshed tokens were discarded"
                ),
            ));
        }
        Ok(conflict) => {
            // A new authorization is what the user just approved: it wins.
            let saved = writes
                .step(NOT_WRITTEN, store.save_tokens(&key, &outcome.tokens))
                .await;
            match saved {
                Ok(()) => state.flights.store_caught_up(&key),
                Err(e) => {
                    warn!(error = %e, "could not store tokens; they are kept in memory");
                    // What the store holds, the save not having landed: what the swap found.
                    let found = match conflict {
                        Replaced::Conflict(found) => found.map(|found| *found),
                        _ => expected,
                    };
                    state.flights.write_failed(&key, found.as_ref());
                }
            }
        }
        Err(e) => {
            warn!(error = %e, "could not store tokens; they are kept in memory");
            state.flights.write_failed(&key, expected.as_ref());
        }
    }
    // A refresh renews the tokens it started from: if the cache took others meanwhile (a web
    // login completed while it ran, `OAuthLayer::adopt_login`), those are newer, and stay.
    // The ones the flight began from are not "others": the refresh may have started from
    // newer ones another process stored, which superseded them.
    if let Some(started_from) = &started_from {
        let current = state.cache.tokens_of(&outcome.protected_resource);
        let taken_meanwhile = |c: &Arc<TokenSet>| {
            !c.same_tokens(started_from) && !began_from.as_ref().is_some_and(|b| c.same_tokens(b))
        };
        if let Some(current) = current.filter(taken_meanwhile) {
            debug!(resource = %key, "the cache took other tokens during the refresh; keeping them");
            return Ok((*current).clone());
        }
    }
    install_from(
        state,
        outcome.protected_resource,
        outcome.tokens.clone(),
        provenance,
    );
    Ok(outcome.tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates(uri: &str) -> Vec<String> {
        store_candidates(&uri.parse().unwrap())
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn every_parent_path_with_and_without_its_trailing_slash() {
        assert_eq!(
            candidates("https://x.example/a/mcp"),
            [
                "https://x.example/a/mcp",
                "https://x.example/a/mcp/",
                "https://x.example/a",
                "https://x.example/a/",
                "https://x.example/",
            ]
        );
        // The URL as written comes first.
        assert_eq!(
            candidates("https://x.example/mcp/"),
            [
                "https://x.example/mcp/",
                "https://x.example/mcp",
                "https://x.example/",
            ]
        );
        assert_eq!(candidates("https://x.example/"), ["https://x.example/"]);
        assert_eq!(candidates("https://x.example"), ["https://x.example/"]);
    }
}
