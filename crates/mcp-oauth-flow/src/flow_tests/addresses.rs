//! The address policy at the flow's edge: every URL a server hands the flow is judged before
//! any request goes to it, against where the MCP server itself is; and nothing in a token or
//! registration response moves the credentials to another issuer.

use super::*;

const PUBLIC_RS: &str = "https://mcp.example.com";
const PUBLIC_AS: &str = "https://as.example.com";

fn start_at(server: &str, challenge: Option<String>) -> FlowStart {
    FlowStart::new(url::Url::parse(&format!("{server}/mcp")).unwrap())
        .challenge(challenge.map(|c| Challenge::parse_all([c]).unwrap().remove(0)))
}

fn full_net(rs: &str, issuer: &str, meta: Value) -> Net {
    Net::default()
        .json(
            &format!("{rs}/.well-known/oauth-protected-resource/mcp"),
            200,
            prm(&format!("{rs}/mcp"), issuer),
        )
        .json(
            &format!("{issuer}/.well-known/oauth-authorization-server"),
            200,
            meta,
        )
        .json(
            &format!("{issuer}/register"),
            201,
            json!({"client_id": "c"}),
        )
        .json(
            &format!("{issuer}/token"),
            200,
            json!({"access_token": "a", "token_type": "Bearer"}),
        )
}

fn refusal(run: &Run) -> String {
    assert_eq!(run.failed(), ErrorKind::InsecureUrl);
    match &run.end {
        Action::Failed(e) => e.to_string(),
        _ => unreachable!(),
    }
}

/// A challenge naming the cloud metadata service or a private address as its resource
/// metadata is refused before any request: the first `Send` never leaves the flow.
#[test]
fn a_challenge_cannot_point_at_cloud_metadata_or_a_private_address() {
    for (metadata, rule) in [
        ("https://169.254.169.254/latest/meta-data", "never fetched"),
        ("http://169.254.169.254/", "must use https"),
        ("https://10.0.0.1/prm", "private address (RFC 1918)"),
        ("https://[fd00::1]/prm", "unique-local"),
        ("https://100.64.0.1/prm", "shared"),
        ("https://198.51.100.7/prm", "documentation"),
        ("https://user:pw@mcp.example.com/prm", "user info"),
    ] {
        let challenge = format!(r#"Bearer resource_metadata="{metadata}""#);
        let run = run_with(
            config(),
            start_at(PUBLIC_RS, Some(challenge)),
            &Net::default(),
            Consent::Approve(None),
            None,
        );
        let error = refusal(&run);
        assert!(run.sent.is_empty(), "{metadata}: {:?}", run.sent);
        assert!(error.contains(rule), "{metadata}: {error}");
        assert!(!error.contains("pw@"), "{error}");
    }
}

/// A public MCP server whose metadata names a private authorization server: the resource
/// metadata is fetched, the private address never is.
#[test]
fn a_public_server_cannot_send_the_client_to_a_private_authorization_server() {
    for issuer in [
        "https://10.0.0.1",
        "https://169.254.169.254",
        "http://127.0.0.1:4000",
    ] {
        let net = full_net(PUBLIC_RS, issuer, as_meta(issuer));
        let run = run_with(
            config(),
            start_at(PUBLIC_RS, None),
            &net,
            Consent::Approve(None),
            None,
        );
        let error = refusal(&run);
        assert_eq!(
            run.sent,
            [format!(
                "GET {PUBLIC_RS}/.well-known/oauth-protected-resource/mcp"
            )],
            "{issuer}"
        );
        let host = url::Url::parse(issuer)
            .unwrap()
            .host_str()
            .unwrap()
            .to_owned();
        assert!(error.contains(&host), "{error}");
        assert!(error.contains("authorization server metadata"), "{error}");
    }
}

/// A server on a private network may use an authorization server on that network (a server on
/// `10.1.2.3` may send the client to `10.1.2.4`), all the way to tokens.
#[test]
fn a_private_server_may_use_a_private_authorization_server() {
    let (rs, issuer) = ("https://10.1.2.3", "https://10.1.2.4");
    let run = run_with(
        config(),
        start_at(rs, None),
        &full_net(rs, issuer, as_meta(issuer)),
        Consent::Approve(None),
        None,
    );
    assert_eq!(run.outcome().tokens.issuer(), issuer);
    assert!(run.sent.contains(&format!("AUTHORIZE {issuer}/authorize")));
    // Not a link-local or unique-local one, though: another kind of network.
    let other = "https://[fd00::4]";
    let run = run_with(
        config(),
        start_at(rs, None),
        &full_net(rs, other, as_meta(other)),
        Consent::Approve(None),
        None,
    );
    assert!(refusal(&run).contains("unique-local"));
}

/// Endpoints in public metadata are judged one by one: a private registration, token or
/// authorization endpoint is never used, nor an endpoint with a fragment.
#[test]
fn each_endpoint_of_public_metadata_is_judged() {
    for (member, value, last_sent) in [
        (
            "registration_endpoint",
            "https://192.168.0.1/register",
            "GET",
        ),
        (
            "authorization_endpoint",
            "https://[fe80::1]/authorize",
            "POST",
        ),
        ("token_endpoint", "https://172.16.0.1/token", "AUTHORIZE"),
        (
            "authorization_endpoint",
            "https://as.example.com/authorize#x",
            "POST",
        ),
    ] {
        let mut meta = as_meta(PUBLIC_AS);
        meta[member] = json!(value);
        let run = run_with(
            config(),
            start_at(PUBLIC_RS, None),
            &full_net(PUBLIC_RS, PUBLIC_AS, meta),
            Consent::Approve(None),
            None,
        );
        let error = refusal(&run);
        let host = url::Url::parse(value)
            .unwrap()
            .host_str()
            .unwrap()
            .to_owned();
        assert!(error.contains(&host), "{member}: {error}");
        assert!(
            run.sent
                .iter()
                .all(|s| !s.contains(&host) || host == "as.example.com"),
            "{member}: {:?}",
            run.sent
        );
        assert!(!run.sent_token_request(), "{member}: {:?}", run.sent);
        assert!(
            run.sent.last().unwrap().starts_with(last_sent),
            "{member}: {:?}",
            run.sent
        );
    }
}

/// A policy configured on the client replaces the default: an application whose public MCP
/// servers use a private authorization server allows that class.
#[test]
fn the_configured_policy_decides() {
    use crate::url_policy::{AddressClass, AddressPolicy};
    let issuer = "https://10.0.0.1";
    let config = config().url_policy(AddressPolicy::new().allow(AddressClass::Private));
    let run = run_with(
        config,
        start_at(PUBLIC_RS, None),
        &full_net(PUBLIC_RS, issuer, as_meta(issuer)),
        Consent::Approve(None),
        None,
    );
    assert_eq!(run.outcome().tokens.issuer(), issuer);
}

/// The issuer credentials are bound to is the one whose metadata was checked (RFC 8414 §3.3):
/// an `issuer` (or `iss`) member in a registration or token response changes neither the
/// tokens' issuer nor the registration's.
#[test]
fn a_token_or_registration_response_cannot_rebind_the_issuer() {
    let evil = "https://evil.example.com";
    let net = full_net(PUBLIC_RS, PUBLIC_AS, as_meta(PUBLIC_AS))
        .json(
            &format!("{PUBLIC_AS}/register"),
            201,
            json!({"client_id": "c", "issuer": evil, "iss": evil}),
        )
        .json(
            &format!("{PUBLIC_AS}/token"),
            200,
            json!({"access_token": "a", "token_type": "Bearer", "refresh_token": "r",
                   "issuer": evil, "iss": evil}),
        );
    let run = run_with(
        config(),
        start_at(PUBLIC_RS, None),
        &net,
        Consent::Approve(None),
        None,
    );
    assert_eq!(run.outcome().tokens.issuer(), PUBLIC_AS);
    assert_eq!(run.saved.len(), 1);
    assert_eq!(run.saved[0].issuer, PUBLIC_AS);
    assert_eq!(
        run.outcome().authorization_server.as_ref().unwrap().issuer,
        PUBLIC_AS
    );
}

/// A token or registration endpoint that redirects is not followed (the request carries
/// credentials, and the redirect would take them to a URL no metadata named): the flow ends
/// with `RedirectLimit` and nothing is sent to the target. Discovery, by contrast, follows a
/// same-origin redirect (see `discovery.rs`).
#[test]
fn token_and_registration_redirects_are_not_followed() {
    let elsewhere = "https://elsewhere.example.com/steal";
    let redirect = |status| (status, vec![("location", elsewhere.to_owned())]);
    for (endpoint, status) in [("register", 307), ("token", 308), ("token", 302)] {
        let (status, headers) = redirect(status);
        let net = full_net(PUBLIC_RS, PUBLIC_AS, as_meta(PUBLIC_AS)).raw(
            &format!("{PUBLIC_AS}/{endpoint}"),
            status,
            headers,
            "",
        );
        let run = run_with(
            config(),
            start_at(PUBLIC_RS, None),
            &net,
            Consent::Approve(None),
            None,
        );
        assert_eq!(
            run.failed(),
            ErrorKind::RedirectLimit,
            "{endpoint} {status}"
        );
        assert!(
            run.sent.iter().all(|s| !s.contains("elsewhere")),
            "{:?}",
            run.sent
        );
        assert!(
            run.sent.last().unwrap().ends_with(&format!("/{endpoint}")),
            "{:?}",
            run.sent
        );
    }
}
