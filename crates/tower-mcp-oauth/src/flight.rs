//! Single-flight: per origin, at most one flow (authorization, refresh or step-up) runs at a
//! time, and every caller that needs one joins it (one whose token is due for refresh and still
//! valid sends it instead while a flow that may ask a user runs: see `acquire`).
//!
//! A flow is a `Shared` future kept in a map. Whichever waiter polls it drives it, so
//! cancelling any waiter (even the one that started it) never stalls the others; the map keeps
//! a handle too, so a flow whose waiters all went away is resumed by the next caller instead of
//! being started twice. No lock here is held across an `.await`.
//!
//! Alongside: the short backoff after a failed flow (its waiters and the callers right after
//! see the same error), the step-up limit per need, and the budget of interactive
//! authorizations per MCP server.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use futures_util::future::{FutureExt, Shared};
use http::Uri;
use mcp_oauth_flow::{discovery::server_url_from_uri, token::TokenSet, Error, ErrorKind};

use crate::store::memory::lock;
use crate::store::LastFlow;
use crate::BoxFuture;

mod logouts;

pub(crate) use logouts::LogoutGeneration;
use logouts::Logouts;

/// How many different sets of scopes one origin may have step-ups outstanding for (asked,
/// not yet followed by a success): bounds the memory a server naming new scopes in every
/// challenge could make the layer keep.
const MAX_OUTSTANDING_STEP_UPS: usize = 16;

/// The single-flight key: the request's origin. One flow per origin at a time (before
/// discovery, which server's resource covers which paths is not known, and two flows for one
/// resource would ask the user twice); a caller whose need the finished flow did not meet runs
/// its own next. Failures (their backoff), logouts and last flows are kept per MCP server
/// instead ([`server_key`]): two servers on one origin are two statuses, and one's failing
/// authorization server does not refuse the other.
///
/// In normal form (RFC 6454 §4, as the token cache compares origins): `https://h`,
/// `https://H:443` and `https://h:0443` are one origin, one flight, not a flow each.
pub(crate) fn flight_key(uri: &Uri) -> String {
    let Some(origin) = crate::origin::Origin::of_uri(uri) else {
        return format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("http"),
            crate::origin::authority_text(uri)
        )
        .to_ascii_lowercase();
    };
    let mut key = origin.scheme().to_ascii_lowercase();
    key.push_str("://");
    key.push_str(&origin.host().to_ascii_lowercase());
    if let Some(port) = origin.port_text() {
        key.push_str(port.as_str());
    }
    key
}

/// The MCP server a request is for: its URL without query or fragment (as
/// [`server_url_from_uri`] gives it). Last flows and logouts are kept under it, so a logout of
/// `https://host/a` never touches a login for `https://host/b`.
pub(crate) fn server_key(uri: &Uri) -> Option<String> {
    server_url_from_uri(uri).ok().map(String::from)
}

pub(crate) type FlightFuture = Shared<BoxFuture<'static, Result<(), Error>>>;

struct Inflight {
    id: u64,
    future: FlightFuture,
    /// The MCP server the flow runs for ([`server_key`]).
    server: String,
    /// Whether it was started to refresh a token due for it (no user is asked).
    refresh: bool,
}

/// How a caller came by its flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Joined {
    /// It started the flow.
    Started,
    /// It joined a flow for the same server: a refresh of a token due for it, or a flow that
    /// may wait for a user (an authorization, a step-up).
    SameServer { refresh: bool },
    /// It joined the flow of another server on its origin.
    OtherServer,
}

/// The most last-flow records a layer keeps in memory (one per MCP server it ran a flow for).
const MAX_LAST_FLOWS: usize = 1024;

/// The most entries each of the other records kept per MCP server, origin or URL (failures,
/// step-up counts, authorization budgets, logouts) holds. The URLs come from the application's
/// callers, and in a web app from what its users type in: each record gives way, its least
/// useful entry first, rather than grow with every URL that ever failed or was logged out of.
const MAX_RECORDS: usize = 1024;

#[derive(Default)]
pub(crate) struct Flights {
    inflight: Mutex<HashMap<String, Inflight>>,
    failures: Mutex<HashMap<String, (SystemTime, Error)>>,
    step_ups: Mutex<HashMap<(String, String), u32>>,
    authorizations: Mutex<HashMap<String, VecDeque<SystemTime>>>,
    /// How each MCP server's last flow ended (see `status.rs`), by [`server_key`]; one entry
    /// per server the layer ran a flow for. The store keeps the same record for other
    /// processes (`outcomes.rs`).
    /// At most [`MAX_LAST_FLOWS`].
    last_flows: Mutex<HashMap<String, LastFlow>>,
    /// Logouts: each logged-out server URL or resource with the number of the last logout of
    /// it. A flow installs its tokens only if no logout that reaches its server or its
    /// resource happened since it started.
    logouts: Mutex<Logouts>,
    next_id: AtomicU64,
    started: AtomicU64,
    /// Resources whose tokens this process holds but could not store (the store failed, or
    /// did not answer, when they were written), each with what the store held then as far as
    /// this process knows (`None`: nothing). See [`store_behind`](Self::store_behind).
    behind: Mutex<HashMap<String, Option<TokenSet>>>,
}

impl Flights {
    /// Joins the flow running for `key`, or starts the one `make` builds (given its id) for
    /// the MCP server `server` (`refresh`: to refresh a token due for it). Returns the future
    /// and how this caller came by it.
    pub(crate) fn join_or_start(
        &self,
        key: &str,
        server: &str,
        refresh: bool,
        make: impl FnOnce(u64) -> BoxFuture<'static, Result<(), Error>>,
    ) -> (FlightFuture, Joined) {
        let mut map = lock(&self.inflight);
        if let Some(running) = map.get(key) {
            let joined = if running.server == server {
                Joined::SameServer {
                    refresh: running.refresh,
                }
            } else {
                Joined::OtherServer
            };
            return (running.future.clone(), joined);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let future = make(id).shared();
        map.insert(
            key.to_owned(),
            Inflight {
                id,
                future: future.clone(),
                server: server.to_owned(),
                refresh,
            },
        );
        (future, Joined::Started)
    }

    /// Called by a flow for `server` when it ends: forgets it (as `key`'s flight) and, on
    /// failure, starts the server's backoff.
    pub(crate) fn finish(
        &self,
        key: &str,
        server: &str,
        id: u64,
        result: &Result<(), Error>,
        now: SystemTime,
    ) {
        // The failure is recorded before the flow leaves the map, so a caller arriving in
        // between sees either the running flow or its error, never neither (which would start
        // a second flow and skip the backoff).
        {
            let mut failures = lock(&self.failures);
            match result {
                // A flow overruled by a logout says nothing about the server: the user who
                // connects again right away must not be handed its error by the backoff.
                Err(e) if e.kind() == ErrorKind::LoggedOut => {
                    failures.remove(server);
                }
                Ok(()) => {
                    failures.remove(server);
                }
                Err(e) => {
                    // Full: the oldest failure gives way, long past its backoff (seconds)
                    // when a thousand others came after it.
                    if failures.len() >= MAX_RECORDS && !failures.contains_key(server) {
                        let oldest = failures
                            .iter()
                            .min_by_key(|(_, (at, _))| *at)
                            .map(|(server, _)| server.clone());
                        if let Some(oldest) = oldest {
                            failures.remove(&oldest);
                        }
                    }
                    failures.insert(server.to_owned(), (now, e.clone()));
                }
            }
        }
        let mut map = lock(&self.inflight);
        if map.get(key).is_some_and(|f| f.id == id) {
            map.remove(key);
        }
    }

    /// The error of a flow for the MCP server `server` that failed less than `backoff` ago.
    pub(crate) fn recent_failure(
        &self,
        server: &str,
        now: SystemTime,
        backoff: Duration,
    ) -> Option<Error> {
        let failures = lock(&self.failures);
        let (at, error) = failures.get(server)?;
        // A failure dated after `now` (the wall clock stepped back since) is past: read as
        // "0 s ago" it would hold the backoff until the clock caught up again, an hour for an
        // hour's step.
        let recent = now.duration_since(*at).is_ok_and(|ago| ago < backoff);
        recent.then(|| error.clone())
    }

    /// Forgets the failure of the last flow for the MCP server `server`: it no longer holds
    /// callers back (a login completed elsewhere since).
    #[cfg(feature = "web")]
    pub(crate) fn forget_failure(&self, server: &str) {
        lock(&self.failures).remove(server);
    }

    /// Keeps how the last flow for the server `server` ended, for the status. Called for
    /// every flow of the layer when it ends, and by a web login's own flows.
    pub(crate) fn record_outcome(&self, server: &str, record: LastFlow) {
        let mut records = lock(&self.last_flows);
        LastFlow::keep_bounded(&mut records, server, record, MAX_LAST_FLOWS);
    }

    /// Records that a write of `resource`'s tokens failed while the store held `held` (what
    /// the write was compared with, the latest the layer knows of the store), which the store
    /// is then taken to hold until [`store_caught_up`](Self::store_caught_up).
    pub(crate) fn write_failed(&self, resource: &str, held: Option<&TokenSet>) {
        lock(&self.behind).insert(resource.to_owned(), held.cloned());
    }

    /// Forgets that the store was behind for `resource`: the tokens this process holds are
    /// the store's again (a write of them landed, it adopted the store's, or a logout removed
    /// both).
    pub(crate) fn store_caught_up(&self, resource: &str) {
        lock(&self.behind).remove(resource);
    }

    /// What the store holds for `resource` while it is behind the tokens this process holds
    /// (a write of them failed): `None` when it is not behind, `Some(None)` when it held
    /// nothing. Its tokens then carry a refresh token this process already spent: a refresh
    /// starts from the tokens in memory, and its write is compared with these.
    pub(crate) fn store_behind(&self, resource: &str) -> Option<Option<TokenSet>> {
        lock(&self.behind).get(resource).cloned()
    }

    /// How the last flow for `server` this process ran ended.
    pub(crate) fn last_flow(&self, server: &str) -> Option<LastFlow> {
        lock(&self.last_flows).get(server).cloned()
    }

    /// Counts a step-up for `scope` at `key`; refuses once `max` were made without success.
    pub(crate) fn try_step_up(&self, key: &str, scope: &str, max: u32) -> Result<(), Error> {
        let mut map = lock(&self.step_ups);
        let entry = (key.to_owned(), scope.to_owned());
        // The scopes come from the server's challenge: one that names new ones every time
        // would add an entry per flow, for ever. A server with this many step-ups outstanding
        // (none of them followed by a success) gets no new one.
        if !map.contains_key(&entry)
            && map.keys().filter(|(k, _)| k == key).count() >= MAX_OUTSTANDING_STEP_UPS
        {
            return Err(Error::new(
                ErrorKind::StepUpLimit,
                format!(
                    "{key} asked for {MAX_OUTSTANDING_STEP_UPS} different sets of scopes \
                     without accepting any it was given; not asking for more"
                ),
            ));
        }
        // Full (step-ups outstanding at a thousand origins): the lowest count gives way (one
        // at its limit would let its resource prompt again), its scope's step-ups bounded
        // again by `max` from there.
        if map.len() >= MAX_RECORDS && !map.contains_key(&entry) {
            let lowest = map
                .iter()
                .min_by_key(|(_, count)| **count)
                .map(|(other, _)| other.clone());
            if let Some(other) = lowest {
                map.remove(&other);
            }
        }
        let count = map.entry(entry).or_insert(0);
        if *count >= max {
            return Err(Error::new(
                ErrorKind::StepUpLimit,
                format!(
                    "{key} keeps refusing tokens for lack of the scopes {scope:?} after {max} authorizations; not asking again"
                ),
            ));
        }
        *count += 1;
        Ok(())
    }

    /// A step-up for `scope` counted by [`try_step_up`](Self::try_step_up) got no tokens (its
    /// flow failed on the server's passing trouble): the attempt is given back.
    pub(crate) fn step_up_given_back(&self, key: &str, scope: &str) {
        let mut map = lock(&self.step_ups);
        let entry = (key.to_owned(), scope.to_owned());
        if let Some(count) = map.get_mut(&entry) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                map.remove(&entry);
            }
        }
    }

    /// A request succeeded after a step-up for `scope`: the need is met.
    ///
    /// (The count it clears is one of at most [`MAX_OUTSTANDING_STEP_UPS`] per origin.)
    pub(crate) fn step_up_succeeded(&self, key: &str, scope: &str) {
        lock(&self.step_ups).remove(&(key.to_owned(), scope.to_owned()));
    }

    /// Spends one interactive authorization of `key`'s budget: at most `budget` within
    /// `window`.
    pub(crate) fn spend_authorization(
        &self,
        key: &str,
        now: SystemTime,
        budget: u32,
        window: Duration,
    ) -> Result<(), Error> {
        let mut map = lock(&self.authorizations);
        let spent = |t: &SystemTime| now.duration_since(*t).map_or(true, |ago| ago >= window);
        if map.len() >= MAX_RECORDS && !map.contains_key(key) {
            // Full: the servers with no authorization left in the window go, and if every one
            // has some (a thousand servers authorized within it), the one with the fewest in
            // it (of those, whose last is oldest): one at its budget, a server looping on
            // refusals, goes last, and would otherwise get its budget back.
            map.retain(|_, recent| !recent.iter().all(spent));
            if map.len() >= MAX_RECORDS {
                let oldest = map
                    .iter()
                    .min_by_key(|(_, recent)| {
                        let live = recent.iter().filter(|t| !spent(t)).count();
                        (live, recent.back().copied())
                    })
                    .map(|(key, _)| key.clone());
                if let Some(oldest) = oldest {
                    map.remove(&oldest);
                }
            }
        }
        let recent = map.entry(key.to_owned()).or_default();
        // Dated after `now` (the clock stepped back): out of the window, as above.
        while recent.front().is_some_and(spent) {
            recent.pop_front();
        }
        if recent.len() as u32 >= budget {
            return Err(Error::new(
                ErrorKind::AuthorizationLimit,
                format!(
                    "{key} needed {} authorizations within {:?}; it keeps refusing fresh tokens, so the user is not asked again for now",
                    recent.len(),
                    window
                ),
            ));
        }
        recent.push_back(now);
        Ok(())
    }

    /// Counts a flow that runs: a flight that found its need already met (another caller's
    /// flow ended between that caller's look and its start) is none.
    pub(crate) fn count_started(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
    }

    /// How many flows were started (for tests and benchmarks).
    pub(crate) fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
