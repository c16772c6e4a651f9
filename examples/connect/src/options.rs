//! The command line of the `connect` example.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use tower_mcp_oauth::{Error, ErrorKind, Preset, RefreshScope, ServerOptions};

// The usage line, as a literal that `HELP` can start with.
macro_rules! usage {
    () => {
        "usage: connect <mcp-url> [--no-browser] [--port N] [--localhost] \
                         [--client-id ID [--client-secret S --issuer URL]] [--store DIR] [--timeout SECS] \
                         [--authorize-param K=V]... [--token-param K=V]... \
                         [--require-refresh-token] [--refresh-scope always|never|retry] \
                         [--logout [--forget-client]] [--status] \
                         [--request-timeout SECS] [--device] \
                         [--preset entra|auth0|google|github|okta|keycloak] [--audience A]"
    };
}

/// The usage line printed on a command-line error.
///
/// ```
/// assert!(connect::USAGE.starts_with("usage: connect <mcp-url>"));
/// ```
pub const USAGE: &str = usage!();

/// What `--help` prints: [`USAGE`], then each flag with one line on what it does.
///
/// ```
/// assert!(connect::HELP.starts_with(connect::USAGE));
/// assert!(connect::HELP.lines().any(|l| l.trim_start().starts_with("--refresh-scope")));
/// ```
pub const HELP: &str = concat!(
    usage!(),
    "

Log in to an MCP server (OAuth 2.1), keep the tokens, and list its tools.

  --no-browser               print the authorization URL without opening a browser
  --port N                   port of the loopback redirect receiver (default: any free one)
  --localhost                name the redirect URI http://localhost:… instead of 127.0.0.1
  --client-id ID             use a client registered out of band instead of registering
  --client-secret S          that client's secret (visible in the process list)
  --issuer URL               the issuer of the authorization server that client is
                             registered with (the MCP server's origin if it publishes no
                             protected resource metadata); its secret goes to no other
                             (needed with --client-secret)
  --store DIR                where tokens and registrations are kept (default: XDG state dir)
  --timeout SECS             how long to wait for the browser or device approval (default 300)
  --authorize-param K=V      add K=V to the authorization request; K= removes a default one
  --token-param K=V          add K=V to token and refresh requests; K= removes a default one
  --require-refresh-token    fail the login (storing nothing) when no refresh token is issued
  --refresh-scope POLICY     scope on a refresh: always (default), never, retry (once without)
  --logout                   revoke the stored tokens at the server, forget them, exit 0
  --forget-client            with --logout: also forget the client registration for the issuer
  --status                   print what is stored for the server; no browser, no request
  --request-timeout SECS     limit on each request of the authorization flow (default 30)
  --device                   log in with the device authorization grant (RFC 8628)
  --preset NAME              compatibility switches of a well-known authorization server
  --audience A               send Auth0's audience=A in the authorization and token requests
  -h, --help                 print this help"
);

/// What to connect to and how to log in.
///
/// ```
/// use connect::Options;
/// let args = ["http://127.0.0.1:3000/mcp", "--no-browser", "--port", "8976"];
/// let options = Options::parse(args.map(String::from)).unwrap();
/// assert_eq!(options.url, "http://127.0.0.1:3000/mcp");
/// assert!(!options.open_browser);
/// assert_eq!(options.port, 8976);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct Options {
    /// The MCP endpoint (Streamable HTTP).
    pub url: String,
    /// Open the system browser on the authorization URL (`--no-browser` turns it off). The URL
    /// is printed either way.
    pub open_browser: bool,
    /// The loopback receiver's port; `0` (the default) lets the system choose (`--port N`).
    pub port: u16,
    /// Name the redirect URI `http://localhost:…` instead of `http://127.0.0.1:…`
    /// (`--localhost`), for clients registered that way.
    pub localhost: bool,
    /// A client registered with the authorization server out of band (`--client-id`).
    /// Without it the client registers itself (RFC 7591) or uses a client ID metadata document.
    pub client_id: Option<String>,
    /// The pre-registered client's secret (`--client-secret`; visible to other local users in
    /// the process list, so prefer public clients).
    pub client_secret: Option<String>,
    /// The issuer the pre-registered client is registered with (`--issuer`): its secret is
    /// sent to that authorization server only, whichever one an MCP server names.
    pub issuer: Option<String>,
    /// Where tokens and registrations are kept (`--store DIR`); `None`:
    /// [`default_store_dir`].
    pub store_dir: Option<PathBuf>,
    /// How long to wait for the browser to come back, or with `--device` for the user to
    /// approve (`--timeout SECS`). Default: 5 minutes.
    pub callback_timeout: Duration,
    /// Extra authorization request parameters (`--authorize-param K=V`, repeatable); a `None`
    /// value (`K=`) removes a parameter the flow sends by default, such as `resource`.
    pub authorize_params: Vec<(String, Option<String>)>,
    /// Extra token and refresh request parameters (`--token-param K=V`), likewise.
    pub token_params: Vec<(String, Option<String>)>,
    /// Fail the login when the server issues no refresh token (`--require-refresh-token`).
    pub require_refresh_token: bool,
    /// What a refresh does with `scope` (`--refresh-scope always|never|retry`); `None`: the
    /// preset's choice, else [`RefreshScope::Always`]. Applied after `--preset`.
    pub refresh_scope: Option<RefreshScope>,
    /// With `--logout`, also forget the client registration kept for the server's issuer
    /// (`--forget-client`), so the next login registers afresh.
    pub forget_client: bool,
    /// Revoke the tokens stored for the server and forget them instead of connecting
    /// (`--logout`).
    pub logout: bool,
    /// Print what is stored for the server (connected, issuer, scopes, expiry, refresh token)
    /// instead of connecting: no browser, no request (`--status`).
    pub status: bool,
    /// How long each request of the authorization flow may take, body included
    /// (`--request-timeout SECS`, fractions allowed). Default: the layer's, 30 s.
    pub request_timeout: Duration,
    /// Log in with the device authorization grant (`--device`, RFC 8628): print a URL and a
    /// code to enter on any device with a browser, and poll until the user approves; no
    /// browser or loopback port on this machine.
    pub device: bool,
    /// The compatibility preset of a well-known authorization server (`--preset NAME`, one of
    /// [`Preset::NAMES`]; `auth0` takes its audience from `--audience` or
    /// `--token-param audience=…`).
    pub preset: Option<Preset>,
    /// Auth0's `audience` (`--audience A`): sent in the authorization and token requests.
    pub audience: Option<String>,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("url", &self.url)
            .field("open_browser", &self.open_browser)
            .field("port", &self.port)
            .field("localhost", &self.localhost)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("issuer", &self.issuer)
            .field("store_dir", &self.store_dir)
            .field("callback_timeout", &self.callback_timeout)
            .field("authorize_params", &self.authorize_params)
            .field("token_params", &self.token_params)
            .field("require_refresh_token", &self.require_refresh_token)
            .field("refresh_scope", &self.refresh_scope)
            .field("forget_client", &self.forget_client)
            .field("logout", &self.logout)
            .field("status", &self.status)
            .field("request_timeout", &self.request_timeout)
            .field("device", &self.device)
            .field("preset", &self.preset)
            .field("audience", &self.audience)
            .finish()
    }
}

/// A command line that does not parse; its text says why, and ends with [`USAGE`].
///
/// ```
/// use connect::{Options, USAGE};
/// let err = Options::parse(["--port".to_string()]).unwrap_err();
/// assert!(err.to_string().starts_with("--port needs a value"));
/// assert!(err.to_string().ends_with(USAGE));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n{USAGE}", self.0)
    }
}

impl std::error::Error for UsageError {}

impl Options {
    /// Options for `url` with every default: browser on, ephemeral port, `127.0.0.1`, no
    /// pre-registered client, the default store, 5 minutes.
    ///
    /// ```
    /// let options = connect::Options::new("http://127.0.0.1:3000/mcp");
    /// assert!(options.open_browser && options.store_dir.is_none());
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            open_browser: true,
            port: 0,
            localhost: false,
            client_id: None,
            client_secret: None,
            issuer: None,
            store_dir: None,
            callback_timeout: tower_mcp_oauth::loopback::DEFAULT_CALLBACK_TIMEOUT,
            authorize_params: Vec::new(),
            token_params: Vec::new(),
            require_refresh_token: false,
            refresh_scope: None,
            forget_client: false,
            logout: false,
            status: false,
            request_timeout: tower_mcp_oauth::DEFAULT_REQUEST_TIMEOUT,
            device: false,
            preset: None,
            audience: None,
        }
    }

    /// The per-server options for [`url`](Self::url) that the parameter flags and
    /// `--require-refresh-token` give; `None` when none is set. Fails with
    /// [`ErrorKind::ProtectedParameter`](tower_mcp_oauth::ErrorKind::ProtectedParameter) for a
    /// parameter the flow's security rests on.
    ///
    /// ```
    /// let mut options = connect::Options::new("http://127.0.0.1:3000/mcp");
    /// assert!(options.server_options().unwrap().is_none());
    /// options.token_params.push(("resource".into(), None));
    /// let server = options.server_options().unwrap().unwrap();
    /// assert_eq!(server.token_params().entries().next(), Some(("resource", None)));
    /// options.authorize_params.push(("state".into(), Some("x".into())));
    /// assert!(options.server_options().is_err());
    /// ```
    ///
    /// A preset comes first, so the other flags still apply on top of it:
    ///
    /// ```
    /// use tower_mcp_oauth::Preset;
    /// let mut options = connect::Options::new("http://127.0.0.1:3000/mcp");
    /// options.preset = Some(Preset::EntraId);
    /// let server = options.server_options().unwrap().unwrap();
    /// assert!(server.compat().omit_resource() && server.compat().request_offline_access());
    /// ```
    pub fn server_options(&self) -> Result<Option<ServerOptions>, Error> {
        if self.authorize_params.is_empty()
            && self.token_params.is_empty()
            && !self.require_refresh_token
            && self.preset.is_none()
            && self.audience.is_none()
            && self.refresh_scope.is_none()
        {
            return Ok(None);
        }
        let mut server =
            ServerOptions::for_server(&self.url)?.require_refresh_token(self.require_refresh_token);
        if let Some(preset) = &self.preset {
            server = server.preset(preset.clone());
        }
        if let Some(audience) = &self.audience {
            server = server.audience(audience);
        }
        if let Some(policy) = self.refresh_scope {
            server = server.refresh_scope(policy);
        }
        for (name, value) in &self.authorize_params {
            server = match value {
                Some(value) => server.authorization_param(name, value)?,
                None => server.remove_authorization_param(name)?,
            };
        }
        for (name, value) in &self.token_params {
            server = match value {
                Some(value) => server.token_param(name, value)?,
                None => server.remove_token_param(name)?,
            };
        }
        Ok(Some(server))
    }

    /// Parses the arguments after the program name (see [`USAGE`]).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, UsageError> {
        let mut args = args.into_iter();
        let mut url = None;
        let mut options = Self::new("");
        let mut preset = None;
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .ok_or_else(|| UsageError(format!("{name} needs a value")))
            };
            match arg.as_str() {
                "--no-browser" => options.open_browser = false,
                "--localhost" => options.localhost = true,
                "--port" => options.port = number(&value("--port")?, "--port")?,
                "--client-id" => options.client_id = Some(value("--client-id")?),
                "--client-secret" => options.client_secret = Some(value("--client-secret")?),
                "--issuer" => options.issuer = Some(value("--issuer")?),
                "--store" => options.store_dir = Some(PathBuf::from(value("--store")?)),
                "--authorize-param" => options.authorize_params.push(parameter(
                    &value("--authorize-param")?,
                    "--authorize-param",
                )?),
                "--token-param" => options
                    .token_params
                    .push(parameter(&value("--token-param")?, "--token-param")?),
                "--require-refresh-token" => options.require_refresh_token = true,
                "--refresh-scope" => {
                    options.refresh_scope = Some(refresh_scope(&value("--refresh-scope")?)?)
                }
                "--forget-client" => options.forget_client = true,
                "--logout" => options.logout = true,
                "--status" => options.status = true,
                "--device" => options.device = true,
                "--preset" => preset = Some(value("--preset")?),
                "--audience" => options.audience = Some(value("--audience")?),
                "--timeout" => {
                    let secs: u64 = number(&value("--timeout")?, "--timeout")?;
                    if secs == 0 {
                        return Err(UsageError("--timeout must be at least 1".into()));
                    }
                    options.callback_timeout = Duration::from_secs(secs);
                }
                "--request-timeout" => {
                    let secs: f64 = number(&value("--request-timeout")?, "--request-timeout")?;
                    options.request_timeout = Duration::try_from_secs_f64(secs)
                        .ok()
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| {
                            UsageError("--request-timeout must be a positive number".into())
                        })?;
                }
                flag if flag.starts_with('-') => {
                    return Err(UsageError(format!("unknown option {flag}")))
                }
                _ if url.is_some() => return Err(UsageError(format!("unexpected argument {arg}"))),
                _ => url = Some(arg),
            }
        }
        options.url = url.ok_or_else(|| UsageError("the MCP server URL is missing".into()))?;
        if options.forget_client && !options.logout {
            return Err(UsageError("--forget-client needs --logout".into()));
        }
        if options.client_secret.is_some() && options.client_id.is_none() {
            return Err(UsageError("--client-secret needs --client-id".into()));
        }
        if options.issuer.is_some() && options.client_id.is_none() {
            return Err(UsageError("--issuer needs --client-id".into()));
        }
        // The MCP server names the authorization server: a secret bound to none would go to
        // whichever one a hostile server names.
        if options.client_secret.is_some() && options.issuer.is_none() {
            return Err(UsageError(
                "--client-secret needs --issuer (the authorization server the client is \
                 registered with; the secret goes to no other)"
                    .into(),
            ));
        }
        if let Some(name) = preset {
            // Auth0's audience from --audience, else from --token-param audience=….
            let audience = options.audience.as_deref().or_else(|| {
                options
                    .token_params
                    .iter()
                    .find(|(name, _)| name == "audience")
                    .and_then(|(_, value)| value.as_deref())
            });
            let found = Preset::from_name(&name, audience);
            options.preset = Some(found.ok_or_else(|| UsageError(preset_problem(&name)))?);
        }
        // A protected parameter is a mistake on the command line, found before any request.
        if let Err(e) = options.server_options() {
            if e.kind() == ErrorKind::ProtectedParameter {
                return Err(UsageError(e.to_string()));
            }
        }
        Ok(options)
    }
}

/// Why `--preset name` cannot be built.
fn preset_problem(name: &str) -> String {
    if name.eq_ignore_ascii_case("auth0") {
        "--preset auth0 needs --audience A (or --token-param audience=A): the API identifier \
         configured in Auth0"
            .to_owned()
    } else {
        format!(
            "unknown --preset {name:?}; one of {}",
            Preset::NAMES.join(", ")
        )
    }
}

/// The policy `--refresh-scope` names.
fn refresh_scope(name: &str) -> Result<RefreshScope, UsageError> {
    match name {
        "always" => Ok(RefreshScope::Always),
        "never" => Ok(RefreshScope::Never),
        "retry" => Ok(RefreshScope::RetryWithout),
        _ => Err(UsageError(format!(
            "--refresh-scope takes always, never or retry, not {name:?}"
        ))),
    }
}

/// `K=V` sets `K`; `K=` removes it.
fn parameter(text: &str, flag: &str) -> Result<(String, Option<String>), UsageError> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((
            name.to_owned(),
            (!value.is_empty()).then(|| value.to_owned()),
        )),
        _ => Err(UsageError(format!("{flag} needs K=V, not {text:?}"))),
    }
}

fn number<T: std::str::FromStr>(text: &str, name: &str) -> Result<T, UsageError> {
    text.parse()
        .map_err(|_| UsageError(format!("{name} takes a number, not {text:?}")))
}

/// Where tokens are kept by default: `$XDG_STATE_HOME/tower-mcp-oauth`, else
/// `$HOME/.local/state/tower-mcp-oauth` (XDG Base Directory: tokens are state, not
/// configuration or cache). `None` when neither variable is usable.
///
/// ```
/// if let Some(dir) = connect::default_store_dir() {
///     assert!(dir.ends_with("tower-mcp-oauth"));
/// }
/// ```
pub fn default_store_dir() -> Option<PathBuf> {
    store_dir_from(std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME"))
}

fn store_dir_from(xdg_state_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    // The XDG spec: an unset, empty or relative $XDG_STATE_HOME is ignored.
    let xdg = xdg_state_home
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = xdg.or_else(|| {
        home.map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .map(|h| h.join(".local").join("state"))
    })?;
    Some(base.join("tower-mcp-oauth"))
}

#[cfg(test)]
mod tests;
