//! Walking candidate metadata URLs.

use std::collections::VecDeque;

use bytes::Bytes;
use http::header::{ACCEPT, LOCATION};
use url::Url;

use super::SubRequest;
use crate::error::{Error, ErrorKind};
use crate::report::{DiscoveryReport, Purpose};
use crate::url_policy::{check_secure_url, unusable_url};

/// How many redirects one discovery fetch may follow.
const MAX_REDIRECTS: u8 = 5;

/// Walks a list of candidate URLs, following same-origin redirects.
pub(super) struct Probe {
    purpose: Purpose,
    remaining: VecDeque<Url>,
    pub(super) current: Url,
    /// The candidate as listed, before redirects (for "advertised" checks).
    listed: Url,
    hops: u8,
    visited: Vec<Url>,
    /// The error of a location that answered in a passing state (see `classify`): the walk
    /// goes on, and if no location serves the document this, not its absence, is the answer.
    pub(super) passing: Option<Error>,
}

pub(super) enum Fetched {
    Document(Bytes),
    NotHere,
    Redirect,
}

impl Probe {
    pub(super) fn new(purpose: Purpose, candidates: Vec<Url>) -> Option<Self> {
        let mut remaining: VecDeque<Url> = candidates.into();
        let current = remaining.pop_front()?;
        Some(Self {
            purpose,
            remaining,
            listed: current.clone(),
            current,
            hops: 0,
            visited: Vec::new(),
            passing: None,
        })
    }

    pub(super) fn request(&self) -> Result<SubRequest, Error> {
        let request = http::Request::get(self.current.as_str())
            .header(ACCEPT, "application/json")
            .body(Bytes::new())
            .map_err(|e| unusable_url(self.current.as_str(), e))?;
        Ok(SubRequest {
            purpose: self.purpose,
            request,
        })
    }

    pub(super) fn advance(&mut self) -> bool {
        match self.remaining.pop_front() {
            Some(next) => {
                self.listed = next.clone();
                self.current = next;
                self.hops = 0;
                self.visited.clear();
                true
            }
            None => false,
        }
    }

    /// Sorts a response into a document, a miss, or a redirect to follow. A redirect is only
    /// followed to the same origin, over a secure URL, without loops, and at most
    /// [`MAX_REDIRECTS`] times: metadata a server did not publish on its own origin is not its
    /// metadata (RFC 9728 §3.3 and RFC 8414 §3.3 bind each document to the URL it was asked
    /// for), so a cross-origin redirect counts as a miss. The target then passes the address
    /// policy like every URL the flow sends (`police.rs`). Token and registration requests
    /// follow no redirect at all (`url_policy::redirect_not_followed`).
    pub(super) fn classify(
        &mut self,
        response: http::Response<Bytes>,
        report: &mut DiscoveryReport,
    ) -> Result<Fetched, Error> {
        let status = response.status();
        let url = self.current.to_string();
        if status.is_success() {
            return Ok(Fetched::Document(response.into_body()));
        }
        if status.is_redirection() {
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| self.current.join(l).ok());
            let Some(target) = location else {
                report.push(
                    self.purpose,
                    &url,
                    Some(status.as_u16()),
                    "redirect without a usable Location",
                );
                return Ok(Fetched::NotHere);
            };
            let refuse = |why: &str| {
                Error::new(
                    ErrorKind::RedirectLimit,
                    format!("{url} redirected to {target}: {why}"),
                )
                .with_status(status)
            };
            if target.origin() != self.current.origin() {
                report.push(
                    self.purpose,
                    &url,
                    Some(status.as_u16()),
                    "cross-origin redirect, not followed",
                );
                return Ok(Fetched::NotHere);
            }
            check_secure_url(&target, "redirect target")?;
            self.visited.push(self.current.clone());
            if self.visited.contains(&target) {
                report.push(self.purpose, &url, Some(status.as_u16()), "redirect loop");
                return Err(refuse("redirect loop"));
            }
            self.hops += 1;
            if self.hops > MAX_REDIRECTS {
                report.push(
                    self.purpose,
                    &url,
                    Some(status.as_u16()),
                    "too many redirects",
                );
                return Err(refuse("too many redirects"));
            }
            report.push(
                self.purpose,
                &url,
                Some(status.as_u16()),
                format!("redirect to {target}"),
            );
            self.current = target.clone();
            return Ok(Fetched::Redirect);
        }
        // A 4xx says the document is not at this location, but for the few that say the server
        // is in a passing state (408 Request Timeout and 421 Misdirected Request, RFC 9110
        // §15.5.9 and §15.5.20; 425 Too Early, RFC 8470 §5.2): the next location is tried, and
        // if none serves the document the flow stops as on a 5xx, to be tried again, rather
        // than take the document for absent (and, past the last location, go down the
        // 2025-03-26 path with no resource indicator).
        if matches!(status.as_u16(), 408 | 421 | 425) {
            report.push(
                self.purpose,
                &url,
                Some(status.as_u16()),
                "passing trouble, trying the next location",
            );
            self.passing.get_or_insert_with(|| {
                Error::new(
                    ErrorKind::UnexpectedStatus,
                    format!("{url} answered {status}; try again later"),
                )
                .with_status(status)
            });
            return Ok(Fetched::NotHere);
        }
        if status.is_client_error() && status != http::StatusCode::TOO_MANY_REQUESTS {
            report.push(
                self.purpose,
                &url,
                Some(status.as_u16()),
                "not found here, trying the next location",
            );
            return Ok(Fetched::NotHere);
        }
        report.push(
            self.purpose,
            &url,
            Some(status.as_u16()),
            "server error, stopping",
        );
        Err(Error::new(
            ErrorKind::UnexpectedStatus,
            format!("{url} answered {status}; try again later"),
        )
        .with_status(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn redirect(to: &str) -> http::Response<Bytes> {
        http::Response::builder()
            .status(302)
            .header(LOCATION, to)
            .body(Bytes::new())
            .unwrap()
    }

    /// Follows `n` redirects /r1 … /rn from the current candidate; the result of the last.
    fn follow(probe: &mut Probe, prefix: &str, n: u8) -> Result<Fetched, Error> {
        let mut report = DiscoveryReport::default();
        let mut last = Fetched::NotHere;
        for i in 1..=n {
            last = probe.classify(redirect(&format!("/{prefix}{i}")), &mut report)?;
        }
        Ok(last)
    }

    #[test]
    fn at_most_five_redirects_per_candidate() {
        let candidates = vec![url("https://a.example/one"), url("https://a.example/two")];
        let mut probe = Probe::new(Purpose::ResourceMetadata, candidates).unwrap();
        assert!(matches!(
            follow(&mut probe, "r", MAX_REDIRECTS),
            Ok(Fetched::Redirect)
        ));
        assert_eq!(probe.current.as_str(), "https://a.example/r5");
        let err = follow(&mut probe, "s", 1)
            .err()
            .expect("the sixth hop is refused");
        assert_eq!(err.kind(), ErrorKind::RedirectLimit);

        // The next candidate starts with a fresh allowance and a fresh loop memory.
        assert!(probe.advance());
        assert_eq!(probe.current.as_str(), "https://a.example/two");
        assert!(matches!(
            follow(&mut probe, "r", MAX_REDIRECTS),
            Ok(Fetched::Redirect)
        ));
        assert!(!probe.advance());
    }

    #[test]
    fn a_loop_is_refused_before_the_limit() {
        let mut probe =
            Probe::new(Purpose::ResourceMetadata, vec![url("https://a.example/x")]).unwrap();
        let mut report = DiscoveryReport::default();
        assert!(matches!(
            probe.classify(redirect("/y"), &mut report),
            Ok(Fetched::Redirect)
        ));
        let err = probe.classify(redirect("/x"), &mut report).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::RedirectLimit);
    }
}
