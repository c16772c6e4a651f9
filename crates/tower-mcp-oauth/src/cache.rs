//! The tokens the layer holds, shared by every service made from one layer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use http::{HeaderValue, Uri};
use mcp_oauth_flow::TokenSet;
use url::Url;

/// One protected resource's current tokens.
#[derive(Clone)]
pub(crate) struct Session {
    /// The URL prefix the token may be sent to.
    resource: Url,
    pub(crate) tokens: Arc<TokenSet>,
    /// `Authorization` value, built once; cloning it is a refcount increment.
    header: HeaderValue,
    /// Increases with every token installed; a caller whose 401 came from an older epoch can
    /// retry with the newer token without a new flow.
    pub(crate) epoch: u64,
}

/// What a request was sent with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sent {
    pub(crate) epoch: u64,
}

#[derive(Default)]
pub(crate) struct Cache {
    sessions: RwLock<Vec<Session>>,
    next_epoch: AtomicU64,
}

/// Whether `uri` is covered by `resource` (same origin, path prefix at a segment boundary),
/// compared without allocating.
fn covers(resource: &Url, uri: &Uri) -> bool {
    let Some(scheme) = uri.scheme_str() else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case(resource.scheme()) {
        return false;
    }
    match (uri.host(), resource.host_str()) {
        (Some(h), Some(r)) => {
            // `Url` brackets IPv6 hosts in host_str; `Uri::host` does too.
            if !h.eq_ignore_ascii_case(r) {
                return false;
            }
        }
        _ => return false,
    }
    let default_port = match scheme {
        s if s.eq_ignore_ascii_case("https") => Some(443),
        s if s.eq_ignore_ascii_case("http") => Some(80),
        _ => None,
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
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Session>> {
        self.sessions.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The header to send with a request to `uri`, if a usable token covers it. Never for any
    /// other origin. The clock is read only when the token has an expiry.
    pub(crate) fn lookup(&self, uri: &Uri) -> Option<(HeaderValue, Sent)> {
        let sessions = self.read();
        let session = sessions.iter().find(|s| covers(&s.resource, uri))?;
        if session.tokens.expires_at().is_some()
            && session
                .tokens
                .is_expired(SystemTime::now(), std::time::Duration::ZERO)
        {
            return None;
        }
        Some((
            session.header.clone(),
            Sent {
                epoch: session.epoch,
            },
        ))
    }

    /// The session covering `uri`, whatever its state.
    pub(crate) fn session(&self, uri: &Uri) -> Option<Session> {
        self.read()
            .iter()
            .find(|s| covers(&s.resource, uri))
            .cloned()
    }

    /// A usable token newer than the one `sent` carried, if another caller installed one.
    pub(crate) fn newer(&self, uri: &Uri, sent: Sent) -> Option<HeaderValue> {
        self.lookup(uri)
            .filter(|(_, now)| now.epoch > sent.epoch)
            .map(|(h, _)| h)
    }

    /// Installs tokens for a resource, replacing the previous ones, and returns the header.
    pub(crate) fn install(&self, resource: Url, tokens: TokenSet) -> HeaderValue {
        let header = tokens.authorization_value();
        let epoch = self.next_epoch.fetch_add(1, Ordering::Relaxed) + 1;
        let session = Session {
            resource,
            tokens: Arc::new(tokens),
            header: header.clone(),
            epoch,
        };
        let mut sessions = self.sessions.write().unwrap_or_else(|e| e.into_inner());
        match sessions.iter_mut().find(|s| s.resource == session.resource) {
            Some(slot) => *slot = session,
            None => {
                sessions.push(session);
                // Most specific resource first, so a path-scoped token wins over an origin one.
                sessions.sort_by_key(|s| std::cmp::Reverse(s.resource.path().len()));
            }
        }
        header
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_oauth_flow::TokenType;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
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
        );
        assert!(cache.lookup(&uri("http://localhost:3000/mcp")).is_some());
        assert!(cache.lookup(&uri("http://localhost:4000/mcp")).is_none());
        let (header, _) = cache.lookup(&uri("http://localhost:3000/mcp")).unwrap();
        assert!(header.is_sensitive());
    }

    #[test]
    fn epochs_grow_and_expired_tokens_are_not_used() {
        let cache = Cache::default();
        let r = Url::parse("http://localhost:3000/").unwrap();
        cache.install(r.clone(), TokenSet::new("a", TokenType::Bearer, "i", "c"));
        let (_, first) = cache.lookup(&uri("http://localhost:3000/mcp")).unwrap();
        assert!(cache
            .newer(&uri("http://localhost:3000/mcp"), first)
            .is_none());
        cache.install(r.clone(), TokenSet::new("b", TokenType::Bearer, "i", "c"));
        assert_eq!(
            cache
                .newer(&uri("http://localhost:3000/mcp"), first)
                .unwrap(),
            "Bearer b"
        );
        let expired = TokenSet::new("c", TokenType::Bearer, "i", "c")
            .with_expires_at(Some(SystemTime::now() - std::time::Duration::from_secs(1)));
        cache.install(r, expired);
        assert!(cache.lookup(&uri("http://localhost:3000/mcp")).is_none());
        assert!(cache.session(&uri("http://localhost:3000/mcp")).is_some());
    }
}
