//! What an operator configures for one server: extra parameters for the authorization request
//! and for token and refresh requests, offline access, and whether a refresh token is required.
//!
//! Real authorization servers need parameters no specification names (Google's
//! `access_type=offline`, Auth0's `audience`), or refuse ones the specifications ask for (Entra
//! ID v2 rejects the RFC 8707 `resource` with `AADSTS9010010`). [`ServerOptions`] adds, replaces
//! or removes them, for one MCP server or for every server of one issuer; the parameters that
//! carry the flow's security can never be touched.

use url::Url;

use crate::compat::{Compat, RefreshScope};
use crate::error::{Error, ErrorKind};
use crate::extra_params::ExtraParams;
use crate::metadata::issuer_matches;
use crate::resource::resource_covers;
use crate::scope::{Scopes, OFFLINE_ACCESS};

/// Which servers a [`ServerOptions`] is for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerMatch {
    /// The MCP server at this URL, and every URL below it (same origin, path prefix at a
    /// segment boundary).
    McpServer(Url),
    /// Every MCP server whose authorization server has this issuer.
    Issuer(String),
}

/// Options for one MCP server, or for every MCP server of one authorization server: extra
/// request parameters, `prompt=consent` with offline access, and whether a refresh token is
/// required. Add them to [`ClientConfig::server`](crate::ClientConfig::server); the options of
/// the MCP server's URL win over those of its issuer.
///
/// ```
/// use mcp_oauth_flow::{server::ServerOptions, ClientConfig, ErrorKind};
/// // Google issues a refresh token only with access_type=offline; Entra ID v2 rejects `resource`.
/// let google = ServerOptions::for_issuer("https://accounts.google.com")
///     .authorization_param("access_type", "offline")?;
/// let entra = ServerOptions::for_server("https://mcp.example.com/mcp")?
///     .remove_authorization_param("resource")?
///     .remove_token_param("resource")?
///     .require_refresh_token(true);
/// let config = ClientConfig::new("http://127.0.0.1:8976/callback").server(google).server(entra);
/// assert_eq!(config.servers.len(), 2);
/// // What carries the flow's security is refused at once.
/// let err = ServerOptions::for_issuer("https://as.example.com").token_param("code_verifier", "x").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::ProtectedParameter);
/// # Ok::<(), mcp_oauth_flow::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerOptions {
    target: ServerMatch,
    authorization_params: ExtraParams,
    token_params: ExtraParams,
    offline_consent: bool,
    require_refresh_token: bool,
    compat: Compat,
}

impl ServerOptions {
    fn new(target: ServerMatch) -> Self {
        Self {
            target,
            authorization_params: ExtraParams::default(),
            token_params: ExtraParams::default(),
            offline_consent: true,
            require_refresh_token: false,
            compat: Compat::default(),
        }
    }

    /// Options for the MCP server at `url` (and below it). Fails with
    /// [`ErrorKind::InvalidRequestUri`] when `url` is not an absolute URL.
    pub fn for_server(url: &str) -> Result<Self, Error> {
        let mut url = Url::parse(url).map_err(|e| {
            Error::new(
                ErrorKind::InvalidRequestUri,
                format!(
                    "server options need the MCP server's absolute URL, not {:?}: {e}",
                    crate::url_policy::shown_url(url)
                ),
            )
        })?;
        // A server is named by scheme, host, port and path (as requests are matched): user
        // information would match no request, and would show in the options' `Debug`.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Ok(Self::new(ServerMatch::McpServer(url)))
    }

    /// Options for every MCP server whose authorization server is `issuer`.
    pub fn for_issuer(issuer: impl Into<String>) -> Self {
        Self::new(ServerMatch::Issuer(issuer.into()))
    }

    /// Which servers these options are for.
    pub fn target(&self) -> &ServerMatch {
        &self.target
    }

    /// Sends `name=value` in the authorization request. See [`ExtraParams::set`].
    pub fn authorization_param(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, Error> {
        self.authorization_params = self.authorization_params.set(name, value)?;
        Ok(self)
    }

    /// Never sends `name` in the authorization request. See [`ExtraParams::remove`].
    pub fn remove_authorization_param(mut self, name: impl Into<String>) -> Result<Self, Error> {
        self.authorization_params = self.authorization_params.remove(name)?;
        Ok(self)
    }

    /// Sends `name=value` in every token request: the code exchange, client credentials and
    /// refresh. See [`ExtraParams::set`].
    pub fn token_param(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, Error> {
        self.token_params = self.token_params.set(name, value)?;
        Ok(self)
    }

    /// Never sends `name` in a token request. See [`ExtraParams::remove`].
    pub fn remove_token_param(mut self, name: impl Into<String>) -> Result<Self, Error> {
        self.token_params = self.token_params.remove(name)?;
        Ok(self)
    }

    /// Whether an authorization request that asks for `offline_access` also carries
    /// `prompt=consent` (OpenID Connect Core §11). Default: `true`; turn it off for a server
    /// that has other grounds to allow offline access and would otherwise ask the user every
    /// time.
    pub fn prompt_consent_for_offline_access(mut self, on: bool) -> Self {
        self.offline_consent = on;
        self
    }

    /// Whether an authorization that ends without a refresh token fails (with
    /// [`ErrorKind::NoRefreshToken`]) instead of succeeding, so a server that will need a new
    /// login when the access token expires shows it at once. The tokens just received are not
    /// kept. Default: `false`.
    pub fn require_refresh_token(mut self, on: bool) -> Self {
        self.require_refresh_token = on;
        self
    }

    /// Compatibility switch: never send the RFC 8707 `resource` indicator, in the authorization
    /// request nor in token and refresh requests. Entra ID v2 refuses it next to v2 scopes
    /// (`invalid_target`, `AADSTS9010010`). Default: `false`.
    pub fn omit_resource(mut self, on: bool) -> Self {
        self.compat.omit_resource = on;
        self
    }

    /// Compatibility switch: send `audience=value` in the authorization request and in every
    /// token request. Auth0 issues a token for the API it names, and without it only an opaque
    /// token for its own `/userinfo`, which no MCP server accepts. Default: none.
    pub fn audience(mut self, value: impl Into<String>) -> Self {
        self.compat.audience = Some(value.into());
        self
    }

    /// Compatibility switch: what a refresh does with `scope` (see [`RefreshScope`]).
    /// Default: [`RefreshScope::Always`].
    pub fn refresh_scope(mut self, policy: RefreshScope) -> Self {
        self.compat.refresh_scope = policy;
        self
    }

    /// Compatibility switch: `access_type=offline` and `prompt=consent` in the authorization
    /// request, without which Google issues no refresh token (`prompt=consent` because it
    /// issues one only at a consent). Default: `false`.
    pub fn google_offline_access(mut self, on: bool) -> Self {
        self.compat.google_offline_access = on;
        self
    }

    /// Compatibility switch: ask for the `offline_access` scope in a user's authorization even
    /// when the server's metadata does not list it (the flow otherwise asks only then).
    /// Okta, Keycloak, Auth0 and Entra ID issue refresh tokens only for it. Default: `false`.
    pub fn request_offline_access(mut self, on: bool) -> Self {
        self.compat.request_offline_access = on;
        self
    }

    /// Compatibility switch: read the `scope` of a token response as comma-separated, as
    /// GitHub writes it (`repo,gist`), instead of space-delimited (RFC 6749 §3.3), so the
    /// granted scopes (in the status, and restated on a refresh) are the ones issued.
    /// Default: `false`.
    pub fn comma_separated_scope(mut self, on: bool) -> Self {
        self.compat.comma_separated_scope = on;
        self
    }

    /// The compatibility switches.
    pub fn compat(&self) -> &Compat {
        &self.compat
    }

    /// The extra authorization request parameters.
    pub fn authorization_params(&self) -> &ExtraParams {
        &self.authorization_params
    }

    /// The extra token request parameters.
    pub fn token_params(&self) -> &ExtraParams {
        &self.token_params
    }

    /// See [`prompt_consent_for_offline_access`](Self::prompt_consent_for_offline_access).
    pub fn offline_consent(&self) -> bool {
        self.offline_consent
    }

    /// See [`require_refresh_token`](Self::require_refresh_token).
    pub fn refresh_token_required(&self) -> bool {
        self.require_refresh_token
    }
}

/// The options that apply to the MCP server at `server_url` whose authorization server is
/// `issuer` (when known): the most specific [`ServerMatch::McpServer`] covering the URL, else
/// the first [`ServerMatch::Issuer`] naming the issuer (compared as RFC 8414 §3.3 does, see
/// [`issuer_matches`]), else none.
///
/// ```
/// use mcp_oauth_flow::server::{select_server_options, ServerOptions};
/// let all = [
///     ServerOptions::for_issuer("https://as.example.com"),
///     ServerOptions::for_server("https://mcp.example.com/mcp").unwrap(),
/// ];
/// let server = "https://mcp.example.com/mcp".parse().unwrap();
/// assert_eq!(select_server_options(&all, &server, Some("https://as.example.com")), Some(&all[1]));
/// let other = "https://other.example.com/mcp".parse().unwrap();
/// assert_eq!(select_server_options(&all, &other, Some("https://as.example.com")), Some(&all[0]));
/// assert_eq!(select_server_options(&all, &other, None), None);
/// ```
pub fn select_server_options<'a>(
    options: &'a [ServerOptions],
    server_url: &Url,
    issuer: Option<&str>,
) -> Option<&'a ServerOptions> {
    let by_server = options
        .iter()
        .filter_map(|o| match &o.target {
            ServerMatch::McpServer(url) if resource_covers(url, server_url) => {
                Some((url.path().trim_end_matches('/').len(), o))
            }
            _ => None,
        })
        .max_by_key(|(specificity, _)| *specificity)
        .map(|(_, o)| o);
    by_server.or_else(|| {
        let issuer = issuer?;
        options
            .iter()
            .find(|o| matches!(&o.target, ServerMatch::Issuer(i) if issuer_matches(i, issuer)))
    })
}

/// The `prompt` an authorization request carries for offline access: `consent` when the scope
/// asks for `offline_access` (OpenID Connect Core §11: "When offline access is requested, a
/// prompt parameter value of consent MUST be used unless other conditions for processing the
/// request permitting offline access to the requested resources are in place"), unless the
/// operator turned it off for this server. Without it a certified OpenID provider drops
/// `offline_access` and issues no refresh token.
///
/// ```
/// use mcp_oauth_flow::{authorization::Scopes, server::offline_access_prompt};
/// assert_eq!(offline_access_prompt(Some(&Scopes::parse("mcp offline_access")), true), Some("consent"));
/// assert_eq!(offline_access_prompt(Some(&Scopes::parse("mcp offline_access")), false), None);
/// assert_eq!(offline_access_prompt(Some(&Scopes::parse("mcp")), true), None);
/// ```
pub fn offline_access_prompt(scopes: Option<&Scopes>, enabled: bool) -> Option<&'static str> {
    let asks_offline = scopes.is_some_and(|s| s.contains(OFFLINE_ACCESS));
    (enabled && asks_offline).then_some("consent")
}

/// The extra parameters of an authorization request for `scopes` under `options`: `prompt`
/// for offline access (see [`offline_access_prompt`]), then the configured ones, which win
/// (an operator may set another `prompt`, or remove it).
pub(crate) fn authorization_extras(
    scopes: Option<&Scopes>,
    options: Option<&ServerOptions>,
) -> ExtraParams {
    let consent = options.is_none_or(|o| o.offline_consent);
    let mut extras = ExtraParams::default();
    if let Some(prompt) = offline_access_prompt(scopes, consent) {
        extras
            .entries
            .push(("prompt".to_owned(), Some(prompt.to_owned())));
    }
    if let Some(options) = options {
        for (name, value) in &options.authorization_params.entries {
            extras.entries.retain(|(n, _)| n != name);
            extras.entries.push((name.clone(), value.clone()));
        }
    }
    extras
}

/// The check of [`ServerOptions::require_refresh_token`]: with it on, tokens without a refresh
/// token (RFC 6749 §5.1: "OPTIONAL") fail the authorization with
/// [`ErrorKind::NoRefreshToken`], naming the server and the fix, so that a server that will
/// need a new login at every expiry shows it at once.
pub(crate) fn check_refresh_token(
    options: Option<&ServerOptions>,
    has_refresh_token: bool,
    issuer: &str,
    server: &str,
) -> Result<(), Error> {
    if has_refresh_token || !options.is_some_and(|o| o.require_refresh_token) {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::NoRefreshToken,
        format!(
            "authorization server {issuer} issued no refresh token for {server}, and one is \
             required; the tokens were not kept. Ask it for offline access (the offline_access \
             scope with prompt=consent, or its own parameter such as Google's \
             access_type=offline) with ServerOptions::authorization_param, or turn \
             ServerOptions::require_refresh_token off"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extra_params::{is_protected_parameter, PROTECTED_PARAMETERS};

    #[test]
    fn a_server_named_with_credentials_keeps_none_of_them() {
        let named = "https://alice-login:hunter2@mcp.example.com/mcp";
        let options = ServerOptions::for_server(named).unwrap();
        let shown = format!("{options:?}");
        assert!(shown.contains("mcp.example.com"), "{shown}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("alice-login"),
            "{shown}"
        );
        let err = ServerOptions::for_server("https://alice-login:hunter2@exa mple.com/?key=k")
            .unwrap_err();
        let shown = format!("{err} {err:?}");
        for secret in ["hunter2", "alice-login", "key=k"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn each_getter_reads_what_its_builder_set() {
        let defaults = ServerOptions::for_issuer("https://as.example.com");
        assert!(defaults.authorization_params().is_empty());
        assert!(defaults.token_params().is_empty());
        // prompt=consent with offline_access is on unless turned off (OIDC Core §11).
        assert!(defaults.offline_consent());
        assert!(!defaults.refresh_token_required());

        let set = ServerOptions::for_issuer("https://as.example.com")
            .authorization_param("access_type", "offline")
            .unwrap()
            .token_param("audience", "api://x")
            .unwrap()
            .prompt_consent_for_offline_access(false)
            .require_refresh_token(true);
        let entries = |p: &ExtraParams| {
            p.entries()
                .map(|(k, v)| (k.to_owned(), v.map(str::to_owned)))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            entries(set.authorization_params()),
            [("access_type".to_owned(), Some("offline".to_owned()))]
        );
        assert_eq!(
            entries(set.token_params()),
            [("audience".to_owned(), Some("api://x".to_owned()))]
        );
        assert!(!set.offline_consent());
        assert!(set.refresh_token_required());
    }

    #[test]
    fn what_proves_a_grant_or_replaces_the_request_is_protected() {
        // Token parameters reach device polls and assertion grants; a request object replaces
        // the whole authorization request. None may be set or removed, on either request.
        for name in [
            "device_code",
            "assertion",
            "subject_token",
            "actor_token",
            "request",
            "request_uri",
            "client_assertion",
            "client_assertion_type",
        ] {
            assert!(is_protected_parameter(name), "{name}");
            let options = ServerOptions::for_issuer("https://as");
            let error = options.clone().token_param(name, "x").unwrap_err();
            assert_eq!(error.kind(), ErrorKind::ProtectedParameter, "{name}");
            assert!(options.clone().authorization_param(name, "x").is_err());
            assert!(options.clone().remove_token_param(name).is_err());
        }
        assert!(!is_protected_parameter("device_name"));
        assert!(!is_protected_parameter("requested_token_type"));
    }

    #[test]
    fn every_protected_parameter_is_refused_and_others_are_not() {
        for name in PROTECTED_PARAMETERS {
            let set = ExtraParams::default().set(name, "x").unwrap_err();
            assert_eq!(set.kind(), ErrorKind::ProtectedParameter, "{name}");
            assert!(set.to_string().contains(name), "{set}");
            let removed = ExtraParams::default().remove(name).unwrap_err();
            assert_eq!(removed.kind(), ErrorKind::ProtectedParameter);
        }
        assert!(ExtraParams::default().set("", "x").is_err());
        for name in [
            "resource",
            "scope",
            "audience",
            "prompt",
            "access_type",
            "State",
        ] {
            assert!(ExtraParams::default().set(name, "x").is_ok(), "{name}");
        }
        let options = ServerOptions::for_issuer("https://as");
        assert!(options.clone().authorization_param("state", "x").is_err());
        assert!(options
            .clone()
            .remove_authorization_param("client_id")
            .is_err());
        assert!(options.clone().token_param("grant_type", "x").is_err());
        assert!(options.remove_token_param("client_assertion").is_err());
    }

    #[test]
    fn the_server_url_wins_the_most_specific_first_then_the_issuer() {
        let all = [
            ServerOptions::for_issuer("https://as.example.com"),
            ServerOptions::for_server("https://mcp.example.com").unwrap(),
            ServerOptions::for_server("https://mcp.example.com/tenant/").unwrap(),
        ];
        let url = |s: &str| Url::parse(s).unwrap();
        let at = |s: &str, issuer| select_server_options(&all, &url(s), issuer);
        assert_eq!(
            at("https://mcp.example.com/tenant/mcp", None),
            Some(&all[2])
        );
        assert_eq!(at("https://mcp.example.com/tenantx", None), Some(&all[1]));
        assert_eq!(at("https://mcp.example.com:8443/mcp", None), None);
        // The issuer's one trailing `/` (see `issuer_matches`), not a prefix match.
        assert_eq!(
            at("https://x.example.com/", Some("https://as.example.com/")),
            Some(&all[0])
        );
        assert_eq!(
            at("https://x.example.com/", Some("https://as.example.com/t")),
            None
        );
        assert!(ServerOptions::for_server("not a url").is_err());
    }

    #[test]
    fn configured_authorization_params_win_over_the_offline_prompt() {
        let offline = Scopes::parse("mcp offline_access");
        let names = |e: &ExtraParams| -> Vec<(String, Option<String>)> {
            e.entries()
                .map(|(n, v)| (n.to_owned(), v.map(str::to_owned)))
                .collect()
        };
        let prompt = |v: Option<&str>| vec![("prompt".to_owned(), v.map(str::to_owned))];
        assert_eq!(
            names(&authorization_extras(Some(&offline), None)),
            prompt(Some("consent"))
        );
        let off = ServerOptions::for_issuer("i").prompt_consent_for_offline_access(false);
        assert!(authorization_extras(Some(&offline), Some(&off)).is_empty());
        let login = ServerOptions::for_issuer("i")
            .authorization_param("prompt", "login")
            .unwrap();
        assert_eq!(
            names(&authorization_extras(Some(&offline), Some(&login))),
            prompt(Some("login"))
        );
        let removed = ServerOptions::for_issuer("i")
            .remove_authorization_param("prompt")
            .unwrap();
        assert_eq!(
            names(&authorization_extras(Some(&offline), Some(&removed))),
            prompt(None)
        );
        let google = ServerOptions::for_issuer("i")
            .authorization_param("access_type", "offline")
            .unwrap();
        assert_eq!(
            names(&authorization_extras(
                Some(&Scopes::parse("mcp")),
                Some(&google)
            )),
            vec![("access_type".to_owned(), Some("offline".to_owned()))]
        );
    }

    #[test]
    fn a_missing_refresh_token_fails_only_when_required() {
        let required = ServerOptions::for_issuer("i").require_refresh_token(true);
        let err =
            check_refresh_token(Some(&required), false, "https://as", "https://mcp/x").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NoRefreshToken);
        let text = err.to_string();
        for part in [
            "https://as",
            "https://mcp/x",
            "prompt=consent",
            "require_refresh_token",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        assert!(check_refresh_token(Some(&required), true, "a", "s").is_ok());
        let relaxed = ServerOptions::for_issuer("i");
        assert!(check_refresh_token(Some(&relaxed), false, "a", "s").is_ok());
        assert!(check_refresh_token(None, false, "a", "s").is_ok());
    }

    #[test]
    fn prompt_consent_only_for_offline_access_and_when_on() {
        let offline = Scopes::parse("offline_access");
        assert_eq!(offline_access_prompt(Some(&offline), true), Some("consent"));
        assert_eq!(offline_access_prompt(Some(&offline), false), None);
        assert_eq!(offline_access_prompt(None, true), None);
        assert_eq!(
            offline_access_prompt(Some(&Scopes::parse("offline")), true),
            None
        );
    }
}
