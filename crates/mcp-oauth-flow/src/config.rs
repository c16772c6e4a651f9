//! What the application tells the flow about itself.

use std::sync::Arc;

use crate::assertion_grant::AssertionGrant;
use crate::chooser::AuthorizationServerChooser;
use crate::client_metadata::ClientMetadata;
use crate::registration::PreRegisteredClient;
use crate::scope::Scopes;
use crate::server_options::ServerOptions;
use crate::url_policy::{AddressPolicy, UrlPolicy};

/// What to do when authorization server metadata does not list `code_challenge_methods_supported`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PkcePolicy {
    /// Refuse the server, as MCP 2025-11-25 requires ("MUST refuse to proceed" when the field is
    /// absent). The default.
    #[default]
    RequireAdvertised,
    /// Proceed with S256 when the field is absent (Entra ID, Cognito and others omit it). A server
    /// that lists methods without S256 is refused either way.
    AssumeWhenAbsent,
}

/// The client's own configuration: how it is identified and where the user comes back to.
///
/// ```
/// use mcp_oauth_flow::{ClientConfig, client::PreRegisteredClient};
/// let config = ClientConfig::new("http://127.0.0.1:8976/callback")
///     .client_name("My Agent")
///     .client_metadata_document("https://agent.example.com/client-metadata.json")
///     .pre_registered(PreRegisteredClient::new("agent").for_issuer("https://auth.example.com"));
/// assert_eq!(config.redirect_uri, "http://127.0.0.1:8976/callback");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The redirect URI registered for the client and sent in authorization requests.
    pub redirect_uri: String,
    /// The `client_name` sent at dynamic registration.
    pub client_name: String,
    /// The RFC 7591 `application_type`; derived from the redirect URI when `None`.
    pub application_type: Option<String>,
    /// The URL of this client's metadata document, used as `client_id` with servers that
    /// advertise `client_id_metadata_document_supported`.
    pub client_metadata_document: Option<String>,
    /// Clients registered out of band, each bound to an issuer (or to any).
    pub pre_registered: Vec<PreRegisteredClient>,
    /// See [`PkcePolicy`].
    pub pkce_policy: PkcePolicy,
    /// Scopes to request when neither the challenge nor the resource metadata names any.
    pub default_scopes: Option<Scopes>,
    /// An assertion grant used instead of the authorization code (workload identity,
    /// enterprise-managed authorization); `None`: the authorization code (or client
    /// credentials, where the server offers only that).
    pub assertion_grant: Option<AssertionGrant>,
    /// Per-server options (extra parameters, offline access, a required refresh token); see
    /// [`ServerOptions`].
    pub servers: Vec<ServerOptions>,
    /// The RFC 7591 metadata shown on consent pages (home page, logo, terms, policy, contacts,
    /// software): sent at registration and published in the client ID metadata document.
    pub metadata: ClientMetadata,
    /// Which URLs the flow may fetch or send the browser to; see [`UrlPolicy`]. Default:
    /// [`AddressPolicy::default`].
    pub url_policy: Arc<dyn UrlPolicy>,
    /// Use the device authorization grant (RFC 8628) instead of the authorization code; see
    /// [`ClientConfig::device_authorization`].
    pub device_authorization: bool,
    /// Which of several listed authorization servers to try, in which order; `None`: each in
    /// the listed order until one's metadata validates. See [`AuthorizationServerChooser`].
    pub authorization_server_chooser: Option<AuthorizationServerChooser>,
}

impl ClientConfig {
    /// A configuration with this redirect URI and defaults for everything else.
    pub fn new(redirect_uri: impl Into<String>) -> Self {
        Self {
            redirect_uri: redirect_uri.into(),
            client_name: "tower-mcp-oauth client".into(),
            application_type: None,
            client_metadata_document: None,
            pre_registered: Vec::new(),
            pkce_policy: PkcePolicy::default(),
            default_scopes: None,
            assertion_grant: None,
            servers: Vec::new(),
            metadata: ClientMetadata::default(),
            url_policy: Arc::new(AddressPolicy::default()),
            device_authorization: false,
            authorization_server_chooser: None,
        }
    }

    /// Sets the `client_name` used at registration. Default: `tower-mcp-oauth client`.
    pub fn client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = name.into();
        self
    }

    /// Sets the `application_type` (`native` or `web`). Default: derived from the redirect URI.
    pub fn application_type(mut self, value: impl Into<String>) -> Self {
        self.application_type = Some(value.into());
        self
    }

    /// Sets the client ID metadata document URL. Default: none.
    pub fn client_metadata_document(mut self, url: impl Into<String>) -> Self {
        self.client_metadata_document = Some(url.into());
        self
    }

    /// Adds a pre-registered client. Default: none.
    pub fn pre_registered(mut self, client: PreRegisteredClient) -> Self {
        self.pre_registered.push(client);
        self
    }

    /// Sets the [`PkcePolicy`]. Default: [`PkcePolicy::RequireAdvertised`].
    pub fn pkce_policy(mut self, policy: PkcePolicy) -> Self {
        self.pkce_policy = policy;
        self
    }

    /// Sets the scopes used when the server names none. Default: none (the `scope` parameter
    /// is omitted).
    pub fn default_scopes(mut self, scopes: Scopes) -> Self {
        self.default_scopes = Some(scopes);
        self
    }

    /// Uses an assertion grant (RFC 7523 §2.1) with every authorization server: the flow asks
    /// the driver for the assertion ([`Action::ObtainAssertion`](crate::Action::ObtainAssertion))
    /// each time it runs the grant, and a server that does not offer the jwt-bearer grant is an
    /// [`ErrorKind::GrantNotSupported`](crate::ErrorKind::GrantNotSupported), never a fallback
    /// to another grant. Default: none.
    pub fn assertion_grant(mut self, grant: AssertionGrant) -> Self {
        self.assertion_grant = Some(grant);
        self
    }

    /// Uses the device authorization grant (RFC 8628) instead of the authorization code, for a
    /// user with no browser on this machine: the flow asks the driver to show a user code and a
    /// URL ([`Action::ShowUserCode`](crate::Action::ShowUserCode)) and polls the token endpoint
    /// while the user approves on another device. A server that advertises no
    /// `device_authorization_endpoint` is an
    /// [`ErrorKind::GrantNotSupported`](crate::ErrorKind::GrantNotSupported), never a fallback
    /// to the browser. Default: off.
    ///
    /// ```
    /// use mcp_oauth_flow::ClientConfig;
    /// let config = ClientConfig::new("http://127.0.0.1:8976/callback").device_authorization(true);
    /// assert!(config.device_authorization);
    /// ```
    pub fn device_authorization(mut self, on: bool) -> Self {
        self.device_authorization = on;
        self
    }

    /// Adds options for one MCP server or one issuer. Default: none (every server gets the
    /// standard requests, `prompt=consent` with offline access, no refresh token required).
    pub fn server(mut self, options: ServerOptions) -> Self {
        self.servers.push(options);
        self
    }

    /// Sets the RFC 7591 metadata sent at registration and published in the client ID
    /// metadata document. Default: none.
    pub fn metadata(mut self, metadata: ClientMetadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Sets the policy every URL the flow fetches or hands to the browser must pass (the
    /// protected resource metadata URL of a challenge, `authorization_servers`, each metadata
    /// URL and endpoint, the IdP endpoints of the assertion grants). Default:
    /// [`AddressPolicy::default`]: `https` or loopback, no user info or fragment, and no
    /// private, link-local, shared, documentation or cloud-metadata address unless the MCP
    /// server is on such a network.
    ///
    /// ```
    /// use mcp_oauth_flow::ClientConfig;
    /// use mcp_oauth_flow::url_policy::{AddressClass, AddressPolicy};
    /// // This application's MCP servers are public but their authorization server is not.
    /// let config = ClientConfig::new("http://127.0.0.1:8976/callback")
    ///     .url_policy(AddressPolicy::new().allow(AddressClass::Private));
    /// assert!(format!("{config:?}").contains("Private"));
    /// ```
    pub fn url_policy(mut self, policy: impl UrlPolicy) -> Self {
        self.url_policy = Arc::new(policy);
        self
    }

    /// Lets `chooser` pick which of the authorization servers a protected resource lists are
    /// tried, and in which order (RFC 9728 §7.6: the client chooses). Default: every one, in
    /// the listed order, until one's metadata validates. See [`AuthorizationServerChooser`].
    pub fn choose_authorization_server(mut self, chooser: AuthorizationServerChooser) -> Self {
        self.authorization_server_chooser = Some(chooser);
        self
    }
}
