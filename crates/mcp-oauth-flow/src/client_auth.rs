//! Client authentication at the token endpoint (RFC 6749 §2.3, RFC 7591 §2).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use oauth2::ClientSecret;
use serde::{Deserialize, Serialize};

/// How the client proves its identity at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClientAuthMethod {
    /// HTTP Basic with the form-urlencoded id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body (RFC 6749 §2.3.1).
    ClientSecretPost,
    /// A public client: `client_id` in the body, no secret (RFC 7591 §2 `none`).
    None,
    /// A JWT signed with the client's private key (RFC 7523 §2.2).
    PrivateKeyJwt,
}

impl ClientAuthMethod {
    /// The RFC 7591 / RFC 8414 name of the method.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }

    /// The method of an RFC 7591 / RFC 8414 name, if this crate implements it.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "client_secret_basic" => Some(Self::ClientSecretBasic),
            "client_secret_post" => Some(Self::ClientSecretPost),
            "none" => Some(Self::None),
            "private_key_jwt" => Some(Self::PrivateKeyJwt),
            _ => None,
        }
    }
}

/// Chooses the client authentication method:
///
/// 1. the method the registration response (or the pre-registration) names, when it is usable:
///    a secret method needs a secret;
/// 2. otherwise, with a secret, the first of `client_secret_basic`, `client_secret_post` that the
///    server lists in `token_endpoint_auth_methods_supported`; when the server lists nothing,
///    `client_secret_basic`, the RFC 8414 §2 default;
/// 3. otherwise `none`.
///
/// ```
/// use mcp_oauth_flow::client::{negotiate_client_auth, ClientAuthMethod};
/// let post_only = vec!["client_secret_post".to_string()];
/// assert_eq!(negotiate_client_auth(None, true, Some(&post_only)), ClientAuthMethod::ClientSecretPost);
/// assert_eq!(negotiate_client_auth(None, true, None), ClientAuthMethod::ClientSecretBasic);
/// assert_eq!(negotiate_client_auth(Some("client_secret_post"), true, None), ClientAuthMethod::ClientSecretPost);
/// assert_eq!(negotiate_client_auth(None, false, Some(&post_only)), ClientAuthMethod::None);
/// ```
pub fn negotiate_client_auth(
    registered: Option<&str>,
    has_secret: bool,
    supported: Option<&[String]>,
) -> ClientAuthMethod {
    if let Some(method) = registered.and_then(ClientAuthMethod::from_name) {
        if method == ClientAuthMethod::None
            || (has_secret && method != ClientAuthMethod::PrivateKeyJwt)
        {
            return method;
        }
    }
    if !has_secret {
        return ClientAuthMethod::None;
    }
    let Some(supported) = supported else {
        return ClientAuthMethod::ClientSecretBasic;
    };
    let listed = |m: ClientAuthMethod| supported.iter().any(|s| s == m.as_str());
    [
        ClientAuthMethod::ClientSecretBasic,
        ClientAuthMethod::ClientSecretPost,
    ]
    .into_iter()
    .find(|m| listed(*m))
    .unwrap_or(if listed(ClientAuthMethod::None) {
        ClientAuthMethod::None
    } else {
        ClientAuthMethod::ClientSecretBasic
    })
}

/// The credentials a token request is authenticated with. `Debug` never shows the secret or
/// the assertion.
#[derive(Clone)]
pub struct ClientCredentials {
    /// The client identifier.
    pub client_id: String,
    /// The client secret, for confidential clients.
    pub client_secret: Option<ClientSecret>,
    /// How to present them.
    pub method: ClientAuthMethod,
    /// The signed client assertion, for [`ClientAuthMethod::PrivateKeyJwt`].
    pub assertion: Option<String>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("method", &self.method)
            .field("assertion", &self.assertion.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl ClientCredentials {
    /// Adds the credentials to a token request: a Basic `Authorization` header (marked
    /// sensitive) or form fields.
    pub fn apply(&self, form: &mut Vec<(&'static str, String)>, headers: &mut HeaderMap) {
        match (self.method, &self.client_secret) {
            (ClientAuthMethod::ClientSecretBasic, Some(secret)) => {
                // RFC 6749 §2.3.1: both halves are form-urlencoded before base64.
                let enc = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                let raw = format!("{}:{}", enc(&self.client_id), enc(secret.secret()));
                let mut value = HeaderValue::try_from(format!("Basic {}", STANDARD.encode(raw)))
                    .expect("base64 is a valid header value");
                value.set_sensitive(true);
                headers.insert(AUTHORIZATION, value);
            }
            (ClientAuthMethod::ClientSecretPost, Some(secret)) => {
                form.push(("client_id", self.client_id.clone()));
                form.push(("client_secret", secret.secret().clone()));
            }
            (ClientAuthMethod::PrivateKeyJwt, _) if self.assertion.is_some() => {
                // RFC 7523 §2.2: the assertion identifies the client; `client_id` is optional.
                form.push((
                    "client_assertion_type",
                    crate::client_assertion::JWT_BEARER_ASSERTION_TYPE.to_owned(),
                ));
                form.push((
                    "client_assertion",
                    self.assertion.clone().unwrap_or_default(),
                ));
            }
            // A jwt-bearer grant without a client (RFC 7523 §3.1: client authentication is
            // optional there; the assertion identifies the workload) sends no `client_id`.
            _ if self.client_id.is_empty() => {}
            _ => form.push(("client_id", self.client_id.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client registered as public (`none`, RFC 7591 §2) stays public even if it was also
    /// handed a secret: the server expects no authentication from it.
    #[test]
    fn a_public_registration_with_a_secret_stays_public() {
        let basic = vec!["client_secret_basic".to_string(), "none".to_string()];
        assert_eq!(
            negotiate_client_auth(Some("none"), true, Some(&basic)),
            ClientAuthMethod::None
        );
        assert_eq!(
            negotiate_client_auth(Some("none"), true, None),
            ClientAuthMethod::None
        );
        // A secret method without a secret falls back; private_key_jwt is never negotiated.
        assert_eq!(
            negotiate_client_auth(Some("client_secret_post"), false, Some(&basic)),
            ClientAuthMethod::None
        );
        assert_eq!(
            negotiate_client_auth(Some("private_key_jwt"), true, None),
            ClientAuthMethod::ClientSecretBasic
        );
        let none_only = vec!["none".to_string()];
        assert_eq!(
            negotiate_client_auth(None, true, Some(&none_only)),
            ClientAuthMethod::None
        );
        let unknown = vec!["tls_client_auth".to_string()];
        assert_eq!(
            negotiate_client_auth(None, true, Some(&unknown)),
            ClientAuthMethod::ClientSecretBasic
        );
    }

    fn creds(method: ClientAuthMethod, secret: Option<&str>) -> ClientCredentials {
        ClientCredentials {
            client_id: "id:with space".into(),
            client_secret: secret.map(|s| ClientSecret::new(s.into())),
            method,
            assertion: None,
        }
    }

    #[test]
    fn basic_encodes_both_halves() {
        let mut form = Vec::new();
        let mut headers = HeaderMap::new();
        creds(ClientAuthMethod::ClientSecretBasic, Some("s%cret")).apply(&mut form, &mut headers);
        assert!(form.is_empty());
        let value = headers.get(AUTHORIZATION).unwrap();
        assert!(value.is_sensitive());
        let b64 = value.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let decoded = String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap();
        assert_eq!(decoded, "id%3Awith+space:s%25cret");
    }

    #[test]
    fn post_and_none_use_the_body() {
        let mut form = Vec::new();
        let mut headers = HeaderMap::new();
        creds(ClientAuthMethod::ClientSecretPost, Some("s")).apply(&mut form, &mut headers);
        assert_eq!(
            form,
            vec![
                ("client_id", "id:with space".into()),
                ("client_secret", "s".into())
            ]
        );
        assert!(headers.is_empty());

        let mut form = Vec::new();
        creds(ClientAuthMethod::None, None).apply(&mut form, &mut headers);
        assert_eq!(form, vec![("client_id", "id:with space".into())]);
    }

    #[test]
    fn debug_hides_secret() {
        let text = format!(
            "{:?}",
            creds(ClientAuthMethod::ClientSecretPost, Some("hunter2"))
        );
        assert!(!text.contains("hunter2"));
    }

    #[test]
    fn negotiation_rules() {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // A secret method without a secret falls back.
        assert_eq!(
            negotiate_client_auth(Some("client_secret_basic"), false, None),
            ClientAuthMethod::None
        );
        // Unknown registered method: negotiate.
        assert_eq!(
            negotiate_client_auth(
                Some("private_key_jwt"),
                true,
                Some(&v(&["client_secret_post"]))
            ),
            ClientAuthMethod::ClientSecretPost
        );
        assert_eq!(
            negotiate_client_auth(None, true, Some(&v(&["none"]))),
            ClientAuthMethod::None
        );
        assert_eq!(
            negotiate_client_auth(
                None,
                true,
                Some(&v(&["client_secret_post", "client_secret_basic"]))
            ),
            ClientAuthMethod::ClientSecretBasic
        );
    }

    /// Every method this crate implements is read back from its RFC 7591 name.
    #[test]
    fn method_names_round_trip() {
        for method in [
            ClientAuthMethod::ClientSecretBasic,
            ClientAuthMethod::ClientSecretPost,
            ClientAuthMethod::None,
            ClientAuthMethod::PrivateKeyJwt,
        ] {
            assert_eq!(ClientAuthMethod::from_name(method.as_str()), Some(method));
        }
        assert_eq!(ClientAuthMethod::from_name("tls_client_auth"), None);
    }

    /// A registration that names `client_secret_basic` is honoured even where the metadata
    /// lists `client_secret_post` first (RFC 7591 §2: the registered method is the one to use).
    #[test]
    fn the_registered_basic_method_wins_over_the_supported_list() {
        let post_first = vec!["client_secret_post".to_string()];
        assert_eq!(
            negotiate_client_auth(Some("client_secret_basic"), true, Some(&post_first)),
            ClientAuthMethod::ClientSecretBasic
        );
    }

    /// RFC 7523 §2.2: with an assertion, the request carries the assertion and its type and no
    /// `client_id`; a `private_key_jwt` client with no assertion signed sends its `client_id`
    /// alone, never an empty assertion.
    #[test]
    fn private_key_jwt_sends_the_assertion_only_when_there_is_one() {
        let mut signed = creds(ClientAuthMethod::PrivateKeyJwt, None);
        signed.assertion = Some("header.claims.signature".into());
        let (mut form, mut headers) = (Vec::new(), HeaderMap::new());
        signed.apply(&mut form, &mut headers);
        assert_eq!(
            form,
            vec![
                (
                    "client_assertion_type",
                    crate::client_assertion::JWT_BEARER_ASSERTION_TYPE.to_owned()
                ),
                ("client_assertion", "header.claims.signature".to_owned()),
            ]
        );
        assert!(headers.is_empty());

        let mut form = Vec::new();
        creds(ClientAuthMethod::PrivateKeyJwt, None).apply(&mut form, &mut headers);
        assert_eq!(form, vec![("client_id", "id:with space".to_owned())]);
    }

    /// The redacted `Debug` still says which client and method it is, so logs stay useful.
    #[test]
    fn debug_names_the_client_and_hides_the_assertion() {
        let mut c = creds(ClientAuthMethod::PrivateKeyJwt, None);
        c.assertion = Some("eyJhbGciOi.secret-claims.sig".into());
        let text = format!("{c:?}");
        assert!(text.contains("ClientCredentials"), "{text}");
        assert!(text.contains("id:with space"), "{text}");
        assert!(text.contains("PrivateKeyJwt"), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
        assert!(!text.contains("secret-claims"), "{text}");
    }
}
