//! A record of every sub-request a flow made and what came of it, for diagnostics.

use std::fmt;

use crate::escaped::Escaped;

/// Why a sub-request was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Purpose {
    /// Fetching protected resource metadata (RFC 9728).
    ResourceMetadata,
    /// Fetching authorization server metadata (RFC 8414 / OpenID Connect Discovery).
    AuthorizationServerMetadata,
    /// Dynamic client registration (RFC 7591).
    Registration,
    /// A token request (RFC 6749 §4.1.3, §6).
    Token,
    /// The token exchange at an enterprise IdP (RFC 8693, SEP-990).
    TokenExchange,
    /// The device authorization request (RFC 8628 §3.1).
    DeviceAuthorization,
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ResourceMetadata => "protected resource metadata",
            Self::AuthorizationServerMetadata => "authorization server metadata",
            Self::Registration => "client registration",
            Self::Token => "token request",
            Self::TokenExchange => "token exchange",
            Self::DeviceAuthorization => "device authorization",
        })
    }
}

/// One line of a [`DiscoveryReport`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveryStep {
    /// Why the request was made.
    pub purpose: Purpose,
    /// The URL requested (never carries a secret: discovery and endpoint URLs only).
    pub url: String,
    /// The HTTP status, when a response came back.
    pub status: Option<u16>,
    /// What the flow made of it: used, skipped and why, or the error.
    pub outcome: String,
}

/// Every URL a flow tried, in order, with its status and what was made of it.
///
/// Printed with `{}` it is a small table a user can read to see why discovery went the way it
/// did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiscoveryReport {
    steps: Vec<DiscoveryStep>,
}

impl DiscoveryReport {
    /// The steps in order.
    pub fn steps(&self) -> &[DiscoveryStep] {
        &self.steps
    }

    pub(crate) fn push(
        &mut self,
        purpose: Purpose,
        url: &str,
        status: Option<u16>,
        outcome: impl Into<String>,
    ) {
        self.steps.push(DiscoveryStep {
            purpose,
            url: url.to_owned(),
            status,
            outcome: outcome.into(),
        });
    }
}

impl fmt::Display for DiscoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.steps {
            let status = step
                .status
                .map_or_else(|| "---".to_owned(), |s| s.to_string());
            // The URL and the outcome may carry what a server sent: one line a step, however
            // its text is written.
            writeln!(
                f,
                "  {status} {:<30} {}  ({})",
                step.purpose.to_string(),
                Escaped(&step.url),
                Escaped(&step.outcome)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One line a step, whatever a server put in the URL or the outcome.
    #[test]
    fn a_step_is_one_line_of_no_control_characters() {
        let mut report = DiscoveryReport::default();
        report.push(
            Purpose::AuthorizationServerMetadata,
            "a\nFORGED LINE",
            None,
            "x\u{1b}[2J",
        );
        report.push(
            Purpose::Token,
            "https://as/token",
            Some(200),
            "tokens issued",
        );
        let shown = report.to_string();
        assert_eq!(shown.lines().count(), 2, "{shown}");
        assert!(!shown
            .trim_end_matches('\n')
            .chars()
            .any(|c| c.is_control() && c != '\n'));
        assert!(shown.contains("a\\nFORGED LINE"), "{shown}");
    }

    #[test]
    fn purposes_read_as_the_protocol_names_them() {
        let all = [
            (Purpose::ResourceMetadata, "protected resource metadata"),
            (
                Purpose::AuthorizationServerMetadata,
                "authorization server metadata",
            ),
            (Purpose::Registration, "client registration"),
            (Purpose::Token, "token request"),
        ];
        for (purpose, text) in all {
            assert_eq!(purpose.to_string(), text);
        }
    }

    /// The report is what a user reads when discovery fails: one line per URL, in order, with
    /// the status (or `---` when nothing came back) and what the flow made of it.
    #[test]
    fn the_report_prints_one_line_per_step() {
        let mut report = DiscoveryReport::default();
        report.push(
            Purpose::ResourceMetadata,
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
            Some(404),
            "skipped: not found",
        );
        report.push(
            Purpose::AuthorizationServerMetadata,
            "https://as.example.com/.well-known/oauth-authorization-server",
            None,
            "connection refused",
        );
        let text = report.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].starts_with("  404 protected resource metadata"),
            "{text}"
        );
        assert!(
            lines[0].ends_with("oauth-protected-resource/mcp  (skipped: not found)"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("  --- authorization server metadata"),
            "{text}"
        );
        assert!(lines[1].ends_with("(connection refused)"), "{text}");
        assert_eq!(DiscoveryReport::default().to_string(), "");
    }
}
