//! rmcp's MCP client, authorized by `OAuthLayer` through `TowerHttpClient`.
//!
//! ```text
//! cargo run --example rmcp_client                 # against the in-process testkit servers
//! cargo run --example rmcp_client -- <mcp-url>    # against a server of yours (plain http)
//! ```
//!
//! The client is rmcp's own (`().serve(transport)`); the only change from a reqwest-based rmcp
//! client is the HTTP client handed to `StreamableHttpClientTransport::with_client`. The first
//! request meets a `401`, the layer runs the whole authorization flow, and rmcp sees only the
//! answer. Consent is given by `HeadlessAuthorizer`, which works only with authorization
//! servers that approve without a user (the testkit's does); a real user needs an `Authorizer`
//! that opens a browser.

use std::error::Error;

use mcp_oauth_testkit::{ServerRole, Testkit, TestkitConfig};
use rmcp::model::CallToolRequestParams;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use tower_mcp_oauth::rmcp::TowerHttpClient;
use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer};

const REDIRECT: &str = "http://127.0.0.1:8976/callback";

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        // The whole chain in words: rmcp's error, then this crate's (its kind first).
        eprintln!("error: {}", shown(&error.to_string()));
        let mut source = error.source();
        while let Some(cause) = source {
            eprintln!("  caused by: {}", shown(&cause.to_string()));
            source = cause.source();
        }
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let (url, kit) = match std::env::args().nth(1) {
        Some(url) => {
            if url.starts_with("https:") {
                // TowerHttpClient::http is hyper-util's plain HTTP connector; this example
                // carries no TLS stack. In an application, pass a TLS connector (hyper-rustls)
                // to TowerHttpClient::with_connector.
                return Err(
                    "this example speaks plain http only; for https build the client \
                            with TowerHttpClient::with_connector and a TLS connector"
                        .into(),
                );
            }
            println!("MCP server {url}");
            println!(
                "note: consent is given by HeadlessAuthorizer, which only works with an \
                 authorization server that approves without a user\n"
            );
            (url, None)
        }
        None => {
            let kit = Testkit::start(TestkitConfig::default()).await?;
            println!(
                "no URL given: started the testkit, MCP server {}  authorization server {}\n",
                kit.resource_url(),
                kit.issuer()
            );
            (kit.resource_url(), Some(kit))
        }
    };

    let client = TowerHttpClient::http(
        ClientConfig::new(REDIRECT).client_name("tower-mcp-oauth rmcp example"),
        HeadlessAuthorizer::new(),
    );
    let transport = StreamableHttpClientTransport::with_client(
        client,
        StreamableHttpClientTransportConfig::with_uri(url.as_str()),
    );
    let mcp = ().serve(transport).await?;

    if let Some(info) = mcp.peer_info() {
        match &info.server_info {
            Some(server) => println!(
                "server:   {} {}",
                shown(&server.name),
                shown(&server.version)
            ),
            None => println!("server:   (no server info)"),
        }
        println!("protocol: {}", shown(&info.protocol_version.to_string()));
    }

    let tools = mcp.list_all_tools().await?;
    println!("tools:    {}", tools.len());
    for tool in &tools {
        let description = tool.description.as_deref().unwrap_or("");
        println!("  {}  {}", shown(&tool.name), shown(description));
    }

    if tools.iter().any(|t| t.name == "test-tool") {
        let result = mcp
            .call_tool(CallToolRequestParams::new("test-tool"))
            .await?;
        let texts: Vec<&str> = result
            .content
            .iter()
            .filter_map(|c| c.as_text())
            .map(|t| t.text.as_str())
            .collect();
        println!("test-tool answered: {texts:?}");
    }
    mcp.cancel().await?;

    if let Some(kit) = kit {
        println!("\nwhat the servers saw:");
        for request in kit.requests() {
            let role = match request.role {
                ServerRole::Resource => "MCP server",
                ServerRole::Authorization => "auth server",
            };
            let token = if request.bearer().is_some() {
                "  (Bearer token)"
            } else {
                ""
            };
            let method = request
                .json()
                .and_then(|body| body["method"].as_str().map(|m| format!("  {m}")))
                .unwrap_or_default();
            println!(
                "  {role:<11} {} {}{method}{token}",
                request.method, request.path
            );
        }
    }
    Ok(())
}

/// What a server sent, as it may reach a terminal: control characters (escape sequences that
/// move the cursor, retitle the window or write the clipboard) and the invisible characters
/// that reorder or hide text become U+FFFD (the crate's one rule: `unsafe_to_display`).
fn shown(text: &str) -> String {
    text.chars()
        .map(|c| {
            if tower_mcp_oauth::unsafe_to_display(c) {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}
