//! The rules for tokens already held: whether they survive a new discovery, whether they can be
//! refreshed, which client refreshes (or revokes) them and how it authenticates, and where the
//! refreshed tokens may be sent. Pure functions, as in `rules`; `refresh`, `discover` and
//! revocation only sequence them.

use url::Url;

use super::Trigger;
use crate::client_auth::{negotiate_client_auth, ClientAuthMethod};
use crate::metadata::issuer_matches;
use crate::registration::{ClientRegistration, PreRegisteredClient};
use crate::token_set::TokenSet;
use crate::well_known::origin_of;

/// Whether held tokens can be refreshed without discovery: a refresh token, and the token
/// endpoint that issued it (RFC 6749 §6).
pub(super) fn refreshable(held: &TokenSet) -> bool {
    held.refresh_token().is_some() && held.token_endpoint().is_some()
}

/// Whether the held tokens survive the protected resource metadata naming `issuer`. After a
/// `401`, tokens of another authorization server mean the resource moved (SEP-2352): they are
/// worthless there, and neither they nor their client are sent there. A step-up keeps them
/// (only their scopes are used), and an expiring refresh does not get here.
pub(super) fn keeps_held_tokens(trigger: Trigger, held_issuer: &str, issuer: &str) -> bool {
    trigger != Trigger::Unauthorized || issuer_matches(held_issuer, issuer)
}

/// The pre-registered client the held tokens were issued to: same identifier, bound to their
/// issuer.
pub(crate) fn refresh_pre_registered<'a>(
    pre_registered: &'a [PreRegisteredClient],
    held: &TokenSet,
) -> Option<&'a PreRegisteredClient> {
    pre_registered
        .iter()
        .find(|c| c.client_id == held.client_id() && c.is_for(held.issuer()))
}

/// Whether the held tokens belong to a public client, which refreshes with its identifier
/// alone: it authenticated with `none`, or it is our client ID metadata document.
pub(crate) fn refreshes_as_public(held: &TokenSet, client_metadata_document: Option<&str>) -> bool {
    held.client_auth() == Some(ClientAuthMethod::None)
        || client_metadata_document == Some(held.client_id())
}

/// Whether a stored registration is the client the held tokens were issued to: the same issuer
/// (SEP-2352) and the same identifier. Any other cannot refresh them.
pub(crate) fn refresh_client_usable(reg: &ClientRegistration, held: &TokenSet) -> bool {
    reg.issuer == held.issuer() && reg.client_id == held.client_id()
}

/// How a refresh authenticates the client (RFC 6749 §6: as it did for the grant). The method
/// recorded with the tokens is kept; tokens stored without one use the client's key
/// (`private_key_jwt`, RFC 7523 §2.2) if it has one, else its declared method, negotiated with
/// no metadata at hand.
pub(crate) fn refresh_auth_method(
    recorded: Option<ClientAuthMethod>,
    declared: Option<&str>,
    has_secret: bool,
    has_key: bool,
) -> ClientAuthMethod {
    recorded.unwrap_or_else(|| {
        if has_key {
            ClientAuthMethod::PrivateKeyJwt
        } else {
            negotiate_client_auth(declared, has_secret, None)
        }
    })
}

/// The `resource` a refresh asks for (RFC 8707 §2.2): the held tokens' own, so the new
/// token has the same audience. Tokens without one were issued the 2025-03-26 way (no
/// resource metadata then); once the server names its resource, it checks a token's audience
/// (MCP 2025-06-18 and later: clients send `resource` on every token request), and a refresh
/// without one would get a token it refuses again, on every request: they ask for the
/// resource the metadata just named.
pub(super) fn refresh_resource<'a>(held: &'a TokenSet, named: Option<&'a str>) -> Option<&'a str> {
    held.resource().or(named)
}

/// Where refreshed tokens may be sent: where the held ones applied, else the resource the
/// metadata just named, else the tokens' own `resource` (RFC 8707), else the server's origin
/// (MCP 2025-03-26). Tokens of the 2025-03-26 path refreshed for the resource a server names
/// later (see [`refresh_resource`]) stay where the held ones were kept, the origin: moving
/// them would leave the origin's other servers that shared them without a token, and a fleet
/// sharing a store would look for them where they no longer are.
pub(super) fn refreshed_protected_resource(
    held_prefix: Option<&Url>,
    discovered: Option<&Url>,
    tokens: &TokenSet,
    server_url: &Url,
) -> Url {
    held_prefix
        .or(discovered)
        .cloned()
        .or_else(|| tokens.resource().and_then(|r| Url::parse(r).ok()))
        .unwrap_or_else(|| origin_of(server_url))
}

#[cfg(test)]
mod tests {
    use oauth2::RefreshToken;

    use super::*;
    use crate::flow::rules::tests::{registration, tokens, url, AS};

    #[test]
    fn refreshable_needs_a_refresh_token_and_an_endpoint() {
        let rt = Some(RefreshToken::new("rt".into()));
        let endpoint = Some(format!("{AS}/token"));
        let base = tokens(AS, "c");
        assert!(!refreshable(&base));
        assert!(!refreshable(&base.clone().with_refresh_token(rt.clone())));
        assert!(!refreshable(
            &base.clone().with_token_endpoint(endpoint.clone(), None)
        ));
        assert!(refreshable(
            &base
                .with_refresh_token(rt)
                .with_token_endpoint(endpoint, None)
        ));
    }

    #[test]
    fn a_moved_resource_drops_the_held_tokens_after_a_401_only() {
        let other = "https://other.example.com";
        assert!(keeps_held_tokens(Trigger::Unauthorized, AS, AS));
        assert!(keeps_held_tokens(
            Trigger::Unauthorized,
            AS,
            &format!("{AS}/")
        ));
        assert!(!keeps_held_tokens(Trigger::Unauthorized, AS, other));
        assert!(keeps_held_tokens(Trigger::InsufficientScope, AS, other));
        assert!(keeps_held_tokens(Trigger::Expiring, AS, other));
    }

    #[test]
    fn the_refresh_client_is_the_one_the_tokens_were_issued_to() {
        let held = tokens(AS, "c");
        let clients = [
            PreRegisteredClient::new("c").for_issuer("https://other.example.com"),
            PreRegisteredClient::new("d").for_issuer(AS),
            PreRegisteredClient::new("c")
                .with_secret("s")
                .for_issuer(AS),
        ];
        let found = refresh_pre_registered(&clients, &held).unwrap();
        assert!(found.client_secret.is_some());
        assert!(refresh_pre_registered(&clients[..2], &held).is_none());

        assert!(refresh_client_usable(&registration("c", AS), &held));
        assert!(!refresh_client_usable(&registration("d", AS), &held));
        assert!(!refresh_client_usable(
            &registration("c", "https://other.example.com"),
            &held
        ));
    }

    #[test]
    fn public_refresh_clients() {
        let held = tokens(AS, "https://app.example.com/client.json");
        assert!(!refreshes_as_public(&held, None));
        assert!(refreshes_as_public(
            &held,
            Some("https://app.example.com/client.json")
        ));
        assert!(!refreshes_as_public(
            &held,
            Some("https://app.example.com/other.json")
        ));
        let none = held
            .clone()
            .with_token_endpoint(None, Some(ClientAuthMethod::None));
        assert!(refreshes_as_public(&none, None));
        let basic = held.with_token_endpoint(None, Some(ClientAuthMethod::ClientSecretBasic));
        assert!(!refreshes_as_public(&basic, None));
    }

    #[test]
    fn a_refresh_authenticates_as_the_grant_did() {
        use ClientAuthMethod::*;
        let post = Some("client_secret_post");
        // The recorded method wins over everything the client declares or holds.
        assert_eq!(
            refresh_auth_method(
                Some(ClientSecretPost),
                Some("client_secret_basic"),
                true,
                true
            ),
            ClientSecretPost
        );
        assert_eq!(refresh_auth_method(Some(None), post, true, false), None);
        // Nothing recorded: the key, else the declared method, else negotiated.
        assert_eq!(
            refresh_auth_method(Option::None, post, true, true),
            PrivateKeyJwt
        );
        assert_eq!(
            refresh_auth_method(Option::None, post, true, false),
            ClientSecretPost
        );
        assert_eq!(
            refresh_auth_method(Option::None, Option::None, true, false),
            ClientSecretBasic
        );
        assert_eq!(
            refresh_auth_method(Option::None, Option::None, false, false),
            None
        );
        assert_eq!(
            refresh_auth_method(Option::None, Some("none"), true, false),
            None
        );
    }

    #[test]
    fn where_refreshed_tokens_go() {
        let server = url("https://mcp.example.com/mcp");
        let held = url("https://mcp.example.com/held");
        let found = url("https://mcp.example.com/found");
        let with_resource =
            tokens(AS, "c").with_resource(Some("https://mcp.example.com/res".into()));
        let bare = tokens(AS, "c");
        let at = |h, d, t| refreshed_protected_resource(h, d, t, &server).to_string();
        assert_eq!(at(Some(&held), Some(&found), &with_resource), held.as_str());
        assert_eq!(at(None, Some(&found), &with_resource), found.as_str());
        assert_eq!(
            at(None, None, &with_resource),
            "https://mcp.example.com/res"
        );
        assert_eq!(at(None, None, &bare), "https://mcp.example.com/");
        // Tokens of the 2025-03-26 path (no `resource`, the origin as their prefix) refreshed
        // for the resource the metadata now names stay under the origin.
        let origin = url("https://mcp.example.com/");
        let bound = bare.clone().with_resource(Some(found.as_str().to_owned()));
        assert_eq!(
            refreshed_protected_resource(Some(&origin), Some(&found), &bound, &server),
            origin
        );
    }

    #[test]
    fn a_refresh_asks_for_the_held_resource_or_the_one_now_named() {
        let named = "https://mcp.example.com/mcp";
        let held = tokens(AS, "c").with_resource(Some("https://mcp.example.com/res".into()));
        assert_eq!(
            refresh_resource(&held, Some(named)),
            Some("https://mcp.example.com/res")
        );
        let legacy = tokens(AS, "c");
        assert_eq!(refresh_resource(&legacy, Some(named)), Some(named));
        assert_eq!(refresh_resource(&legacy, None), None);
    }
}
