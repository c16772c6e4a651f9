//! Where to look for metadata: the ordered candidate URLs of RFC 9728 §3.1, RFC 8414 §3.1,
//! OpenID Connect Discovery 1.0 §4, and the MCP 2025-03-26 fallbacks.

use url::Url;

/// The RFC 9728 well-known suffix.
pub const PROTECTED_RESOURCE_WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";
/// The RFC 8414 well-known suffix.
pub const AUTHORIZATION_SERVER_WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";
/// The OpenID Connect Discovery well-known suffix.
pub const OPENID_CONFIGURATION_WELL_KNOWN: &str = "/.well-known/openid-configuration";

/// Inserts `well_known` between the host and the path of `base` (RFC 8414 §3.1, RFC 9728 §3.1).
/// A root path (`/` or empty) adds nothing after the well-known part; any other path is kept as
/// it is, trailing slash included: a resource's metadata keeps it (RFC 9728 §3.1 removes only
/// the slash after the host), and an authorization server's callers remove it first.
fn insert_well_known(base: &Url, well_known: &str) -> Url {
    let mut url = base.clone();
    let path = base.path();
    let suffix = if path == "/" { "" } else { path };
    url.set_path(&format!("{well_known}{suffix}"));
    url.set_query(None);
    url.set_fragment(None);
    url
}

/// Appends `well_known` to `base`'s path after removing one terminating `/` (OpenID Connect
/// Discovery 1.0 §4.1).
fn append_well_known(base: &Url, well_known: &str) -> Url {
    let mut url = base.clone();
    let path = base.path().strip_suffix('/').unwrap_or(base.path());
    url.set_path(&format!("{path}{well_known}"));
    url.set_query(None);
    url.set_fragment(None);
    url
}

/// Candidate URLs for the protected resource metadata of `server`, in the order to try them:
/// the `resource_metadata` URL of the challenge (RFC 9728 §5.1), then the path-aware well-known
/// URL, then the root well-known URL (RFC 9728 §3.1; MCP 2025-11-25 "Protected Resource Metadata
/// Discovery Requirements").
///
/// ```
/// use mcp_oauth_flow::discovery::protected_resource_metadata_urls;
/// use url::Url;
/// let server = Url::parse("https://mcp.example.com/tenant/mcp").unwrap();
/// let urls: Vec<String> = protected_resource_metadata_urls(&server, None)
///     .iter().map(|u| u.to_string()).collect();
/// assert_eq!(urls, [
///     "https://mcp.example.com/.well-known/oauth-protected-resource/tenant/mcp",
///     "https://mcp.example.com/.well-known/oauth-protected-resource",
/// ]);
/// ```
pub fn protected_resource_metadata_urls(server: &Url, from_challenge: Option<&Url>) -> Vec<Url> {
    let mut out = Vec::with_capacity(3);
    if let Some(url) = from_challenge {
        out.push(url.clone());
    }
    let path_aware = insert_well_known(server, PROTECTED_RESOURCE_WELL_KNOWN);
    let root = insert_well_known(&origin_of(server), PROTECTED_RESOURCE_WELL_KNOWN);
    for candidate in [path_aware, root] {
        if !out.contains(&candidate) {
            out.push(candidate);
        }
    }
    out
}

/// Candidate URLs for the metadata of the authorization server `issuer`, in the order the MCP
/// 2025-11-25 spec gives ("Authorization Server Metadata Discovery"):
///
/// - an issuer with a path: RFC 8414 path insertion, OpenID Connect path insertion, OpenID
///   Connect path append;
/// - an issuer without one: RFC 8414, then OpenID Connect.
///
/// A path issuer's terminating `/` is removed before the insertions, as RFC 8414 §3.1 says
/// ("any terminating `/` MUST be removed"): `…/tenant1/` and `…/tenant1` name one server's
/// metadata (see [`issuer_matches`](crate::discovery::issuer_matches)), at one URL.
///
/// ```
/// use mcp_oauth_flow::discovery::authorization_server_metadata_urls;
/// use url::Url;
/// let urls: Vec<String> = authorization_server_metadata_urls(&Url::parse("https://as.example.com/tenant1").unwrap())
///     .iter().map(|u| u.to_string()).collect();
/// assert_eq!(urls, [
///     "https://as.example.com/.well-known/oauth-authorization-server/tenant1",
///     "https://as.example.com/.well-known/openid-configuration/tenant1",
///     "https://as.example.com/tenant1/.well-known/openid-configuration",
/// ]);
/// ```
pub fn authorization_server_metadata_urls(issuer: &Url) -> Vec<Url> {
    if issuer.path() == "/" || issuer.path().is_empty() {
        vec![
            insert_well_known(issuer, AUTHORIZATION_SERVER_WELL_KNOWN),
            insert_well_known(issuer, OPENID_CONFIGURATION_WELL_KNOWN),
        ]
    } else {
        let mut inserted = issuer.clone();
        if let Some(path) = issuer.path().strip_suffix('/') {
            inserted.set_path(path);
        }
        vec![
            insert_well_known(&inserted, AUTHORIZATION_SERVER_WELL_KNOWN),
            insert_well_known(&inserted, OPENID_CONFIGURATION_WELL_KNOWN),
            append_well_known(issuer, OPENID_CONFIGURATION_WELL_KNOWN),
        ]
    }
}

/// The origin of `url` as a URL with an empty path (`https://host:port/`).
pub fn origin_of(url: &Url) -> Url {
    let mut origin = url.clone();
    origin.set_path("/");
    origin.set_query(None);
    origin.set_fragment(None);
    let _ = origin.set_username("");
    let _ = origin.set_password(None);
    origin
}

/// The issuer identifier MCP 2025-03-26 derives for a server without protected resource
/// metadata: the server's origin ("the authorization base URL … discarding any existing path
/// component"), serialised without a trailing slash, as RFC 8414 issuers are.
pub fn legacy_issuer(server: &Url) -> String {
    origin_of(server).as_str().trim_end_matches('/').to_owned()
}

/// The 2025-03-26 default endpoints used when a server has neither protected resource metadata
/// nor authorization server metadata: `/authorize`, `/token` and `/register` at its origin.
pub fn legacy_endpoints(server: &Url) -> (Url, Url, Url) {
    let origin = origin_of(server);
    let at = |path: &str| {
        let mut u = origin.clone();
        u.set_path(path);
        u
    };
    (at("/authorize"), at("/token"), at("/register"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn strings(v: Vec<Url>) -> Vec<String> {
        v.into_iter().map(String::from).collect()
    }

    #[test]
    fn prm_candidates_with_challenge_url_first() {
        let server = url("http://localhost:3000/mcp");
        let from = url("http://localhost:3000/custom/metadata/location.json");
        assert_eq!(
            strings(protected_resource_metadata_urls(&server, Some(&from))),
            [
                "http://localhost:3000/custom/metadata/location.json",
                "http://localhost:3000/.well-known/oauth-protected-resource/mcp",
                "http://localhost:3000/.well-known/oauth-protected-resource",
            ]
        );
    }

    #[test]
    fn prm_candidates_dedupe_and_root_server() {
        let server = url("https://a.example/");
        assert_eq!(
            strings(protected_resource_metadata_urls(&server, None)),
            ["https://a.example/.well-known/oauth-protected-resource"]
        );
        let from = url("https://a.example/.well-known/oauth-protected-resource/mcp");
        let server = url("https://a.example/mcp");
        assert_eq!(
            protected_resource_metadata_urls(&server, Some(&from)).len(),
            2
        );
    }

    #[test]
    fn prm_candidates_keep_trailing_slash() {
        let server = url("https://a.example/mcp/");
        assert_eq!(
            strings(protected_resource_metadata_urls(&server, None))[0],
            "https://a.example/.well-known/oauth-protected-resource/mcp/"
        );
    }

    #[test]
    fn as_candidates_for_root_issuer() {
        assert_eq!(
            strings(authorization_server_metadata_urls(&url(
                "http://localhost:9000"
            ))),
            [
                "http://localhost:9000/.well-known/oauth-authorization-server",
                "http://localhost:9000/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn as_candidates_for_path_issuer_with_trailing_slash() {
        assert_eq!(
            strings(authorization_server_metadata_urls(&url(
                "https://github.com/login/oauth/"
            ))),
            // RFC 8414 §3.1: the terminating `/` removed before the insertion.
            [
                "https://github.com/.well-known/oauth-authorization-server/login/oauth",
                "https://github.com/.well-known/openid-configuration/login/oauth",
                "https://github.com/login/oauth/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn legacy_derivations() {
        let server = url("http://localhost:3000/deep/mcp?x=1");
        assert_eq!(legacy_issuer(&server), "http://localhost:3000");
        let (a, t, r) = legacy_endpoints(&server);
        assert_eq!(a.as_str(), "http://localhost:3000/authorize");
        assert_eq!(t.as_str(), "http://localhost:3000/token");
        assert_eq!(r.as_str(), "http://localhost:3000/register");
    }
}
