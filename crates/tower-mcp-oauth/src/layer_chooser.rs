//! [`OAuthLayer::choose_authorization_server`]: the application's choice among the
//! authorization servers a protected resource lists (see [`AuthorizationServerChooser`]).

use std::sync::Arc;

use mcp_oauth_flow::AuthorizationServerChooser;
use url::Url;

use crate::layer::OAuthLayer;

impl OAuthLayer {
    /// Lets `choose` pick which of the authorization servers a protected resource metadata
    /// document lists are tried, and in which order (RFC 9728 §7.6; the MCP spec leaves the
    /// choice to the client). It is given the listed servers in the document's order and
    /// returns the ones to try; a URL it returns that the document does not list is ignored,
    /// and if it keeps none the flow fails with
    /// [`NoUsableAuthorizationServer`](crate::ErrorKind::NoUsableAuthorizationServer).
    ///
    /// Default: every listed server, in the listed order, until one's metadata validates
    /// (is found, names the issuer it was fetched for, and has the required fields). Client
    /// registrations are kept per issuer and tokens per protected resource (naming the issuer
    /// that granted them), whichever is used.
    ///
    /// ```
    /// use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthLayer};
    /// // Only ever the company's own authorization server, whatever else a server lists.
    /// let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:1/cb"), HeadlessAuthorizer::new())
    ///     .choose_authorization_server(|listed: &[url::Url]| {
    ///         listed.iter().filter(|u| u.host_str() == Some("login.example.com")).cloned().collect()
    ///     });
    /// # let _ = layer;
    /// ```
    pub fn choose_authorization_server(
        mut self,
        choose: impl Fn(&[Url]) -> Vec<Url> + Send + Sync + 'static,
    ) -> Self {
        let config = &mut self.state_mut().config;
        Arc::make_mut(config).authorization_server_chooser =
            Some(AuthorizationServerChooser::new(choose));
        self
    }
}
