//! Extra request parameters an operator configures, and the parameters no configuration may
//! touch because they carry the flow's security.

use crate::compat::replace_param;
use crate::error::{Error, ErrorKind};

/// Parameters that carry the flow's security or its identity and so cannot be configured: the
/// CSRF `state` (RFC 6749 §10.12), PKCE (RFC 7636 §4.3, §4.5), the redirect and the client
/// (RFC 6749 §4.1.1, §4.1.3), the grant and what proves it (§4.1.3, §6; the device code,
/// RFC 8628 §3.4, since token parameters reach device polls too; the assertion, RFC 7523 §2.1;
/// the exchanged tokens, RFC 8693 §2.1), client authentication (§2.3.1, RFC 7523 §2.2), a
/// request object or its reference, which replaces the whole authorization request (RFC 9101
/// §5, RFC 9126 §4), and the DPoP key binding (RFC 9449 §10).
pub const PROTECTED_PARAMETERS: [&str; 20] = [
    "state",
    "code_challenge",
    "code_challenge_method",
    "redirect_uri",
    "client_id",
    "response_type",
    "code",
    "code_verifier",
    "grant_type",
    "refresh_token",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "device_code",
    "assertion",
    "subject_token",
    "actor_token",
    "request",
    "request_uri",
    "dpop_jkt",
];

/// Whether `name` is one of the [`PROTECTED_PARAMETERS`] (compared exactly: OAuth parameter
/// names are case-sensitive, RFC 6749 §3.1, so `State` is another parameter).
pub fn is_protected_parameter(name: &str) -> bool {
    PROTECTED_PARAMETERS.contains(&name)
}

/// Extra parameters for one kind of request, in the order they were configured: each sets a
/// parameter (replacing the value the flow would send) or removes one the flow sends by default.
///
/// ```
/// use mcp_oauth_flow::server::ExtraParams;
/// let params = ExtraParams::default().set("audience", "api").unwrap().remove("resource").unwrap();
/// let sent = params.apply(vec![("resource".into(), "https://mcp".into()), ("scope".into(), "a".into())]);
/// assert_eq!(sent, [("scope".to_string(), "a".to_string()), ("audience".into(), "api".into())]);
/// assert!(ExtraParams::default().set("state", "x").is_err());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtraParams {
    /// `None` removes the parameter.
    pub(crate) entries: Vec<(String, Option<String>)>,
}

impl ExtraParams {
    /// Sends `name=value`, replacing any value the flow would send for `name`.
    ///
    /// Fails with [`ErrorKind::ProtectedParameter`] for an empty name or one of the
    /// [`PROTECTED_PARAMETERS`].
    pub fn set(self, name: impl Into<String>, value: impl Into<String>) -> Result<Self, Error> {
        self.with(name.into(), Some(value.into()))
    }

    /// Never sends `name`, even when the flow would (the RFC 8707 `resource`, say).
    ///
    /// Fails like [`set`](Self::set).
    pub fn remove(self, name: impl Into<String>) -> Result<Self, Error> {
        self.with(name.into(), None)
    }

    fn with(mut self, name: String, value: Option<String>) -> Result<Self, Error> {
        check_configurable(&name)?;
        self.entries.retain(|(n, _)| *n != name);
        self.entries.push((name, value));
        Ok(self)
    }

    /// Whether nothing is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Each configured parameter: its name, and its value or `None` for a removal.
    pub fn entries(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_deref()))
    }

    /// The parameters of a request after these are applied: a set parameter replaces the
    /// first value of that name in place (and drops any other), or is appended; a removed one
    /// is dropped. Everything else keeps its order.
    pub fn apply(&self, mut pairs: Vec<(String, String)>) -> Vec<(String, String)> {
        for (name, value) in &self.entries {
            replace_param(&mut pairs, name, value.as_deref());
        }
        pairs
    }
}

/// Refuses a parameter name that cannot be configured.
fn check_configurable(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::new(
            ErrorKind::ProtectedParameter,
            "an extra parameter needs a name",
        ));
    }
    if is_protected_parameter(name) {
        return Err(Error::new(
            ErrorKind::ProtectedParameter,
            format!(
                "the parameter {name} carries the flow's security and is always set by the flow; \
                 it cannot be configured"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compat::pairs;

    #[test]
    fn apply_replaces_in_place_appends_and_removes() {
        let extra = ExtraParams::default()
            .set("scope", "b")
            .unwrap()
            .set("audience", "api")
            .unwrap()
            .remove("resource")
            .unwrap();
        let out = extra.apply(pairs(&[
            ("grant_type", "x"),
            ("scope", "a"),
            ("resource", "r"),
            ("scope", "dup"),
            ("resource", "r2"),
        ]));
        assert_eq!(
            out,
            pairs(&[("grant_type", "x"), ("scope", "b"), ("audience", "api")])
        );
        // Configuring a name again replaces the earlier setting.
        let again = ExtraParams::default()
            .remove("resource")
            .unwrap()
            .set("resource", "mine")
            .unwrap();
        assert_eq!(again.entries().count(), 1);
        assert_eq!(
            again.apply(pairs(&[("resource", "r")])),
            pairs(&[("resource", "mine")])
        );
        assert_eq!(
            ExtraParams::default().apply(pairs(&[("a", "1")])),
            pairs(&[("a", "1")])
        );
    }
}
