//! A request URL that carries credentials (`http://user:password@host/mcp`): the password
//! reaches neither the logs, nor an error's `Display` or `Debug`, nor the authorization server
//! (the `resource` it is sent names the server without them).

mod support;

use support::logs::capture;

use mcp_oauth_testkit::{Testkit, TestkitConfig};
use serde_json::json;
use support::{http_client, jsonrpc};
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_oauth::{ClientConfig, ErrorKind, HeadlessAuthorizer, OAuthLayer};

const PASSWORD: &str = "hunter2-in-the-url";

#[tokio::test(flavor = "current_thread")]
async fn credentials_in_the_request_url_are_never_logged_or_sent_on() {
    let (captured, _guard) = capture(tracing::Level::TRACE);
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let layer = OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        HeadlessAuthorizer::new(),
    );
    let service = ServiceBuilder::new().layer(layer).service(http_client());
    let url = kit
        .resource_url()
        .replacen("http://", &format!("http://user:{PASSWORD}@"), 1);
    let response = service
        .clone()
        .oneshot(jsonrpc(&url, 1, "tools/list", json!({})))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The authorization server was told of the server without them.
    let resources: Vec<String> = kit
        .requests()
        .iter()
        .filter_map(|r| r.form_param("resource"))
        .collect();
    assert!(!resources.is_empty());
    assert!(
        resources.iter().all(|r| r == &kit.resource_url()),
        "{resources:?}"
    );

    // A request that cannot be sent: its error names the server without them.
    let closed = format!("http://user:{PASSWORD}@127.0.0.1:1/mcp");
    let error = service
        .oneshot(jsonrpc(&closed, 2, "tools/list", json!({})))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport, "{error:#}");
    let shown = format!("{error} {error:#} {error:?}");
    assert!(shown.contains("127.0.0.1:1"), "{shown}");
    assert!(!shown.contains(PASSWORD), "{shown}");

    let logs = captured.text();
    assert!(logs.contains("oauth_flow"), "the flow was logged:\n{logs}");
    // hyper-util logs the caller's URI in its connection pool's key at TRACE, as it does for a
    // bare client: that is the client's own message, after its target. The layer's lines,
    // and its spans' fields (printed before the target of every line logged inside them),
    // must not carry it.
    for line in logs.lines().filter(|l| l.contains(PASSWORD)) {
        let (at, _) = line.match_indices(PASSWORD).next().unwrap();
        let hyper = [" hyper_util::", " hyper::"]
            .iter()
            .filter_map(|target| line.find(target))
            .min();
        assert!(
            hyper.is_some_and(|target| target < at),
            "the layer logged the password: {line}"
        );
    }
}
