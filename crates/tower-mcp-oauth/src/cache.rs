//! The tokens the layer holds, shared by every service made from one layer.
//!
//! Reads are the hot path: one atomic load of an immutable snapshot (`arc-swap`), no lock, no
//! refcount traffic, so parallel callers never contend; then one hash of the request's origin
//! finds its bucket ([`OriginTable`]), so the cost is the same with one server held or ten
//! thousand. Writes (a new token, a few times an hour per server) copy the table's index and
//! swap it in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use http::{HeaderValue, Uri};
use mcp_oauth_flow::authorization::Scopes;
use mcp_oauth_flow::token::TokenSet;
use url::Url;

use crate::origin::{Origin, OwnedOrigin};
use crate::origins::OriginTable;
#[cfg(test)]
use crate::scope::covers;
use crate::scope::Scope;

/// One protected resource's current tokens.
#[derive(Clone)]
pub(crate) struct Session {
    /// The URL prefix the token may be sent to.
    pub(crate) resource: Url,
    pub(crate) tokens: Arc<TokenSet>,
    /// `Authorization` value, built once; cloning it is a refcount increment.
    header: HeaderValue,
    /// When to refresh (skew and jitter already applied); `None` when the expiry is unknown.
    pub(crate) refresh_at: Option<SystemTime>,
    /// Increases with every token installed; a caller whose 401 came from an older epoch can
    /// retry with the newer token without a new flow.
    pub(crate) epoch: u64,
    /// Whether requests must prove possession of the tokens' DPoP key (RFC 9449 §7.1); decided
    /// once here, so the hot path of a bearer token tests a bool.
    dpop: bool,
    /// Where the tokens came from, as far as a refusal of them is concerned.
    pub(crate) provenance: Provenance,
    /// `resource` as [`covers`](crate::scope::covers) compares it, taken apart once here rather than on every
    /// request. Inline, not behind an `Arc`: the hot path reads it right after the session,
    /// and a pointer more to follow is a fetch more from afar (cloning a session, which then
    /// copies its texts, happens on the slow paths only).
    scope: Scope,
}

impl Session {
    /// The `Authorization` value its requests carry.
    pub(crate) fn authorization(&self) -> &HeaderValue {
        &self.header
    }

    /// The tokens, when each request must carry a DPoP proof for them.
    pub(crate) fn dpop_tokens(&self) -> Option<Arc<TokenSet>> {
        self.dpop.then(|| Arc::clone(&self.tokens))
    }
}

/// Where a session's tokens came from, as far as a `401` or `403` refusing them is concerned
/// (see `recovery::recover` and `acquire::answers`).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) enum Provenance {
    /// A new authorization, the store, a web login: nothing to go by.
    #[default]
    Other,
    /// A refresh (this process's or another's): no one was asked for them, so a `401` refusing
    /// them for scopes they lack is worth a step-up.
    Refreshed,
    /// A step-up for these scopes: the user's answer to them, even when it grants fewer, for
    /// every request that met the same refusal meanwhile.
    SteppedUp(Arc<Scopes>),
}

/// What a request was sent with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sent {
    pub(crate) epoch: u64,
}

/// What the cache holds for a request.
pub(crate) enum Lookup {
    /// A token to use as it is; with its tokens when each request needs a DPoP proof.
    Fresh(HeaderValue, Sent, Option<Arc<TokenSet>>),
    /// A token due for refresh (it has a refresh token); the caller refreshes first.
    Stale(Sent),
    /// Nothing usable: send without a token.
    Missing,
}

/// The most origins [`Cache::mark_origin_checked`] keeps.
pub(crate) const MAX_CHECKED_ORIGINS: usize = 4096;

#[derive(Default)]
pub(crate) struct Cache {
    /// Per origin, its sessions, most specific resource first.
    pub(crate) sessions: ArcSwap<OriginTable<Session>>,
    next_epoch: AtomicU64,
    /// Origins whose stored tokens were already looked for, so the store is read once per
    /// origin, before the first request, not before every one.
    checked_origins: ArcSwap<OriginTable<OwnedOrigin>>,
}

/// The session of `sessions` covering `uri`: the first in its origin's bucket, which is ordered
/// most specific first.
#[inline(always)]
fn find<'a>(sessions: &'a OriginTable<Session>, uri: &Uri) -> Option<&'a Session> {
    let path = uri.path();
    sessions.find_for_request(uri, |s| s.scope.origin(), |s| s.scope.covers_path(path))
}

/// What to send with a request to `uri`, from one snapshot of the sessions. Never a token for
/// another origin. `now` is called only when the token has an expiry.
#[inline(always)]
pub(crate) fn lookup_in(
    sessions: &OriginTable<Session>,
    uri: &Uri,
    now: impl FnOnce() -> SystemTime,
) -> Lookup {
    let Some(session) = find(sessions, uri) else {
        return Lookup::Missing;
    };
    let sent = Sent {
        epoch: session.epoch,
    };
    let Some(refresh_at) = session.refresh_at else {
        return Lookup::Fresh(session.header.clone(), sent, session.dpop_tokens());
    };
    let now = now();
    if now < refresh_at {
        return Lookup::Fresh(session.header.clone(), sent, session.dpop_tokens());
    }
    if session.tokens.refresh_token().is_some() {
        Lookup::Stale(sent)
    } else if !session.tokens.is_expired(now, std::time::Duration::ZERO) {
        // Nothing to refresh with: use it to the end.
        Lookup::Fresh(session.header.clone(), sent, session.dpop_tokens())
    } else {
        Lookup::Missing
    }
}

impl Cache {
    /// What to send with a request to `uri`. Never a token for another origin. `now` is called
    /// only when the token has an expiry.
    // Into the hot path, with its neighbours: see `route::route`.
    #[inline(always)]
    pub(crate) fn lookup(&self, uri: &Uri, now: impl FnOnce() -> SystemTime) -> Lookup {
        lookup_in(&self.sessions.load(), uri, now)
    }

    /// The session covering `uri`, whatever its state.
    pub(crate) fn session(&self, uri: &Uri) -> Option<Session> {
        find(&self.sessions.load(), uri).cloned()
    }

    /// A token newer than the one `sent` carried, usable now, if another caller installed one.
    pub(crate) fn newer(&self, uri: &Uri, sent: Sent, now: SystemTime) -> Option<HeaderValue> {
        match self.lookup(uri, || now) {
            Lookup::Fresh(header, current, _) if current.epoch > sent.epoch => Some(header),
            _ => None,
        }
    }

    /// The current header for `uri`, if any session covers it.
    #[cfg(test)]
    pub(crate) fn header(&self, uri: &Uri) -> Option<(HeaderValue, Sent)> {
        self.session(uri)
            .map(|s| (s.header.clone(), Sent { epoch: s.epoch }))
    }

    /// The tokens behind `header` for `uri`, when requests with them need a DPoP proof.
    pub(crate) fn dpop_tokens(&self, uri: &Uri, header: &HeaderValue) -> Option<Arc<TokenSet>> {
        find(&self.sessions.load(), uri)
            .filter(|s| s.header == *header)
            .and_then(Session::dpop_tokens)
    }

    /// Installs tokens for a resource, replacing the previous ones; returns the new epoch.
    /// (The layer installs through [`install_from`](Self::install_from).)
    #[cfg(test)]
    pub(crate) fn install(
        &self,
        resource: Url,
        tokens: TokenSet,
        refresh_at: Option<SystemTime>,
    ) -> u64 {
        self.install_from(resource, tokens, refresh_at, Provenance::Other)
    }

    /// Installs tokens for a resource, replacing the previous ones, saying where they came
    /// from; returns the new epoch.
    pub(crate) fn install_from(
        &self,
        resource: Url,
        tokens: TokenSet,
        refresh_at: Option<SystemTime>,
        provenance: Provenance,
    ) -> u64 {
        let header = tokens.authorization_value();
        let dpop = tokens.resource_dpop_key().is_some();
        let epoch = self.next_epoch.fetch_add(1, Ordering::Relaxed) + 1;
        let Some(scope) = Scope::new(&resource) else {
            // No host: no request could be covered by it (see `covers`).
            return epoch;
        };
        let session = Session {
            resource,
            tokens: Arc::new(tokens),
            header,
            refresh_at,
            epoch,
            dpop,
            provenance,
            scope,
        };
        let origin = session.scope.origin().as_origin();
        self.sessions.rcu(|current| {
            current.with_bucket(origin, |bucket| {
                let mut next: Vec<Session> = bucket
                    .iter()
                    .filter(|s| s.resource != session.resource)
                    .cloned()
                    .collect();
                next.push(session.clone());
                // Most specific resource first, so a path-scoped token wins over an origin one.
                next.sort_by_key(|s| std::cmp::Reverse(s.resource.path().len()));
                next
            })
        });
        epoch
    }

    /// Whether the store was already searched for tokens for `uri`'s origin. Lock-free,
    /// allocation-free and independent of the number of origins: this runs for every request
    /// that has no token.
    pub(crate) fn origin_checked(&self, uri: &Uri) -> bool {
        let checked = self.checked_origins.load();
        checked
            .find_for_request(uri, |checked| checked, |_| true)
            .is_some()
            // A URI with no origin (relative, or no host) cannot be authorized anyway; asked
            // only when no origin was found, so a checked origin costs no parsing.
            || Origin::of_uri(uri).is_none()
    }

    /// Records that the store was searched for `uri`'s origin.
    ///
    /// At most [`MAX_CHECKED_ORIGINS`] are kept: a client that reaches ever new origins holding
    /// no token (a gateway, a crawler through one layer) would grow the record for ever, each
    /// insert copying it. Past the bound it starts over; an origin forgotten costs one more
    /// store read, at its next request.
    pub(crate) fn mark_origin_checked(&self, uri: &Uri) {
        let Some(origin) = Origin::of_uri(uri) else {
            return;
        };
        let entry = OwnedOrigin::new(origin);
        self.checked_origins.rcu(|current| {
            let emptied;
            let current = if current.buckets() >= MAX_CHECKED_ORIGINS {
                emptied = current.emptied();
                &emptied
            } else {
                &**current
            };
            current.with_bucket(origin, |bucket| {
                let mut next = bucket.to_vec();
                if !next.contains(&entry) {
                    next.push(entry.clone());
                }
                next
            })
        });
    }

    /// The tokens held for exactly `resource`, if any.
    pub(crate) fn tokens_of(&self, resource: &Url) -> Option<Arc<TokenSet>> {
        let origin = Origin::of_url(resource)?;
        self.sessions
            .load()
            .bucket(origin)
            .iter()
            .find(|s| &s.resource == resource)
            .map(|s| Arc::clone(&s.tokens))
    }

    /// Forgets the tokens of `resource` only while they are `tokens` (a refresh of them was
    /// refused for good): others installed meanwhile (a login completed elsewhere) stay.
    pub(crate) fn remove_if_holding(&self, resource: &Url, tokens: &TokenSet) {
        self.remove_where(resource, |held| held.same_tokens(tokens));
    }

    /// Forgets the tokens of a resource (a refresh was refused for good).
    pub(crate) fn remove(&self, resource: &Url) {
        self.remove_where(resource, |_| true);
    }

    /// Forgets the session of `resource` if its tokens are `doomed`.
    fn remove_where(&self, resource: &Url, doomed: impl Fn(&TokenSet) -> bool) {
        let Some(origin) = Origin::of_url(resource) else {
            return;
        };
        self.sessions.rcu(|current| {
            current.with_bucket(origin, |bucket| {
                bucket
                    .iter()
                    .filter(|s| &s.resource != resource || !doomed(&s.tokens))
                    .cloned()
                    .collect()
            })
        });
    }

    /// How many sessions are held, over all origins.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.sessions.load().len()
    }
}

#[cfg(test)]
mod tests;
