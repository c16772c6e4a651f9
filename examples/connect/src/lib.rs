//! The `connect` example's logic, a library so its tests can drive it: log in to an MCP server
//! through the browser and a loopback receiver, keep the tokens in a [`FileStore`], and list
//! the server's tools.
//!
//! ```text
//! cargo run -p connect -- http://127.0.0.1:3000/mcp
//! cargo run -p connect -- http://127.0.0.1:3000/mcp --no-browser --store /tmp/tokens
//! ```
//!
//! The first run prints the authorization URL (and opens the browser unless `--no-browser`),
//! waits for the browser to come back to the [`LoopbackReceiver`], and stores the tokens. A
//! later run with the same store logs in silently: before its first request to the server the
//! layer finds the stored tokens (refreshing them if they are due), so no `401`, no discovery
//! and no flow happen.
//!
//! [`run`] takes any hyper-util client; [`cli`] uses [`https_client`]:
//! rustls with the webpki roots for real servers, plain HTTP for local ones.
//!
//! ```no_run
//! use std::sync::Arc;
//! use connect::{cli, Stdio};
//! # async fn example() {
//! let args = ["http://127.0.0.1:3000/mcp".to_string(), "--no-browser".to_string()];
//! let exit_code = cli(args, Arc::new(Stdio)).await;
//! std::process::exit(exit_code.into());
//! # }
//! ```

mod client;
mod logout;
mod mcp;
mod options;
mod sse;
mod status;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::Connect;
use hyper_util::client::legacy::Client;
use tower::ServiceBuilder;
use tower_mcp_oauth::loopback::{LoopbackHost, LoopbackReceiver};
use tower_mcp_oauth::{
    ClientConfig, Error, ErrorKind, FileStore, HeadlessAuthorizer, OAuthBody, OAuthLayer,
    PreRegisteredClient, UserCode,
};

pub use client::{https_client, HttpsClient};
pub use logout::logout;
pub use mcp::{Tool, PROTOCOL_VERSION};
pub use options::{default_store_dir, Options, UsageError, HELP, USAGE};
pub use status::status;

/// The `client_name` the example registers with.
///
/// ```
/// assert_eq!(connect::CLIENT_NAME, "tower-mcp-oauth connect");
/// ```
pub const CLIENT_NAME: &str = "tower-mcp-oauth connect";

/// Where [`run`] and [`cli`] write, one line at a time.
///
/// ```
/// use std::sync::Mutex;
/// use connect::Console;
///
/// /// Keeps every line, e.g. for a test.
/// #[derive(Default)]
/// struct Captured(Mutex<Vec<String>>);
/// impl Console for Captured {
///     fn out(&self, line: &str) { self.0.lock().unwrap().push(line.to_owned()) }
///     fn err(&self, line: &str) { self.0.lock().unwrap().push(line.to_owned()) }
/// }
/// ```
pub trait Console: Send + Sync + 'static {
    /// A line of the result (each tool): stdout in the example.
    fn out(&self, line: &str);
    /// A line of progress, the authorization URL (always on a line of its own), or an error:
    /// stderr in the example.
    fn err(&self, line: &str);
}

/// The process's stdout and stderr.
///
/// ```
/// use connect::{Console, Stdio};
/// Stdio.err("progress goes to stderr");
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Stdio;

impl Console for Stdio {
    fn out(&self, line: &str) {
        println!("{}", terminal_safe(line));
    }
    fn err(&self, line: &str) {
        eprintln!("{}", terminal_safe(line));
    }
}

/// A line as it may reach a terminal: what servers sent (a tool's name and description, the
/// server's name, an error's message, the device code and its URL) may hold escape sequences
/// that move the cursor, retitle the window, write the clipboard (OSC 52) or make a link show
/// another address, and invisible characters that reorder or hide text (bidirectional
/// overrides, zero-width marks, tag characters): the library's one rule,
/// [`tower_mcp_oauth::unsafe_to_display`]. Each becomes U+FFFD; tabs and line breaks stay, and
/// so do the invisible characters human text needs, one at a time where it needs them: a
/// zero-width joiner or non-joiner between two visible characters (emoji sequences, Persian,
/// the Indic scripts), a text or emoji presentation selector right after one. A run of them,
/// which could carry hidden text, does not.
///
/// ```
/// use connect::terminal_safe;
/// assert_eq!(terminal_safe("tool\tdoes things"), "tool\tdoes things");
/// assert_eq!(terminal_safe("x\u{1b}]52;c;cGF5\u{7}y"), "x\u{FFFD}]52;c;cGF5\u{FFFD}y");
/// assert_eq!(terminal_safe("abc\u{202E}fed"), "abc\u{FFFD}fed");
/// assert_eq!(terminal_safe("ok\u{E0049}\u{E0047}"), "ok\u{FFFD}\u{FFFD}");
/// // An emoji sequence, one with a selector inside, a heart with its selector, a Persian word.
/// let human = "\u{1F469}\u{200D}\u{1F4BB} \u{1F441}\u{FE0F}\u{200D}\u{1F5E8}\u{FE0F} \u{2764}\u{FE0F} \u{645}\u{6CC}\u{200C}\u{62E}";
/// assert_eq!(terminal_safe(human), human);
/// // Runs of them, or one with nothing to join, carry nothing through.
/// assert_eq!(terminal_safe("a\u{200D}\u{200D}b"), "a\u{FFFD}\u{FFFD}b");
/// assert_eq!(terminal_safe("x\u{FE0F}\u{FE0F}"), "x\u{FE0F}\u{FFFD}");
/// assert_eq!(terminal_safe("\u{200C}lead"), "\u{FFFD}lead");
/// ```
pub fn terminal_safe(line: &str) -> std::borrow::Cow<'_, str> {
    let chars: Vec<char> = line.chars().collect();
    let visible = |c: char| !c.is_whitespace() && !tower_mcp_oauth::unsafe_to_display(c);
    let selector = |c: char| matches!(c, '\u{FE0E}' | '\u{FE0F}');
    // A visible character, or a selector right after one: what a joiner may follow.
    let base =
        |i: usize| visible(chars[i]) || (selector(chars[i]) && i > 0 && visible(chars[i - 1]));
    let kept = |i: usize| match chars[i] {
        '\t' | '\n' => true,
        '\u{200C}' | '\u{200D}' => {
            i > 0 && base(i - 1) && chars.get(i + 1).is_some_and(|&next| visible(next))
        }
        c if selector(c) => i > 0 && visible(chars[i - 1]),
        c => !tower_mcp_oauth::unsafe_to_display(c),
    };
    if (0..chars.len()).all(kept) {
        return std::borrow::Cow::Borrowed(line);
    }
    (0..chars.len())
        .map(|i| if kept(i) { chars[i] } else { '\u{FFFD}' })
        .collect::<String>()
        .into()
}

/// Why a connect run failed.
///
/// ```
/// use connect::ConnectError;
/// use tower_mcp_oauth::{Error, ErrorKind};
/// let err = ConnectError::from(Error::new(ErrorKind::Transport, "connection refused"));
/// assert!(err.describe().contains("kind: Transport"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The layer (authorization, the loopback receiver, the store) or the transport under it
    /// failed: its [`kind`](Error::kind) and [`report`](Error::report) say why.
    Auth(Error),
    /// The server was reached (and authorized the client) but did not answer as an MCP server.
    Protocol(String),
}

impl From<Error> for ConnectError {
    fn from(e: Error) -> Self {
        Self::Auth(e)
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auth(e) => e.fmt(f),
            Self::Protocol(message) => write!(f, "MCP protocol error: {message}"),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Auth(e) => Some(e),
            Self::Protocol(_) => None,
        }
    }
}

impl ConnectError {
    /// What to print: the error with its whole cause chain, its kind, the server's OAuth error if any,
    /// and the discovery report (every URL the authorization flow tried).
    pub fn describe(&self) -> String {
        // `{:#}`: the kind, the message and every cause, on one line.
        let mut out = format!("error: {self:#}\n");
        let Self::Auth(e) = self else {
            out.push_str("kind: MCP protocol (the server was reached and authorized)\n");
            return out;
        };
        let transient = if e.is_transient() {
            ", transient: try again"
        } else {
            ""
        };
        out.push_str(&format!("kind: {:?} ({}){transient}\n", e.kind(), e.kind()));
        if let Some(status) = e.status() {
            out.push_str(&format!("HTTP status: {status}\n"));
        }
        match e.report().filter(|r| !r.steps().is_empty()) {
            Some(report) => {
                out.push_str("discovery report (every URL the flow tried):\n");
                out.push_str(&report.to_string());
            }
            None => out.push_str(
                "discovery report: empty (the request failed before any authorization flow ran)\n",
            ),
        }
        out
    }
}

/// Logs in to `options.url` and lists its tools, through `client` wrapped in [`OAuthLayer`].
///
/// Progress and the authorization URL go to `console.err`, each tool to `console.out`. Tokens
/// and the client registration are kept in a [`FileStore`] in `options.store_dir` (or
/// [`default_store_dir`]), so the next run needs no browser.
///
/// ```no_run
/// use std::sync::Arc;
/// use connect::{run, Options, Stdio};
/// # async fn example() -> Result<(), connect::ConnectError> {
/// let mut options = Options::new("http://127.0.0.1:3000/mcp");
/// options.open_browser = false;
/// let tools = run(&options, Arc::new(Stdio), connect::https_client()).await?;
/// println!("{} tools", tools.len());
/// # Ok(()) }
/// ```
pub async fn run<C>(
    options: &Options,
    console: Arc<dyn Console>,
    client: Client<C, OAuthBody<Full<Bytes>>>,
) -> Result<Vec<Tool>, ConnectError>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let (store, store_dir) = open_store(options)?;
    let announced = Arc::new(AtomicBool::new(false));
    let layer = if options.device {
        device_layer(options, &console, &announced)?
    } else {
        let receiver = bind_receiver(options, &console, &announced).await?;
        let config = client_config(options, receiver.redirect_uri())?;
        OAuthLayer::new(config, receiver)
    };
    // Flows run to their end on tokio even if this command is interrupted mid-refresh.
    let layer = layer
        .token_store(store)
        .request_timeout(options.request_timeout)
        .spawn_flows_with(|flow| {
            tokio::spawn(flow);
        });
    let service = ServiceBuilder::new().layer(layer).service(client);

    console.err(&format!(
        "Connecting to {} (tokens in {})",
        options.url,
        store_dir.display()
    ));
    let (mut session, server) =
        mcp::Session::initialize(service, &options.url, CLIENT_NAME).await?;
    if announced.load(Ordering::SeqCst) {
        console.err("Authorized; the tokens are stored for the next run.");
    }
    console.err(&format!(
        "Connected to {} {} (MCP {})",
        server.name, server.version, server.protocol_version
    ));
    let tools = session.list_tools().await;
    session.close().await;
    let tools = tools?;
    console.err(&format!("{} tool(s):", tools.len()));
    for tool in &tools {
        match &tool.description {
            Some(description) => console.out(&format!("{}\t{description}", tool.name)),
            None => console.out(&tool.name),
        }
    }
    Ok(tools)
}

/// The [`FileStore`] in `options.store_dir`, else in [`default_store_dir`].
fn open_store(options: &Options) -> Result<(FileStore, PathBuf), Error> {
    let dir = options
        .store_dir
        .clone()
        .or_else(default_store_dir)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Store,
                "no token store directory (XDG_STATE_HOME and HOME are unset): pass --store DIR",
            )
        })?;
    let store = FileStore::new(&dir).map_err(|e| {
        let message = format!("cannot create the token store {}: {e}", dir.display());
        Error::new(ErrorKind::Store, message).with_source(e)
    })?;
    Ok((store, dir))
}

/// The loopback receiver; it prints the authorization URL through `console` and records in
/// `announced` that it did.
async fn bind_receiver(
    options: &Options,
    console: &Arc<dyn Console>,
    announced: &Arc<AtomicBool>,
) -> Result<LoopbackReceiver, Error> {
    let host = if options.localhost {
        LoopbackHost::Localhost
    } else {
        LoopbackHost::Ipv4
    };
    let intro = if options.open_browser {
        "Opening the browser to authorize; if it does not open, visit this URL:"
    } else {
        "Open this URL in a browser to authorize:"
    };
    let (console, announced) = (Arc::clone(console), Arc::clone(announced));
    LoopbackReceiver::builder()
        .host(host)
        .port(options.port)
        .timeout(options.callback_timeout)
        .open_browser(options.open_browser)
        .on_authorization_url(move |url| {
            announced.store(true, Ordering::SeqCst);
            console.err(intro);
            // On a line of its own, so it can be copied, clicked, or read by a script.
            console.err(url.as_str());
        })
        .bind()
        .await
}

/// The layer for `--device` (RFC 8628): no receiver and no browser; the URL to open on another
/// device and the code to enter there are printed, and the layer polls until the user approves,
/// for as long as `--timeout` allows.
fn device_layer(
    options: &Options,
    console: &Arc<dyn Console>,
    announced: &Arc<AtomicBool>,
) -> Result<OAuthLayer, Error> {
    // Never redirected to; registered only because dynamic registration asks for one, and
    // fixed so a stored registration is found again on the next run.
    let config = client_config(options, DEVICE_REDIRECT_URI)?;
    let (console, announced) = (Arc::clone(console), Arc::clone(announced));
    let prompt = move |code: &UserCode| {
        announced.store(true, Ordering::SeqCst);
        console.err("To authorize, open this URL on any device with a browser:");
        // On a line of its own, as the browser flow prints its URL.
        console.err(
            code.verification_uri_complete
                .as_deref()
                .unwrap_or(&code.verification_uri),
        );
        console.err(&format!(
            "and confirm the code {} (valid for {} s). Waiting…",
            code.user_code,
            code.expires_in.as_secs()
        ));
    };
    Ok(OAuthLayer::new(config, HeadlessAuthorizer::new())
        .device_authorization(prompt)
        .consent_timeout(options.callback_timeout))
}

/// The redirect URI a `--device` client registers (RFC 7591 asks for one; it is never used).
///
/// ```
/// assert!(connect::DEVICE_REDIRECT_URI.starts_with("http://127.0.0.1"));
/// ```
pub const DEVICE_REDIRECT_URI: &str = "http://127.0.0.1/device-grant-unused";

/// The client's configuration: the receiver's redirect URI, the per-server options of the
/// parameter flags, and the pre-registered client if one was given (else the layer registers
/// one, RFC 7591, and keeps it in the store).
fn client_config(options: &Options, redirect_uri: &str) -> Result<ClientConfig, Error> {
    let mut config = ClientConfig::new(redirect_uri).client_name(CLIENT_NAME);
    if let Some(server) = options.server_options()? {
        config = config.server(server);
    }
    Ok(match &options.client_id {
        Some(id) => {
            let mut client = PreRegisteredClient::new(id);
            if let Some(secret) = &options.client_secret {
                client = client.with_secret(secret);
            }
            if let Some(issuer) = &options.issuer {
                client = client.for_issuer(issuer);
            }
            config.pre_registered(client)
        }
        None => config,
    })
}

/// The whole command: parses `args` (without the program name), runs [`run`] over plain HTTP,
/// prints a failure with [`ConnectError::describe`], and returns the exit code: `0` success,
/// `1` failure, `2` a usage error.
///
/// ```
/// use std::sync::Arc;
/// use connect::{cli, Stdio};
/// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// assert_eq!(runtime.block_on(cli(["--bogus".to_string()], Arc::new(Stdio))), 2);
/// ```
pub async fn cli(args: impl IntoIterator<Item = String>, console: Arc<dyn Console>) -> u8 {
    let args: Vec<String> = args.into_iter().collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        HELP.lines().for_each(|l| console.out(l));
        return 0;
    }
    let options = match Options::parse(args) {
        Ok(options) => options,
        Err(e) => {
            e.to_string().lines().for_each(|l| console.err(l));
            return 2;
        }
    };
    if let Err(why) = check_url(&options.url) {
        console.err(&why);
        console.err(USAGE);
        return 2;
    }
    let result = if options.status {
        status(&options, Arc::clone(&console)).await.map(|_| ())
    } else if options.logout {
        logout(&options, Arc::clone(&console), crate::https_client())
            .await
            .map(|_| ())
    } else {
        run(&options, Arc::clone(&console), crate::https_client())
            .await
            .map(|_| ())
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            e.describe().lines().for_each(|l| console.err(l));
            1
        }
    }
}

/// The URL must be absolute `http` or `https`.
fn check_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http" | "https"), Some(_)) => Ok(()),
        _ => Err(format!(
            "{url:?} is not an absolute http:// or https:// URL"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absolute_http_urls() {
        assert!(check_url("http://127.0.0.1:3000/mcp").is_ok());
        assert!(check_url("https://mcp.example.com/mcp").is_ok());
        for bad in ["/mcp", "mcp.example.com", "ftp://x/y", "http://"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn describe_names_kind_cause_and_report() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err =
            ConnectError::from(Error::new(ErrorKind::Transport, "request failed").with_source(io));
        let text = err.describe();
        assert!(
            text.starts_with("error: transport error: request failed: refused\n"),
            "{text}"
        );
        assert!(
            text.contains("kind: Transport (transport error), transient"),
            "{text}"
        );
        assert!(text.contains("discovery report: empty"), "{text}");
        let protocol = ConnectError::Protocol("no tools".into()).describe();
        assert!(protocol.contains("kind: MCP protocol"), "{protocol}");
    }
}
