//! The decisions a new authorization makes (which issuer its client is bound to, PKCE, the
//! grant, the client and its authentication, the scopes), each a pure function that names the
//! rule it applies; `authorize` and the other transitions only sequence them. The rules for
//! tokens already held (refresh, revocation, a moved resource) are in `held_rules`.

use std::time::SystemTime;

use url::Url;

use crate::client_auth::{negotiate_client_auth, ClientAuthMethod};
use crate::config::PkcePolicy;
use crate::error::{Error, ErrorKind};
use crate::metadata::{issuer_matches, AuthorizationServerMetadata};
use crate::registration::{redirect_uri_matches, ClientRegistration, PreRegisteredClient};
use crate::scope::{select_scopes, with_offline_access, Scopes};
use crate::well_known::legacy_issuer;

/// The issuer client credentials (pre-registered clients, stored and new registrations, tokens)
/// are bound to.
///
/// With protected resource metadata, the issuer it names was checked against the metadata's
/// own (RFC 8414 §3.3), so it is the binding. On the MCP 2025-03-26 path (§2.3.2, "Server
/// Metadata Discovery": the authorization server is at the MCP server's origin) the metadata's
/// issuer was never checked against anything, so a server could claim another authorization
/// server's issuer and be handed that server's client secret: there the binding is the
/// server's origin, unless the metadata names exactly that.
pub(super) fn client_issuer(
    metadata_issuer: &str,
    issuer_checked: bool,
    server_url: &Url,
) -> String {
    if issuer_checked {
        return metadata_issuer.to_owned();
    }
    let origin = legacy_issuer(server_url);
    if issuer_matches(&origin, metadata_issuer) {
        metadata_issuer.to_owned()
    } else {
        origin
    }
}

/// The PKCE gate. MCP 2025-11-25 ("Authorization Code Protection") requires S256 (RFC 7636
/// §4.2) and tells clients to refuse a server whose metadata omits
/// `code_challenge_methods_supported` (RFC 8414 §2); [`PkcePolicy::AssumeWhenAbsent`] opts
/// out of the second half only. A list without `S256` is refused either way.
pub(super) fn check_pkce(
    meta: &AuthorizationServerMetadata,
    policy: PkcePolicy,
) -> Result<(), Error> {
    let ok = match &meta.code_challenge_methods_supported {
        Some(_) => meta.supports_pkce_s256(),
        None => policy == PkcePolicy::AssumeWhenAbsent,
    };
    if ok {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::PkceNotSupported,
        format!(
            "authorization server {} does not advertise PKCE S256 in code_challenge_methods_supported; \
             set PkcePolicy::AssumeWhenAbsent to proceed with servers that omit the field",
            meta.issuer
        ),
    ))
}

/// The grant the flow uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum GrantChoice {
    /// RFC 6749 §4.1, with a user's consent.
    AuthorizationCode,
    /// RFC 6749 §4.4, the client on its own behalf.
    ClientCredentials,
}

/// The grant choice. A server whose `grant_types_supported` (RFC 8414 §2; absent means
/// `authorization_code` and `implicit`) offers `client_credentials` and not
/// `authorization_code` serves machines (RFC 6749 §4.4): no user, no consent, no PKCE. A server
/// offering both gets the authorization code: a user is there to consent, and the client is
/// not assumed to hold a secret. An application that chose the device grant (RFC 8628, whose
/// own check names the fix when the server lacks it) gets a user's grant, whatever else the
/// server offers: client credentials would silently put the client's own token where the
/// user's was asked for.
pub(super) fn choose_grant(meta: &AuthorizationServerMetadata, device_chosen: bool) -> GrantChoice {
    if !device_chosen
        && !meta.supports_grant("authorization_code")
        && meta.supports_grant("client_credentials")
    {
        GrantChoice::ClientCredentials
    } else {
        GrantChoice::AuthorizationCode
    }
}

/// Why a configuration may start no flow: a pre-registered client holds a credential but names
/// no issuer to keep it for, and was not allowed any (see
/// [`PreRegisteredClient::is_unbound_credential`]; RFC 9700 §4.4).
pub(super) fn unbound_credential(pre_registered: &[PreRegisteredClient]) -> Option<Error> {
    let client = pre_registered.iter().find(|c| c.is_unbound_credential())?;
    Some(Error::new(
        ErrorKind::NoClientIdentity,
        format!(
            "the pre-registered client {:?} has a secret or key but names no issuer: bind it to \
             the authorization server that registered it with `for_issuer` (for an MCP server \
             without protected resource metadata, the 2025-03-26 way, that server's origin), or \
             allow whichever server an MCP server names with `any_issuer` (its credential then \
             goes to that server)",
            client.client_id
        ),
    ))
}

/// The client for the client-credentials grant: a pre-registered client bound to this issuer
/// *and* confidential (RFC 6749 §4.4: "MUST only be used by confidential clients"). A secret
/// is never sent to a server other than the one it was issued by.
pub(super) fn client_credentials_client<'a>(
    pre_registered: &'a [PreRegisteredClient],
    client_issuer: &str,
) -> Option<&'a PreRegisteredClient> {
    pre_registered
        .iter()
        .find(|c| c.is_for(client_issuer) && c.is_confidential())
}

/// The key of the pre-registered `client_id` for this issuer, to sign its assertion with
/// (RFC 7523 §2.2).
pub(super) fn client_key<'a>(
    pre_registered: &'a [PreRegisteredClient],
    client_id: &str,
    client_issuer: &str,
) -> Option<&'a crate::client_assertion::ClientKey> {
    pre_registered
        .iter()
        .filter(|c| c.client_id == client_id && c.is_for(client_issuer))
        .find_map(|c| c.key.as_ref())
}

/// The authentication method of a pre-registered client in the client-credentials grant: its
/// key when it has one (RFC 7523 §2.2), else a secret method negotiated with the server.
pub(super) fn client_credentials_method(
    client: &PreRegisteredClient,
    meta: &AuthorizationServerMetadata,
) -> ClientAuthMethod {
    if client.key.is_some() {
        ClientAuthMethod::PrivateKeyJwt
    } else {
        negotiate_client_auth(
            client.auth_method.map(ClientAuthMethod::as_str),
            true,
            meta.token_endpoint_auth_methods_supported.as_deref(),
        )
    }
}

/// Whether a new registration would replace, in the store's one slot per issuer, a stored one
/// that another application may still use: of the same issuer, its secret alive, so that only
/// its redirect URI kept this client from it (two applications sharing a store, or one whose
/// redirect URI changed). The new one is then saved only once it has got tokens: a login
/// abandoned at consent, or refused, leaves the other application's registration (and, for a
/// confidential client, its refresh) as it was. An expired or foreign one is replaced at once,
/// and so a login abandoned at consent reuses the new one next time instead of registering
/// again.
///
/// The price: logins of this application that start before the first of them gets its tokens
/// each register (none finds a registration of its own yet), and the last to finish keeps the
/// slot, as any logins racing for one slot would; the logins after it reuse that one.
pub(super) fn replaces_registration_in_use(
    stored: &ClientRegistration,
    client_issuer: &str,
    now: SystemTime,
) -> bool {
    stored.issuer == client_issuer && secret_valid(stored, now)
}

/// Whether a registration's secret is still valid (RFC 7591 §3.2.1 `client_secret_expires_at`:
/// seconds since the epoch, 0 for never).
fn secret_valid(reg: &ClientRegistration, now: SystemTime) -> bool {
    match reg.client_secret_expires_at {
        None | Some(0) => true,
        Some(at) => now
            .duration_since(SystemTime::UNIX_EPOCH)
            .is_ok_and(|now| now.as_secs() < at),
    }
}

/// Whether a stored registration may be used: it belongs to the server that issued it
/// (SEP-2352), allows our redirect URI (RFC 7591 §2; a loopback redirect on another port
/// still matches, RFC 8252 §7.3; a registration that lists no redirect URI allows any), and
/// its secret has not expired (RFC 7591 §3.2.1 `client_secret_expires_at`, seconds since the
/// epoch, 0 for never): an expired one would be refused at the token endpoint after the user
/// consented, so the client registers again instead. And it must allow `grant`, the grant the
/// flow is about to use (see [`registration_allows_grant`]).
pub(super) fn stored_client_usable(
    reg: &ClientRegistration,
    client_issuer: &str,
    redirect_uri: &str,
    grant: &str,
    now: SystemTime,
) -> bool {
    secret_valid(reg, now)
        && registration_allows_grant(reg, grant)
        && reg.issuer == client_issuer
        && (reg.redirect_uris.is_empty()
            || reg
                .redirect_uris
                .iter()
                .any(|r| redirect_uri_matches(r, redirect_uri)))
}

/// Whether a registration allows `grant`: the server registered it (RFC 7591 §3.2.1 returns
/// every registered value), or did not say which it registered (nothing is known, and the
/// grant is tried: a refusal drops the registration, see `drop_refused_client`). A
/// registration made for sign-in in the browser lacks the device grant (RFC 8628 §3.4) an
/// application switched to device mode then uses: the server would refuse it with
/// `unauthorized_client` (RFC 6749 §5.2) at every login, so the client registers again,
/// asking for both.
pub(super) fn registration_allows_grant(reg: &ClientRegistration, grant: &str) -> bool {
    reg.grant_types.is_empty() || reg.grant_types.iter().any(|g| g == grant)
}

/// The scopes to ask for: the challenge's, else the resource metadata's (MCP "Scope Selection
/// Strategy"), else the configured default; in a step-up, united with the held ones so the new
/// grant does not lose them (SEP-2350); plus, for a user's grant, `offline_access` when the
/// server lists it (SEP-2207: it keeps the user's session). A grant with no user (client
/// credentials, an assertion) has no session to keep, and RFC 6749 §4.4.3 gives it no refresh
/// token: a server may refuse the scope there (`invalid_scope`).
pub(super) fn requested_scopes(
    challenge_scope: Option<&str>,
    prm_scopes: Option<&[String]>,
    default_scopes: Option<&Scopes>,
    held_scopes: Option<&Scopes>,
    as_supported: Option<&[String]>,
    user_grant: bool,
) -> Option<Scopes> {
    let asked = select_scopes(challenge_scope, prm_scopes).or_else(|| default_scopes.cloned());
    let united = match (held_scopes, asked) {
        (Some(held), Some(asked)) => Some(held.union(&asked)),
        (held, asked) => asked.or_else(|| held.cloned()),
    };
    if user_grant {
        with_offline_access(united, as_supported)
    } else {
        united
    }
}

#[cfg(test)]
pub(super) mod tests {
    use serde_json::json;

    use super::*;
    use crate::token_set::{TokenSet, TokenType};

    pub(in crate::flow) const AS: &str = "https://as.example.com";

    fn meta(extra: serde_json::Value) -> AuthorizationServerMetadata {
        let mut doc = json!({
            "issuer": AS,
            "authorization_endpoint": format!("{AS}/authorize"),
            "token_endpoint": format!("{AS}/token"),
            "response_types_supported": ["code"],
        });
        doc.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        AuthorizationServerMetadata::from_json(doc.to_string().as_bytes()).unwrap()
    }

    pub(in crate::flow) fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    pub(in crate::flow) fn tokens(issuer: &str, client_id: &str) -> TokenSet {
        TokenSet::new("at", TokenType::Bearer, issuer, client_id)
    }

    #[test]
    fn a_checked_issuer_binds_the_credentials() {
        let server = url("https://mcp.example.com/mcp");
        assert_eq!(client_issuer(AS, true, &server), AS);
    }

    #[test]
    fn the_legacy_path_binds_to_the_origin_unless_the_metadata_names_it() {
        let server = url("https://mcp.example.com/mcp");
        // A server claiming another issuer gets credentials bound to its own origin.
        assert_eq!(client_issuer(AS, false, &server), "https://mcp.example.com");
        // Naming its own origin (with or without a trailing slash) is taken as served.
        assert_eq!(
            client_issuer("https://mcp.example.com/", false, &server),
            "https://mcp.example.com/"
        );
        assert_eq!(
            client_issuer("https://mcp.example.com", false, &server),
            "https://mcp.example.com"
        );
    }

    #[test]
    fn pkce_gate() {
        let s256 = meta(json!({"code_challenge_methods_supported": ["plain", "S256"]}));
        let plain = meta(json!({"code_challenge_methods_supported": ["plain"]}));
        let absent = meta(json!({}));
        for policy in [PkcePolicy::RequireAdvertised, PkcePolicy::AssumeWhenAbsent] {
            assert!(check_pkce(&s256, policy).is_ok());
            assert_eq!(
                check_pkce(&plain, policy).unwrap_err().kind(),
                ErrorKind::PkceNotSupported
            );
        }
        assert_eq!(
            check_pkce(&absent, PkcePolicy::RequireAdvertised)
                .unwrap_err()
                .kind(),
            ErrorKind::PkceNotSupported
        );
        assert!(check_pkce(&absent, PkcePolicy::AssumeWhenAbsent).is_ok());
    }

    #[test]
    fn grant_choice() {
        const DEVICE: &str = crate::token_request::DEVICE_CODE_GRANT_TYPE;
        let grants = |g: serde_json::Value| meta(json!({ "grant_types_supported": g }));
        assert_eq!(
            choose_grant(&grants(json!(["client_credentials"])), false),
            GrantChoice::ClientCredentials
        );
        // Both offered: a user may be there, and no secret is assumed.
        assert_eq!(
            choose_grant(
                &grants(json!(["authorization_code", "client_credentials"])),
                false
            ),
            GrantChoice::AuthorizationCode
        );
        assert_eq!(
            choose_grant(
                &grants(json!(["client_credentials", "authorization_code"])),
                false
            ),
            GrantChoice::AuthorizationCode
        );
        assert_eq!(
            choose_grant(
                &grants(json!(["authorization_code", "refresh_token"])),
                false
            ),
            GrantChoice::AuthorizationCode
        );
        // Absent: RFC 8414's default has no client_credentials.
        assert_eq!(
            choose_grant(&meta(json!({})), false),
            GrantChoice::AuthorizationCode
        );
        // The device grant chosen: a user's grant, never the client's own.
        assert_eq!(
            choose_grant(&grants(json!(["client_credentials", DEVICE])), true),
            GrantChoice::AuthorizationCode
        );
        // Neither: the authorization code is tried (and fails at the server if it must).
        assert_eq!(
            choose_grant(&grants(json!(["refresh_token"])), false),
            GrantChoice::AuthorizationCode
        );
    }

    #[test]
    fn client_credentials_need_a_confidential_client_of_this_issuer() {
        let elsewhere = PreRegisteredClient::new("other-as")
            .with_secret("other-secret")
            .for_issuer("https://other.example.com");
        let public_here = PreRegisteredClient::new("public").for_issuer(AS);
        // Each half of the rule alone would pick one of these two.
        let clients = [elsewhere.clone(), public_here.clone()];
        assert!(client_credentials_client(&clients, AS).is_none());

        let here = PreRegisteredClient::new("here")
            .with_secret("s")
            .for_issuer(AS);
        let clients = [elsewhere, public_here, here];
        assert_eq!(
            client_credentials_client(&clients, AS).map(|c| c.client_id.as_str()),
            Some("here")
        );
        // An unbound confidential client serves no issuer, unless the application allows any.
        let unbound = PreRegisteredClient::new("any").with_secret("s");
        assert!(client_credentials_client(std::slice::from_ref(&unbound), AS).is_none());
        assert!(client_credentials_client(&[unbound.any_issuer()], AS).is_some());
    }

    #[test]
    fn client_credentials_method() {
        let listed = meta(json!({"token_endpoint_auth_methods_supported": ["client_secret_post"]}));
        let secret = PreRegisteredClient::new("c").with_secret("s");
        assert_eq!(
            super::client_credentials_method(&secret, &listed),
            ClientAuthMethod::ClientSecretPost
        );
        assert_eq!(
            super::client_credentials_method(&secret, &meta(json!({}))),
            ClientAuthMethod::ClientSecretBasic
        );
        let keyed = PreRegisteredClient::new("c").with_private_key(test_key());
        assert_eq!(
            super::client_credentials_method(&keyed, &listed),
            ClientAuthMethod::PrivateKeyJwt
        );
    }

    fn test_key() -> crate::client_assertion::ClientKey {
        use p256::pkcs8::{EncodePrivateKey, LineEnding};
        let secret = p256::ecdsa::SigningKey::from_slice(&[5u8; 32]).unwrap();
        crate::client_assertion::ClientKey::from_pkcs8_pem(
            &secret.to_pkcs8_pem(LineEnding::LF).unwrap(),
        )
        .unwrap()
    }

    pub(in crate::flow) fn registration(client_id: &str, issuer: &str) -> ClientRegistration {
        ClientRegistration {
            issuer: issuer.into(),
            client_id: client_id.into(),
            client_secret: None,
            client_secret_expires_at: None,
            token_endpoint_auth_method: None,
            redirect_uris: vec![],
            grant_types: Vec::new(),
        }
    }

    #[test]
    fn stored_clients_belong_to_their_issuer_and_redirect_uri() {
        let reg = |issuer: &str, uris: &[&str]| {
            let mut reg = registration("c", issuer);
            reg.redirect_uris = uris.iter().map(|u| u.to_string()).collect();
            reg
        };
        let redirect = "http://127.0.0.1:8080/callback";
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000);
        let usable = |reg: &ClientRegistration, issuer: &str, redirect: &str| {
            stored_client_usable(reg, issuer, redirect, "authorization_code", now)
        };
        assert!(usable(&reg(AS, &[]), AS, redirect));
        assert!(usable(&reg(AS, &[redirect]), AS, redirect));
        // Another loopback port is the same redirect (RFC 8252 §7.3).
        assert!(usable(
            &reg(AS, &["http://127.0.0.1:9999/callback"]),
            AS,
            redirect
        ));
        assert!(!usable(
            &reg(AS, &["https://app.example.com/cb"]),
            AS,
            redirect
        ));
        assert!(!usable(
            &reg("https://other.example.com", &[]),
            AS,
            redirect
        ));
        assert!(!usable(
            &reg("https://other.example.com", &[redirect]),
            AS,
            redirect
        ));
        // A secret that expired (RFC 7591 §3.2.1) is no use; 0 is never.
        let expiring = |at: u64| {
            let mut reg = reg(AS, &[]);
            reg.client_secret_expires_at = Some(at);
            reg
        };
        assert!(!usable(&expiring(1_000), AS, redirect));
        assert!(usable(&expiring(1_001), AS, redirect));
        assert!(usable(&expiring(0), AS, redirect));
    }

    #[test]
    fn a_registration_allows_the_grants_it_registered_or_said_nothing_of() {
        let mut reg = registration("c", AS);
        assert!(registration_allows_grant(&reg, "authorization_code"));
        reg.grant_types = vec!["authorization_code".into(), "refresh_token".into()];
        assert!(registration_allows_grant(&reg, "authorization_code"));
        assert!(!registration_allows_grant(
            &reg,
            crate::token_request::DEVICE_CODE_GRANT_TYPE
        ));
        let now = SystemTime::UNIX_EPOCH;
        let device = crate::token_request::DEVICE_CODE_GRANT_TYPE;
        assert!(!stored_client_usable(
            &reg,
            AS,
            "http://127.0.0.1/cb",
            device,
            now
        ));
        assert!(stored_client_usable(
            &reg,
            AS,
            "http://127.0.0.1/cb",
            "authorization_code",
            now
        ));
    }

    #[test]
    fn scopes_asked() {
        let held = Scopes::parse("a");
        let default = Scopes::parse("d");
        let prm = ["p".to_string()];
        let with_offline = ["offline_access".to_string()];
        let ask = |c, p, d, h, s| requested_scopes(c, p, d, h, s, true).map(|s| s.to_string());
        assert_eq!(
            ask(Some("x"), Some(&prm[..]), Some(&default), None, None).as_deref(),
            Some("x")
        );
        assert_eq!(
            ask(None, Some(&prm[..]), Some(&default), None, None).as_deref(),
            Some("p")
        );
        assert_eq!(
            ask(None, None, Some(&default), None, None).as_deref(),
            Some("d")
        );
        assert_eq!(ask(None, None, None, None, None), None);
        // Step-up: the held scopes are kept (SEP-2350).
        assert_eq!(
            ask(Some("b"), None, None, Some(&held), None).as_deref(),
            Some("a b")
        );
        assert_eq!(
            ask(None, None, None, Some(&held), None).as_deref(),
            Some("a")
        );
        assert_eq!(
            ask(Some("b"), None, None, None, Some(&with_offline[..])).as_deref(),
            Some("b offline_access")
        );
        assert_eq!(ask(None, None, None, None, Some(&with_offline[..])), None);
        // No user, no session to keep.
        let machine = requested_scopes(Some("b"), None, None, None, Some(&with_offline[..]), false);
        assert_eq!(machine.map(|s| s.to_string()).as_deref(), Some("b"));
    }
}
