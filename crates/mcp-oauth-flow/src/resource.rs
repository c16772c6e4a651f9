//! The protected resource's identity (RFC 8707, RFC 9728 §3.3).

use url::Url;

use crate::error::{Error, ErrorKind};

/// The URL of the MCP server that was called, in the form a resource identifier takes:
/// scheme, authority and path, without query or fragment (RFC 8707 §2: "MUST NOT include a
/// fragment component", "SHOULD NOT include a query component").
///
/// ```
/// use mcp_oauth_flow::discovery::server_url_from_uri;
/// let uri: http::Uri = "https://MCP.example.com:443/mcp?session=1".parse().unwrap();
/// assert_eq!(server_url_from_uri(&uri).unwrap().as_str(), "https://mcp.example.com/mcp");
/// ```
pub fn server_url_from_uri(uri: &http::Uri) -> Result<Url, Error> {
    let scheme = uri.scheme_str().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidRequestUri,
            format!(
                "request URI {} is not absolute; the layer needs absolute URIs",
                shown(uri)
            ),
        )
    })?;
    let authority = uri.authority().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidRequestUri,
            format!("request URI {} has no authority", shown(uri)),
        )
    })?;
    let raw = format!("{scheme}://{authority}{}", uri.path());
    let mut url = Url::parse(&raw).map_err(|e| {
        Error::new(
            ErrorKind::InvalidRequestUri,
            format!("request URI {} is not a URL: {e}", shown(uri)),
        )
    })?;
    url.set_query(None);
    url.set_fragment(None);
    // A resource identifier names no user (RFC 8707 §2 takes an absolute URI without a
    // fragment, and MCP's canonical server URI is scheme, host, port and path): credentials a
    // caller put in the URL must not go to the authorization server as part of the `resource`,
    // nor into the keys, logs and errors the server URL names.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok(url)
}

/// Whether the resource identifier `resource` covers `server`: same scheme, host and port
/// (after RFC 3986 §6.2.2/§6.2.3 normalisation, which `Url` performs), and the resource's path
/// is a prefix of the server's path at a segment boundary.
///
/// This is the check of RFC 9728 §3.3 relaxed the way MCP needs it: a server at `/mcp` may
/// publish metadata for its whole origin. The query is not compared (RFC 8707 discourages it).
///
/// ```
/// use mcp_oauth_flow::discovery::resource_covers;
/// use url::Url;
/// let server = Url::parse("https://mcp.example.com/tenant/mcp").unwrap();
/// assert!(resource_covers(&Url::parse("https://mcp.example.com").unwrap(), &server));
/// assert!(resource_covers(&Url::parse("https://mcp.example.com/tenant/").unwrap(), &server));
/// assert!(!resource_covers(&Url::parse("https://mcp.example.com/ten").unwrap(), &server));
/// assert!(!resource_covers(&Url::parse("https://evil.example.com/tenant/mcp").unwrap(), &server));
/// ```
pub fn resource_covers(resource: &Url, server: &Url) -> bool {
    if resource.scheme() != server.scheme()
        || resource.host() != server.host()
        || resource.port_or_known_default() != server.port_or_known_default()
    {
        return false;
    }
    let prefix = resource.path().trim_end_matches('/');
    let path = server.path();
    if prefix.is_empty() {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Validates the `resource` of protected resource metadata against the server that was called
/// and returns it parsed. The caller keeps the *string* to send it byte for byte (RFC 8707
/// §2: the value the authorization server knows is the one the resource published).
pub fn check_resource(resource: &str, server: &Url) -> Result<Url, Error> {
    let parsed = Url::parse(resource).map_err(|e| {
        Error::new(
            ErrorKind::InvalidResourceMetadata,
            format!(
                "resource {:?} is not an absolute URI: {e}",
                crate::url_policy::shown_url(resource)
            ),
        )
    })?;
    if parsed.fragment().is_some() {
        return Err(Error::new(
            ErrorKind::InvalidResourceMetadata,
            format!("resource {resource:?} has a fragment (RFC 8707 §2)"),
        ));
    }
    if !resource_covers(&parsed, server) {
        return Err(Error::new(
            ErrorKind::ResourceMismatch,
            format!(
                "protected resource metadata is for {resource:?}, which does not cover the server {server}; refusing to authorize"
            ),
        ));
    }
    Ok(parsed)
}

/// A request URI as errors may show it (see [`shown_url`](crate::url_policy::shown_url)).
fn shown(uri: &http::Uri) -> String {
    crate::url_policy::shown_url(&uri.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_request_uri_is_shown_without_userinfo_or_query() {
        // Accepted by `http`, refused by `url` (an IPv4 part past 255), and not absolute.
        for (raw, shown) in [
            (
                "http://user:pw@999.1.1.1:8080/mcp?api_key=K",
                "http://999.1.1.1:8080/mcp",
            ),
            ("/mcp?api_key=K", "/mcp"),
        ] {
            let uri: http::Uri = raw.parse().unwrap();
            let error = server_url_from_uri(&uri).unwrap_err();
            let text = format!("{error} {error:?}");
            assert!(text.contains(shown), "{text}");
            for secret in ["user", "pw", "api_key"] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
        }
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn covers_same_origin_and_prefix() {
        let server = url("http://localhost:3000/mcp");
        assert!(resource_covers(&url("http://localhost:3000/mcp"), &server));
        assert!(resource_covers(&url("http://localhost:3000"), &server));
        assert!(resource_covers(&url("http://localhost:3000/"), &server));
        assert!(resource_covers(&url("HTTP://LOCALHOST:3000/mcp"), &server));
        assert!(resource_covers(
            &url("https://a.example:443/mcp"),
            &url("https://a.example/mcp/x")
        ));
    }

    #[test]
    fn rejects_other_origin_or_path() {
        let server = url("http://localhost:3000/mcp");
        assert!(!resource_covers(
            &url("https://localhost:3000/mcp"),
            &server
        ));
        assert!(!resource_covers(&url("http://localhost:3001/mcp"), &server));
        assert!(!resource_covers(&url("http://127.0.0.1:3000/mcp"), &server));
        assert!(!resource_covers(&url("http://localhost:3000/mc"), &server));
        assert!(!resource_covers(
            &url("http://localhost:3000/mcp/deeper"),
            &server
        ));
        assert!(!resource_covers(
            &url("https://evil.example.com/mcp"),
            &server
        ));
    }

    #[test]
    fn check_resource_errors() {
        let server = url("http://localhost:3000/mcp");
        assert_eq!(
            check_resource("https://evil.example.com/mcp", &server)
                .unwrap_err()
                .kind(),
            ErrorKind::ResourceMismatch
        );
        assert_eq!(
            check_resource("http://localhost:3000/mcp#x", &server)
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidResourceMetadata
        );
        assert_eq!(
            check_resource("/mcp", &server).unwrap_err().kind(),
            ErrorKind::InvalidResourceMetadata
        );
        assert!(check_resource("http://localhost:3000", &server).is_ok());
    }

    #[test]
    fn server_url_drops_query_and_requires_absolute() {
        let uri: http::Uri = "http://localhost:3000/mcp?x=1".parse().unwrap();
        assert_eq!(
            server_url_from_uri(&uri).unwrap().as_str(),
            "http://localhost:3000/mcp"
        );
        let rel: http::Uri = "/mcp".parse().unwrap();
        assert!(server_url_from_uri(&rel).is_err());
        // Credentials in the URL are no part of the server's name.
        let with_user: http::Uri = "https://user:pw@mcp.example.com/mcp".parse().unwrap();
        assert_eq!(
            server_url_from_uri(&with_user).unwrap().as_str(),
            "https://mcp.example.com/mcp"
        );
    }
}
