//! Which of the authorization servers a protected resource lists are tried, and in which order.
//!
//! RFC 9728 §2 lets a resource list several `authorization_servers`; the MCP authorization spec
//! ("Authorization Server Location") leaves the choice to the client, following RFC 9728 §7.6,
//! and requires credentials to be kept apart per server (RFC 6749 §2.2: a client identifier is
//! unique to the server that issued it). The flow tries the candidates in order until one's
//! metadata validates; these pure functions decide the candidates and the error when none
//! does.

use url::Url;

use crate::chooser::AuthorizationServerChooser;
use crate::error::{Error, ErrorKind};
use crate::url_policy::parse_secure_url;

/// The most servers one flow tries. Each costs up to three metadata requests; a resource
/// metadata document may list thousands (one of 256 KiB, the most read, holds about ten
/// thousand), which would turn one request of the caller's into tens of thousands of the
/// client's, to whatever hosts a hostile resource names. RFC 9728 §7.6 leaves the choice to
/// the client; real resources list one or two.
pub(super) const MAX_TRIED: usize = 5;

/// The servers to try, in order, and the listed ones passed over before any is fetched.
#[derive(Debug, Default)]
pub(super) struct Candidates {
    /// Issuers exactly as the metadata lists them (the issuer check compares them as such).
    pub(super) order: Vec<String>,
    /// Each server passed over, and why.
    pub(super) passed_over: Vec<(String, Error)>,
}

/// The candidates among `listed` (RFC 9728 §2, in the document's order): each must be a secure
/// URL (OAuth 2.1 §1.5) that `allowed` (the address policy) accepts; a listed duplicate is
/// tried once. Without a chooser every usable one is tried in the listed order; a chooser
/// reorders or keeps fewer (RFC 9728 §7.6: the client chooses), and a URL it returns that the
/// document does not list is ignored, so a chooser cannot send the client to a server the
/// resource never named. At most [`MAX_TRIED`] are tried; the others are passed over.
pub(super) fn authorization_server_candidates(
    listed: &[String],
    chooser: Option<&AuthorizationServerChooser>,
    allowed: impl Fn(&Url) -> Result<(), Error>,
) -> Candidates {
    let mut out = Candidates::default();
    let mut usable: Vec<(String, Url)> = Vec::new();
    for issuer in listed {
        match parse_secure_url(issuer, "authorization server").and_then(|url| {
            // RFC 8414 §2: an issuer has no query (nor fragment, which the policy refuses).
            // Its metadata URL drops the query (§3.1), so issuers differing only by one would
            // share a metadata document, while registrations are kept under each spelling.
            if url.query().is_some() {
                return Err(Error::new(
                    ErrorKind::InvalidResourceMetadata,
                    "an authorization server's issuer has no query (RFC 8414 §2)",
                ));
            }
            allowed(&url)?;
            Ok(url)
        }) {
            Ok(url) if usable.iter().any(|(_, u)| *u == url) => {}
            Ok(url) => usable.push((issuer.clone(), url)),
            Err(e) => out.passed_over.push((issuer.clone(), e)),
        }
    }
    let Some(chooser) = chooser else {
        out.order = usable.into_iter().map(|(issuer, _)| issuer).collect();
        return at_most_tried(out);
    };
    let urls: Vec<Url> = usable.iter().map(|(_, u)| u.clone()).collect();
    for chosen in chooser.choose(&urls) {
        match usable.iter().position(|(_, u)| *u == chosen) {
            Some(i) => {
                let (issuer, _) = usable.remove(i);
                out.order.push(issuer);
            }
            None => out.passed_over.push((
                chosen.to_string(),
                Error::new(
                    ErrorKind::NoUsableAuthorizationServer,
                    format!(
                        "the chooser named {chosen}, which the resource metadata does not list \
                         (or named it twice); ignored"
                    ),
                ),
            )),
        }
    }
    for (issuer, _) in usable {
        out.passed_over.push((
            issuer,
            Error::new(
                ErrorKind::NoUsableAuthorizationServer,
                "not chosen by the application's chooser",
            ),
        ));
    }
    at_most_tried(out)
}

/// `candidates` with at most [`MAX_TRIED`] to try, the rest passed over as one entry (not one
/// each: the list may be long).
fn at_most_tried(mut candidates: Candidates) -> Candidates {
    if candidates.order.len() > MAX_TRIED {
        let rest = candidates.order.split_off(MAX_TRIED);
        candidates.passed_over.push((
            format!("{} and {} more", rest[0], rest.len() - 1),
            Error::new(
                ErrorKind::NoUsableAuthorizationServer,
                format!("not tried: a flow tries at most {MAX_TRIED} authorization servers"),
            ),
        ));
    }
    candidates
}

/// The error when no candidate served valid metadata. With a single server listed its own
/// error stands (an issuer mismatch stays an [`ErrorKind::IssuerMismatch`]); with several,
/// [`ErrorKind::NoUsableAuthorizationServer`] names each one and why it was passed over.
pub(super) fn none_usable(mut passed_over: Vec<(String, Error)>) -> Error {
    if passed_over.len() == 1 {
        let (_, error) = passed_over.remove(0);
        return error;
    }
    if passed_over.is_empty() {
        return Error::new(
            ErrorKind::NoUsableAuthorizationServer,
            "the resource metadata lists no authorization server that can be used",
        );
    }
    let each: Vec<String> = passed_over
        .iter()
        .map(|(issuer, e)| format!("{issuer}: {e}"))
        .collect();
    let error = Error::new(
        ErrorKind::NoUsableAuthorizationServer,
        format!(
            "none of the {} authorization servers the resource metadata lists can be used ({})",
            passed_over.len(),
            each.join("; ")
        ),
    );
    // One that failed for a passing reason (a 5xx, a 421, no answer) may serve the next call:
    // the whole is worth trying again, as that one alone would be.
    if passed_over.iter().any(|(_, e)| e.is_transient()) {
        error.mark_transient()
    } else {
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "https://a.example.com";
    const B: &str = "https://b.example.com/tenant";

    fn listed(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn any(_: &Url) -> Result<(), Error> {
        Ok(())
    }

    #[test]
    fn without_a_chooser_every_usable_server_in_the_listed_order() {
        let c = authorization_server_candidates(
            &listed(&["http://plain.example.com", B, A, B]),
            None,
            any,
        );
        assert_eq!(c.order, [B, A], "insecure dropped, duplicate tried once");
        assert_eq!(c.passed_over.len(), 1);
        assert_eq!(c.passed_over[0].0, "http://plain.example.com");
        assert_eq!(c.passed_over[0].1.kind(), ErrorKind::InsecureUrl);
    }

    #[test]
    fn an_issuer_with_a_query_is_passed_over() {
        let with_query = "https://as.example.com/?tenant=1";
        let c = authorization_server_candidates(&listed(&[with_query, A]), None, any);
        assert_eq!(c.order, [A]);
        assert_eq!(c.passed_over.len(), 1);
        assert_eq!(c.passed_over[0].0, with_query);
        assert_eq!(
            c.passed_over[0].1.kind(),
            ErrorKind::InvalidResourceMetadata
        );
    }

    #[test]
    fn at_most_five_are_tried_however_many_are_listed() {
        let many: Vec<String> = (0..10_000)
            .map(|i| format!("https://victim.example/a{i}"))
            .collect();
        let c = authorization_server_candidates(&many, None, any);
        assert_eq!(c.order, many[..MAX_TRIED]);
        assert_eq!(MAX_TRIED, 5);
        assert_eq!(c.passed_over.len(), 1, "one entry for the rest");
        assert_eq!(
            c.passed_over[0].0,
            "https://victim.example/a5 and 9994 more"
        );
        // The same through a chooser that keeps them all.
        let chooser = AuthorizationServerChooser::new(|urls: &[Url]| urls.to_vec());
        let c = authorization_server_candidates(&many[..7], Some(&chooser), any);
        assert_eq!(c.order, many[..MAX_TRIED]);
    }

    #[test]
    fn several_passed_over_are_transient_if_one_is() {
        let lasting = || Error::new(ErrorKind::IssuerMismatch, "issuer is https://x");
        let passing = Error::new(ErrorKind::UnexpectedStatus, "503").mark_transient();
        let both = none_usable(vec![(A.into(), lasting()), (B.into(), passing)]);
        assert_eq!(both.kind(), ErrorKind::NoUsableAuthorizationServer);
        assert!(both.is_transient());
        let neither = none_usable(vec![(A.into(), lasting()), (B.into(), lasting())]);
        assert!(!neither.is_transient());
    }

    #[test]
    fn the_address_policy_passes_a_server_over() {
        let refuse_a = |u: &Url| {
            if u.host_str() == Some("a.example.com") {
                Err(Error::new(ErrorKind::InsecureUrl, "private address"))
            } else {
                Ok(())
            }
        };
        let c = authorization_server_candidates(&listed(&[A, B]), None, refuse_a);
        assert_eq!(c.order, [B]);
        assert_eq!(c.passed_over[0].0, A);
    }

    #[test]
    fn a_chooser_reorders_and_keeps_fewer_but_adds_nothing() {
        let chooser = AuthorizationServerChooser::new(|urls: &[Url]| {
            vec![
                "https://evil.example.org/".parse().unwrap(),
                urls[1].clone(),
            ]
        });
        let c = authorization_server_candidates(&listed(&[A, B]), Some(&chooser), any);
        assert_eq!(c.order, [B], "exactly as listed, not as the URL prints");
        let passed: Vec<&str> = c.passed_over.iter().map(|(i, _)| i.as_str()).collect();
        assert_eq!(passed, ["https://evil.example.org/", A]);
    }

    #[test]
    fn a_chooser_that_keeps_none_leaves_nothing_to_try() {
        let chooser = AuthorizationServerChooser::new(|_: &[Url]| Vec::new());
        let c = authorization_server_candidates(&listed(&[A, B]), Some(&chooser), any);
        assert!(c.order.is_empty());
        assert_eq!(
            none_usable(c.passed_over).kind(),
            ErrorKind::NoUsableAuthorizationServer
        );
    }

    #[test]
    fn one_server_keeps_its_own_error_several_are_listed() {
        let mismatch = Error::new(ErrorKind::IssuerMismatch, "issuer is https://x");
        assert_eq!(
            none_usable(vec![(A.into(), mismatch.clone())]).kind(),
            ErrorKind::IssuerMismatch
        );
        let missing = Error::new(ErrorKind::AuthorizationServerMetadataNotFound, "404");
        let both = none_usable(vec![(A.into(), mismatch), (B.into(), missing)]);
        assert_eq!(both.kind(), ErrorKind::NoUsableAuthorizationServer);
        let text = both.to_string();
        assert!(
            text.contains(&format!("{A}: ")) && text.contains("issuer is https://x"),
            "{text}"
        );
        assert!(
            text.contains(&format!("{B}: ")) && text.contains("404"),
            "{text}"
        );
    }
}
