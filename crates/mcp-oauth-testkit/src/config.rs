//! What the two servers advertise and how they behave: [`TestkitConfig`] and its enums.

use crate::imitation::Imitation;
use crate::record::ServerRole;

/// Where the discovery documents live, i.e. which discovery path a client has to take.
///
/// `{rs}` is the resource server origin ([`Testkit::resource_origin`](crate::Testkit::resource_origin)),
/// `{as}` the authorization server origin ([`Testkit::auth_server_origin`](crate::Testkit::auth_server_origin)).
/// Every well-known path not listed for a layout answers 404.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DiscoveryLayout {
    /// The 401 carries `resource_metadata="{rs}/.well-known/oauth-protected-resource/mcp"`; the
    /// PRM says `resource = "{rs}/mcp"`; RFC 8414 metadata only at
    /// `{as}/.well-known/oauth-authorization-server`, issuer `{as}`.
    #[default]
    ChallengeUrl,
    /// No `resource_metadata` in the 401; PRM at `{rs}/.well-known/oauth-protected-resource/mcp`;
    /// issuer `{as}` with OpenID Connect metadata only at `{as}/.well-known/openid-configuration`.
    PathWellKnown,
    /// No `resource_metadata`; PRM only at `{rs}/.well-known/oauth-protected-resource` with
    /// `resource = "{rs}"`; issuer `{as}/tenant1` with metadata only at
    /// `{as}/.well-known/oauth-authorization-server/tenant1`.
    RootWellKnown,
    /// The 401 carries `resource_metadata="{rs}/custom/metadata/location.json"`; issuer
    /// `{as}/tenant1` with OpenID Connect metadata only at
    /// `{as}/tenant1/.well-known/openid-configuration` (path appending).
    CustomPrmUrl,
    /// Like [`CustomPrmUrl`](Self::CustomPrmUrl), but the metadata of issuer `{as}/tenant1` lives
    /// only at `{as}/.well-known/openid-configuration/tenant1` (path insertion).
    OidcPathInsertion,
    /// MCP 2025-03-26: no PRM anywhere; the resource server itself serves RFC 8414 metadata at
    /// `{rs}/.well-known/oauth-authorization-server` with issuer `{rs}` and endpoints
    /// `{rs}/oauth/authorize`, `{rs}/oauth/token` and `{rs}/oauth/register`.
    LegacyMetadataAtOrigin,
    /// MCP 2025-03-26 without any metadata: the resource server serves the default endpoints
    /// `{rs}/authorize`, `{rs}/token` and `{rs}/register`.
    LegacyEndpointFallback,
}

impl DiscoveryLayout {
    /// Every layout, in declaration order.
    pub const ALL: [DiscoveryLayout; 7] = [
        DiscoveryLayout::ChallengeUrl,
        DiscoveryLayout::PathWellKnown,
        DiscoveryLayout::RootWellKnown,
        DiscoveryLayout::CustomPrmUrl,
        DiscoveryLayout::OidcPathInsertion,
        DiscoveryLayout::LegacyMetadataAtOrigin,
        DiscoveryLayout::LegacyEndpointFallback,
    ];

    /// Whether this is one of the MCP 2025-03-26 layouts without protected resource metadata.
    pub fn is_legacy(self) -> bool {
        matches!(
            self,
            DiscoveryLayout::LegacyMetadataAtOrigin | DiscoveryLayout::LegacyEndpointFallback
        )
    }
}

/// What the authorization endpoint puts in the redirect's `iss` parameter (RFC 9207).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum IssInRedirect {
    /// The `issuer` of the authorization server metadata (including
    /// [`TestkitConfig::metadata_issuer_override`] when set).
    #[default]
    Issuer,
    /// No `iss` parameter.
    Omit,
    /// This exact value.
    Value(String),
}

/// Configuration of a [`Testkit`](crate::Testkit): one switch per discovery layout and per quirk.
///
/// Build it with the by-value setters, e.g.
/// `TestkitConfig::default().layout(DiscoveryLayout::RootWellKnown).cimd_supported(true)`.
/// Setters of `Option` fields whose default is `None` take the inner value and set `Some`.
#[derive(Clone, Debug)]
pub struct TestkitConfig {
    /// Where the discovery documents live. Default [`DiscoveryLayout::ChallengeUrl`].
    pub layout: DiscoveryLayout,
    /// Advertise and serve a `registration_endpoint` (RFC 7591). Default `true`.
    pub registration: bool,
    /// Advertise `client_id_metadata_document_supported: true` and accept any `https://`
    /// client id as a public client (auth method `none`) without fetching it. Default `false`.
    pub cimd_supported: bool,
    /// Advertised as `token_endpoint_auth_methods_supported`; the first is the fallback for
    /// registrations asking for an unsupported method.
    /// Default `["client_secret_basic", "client_secret_post", "none"]`.
    pub token_endpoint_auth_methods: Vec<String>,
    /// Advertised as `code_challenge_methods_supported`; `None` omits the field.
    /// Default `Some(["S256"])`. The authorization endpoint always requires `S256` (or `plain`
    /// when listed here).
    pub pkce_methods: Option<Vec<String>>,
    /// Advertise `authorization_response_iss_parameter_supported: true`. Default `true`.
    pub iss_supported: bool,
    /// The `iss` parameter of the authorization response. Default [`IssInRedirect::Issuer`].
    pub iss_in_redirect: IssInRedirect,
    /// The authorization server metadata's `issuer` says this instead of the real issuer.
    pub metadata_issuer_override: Option<String>,
    /// The protected resource metadata's `resource` says this instead of the real resource.
    /// The resource server still only accepts tokens bound to its real resource.
    pub prm_resource_override: Option<String>,
    /// `scopes_supported` of the protected resource metadata (omitted when `None`).
    pub prm_scopes_supported: Option<Vec<String>>,
    /// `scopes_supported` of the authorization server metadata (omitted when `None`).
    pub as_scopes_supported: Option<Vec<String>>,
    /// The `scope="…"` parameter of the resource server's 401 challenge (omitted when `None`).
    pub challenge_scope: Option<String>,
    /// Scopes every authenticated MCP request needs; too few answer 403 `insufficient_scope`.
    pub required_scopes: Vec<String>,
    /// Scopes `tools/call` needs on top of [`required_scopes`](Self::required_scopes).
    pub tool_call_scopes: Vec<String>,
    /// Answer a valid token that lacks a needed scope with `401 invalid_token` naming the
    /// scopes, as some servers do, instead of RFC 6750 §3.1's `403 insufficient_scope`.
    /// Default `false`.
    pub insufficient_scope_as_401: bool,
    /// Issue refresh tokens with the authorization code grant. Default `true`.
    pub issue_refresh_tokens: bool,
    /// Behave like a certified OpenID provider (node `oidc-provider`) on offline access: a
    /// refresh token only when the granted scope includes `offline_access` *and* the
    /// authorization request carried `prompt=consent` (OpenID Connect Core §11); otherwise
    /// `offline_access` is dropped from the grant and no refresh token is issued. Applies on
    /// top of [`issue_refresh_tokens`](Self::issue_refresh_tokens). Default `false`.
    pub offline_access_needs_consent: bool,
    /// Each refresh returns a new refresh token and invalidates the old one; reusing an
    /// invalidated one is `invalid_grant` and revokes the whole grant. Default `true`.
    pub rotate_refresh_tokens: bool,
    /// Access token lifetime; the resource server rejects expired tokens. Default 3600.
    pub token_lifetime_secs: u64,
    /// Quirk: `expires_in` is a JSON string (`"3600"`). Default `false`.
    pub expires_in_as_string: bool,
    /// Quirk: the token response is `application/x-www-form-urlencoded`. Default `false`.
    pub token_response_form_encoded: bool,
    /// Quirk: `token_type` is `"bearer"`. Default `false`.
    pub token_type_lowercase: bool,
    /// Quirk: the token response has no `expires_in`. Default `false`.
    pub omit_expires_in: bool,
    /// A client the authorization server knows without registration: the client id and an
    /// optional secret. With a secret it authenticates with `client_secret_basic`, without one
    /// it is public (`none`). It may use any redirect URI.
    pub preregistered_client: Option<(String, Option<String>)>,
    /// Answer MCP POSTs as `text/event-stream` instead of JSON. Default `false`.
    pub sse_responses: bool,
    /// An SPKI PEM public key (EC P-256, RSA or Ed25519) of a trusted assertion issuer: the
    /// token endpoint then offers the jwt-bearer grant (RFC 7523 §2.1) for the JWTs it signs
    /// (workload identity tokens, SEP-1933) and the IdP endpoint [`IDP_TOKEN_PATH`](crate::IDP_TOKEN_PATH)
    /// exchanges the ID tokens it signs for ID-JAGs (SEP-990). Default none.
    pub assertion_issuer_key: Option<String>,
    /// An SPKI PEM public key of the [`preregistered_client`](Self::preregistered_client), which
    /// then authenticates with `private_key_jwt` (RFC 7523 §2.2), verified with this key.
    /// Default none.
    pub client_public_key: Option<String>,
    /// Advertise and serve a `revocation_endpoint` (RFC 7009) at `…/revoke`: revoking a refresh
    /// token revokes its whole grant, an access token only itself. Default `false`.
    pub revocation: bool,
    /// DPoP (RFC 9449) at both servers: advertised, proofs verified, tokens bound, nonces
    /// demanded as configured. Default `None` (no DPoP: a proof is ignored).
    pub dpop: Option<DpopConfig>,
    /// The device authorization grant (RFC 8628): advertised, served at
    /// [`DEVICE_AUTHORIZATION_PATH`](crate::DEVICE_AUTHORIZATION_PATH), polls answered as
    /// configured. Default `None` (off).
    pub device: Option<DeviceConfig>,
    /// Behave like this real authorization server where it departs from the specifications
    /// (see [`Imitation`]). Default none.
    pub imitate: Option<Imitation>,
}

impl Default for TestkitConfig {
    fn default() -> Self {
        TestkitConfig {
            layout: DiscoveryLayout::default(),
            registration: true,
            cimd_supported: false,
            token_endpoint_auth_methods: strings([
                "client_secret_basic",
                "client_secret_post",
                "none",
            ]),
            pkce_methods: Some(strings(["S256"])),
            iss_supported: true,
            iss_in_redirect: IssInRedirect::default(),
            metadata_issuer_override: None,
            prm_resource_override: None,
            prm_scopes_supported: None,
            as_scopes_supported: None,
            challenge_scope: None,
            required_scopes: Vec::new(),
            tool_call_scopes: Vec::new(),
            insufficient_scope_as_401: false,
            issue_refresh_tokens: true,
            offline_access_needs_consent: false,
            rotate_refresh_tokens: true,
            token_lifetime_secs: 3600,
            expires_in_as_string: false,
            token_response_form_encoded: false,
            token_type_lowercase: false,
            omit_expires_in: false,
            preregistered_client: None,
            sse_responses: false,
            assertion_issuer_key: None,
            client_public_key: None,
            revocation: false,
            dpop: None,
            device: None,
            imitate: None,
        }
    }
}

fn strings<I>(items: I) -> Vec<String>
where
    I: IntoIterator,
    I::Item: Into<String>,
{
    items.into_iter().map(Into::into).collect()
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = value;
            self
        }
    };
}

impl TestkitConfig {
    setter!(
        /// Sets [`layout`](Self::layout).
        layout: DiscoveryLayout
    );
    setter!(
        /// Sets [`registration`](Self::registration).
        registration: bool
    );
    setter!(
        /// Sets [`cimd_supported`](Self::cimd_supported).
        cimd_supported: bool
    );
    setter!(
        /// Sets [`pkce_methods`](Self::pkce_methods) (`None` omits the field).
        pkce_methods: Option<Vec<String>>
    );
    setter!(
        /// Sets [`iss_supported`](Self::iss_supported).
        iss_supported: bool
    );
    setter!(
        /// Sets [`iss_in_redirect`](Self::iss_in_redirect).
        iss_in_redirect: IssInRedirect
    );
    setter!(
        /// Sets [`issue_refresh_tokens`](Self::issue_refresh_tokens).
        issue_refresh_tokens: bool
    );
    setter!(
        /// Sets [`offline_access_needs_consent`](Self::offline_access_needs_consent).
        offline_access_needs_consent: bool
    );
    setter!(
        /// Sets [`rotate_refresh_tokens`](Self::rotate_refresh_tokens).
        rotate_refresh_tokens: bool
    );
    setter!(
        /// Sets [`token_lifetime_secs`](Self::token_lifetime_secs).
        token_lifetime_secs: u64
    );
    setter!(
        /// Sets [`expires_in_as_string`](Self::expires_in_as_string).
        expires_in_as_string: bool
    );
    setter!(
        /// Sets [`token_response_form_encoded`](Self::token_response_form_encoded).
        token_response_form_encoded: bool
    );
    setter!(
        /// Sets [`token_type_lowercase`](Self::token_type_lowercase).
        token_type_lowercase: bool
    );
    setter!(
        /// Sets [`omit_expires_in`](Self::omit_expires_in).
        omit_expires_in: bool
    );
    setter!(
        /// Sets [`sse_responses`](Self::sse_responses).
        sse_responses: bool
    );
    setter!(
        /// Sets [`revocation`](Self::revocation).
        revocation: bool
    );

    /// Sets [`imitate`](Self::imitate).
    pub fn imitate(mut self, imitation: Imitation) -> Self {
        self.imitate = Some(imitation);
        self
    }

    /// Sets [`device`](Self::device).
    pub fn device(mut self, device: DeviceConfig) -> Self {
        self.device = Some(device);
        self
    }

    /// Sets [`token_endpoint_auth_methods`](Self::token_endpoint_auth_methods).
    pub fn token_endpoint_auth_methods<I>(mut self, methods: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.token_endpoint_auth_methods = strings(methods);
        self
    }

    /// Sets [`metadata_issuer_override`](Self::metadata_issuer_override).
    pub fn metadata_issuer_override(mut self, issuer: impl Into<String>) -> Self {
        self.metadata_issuer_override = Some(issuer.into());
        self
    }

    /// Sets [`prm_resource_override`](Self::prm_resource_override).
    pub fn prm_resource_override(mut self, resource: impl Into<String>) -> Self {
        self.prm_resource_override = Some(resource.into());
        self
    }

    /// Sets [`prm_scopes_supported`](Self::prm_scopes_supported).
    pub fn prm_scopes_supported<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.prm_scopes_supported = Some(strings(scopes));
        self
    }

    /// Sets [`as_scopes_supported`](Self::as_scopes_supported).
    pub fn as_scopes_supported<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.as_scopes_supported = Some(strings(scopes));
        self
    }

    /// Sets [`dpop`](Self::dpop).
    pub fn dpop(mut self, dpop: DpopConfig) -> Self {
        self.dpop = Some(dpop);
        self
    }

    /// Sets [`challenge_scope`](Self::challenge_scope).
    pub fn challenge_scope(mut self, scope: impl Into<String>) -> Self {
        self.challenge_scope = Some(scope.into());
        self
    }

    /// Sets [`required_scopes`](Self::required_scopes).
    pub fn required_scopes<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.required_scopes = strings(scopes);
        self
    }

    /// Sets [`tool_call_scopes`](Self::tool_call_scopes).
    pub fn tool_call_scopes<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.tool_call_scopes = strings(scopes);
        self
    }

    /// Sets [`insufficient_scope_as_401`](Self::insufficient_scope_as_401).
    pub fn insufficient_scope_as_401(mut self, yes: bool) -> Self {
        self.insufficient_scope_as_401 = yes;
        self
    }

    /// Sets [`assertion_issuer_key`](Self::assertion_issuer_key) (an SPKI PEM).
    pub fn assertion_issuer_key(mut self, pem: impl Into<String>) -> Self {
        self.assertion_issuer_key = Some(pem.into());
        self
    }

    /// Sets [`client_public_key`](Self::client_public_key) (an SPKI PEM).
    pub fn client_public_key(mut self, pem: impl Into<String>) -> Self {
        self.client_public_key = Some(pem.into());
        self
    }

    /// Sets [`preregistered_client`](Self::preregistered_client): a client id and, optionally,
    /// its secret.
    pub fn preregistered_client(
        mut self,
        client_id: impl Into<String>,
        client_secret: Option<&str>,
    ) -> Self {
        self.preregistered_client = Some((client_id.into(), client_secret.map(str::to_owned)));
        self
    }
}

/// The DPoP behaviour of both servers.
///
/// ```
/// use mcp_oauth_testkit::{DpopConfig, TestkitConfig};
/// let config = TestkitConfig::default().dpop(DpopConfig::default().as_nonce("n-as").rs_nonce("n-rs"));
/// assert_eq!(config.dpop.unwrap().as_nonce.as_deref(), Some("n-as"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DpopConfig {
    /// A nonce the token endpoint requires in every proof (RFC 9449 §8).
    pub as_nonce: Option<String>,
    /// A nonce the resource server requires in every proof (RFC 9449 §9).
    pub rs_nonce: Option<String>,
    /// This server names a new nonce in every challenge and accepts no proof: for a client's
    /// give-up. Default `None`.
    pub endless_nonces: Option<ServerRole>,
    /// Quirk: a refresh is answered with tokens bound to the proof's key but no `token_type`
    /// (RFC 6749 §5.1 requires one; servers omit it). Default `false`.
    pub untyped_refresh: bool,
}

impl DpopConfig {
    /// Sets [`as_nonce`](Self::as_nonce).
    pub fn as_nonce(mut self, nonce: impl Into<String>) -> Self {
        self.as_nonce = Some(nonce.into());
        self
    }

    /// Sets [`rs_nonce`](Self::rs_nonce).
    pub fn rs_nonce(mut self, nonce: impl Into<String>) -> Self {
        self.rs_nonce = Some(nonce.into());
        self
    }

    /// Sets [`endless_nonces`](Self::endless_nonces).
    pub fn endless_nonces(mut self, server: ServerRole) -> Self {
        self.endless_nonces = Some(server);
        self
    }

    /// Sets [`untyped_refresh`](Self::untyped_refresh).
    pub fn untyped_refresh(mut self, untyped: bool) -> Self {
        self.untyped_refresh = untyped;
        self
    }
}

/// What the device codes of a testkit do, when the test does not decide by hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceOutcome {
    /// Stay pending until [`Testkit::approve_user_code`](crate::Testkit::approve_user_code) or
    /// [`Testkit::deny_user_code`](crate::Testkit::deny_user_code).
    Manual,
    /// Approve after this many polls answered pending (or `slow_down`).
    ApproveAfter(u32),
    /// Deny (`access_denied`) after this many polls.
    DenyAfter(u32),
    /// Expire (`expired_token`) after this many polls.
    ExpireAfter(u32),
}

/// The device grant's settings ([`TestkitConfig::device`](crate::TestkitConfig::device)).
#[derive(Clone, Debug)]
pub struct DeviceConfig {
    /// The `interval` of the device authorization response, in seconds. Default 5.
    pub interval_secs: u64,
    /// The `expires_in`, in seconds; past it (in real time) polls answer `expired_token`.
    /// Default 600.
    pub expires_in_secs: u64,
    /// What happens without the test's hand. Default [`DeviceOutcome::Manual`].
    pub outcome: DeviceOutcome,
    /// The first this-many polls answer `slow_down` instead of `authorization_pending`.
    /// Default 0.
    pub slow_down_polls: u32,
    /// Send `verification_uri_complete`. Default `true`.
    pub verification_uri_complete: bool,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        Self {
            interval_secs: 5,
            expires_in_secs: 600,
            outcome: DeviceOutcome::Manual,
            slow_down_polls: 0,
            verification_uri_complete: true,
        }
    }
}

impl DeviceConfig {
    /// Sets [`outcome`](Self::outcome).
    pub fn outcome(mut self, outcome: DeviceOutcome) -> Self {
        self.outcome = outcome;
        self
    }
    /// Sets [`interval_secs`](Self::interval_secs).
    pub fn interval_secs(mut self, secs: u64) -> Self {
        self.interval_secs = secs;
        self
    }
    /// Sets [`expires_in_secs`](Self::expires_in_secs).
    pub fn expires_in_secs(mut self, secs: u64) -> Self {
        self.expires_in_secs = secs;
        self
    }
    /// Sets [`slow_down_polls`](Self::slow_down_polls).
    pub fn slow_down_polls(mut self, polls: u32) -> Self {
        self.slow_down_polls = polls;
        self
    }
}
