//! [`OAuthLayer::url_policy`] and [`OAuthLayer::resolve_with`]: which addresses the layer's
//! flows may reach (see `resolve.rs` and the core's `url_policy`).

use std::sync::Arc;

use mcp_oauth_flow::url_policy::UrlPolicy;

use crate::layer::OAuthLayer;
use crate::resolve::Resolver;

impl OAuthLayer {
    /// Sets the policy every URL a flow fetches or hands to the browser must pass: the
    /// protected resource metadata URL of a challenge, `authorization_servers`, each metadata
    /// URL and endpoint (registration, token, revocation, authorization), the IdP endpoints of
    /// the assertion grants. A refused URL is an [`ErrorKind::InsecureUrl`](crate::ErrorKind::InsecureUrl)
    /// naming it and the rule, before any request to it. Default:
    /// [`AddressPolicy::default`](crate::AddressPolicy): `https` or loopback, no user info or
    /// fragment, and no private, link-local, unique-local, shared, documentation or
    /// cloud-metadata address unless the MCP server itself is on such a network.
    ///
    /// ```
    /// use tower_mcp_oauth::{AddressClass, AddressPolicy, ClientConfig, HeadlessAuthorizer, OAuthLayer};
    /// // Public MCP servers whose authorization server is on the company network.
    /// let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:1/cb"), HeadlessAuthorizer::new())
    ///     .url_policy(AddressPolicy::new().allow(AddressClass::Private));
    /// # let _ = layer;
    /// ```
    pub fn url_policy(mut self, policy: impl UrlPolicy) -> Self {
        Arc::make_mut(&mut self.state_mut().config).url_policy = Arc::new(policy);
        self
    }

    /// Checks the addresses each host name resolves to before every sub-request to it, with
    /// the [`url_policy`](Self::url_policy) (against the MCP server's own addresses), so a
    /// name that leads to a private or cloud-metadata address, or starts to (DNS rebinding),
    /// is refused like an IP literal. Default: off (names are not resolved by the layer).
    ///
    /// ```
    /// use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthLayer, TokioResolver};
    /// let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:1/cb"), HeadlessAuthorizer::new())
    ///     .resolve_with(TokioResolver);
    /// # let _ = layer;
    /// ```
    pub fn resolve_with(self, resolver: impl Resolver) -> Self {
        self.resolver_option(Some(Arc::new(resolver)))
    }

    /// [`resolve_with`](Self::resolve_with), or none: for the web API's users' layers.
    #[cfg_attr(not(feature = "web"), allow(dead_code))]
    pub(crate) fn resolver_option(mut self, resolver: Option<Arc<dyn Resolver>>) -> Self {
        self.state_mut().resolver = resolver;
        self
    }
}
