//! `mcp-oauth-conformance`: the client the official MCP conformance harness
//! (`@modelcontextprotocol/conformance`) drives.
//!
//! The harness runs `mcp-oauth-conformance <server-url>` (the URL is the last argument) with:
//! - `MCP_CONFORMANCE_SCENARIO`: the scenario name, logged only;
//! - `MCP_CONFORMANCE_CONTEXT`: optional JSON; `client_id`, `client_secret`, `private_key_pem`
//!   and `issuer` become a pre-registered client (bound to any issuer when the context names
//!   none); `idp_*` an enterprise IdP and the user's ID token, `valid_jwt` a workload identity
//!   token;
//! - `MCP_CONFORMANCE_PROTOCOL_VERSION`: the MCP wire to speak (default `2025-11-25`).
//!
//! All of the authorization is done by [`tower_mcp_oauth::OAuthLayer`]; this binary only maps the
//! environment onto its configuration and speaks MCP (see [`mcp`]) through the layered client.
//!
//! Exit status: 0 when `tools/list` and `tools/call` succeeded, 1 on any error, 2 when the run
//! took longer than 60 s.

mod mcp;

use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tower_mcp_oauth::grants::{AssertionRequest, EnterpriseIdp};
use tower_mcp_oauth::{
    BoxError, ClientConfig, ClientKey, HeadlessAuthorizer, OAuthBody, OAuthLayer,
    PreRegisteredClient,
};

use crate::mcp::{Session, SessionError};

/// The redirect URI registered and sent in authorization requests; nothing listens on it, the
/// headless authorizer reads the code from the authorization endpoint's redirect.
const REDIRECT_URI: &str = "http://localhost:3000/callback";
/// The client name, used for registration and as MCP `clientInfo.name`.
const CLIENT_NAME: &str = "mcp-oauth-conformance";
/// The Client ID Metadata Document URL the harness expects when the AS supports CIMD.
const CLIENT_METADATA_DOCUMENT: &str = "https://conformance-test.local/client-metadata.json";
/// The wire used when `MCP_CONFORMANCE_PROTOCOL_VERSION` is unset.
const DEFAULT_PROTOCOL_VERSION: &str = "2025-11-25";
/// The whole run is abandoned (exit 2) after this long.
const SELF_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match tokio::time::timeout(SELF_TIMEOUT, run()).await {
        Ok(Ok(())) => {
            eprintln!("conformance client: done");
            ExitCode::SUCCESS
        }
        Ok(Err(message)) => {
            eprintln!("conformance client: error: {message}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!(
                "conformance client: gave up after {} s",
                SELF_TIMEOUT.as_secs()
            );
            ExitCode::from(2)
        }
    }
}

/// Reads the arguments and environment, builds the layered client and runs the MCP session.
async fn run() -> Result<(), String> {
    let url = std::env::args()
        .skip(1)
        .last()
        .ok_or("usage: mcp-oauth-conformance <server-url>")?;
    let url: Uri = url
        .parse()
        .map_err(|error| format!("bad server URL {url:?}: {error}"))?;
    let scenario = std::env::var("MCP_CONFORMANCE_SCENARIO").unwrap_or_default();
    let version = std::env::var("MCP_CONFORMANCE_PROTOCOL_VERSION")
        .ok()
        .filter(|version| !version.is_empty())
        .unwrap_or_else(|| DEFAULT_PROTOCOL_VERSION.to_owned());
    let context = match std::env::var("MCP_CONFORMANCE_CONTEXT") {
        Ok(json) => serde_json::from_str(&json)
            .map_err(|error| format!("MCP_CONFORMANCE_CONTEXT is not JSON: {error}"))?,
        Err(_) => Value::Null,
    };
    eprintln!("conformance client: scenario {scenario:?}, protocol {version}, server {url}");

    let mut config = ClientConfig::new(REDIRECT_URI)
        .client_name(CLIENT_NAME)
        .client_metadata_document(CLIENT_METADATA_DOCUMENT);
    if let Some(client) = pre_registered(&context) {
        config = config.pre_registered(client);
    }
    let layer = assertion_grant(OAuthLayer::new(config, HeadlessAuthorizer::new()), &context);
    let client: Client<HttpConnector, OAuthBody<Full<Bytes>>> =
        Client::builder(TokioExecutor::new()).build_http();
    let service = tower::ServiceBuilder::new().layer(layer).service(client);

    let mut session = Session::new(service, url, &version, CLIENT_NAME);
    session.run().await.map_err(|error| match error {
        SessionError::Service { method, error } => {
            format!("{method}: {error} (kind {:?})", error.kind())
        }
        other => other.to_string(),
    })
}

/// The assertion grant the context describes: the enterprise IdP and the user's ID token
/// (`idp_token_endpoint`, `idp_client_id`, `idp_id_token`: SEP-990), or the workload's identity
/// token (`valid_jwt`: SEP-1933). The tokens are handed over as the application's sources;
/// everything else is the layer's.
fn assertion_grant(layer: OAuthLayer, context: &Value) -> OAuthLayer {
    let field = |name: &str| context.get(name).and_then(Value::as_str).map(str::to_owned);
    if let (Some(endpoint), Some(id_token)) = (field("idp_token_endpoint"), field("idp_id_token")) {
        let mut idp = EnterpriseIdp::new(endpoint);
        if let Some(client_id) = field("idp_client_id") {
            idp = idp.client_id(client_id);
        }
        return layer.enterprise_managed(
            idp,
            move |_: &AssertionRequest| -> Result<String, BoxError> { Ok(id_token.clone()) },
        );
    }
    if let Some(jwt) = field("valid_jwt") {
        return layer.workload_identity(move |_: &AssertionRequest| -> Result<String, BoxError> {
            Ok(jwt.clone())
        });
    }
    layer
}

/// The pre-registered client described by the context's `client_id`, `client_secret` and
/// `issuer`, if it has a `client_id`; with no `issuer`, usable with any (see
/// `PreRegisteredClient::any_issuer`).
fn pre_registered(context: &Value) -> Option<PreRegisteredClient> {
    let field = |name: &str| context.get(name).and_then(Value::as_str);
    let mut client = PreRegisteredClient::new(field("client_id")?);
    if let Some(secret) = field("client_secret") {
        client = client.with_secret(secret);
    }
    if let Some(pem) = field("private_key_pem") {
        match ClientKey::from_pkcs8_pem(pem) {
            Ok(key) => client = client.with_private_key(key),
            Err(e) => eprintln!("conformance client: ignoring the context's private key: {e}"),
        }
    }
    client = match field("issuer") {
        Some(issuer) => client.for_issuer(issuer),
        // Most of the harness's contexts (every one before 0.2.0; in 0.2.0-alpha.12 the client
        // credentials, enterprise-managed and workload identity ones) give credentials and no
        // issuer, for the one authorization server each scenario runs: they are its, whichever
        // it is.
        None => client.any_issuer(),
    };
    Some(client)
}
