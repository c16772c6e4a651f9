//! Which requests a protected resource's token may go to: the resource's origin (scheme, host,
//! port with its default filled in; RFC 6454 §4) and, under it, its path prefix at a segment
//! boundary. [`covers`] decides it for a resource URL; [`Scope`] is the same rule with the
//! resource taken apart once, for the hot path's lookup.

use http::Uri;
use url::Url;

use crate::origin::{same_bytes, Origin, OwnedOrigin};

/// A resource URL's origin and path prefix, lowercased and trimmed once.
#[derive(Clone)]
pub(crate) struct Scope {
    origin: OwnedOrigin,
    /// The path without its trailing `/` (empty for the whole origin).
    prefix: Box<str>,
}

impl Scope {
    /// The resource's origin.
    pub(crate) fn origin(&self) -> &OwnedOrigin {
        &self.origin
    }

    pub(crate) fn new(resource: &Url) -> Option<Self> {
        Some(Self {
            origin: OwnedOrigin::new(Origin::of_url(resource)?),
            prefix: resource.path().trim_end_matches('/').into(),
        })
    }

    /// Whether `path`, on this scope's origin, is inside it: under its prefix at a segment
    /// boundary.
    #[inline]
    pub(crate) fn covers_path(&self, path: &str) -> bool {
        if self.prefix.is_empty() {
            return true;
        }
        let (path, prefix) = (path.as_bytes(), self.prefix.as_bytes());
        match path.split_at_checked(prefix.len()) {
            Some((head, rest)) if same_bytes(head, prefix) => {
                rest.first().is_none_or(|&b| b == b'/')
            }
            _ => false,
        }
    }
}

/// Whether `uri` is covered by `resource` (same origin, path prefix at a segment boundary),
/// compared without allocating.
pub(crate) fn covers(resource: &Url, uri: &Uri) -> bool {
    Origin::of_uri(uri).is_some_and(|origin| covers_at(resource, &origin, uri.path()))
}

/// [`covers`] for a request whose origin was already taken apart. The hot path's lookup (the
/// cache's `find`, with [`Scope`]) is the same test with the resource taken apart once; a unit
/// test in `cache` holds the two together.
fn covers_at(resource: &Url, origin: &Origin<'_>, path: &str) -> bool {
    if !origin.scheme().eq_ignore_ascii_case(resource.scheme()) {
        return false;
    }
    match resource.host_str() {
        Some(r) if origin.host().eq_ignore_ascii_case(r) => {}
        _ => return false,
    }
    if origin.port() != resource.port_or_known_default() {
        return false;
    }
    let prefix = resource.path().trim_end_matches('/');
    if prefix.is_empty() {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
