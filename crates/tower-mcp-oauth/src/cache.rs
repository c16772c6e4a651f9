//! The tokens the layer holds, shared by every service made from one layer.
//!
//! Reads are the hot path: one atomic load of an immutable snapshot (`arc-swap`), no lock, no
//! refcount traffic, so parallel callers never contend. Writes (a new token, a few times an hour)
//! copy the small list and swap it in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use http::{HeaderValue, Uri};
use mcp_oauth_flow::token::TokenSet;
use url::Url;

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
}

impl Session {
    /// The tokens, when each request must carry a DPoP proof for them.
    fn dpop_tokens(&self) -> Option<Arc<TokenSet>> {
        self.dpop.then(|| Arc::clone(&self.tokens))
    }
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

#[derive(Default)]
pub(crate) struct Cache {
    sessions: ArcSwap<Vec<Session>>,
    next_epoch: AtomicU64,
    /// Origins (`scheme`, `authority`, lowercased) whose stored tokens were already looked for,
    /// so the store is read once per origin, before the first request, not before every one.
    checked_origins: ArcSwap<Vec<(String, String)>>,
}

/// Whether `uri` is covered by `resource` (same origin, path prefix at a segment boundary),
/// compared without allocating.
pub(crate) fn covers(resource: &Url, uri: &Uri) -> bool {
    let Some(scheme) = uri.scheme_str() else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case(resource.scheme()) {
        return false;
    }
    match (uri.host(), resource.host_str()) {
        (Some(h), Some(r)) if h.eq_ignore_ascii_case(r) => {}
        _ => return false,
    }
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else {
        None
    };
    if uri.port_u16().or(default_port) != resource.port_or_known_default() {
        return false;
    }
    let prefix = resource.path().trim_end_matches('/');
    if prefix.is_empty() {
        return true;
    }
    match uri.path().strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

impl Cache {
    /// What to send with a request to `uri`. Never a token for another origin. `now` is called
    /// only when the token has an expiry.
    pub(crate) fn lookup(&self, uri: &Uri, now: impl FnOnce() -> SystemTime) -> Lookup {
        let sessions = self.sessions.load();
        let Some(session) = sessions.iter().find(|s| covers(&s.resource, uri)) else {
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

    /// The session covering `uri`, whatever its state.
    pub(crate) fn session(&self, uri: &Uri) -> Option<Session> {
        self.sessions
            .load()
            .iter()
            .find(|s| covers(&s.resource, uri))
            .cloned()
    }

    /// A token newer than the one `sent` carried, usable now, if another caller installed one.
    pub(crate) fn newer(&self, uri: &Uri, sent: Sent, now: SystemTime) -> Option<HeaderValue> {
        match self.lookup(uri, || now) {
            Lookup::Fresh(header, current, _) if current.epoch > sent.epoch => Some(header),
            _ => None,
        }
    }

    /// The current header for `uri`, if any session covers it.
    pub(crate) fn header(&self, uri: &Uri) -> Option<(HeaderValue, Sent)> {
        self.session(uri)
            .map(|s| (s.header.clone(), Sent { epoch: s.epoch }))
    }

    /// The tokens behind `header` for `uri`, when requests with them need a DPoP proof.
    pub(crate) fn dpop_tokens(&self, uri: &Uri, header: &HeaderValue) -> Option<Arc<TokenSet>> {
        self.sessions
            .load()
            .iter()
            .find(|s| covers(&s.resource, uri))
            .filter(|s| s.header == *header)
            .and_then(Session::dpop_tokens)
    }

    /// Installs tokens for a resource, replacing the previous ones; returns the new epoch.
    pub(crate) fn install(
        &self,
        resource: Url,
        tokens: TokenSet,
        refresh_at: Option<SystemTime>,
    ) -> u64 {
        let header = tokens.authorization_value();
        let dpop = tokens.resource_dpop_key().is_some();
        let epoch = self.next_epoch.fetch_add(1, Ordering::Relaxed) + 1;
        let session = Session {
            resource,
            tokens: Arc::new(tokens),
            header,
            refresh_at,
            epoch,
            dpop,
        };
        self.sessions.rcu(|current| {
            let mut next: Vec<Session> = current
                .iter()
                .filter(|s| s.resource != session.resource)
                .cloned()
                .collect();
            next.push(session.clone());
            // Most specific resource first, so a path-scoped token wins over an origin one.
            next.sort_by_key(|s| std::cmp::Reverse(s.resource.path().len()));
            next
        });
        epoch
    }

    /// Whether the store was already searched for tokens for `uri`'s origin. Lock-free and
    /// allocation-free: this runs for every request that has no token.
    pub(crate) fn origin_checked(&self, uri: &Uri) -> bool {
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            // A relative URI cannot be authorized anyway.
            return true;
        };
        self.checked_origins.load().iter().any(|(s, a)| {
            s.eq_ignore_ascii_case(scheme) && a.eq_ignore_ascii_case(authority.as_str())
        })
    }

    /// Records that the store was searched for `uri`'s origin.
    pub(crate) fn mark_origin_checked(&self, uri: &Uri) {
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return;
        };
        let entry = (
            scheme.to_ascii_lowercase(),
            authority.as_str().to_ascii_lowercase(),
        );
        self.checked_origins.rcu(|current| {
            let mut next = (**current).clone();
            if !next.contains(&entry) {
                next.push(entry.clone());
            }
            next
        });
    }

    /// Forgets the tokens of a resource (a refresh was refused for good).
    pub(crate) fn remove(&self, resource: &Url) {
        self.sessions.rcu(|current| {
            current
                .iter()
                .filter(|s| &s.resource != resource)
                .cloned()
                .collect::<Vec<_>>()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_oauth_flow::{secrets::RefreshToken, token::TokenType};
    use std::time::Duration;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    fn fresh(l: Lookup) -> Option<HeaderValue> {
        match l {
            Lookup::Fresh(h, _, _) => Some(h),
            _ => None,
        }
    }

    #[test]
    fn coverage_is_origin_and_path_prefix() {
        let r = Url::parse("http://localhost:3000/mcp").unwrap();
        assert!(covers(&r, &uri("http://localhost:3000/mcp")));
        assert!(covers(&r, &uri("http://LOCALHOST:3000/mcp/sub?x=1")));
        assert!(!covers(&r, &uri("http://localhost:3000/mcpx")));
        assert!(!covers(&r, &uri("http://localhost:3001/mcp")));
        assert!(!covers(&r, &uri("https://localhost:3000/mcp")));
        assert!(!covers(&r, &uri("/mcp")));
        let root = Url::parse("https://example.com").unwrap();
        assert!(covers(&root, &uri("https://example.com:443/anything")));
        assert!(!covers(&root, &uri("https://example.com.evil.net/")));
    }

    #[test]
    fn tokens_never_leave_their_resource() {
        let cache = Cache::default();
        cache.install(
            Url::parse("http://localhost:3000/mcp").unwrap(),
            TokenSet::new("t", TokenType::Bearer, "i", "c"),
            None,
        );
        let now = SystemTime::now;
        let header = fresh(cache.lookup(&uri("http://localhost:3000/mcp"), now)).unwrap();
        assert!(header.is_sensitive());
        assert!(fresh(cache.lookup(&uri("http://localhost:4000/mcp"), now)).is_none());
    }

    /// A DPoP token's session hands its tokens to the hot path; a bearer one (even with a key,
    /// RFC 9449 §5's bearer answer to a proof) hands nothing, so no proof is signed.
    #[test]
    fn only_dpop_sessions_carry_their_tokens() {
        let cache = Cache::default();
        let key = mcp_oauth_flow::dpop::DpopKey::from_entropy([2; 32]).unwrap();
        let dpop = Url::parse("http://localhost:3000/a").unwrap();
        let bearer = Url::parse("http://localhost:3000/b").unwrap();
        cache.install(
            dpop,
            TokenSet::new("d", TokenType::DPoP, "i", "c").with_dpop_key(Some(key.clone())),
            None,
        );
        cache.install(
            bearer,
            TokenSet::new("b", TokenType::Bearer, "i", "c").with_dpop_key(Some(key)),
            None,
        );
        let now = SystemTime::now;
        let Lookup::Fresh(header, _, Some(tokens)) =
            cache.lookup(&uri("http://localhost:3000/a"), now)
        else {
            panic!("a DPoP session")
        };
        assert_eq!(header, "DPoP d");
        assert_eq!(tokens.access_token().secret(), "d");
        assert!(cache
            .dpop_tokens(&uri("http://localhost:3000/a"), &header)
            .is_some());
        assert!(matches!(
            cache.lookup(&uri("http://localhost:3000/b"), now),
            Lookup::Fresh(_, _, None)
        ));
        // A header that is not the session's current one gets no proof from it.
        let stale = HeaderValue::from_static("DPoP old");
        assert!(cache
            .dpop_tokens(&uri("http://localhost:3000/a"), &stale)
            .is_none());
    }

    #[test]
    fn staleness_and_epochs() {
        let cache = Cache::default();
        let r = Url::parse("http://localhost:3000/").unwrap();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let u = uri("http://localhost:3000/mcp");
        cache.install(
            r.clone(),
            TokenSet::new("a", TokenType::Bearer, "i", "c"),
            None,
        );
        let Lookup::Fresh(_, first, _) = cache.lookup(&u, || t0) else {
            panic!()
        };
        assert!(cache.newer(&u, first, t0).is_none());

        // Due for refresh with a refresh token: stale. Without one: used to its expiry.
        let with_rt = TokenSet::new("b", TokenType::Bearer, "i", "c")
            .with_refresh_token(Some(RefreshToken::new("r".into())))
            .with_expires_at(Some(t0 + Duration::from_secs(60)));
        cache.install(r.clone(), with_rt, Some(t0 + Duration::from_secs(50)));
        assert!(fresh(cache.lookup(&u, || t0)).is_some());
        assert_eq!(cache.newer(&u, first, t0).unwrap(), "Bearer b");
        assert!(matches!(
            cache.lookup(&u, || t0 + Duration::from_secs(50)),
            Lookup::Stale(_)
        ));

        let no_rt = TokenSet::new("c", TokenType::Bearer, "i", "c")
            .with_expires_at(Some(t0 + Duration::from_secs(60)));
        cache.install(r.clone(), no_rt, Some(t0 + Duration::from_secs(50)));
        assert!(fresh(cache.lookup(&u, || t0 + Duration::from_secs(55))).is_some());
        assert!(matches!(
            cache.lookup(&u, || t0 + Duration::from_secs(60)),
            Lookup::Missing
        ));

        cache.remove(&r);
        assert!(cache.session(&u).is_none());
    }
}
