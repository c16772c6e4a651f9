//! The resolver hook: the addresses a host name resolves to, judged by the address policy
//! before each sub-request (DNS rebinding).
//!
//! The core judges every URL by what the URL says ([`UrlPolicy::check_url`]): an IP literal by
//! its range, a name not at all, since only a resolver knows where it leads. A name that
//! resolves to `10.0.0.7` or `169.254.169.254` would otherwise slip past, and a name can change
//! its answer between two lookups (DNS rebinding: public when first checked, private when the
//! token request goes out). So, when the application gives the layer a [`Resolver`], every
//! sub-request to a host name is preceded by a lookup whose addresses must all pass
//! [`UrlPolicy::check_resolved`], judged against the addresses of the MCP server itself (a
//! server that resolves to `10.1.2.3` may send the client to a name that resolves to
//! `10.1.2.4`), every time, so a name that changes its answer is caught when it does. The
//! server's own addresses are those of its first lookup in the flow: a server name that
//! changed its answer to a private address would otherwise vouch for the private network
//! just when the flow is sent there.
//!
//! The inner HTTP client resolves the name again when it connects: the check narrows the
//! window, and an application that wants it closed makes its connector use the same resolver
//! (hyper-util's `HttpConnector::new_with_resolver`, reqwest's `dns_resolver`) and refuse what
//! the policy refuses.

use std::net::IpAddr;
use std::sync::Arc;

use mcp_oauth_flow::url_policy::{host_class, UrlPolicy};
use mcp_oauth_flow::{Error, ErrorKind};
use url::{Host, Url};

use crate::client::HttpClient;
use crate::BoxFuture;

/// Looks up the addresses of a host name, for the address policy (see
/// [`OAuthLayer::resolve_with`](crate::OAuthLayer::resolve_with)). An error is the request's
/// error; an empty answer is refused.
///
/// ```
/// use std::net::IpAddr;
/// use tower_mcp_oauth::{BoxFuture, Error, Resolver};
/// /// A fixed table, as a test or a split-horizon setup might use.
/// #[derive(Debug)]
/// struct Table;
/// impl Resolver for Table {
///     fn resolve<'a>(&'a self, host: &'a str, _port: u16) -> BoxFuture<'a, Result<Vec<IpAddr>, Error>> {
///         let ip: IpAddr = if host == "as.internal" { [10, 0, 0, 7].into() } else { [93, 184, 216, 34].into() };
///         Box::pin(async move { Ok(vec![ip]) })
///     }
/// }
/// # tokio_test::block_on(async {
/// assert_eq!(Table.resolve("as.internal", 443).await.unwrap(), vec![IpAddr::from([10, 0, 0, 7])]);
/// # });
/// ```
pub trait Resolver: std::fmt::Debug + Send + Sync + 'static {
    /// The addresses `host` resolves to (for a connection to `port`).
    fn resolve<'a>(&'a self, host: &'a str, port: u16)
        -> BoxFuture<'a, Result<Vec<IpAddr>, Error>>;
}

/// A [`Resolver`] on tokio's `lookup_host` (the system resolver, on tokio's blocking pool).
///
/// ```
/// use tower_mcp_oauth::{Resolver, TokioResolver};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let addresses = TokioResolver.resolve("localhost", 80).await.unwrap();
/// assert!(addresses.iter().all(|ip| ip.is_loopback()), "{addresses:?}");
/// # }
/// ```
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioResolver;

#[cfg(feature = "tokio")]
impl Resolver for TokioResolver {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<Vec<IpAddr>, Error>> {
        Box::pin(async move {
            let found = tokio::net::lookup_host((host, port)).await.map_err(|e| {
                Error::new(
                    ErrorKind::Transport,
                    format!("could not resolve {host}: {e}"),
                )
            })?;
            Ok(found.map(|addr| addr.ip()).collect())
        })
    }
}

/// What a guarded client checks each request against.
struct Guard {
    policy: Arc<dyn UrlPolicy>,
    resolver: Option<Arc<dyn Resolver>>,
    /// The MCP server the requests are made for.
    server: Url,
    /// The addresses of the server's name as first looked up in this flow: what the server
    /// may vouch for is fixed then. Looked up afresh before each request, a name the server's
    /// owner controls could answer a private address just when the flow is sent to one of its
    /// neighbours.
    server_seen: std::sync::OnceLock<Vec<IpAddr>>,
}

/// `client`, with every request's URL checked by `policy` against `server` before it is sent,
/// and, with a `resolver`, the addresses of its host name too. The layer wraps the client of
/// each flow and logout in it, so the revocation endpoint and an authorizer's requests are
/// judged like the flow's own.
pub(crate) fn guarded(
    client: HttpClient,
    policy: Arc<dyn UrlPolicy>,
    resolver: Option<Arc<dyn Resolver>>,
    server: Url,
) -> HttpClient {
    let guard = Arc::new(Guard {
        policy,
        resolver,
        server,
        server_seen: std::sync::OnceLock::new(),
    });
    HttpClient::from_fn(move |request| {
        let (guard, client) = (Arc::clone(&guard), client.clone());
        async move {
            guard.check(&request).await?;
            client.send(request).await
        }
    })
}

impl Guard {
    async fn check(&self, request: &http::Request<bytes::Bytes>) -> Result<(), Error> {
        let raw = request.uri().to_string();
        let url = Url::parse(&raw).map_err(|e| {
            Error::new(
                ErrorKind::InsecureUrl,
                format!("the sub-request URL is not absolute: {e}"),
            )
        })?;
        self.policy.check_url(&url, &self.server, "sub-request")?;
        let Some(resolver) = &self.resolver else {
            return Ok(());
        };
        // IP literals were judged by the URL alone.
        let Some(Host::Domain(host)) = url.host() else {
            return Ok(());
        };
        // A name with a class of its own is a loopback name (`localhost`, `*.localhost`).
        let loopback_name = host_class(&url).is_some();
        let port = url.port_or_known_default().unwrap_or(443);
        let addresses = match resolver.resolve(host, port).await {
            Ok(addresses) => addresses,
            // `localhost` itself is this host on every system (a hosts file says so): a
            // resolver that does not know it (a table of the app's hosts) leaves it to the
            // name's rule. A `*.localhost` name whose lookup fails stays a failure: the
            // connector, looking it up itself, could be sent off the host by the very lack of
            // the rule the check is for.
            Err(_) if loopback_name && host.eq_ignore_ascii_case("localhost") => return Ok(()),
            Err(e) => return Err(e),
        };
        if addresses.is_empty() && loopback_name {
            return Ok(());
        }
        if addresses.is_empty() {
            return Err(Error::new(
                ErrorKind::InsecureUrl,
                format!("sub-request to {host} is refused: the name resolved to no address"),
            ));
        }
        if loopback_name {
            // RFC 6761 §6.3: a localhost name is this host, which is why plain http may go to
            // it; resolved elsewhere (a resolver without the rule, a search domain), it would
            // carry that plain http off the host.
            return match addresses.iter().find(|a| !a.to_canonical().is_loopback()) {
                None => Ok(()),
                Some(elsewhere) => Err(Error::new(
                    ErrorKind::InsecureUrl,
                    format!(
                        "sub-request to {host} is refused: a localhost name resolved to \
                         {elsewhere}, not a loopback address (RFC 6761 §6.3)"
                    ),
                )),
            };
        }
        // A request to the server's own name: its answer is the server's, looked up once.
        let server = if self.server.host_str() == Some(host) {
            self.server_seen.get_or_init(|| addresses.clone()).clone()
        } else {
            self.server_addresses(resolver.as_ref()).await?
        };
        self.policy
            .check_resolved(&url, &addresses, &server, "sub-request")
    }

    /// The MCP server's addresses: its IP literal, a loopback address for a loopback name, or
    /// what its name resolved to the first time this flow looked it up.
    async fn server_addresses(&self, resolver: &dyn Resolver) -> Result<Vec<IpAddr>, Error> {
        if let Some(seen) = self.server_seen.get() {
            return Ok(seen.clone());
        }
        let found = self.look_up_server(resolver).await?;
        Ok(self.server_seen.get_or_init(|| found).clone())
    }

    async fn look_up_server(&self, resolver: &dyn Resolver) -> Result<Vec<IpAddr>, Error> {
        Ok(match self.server.host() {
            Some(Host::Ipv4(ip)) => vec![ip.into()],
            Some(Host::Ipv6(ip)) => vec![ip.into()],
            Some(Host::Domain(_)) if host_class(&self.server).is_some() => {
                vec![std::net::Ipv4Addr::LOCALHOST.into()]
            }
            Some(Host::Domain(name)) => {
                let port = self.server.port_or_known_default().unwrap_or(443);
                resolver.resolve(name, port).await?
            }
            None => Vec::new(),
        })
    }
}
