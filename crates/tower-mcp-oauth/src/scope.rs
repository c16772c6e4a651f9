//! Which requests a protected resource's token may go to: the resource's origin (scheme, host,
//! port with its default filled in; RFC 6454 §4) and, under it, its path prefix at a segment
//! boundary, with no segment below the prefix that could take the path back out of it
//! ([`may_climb`]). [`covers`] decides it for a resource URL; [`Scope`] is the same rule with
//! the resource taken apart once, for the hot path's lookup.

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
            Some((head, rest)) if same_bytes(head, prefix) => stays_below(rest),
            _ => false,
        }
    }
}

/// Whether `rest`, what follows a resource's path prefix in a request's path, keeps the request
/// under the prefix: nothing (the endpoint itself, which costs no scan), or more segments at a
/// segment boundary, none of which may climb back out ([`may_climb`]).
fn stays_below(rest: &[u8]) -> bool {
    match rest.first() {
        None => true,
        Some(b'/') => !may_climb(rest),
        Some(_) => false,
    }
}

/// Whether the part of a request's path below a resource's prefix holds a segment a server
/// may read as a step up, out of the prefix: `..` (RFC 3986 §5.2.4 removes it with the
/// segment before), spelt with `%2E` for a dot (the same character, §2.3 and §6.2.2.2), or
/// followed by a `;` parameter (servlet containers drop it before removing dot-segments); or a
/// slash spelt another way (`%2F`, `\`, `%5C`), which a server may decode or fold into `/`
/// first. `http::Uri` keeps a path as written, while the resource (`url::Url`) was normalised
/// when parsed, so `/a/mcp/../../b/mcp` is under `/a/mcp` by its bytes and is `/b/mcp` to the
/// server: such a request gets no token. Nothing an MCP client sends to its server's
/// endpoint looks like this, and a path with no `.`, `%` or `\\` is decided by one scan.
pub(crate) fn may_climb(rest: &[u8]) -> bool {
    if !rest.iter().any(|&b| matches!(b, b'.' | b'%' | b'\\')) {
        return false;
    }
    if rest.contains(&b'\\') {
        return true;
    }
    rest.split(|&b| b == b'/').any(|segment| {
        let mut chars = Decoded(segment);
        let climbs = chars.next() == Some(b'.')
            && chars.next() == Some(b'.')
            && chars.next().is_none_or(|b| b == b';');
        climbs || Decoded(segment).any(|b| b == b'/' || b == b'\\')
    })
}

/// A path segment's bytes with `%2E`, `%2F` and `%5C` (any case) read as the characters they
/// encode; every other byte as it is.
struct Decoded<'a>(&'a [u8]);

impl Iterator for Decoded<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        if first == b'%' {
            let decoded = match rest {
                [b'2', b'e' | b'E', ..] => Some(b'.'),
                [b'2', b'f' | b'F', ..] => Some(b'/'),
                [b'5', b'c' | b'C', ..] => Some(b'\\'),
                _ => None,
            };
            if let Some(decoded) = decoded {
                self.0 = &rest[2..];
                return Some(decoded);
            }
        }
        self.0 = rest;
        Some(first)
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
        Some(rest) => stays_below(rest.as_bytes()),
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

    #[test]
    fn a_path_that_may_climb_out_of_the_prefix_is_not_covered() {
        let r = Url::parse("https://gw.example/a/mcp").unwrap();
        for climbing in [
            "https://gw.example/a/mcp/../../b/mcp",
            "https://gw.example/a/mcp/..",
            "https://gw.example/a/mcp/%2e%2e/%2E%2E/b/mcp",
            "https://gw.example/a/mcp/.%2e/x",
            "https://gw.example/a/mcp/%2E./x",
            "https://gw.example/a/mcp/..;/..;/b/mcp",
            "https://gw.example/a/mcp/..%2f..%2fb/mcp",
            "https://gw.example/a/mcp/x%2F..%2F..",
            "https://gw.example/a/mcp/x%5c..",
        ] {
            assert!(!covers(&r, &uri(climbing)), "{climbing}");
            let path = uri(climbing).path().to_owned();
            let scope = Scope::new(&r).unwrap();
            assert!(!scope.covers_path(&path), "{climbing}");
        }
        for inside in [
            "https://gw.example/a/mcp",
            "https://gw.example/a/mcp/",
            "https://gw.example/a/mcp/v1.2/tools",
            "https://gw.example/a/mcp/...",
            "https://gw.example/a/mcp/..x",
            "https://gw.example/a/mcp/.well-known",
            "https://gw.example/a/mcp/%41%2e",
            "https://gw.example/a/mcp/x?next=../../b",
        ] {
            assert!(covers(&r, &uri(inside)), "{inside}");
            let path = uri(inside).path().to_owned();
            assert!(Scope::new(&r).unwrap().covers_path(&path), "{inside}");
        }
        // Above the prefix nothing is climbed out of: the whole origin is the resource's.
        let root = Url::parse("https://gw.example").unwrap();
        assert!(covers(&root, &uri("https://gw.example/a/../b")));
    }

    #[test]
    fn only_a_dot_dot_segment_or_another_slash_climbs() {
        assert!(!may_climb(b""));
        assert!(!may_climb(b"/tools/list"));
        assert!(may_climb(b"/.."));
        assert!(may_climb(b"/x/../y"));
        assert!(may_climb(b"\\x"));
        assert!(!may_climb(b"/."));
        assert!(!may_climb(b"/%2"));
        assert!(!may_climb(b"/%"));
        assert!(!may_climb(b"/a%2"));
        assert!(may_climb(b"/%2e%2e;x"));
        assert!(!may_climb(b"/..a"));
    }
}
