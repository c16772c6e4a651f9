//! Client identity: pre-registered clients, client ID metadata documents, and dynamic client
//! registration (RFC 7591).

use oauth2::ClientSecret;
use serde::{Deserialize, Serialize};
use serde_json::json;
use url::Url;

use crate::client_auth::ClientAuthMethod;
use crate::error::{Error, ErrorKind, OAuthErrorResponse};
use crate::metadata::{issuer_matches, AuthorizationServerMetadata};
use crate::url_policy::is_loopback_host;

/// A client registered with one authorization server, as the registration endpoint returned it
/// (RFC 7591 §3.2.1), bound to the issuer that issued it.
///
/// Client identifiers are only meaningful at the server that issued them, so stores keep
/// registrations per issuer and a resource that moves to another server gets a new one
/// (SEP-2352). `Debug` never shows the secret.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClientRegistration {
    /// The issuer of the authorization server that registered the client.
    pub issuer: String,
    /// The client identifier.
    pub client_id: String,
    /// The client secret, for confidential clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<ClientSecret>,
    /// When the secret expires (seconds since the epoch; 0 means never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<u64>,
    /// The token endpoint authentication method the server registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    /// The redirect URIs the server registered.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// The grant types the server registered (RFC 7591 §3.2.1: the response holds every
    /// registered value). Empty when the server did not say (or an earlier version of this
    /// library stored the registration): then nothing is known of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_types: Vec<String>,
}

/// A client the application registered with an authorization server out of band.
///
/// A client with a credential (a secret or a key) is bound to the issuer that registered it
/// ([`for_issuer`](Self::for_issuer)): the MCP server, not the application, names the
/// authorization server a flow talks to, and a server that names one of its own would
/// otherwise receive the credential (a mix-up, RFC 9700 §4.4). Unbound, such a client makes
/// every flow fail with [`ErrorKind::NoClientIdentity`](crate::ErrorKind::NoClientIdentity),
/// unless the application accepts that risk with [`any_issuer`](Self::any_issuer) (one
/// trusted MCP server, a test rig). A public client (an identifier alone) may be unbound.
///
/// ```
/// use mcp_oauth_flow::client::PreRegisteredClient;
/// let client = PreRegisteredClient::new("my-app")
///     .with_secret("s3cret")
///     .for_issuer("https://auth.example.com");
/// assert!(!format!("{client:?}").contains("s3cret"));
/// assert!(client.is_for("https://auth.example.com"));
/// assert!(!client.is_for("https://evil.example"));
/// // A secret bound to no issuer goes to no server...
/// let unbound = PreRegisteredClient::new("my-app").with_secret("s3cret");
/// assert!(!unbound.is_for("https://auth.example.com"));
/// // ...unless the application says any server may have it.
/// assert!(unbound.any_issuer().is_for("https://evil.example"));
/// // An identifier alone is no credential.
/// assert!(PreRegisteredClient::new("public-app").is_for("https://auth.example.com"));
/// ```
#[derive(Clone, Debug)]
pub struct PreRegisteredClient {
    /// The client identifier.
    pub client_id: String,
    /// The client secret, if the client is confidential.
    pub client_secret: Option<ClientSecret>,
    /// The issuer the client is registered with. `None`: a public client is used with any
    /// server; a confidential one only if [`any_issuer`](Self::any_issuer) says so.
    pub issuer: Option<String>,
    /// Whether a confidential client with no [`issuer`](Self::issuer) may be used with any
    /// authorization server (see [`any_issuer`](Self::any_issuer)).
    pub any_issuer: bool,
    /// The authentication method, if the registration fixed one.
    pub auth_method: Option<ClientAuthMethod>,
    /// The private key for `private_key_jwt`, if the client authenticates with one.
    pub key: Option<crate::client_assertion::ClientKey>,
}

impl PreRegisteredClient {
    /// A public client with this identifier, usable with any issuer.
    pub fn new(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: None,
            issuer: None,
            any_issuer: false,
            auth_method: None,
            key: None,
        }
    }

    /// Authenticates with a signed JWT instead of a secret (`private_key_jwt`, RFC 7523 §2.2).
    pub fn with_private_key(mut self, key: crate::client_assertion::ClientKey) -> Self {
        self.key = Some(key);
        self.auth_method = Some(ClientAuthMethod::PrivateKeyJwt);
        self
    }

    /// Whether the client can authenticate on its own (a secret or a key), as the
    /// client-credentials grant requires.
    pub fn is_confidential(&self) -> bool {
        self.client_secret.is_some() || self.key.is_some()
    }

    /// Sets the client secret.
    pub fn with_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(ClientSecret::new(secret.into()));
        self
    }

    /// Binds the client to one issuer: the `issuer` of its authorization server's metadata,
    /// or, for an MCP server without protected resource metadata (the 2025-03-26 way), that
    /// server's origin (`https://host[:port]`), whatever issuer the authorization server
    /// metadata at that origin names (unless it names exactly the origin): on that path no
    /// issuer a server serves is taken on trust for credentials.
    pub fn for_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Lets a confidential client that names no issuer be used with whichever authorization
    /// server an MCP server names: its secret or signed assertion then goes to that server.
    /// Only for an application that talks to MCP servers it trusts, all behind one
    /// authorization server (a test harness). Prefer [`for_issuer`](Self::for_issuer).
    pub fn any_issuer(mut self) -> Self {
        self.any_issuer = true;
        self
    }

    /// Whether this client holds a credential but names no issuer to keep it for and was not
    /// allowed any (see the type): a configuration every flow refuses.
    pub fn is_unbound_credential(&self) -> bool {
        self.is_confidential() && self.issuer.is_none() && !self.any_issuer
    }

    /// Fixes the token endpoint authentication method.
    pub fn with_auth_method(mut self, method: ClientAuthMethod) -> Self {
        self.auth_method = Some(method);
        self
    }

    /// Whether this client may be used with the server whose metadata says `issuer`: the one
    /// it is bound to; with no binding, any server for a public client, and for a confidential
    /// one only if [`any_issuer`](Self::any_issuer) allows it (RFC 9700 §4.4: a credential
    /// goes to no authorization server but its own).
    pub fn is_for(&self, issuer: &str) -> bool {
        match &self.issuer {
            Some(mine) => issuer_matches(mine, issuer),
            None => !self.is_confidential() || self.any_issuer,
        }
    }
}

/// Two pre-registrations are the same client when they name the same identifier for the same
/// issuer (the secret is not compared: it is a credential, not an identity).
impl PartialEq for PreRegisteredClient {
    fn eq(&self, other: &Self) -> bool {
        self.client_id == other.client_id && self.issuer == other.issuer
    }
}

/// Where the client identity comes from, in the order MCP 2025-11-25 gives ("Client
/// Registration Approaches"): pre-registration, then a client ID metadata document when the
/// server supports them, then a registration this client already holds for the issuer, then
/// dynamic registration.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientSource<'a> {
    /// A pre-registered client for this issuer.
    PreRegistered(&'a PreRegisteredClient),
    /// The URL of the client's metadata document, used as its `client_id`.
    MetadataDocument(&'a str),
    /// Look up a stored registration for the issuer; register if there is none.
    StoredOrRegister,
}

/// Chooses the [`ClientSource`] for an authorization server (a pure rule, see the type).
/// `issuer` is the issuer credentials are bound to: the metadata's issuer once it was checked
/// against where it came from, else the server's origin.
pub fn choose_client_source<'a>(
    pre_registered: &'a [PreRegisteredClient],
    metadata_document: Option<&'a str>,
    meta: &AuthorizationServerMetadata,
    issuer: &str,
) -> ClientSource<'a> {
    if let Some(client) = pre_registered.iter().find(|c| c.is_for(issuer)) {
        return ClientSource::PreRegistered(client);
    }
    match metadata_document {
        Some(url) if meta.client_id_metadata_document_supported => {
            ClientSource::MetadataDocument(url)
        }
        _ => ClientSource::StoredOrRegister,
    }
}

/// The RFC 7591 `application_type` for a redirect URI: `native` for loopback and private-use
/// schemes (RFC 8252 §7), `web` for anything else.
pub fn application_type_for(redirect_uri: &str) -> &'static str {
    match Url::parse(redirect_uri) {
        Ok(u) if u.scheme() == "https" && !is_loopback_host(&u) => "web",
        Ok(u) if u.scheme() == "http" && !is_loopback_host(&u) => "web",
        _ => "native",
    }
}

/// Whether a registered redirect URI allows `ours`: the same string, or (RFC 8252 §7.3) the
/// same loopback IP literal redirect with another port. Native apps get an ephemeral port
/// from the OS on each run, and the authorization server "MUST allow any port to be specified
/// at the time of the request for loopback IP redirect URIs", so a registration made on an
/// earlier run is still good. `localhost` is not a loopback IP literal and gets no leniency.
///
/// ```
/// use mcp_oauth_flow::client::redirect_uri_matches;
/// assert!(redirect_uri_matches("http://127.0.0.1:51000/callback", "http://127.0.0.1:52000/callback"));
/// assert!(!redirect_uri_matches("http://127.0.0.1:51000/callback", "http://127.0.0.1:52000/other"));
/// assert!(!redirect_uri_matches("http://localhost:51000/callback", "http://localhost:52000/callback"));
/// ```
pub fn redirect_uri_matches(registered: &str, ours: &str) -> bool {
    if registered == ours {
        return true;
    }
    let (Ok(a), Ok(b)) = (Url::parse(registered), Url::parse(ours)) else {
        return false;
    };
    let loopback_ip = |u: &Url| {
        u.scheme() == "http" && matches!(u.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
            || u.scheme() == "http"
                && matches!(u.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
    };
    loopback_ip(&a)
        && loopback_ip(&b)
        && a.host() == b.host()
        && a.path() == b.path()
        && a.query() == b.query()
}

/// The token endpoint authentication method to ask for at registration: `none` (a public
/// client, RFC 8252 §8.4) when the server allows it or says nothing, else the first secret
/// method it lists.
pub fn registration_auth_method(meta: &AuthorizationServerMetadata) -> ClientAuthMethod {
    let Some(list) = meta.token_endpoint_auth_methods_supported.as_deref() else {
        return ClientAuthMethod::None;
    };
    [
        ClientAuthMethod::None,
        ClientAuthMethod::ClientSecretBasic,
        ClientAuthMethod::ClientSecretPost,
    ]
    .into_iter()
    .find(|m| list.iter().any(|s| s == m.as_str()))
    .unwrap_or(ClientAuthMethod::None)
}

/// The JSON body of a registration request (RFC 7591 §2, §3.1).
///
/// `grant_types` includes `refresh_token` so that servers issue one (SEP-2207), and
/// `application_type` is always present (SEP-837).
///
/// ```
/// use mcp_oauth_flow::client::{registration_request_body, ClientAuthMethod};
/// let body = registration_request_body("My Agent", "http://127.0.0.1:8976/callback", "native", ClientAuthMethod::None);
/// assert_eq!(body["grant_types"], serde_json::json!(["authorization_code", "refresh_token"]));
/// assert_eq!(body["application_type"], "native");
/// ```
pub fn registration_request_body(
    client_name: &str,
    redirect_uri: &str,
    application_type: &str,
    method: ClientAuthMethod,
) -> serde_json::Value {
    json!({
        "client_name": client_name,
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": method.as_str(),
        "application_type": application_type,
    })
}

/// Reads a registration response (RFC 7591 §3.2.1, errors §3.2.2).
pub fn parse_registration_response(
    status: http::StatusCode,
    body: &[u8],
    issuer: &str,
) -> Result<ClientRegistration, Error> {
    #[derive(Deserialize)]
    struct Wire {
        client_id: Option<String>,
        client_secret: Option<String>,
        client_secret_expires_at: Option<u64>,
        token_endpoint_auth_method: Option<String>,
        #[serde(default)]
        redirect_uris: Vec<String>,
        #[serde(default)]
        grant_types: Vec<String>,
        error: Option<String>,
        error_description: Option<String>,
    }
    let wire: Result<Wire, _> = serde_json::from_slice(body);
    if status.is_redirection() {
        return Err(crate::url_policy::redirect_not_followed(
            "registration endpoint",
            status,
        ));
    }
    if !status.is_success() {
        // A 5xx or 429 is the server's passing trouble (RFC 9110 §15.6, RFC 6585 §4), which
        // the same request may get past later; any other answer refuses this registration.
        let kind = if status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS {
            ErrorKind::UnexpectedStatus
        } else {
            ErrorKind::RegistrationFailed
        };
        let mut err = Error::new(kind, format!("registration endpoint answered {status}"))
            .with_status(status);
        if let Ok(Wire {
            error: Some(error),
            error_description,
            ..
        }) = wire
        {
            err = err.with_oauth_error(OAuthErrorResponse {
                error,
                error_description,
            });
        }
        return Err(err);
    }
    // serde's text may quote a value of the response, the client secret among them: its
    // category and position say enough.
    let wire = wire.map_err(|e| {
        Error::new(
            ErrorKind::RegistrationFailed,
            format!(
                "registration response is not valid ({:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            ),
        )
    })?;
    let client_id = wire.client_id.filter(|c| !c.is_empty()).ok_or_else(|| {
        Error::new(
            ErrorKind::RegistrationFailed,
            "registration response has no client_id",
        )
    })?;
    Ok(ClientRegistration {
        issuer: issuer.to_owned(),
        client_id,
        // Some servers send "" for public clients; that is no secret.
        client_secret: wire
            .client_secret
            .filter(|s| !s.is_empty())
            .map(ClientSecret::new),
        client_secret_expires_at: wire.client_secret_expires_at,
        token_endpoint_auth_method: wire.token_endpoint_auth_method,
        redirect_uris: wire.redirect_uris,
        grant_types: wire.grant_types,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_registration_quotes_none_of_its_values() {
        // `client_id` of the wrong type: serde's text would quote the secret beside it.
        let body = br#"{"client_id": true, "client_secret": "cs-secret-value", "x": 7}"#;
        let wrong_secret = br#"{"client_id": "c", "client_secret": 123456789}"#;
        for body in [&body[..], &wrong_secret[..]] {
            let err = parse_registration_response(http::StatusCode::CREATED, body, "https://as")
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::RegistrationFailed);
            let shown = format!("{err} {err:?}");
            assert!(shown.contains("line 1"), "{shown}");
            for secret in ["cs-secret-value", "123456789"] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
        }
    }

    #[test]
    fn a_redirect_from_the_registration_endpoint_is_not_followed() {
        let status = http::StatusCode::TEMPORARY_REDIRECT;
        let err = parse_registration_response(status, b"{}", "https://as").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RedirectLimit);
        assert_eq!(err.status(), Some(status));
    }

    #[test]
    fn a_pre_registration_is_its_identifier_and_issuer() {
        let a = PreRegisteredClient::new("c")
            .with_secret("s1")
            .for_issuer("https://as");
        assert_eq!(
            a,
            PreRegisteredClient::new("c")
                .with_secret("s2")
                .for_issuer("https://as")
        );
        assert_ne!(
            a,
            PreRegisteredClient::new("d")
                .with_secret("s1")
                .for_issuer("https://as")
        );
        assert_ne!(
            a,
            PreRegisteredClient::new("c")
                .with_secret("s1")
                .for_issuer("https://other")
        );
        assert_ne!(a, PreRegisteredClient::new("c").with_secret("s1"));
    }

    #[test]
    fn application_type_by_redirect() {
        assert_eq!(application_type_for("https://app.example.com/cb"), "web");
        assert_eq!(application_type_for("http://app.example.com/cb"), "web");
        assert_eq!(application_type_for("http://127.0.0.1:8080/cb"), "native");
        assert_eq!(application_type_for("https://localhost/cb"), "native");
        assert_eq!(application_type_for("com.example.app:/cb"), "native");
    }

    /// Port leniency is for plain-http loopback IP literals only (RFC 8252 §7.3).
    #[test]
    fn only_http_loopback_ip_redirects_ignore_the_port() {
        assert!(redirect_uri_matches(
            "http://[::1]:1/cb",
            "http://[::1]:2/cb"
        ));
        assert!(!redirect_uri_matches(
            "http://example.com:1/cb",
            "http://example.com:2/cb"
        ));
        assert!(!redirect_uri_matches(
            "https://127.0.0.1:1/cb",
            "https://127.0.0.1:2/cb"
        ));
        assert!(!redirect_uri_matches(
            "https://[::1]:1/cb",
            "https://[::1]:2/cb"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1:1/cb",
            "http://127.0.0.2:2/cb"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1:1/cb?a",
            "http://127.0.0.1:2/cb?b"
        ));
    }

    fn meta(json: serde_json::Value) -> AuthorizationServerMetadata {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn source_order() {
        let pre = vec![PreRegisteredClient::new("pre").for_issuer("https://a")];
        let m = meta(json!({"issuer": "https://a", "client_id_metadata_document_supported": true}));
        assert!(matches!(
            choose_client_source(&pre, Some("https://c/m.json"), &m, &m.issuer),
            ClientSource::PreRegistered(_)
        ));
        assert_eq!(
            choose_client_source(&[], Some("https://c/m.json"), &m, &m.issuer),
            ClientSource::MetadataDocument("https://c/m.json")
        );
        // A pre-registered client for another issuer is not used.
        let other = meta(json!({"issuer": "https://b"}));
        assert_eq!(
            choose_client_source(&pre, Some("https://c/m.json"), &other, &other.issuer),
            ClientSource::StoredOrRegister
        );
        // CIMD needs the server's support.
        assert_eq!(
            choose_client_source(&[], Some("https://c/m.json"), &other, &other.issuer),
            ClientSource::StoredOrRegister
        );
    }

    #[test]
    fn loopback_redirects_match_on_any_port() {
        assert!(redirect_uri_matches(
            "http://[::1]:1/cb",
            "http://[::1]:2/cb"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1:1/cb",
            "http://[::1]:2/cb"
        ));
        assert!(!redirect_uri_matches(
            "https://app.example.com:1/cb",
            "https://app.example.com:2/cb"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1:1/cb?a=1",
            "http://127.0.0.1:2/cb?a=2"
        ));
        assert!(redirect_uri_matches("com.example:/cb", "com.example:/cb"));
    }

    #[test]
    fn application_types() {
        assert_eq!(application_type_for("http://127.0.0.1:1234/cb"), "native");
        assert_eq!(
            application_type_for("http://localhost:3000/callback"),
            "native"
        );
        assert_eq!(application_type_for("com.example.app:/cb"), "native");
        assert_eq!(application_type_for("https://app.example.com/cb"), "web");
    }

    #[test]
    fn registration_method_choice() {
        assert_eq!(
            registration_auth_method(&meta(json!({"issuer": "x"}))),
            ClientAuthMethod::None
        );
        assert_eq!(
            registration_auth_method(&meta(
                json!({"issuer": "x", "token_endpoint_auth_methods_supported": ["client_secret_post"]})
            )),
            ClientAuthMethod::ClientSecretPost
        );
        assert_eq!(
            registration_auth_method(&meta(
                json!({"issuer": "x", "token_endpoint_auth_methods_supported": ["client_secret_basic", "none"]})
            )),
            ClientAuthMethod::None
        );
    }

    #[test]
    fn registration_responses() {
        let ok = parse_registration_response(
            http::StatusCode::CREATED,
            br#"{"client_id":"c1","client_secret":"","token_endpoint_auth_method":"none"}"#,
            "https://a",
        )
        .unwrap();
        assert_eq!(ok.client_id, "c1");
        assert!(ok.client_secret.is_none());
        assert_eq!(ok.issuer, "https://a");

        let err = parse_registration_response(
            http::StatusCode::BAD_REQUEST,
            br#"{"error":"invalid_redirect_uri","error_description":"no"}"#,
            "https://a",
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RegistrationFailed);
        assert_eq!(err.oauth_error().unwrap().error, "invalid_redirect_uri");

        for body in [&b"{}"[..], b"nope", br#"{"client_id":""}"#] {
            assert_eq!(
                parse_registration_response(http::StatusCode::OK, body, "a")
                    .unwrap_err()
                    .kind(),
                ErrorKind::RegistrationFailed
            );
        }
    }
}
