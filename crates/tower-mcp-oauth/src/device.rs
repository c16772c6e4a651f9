//! The driver's side of the device authorization grant (RFC 8628): showing the user code
//! through the application's [`DeviceCodePrompt`], and sleeping on the layer's [`Timer`]
//! between polls, bounded by the consent timeout (the core bounds it by the code's lifetime).

use std::time::{Duration, Instant};

use mcp_oauth_flow::device::UserCode;
use mcp_oauth_flow::{Error, ErrorKind};

use crate::timer::{human, Timer};

/// Shows the user where to approve this device and the code to enter (RFC 8628 §3.3), while the
/// layer polls. Called once per device authorization; it must not block for long (print, send a
/// notification, draw a QR code of `verification_uri_complete`).
///
/// Implemented by [`StderrPrompt`] (the default) and by any `Fn(&UserCode)` closure.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use tower_mcp_oauth::{DeviceCodePrompt, UserCode};
/// let seen = Arc::new(Mutex::new(None));
/// let sink = Arc::clone(&seen);
/// let prompt = move |code: &UserCode| *sink.lock().unwrap() = Some(code.user_code.clone());
/// prompt.show(&UserCode::new("WDJB-MJHT", "https://example.com/device", None, Duration::from_secs(900)));
/// assert_eq!(seen.lock().unwrap().as_deref(), Some("WDJB-MJHT"));
/// ```
pub trait DeviceCodePrompt: Send + Sync + 'static {
    /// Shows `code` to the user.
    fn show(&self, code: &UserCode);
}

impl<F> DeviceCodePrompt for F
where
    F: Fn(&UserCode) + Send + Sync + 'static,
{
    fn show(&self, code: &UserCode) {
        self(code)
    }
}

/// Prints the URL and the code to standard error, where a terminal user sees them and a
/// program reading standard output (an MCP stdio bridge) does not.
///
/// ```
/// use std::time::Duration;
/// use tower_mcp_oauth::{StderrPrompt, UserCode};
/// let code = UserCode::new("WDJB-MJHT", "https://example.com/device", None, Duration::from_secs(900));
/// let text = StderrPrompt::text(&code);
/// assert!(text.contains("https://example.com/device") && text.contains("WDJB-MJHT"));
/// assert!(text.contains("15 min"));
/// // What the server sent reaches the terminal without escape sequences.
/// let hostile = UserCode::new("AB\x1b[2KCD", "https://example.com/device", None, Duration::from_secs(900));
/// assert!(!StderrPrompt::text(&hostile).contains('\x1b'));
/// // Nor with a line separator that would start a forged line of its own.
/// let forged = UserCode::new("AB\u{2028}Open https://evil.example", "https://example.com/device", None, Duration::from_secs(900));
/// assert!(!StderrPrompt::text(&forged).contains('\u{2028}'));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct StderrPrompt;

impl StderrPrompt {
    /// What [`show`](DeviceCodePrompt::show) prints.
    pub fn text(code: &UserCode) -> String {
        let minutes = code.expires_in.as_secs().div_ceil(60);
        let mut text = format!(
            "To authorize, open {} on any device and enter the code {} (valid for {minutes} min).",
            printable(&code.verification_uri),
            printable(&code.user_code)
        );
        if let Some(complete) = &code.verification_uri_complete {
            text.push_str(&format!("\nOr open {} directly.", printable(complete)));
        }
        text
    }
}

/// The authorization server's text as it may reach a terminal: every character the core's one
/// rule names ([`mcp_oauth_flow::unsafe_to_display`]: controls, and what steers or hides text
/// unseen) becomes U+FFFD. A code and a web address need none of them.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if mcp_oauth_flow::unsafe_to_display(c) {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

impl DeviceCodePrompt for StderrPrompt {
    fn show(&self, code: &UserCode) {
        eprintln!("{}", Self::text(code));
    }
}

/// The waits of one device authorization, measured on the layer's timer from the moment the
/// code was shown: the whole wait for the user is bounded by the consent timeout, like the
/// browser's.
pub(crate) struct DeviceWaits {
    shown_at: Option<Instant>,
}

impl DeviceWaits {
    pub(crate) fn new() -> Self {
        Self { shown_at: None }
    }

    /// The code was just shown.
    pub(crate) fn shown(&mut self, timer: Option<&dyn Timer>) {
        self.shown_at = timer.map(|t| t.now());
    }

    /// Sleeps `wait` before the next poll; an error if no timer can sleep, or if the poll
    /// would come after the consent timeout.
    pub(crate) async fn sleep(
        &self,
        timer: Option<&dyn Timer>,
        wait: Duration,
        consent_timeout: Duration,
        key: &str,
    ) -> Result<(), Error> {
        let Some(timer) = timer else {
            return Err(Error::new(
                ErrorKind::Consent,
                "the device authorization grant waits between polls and the layer has no timer; \
                 enable the `tokio` feature or set one with OAuthLayer::timer",
            ));
        };
        let waited = self
            .shown_at
            .map(|at| timer.now().saturating_duration_since(at))
            .unwrap_or_default();
        if waited + wait > consent_timeout {
            return Err(Error::new(
                ErrorKind::ConsentTimeout,
                format!(
                    "the device code for {key} was not approved within the layer's consent \
                     timeout of {}",
                    human(consent_timeout)
                ),
            ));
        }
        timer.sleep(wait).await;
        Ok(())
    }
}

#[cfg(all(test, feature = "tokio"))]
mod tests {
    use super::*;
    use crate::TokioTimer;

    #[tokio::test(start_paused = true)]
    async fn sleeps_the_interval_on_the_timer() {
        let timer = TokioTimer;
        let mut waits = DeviceWaits::new();
        waits.shown(Some(&timer));
        let before = timer.now();
        waits
            .sleep(
                Some(&timer),
                Duration::from_secs(5),
                Duration::from_secs(600),
                "k",
            )
            .await
            .unwrap();
        assert_eq!(timer.now() - before, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn the_consent_timeout_bounds_the_whole_wait() {
        let timer = TokioTimer;
        let mut waits = DeviceWaits::new();
        waits.shown(Some(&timer));
        let limit = Duration::from_secs(12);
        let five = Duration::from_secs(5);
        waits.sleep(Some(&timer), five, limit, "k").await.unwrap();
        waits.sleep(Some(&timer), five, limit, "k").await.unwrap();
        let err = waits
            .sleep(Some(&timer), five, limit, "k")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConsentTimeout);
        assert!(err.message().contains("12 s"), "{err}");
    }

    #[tokio::test]
    async fn without_a_timer_it_says_how_to_get_one() {
        let err = DeviceWaits::new()
            .sleep(None, Duration::from_secs(5), Duration::from_secs(600), "k")
            .await
            .unwrap_err();
        assert!(err.message().contains("OAuthLayer::timer"), "{err}");
    }

    #[test]
    fn the_printed_text_names_the_complete_uri_when_given() {
        let code = UserCode::new(
            "ABCD",
            "https://e.com/d",
            Some("https://e.com/d?c=ABCD".into()),
            Duration::from_secs(61),
        );
        let text = StderrPrompt::text(&code);
        assert!(text.contains("https://e.com/d?c=ABCD"));
        assert!(text.contains("2 min"), "{text}");
    }
}
