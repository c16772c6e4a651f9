//! The discovery report of a flow that succeeded after passing over a broken authorization
//! server names that server and why (issue 9, item 6). The layer logs the report at `debug`
//! when tokens are obtained, as it does after a failure. A test binary of its own: tracing's
//! callsite interest is process-wide, and tests running beside it without a subscriber would
//! race it.

mod support;

use support::logs::capture;

use std::sync::Arc;

use mcp_oauth_testkit::fault::{Fault, Step};
use mcp_oauth_testkit::{Testkit, TestkitConfig};
use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, MemoryStore, OAuthLayer, TokenStore};

use support::lifecycle::{call, service, REDIRECT};

#[tokio::test(flavor = "current_thread")]
async fn the_report_of_a_success_lists_the_server_passed_over_and_why() {
    let (captured, _guard) = capture(tracing::Level::DEBUG);

    // The MCP server lists `first` (whose metadata is not JSON), then its own issuer.
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let first = Testkit::start(TestkitConfig::default()).await.unwrap();
    kit.set_prm_authorization_servers(&[&first.issuer(), &kit.issuer()]);
    first.inject_fault(Step::AuthorizationServerMetadata, Fault::MalformedBody);
    let store = Arc::new(MemoryStore::new());
    let layer = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .token_store(Arc::clone(&store));
    assert_eq!(
        call(&service(layer), &kit, "tools/list").await.status(),
        200
    );
    let tokens = store.load_tokens(&kit.resource_url()).await.unwrap();
    assert_eq!(tokens.unwrap().issuer(), kit.issuer());

    let logs = captured.text();
    let report = logs
        .split("discovery report:")
        .nth(1)
        .unwrap_or_else(|| panic!("no discovery report logged: {logs}"));
    let passed_over = report
        .lines()
        .find(|l| l.contains(&format!("{}  (passed over: ", first.issuer())))
        .unwrap_or_else(|| panic!("the first server is not listed as passed over: {report}"));
    // Why: its metadata does not parse; and where the flow went instead.
    assert!(
        passed_over.contains("metadata is not valid"),
        "{passed_over}"
    );
    assert!(
        passed_over.contains(&format!("trying {}", kit.issuer())),
        "{passed_over}"
    );
    assert!(
        report.contains(&format!(
            "{}/.well-known/oauth-authorization-server",
            kit.issuer()
        )),
        "{report}"
    );
}
