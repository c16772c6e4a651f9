//! What an operator configures for one server: extra parameters for the authorization request
//! and for token and refresh requests, offline access, and whether a refresh token is required.
//!
//! Real authorization servers need parameters no specification names (Google's
//! `access_type=offline`, Auth0's `audience`), or refuse ones the specifications ask for (Entra
//! ID v2 rejects the RFC 8707 `resource` with `AADSTS9010010`). [`ServerOptions`] adds, replaces
//! or removes them, for one MCP server or for every server of one issuer; the parameters that
//! carry the flow's security can never be touched.

use url::Url;

use crate::compat::{apply_edits, authorization_edits, token_edits, Compat, RefreshScope};
use crate::error::{Error, ErrorKind};
use crate::metadata::issuer_matches;
use crate::resource::resource_covers;
use crate::scope::{Scopes, OFFLINE_ACCESS};

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
    entries: Vec<(String, Option<String>)>,
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
            let at = pairs.iter().position(|(n, _)| n == name);
            pairs.retain(|(n, _)| n != name);
            if let Some(value) = value {
                let entry = (name.clone(), value.clone());
                match at {
                    Some(i) => pairs.insert(i.min(pairs.len()), entry),
                    None => pairs.push(entry),
                }
            }
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
        let url = Url::parse(url).map_err(|e| {
            Error::new(
                ErrorKind::InvalidRequestUri,
                format!("server options need the MCP server's absolute URL, not {url:?}: {e}"),
            )
        })?;
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

/// Applies `extra` to the query of `url`, keeping every other pair in order.
pub(crate) fn apply_to_query(url: &mut Url, extra: &ExtraParams) {
    if extra.is_empty() {
        return;
    }
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let pairs = extra.apply(pairs);
    url.set_query(None);
    if !pairs.is_empty() {
        url.query_pairs_mut().extend_pairs(pairs);
    }
}

/// A token request with the compatibility switches of `options`, then its token parameters
/// (which win), applied to its form body.
pub(crate) fn with_token_params(
    request: http::Request<bytes::Bytes>,
    options: Option<&ServerOptions>,
) -> http::Request<bytes::Bytes> {
    let Some(options) = options else {
        return request;
    };
    let request = edit_form(request, &token_edits(&options.compat), "token");
    apply_to_form(request, &options.token_params)
}

/// A device authorization request (RFC 8628 §3.1) with the switches that concern it: like the
/// authorization request it stands for, it names the resource and Auth0's `audience`, so
/// `omit_resource` and `audience` apply (the configured token parameters do not).
pub(crate) fn with_device_switches(
    request: http::Request<bytes::Bytes>,
    options: Option<&ServerOptions>,
) -> http::Request<bytes::Bytes> {
    match options {
        Some(options) => edit_form(
            request,
            &token_edits(&options.compat),
            "device_authorization",
        ),
        None => request,
    }
}

/// Applies switch `edits` to a form-encoded request body.
fn edit_form(
    request: http::Request<bytes::Bytes>,
    edits: &[crate::compat::Edit],
    what: &'static str,
) -> http::Request<bytes::Bytes> {
    if edits.is_empty() {
        return request;
    }
    let (parts, body) = request.into_parts();
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(apply_edits(pairs, edits, what))
        .finish();
    http::Request::from_parts(parts, bytes::Bytes::from(body))
}

/// Applies the compatibility switches of `options` to an authorization request's URL (before
/// the configured parameters, which win).
pub(crate) fn apply_switches_to_query(url: &mut Url, options: Option<&ServerOptions>) {
    let Some(edits) = options
        .map(|o| authorization_edits(&o.compat))
        .filter(|e| !e.is_empty())
    else {
        return;
    };
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let pairs = apply_edits(pairs, &edits, "authorization");
    url.set_query(None);
    if !pairs.is_empty() {
        url.query_pairs_mut().extend_pairs(pairs);
    }
}

/// Applies `extra` to a form-encoded request body (a token request's).
pub(crate) fn apply_to_form(
    request: http::Request<bytes::Bytes>,
    extra: &ExtraParams,
) -> http::Request<bytes::Bytes> {
    if extra.is_empty() {
        return request;
    }
    let (parts, body) = request.into_parts();
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(extra.apply(pairs))
        .finish();
    http::Request::from_parts(parts, bytes::Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
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
        // The root-issuer leniency of RFC 8414 §3.3, not a prefix match.
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
    fn queries_and_forms_are_rewritten_only_when_configured() {
        let extra = ExtraParams::default()
            .set("prompt", "login")
            .unwrap()
            .remove("resource")
            .unwrap();
        let mut url =
            Url::parse("https://as/authorize?tenant=1&resource=r&prompt=consent").unwrap();
        apply_to_query(&mut url, &extra);
        assert_eq!(url.as_str(), "https://as/authorize?tenant=1&prompt=login");
        let mut untouched = Url::parse("https://as/authorize?a=%20b").unwrap();
        apply_to_query(&mut untouched, &ExtraParams::default());
        assert_eq!(untouched.as_str(), "https://as/authorize?a=%20b");

        let request = http::Request::post("https://as/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(bytes::Bytes::from("grant_type=refresh_token&resource=r"))
            .unwrap();
        let extra = ExtraParams::default()
            .set("audience", "a b")
            .unwrap()
            .remove("resource")
            .unwrap();
        let out = apply_to_form(request, &extra);
        assert_eq!(out.uri(), "https://as/token");
        assert_eq!(
            out.headers()["content-type"],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(&out.body()[..], b"grant_type=refresh_token&audience=a+b");
    }

    #[test]
    fn switches_reach_token_and_device_forms_and_configured_params_win() {
        let form = |body: &'static str| {
            http::Request::post("https://as/x")
                .body(bytes::Bytes::from(body))
                .unwrap()
        };
        let options = ServerOptions::for_issuer("i")
            .omit_resource(true)
            .audience("api")
            .token_param("audience", "mine")
            .unwrap();
        let token = with_token_params(form("grant_type=g&resource=r"), Some(&options));
        assert_eq!(&token.body()[..], b"grant_type=g&audience=mine");
        let device = with_device_switches(form("client_id=c&resource=r"), Some(&options));
        assert_eq!(&device.body()[..], b"client_id=c&audience=api");
        let untouched = with_device_switches(form("resource=r"), None);
        assert_eq!(&untouched.body()[..], b"resource=r");
        let mut url = Url::parse("https://as/authorize?resource=r&scope=s").unwrap();
        apply_switches_to_query(&mut url, Some(&options));
        assert_eq!(url.as_str(), "https://as/authorize?scope=s&audience=api");
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
