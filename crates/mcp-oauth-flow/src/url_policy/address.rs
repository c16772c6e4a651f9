//! The address policy: which hosts a URL learnt from the network may point at.
//!
//! Every URL the flow fetches or hands to the browser comes from a server (metadata,
//! `authorization_servers`, endpoints). A hostile or compromised MCP server could point the
//! client at an address only the client can reach: the cloud metadata service, a router's admin
//! page, another service on the private network (server-side request forgery). So an IP literal
//! in a non-public range is refused unless the MCP server itself is on that kind of network (a
//! server on `10.1.2.3` may send the client to `10.1.2.4`; a public one may not), and a cloud
//! metadata or non-unicast address is refused always.
//!
//! Host names are judged by what they resolve to: [`UrlPolicy::check_resolved`] is the hook a
//! resolver calls with the addresses it found (which also defeats DNS rebinding, where a name
//! first resolves to a public address and later to a private one). The core does no IO: the
//! glue resolves, this module decides.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use super::is_secure_url;
use crate::error::{Error, ErrorKind};

/// The kind of network an address belongs to, as far as the policy cares.
///
/// ```
/// use std::net::IpAddr;
/// use mcp_oauth_flow::url_policy::{classify_ip, AddressClass};
/// let class = |ip: &str| classify_ip(ip.parse::<IpAddr>().unwrap());
/// assert_eq!(class("93.184.216.34"), AddressClass::Public);
/// assert_eq!(class("10.1.2.3"), AddressClass::Private);
/// assert_eq!(class("169.254.169.254"), AddressClass::CloudMetadata);
/// assert_eq!(class("fd00::1"), AddressClass::UniqueLocal);
/// assert_eq!(class("::ffff:192.168.0.1"), AddressClass::Private); // IPv4-mapped
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressClass {
    /// Globally routable, as far as the ranges below tell.
    Public,
    /// `127.0.0.0/8` (RFC 1122 §3.2.1.3), `::1` (RFC 4291 §2.5.3), and the names `localhost`
    /// and `*.localhost` (RFC 6761 §6.3).
    Loopback,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16` (RFC 1918 §3).
    Private,
    /// `100.64.0.0/10`, carrier-grade NAT (RFC 6598 §7).
    Shared,
    /// `169.254.0.0/16` (RFC 3927 §2.1) and `fe80::/10` (RFC 4291 §2.5.6).
    LinkLocal,
    /// `fc00::/7` (RFC 4193 §3.1), and the deprecated site-local `fec0::/10` (RFC 3879 §4).
    UniqueLocal,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24` (RFC 5737 §3) and `2001:db8::/32`
    /// (RFC 3849 §4): examples, never real servers.
    Documentation,
    /// A cloud provider's instance metadata service, which hands out the machine's credentials:
    /// `169.254.169.254` (AWS, Google Cloud, Azure, and most others), `fd00:ec2::254` (AWS over
    /// IPv6), `100.100.100.200` (Alibaba Cloud), `192.0.0.192` (Oracle Cloud). Never fetched.
    CloudMetadata,
    /// No single host to talk to: "this network" `0.0.0.0/8` and the IETF assignments
    /// `192.0.0.0/24` (RFC 6890 §2.2.2), benchmarking `198.18.0.0/15` (RFC 2544 §C.2.2),
    /// multicast `224.0.0.0/4` (RFC 5771) and `ff00::/8` (RFC 4291 §2.7), the reserved
    /// `240.0.0.0/4` with the broadcast address (RFC 1112 §4, RFC 919 §7), the unspecified `::`
    /// (RFC 4291 §2.5.2), the discard prefix `100::/64` (RFC 6666 §4). Never fetched.
    Reserved,
}

impl AddressClass {
    /// How the class is named in an error, with the RFC that defines it.
    fn describe(self) -> &'static str {
        match self {
            Self::Public => "a public address",
            Self::Loopback => "a loopback address (RFC 1122, RFC 4291, RFC 6761)",
            Self::Private => "a private address (RFC 1918)",
            Self::Shared => "a shared carrier-grade NAT address (RFC 6598)",
            Self::LinkLocal => "a link-local address (RFC 3927, RFC 4291)",
            Self::UniqueLocal => "a unique-local address (RFC 4193)",
            Self::Documentation => "a documentation address (RFC 5737, RFC 3849)",
            Self::CloudMetadata => "a cloud instance metadata address",
            Self::Reserved => "a reserved or non-unicast address (RFC 6890)",
        }
    }

    /// Whether no server's own network makes this class acceptable.
    fn never_fetched(self) -> bool {
        matches!(self, Self::CloudMetadata | Self::Reserved)
    }
}

/// The class of an IP address. IPv6 addresses that embed an IPv4 one (IPv4-mapped
/// `::ffff:0:0/96`, RFC 4291 §2.5.5.2; IPv4-compatible `::/96`, §2.5.5.1; NAT64
/// `64:ff9b::/96`, RFC 6052 §2.1, and the local-use `64:ff9b:1::/48`, RFC 8215; 6to4
/// `2002::/16`, RFC 3056 §2; Teredo `2001::/32`, RFC 4380 §4) are judged by the IPv4
/// address they carry, since that is where the packets go.
pub fn classify_ip(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, d] = ip.octets();
    match (a, b, c, d) {
        (169, 254, 169, 254) | (100, 100, 100, 200) | (192, 0, 0, 192) => {
            AddressClass::CloudMetadata
        }
        (127, ..) => AddressClass::Loopback,
        (10, ..) | (192, 168, ..) => AddressClass::Private,
        (172, b, ..) if (16..32).contains(&b) => AddressClass::Private,
        (100, b, ..) if (64..128).contains(&b) => AddressClass::Shared,
        (169, 254, ..) => AddressClass::LinkLocal,
        (192, 0, 2, _) | (198, 51, 100, _) | (203, 0, 113, _) => AddressClass::Documentation,
        (0, ..) | (192, 0, 0, _) | (224..=255, ..) => AddressClass::Reserved,
        (198, 18 | 19, ..) => AddressClass::Reserved,
        _ => AddressClass::Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let s = ip.segments();
    if ip == Ipv6Addr::LOCALHOST {
        return AddressClass::Loopback;
    }
    if ip == Ipv6Addr::UNSPECIFIED {
        return AddressClass::Reserved;
    }
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return AddressClass::CloudMetadata;
    }
    // Addresses that carry an IPv4 address go where that address goes.
    let low_v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0, 0, _, _] => return classify_v4(low_v4),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => return classify_v4(low_v4),
        // The local-use NAT64 prefix (RFC 8215), read as its common /96 form (RFC 6052 §2.2).
        [0x64, 0xff9b, 1, ..] => return classify_v4(low_v4),
        // Teredo (RFC 4380 §4): the client's IPv4 address, inverted, in the low 32 bits.
        [0x2001, 0, ..] => return classify_v4(Ipv4Addr::from(!u32::from(low_v4))),
        [0x2002, hi, lo, ..] => {
            let embedded = Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
            return classify_v4(embedded);
        }
        _ => {}
    }
    match s[0] {
        x if x & 0xfe00 == 0xfc00 => AddressClass::UniqueLocal,
        x if x & 0xffc0 == 0xfe80 => AddressClass::LinkLocal,
        x if x & 0xffc0 == 0xfec0 => AddressClass::UniqueLocal,
        x if x & 0xff00 == 0xff00 => AddressClass::Reserved,
        0x2001 if s[1] == 0x0db8 => AddressClass::Documentation,
        0x0100 if s[1..4] == [0, 0, 0] => AddressClass::Reserved,
        _ => AddressClass::Public,
    }
}

/// The class of a URL's host when the URL alone tells it: an IP literal, or a `localhost`
/// name. `None` for any other name: what it resolves to decides
/// ([`UrlPolicy::check_resolved`]).
pub fn host_class(url: &Url) -> Option<AddressClass> {
    match url.host()? {
        Host::Ipv4(ip) => Some(classify_v4(ip)),
        Host::Ipv6(ip) => Some(classify_v6(ip)),
        Host::Domain(_) if super::is_loopback_host(url) => Some(AddressClass::Loopback),
        Host::Domain(_) => None,
    }
}

/// Decides whether the flow may fetch a URL, or send the browser to it. Pluggable: the
/// standard rules are [`AddressPolicy`]; an application with other needs implements this.
///
/// `server` is the MCP server the flow authorizes for: how far a URL may point depends on where
/// that server is. `what` names the URL in errors (`"token_endpoint"`). `Debug` so a
/// [`ClientConfig`](crate::ClientConfig) holding one can still be printed.
pub trait UrlPolicy: fmt::Debug + Send + Sync + 'static {
    /// Checks a URL before it is fetched or handed to the browser, from the URL alone.
    fn check_url(&self, url: &Url, server: &Url, what: &str) -> Result<(), Error>;

    /// Checks the addresses `url`'s host name resolved to, before connecting to any of them;
    /// `server_addresses` are the MCP server's (empty when unknown). A resolver hook calls it
    /// for every name, every time it resolves one, so a name that changes its answer (DNS
    /// rebinding) is caught when it does.
    fn check_resolved(
        &self,
        url: &Url,
        addresses: &[IpAddr],
        server_addresses: &[IpAddr],
        what: &str,
    ) -> Result<(), Error>;
}

#[allow(dead_code)]
fn _object_safe(_: &dyn UrlPolicy) {}

/// The standard [`UrlPolicy`], with safe defaults:
///
/// 1. `https`, or `http` to a loopback host only (OAuth 2.1 §1.5, RFC 8252 §8.3);
/// 2. no user info (RFC 9110 §4.2.4: it is deprecated in `http(s)` URIs, and a credential in a
///    URL ends up in logs) and no fragment (RFC 6749 §3.1.1 and §3.1.2 forbid one on the
///    authorization and redirect endpoints; RFC 8414 §2 on the issuer);
/// 3. a host in a non-public [`AddressClass`] only when the MCP server's own host is in the
///    same class (a server on `10.1.2.3` may send the client to `10.1.2.4`), and a cloud
///    metadata or reserved address never, whatever the server;
/// 4. the same rule on the addresses a host name resolves to, when a resolver hook calls
///    [`check_resolved`](UrlPolicy::check_resolved).
///
/// ```
/// use mcp_oauth_flow::url_policy::{AddressPolicy, UrlPolicy};
/// use mcp_oauth_flow::ErrorKind;
/// use url::Url;
/// let policy = AddressPolicy::default();
/// let url = |s: &str| Url::parse(s).unwrap();
/// let public = url("https://mcp.example.com/mcp");
/// assert!(policy.check_url(&url("https://as.example.com/token"), &public, "token_endpoint").is_ok());
/// let error = policy.check_url(&url("https://10.0.0.5/token"), &public, "token_endpoint").unwrap_err();
/// assert_eq!(error.kind(), ErrorKind::InsecureUrl);
/// assert!(error.to_string().contains("private address (RFC 1918)"), "{error}");
/// // A server on a private network may use its neighbours.
/// let private = url("https://10.1.2.3/mcp");
/// assert!(policy.check_url(&url("https://10.1.2.4/token"), &private, "token_endpoint").is_ok());
/// // The cloud metadata service, never.
/// let local = url("http://169.254.1.1/mcp");
/// assert!(policy.check_url(&url("https://169.254.169.254/latest"), &local, "issuer").is_err());
/// ```
#[derive(Clone, Default)]
pub struct AddressPolicy {
    /// Classes accepted whatever the server's own (an application on a private network whose
    /// MCP servers are public, say). Never the cloud metadata or reserved classes.
    allowed: Vec<AddressClass>,
}

impl fmt::Debug for AddressPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddressPolicy")
            .field("allowed", &self.allowed)
            .finish()
    }
}

impl AddressPolicy {
    /// The standard policy (the same as `Default`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts addresses of `class` whatever network the MCP server is on: for an
    /// application that knows its servers use private authorization servers. A cloud metadata
    /// or reserved class stays refused.
    ///
    /// ```
    /// use mcp_oauth_flow::url_policy::{AddressClass, AddressPolicy, UrlPolicy};
    /// use url::Url;
    /// let policy = AddressPolicy::new().allow(AddressClass::Private);
    /// let public = Url::parse("https://mcp.example.com/mcp").unwrap();
    /// let private_as = Url::parse("https://192.168.1.10/token").unwrap();
    /// assert!(policy.check_url(&private_as, &public, "token_endpoint").is_ok());
    /// ```
    pub fn allow(mut self, class: AddressClass) -> Self {
        if !class.never_fetched() && !self.allowed.contains(&class) {
            self.allowed.push(class);
        }
        self
    }

    /// Whether an address of `class` may be used for an MCP server on `server` (the classes of
    /// its host; empty when unknown, which counts as public).
    fn permits(&self, class: AddressClass, server: &[AddressClass]) -> bool {
        class == AddressClass::Public
            || (!class.never_fetched()
                && (self.allowed.contains(&class) || server.contains(&class)))
    }

    fn refusal(url: &Url, what: &str, address: &str, class: AddressClass) -> Error {
        let rule = if class.never_fetched() {
            "it is never fetched".to_owned()
        } else {
            "the MCP server is not on such a network".to_owned()
        };
        Error::new(
            ErrorKind::InsecureUrl,
            format!(
                "{what} {} is refused: {address} is {}, and {rule}",
                shown(url),
                class.describe()
            ),
        )
    }
}

/// A URL as errors show it: without user info, query or fragment (they may carry secrets).
fn shown(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

impl UrlPolicy for AddressPolicy {
    fn check_url(&self, url: &Url, server: &Url, what: &str) -> Result<(), Error> {
        if !is_secure_url(url) {
            return Err(Error::new(
                ErrorKind::InsecureUrl,
                format!(
                    "{what} {} must use https (plain http is allowed only to a loopback host)",
                    shown(url)
                ),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::new(
                ErrorKind::InsecureUrl,
                format!("{what} {} is refused: it carries user info", shown(url)),
            ));
        }
        if url.fragment().is_some() {
            return Err(Error::new(
                ErrorKind::InsecureUrl,
                format!("{what} {} is refused: it has a fragment", shown(url)),
            ));
        }
        let Some(class) = host_class(url) else {
            // A name: judged by what it resolves to.
            return Ok(());
        };
        let server_class: Vec<AddressClass> = host_class(server).into_iter().collect();
        if self.permits(class, &server_class) {
            Ok(())
        } else {
            let host = url.host_str().unwrap_or_default();
            Err(Self::refusal(url, what, host, class))
        }
    }

    fn check_resolved(
        &self,
        url: &Url,
        addresses: &[IpAddr],
        server_addresses: &[IpAddr],
        what: &str,
    ) -> Result<(), Error> {
        let server: Vec<AddressClass> =
            server_addresses.iter().map(|ip| classify_ip(*ip)).collect();
        // Every address must pass: a connection may go to any of them.
        for ip in addresses {
            let class = classify_ip(*ip);
            if !self.permits(class, &server) {
                return Err(Self::refusal(url, what, &ip.to_string(), class));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(ip: &str) -> AddressClass {
        classify_ip(ip.parse().unwrap())
    }

    #[test]
    fn ipv4_ranges_and_their_edges() {
        use AddressClass::*;
        for (ip, expected) in [
            ("8.8.8.8", Public),
            ("127.0.0.1", Loopback),
            ("127.255.255.255", Loopback),
            ("10.0.0.0", Private),
            ("10.255.255.255", Private),
            ("172.15.255.255", Public),
            ("172.16.0.0", Private),
            ("172.31.255.255", Private),
            ("172.32.0.0", Public),
            ("192.168.0.1", Private),
            ("192.169.0.1", Public),
            ("100.63.255.255", Public),
            ("100.64.0.0", Shared),
            ("100.127.255.255", Shared),
            ("100.128.0.0", Public),
            ("169.254.0.1", LinkLocal),
            ("169.254.169.254", CloudMetadata),
            ("100.100.100.200", CloudMetadata),
            ("192.0.0.192", CloudMetadata),
            ("192.0.2.1", Documentation),
            ("198.51.100.7", Documentation),
            ("203.0.113.255", Documentation),
            ("0.0.0.0", Reserved),
            ("0.1.2.3", Reserved),
            ("192.0.0.8", Reserved),
            ("198.18.0.1", Reserved),
            ("198.19.255.255", Reserved),
            ("198.20.0.0", Public),
            ("224.0.0.1", Reserved),
            ("239.255.255.255", Reserved),
            ("240.0.0.1", Reserved),
            ("255.255.255.255", Reserved),
            ("223.255.255.255", Public),
        ] {
            assert_eq!(class(ip), expected, "{ip}");
        }
    }

    #[test]
    fn ipv6_ranges_and_embedded_ipv4() {
        use AddressClass::*;
        for (ip, expected) in [
            ("2606:4700::1111", Public),
            ("::1", Loopback),
            ("::", Reserved),
            ("fc00::1", UniqueLocal),
            ("fd00::1", UniqueLocal),
            ("fdff:ffff::1", UniqueLocal),
            ("fe00::1", Public),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("fec0::1", UniqueLocal),
            ("fd00:ec2::254", CloudMetadata),
            ("2001:db8::1", Documentation),
            ("2001:db9::1", Public),
            ("ff02::1", Reserved),
            ("100::1", Reserved),
            ("100:0:0:1::1", Public),
            // IPv4-mapped, IPv4-compatible, NAT64 and 6to4 go where their IPv4 address goes.
            ("::ffff:10.0.0.1", Private),
            ("::ffff:169.254.169.254", CloudMetadata),
            ("::ffff:8.8.8.8", Public),
            ("::10.0.0.1", Private),
            ("64:ff9b::a9fe:a9fe", CloudMetadata),
            ("64:ff9b::808:808", Public),
            ("2002:c0a8:0101::1", Private),
            ("2002:0808:0808::1", Public),
            ("64:ff9b:1::a9fe:a9fe", CloudMetadata),
            ("64:ff9b:1::a00:7", Private),
            ("64:ff9b:1::808:808", Public),
            // Teredo: the client's address inverted, 10.0.0.7 here, then 8.8.8.8.
            ("2001:0:4136:e378:8000:63bf:f5ff:fff8", Private),
            ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", Public),
        ] {
            assert_eq!(class(ip), expected, "{ip}");
        }
    }

    fn check(url: &str, server: &str) -> Result<(), Error> {
        AddressPolicy::default().check_url(
            &Url::parse(url).unwrap(),
            &Url::parse(server).unwrap(),
            "u",
        )
    }

    const PUBLIC: &str = "https://mcp.example.com/mcp";

    #[test]
    fn a_public_server_may_not_send_the_client_to_a_local_network() {
        for url in [
            "https://10.0.0.5/token",
            "https://172.16.0.1/",
            "https://192.168.1.1/",
            "https://100.64.0.1/",
            "https://169.254.10.10/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://192.0.2.1/",
            "https://[::ffff:10.0.0.5]/",
            "http://127.0.0.1:8080/token",
            "http://localhost/token",
        ] {
            let error = check(url, PUBLIC).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InsecureUrl, "{url}");
            assert!(
                error.to_string().contains("not on such a network"),
                "{error}"
            );
        }
        assert!(check("https://as.example.com/token", PUBLIC).is_ok());
        assert!(check("https://93.184.216.34/token", PUBLIC).is_ok());
    }

    #[test]
    fn a_server_on_a_local_network_may_use_that_kind_of_network_only() {
        assert!(check("https://10.1.2.4/token", "https://10.1.2.3/mcp").is_ok());
        assert!(check("https://[fd00::2]/", "https://[fd00::1]/mcp").is_ok());
        assert!(check("http://127.0.0.1:9/token", "http://localhost:8/mcp").is_ok());
        assert!(check("http://localhost:9/token", "http://127.0.0.1:8/mcp").is_ok());
        // Any RFC 1918 range is "such a network"; another kind is still refused.
        assert!(check("https://192.168.0.1/", "https://10.1.2.3/mcp").is_ok());
        assert!(check("https://100.64.0.1/", "https://10.1.2.3/mcp").is_err());
        assert!(check("https://[fd00::1]/", "https://10.1.2.3/mcp").is_err());
        assert!(check("http://127.0.0.1/", "https://10.1.2.3/mcp").is_err());
    }

    #[test]
    fn cloud_metadata_and_reserved_addresses_are_never_fetched() {
        for (url, server) in [
            (
                "https://169.254.169.254/latest/meta-data",
                "https://169.254.1.1/mcp",
            ),
            ("https://169.254.169.254/", PUBLIC),
            ("https://[fd00:ec2::254]/", "https://[fd00::1]/mcp"),
            ("https://100.100.100.200/", "https://100.64.0.1/mcp"),
            ("https://0.0.0.0/", "https://0.0.0.1/mcp"),
            ("https://224.0.0.1/", PUBLIC),
        ] {
            let error = check(url, server).unwrap_err();
            assert!(
                error.to_string().contains("never fetched"),
                "{url}: {error}"
            );
        }
        // Not even when the application allows the class around them.
        let policy = AddressPolicy::new()
            .allow(AddressClass::LinkLocal)
            .allow(AddressClass::CloudMetadata);
        let metadata = Url::parse("https://169.254.169.254/").unwrap();
        assert!(policy
            .check_url(&metadata, &Url::parse(PUBLIC).unwrap(), "u")
            .is_err());
        let link_local = Url::parse("https://169.254.1.2/").unwrap();
        assert!(policy
            .check_url(&link_local, &Url::parse(PUBLIC).unwrap(), "u")
            .is_ok());
    }

    #[test]
    fn user_info_fragments_and_cleartext_are_refused_without_echoing_secrets() {
        let error = check("https://user:s3cret@as.example.com/token", PUBLIC).unwrap_err();
        assert!(error.to_string().contains("user info"), "{error}");
        assert!(!error.to_string().contains("s3cret"), "{error}");
        let error = check("https://as.example.com/authorize#frag", PUBLIC).unwrap_err();
        assert!(error.to_string().contains("fragment"), "{error}");
        let error = check("http://as.example.com/token?code=abc", PUBLIC).unwrap_err();
        assert!(error.to_string().contains("must use https"), "{error}");
        assert!(!error.to_string().contains("code=abc"), "{error}");
    }

    #[test]
    fn resolved_addresses_are_judged_like_literals() {
        let policy = AddressPolicy::default();
        let url = Url::parse("https://as.example.com/token").unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(policy
            .check_resolved(&url, &[ip("93.184.216.34")], &[], "u")
            .is_ok());
        // One bad address among good ones is enough: a connection may go to any of them.
        let error = policy
            .check_resolved(&url, &[ip("93.184.216.34"), ip("10.0.0.1")], &[], "u")
            .unwrap_err();
        assert!(error.to_string().contains("10.0.0.1"), "{error}");
        // A server that itself resolves to the private network may use it.
        assert!(policy
            .check_resolved(&url, &[ip("10.0.0.1")], &[ip("10.9.9.9")], "u")
            .is_ok());
        assert!(policy
            .check_resolved(&url, &[ip("169.254.169.254")], &[ip("169.254.0.1")], "u")
            .is_err());
        // A dual-stack server (a private IPv4 and a global IPv6 address) may use the private
        // network: a name is not refused for answering two families.
        assert!(policy
            .check_resolved(
                &url,
                &[ip("10.0.0.7")],
                &[ip("10.0.0.8"), ip("2606:4700::1")],
                "u"
            )
            .is_ok());
    }

    #[test]
    fn names_are_left_to_the_resolver() {
        assert_eq!(
            host_class(&Url::parse("https://as.example.com/").unwrap()),
            None
        );
        assert_eq!(
            host_class(&Url::parse("http://app.localhost/").unwrap()),
            Some(AddressClass::Loopback)
        );
    }
}
