//! `--status`: what is stored for one server (connected or not, issuer, scopes, expiry,
//! refresh token), read from the store alone: no browser, no request.

use std::sync::Arc;
use std::time::SystemTime;

use tower_mcp_oauth::{HeadlessAuthorizer, OAuthLayer, ServerStatus};

use crate::{client_config, open_store, ConnectError, Console, Options};

/// Reads the status of `options.url` from the store and prints it to `console.out`, one
/// `name: value` line each. The last error is the one the store kept from an earlier run (it
/// is written when a flow fails and cleared when one succeeds); the line appears only when
/// there is one.
///
/// ```
/// use std::sync::Arc;
/// use connect::{status, Options, Stdio};
/// let dir = tempfile::tempdir().unwrap();
/// let mut options = Options::new("http://127.0.0.1:3000/mcp");
/// options.store_dir = Some(dir.path().into());
/// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// let status = runtime.block_on(status(&options, Arc::new(Stdio))).unwrap();
/// assert!(!status.connected && status.issuer.is_none());
/// ```
pub async fn status(
    options: &Options,
    console: Arc<dyn Console>,
) -> Result<ServerStatus, ConnectError> {
    let (store, store_dir) = open_store(options)?;
    // No authorization happens here: the redirect URI is never used.
    let config = client_config(options, "http://127.0.0.1/callback")?;
    let layer = OAuthLayer::new(config, HeadlessAuthorizer::new()).token_store(store);
    let status = layer.status(&options.url).await?;
    for line in describe(&options.url, &status, SystemTime::now()) {
        console.out(&line);
    }
    console.out(&format!("store: {}", store_dir.display()));
    Ok(status)
}

/// The lines printed for `status` at `now`.
fn describe(url: &str, status: &ServerStatus, now: SystemTime) -> Vec<String> {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let mut lines = vec![
        format!("server: {url}"),
        format!("connected: {}", yes_no(status.connected)),
    ];
    if let Some(resource) = &status.resource {
        lines.push(format!("resource: {resource}"));
    }
    if let Some(issuer) = &status.issuer {
        lines.push(format!("issuer: {issuer}"));
    }
    if let Some(scopes) = &status.scopes {
        lines.push(format!("scopes: {scopes}"));
    }
    if let Some(at) = status.expires_at {
        lines.push(format!("access token expires: {}", relative(at, now)));
    }
    if status.resource.is_some() {
        lines.push(format!(
            "refresh token: {}",
            if status.has_refresh_token {
                "held"
            } else {
                "none"
            }
        ));
    }
    if let Some(error) = &status.last_error {
        lines.push(format!(
            "last error: {:?} {} ({})",
            error.kind,
            error.message,
            relative(error.at, now)
        ));
    }
    lines
}

/// `at` as seconds since the Unix epoch, and how far from `now`.
fn relative(at: SystemTime, now: SystemTime) -> String {
    let epoch = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match at.duration_since(now) {
        Ok(ahead) => format!("{epoch} (unix time, in {} s)", ahead.as_secs()),
        Err(behind) => format!("{epoch} (unix time, {} s ago)", behind.duration().as_secs()),
    }
}
