//! RFC 8628 §3.4-§3.5: what each answer to a poll of the token endpoint means, and when the
//! device code can no longer be polled.

use std::time::{Duration, SystemTime};

use crate::error::{Error, ErrorKind};

/// What `slow_down` adds to the interval, for this and every later poll (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// The longest interval a poll that got no answer backs off to ([`after_lost_poll`]): the
/// code lives minutes, and a network that is back should be noticed within one.
pub const MAX_LOST_POLL_INTERVAL: Duration = Duration::from_secs(60);

/// The interval after a poll that got no answer (a connection timeout or reset: RFC 8628 §3.5,
/// the client "MUST unilaterally reduce their polling frequency before retrying", doubling
/// being RECOMMENDED), from the current `interval`: doubled, at most
/// [`MAX_LOST_POLL_INTERVAL`] (never shorter than the current one), and kept from then on.
/// The device code is not given up: the user may be approving it, and the code's own
/// lifetime still ends the wait.
///
/// ```
/// use std::time::Duration;
/// use mcp_oauth_flow::device::after_lost_poll;
/// assert_eq!(after_lost_poll(Duration::from_secs(5)), Duration::from_secs(10));
/// assert_eq!(after_lost_poll(Duration::from_secs(45)), Duration::from_secs(60));
/// assert_eq!(after_lost_poll(Duration::from_secs(90)), Duration::from_secs(90));
/// ```
pub fn after_lost_poll(interval: Duration) -> Duration {
    interval
        .saturating_mul(2)
        .min(MAX_LOST_POLL_INTERVAL)
        .max(interval)
}

/// What to do with a token endpoint refusal while polling (RFC 8628 §3.5).
#[derive(Debug)]
#[non_exhaustive]
pub enum PollVerdict {
    /// Poll again after this interval (which is also the interval from then on).
    Wait(Duration),
    /// Stop: the flow fails with this error.
    Stop(Error),
}

/// Reads a polling refusal (RFC 8628 §3.5): `authorization_pending` waits `interval` again;
/// `slow_down`, or a 5xx or 429 whatever its body, waits 5 s longer, from now on;
/// `access_denied` is the user's refusal ([`ErrorKind::AuthorizationDenied`]);
/// `expired_token` is [`ErrorKind::DeviceCodeExpired`]; anything else stays the token
/// endpoint's error it was.
///
/// ```
/// use std::time::Duration;
/// use mcp_oauth_flow::{device::{poll_verdict, PollVerdict}, token::parse_token_response};
/// let refusal = parse_token_response(http::StatusCode::BAD_REQUEST, None, br#"{"error":"slow_down"}"#).unwrap_err();
/// assert!(matches!(poll_verdict(refusal, Duration::from_secs(5)), PollVerdict::Wait(d) if d.as_secs() == 10));
/// ```
pub fn poll_verdict(refusal: Error, interval: Duration) -> PollVerdict {
    // A 5xx or 429 (a `429` with `slow_down`, a gateway's `503`) is the server's trouble, not
    // the user's answer (RFC 6749 §5.2 answers with 400): wait longer, as `slow_down` asks,
    // and poll again; the code's lifetime and the consent timeout still end the wait.
    if refusal
        .status()
        .is_some_and(|s| s.is_server_error() || s == http::StatusCode::TOO_MANY_REQUESTS)
    {
        return PollVerdict::Wait(interval.saturating_add(SLOW_DOWN_STEP));
    }
    let code = refusal.oauth_error().map(|e| e.error.clone());
    match code.as_deref() {
        Some("authorization_pending") => PollVerdict::Wait(interval),
        Some("slow_down") => PollVerdict::Wait(interval.saturating_add(SLOW_DOWN_STEP)),
        Some("access_denied") => PollVerdict::Stop(retyped(
            refusal,
            ErrorKind::AuthorizationDenied,
            "the user denied the device authorization request (access_denied)",
        )),
        Some("expired_token") => PollVerdict::Stop(retyped(
            refusal,
            ErrorKind::DeviceCodeExpired,
            "the device code expired before the user approved it (expired_token); run the \
             authorization again and enter the new code sooner",
        )),
        _ => PollVerdict::Stop(refusal),
    }
}

fn retyped(refusal: Error, kind: ErrorKind, message: &str) -> Error {
    let mut error = Error::new(kind, message);
    if let Some(status) = refusal.status() {
        error = error.with_status(status);
    }
    if let Some(oauth) = refusal.oauth_error() {
        error = error.with_oauth_error(oauth.clone());
    }
    error
}

/// Whether the device code may still be polled at `now` (RFC 8628 §3.2 `expires_in`): past
/// `expires_at` the server can only answer `expired_token`, so the flow stops without asking.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use mcp_oauth_flow::{device::check_device_code_alive, ErrorKind};
/// let expires_at = UNIX_EPOCH + Duration::from_secs(100);
/// assert!(check_device_code_alive(UNIX_EPOCH + Duration::from_secs(99), expires_at).is_ok());
/// let err = check_device_code_alive(expires_at, expires_at).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::DeviceCodeExpired);
/// ```
pub fn check_device_code_alive(now: SystemTime, expires_at: SystemTime) -> Result<(), Error> {
    if now < expires_at {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::DeviceCodeExpired,
            "the device code's lifetime (expires_in) ran out before the user approved it; run \
             the authorization again and enter the new code sooner",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token_response::parse_token_response;
    use http::StatusCode;

    /// The longest interval (`Duration::MAX`) does not overflow when `slow_down` adds to it.
    #[test]
    fn slow_down_on_the_longest_interval_saturates() {
        assert!(matches!(
            poll_verdict(refusal("slow_down"), Duration::MAX),
            PollVerdict::Wait(Duration::MAX)
        ));
    }

    fn refusal(code: &str) -> Error {
        let body = format!(r#"{{"error":"{code}"}}"#);
        parse_token_response(StatusCode::BAD_REQUEST, None, body.as_bytes()).unwrap_err()
    }

    /// §3.5, each error code in turn.
    #[test]
    fn poll_verdicts() {
        let five = Duration::from_secs(5);
        assert!(matches!(
            poll_verdict(refusal("authorization_pending"), five),
            PollVerdict::Wait(d) if d == five
        ));
        assert!(matches!(
            poll_verdict(refusal("slow_down"), Duration::from_secs(7)),
            PollVerdict::Wait(d) if d == Duration::from_secs(12)
        ));
        // The server's trouble, whatever its body says: wait longer, do not stop.
        for (status, body) in [
            (429, r#"{"error":"slow_down"}"#),
            (503, r#"{"error":"temporarily_unavailable"}"#),
            (502, "bad gateway"),
        ] {
            let status = StatusCode::from_u16(status).unwrap();
            let refusal = parse_token_response(status, None, body.as_bytes()).unwrap_err();
            assert!(
                matches!(poll_verdict(refusal, Duration::from_secs(7)), PollVerdict::Wait(d) if d == Duration::from_secs(12)),
                "{status} {body}"
            );
        }
        let PollVerdict::Stop(denied) = poll_verdict(refusal("access_denied"), five) else {
            panic!("access_denied must stop");
        };
        assert_eq!(denied.kind(), ErrorKind::AuthorizationDenied);
        assert_eq!(denied.oauth_error().unwrap().error, "access_denied");
        let PollVerdict::Stop(expired) = poll_verdict(refusal("expired_token"), five) else {
            panic!("expired_token must stop");
        };
        assert_eq!(expired.kind(), ErrorKind::DeviceCodeExpired);
        assert!(expired.message().contains("new code"));
        let PollVerdict::Stop(other) = poll_verdict(refusal("invalid_grant"), five) else {
            panic!("invalid_grant must stop");
        };
        assert_eq!(other.kind(), ErrorKind::TokenRejected);
        assert_eq!(other.oauth_error().unwrap().error, "invalid_grant");
    }

    #[test]
    fn code_dies_at_its_expiry() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        assert!(check_device_code_alive(t - Duration::from_millis(1), t).is_ok());
        assert_eq!(
            check_device_code_alive(t + Duration::from_secs(1), t)
                .unwrap_err()
                .kind(),
            ErrorKind::DeviceCodeExpired
        );
    }
}
