//! A web app that connects each of its users to an MCP server with their own tokens: the split
//! start/complete API of `tower_mcp_oauth::web` behind axum. Everything runs in this process
//! (the testkit's MCP and authorization servers, then the app), so no network is needed.
//!
//! ```text
//! cargo run -p webapp
//! ```
//!
//! Open the printed URL, click "Connect" (the testkit's authorization server approves at
//! once and sends the browser back), and the tools page lists the server's tools, called with
//! your own token. Another browser (or a private window) is another user.

use mcp_oauth_testkit::{Testkit, TestkitConfig};
use webapp::WebApp;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let kit = Testkit::start(TestkitConfig::default()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = WebApp::new(&base, &kit.resource_url());
    println!("MCP server:    {}", kit.resource_url());
    println!("authorization: {}", kit.issuer());
    println!("web app:       {base}/   (Ctrl-C to stop)");
    axum::serve(listener, app.router()).await?;
    Ok(())
}
