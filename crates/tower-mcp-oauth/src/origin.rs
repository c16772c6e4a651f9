//! [`Origin`]: a request's or a resource's origin (RFC 6454 §4: scheme, host, port), taken from a
//! URI in place without allocating; [`OwnedOrigin`], one kept in a table with its authority in
//! normal form; and the comparisons of their short strings that the hot path makes.

use http::Uri;
use url::Url;

/// An origin's parts, borrowed from a URI or URL: scheme and host as written (compared and
/// hashed ignoring ASCII case), and the port with the scheme's default filled in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Origin<'a> {
    scheme: &'a str,
    host: &'a str,
    port: Option<u16>,
}

/// The default port of the schemes MCP is spoken over (RFC 9110 §4.2.1, §4.2.2), so that
/// `https://a` and `https://a:443` are one origin (RFC 6454 §4 step 4-5).
fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else {
        None
    }
}

/// The host and port of an authority (`userinfo@host:port`, RFC 3986 §3.2) that `http` has
/// already validated, as `Authority::host` and `Authority::port_u16` give them, in one pass from
/// the end: those parse the authority again for each call with `str` searches, and on the hot
/// path that was a third of a lookup.
fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    let bytes = authority.as_bytes();
    // The host starts after the last `@` (userinfo may hold `:` but not `@`, RFC 3986 §3.2.1);
    // the port follows the last `:`. An IP literal holds colons: with a port, the last colon is
    // the one after its `]`; without, the last is inside it, and what follows it ends in `]`,
    // which is no port (`parse_port` refuses it). `http` has validated the authority, so no
    // other text puts a colon there.
    let (mut start, mut colon) = (0, None);
    for (i, &b) in bytes.iter().enumerate().rev() {
        match b {
            b'@' => {
                start = i + 1;
                break;
            }
            b':' if colon.is_none() => colon = Some(i),
            _ => {}
        }
    }
    let end = if bytes.get(start) == Some(&b'[') {
        // An IP literal: up to its closing bracket, colons and all.
        start + bytes[start..].iter().position(|&b| b == b']')? + 1
    } else {
        colon.unwrap_or(bytes.len())
    };
    let port = colon.and_then(|colon| parse_port(&bytes[colon + 1..]));
    (end > start).then(|| (&authority[start..end], port))
}

/// Decimal digits as a port, as `u16::from_str` reads them (leading zeros allowed, nothing
/// else): `None` when empty, not all digits, or past 65535.
fn parse_port(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() {
        return None;
    }
    let mut value: u32 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(b - b'0');
        if value > u32::from(u16::MAX) {
            return None;
        }
    }
    u16::try_from(value).ok()
}

/// The scheme of a request `uri` if it is `http` or `https` as the inner client reads it: `http`
/// (and hyper-util's connectors, hyper-tls's and hyper-rustls's) knows those two exactly, in
/// lowercase. A scheme set apart from a parsed URI (`Uri::builder().scheme("HTTPS")`) is
/// another one to them, whatever its letters: hyper-tls connects it without TLS, to port 80.
/// A token must never go there, so such a request has no origin of the layer's.
#[inline]
pub(crate) fn web_scheme(uri: &Uri) -> Option<&str> {
    uri.scheme_str().filter(|s| matches!(*s, "http" | "https"))
}

impl<'a> Origin<'a> {
    /// The origin of a request URI; `None` for a relative one (no scheme or host), or one whose
    /// scheme is not `http` or `https` as the inner client reads it ([`web_scheme`]).
    pub(crate) fn of_uri(uri: &'a Uri) -> Option<Self> {
        let scheme = web_scheme(uri)?;
        let (host, port) = split_authority(uri.authority()?.as_str())?;
        Some(Self {
            scheme,
            host,
            port: port.or_else(|| default_port(scheme)),
        })
    }

    /// The origin of a resource URL; `None` when it has no host. Its port is the one `url`
    /// knows for its scheme, as `scope::covers` compares it, so that a request `covers` accepts
    /// lands in the resource's bucket whatever the scheme.
    pub(crate) fn of_url(url: &'a Url) -> Option<Self> {
        Some(Self {
            scheme: url.scheme(),
            host: url.host_str()?,
            port: url.port_or_known_default(),
        })
    }

    /// An origin from its parts (the port with any default already filled in).
    #[cfg(test)]
    pub(crate) fn new(scheme: &'a str, host: &'a str, port: Option<u16>) -> Self {
        Self { scheme, host, port }
    }

    /// The scheme, as written.
    pub(crate) fn scheme(&self) -> &'a str {
        self.scheme
    }

    /// The host, as written (IPv6 in brackets).
    pub(crate) fn host(&self) -> &'a str {
        self.host
    }

    /// The port, or the scheme's default for `http` and `https`.
    pub(crate) fn port(&self) -> Option<u16> {
        self.port
    }

    /// `:port` when the port is not the scheme's default (RFC 3986 §6.2.3: the normal form
    /// omits a default port), as the resource URL and nearly every request write it.
    pub(crate) fn port_text(&self) -> Option<PortText> {
        let port = self.port?;
        if Some(port) == default_port(self.scheme) {
            return None;
        }
        let mut text = PortText {
            bytes: [b':'; 6],
            len: 1,
        };
        let digits = if port == 0 {
            1
        } else {
            port.ilog10() as usize + 1
        };
        let mut rest = port;
        for at in (1..=digits).rev() {
            text.bytes[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        text.len = 1 + digits as u8;
        Some(text)
    }

    /// Whether `self` and `other` are the same origin (RFC 6454 §5: scheme, host and port
    /// equal; scheme and host compared ignoring ASCII case, as RFC 3986 §6.2.2.1 says).
    pub(crate) fn same(&self, other: &Origin<'_>) -> bool {
        self.port == other.port
            && same_text(self.scheme.as_bytes(), other.scheme.as_bytes())
            && same_text(self.host.as_bytes(), other.host.as_bytes())
    }
}

/// `:` and a port's decimal digits, on the stack.
pub(crate) struct PortText {
    bytes: [u8; 6],
    len: u8,
}

impl PortText {
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII digits and `:` are written.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

/// An origin kept in a table (the store was searched for it, say), lowercased once, with its
/// authority as a request to it is normally written.
///
/// Its texts are one allocation, the scheme then `host[:port]`: the hot path compares a
/// request's scheme and authority with them, usually after the request before has left them
/// in another core's cache, and each pointer followed then costs a fetch from afar.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct OwnedOrigin {
    /// The scheme, then the authority in normal form: `host`, or `host:port` when the port is
    /// not the scheme's default (see [`Origin::port_text`]); the table's key is a hash of the
    /// authority.
    text: Box<str>,
    /// Where the host starts in `text`.
    host_start: u32,
    /// Where the host ends in `text`.
    host_end: u32,
    port: Option<u16>,
}

impl std::fmt::Debug for OwnedOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let origin = self.as_origin();
        f.debug_struct("OwnedOrigin")
            .field("scheme", &origin.scheme)
            .field("host", &origin.host)
            .field("port", &origin.port)
            .finish()
    }
}

impl OwnedOrigin {
    pub(crate) fn new(origin: Origin<'_>) -> Self {
        let mut text = origin.scheme.to_ascii_lowercase();
        let host_start = text.len();
        text.push_str(&origin.host.to_ascii_lowercase());
        let host_end = text.len();
        if let Some(port) = origin.port_text() {
            text.push_str(port.as_str());
        }
        // A URL's parts are far shorter than 4 GiB; past it, the texts read back empty.
        let at = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Self {
            host_start: at(host_start),
            host_end: at(host_end),
            text: text.into(),
            port: origin.port,
        }
    }

    /// The scheme and the authority, as bytes (the hot path compares them as such).
    #[inline]
    fn scheme_and_authority(&self) -> (&[u8], &[u8]) {
        self.text
            .as_bytes()
            .split_at_checked(self.host_start as usize)
            .unwrap_or_default()
    }

    /// The authority in normal form.
    #[cfg(test)]
    pub(crate) fn authority(&self) -> &str {
        self.text
            .get(self.host_start as usize..)
            .unwrap_or_default()
    }

    pub(crate) fn as_origin(&self) -> Origin<'_> {
        let (start, end) = (self.host_start as usize, self.host_end as usize);
        Origin {
            scheme: self.text.get(..start).unwrap_or_default(),
            host: self.text.get(start..end).unwrap_or_default(),
            port: self.port,
        }
    }

    /// Whether a request written with `scheme` and `authority` goes to this origin because it
    /// writes them as this origin does (the authority's ASCII case aside; the scheme exactly,
    /// see [`web_scheme`]). `false` says nothing: the request may write the same origin another
    /// way (userinfo, an explicit default port).
    #[inline]
    pub(crate) fn is_written_as(&self, scheme: &str, authority: &str) -> bool {
        let (own_scheme, own_authority) = self.scheme_and_authority();
        same_text(own_authority, authority.as_bytes()) && same_bytes(own_scheme, scheme.as_bytes())
    }
}

/// `a == b` ignoring ASCII case, for the short strings of an origin: the exact comparison
/// first ([`same_bytes`]: requests are mostly written in lowercase), then byte by byte with case
/// folded.
#[inline]
fn same_text(a: &[u8], b: &[u8]) -> bool {
    same_bytes(a, b) || a.eq_ignore_ascii_case(b)
}

/// `a == b` for the short byte strings of the hot path (a scheme, an authority, a path prefix),
/// without a call to `memcmp`, which costs more than the bytes it compares: overlapping loads
/// of four or eight bytes cover any length past three, so there is no byte loop.
#[inline]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let diff = match n {
        0 => 0,
        // Bytes 0, n/2 and n-1 cover every position of one to three.
        1..4 => {
            let pick =
                |s: &[u8]| u32::from(s[0]) | u32::from(s[n / 2]) << 8 | u32::from(s[n - 1]) << 16;
            pick(a) ^ pick(b)
        }
        4..8 => (half(a, 0) ^ half(b, 0)) | (half(a, n - 4) ^ half(b, n - 4)),
        _ => {
            let mut diff = word(&a[n - 8..]) ^ word(&b[n - 8..]);
            for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
                diff |= word(x) ^ word(y);
            }
            return diff == 0;
        }
    };
    diff == 0
}

/// Eight bytes as one word.
#[inline]
fn word(bytes: &[u8]) -> u64 {
    let mut le = [0; 8];
    le.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(le)
}

/// Four bytes from `at`, as one word.
#[inline]
fn half(bytes: &[u8], at: usize) -> u32 {
    let mut le = [0; 4];
    le.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(le)
}

/// Whether a request's `Host` header names the authority of its URI `uri` (RFC 9110 §7.2: a
/// client's `Host` is the target URI's authority, less userinfo; host compared ignoring case,
/// a default port written or not): only then may the token chosen for the URI's origin go
/// with it. A `Host` naming another (a gateway that copies an incoming request's headers, a
/// fronted domain) steers the request, past a shared ingress, to a server the token was not
/// issued for (RFC 6750 §5.2, RFC 8707); one that is no authority at all is not the URI's
/// either. A relative URI has no authority to compare, and no token is chosen for it.
#[cold]
#[inline(never)]
pub(crate) fn host_header_matches(uri: &Uri, host: &http::HeaderValue) -> bool {
    let Some(target) = Origin::of_uri(uri) else {
        return true;
    };
    let Ok(authority) = http::uri::Authority::try_from(host.as_bytes()) else {
        return false;
    };
    if authority.as_str().contains('@') {
        return false;
    }
    let Some((named_host, port)) = split_authority(authority.as_str()) else {
        return false;
    };
    let named = Origin {
        scheme: target.scheme,
        host: named_host,
        port: port.or_else(|| default_port(target.scheme)),
    };
    named.same(&target)
}

/// The authority of `uri` as written, less any userinfo (`user:password@`, RFC 3986 §3.2.1):
/// for keys and for the text of logs and errors, which must carry no credential a caller put
/// in a URL.
pub(crate) fn authority_text(uri: &Uri) -> &str {
    let authority = uri.authority().map_or("", |a| a.as_str());
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host_port)| host_port)
}

/// `scheme://host:port/path` of `uri`, for logs and error messages: no userinfo, no query
/// (either may hold a credential).
pub(crate) fn loggable(uri: &Uri) -> String {
    format!(
        "{}://{}{}",
        uri.scheme_str().unwrap_or("http"),
        authority_text(uri),
        uri.path()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn loggable_text_carries_no_userinfo_and_no_query() {
        assert_eq!(
            loggable(&uri("https://user:hunter2@MCP.example.com:8443/mcp?key=k")),
            "https://MCP.example.com:8443/mcp"
        );
        assert_eq!(authority_text(&uri("http://a@b@host/")), "host");
        assert_eq!(authority_text(&uri("http://[::1]:8080/x")), "[::1]:8080");
        assert_eq!(authority_text(&uri("/relative")), "");
    }

    #[test]
    fn a_host_header_matches_only_the_uris_own_authority() {
        let matches = |target: &str, host: &str| {
            host_header_matches(&uri(target), &http::HeaderValue::from_str(host).unwrap())
        };
        let target = "https://mcp.example.com/mcp";
        for same in [
            "mcp.example.com",
            "MCP.Example.COM",
            "mcp.example.com:443",
            "mcp.example.com:",
        ] {
            assert!(matches(target, same), "{same}");
        }
        for other in [
            "tenant-b.example.net",
            "mcp.example.com:8443",
            "mcp.example.com.",
            "user@mcp.example.com",
            "mcp.example.com/mcp",
            "",
            "mcp.example.com evil",
        ] {
            assert!(!matches(target, other), "{other:?}");
        }
        assert!(matches("http://127.0.0.1:3000/mcp", "127.0.0.1:3000"));
        assert!(!matches("http://127.0.0.1:3000/mcp", "127.0.0.1"));
        assert!(matches("http://[::1]:8080/mcp", "[::1]:8080"));
        assert!(matches("http://mcp.example.com/mcp", "mcp.example.com:80"));
        // The URI's userinfo is not part of what Host names.
        assert!(matches(
            "https://u:p@mcp.example.com/mcp",
            "mcp.example.com"
        ));
        // A relative URI gets no token: nothing to compare.
        assert!(matches("/mcp", "anything.example.com"));
    }

    #[test]
    fn authorities_split_as_http_splits_them() {
        for s in [
            "http://mcp.example.com/mcp",
            "https://MCP.Example.com:8443/x",
            "http://user:pw@host.example:81/",
            "http://user@host.example/",
            "http://[::1]/mcp",
            "http://[::1]:8080/mcp",
            "http://[fe80::1%25eth0]:1/",
            "http://127.0.0.1:65535/",
            "http://host:/",
            "http://host:0080/",
            "http://host:99999/",
            "http://[::1]:/",
            "http://[::]/",
            "http://[::]:80/",
            "http://u:p@[2001:db8::7]:8443/",
            "http://u@[2001:db8::7]/",
            "http://[::ffff:192.0.2.1]:65535/",
            "http://[::1]:0/",
        ] {
            let u = uri(s);
            let (host, port) = split_authority(u.authority().unwrap().as_str()).unwrap();
            assert_eq!((Some(host), port), (u.host(), u.port_u16()), "{s}");
        }
    }

    #[test]
    fn bytes_are_the_same_only_when_every_byte_is() {
        let text: Vec<u8> = (1..=40).collect();
        for n in 0..=text.len() {
            let a = &text[..n];
            // Equal bytes elsewhere in memory.
            let copy = a.to_vec();
            assert!(same_bytes(a, &copy));
            if n > 0 {
                assert!(!same_bytes(a, &text[..n - 1]));
            }
            for at in 0..n {
                let mut other = a.to_vec();
                other[at] ^= 0x80;
                assert!(!same_bytes(a, &other), "{n} {at}");
            }
        }
    }

    #[test]
    fn an_owned_origin_shows_its_parts_apart() {
        let origin = OwnedOrigin::new(Origin::new("HTTPS", "MCP.Example.com", Some(8443)));
        assert_eq!(origin.authority(), "mcp.example.com:8443");
        assert_eq!(
            format!("{origin:?}"),
            r#"OwnedOrigin { scheme: "https", host: "mcp.example.com", port: Some(8443) }"#
        );
    }

    #[test]
    fn texts_are_the_same_only_when_every_byte_is_ignoring_case() {
        let text = "abcdefghijklmnopqrstu";
        for n in 0..=text.len() {
            let a = &text.as_bytes()[..n];
            assert!(same_text(a, a));
            assert!(same_text(a, &a.to_ascii_uppercase()));
            assert!(!same_text(a, &a[..n.saturating_sub(1)]) || n == 0);
            for at in 0..n {
                let mut other = a.to_vec();
                other[at] = b'-';
                assert!(!same_text(a, &other), "{n} {at}");
            }
        }
    }
}
