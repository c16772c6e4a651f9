//! Compatibility switches: typed answers to what real authorization servers do differently
//! from the specifications, each a pure rule naming the server it works around. They are set
//! on a [`ServerOptions`](crate::server::ServerOptions) (or all at once by a
//! [`Preset`](crate::server::Preset)); the extra parameters configured there are applied after
//! them and so always win.
//!
//! Every switch that changes a request says so at `debug` level (target `mcp_oauth_flow`),
//! naming the switch and the parameter, never a value that could be a secret.

use tracing::debug;

use crate::error::Error;
use crate::scope::{Scopes, OFFLINE_ACCESS};

/// What a refresh request (RFC 6749 §6) does with `scope`, which that section makes optional
/// ("the requested scope MUST NOT include any scope not originally granted … and if omitted is
/// treated as equal to the scope originally granted"). Servers disagree: Entra ID v2 requires
/// it, Salesforce refuses it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefreshScope {
    /// Restate the granted scope (the default; Entra ID v2 needs it).
    #[default]
    Always,
    /// Never send `scope` on a refresh (Salesforce refuses it; GitHub documents none).
    Never,
    /// Send it, and when the server answers `invalid_scope`, send the refresh once more without
    /// it. One retry at most: a second failure is handled like any refused refresh.
    RetryWithout,
}

/// The compatibility switches of one server. Default: all off, [`RefreshScope::Always`].
///
/// ```
/// use mcp_oauth_flow::server::{RefreshScope, ServerOptions};
/// let options = ServerOptions::for_issuer("https://login.example.com")
///     .omit_resource(true)
///     .refresh_scope(RefreshScope::RetryWithout);
/// assert!(options.compat().omit_resource());
/// assert_eq!(options.compat().refresh_scope(), RefreshScope::RetryWithout);
/// assert_eq!(options.compat().audience(), None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compat {
    pub(crate) omit_resource: bool,
    pub(crate) audience: Option<String>,
    pub(crate) refresh_scope: RefreshScope,
    pub(crate) google_offline_access: bool,
    pub(crate) request_offline_access: bool,
    pub(crate) comma_separated_scope: bool,
}

impl Compat {
    /// See [`ServerOptions::omit_resource`](crate::server::ServerOptions::omit_resource).
    pub fn omit_resource(&self) -> bool {
        self.omit_resource
    }

    /// See [`ServerOptions::audience`](crate::server::ServerOptions::audience).
    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }

    /// See [`ServerOptions::refresh_scope`](crate::server::ServerOptions::refresh_scope).
    pub fn refresh_scope(&self) -> RefreshScope {
        self.refresh_scope
    }

    /// See [`ServerOptions::google_offline_access`](crate::server::ServerOptions::google_offline_access).
    pub fn google_offline_access(&self) -> bool {
        self.google_offline_access
    }

    /// See [`ServerOptions::request_offline_access`](crate::server::ServerOptions::request_offline_access).
    pub fn request_offline_access(&self) -> bool {
        self.request_offline_access
    }

    /// See [`ServerOptions::comma_separated_scope`](crate::server::ServerOptions::comma_separated_scope).
    pub fn comma_separated_scope(&self) -> bool {
        self.comma_separated_scope
    }
}

/// One change a switch makes to a request: set `name` to `value`, or remove it (`None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Edit {
    pub(crate) switch: &'static str,
    pub(crate) name: &'static str,
    pub(crate) value: Option<String>,
}

fn edit(switch: &'static str, name: &'static str, value: Option<&str>) -> Edit {
    Edit {
        switch,
        name,
        value: value.map(str::to_owned),
    }
}

/// The changes the switches make to an authorization request (RFC 6749 §4.1.1):
///
/// - `omit_resource`: no RFC 8707 `resource` (Entra ID v2 answers `AADSTS9010010` when it
///   comes with v2 scopes);
/// - `audience`: Auth0 issues a token for the API named by `audience`, and without it only an
///   opaque token for its own `/userinfo`;
/// - `google_offline_access`: Google issues a refresh token only for `access_type=offline`,
///   and again after the first consent only with `prompt=consent`.
pub(crate) fn authorization_edits(compat: &Compat) -> Vec<Edit> {
    let mut edits = Vec::new();
    if compat.omit_resource {
        edits.push(edit("omit_resource", "resource", None));
    }
    if let Some(audience) = &compat.audience {
        edits.push(edit("audience", "audience", Some(audience)));
    }
    if compat.google_offline_access {
        edits.push(edit(
            "google_offline_access",
            "access_type",
            Some("offline"),
        ));
        edits.push(edit("google_offline_access", "prompt", Some("consent")));
    }
    edits
}

/// The changes the switches make to every token request (code exchange, client credentials,
/// refresh, device code): no `resource` under `omit_resource` (Entra ID v2, `AADSTS9010010`),
/// and Auth0's `audience` (its client-credentials grant needs it on the token request; on the
/// others it restates the authorization request's).
pub(crate) fn token_edits(compat: &Compat) -> Vec<Edit> {
    let mut edits = Vec::new();
    if compat.omit_resource {
        edits.push(edit("omit_resource", "resource", None));
    }
    if let Some(audience) = &compat.audience {
        edits.push(edit("audience", "audience", Some(audience)));
    }
    edits
}

/// Sets `name` to `value` among a request's parameters, or removes it (`None`): a set parameter
/// replaces the first value of that name in place (and drops any other), or is appended.
/// Everything else keeps its order. What both the switches and the configured parameters do.
pub(crate) fn replace_param(pairs: &mut Vec<(String, String)>, name: &str, value: Option<&str>) {
    let at = pairs.iter().position(|(n, _)| n == name);
    pairs.retain(|(n, _)| n != name);
    if let Some(value) = value {
        let entry = (name.to_owned(), value.to_owned());
        match at {
            Some(i) => pairs.insert(i.min(pairs.len()), entry),
            None => pairs.push(entry),
        }
    }
}

/// Applies `edits` to the parameters of a request (`request` names it in the log), each as
/// [`ExtraParams::apply`](crate::server::ExtraParams::apply) would, logging every edit that
/// changed something.
pub(crate) fn apply_edits(
    mut pairs: Vec<(String, String)>,
    edits: &[Edit],
    request: &'static str,
) -> Vec<(String, String)> {
    for e in edits {
        let before = pairs.clone();
        replace_param(&mut pairs, e.name, e.value.as_deref());
        if pairs != before {
            let change = if e.value.is_some() { "set" } else { "removed" };
            debug!(
                switch = e.switch,
                parameter = e.name,
                request,
                "compatibility switch {change} a parameter"
            );
        }
    }
    pairs
}

/// Whether a refresh request carries the granted scope: under [`RefreshScope::Never`] no, and
/// neither on the one retry of [`RefreshScope::RetryWithout`]; otherwise yes (RFC 6749 §6).
///
/// ```
/// use mcp_oauth_flow::server::{refresh_sends_scope, RefreshScope};
/// assert!(refresh_sends_scope(RefreshScope::Always, false));
/// assert!(!refresh_sends_scope(RefreshScope::Never, false));
/// assert!(refresh_sends_scope(RefreshScope::RetryWithout, false));
/// assert!(!refresh_sends_scope(RefreshScope::RetryWithout, true));
/// ```
pub fn refresh_sends_scope(policy: RefreshScope, retrying: bool) -> bool {
    match policy {
        RefreshScope::Always => true,
        RefreshScope::Never => false,
        RefreshScope::RetryWithout => !retrying,
    }
}

/// Whether a refused refresh is sent once more without `scope`: under
/// [`RefreshScope::RetryWithout`], when the refused request carried a scope, the server's
/// error is `invalid_scope` (RFC 6749 §5.2), and no retry was made yet, so that there is one at
/// most.
///
/// ```
/// use mcp_oauth_flow::server::{retries_refresh_without_scope, RefreshScope};
/// let invalid_scope = Some("invalid_scope");
/// assert!(retries_refresh_without_scope(RefreshScope::RetryWithout, true, invalid_scope, false));
/// assert!(!retries_refresh_without_scope(RefreshScope::RetryWithout, true, invalid_scope, true));
/// assert!(!retries_refresh_without_scope(RefreshScope::RetryWithout, true, Some("invalid_grant"), false));
/// assert!(!retries_refresh_without_scope(RefreshScope::RetryWithout, false, invalid_scope, false));
/// assert!(!retries_refresh_without_scope(RefreshScope::Always, true, invalid_scope, false));
/// ```
pub fn retries_refresh_without_scope(
    policy: RefreshScope,
    sent_scope: bool,
    oauth_error: Option<&str>,
    retried: bool,
) -> bool {
    policy == RefreshScope::RetryWithout
        && sent_scope
        && !retried
        && oauth_error == Some("invalid_scope")
}

/// The server's `error` code of a failed token request, if it sent one.
pub(crate) fn oauth_error_code(error: &Error) -> Option<&str> {
    error.oauth_error().map(|e| e.error.as_str())
}

/// The granted scope of a token response under `comma_separated_scope`: each scope split at
/// commas. RFC 6749 §3.3 delimits scopes with spaces (a comma may even occur inside one), but
/// GitHub answers `scope=repo,gist`; read as RFC 6749 says, that is the single scope
/// `repo,gist`, which the status would show and a refresh would restate as a scope GitHub
/// never issued. Off, the scope is returned as parsed.
///
/// ```
/// use mcp_oauth_flow::{authorization::Scopes, server::granted_scope};
/// let github = Some(Scopes::parse("repo,gist"));
/// assert_eq!(granted_scope(github.clone(), true), Some(Scopes::parse("repo gist")));
/// assert_eq!(granted_scope(github.clone(), false), github);
/// assert_eq!(granted_scope(Some(Scopes::parse("")), true), Some(Scopes::parse("")));
/// assert_eq!(granted_scope(None, true), None);
/// ```
pub fn granted_scope(scope: Option<Scopes>, comma_separated: bool) -> Option<Scopes> {
    let scope = scope?;
    if !comma_separated || !scope.iter().any(|s| s.contains(',')) {
        return Some(scope);
    }
    debug!(
        switch = "comma_separated_scope",
        parameter = "scope",
        "compatibility switch split a granted scope at commas"
    );
    Some(
        scope
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

/// The scopes of a user's authorization (code or device grant) under
/// `request_offline_access`: `offline_access` added even when the server's metadata does not
/// list it, which the flow otherwise requires (SEP-2207). Okta, Keycloak, Auth0 and Entra ID
/// issue refresh tokens only for it (OpenID Connect Core §11).
///
/// ```
/// use mcp_oauth_flow::{authorization::Scopes, server::with_offline_access_scope};
/// let asked = Scopes::parse("mcp");
/// assert_eq!(with_offline_access_scope(Some(asked.clone()), true), Some(Scopes::parse("mcp offline_access")));
/// assert_eq!(with_offline_access_scope(Some(asked.clone()), false), Some(asked));
/// assert_eq!(with_offline_access_scope(None, true), Some(Scopes::parse("offline_access")));
/// ```
pub fn with_offline_access_scope(scopes: Option<Scopes>, on: bool) -> Option<Scopes> {
    if !on || scopes.as_ref().is_some_and(|s| s.contains(OFFLINE_ACCESS)) {
        return scopes;
    }
    debug!(
        switch = "request_offline_access",
        parameter = "scope",
        "compatibility switch added offline_access"
    );
    let offline = Scopes::parse(OFFLINE_ACCESS);
    Some(match scopes {
        Some(scopes) => scopes.union(&offline),
        None => offline,
    })
}

/// Parameter pairs from string slices: the tests of the modules that rewrite them.
#[cfg(test)]
pub(crate) fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_getter_reads_its_own_switch() {
        use crate::server::ServerOptions;
        let off = ServerOptions::for_issuer("https://as.example.com");
        let off = off.compat();
        assert!(!off.omit_resource());
        assert_eq!(off.audience(), None);
        assert!(!off.google_offline_access());
        assert!(!off.request_offline_access());
        assert!(!off.comma_separated_scope());
        let each = |options: ServerOptions| options.compat().clone();
        let base = || ServerOptions::for_issuer("https://as.example.com");
        let on = each(base().omit_resource(true));
        assert!(on.omit_resource() && !on.google_offline_access());
        assert_eq!(each(base().audience("api://x")).audience(), Some("api://x"));
        let on = each(base().google_offline_access(true));
        assert!(on.google_offline_access() && !on.request_offline_access());
        let on = each(base().request_offline_access(true));
        assert!(on.request_offline_access() && !on.comma_separated_scope());
        let on = each(base().comma_separated_scope(true));
        assert!(on.comma_separated_scope() && !on.omit_resource());
    }

    #[test]
    fn a_granted_scope_is_split_at_commas_only_when_switched_on_and_needed() {
        let github = || Some(Scopes::parse("repo,gist read:org"));
        assert_eq!(
            granted_scope(github(), true),
            Some(Scopes::parse("repo gist read:org"))
        );
        assert_eq!(granted_scope(github(), false), github());
        // Nothing to split: returned as it came, whichever the switch.
        let plain = Some(Scopes::parse("repo gist"));
        assert_eq!(granted_scope(plain.clone(), true), plain);
        assert_eq!(granted_scope(None, true), None);
        assert_eq!(granted_scope(None, false), None);
    }

    #[test]
    fn every_switch_edits_only_its_own_parameters() {
        assert!(authorization_edits(&Compat::default()).is_empty());
        assert!(token_edits(&Compat::default()).is_empty());
        let all = Compat {
            omit_resource: true,
            audience: Some("https://api".into()),
            refresh_scope: RefreshScope::Never,
            google_offline_access: true,
            request_offline_access: true,
            comma_separated_scope: true,
        };
        let names = |edits: Vec<Edit>| -> Vec<(&str, &str, Option<String>)> {
            edits
                .into_iter()
                .map(|e| (e.switch, e.name, e.value))
                .collect()
        };
        assert_eq!(
            names(authorization_edits(&all)),
            [
                ("omit_resource", "resource", None),
                ("audience", "audience", Some("https://api".into())),
                (
                    "google_offline_access",
                    "access_type",
                    Some("offline".into())
                ),
                ("google_offline_access", "prompt", Some("consent".into())),
            ]
        );
        assert_eq!(
            names(token_edits(&all)),
            [
                ("omit_resource", "resource", None),
                ("audience", "audience", Some("https://api".into())),
            ]
        );
    }

    #[test]
    fn edits_replace_in_place_append_and_remove() {
        let edits = [
            edit("omit_resource", "resource", None),
            edit("audience", "audience", Some("a")),
            edit("google_offline_access", "prompt", Some("consent")),
        ];
        let out = apply_edits(
            pairs(&[
                ("grant_type", "x"),
                ("prompt", "login"),
                ("resource", "r"),
                ("resource", "r2"),
            ]),
            &edits,
            "test",
        );
        assert_eq!(
            out,
            pairs(&[
                ("grant_type", "x"),
                ("prompt", "consent"),
                ("audience", "a")
            ])
        );
        assert_eq!(
            apply_edits(pairs(&[("a", "1")]), &[], "test"),
            pairs(&[("a", "1")])
        );
    }

    #[test]
    fn the_retry_without_scope_is_one_at_most_and_only_for_invalid_scope() {
        use RefreshScope::*;
        for policy in [Always, Never, RetryWithout] {
            for sent in [false, true] {
                for error in [None, Some("invalid_scope"), Some("invalid_grant")] {
                    for retried in [false, true] {
                        let expected = policy == RetryWithout
                            && sent
                            && error == Some("invalid_scope")
                            && !retried;
                        assert_eq!(
                            retries_refresh_without_scope(policy, sent, error, retried),
                            expected,
                            "{policy:?} {sent} {error:?} {retried}"
                        );
                    }
                }
            }
        }
        assert_eq!(RefreshScope::default(), Always);
    }

    #[test]
    fn offline_access_is_added_once() {
        let held = Scopes::parse("offline_access mcp");
        assert_eq!(
            with_offline_access_scope(Some(held.clone()), true),
            Some(held)
        );
        assert_eq!(with_offline_access_scope(None, false), None);
    }
}
