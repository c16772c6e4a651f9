//! Log in to an MCP server through the browser, keep the tokens, and list its tools.
//!
//! ```text
//! cargo run -p connect -- <mcp-url> [--no-browser] [--port N] [--localhost]
//!     [--client-id ID [--client-secret S]] [--store DIR] [--timeout SECS]
//!     [--authorize-param K=V]... [--token-param K=V]... [--require-refresh-token]
//!     [--refresh-scope always|never|retry] [--logout [--forget-client]] [--status]
//!     [--request-timeout SECS] [--device] [--preset NAME [--audience A]]
//! cargo run -p connect -- --help   # each flag with one line on what it does
//! cargo run -p connect        # no URL: against the in-process testkit, twice
//! ```
//!
//! `--authorize-param` and `--token-param` (repeatable) add a parameter to the authorization
//! request, or to the token and refresh requests, for this server (`access_type=offline` for
//! Google, `audience=…` for Auth0); `K=` with no value removes one the flow sends by default
//! (`resource=` for Entra ID v2). The parameters the flow's security rests on (`state`, PKCE,
//! `redirect_uri`, `client_id`, the grant, client credentials) are refused. With
//! `--require-refresh-token`, a login that yields no refresh token fails and stores nothing.
//! `--preset NAME` sets the compatibility switches a well-known authorization server needs:
//! `entra` (no `resource`, `offline_access`, scope on refresh), `auth0` (its `audience`, from
//! `--audience A` or `--token-param audience=A`, and `offline_access`), `google`
//! (`access_type=offline` with `prompt=consent`), `github` (no scope on refresh, scopes read
//! comma-separated), `okta` and `keycloak` (`offline_access`); `--audience A` alone sends
//! Auth0's `audience`. `--refresh-scope` says what a refresh does with `scope`: `always`
//! (the default), `never` (Salesforce refuses it), or `retry` (send it, and on `invalid_scope`
//! once more without); it overrides a preset's choice.
//! `--logout` revokes the stored refresh and access tokens at the authorization server (RFC
//! 7009), forgets them, prints what was revoked, and exits 0 once they are gone locally; with
//! `--forget-client` it also forgets the client registration kept for that issuer.
//! `--status` prints what the store holds for the server (connected or not, issuer, scopes,
//! when the access token expires, whether a refresh token is held), without a browser or a
//! request, and exits 0.
//!
//! The first run prints the authorization URL on a line of its own (and opens the browser
//! unless `--no-browser`), waits up to `--timeout` seconds (default 300) for the browser to
//! come back to the loopback receiver (a callback whose `state` is not the pending one ends the
//! run at once), bounds each request of the authorization flow by `--request-timeout` seconds
//! (default 30, the response body included), and stores the tokens in `--store` (default
//! `$XDG_STATE_HOME/tower-mcp-oauth`, else `$HOME/.local/state/tower-mcp-oauth`). The next run
//! with the same store logs in silently. On failure it prints the error, its kind and the
//! discovery report, and exits with 1 (2 for a usage error).
//!
//! Without arguments it starts the testkit's servers in-process and connects to them twice
//! with a temporary store: the first run logs in (a stand-in browser opens the printed URL;
//! the testkit approves at once), the second uses the stored tokens. `https://` servers are
//! reached through rustls with the webpki root certificates; `http://` only makes sense for a
//! local development server (the layer refuses plain HTTP to any other host's OAuth endpoints).
//!
//! The logic lives in the library half of this package (src/lib.rs), where the tests drive it.

use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use connect::{cli, Console, Stdio};
use http::header::LOCATION;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mcp_oauth_testkit::{Testkit, TestkitConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        return demo().await;
    }
    ExitCode::from(cli(args, Arc::new(Stdio)).await)
}

/// The demo: the command twice against the testkit, sharing a temporary token store.
async fn demo() -> ExitCode {
    let (kit, store) = match (
        Testkit::start(TestkitConfig::default()).await,
        tempfile::tempdir(),
    ) {
        (Ok(kit), Ok(store)) => (kit, store),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("cannot start the demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let url = kit.resource_url();
    eprintln!("No MCP URL given: connecting to the in-process testkit at {url}.");
    for (title, args) in [
        (
            "first run: log in through the (stand-in) browser",
            ["--no-browser"],
        ),
        (
            "second run: the stored tokens, no browser",
            ["--no-browser"],
        ),
    ] {
        eprintln!("\n== {title} ==");
        let mut argv = vec![
            url.clone(),
            "--store".into(),
            store.path().display().to_string(),
        ];
        argv.extend(args.map(String::from));
        let code = cli(argv, Arc::new(StandInBrowser)).await;
        if code != 0 {
            return ExitCode::from(code);
        }
    }
    ExitCode::SUCCESS
}

/// Prints like [`Stdio`], and plays the user: opens every authorization URL printed.
struct StandInBrowser;

impl Console for StandInBrowser {
    fn out(&self, line: &str) {
        Stdio.out(line);
    }
    fn err(&self, line: &str) {
        Stdio.err(line);
        if line.starts_with("http://") && !line.contains(' ') {
            tokio::spawn(browse(line.to_owned()));
        }
    }
}

/// Follows redirects as a browser would: the testkit's authorization endpoint approves at once
/// and redirects to the loopback receiver, which answers with its "close this window" page.
async fn browse(mut url: String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    for _ in 0..5 {
        let Ok(uri) = url.parse() else { return };
        let Ok(response) = client.get(uri).await else {
            return;
        };
        match response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
        {
            Some(location) => url = location.to_owned(),
            None => return,
        }
    }
}
