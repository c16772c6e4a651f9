//! [`AuthorizationServerChooser`]: the application's say in which of the authorization servers
//! a protected resource lists is used, and in which order they are tried.

use std::fmt;
use std::sync::Arc;

use url::Url;

/// Picks, from the authorization servers a protected resource metadata document lists (RFC
/// 9728 §2 `authorization_servers`, in the document's order), the ones to try and their order.
///
/// The MCP authorization spec ("Authorization Server Location") leaves the choice to the
/// client, following RFC 9728 §7.6. Without a chooser the flow tries every listed server in the
/// listed order until one's metadata validates. A chooser can reorder them or keep fewer;
/// a URL it returns that the document does not list is ignored (the resource names the servers
/// it trusts, not the client), and an empty answer ends the flow with
/// [`NoUsableAuthorizationServer`](crate::ErrorKind::NoUsableAuthorizationServer).
///
/// ```
/// use mcp_oauth_flow::{AuthorizationServerChooser, ClientConfig};
/// // Prefer the company's own authorization server, then the others in the listed order.
/// let chooser = AuthorizationServerChooser::new(|listed: &[url::Url]| {
///     let mut order = listed.to_vec();
///     order.sort_by_key(|u| u.host_str() != Some("login.example.com"));
///     order
/// });
/// let listed: Vec<url::Url> = vec![
///     "https://other.example.net".parse().unwrap(),
///     "https://login.example.com".parse().unwrap(),
/// ];
/// assert_eq!(chooser.choose(&listed)[0].as_str(), "https://login.example.com/");
/// let config = ClientConfig::new("http://127.0.0.1:1/cb").choose_authorization_server(chooser);
/// assert!(config.authorization_server_chooser.is_some());
/// ```
#[derive(Clone)]
pub struct AuthorizationServerChooser(Arc<ChooseFn>);

/// The closure inside an [`AuthorizationServerChooser`].
type ChooseFn = dyn Fn(&[Url]) -> Vec<Url> + Send + Sync;

impl AuthorizationServerChooser {
    /// A chooser from a closure given the listed servers and returning the ones to try, in
    /// order.
    pub fn new(choose: impl Fn(&[Url]) -> Vec<Url> + Send + Sync + 'static) -> Self {
        Self(Arc::new(choose))
    }

    /// The servers to try, as the closure answers for `listed`.
    pub fn choose(&self, listed: &[Url]) -> Vec<Url> {
        (self.0)(listed)
    }
}

impl fmt::Debug for AuthorizationServerChooser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthorizationServerChooser(..)")
    }
}
