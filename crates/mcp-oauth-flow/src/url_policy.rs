//! Which URLs the client may talk to.
//!
//! OAuth 2.1 §1.5 and the MCP authorization spec require TLS for every authorization server
//! endpoint; RFC 8252 §8.3 allows plain HTTP only to a loopback interface, which is what local
//! development servers and test kits use. The same rule is applied to every URL the flow learns
//! from the network (metadata URLs, issuers, endpoints), so that a hostile document cannot steer
//! credentials onto cleartext.

use std::net::IpAddr;

use url::{Host, Url};

use crate::error::{Error, ErrorKind};

// The address policy (which hosts a URL from the network may point at), in its own file.
mod address;
pub use address::{classify_ip, host_class, AddressClass, AddressPolicy, UrlPolicy};

/// Whether `url` is `https`, or `http` to a loopback host (`localhost`, `*.localhost`,
/// `127.0.0.0/8`, `::1`).
///
/// ```
/// use mcp_oauth_flow::url_policy::is_secure_url;
/// use url::Url;
/// assert!(is_secure_url(&Url::parse("https://as.example.com/token").unwrap()));
/// assert!(is_secure_url(&Url::parse("http://127.0.0.1:8080/token").unwrap()));
/// assert!(is_secure_url(&Url::parse("http://localhost/token").unwrap()));
/// assert!(!is_secure_url(&Url::parse("http://as.example.com/token").unwrap()));
/// ```
pub fn is_secure_url(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => is_loopback_host(url),
        _ => false,
    }
}

/// Whether the URL's host is a loopback name or address (RFC 6761 §6.3 for `localhost`).
pub fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => {
            let d = d.trim_end_matches('.');
            d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
        }
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// The longest URL accepted from the network. `http::Uri` refuses anything near 64 KiB that
/// `Url` would accept, and no legitimate metadata or endpoint URL comes close.
pub const MAX_URL_LEN: usize = 8 * 1024;

/// A URL's text as errors and logs may show it: no user information and no query or
/// fragment (either may carry a credential: `https://user:password@host`, `?api_key=`), at
/// most 200 characters. Works on any text, a URL or not, with or without a scheme. User
/// information written as RFC 3986 §3.2.1 allows (no unencoded `/`, `?`, `#` or `@`) is
/// dropped; where an `@` could end a sloppy one (a password holding `/`, a path holding
/// `@`) the text up to it is hidden as `…@`, erring towards hiding.
///
/// ```
/// use mcp_oauth_flow::url_policy::shown_url;
/// assert_eq!(shown_url("https://user:pw@mcp.example.com:8443/mcp?key=k#f"), "https://mcp.example.com:8443/mcp");
/// assert_eq!(shown_url("alice:s3cret@mcp.example.com/mcp"), "mcp.example.com/mcp");
/// assert_eq!(shown_url("https://user:a/b?c@as.example.com/token"), "https://…@as.example.com/token");
/// assert_eq!(shown_url("not a url?x=1"), "not a url");
/// ```
pub fn shown_url(raw: &str) -> String {
    let (scheme, rest) = split_scheme(raw);
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let shown = match authority.rfind('@') {
        // `user:pw@host`, a password holding `?` or `#` included.
        Some(at) => format!("{scheme}{}", without_query(&rest[at + 1..])),
        None => match sloppy_userinfo_end(rest) {
            Some(end) => format!("{scheme}…@{}", without_query(&rest[end..])),
            None => format!("{scheme}{}", without_query(rest)),
        },
    };
    shown.chars().take(200).collect()
}

/// Where user information written against RFC 3986 §3.2.1 may end in `rest` (a URL after its
/// scheme, whose authority holds no `@`): past an `@` in the path (`user:123/456@host`, a
/// token holding `/`, or a path's own `@`), past an `@` after a `?` or `#` that comes before
/// the first `/` (`user:p?w/x@host`), or past the last `@` when no plain host starts the
/// text (`user:a/b?c@host`). `None`: nothing that could be user information.
fn sloppy_userinfo_end(rest: &str) -> Option<usize> {
    let after = |at: usize| at + 1;
    let cut = without_query(rest);
    if let Some(at) = cut.rfind('@') {
        return Some(after(at));
    }
    let slash = rest.find('/').unwrap_or(rest.len());
    let query_before_slash = rest.find(['?', '#']).is_some_and(|q| q < slash);
    let host = &cut[..cut.find('/').unwrap_or(cut.len())];
    if query_before_slash || !plain_host(host) {
        return rest.rfind('@').map(after);
    }
    None
}
/// `raw`'s scheme with its `://` (or a leading `//`), and the rest; no scheme when the text
/// before `://` is not one (RFC 3986 §3.1: a letter, then letters, digits, `+`, `-`, `.`).
fn split_scheme(raw: &str) -> (&str, &str) {
    if let Some(at) = raw.find("://") {
        let scheme = &raw[..at];
        let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if valid {
            return raw.split_at(at + 3);
        }
    }
    if raw.starts_with("//") {
        return raw.split_at(2);
    }
    ("", raw)
}

fn without_query(text: &str) -> &str {
    text.find(['?', '#']).map_or(text, |end| &text[..end])
}

/// Whether `authority` is a plain host: a name or address, or a bracketed IPv6 literal, then
/// maybe `:` and digits; nothing that could be user information.
fn plain_host(authority: &str) -> bool {
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        Some(_) if authority.starts_with('[') && authority.ends_with(']') => authority,
        Some(_) => return false,
        None => authority,
    };
    let bracketed = host.starts_with('[') && host.ends_with(']');
    bracketed || !host.contains([':', '@', '[', ']', ' '])
}

/// The error for a URL that cannot be an HTTP request target.
pub(crate) fn unusable_url(url: &str, e: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InsecureUrl,
        format!(
            "{:?} cannot be used as an HTTP request URI: {e}",
            shown_url(url)
        ),
    )
}

/// The error for a token or registration endpoint that answered with a redirect, which is
/// never followed: those requests carry credentials (a code and its verifier, a refresh token,
/// a client secret or assertion), and a `307`/`308` would have the body sent again to a URL no
/// metadata named (RFC 9110 §15.4.8, §15.4.9), past the address policy. The endpoint is the
/// URL of the authorization server's metadata (RFC 8414 §2), not wherever it points next.
/// Discovery follows same-origin redirects only (`flow/probe.rs`).
pub(crate) fn redirect_not_followed(what: &str, status: http::StatusCode) -> Error {
    Error::new(
        ErrorKind::RedirectLimit,
        format!(
            "{what} answered {status}: a redirect, which is not followed for a request that \
             carries credentials (only the endpoint the metadata names is used)"
        ),
    )
    .with_status(status)
}

/// Parses `raw` as an absolute URL and checks it against [`is_secure_url`]; `what` names the
/// URL in the error (e.g. "token_endpoint").
pub fn parse_secure_url(raw: &str, what: &str) -> Result<Url, Error> {
    if raw.len() > MAX_URL_LEN {
        return Err(Error::new(
            ErrorKind::InsecureUrl,
            format!(
                "{what} is {} bytes long; at most {MAX_URL_LEN} are accepted",
                raw.len()
            ),
        ));
    }
    let url = Url::parse(raw).map_err(|e| {
        Error::new(
            ErrorKind::InsecureUrl,
            format!("{what} {:?} is not an absolute URL: {e}", shown_url(raw)),
        )
    })?;
    check_secure_url(&url, what)?;
    Ok(url)
}

/// Fails with [`ErrorKind::InsecureUrl`] unless [`is_secure_url`] holds.
pub fn check_secure_url(url: &Url, what: &str) -> Result<(), Error> {
    if url.as_str().len() > MAX_URL_LEN {
        return Err(Error::new(
            ErrorKind::InsecureUrl,
            format!(
                "{what} is {} bytes long; at most {MAX_URL_LEN} are accepted",
                url.as_str().len()
            ),
        ));
    }
    if is_secure_url(url) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InsecureUrl,
            format!(
                "{what} {} must use https (plain http is allowed only to a loopback host)",
                shown_url(url.as_str())
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The limit the docs promise (README "Limits": URLs from the network up to 8 KiB), stated
    /// as a number so a change to it is a decision, not an accident.
    #[test]
    fn urls_from_the_network_may_be_8_kib() {
        assert_eq!(MAX_URL_LEN, 8192);
    }

    /// At most `MAX_URL_LEN` bytes, exactly: one more is refused, by both checks.
    #[test]
    fn the_length_limit_is_inclusive() {
        let url_of = |len: usize| {
            let base = "https://as.example.com/";
            format!("{base}{}", "a".repeat(len - base.len()))
        };
        let at = url_of(MAX_URL_LEN);
        let over = url_of(MAX_URL_LEN + 1);
        assert!(parse_secure_url(&at, "u").is_ok());
        assert!(check_secure_url(&Url::parse(&at).unwrap(), "u").is_ok());
        let short = url_of(64);
        assert!(parse_secure_url(&short, "u").is_ok());
        for err in [
            parse_secure_url(&over, "u").unwrap_err(),
            check_secure_url(&Url::parse(&over).unwrap(), "u").unwrap_err(),
        ] {
            assert_eq!(err.kind(), ErrorKind::InsecureUrl);
        }
    }

    fn secure(s: &str) -> bool {
        is_secure_url(&Url::parse(s).unwrap())
    }

    #[test]
    fn https_anywhere_http_only_on_loopback() {
        assert!(secure("https://example.com"));
        assert!(secure("http://127.0.0.1:1/x"));
        assert!(secure("http://127.9.9.9/x"));
        assert!(secure("http://[::1]:80/x"));
        assert!(secure("http://LOCALHOST/x"));
        assert!(secure("http://app.localhost/x"));
        assert!(!secure("http://example.com"));
        assert!(!secure("http://10.0.0.1"));
        assert!(!secure("http://localhost.example.com"));
        assert!(!secure("http://[::2]/"));
        assert!(!secure("ftp://localhost/x"));
        assert!(!secure("javascript:alert(1)"));
    }

    #[test]
    fn shown_urls_hide_user_information_however_it_is_written() {
        for (raw, shown) in [
            (
                "https://user:pw@mcp.example.com:8443/mcp?key=k#f",
                "https://mcp.example.com:8443/mcp",
            ),
            ("alice:s3cret@mcp.example.com/mcp", "mcp.example.com/mcp"),
            ("//user:pw@host/mcp", "//host/mcp"),
            ("user:pw@host:8080", "host:8080"),
            (
                "https://user:ab/cd@as.example.com/token",
                "https://…@as.example.com/token",
            ),
            ("https://user:pa?ss@host/x", "https://host/x"),
            ("https://user:pa#ss@host/x", "https://host/x"),
            ("https://[::1]:8080/mcp?x=1", "https://[::1]:8080/mcp"),
            (
                "https://[fe80::1%25eth0]/mcp",
                "https://[fe80::1%25eth0]/mcp",
            ),
            ("https://host/users/@me?x=1", "https://…@me"),
            ("https://host/?q=a@b", "https://host/"),
            ("alice:pw@host/x?r=https://y", "host/x"),
            ("https://hôst.example/ü?x", "https://hôst.example/ü"),
            ("not a url?x=1", "not a url"),
            ("https://user:p?x/y@host/mcp", "https://…@host/mcp"),
            (
                "https://user:a/b?c@as.example.com/token",
                "https://…@as.example.com/token",
            ),
            ("https://user:123/456@host/x", "https://…@host/x"),
            ("https://admin:2024?pw/x@host/mcp", "https://…@host/mcp"),
            ("https://AbC+d/eF==@host/x", "https://…@host/x"),
            ("https:/user:pw@h", "…@h"),
            ("https://host:8443/x?email=a@b", "https://host:8443/x"),
        ] {
            assert_eq!(shown_url(raw), shown, "{raw}");
        }
        assert_eq!(
            shown_url(&format!("https://h/{}", "p".repeat(500)))
                .chars()
                .count(),
            200
        );
    }

    #[test]
    fn refused_urls_are_shown_without_userinfo_or_query() {
        for (raw, what) in [
            (
                "http://user:pw@as.example.com/token?key=k",
                "token_endpoint",
            ),
            ("https://user:pw@as.exa mple.com/token?key=k", "issuer"),
        ] {
            let err = parse_secure_url(raw, what).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(shown.contains(what), "{shown}");
            for secret in ["pw", "key=k"] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
        }
        let err = unusable_url("https://user:pw@h/x?key=k", "bad");
        assert!(
            !err.to_string().contains("pw") && !err.to_string().contains("key=k"),
            "{err}"
        );
    }

    #[test]
    fn parse_errors_are_typed() {
        assert_eq!(
            parse_secure_url("not a url", "issuer").unwrap_err().kind(),
            ErrorKind::InsecureUrl
        );
        let err = parse_secure_url("http://as.example.com/token", "token_endpoint").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InsecureUrl);
        assert!(err.to_string().contains("token_endpoint"));
    }
}
