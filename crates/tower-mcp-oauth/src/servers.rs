//! [`McpServers`]: where the layer acts. A client shared by MCP servers and other APIs must not
//! answer a REST API's Bearer `401` with protected-resource probes, authorization-server probes
//! and (through the MCP 2025-03-26 fallback) a `POST <origin>/register`.
//!
//! The check runs on every request, so it allocates nothing: a prefix is compared field by
//! field against the request's `Uri`.

use std::fmt;
use std::sync::Arc;

use http::Uri;
use mcp_oauth_flow::url_policy::shown_url;
use mcp_oauth_flow::{Error, ErrorKind};
use url::Url;

/// The MCP servers a layer acts for; every other request passes through untouched (no token,
/// no store lookup, no discovery, no registration). Given to
/// [`OAuthLayer::only_for`](crate::OAuthLayer::only_for).
///
/// Built from origins or URL prefixes ([`prefixes`](Self::prefixes)), or from a predicate for
/// anything else ([`matching`](Self::matching)).
///
/// ```
/// use tower_mcp_oauth::McpServers;
/// let servers = McpServers::prefixes(["https://mcp.example.com", "https://tools.example.com/mcp"]).unwrap();
/// let covers = |url: &str| servers.covers(&url.parse().unwrap());
/// assert!(covers("https://mcp.example.com/anything"));
/// assert!(covers("https://MCP.example.com:443/mcp")); // host case and the default port do not matter
/// assert!(covers("https://tools.example.com/mcp"));
/// assert!(covers("https://tools.example.com/mcp/sub?x=1"));
/// assert!(!covers("https://tools.example.com/mcpx")); // a prefix ends at a path segment
/// assert!(!covers("https://tools.example.com/api"));
/// assert!(!covers("http://mcp.example.com/")); // another scheme is another origin
/// ```
#[derive(Clone)]
pub struct McpServers {
    rule: Rule,
}

#[derive(Clone)]
enum Rule {
    Prefixes(Arc<[Prefix]>),
    Matching(Arc<dyn Fn(&Uri) -> bool + Send + Sync>),
}

/// One origin, and a path under it (empty: the whole origin), normalised once.
#[derive(Debug, PartialEq, Eq)]
struct Prefix {
    /// Lowercase, as `Url` parses it.
    scheme: String,
    /// Lowercase, as `Url` parses it; IPv6 in brackets, as `Uri::host` gives it.
    host: String,
    port: u16,
    /// Without a trailing `/`; empty for a whole origin.
    path: String,
}

impl McpServers {
    /// The servers at these origins (`https://mcp.example.com`) or under these URL prefixes
    /// (`https://example.com/mcp` covers `/mcp` and `/mcp/…`, not `/mcpx`). Scheme and host are
    /// compared case-insensitively and a default port equals its absence; the path is compared
    /// exactly, by whole segments; a query never matters.
    ///
    /// Fails with [`ErrorKind::InvalidRequestUri`] on an entry that is not an absolute
    /// `http`/`https` URL, or that has a query, fragment or user info (which no request
    /// prefix can mean).
    ///
    /// ```
    /// use tower_mcp_oauth::{ErrorKind, McpServers};
    /// assert!(McpServers::prefixes(["https://mcp.example.com/mcp/"]).is_ok());
    /// let error = McpServers::prefixes(["mcp.example.com"]).err().unwrap();
    /// assert_eq!(error.kind(), ErrorKind::InvalidRequestUri);
    /// ```
    pub fn prefixes<I>(servers: I) -> Result<Self, Error>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let prefixes = servers
            .into_iter()
            .map(|s| parse_prefix(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            rule: Rule::Prefixes(prefixes.into()),
        })
    }

    /// The servers whose request URIs `predicate` accepts, for whatever a list of prefixes
    /// cannot say (a domain and all its subdomains, say). It runs on every request: keep it
    /// cheap, and free of allocations if the hot path matters.
    ///
    /// ```
    /// use tower_mcp_oauth::McpServers;
    /// let servers = McpServers::matching(|uri| {
    ///     uri.scheme_str() == Some("https")
    ///         && uri.host().is_some_and(|h| h == "example.com" || h.ends_with(".example.com"))
    /// });
    /// assert!(servers.covers(&"https://mcp.eu.example.com/mcp".parse().unwrap()));
    /// assert!(!servers.covers(&"https://example.org/mcp".parse().unwrap()));
    /// ```
    pub fn matching(predicate: impl Fn(&Uri) -> bool + Send + Sync + 'static) -> Self {
        Self {
            rule: Rule::Matching(Arc::new(predicate)),
        }
    }

    /// Whether the layer acts on a request to `uri`. A relative URI (no scheme or host) is
    /// covered by no prefix.
    pub fn covers(&self, uri: &Uri) -> bool {
        match &self.rule {
            Rule::Prefixes(prefixes) => prefixes.iter().any(|p| p.covers(uri)),
            Rule::Matching(predicate) => predicate(uri),
        }
    }
}

impl fmt::Debug for McpServers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Rule::Prefixes(prefixes) => f.debug_list().entries(prefixes.iter()).finish(),
            Rule::Matching(_) => f.write_str("McpServers::matching(..)"),
        }
    }
}

fn parse_prefix(text: &str) -> Result<Prefix, Error> {
    let invalid = |why: &str| {
        Error::new(
            ErrorKind::InvalidRequestUri,
            format!("{:?} cannot name MCP servers: {why}", shown_url(text)),
        )
    };
    let url = Url::parse(text).map_err(|e| invalid(&format!("not an absolute URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("not http or https"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a prefix has no query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("a prefix has no user info"));
    }
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return Err(invalid("no host"));
    };
    Ok(Prefix {
        scheme: url.scheme().to_owned(),
        host: host.to_owned(),
        port,
        path: url.path().trim_end_matches('/').to_owned(),
    })
}

impl Prefix {
    fn covers(&self, uri: &Uri) -> bool {
        // The scheme as the inner client reads it (`origin::web_scheme`): exactly.
        let (Some(scheme), Some(host)) = (crate::origin::web_scheme(uri), uri.host()) else {
            return false;
        };
        let port = uri.port_u16().or(match scheme {
            "https" => Some(443),
            _ => Some(80),
        });
        scheme == self.scheme
            && host.eq_ignore_ascii_case(&self.host)
            && port == Some(self.port)
            && uri
                .path()
                .strip_prefix(self.path.as_str())
                .is_some_and(|rest| {
                    (rest.is_empty() || rest.starts_with('/'))
                        // Under the prefix by its bytes, but not to a server that resolves
                        // dot-segments (RFC 3986 §5.2.4): `/mcp/../admin` is `/admin`. A
                        // prefix of a whole origin has nothing to climb out of.
                        && (self.path.is_empty() || !crate::scope::may_climb(rest.as_bytes()))
                })
    }
}

/// `server_url` as an absolute URI (scheme and authority), or an `InvalidRequestUri` error
/// saying that `what` (a logout, the status) needs one.
pub(crate) fn absolute_server_uri(server_url: &str, what: &str) -> Result<Uri, Error> {
    server_url
        .parse()
        .ok()
        .filter(|u: &Uri| u.scheme().is_some() && u.authority().is_some())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidRequestUri,
                format!(
                    "{what} needs the MCP server's absolute URL, not {:?}",
                    shown_url(server_url)
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_server_url_is_shown_without_its_credentials() {
        for bad in [
            "https://user:pw@mcp.example.com/",
            "https://mcp.example.com/?key=k",
        ] {
            let err = McpServers::prefixes([bad]).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(shown.contains("mcp.example.com"), "{shown}");
            assert!(!shown.contains("pw") && !shown.contains("key=k"), "{shown}");
        }
        let err = absolute_server_uri("/mcp?key=k", "a logout").unwrap_err();
        assert!(!err.to_string().contains("key=k"), "{err}");
    }

    fn covers(prefixes: &[&str], uri: &str) -> bool {
        McpServers::prefixes(prefixes)
            .unwrap()
            .covers(&uri.parse().unwrap())
    }

    #[test]
    fn an_origin_covers_every_path_of_that_origin_only() {
        let origin = ["https://mcp.example.com"];
        assert!(covers(&origin, "https://mcp.example.com/"));
        assert!(covers(&origin, "https://mcp.example.com/mcp?session=1"));
        assert!(covers(&origin, "HTTPS://Mcp.Example.COM/mcp"));
        assert!(covers(&origin, "https://mcp.example.com:443/mcp"));
        assert!(!covers(&origin, "https://mcp.example.com:8443/mcp"));
        assert!(!covers(&origin, "http://mcp.example.com/mcp"));
        assert!(!covers(&origin, "https://mcp.example.com.evil.com/mcp"));
        assert!(!covers(&origin, "https://evilmcp.example.com/mcp"));
        assert!(
            !covers(&origin, "/mcp"),
            "a relative URI is covered by nothing"
        );
    }

    #[test]
    fn a_prefix_covers_whole_path_segments() {
        for prefix in ["http://127.0.0.1:3000/mcp", "http://127.0.0.1:3000/mcp/"] {
            assert!(covers(&[prefix], "http://127.0.0.1:3000/mcp"), "{prefix}");
            assert!(covers(&[prefix], "http://127.0.0.1:3000/mcp/"), "{prefix}");
            assert!(
                covers(&[prefix], "http://127.0.0.1:3000/mcp/x/y"),
                "{prefix}"
            );
            assert!(!covers(&[prefix], "http://127.0.0.1:3000/mcpx"), "{prefix}");
            assert!(!covers(&[prefix], "http://127.0.0.1:3000/"), "{prefix}");
            assert!(!covers(&[prefix], "http://127.0.0.1:3000/MCP"), "{prefix}");
        }
        assert!(covers(&["http://[::1]:8080/mcp"], "http://[::1]:8080/mcp"));
        assert!(covers(&["http://example.com:80/"], "http://example.com/a"));
        // Dot-segments that climb out of the prefix, plain or encoded, are not under it.
        let prefix = ["http://127.0.0.1:3000/mcp"];
        for escape in ["/mcp/../admin", "/mcp/%2e%2e/admin", "/mcp/x/../../admin"] {
            let uri = format!("http://127.0.0.1:3000{escape}");
            assert!(!covers(&prefix, &uri), "{uri}");
        }
        assert!(covers(&prefix, "http://127.0.0.1:3000/mcp/v1.2/x"));
        // A whole origin has nothing to climb out of.
        assert!(covers(
            &["http://127.0.0.1:3000"],
            "http://127.0.0.1:3000/a/../b"
        ));
    }

    #[test]
    fn several_prefixes_any_one_covers() {
        let both = ["https://a.example/mcp", "https://b.example"];
        assert!(covers(&both, "https://a.example/mcp/1"));
        assert!(covers(&both, "https://b.example/anything"));
        assert!(!covers(&both, "https://a.example/api"));
        assert!(
            !covers(&[], "https://a.example/mcp"),
            "no prefix covers nothing"
        );
    }

    #[test]
    fn entries_that_cannot_be_prefixes_are_refused() {
        for bad in [
            "mcp.example.com",
            "/mcp",
            "ftp://mcp.example.com",
            "https://mcp.example.com/mcp?x=1",
            "https://mcp.example.com/#top",
            "https://user:pw@mcp.example.com/",
        ] {
            let error = McpServers::prefixes([bad]).err().unwrap();
            assert_eq!(error.kind(), ErrorKind::InvalidRequestUri, "{bad}");
            // Named as shown in errors: without user information, query or fragment.
            assert!(error.to_string().contains(&shown_url(bad)), "{error}");
        }
    }

    #[test]
    fn debug_lists_the_prefixes() {
        let servers = McpServers::prefixes(["https://mcp.example.com/mcp"]).unwrap();
        let debug = format!("{servers:?}");
        assert!(
            debug.contains("mcp.example.com") && debug.contains("/mcp"),
            "{debug}"
        );
        assert_eq!(
            format!("{:?}", McpServers::matching(|_| true)),
            "McpServers::matching(..)"
        );
    }
}
