//! Several authorization servers in the protected resource metadata (issue 9, item 6), over
//! loopback TCP: the first with broken metadata is passed over for the second; all broken is
//! one typed error whose report lists each; a chooser picks the second; client registrations
//! and tokens stay per issuer.

mod support;

use std::sync::Arc;

use mcp_oauth_testkit::fault::{Fault, Step};
use mcp_oauth_testkit::{Testkit, TestkitConfig};
use tower::ServiceExt;
use tower_mcp_oauth::{
    ClientConfig, ErrorKind, HeadlessAuthorizer, MemoryStore, OAuthLayer, TokenStore,
};

use support::jsonrpc;
use support::lifecycle::{call, count, service, REDIRECT};

/// The MCP server (`kit`) lists `first`'s issuer, then its own.
async fn two_servers() -> (Testkit, Testkit) {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let first = Testkit::start(TestkitConfig::default()).await.unwrap();
    kit.set_prm_authorization_servers(&[&first.issuer(), &kit.issuer()]);
    (kit, first)
}

fn layer(store: &Arc<MemoryStore>) -> OAuthLayer {
    OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .token_store(Arc::clone(store))
}

#[tokio::test]
async fn the_first_server_broken_the_second_is_used() {
    let (kit, first) = two_servers().await;
    first.inject_fault(Step::AuthorizationServerMetadata, Fault::MalformedBody);
    let store = Arc::new(MemoryStore::new());
    assert_eq!(
        call(&service(layer(&store)), &kit, "tools/list")
            .await
            .status(),
        200
    );
    assert!(
        first.reached(Step::AuthorizationServerMetadata),
        "tried first"
    );
    assert_eq!(count(&first, "/register") + count(&first, "/authorize"), 0);
    let tokens = store
        .load_tokens(&kit.resource_url())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tokens.issuer(), kit.issuer());
    assert!(store.load_client(&kit.issuer()).await.unwrap().is_some());
    assert!(store.load_client(&first.issuer()).await.unwrap().is_none());
    // The report of this flow, naming the server passed over and why, is checked in
    // authorization_servers_report.rs (it reads the log, so it needs a binary of its own).
}

#[tokio::test]
async fn every_server_broken_is_one_error_listing_each() {
    let (kit, first) = two_servers().await;
    first.inject_fault(Step::AuthorizationServerMetadata, Fault::ServerError);
    kit.inject_fault(Step::AuthorizationServerMetadata, Fault::MalformedBody);
    let store = Arc::new(MemoryStore::new());
    let err = service(layer(&store))
        .oneshot(jsonrpc(
            &kit.resource_url(),
            1,
            "tools/list",
            serde_json::json!({}),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoUsableAuthorizationServer, "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&first.issuer()) && text.contains(&kit.issuer()),
        "{text}"
    );
    let report = err.report().expect("the discovery report").to_string();
    assert!(
        report.contains(&format!("{}  (passed over: ", first.issuer())),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "{}/.well-known/oauth-authorization-server",
            kit.issuer()
        )),
        "{report}"
    );
}

#[tokio::test]
async fn a_chooser_picks_the_second_and_credentials_stay_per_issuer() {
    let (kit, first) = two_servers().await;
    let store = Arc::new(MemoryStore::new());
    let second_only = layer(&store).choose_authorization_server(|listed: &[url::Url]| {
        assert_eq!(listed.len(), 2);
        vec![listed[1].clone()]
    });
    assert_eq!(
        call(&service(second_only), &kit, "tools/list")
            .await
            .status(),
        200
    );
    assert!(
        !first.reached(Step::AuthorizationServerMetadata),
        "never asked"
    );
    let second_client = store.load_client(&kit.issuer()).await.unwrap().unwrap();
    assert!(store.load_client(&first.issuer()).await.unwrap().is_none());

    // Another layer on the same store that chooses the first: it registers there anew, and
    // the second server's registration is untouched.
    let held = store.load_tokens(&kit.resource_url()).await.unwrap();
    store
        .compare_and_swap_tokens(&kit.resource_url(), held.as_ref(), None)
        .await
        .unwrap();
    let first_only =
        layer(&store).choose_authorization_server(|listed: &[url::Url]| vec![listed[0].clone()]);
    assert_eq!(
        call(&service(first_only), &kit, "tools/list")
            .await
            .status(),
        200
    );
    let first_client = store.load_client(&first.issuer()).await.unwrap().unwrap();
    // Each registration is bound to its own issuer (the testkits number their clients alike,
    // so the issuer is what tells them apart).
    assert_eq!(first_client.issuer, first.issuer());
    assert_eq!(second_client.issuer, kit.issuer());
    assert_eq!(count(&first, "/register"), 1);
    assert_eq!(
        store
            .load_client(&kit.issuer())
            .await
            .unwrap()
            .unwrap()
            .client_id,
        second_client.client_id
    );
    let tokens = store
        .load_tokens(&kit.resource_url())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tokens.issuer(), first.issuer());
}

/// An authorization server that does not answer at all (nothing listens there) is passed over
/// like one that answers badly.
#[tokio::test]
async fn a_first_server_that_does_not_answer_is_passed_over() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let nobody = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    kit.set_prm_authorization_servers(&[&nobody, &kit.issuer()]);
    let store = Arc::new(MemoryStore::new());
    assert_eq!(
        call(&service(layer(&store)), &kit, "tools/list")
            .await
            .status(),
        200
    );
    let tokens = store
        .load_tokens(&kit.resource_url())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tokens.issuer(), kit.issuer());
}
