//! Named presets: for each well-known authorization server, the compatibility switches it
//! needs, and nothing a switch cannot express. A preset sets switches on a
//! [`ServerOptions`]; anything configured afterwards (another switch, an extra parameter)
//! still applies on top.

use crate::compat::RefreshScope;
use crate::server_options::ServerOptions;

/// A well-known authorization server and what it needs.
///
/// | Preset | Switches |
/// |---|---|
/// | `EntraId` | omit `resource` (AADSTS9010010), ask for `offline_access`, scope on refresh |
/// | `Auth0 { audience }` | `audience` on the authorization and token requests, ask for `offline_access` |
/// | `Google` | `access_type=offline` + `prompt=consent` |
/// | `GitHub` | no `scope` on refresh, granted scope read comma-separated |
/// | `Okta`, `Keycloak` | ask for `offline_access` |
///
/// ```
/// use mcp_oauth_flow::server::{Preset, RefreshScope, ServerOptions};
/// let entra = ServerOptions::for_issuer("https://login.microsoftonline.com/t/v2.0").preset(Preset::EntraId);
/// let c = entra.compat();
/// assert!(c.omit_resource() && c.request_offline_access());
/// assert_eq!(c.refresh_scope(), RefreshScope::Always);
///
/// let auth0 = Preset::Auth0 { audience: "https://mcp.example.com/mcp".into() }
///     .apply(ServerOptions::for_issuer("https://tenant.auth0.com/"));
/// assert_eq!(auth0.compat().audience(), Some("https://mcp.example.com/mcp"));
/// assert!(auth0.compat().request_offline_access() && !auth0.compat().omit_resource());
///
/// let google = ServerOptions::for_issuer("https://accounts.google.com").preset(Preset::Google);
/// assert!(google.compat().google_offline_access() && !google.compat().request_offline_access());
///
/// let github = ServerOptions::for_issuer("https://github.com/login/oauth").preset(Preset::GitHub);
/// assert_eq!(github.compat().refresh_scope(), RefreshScope::Never);
/// assert!(github.compat().comma_separated_scope());
///
/// for preset in [Preset::Okta, Preset::Keycloak] {
///     let c = preset.apply(ServerOptions::for_issuer("https://idp.example.com")).compat().clone();
///     assert!(c.request_offline_access() && !c.omit_resource() && c.audience().is_none());
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Preset {
    /// Microsoft Entra ID (v2 endpoints): refuses the RFC 8707 `resource` next to v2 scopes
    /// (`AADSTS9010010`), requires `scope` on a refresh, and issues a refresh token only for
    /// `offline_access`.
    EntraId,
    /// Auth0: without `audience` it issues only an opaque token for its own `/userinfo`;
    /// a refresh token only for `offline_access` (and an API that allows offline access).
    Auth0 {
        /// The API identifier configured in Auth0 for the MCP server (often its URL).
        audience: String,
    },
    /// Google: a refresh token only for `access_type=offline`, and after the first consent
    /// only with `prompt=consent` again.
    Google,
    /// GitHub (OAuth and GitHub Apps): its refresh request takes no `scope` (GitHub documents
    /// only `client_id`, `client_secret`, `grant_type` and `refresh_token`), and the scope it
    /// grants is comma-separated (`repo,gist`), so it is read that way. (It has
    /// no dynamic registration: configure a pre-registered client. JSON answers and errors in
    /// `200` answers are handled for every server.)
    GitHub,
    /// Okta: a refresh token only for `offline_access`.
    Okta,
    /// Keycloak: `offline_access` for an offline token that outlives the browser session.
    Keycloak,
}

impl Preset {
    /// The names [`from_name`](Self::from_name) knows, as a command line would spell them.
    pub const NAMES: [&'static str; 6] = ["entra", "auth0", "google", "github", "okta", "keycloak"];

    /// The preset called `name` (one of [`NAMES`](Self::NAMES), any case); `auth0` takes the
    /// `audience`, and without one is `None`, as is an unknown name.
    ///
    /// ```
    /// use mcp_oauth_flow::server::Preset;
    /// assert_eq!(Preset::from_name("Entra", None), Some(Preset::EntraId));
    /// assert_eq!(Preset::from_name("auth0", Some("https://api")), Some(Preset::Auth0 { audience: "https://api".into() }));
    /// assert_eq!(Preset::from_name("auth0", None), None);
    /// assert_eq!(Preset::from_name("salesforce", None), None);
    /// ```
    pub fn from_name(name: &str, audience: Option<&str>) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "entra" => Self::EntraId,
            "auth0" => Self::Auth0 {
                audience: audience?.to_owned(),
            },
            "google" => Self::Google,
            "github" => Self::GitHub,
            "okta" => Self::Okta,
            "keycloak" => Self::Keycloak,
            _ => return None,
        })
    }

    /// Sets this preset's switches on `options`.
    pub fn apply(self, options: ServerOptions) -> ServerOptions {
        match self {
            Self::EntraId => options
                .omit_resource(true)
                .request_offline_access(true)
                .refresh_scope(RefreshScope::Always),
            Self::Auth0 { audience } => options.audience(audience).request_offline_access(true),
            Self::Google => options.google_offline_access(true),
            Self::GitHub => options
                .refresh_scope(RefreshScope::Never)
                .comma_separated_scope(true),
            Self::Okta | Self::Keycloak => options.request_offline_access(true),
        }
    }
}

// Here rather than in server_options.rs, so that imports run one way: presets above options.
impl ServerOptions {
    /// Sets the switches of `preset` (see [`Preset`]).
    pub fn preset(self, preset: Preset) -> Self {
        preset.apply(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips_and_a_preset_changes_only_switches() {
        for name in Preset::NAMES {
            let preset = Preset::from_name(name, Some("https://api")).unwrap();
            let base = ServerOptions::for_issuer("https://as")
                .token_param("x", "1")
                .unwrap();
            let applied = preset.apply(base.clone());
            assert_eq!(applied.target(), base.target());
            assert_eq!(applied.token_params(), base.token_params());
            assert_eq!(applied.authorization_params(), base.authorization_params());
            assert_ne!(applied.compat(), base.compat(), "{name}");
        }
    }
}
