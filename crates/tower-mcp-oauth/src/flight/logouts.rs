//! Logouts that stay done: each logout counted, so that a flow that was running when its
//! server (or its tokens' resource) was logged out of does not install its tokens.

use std::collections::HashMap;

use mcp_oauth_flow::{Error, ErrorKind};

use super::{Flights, MAX_RECORDS};
use crate::store::memory::lock;

/// Whether a logout of `logged_out` (a server URL or a resource identifier) reaches the server
/// `server`: the same URL, or a path prefix of it at a segment boundary (a resource that covers
/// it, RFC 9728 §3.3 as MCP relaxes it: a token for the whole origin is logged out of for
/// every server it served).
fn logout_reaches(logged_out: &str, server: &str) -> bool {
    let Some(rest) = server.strip_prefix(logged_out) else {
        return false;
    };
    rest.is_empty() || logged_out.ends_with('/') || rest.starts_with('/')
}

impl Flights {
    /// The logouts so far, noted by a flow for `server` when it starts: it installs its tokens
    /// only if no logout that reaches it happened since (see [`LogoutGeneration`]).
    pub(crate) fn logout_generation(&self, server: &str) -> LogoutGeneration {
        LogoutGeneration {
            server: server.to_owned(),
            seen: lock(&self.logouts).count,
        }
    }

    /// A logout of `url` (a server URL, or the resource its tokens were stored under) begins:
    /// every flow running for a server it reaches loses the right to install tokens.
    pub(crate) fn logging_out(&self, url: &str) {
        let mut logouts = lock(&self.logouts);
        logouts.count += 1;
        let count = logouts.count;
        if logouts.latest.len() >= MAX_RECORDS && !logouts.latest.contains_key(url) {
            // Full: the oldest logout is forgotten, and with it which URL it was, so every
            // flow that started before it counts as logged out (see `LogoutGeneration::check`):
            // a flow refused for nothing, at worst, never a logout undone.
            let oldest = logouts
                .latest
                .iter()
                .min_by_key(|(_, &at)| at)
                .map(|(url, &at)| (url.clone(), at));
            if let Some((oldest, at)) = oldest {
                logouts.latest.remove(&oldest);
                logouts.forgotten = logouts.forgotten.max(at);
            }
        }
        logouts.latest.insert(url.to_owned(), count);
    }
}

/// Every logout so far: how many, and the number of the last one of each URL (at most
/// [`MAX_RECORDS`] URLs; the number of the last logout forgotten to keep to it).
#[derive(Default)]
pub(super) struct Logouts {
    count: u64,
    pub(super) latest: HashMap<String, u64>,
    forgotten: u64,
}

/// The logouts a flow for one server saw when it started.
#[derive(Clone, Debug)]
pub(crate) struct LogoutGeneration {
    server: String,
    seen: u64,
}

impl LogoutGeneration {
    /// `Err(LoggedOut)` if the flow's server, or the resource its tokens are for, was logged
    /// out of since the flow started: its tokens must not be installed, or a logout racing a
    /// flow would be undone by it. A logout of another server on the same origin is not its.
    pub(crate) fn check(&self, flights: &Flights, resource: Option<&str>) -> Result<(), Error> {
        let logouts = lock(&flights.logouts);
        if logouts.count == self.seen {
            return Ok(());
        }
        // A logout forgotten since the flow started may have been of its server.
        let reached = logouts.forgotten > self.seen
            || logouts.latest.iter().any(|(url, &at)| {
                at > self.seen
                    && (logout_reaches(url, &self.server) || resource == Some(url.as_str()))
            });
        if !reached {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::LoggedOut,
            format!(
                "{} was logged out of while this authorization ran; its tokens were discarded",
                self.server
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::store::LastFlow;

    #[test]
    fn a_logout_voids_the_generation_of_flows_already_running() {
        let flights = Flights::default();
        let before = flights.logout_generation("https://h/k");
        before.check(&flights, None).unwrap();
        flights.logging_out("https://h/other");
        before.check(&flights, None).unwrap();
        flights.logging_out("https://h/k");
        assert_eq!(
            before.check(&flights, None).unwrap_err().kind(),
            ErrorKind::LoggedOut
        );
        flights
            .logout_generation("https://h/k")
            .check(&flights, None)
            .unwrap();
        // Its error is the status's last error, but not a backoff for the next caller.
        let t0 = SystemTime::UNIX_EPOCH;
        let overruled = before.check(&flights, None);
        flights.finish("https://h", "https://h/k", 0, &overruled, t0);
        flights.record_outcome("https://h/k", LastFlow::of(&overruled, t0));
        assert!(flights
            .recent_failure("https://h/k", t0, Duration::from_secs(1))
            .is_none());
        assert_eq!(
            flights
                .last_flow("https://h/k")
                .unwrap()
                .error()
                .unwrap()
                .kind,
            ErrorKind::LoggedOut
        );
    }

    #[test]
    fn a_logout_reaches_its_server_its_resource_and_servers_below_it_only() {
        let flights = Flights::default();
        let a = flights.logout_generation("https://h/a");
        let b = flights.logout_generation("https://h/b");
        let ab = flights.logout_generation("https://h/ab");
        let below = flights.logout_generation("https://h/a/sse");
        flights.logging_out("https://h/a");
        assert!(a.check(&flights, None).is_err());
        assert!(below.check(&flights, None).is_err());
        assert!(
            b.check(&flights, None).is_ok(),
            "another server, same origin"
        );
        assert!(
            ab.check(&flights, None).is_ok(),
            "not at a segment boundary"
        );
        // The resource a flow's tokens are for: logged out of through another server URL.
        let c = flights.logout_generation("https://h/c");
        flights.logging_out("https://h/shared");
        assert!(c.check(&flights, Some("https://h/shared")).is_err());
        assert!(c.check(&flights, Some("https://h/c")).is_ok());
        // A token for the whole origin serves every server on it.
        flights.logging_out("https://h/");
        assert!(b.check(&flights, None).is_err());
    }

    #[test]
    fn logout_reaches_at_segment_boundaries() {
        assert!(logout_reaches("https://h/a", "https://h/a"));
        assert!(logout_reaches("https://h/a", "https://h/a/b"));
        assert!(logout_reaches("https://h/", "https://h/b"));
        assert!(!logout_reaches("https://h/a", "https://h/ab"));
        assert!(!logout_reaches("https://h/a/b", "https://h/a"));
        assert!(!logout_reaches("https://h:1/a", "https://h:12/a"));
    }
}
