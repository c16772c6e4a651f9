//! `connect --device` end to end over loopback TCP: the command prints the URL and the code,
//! the test plays the user on another device (it approves or denies the code at the testkit),
//! and the command polls until then.

mod support;

use mcp_oauth_testkit::{DeviceConfig, Testkit, TestkitConfig, DEVICE_CODE_GRANT};
use support::{count, store_args, Run};

/// The user code in a printed `verification_uri_complete`.
fn user_code(url: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "user_code")
        .expect("the complete URI carries the code")
        .1
        .into_owned()
}

async fn device_kit() -> Testkit {
    // A 1 s interval keeps the real-time polling short.
    Testkit::start(TestkitConfig::default().device(DeviceConfig::default().interval_secs(1)))
        .await
        .unwrap()
}

#[tokio::test]
async fn device_login_prints_the_code_and_polls_until_approved_then_runs_silently() {
    let kit = device_kit().await;
    let store = tempfile::tempdir().unwrap();
    let url = kit.resource_url();
    let mut args = store_args(&url, &store);
    args.push("--device");

    let mut first = Run::start(&args);
    let shown = first.next_url().await;
    let code = user_code(&shown);
    assert!(kit.approve_user_code(&code), "the printed code is pending");
    let (exit, out, err) = first.finish().await;
    assert_eq!(exit, 0, "{err:#?}");
    assert_eq!(out, ["test-tool\tAnswers \"test\"."], "{err:#?}");
    assert!(
        err.iter()
            .any(|l| l.contains(&code) && l.contains("confirm the code")),
        "{err:#?}"
    );
    assert!(count(&kit, "/device_authorization") == 1);
    assert!(kit
        .requests()
        .iter()
        .any(|r| r.form_param("grant_type").as_deref() == Some(DEVICE_CODE_GRANT)));
    assert_eq!(count(&kit, "/authorize"), 0, "no browser flow");

    // Second run, same store: the tokens are reused; no code is shown.
    kit.clear_requests();
    let (exit, _, err) = Run::start(&args).finish().await;
    assert_eq!(exit, 0, "{err:#?}");
    assert!(
        !err.iter().any(|l| l.contains("confirm the code")),
        "{err:#?}"
    );
    assert_eq!(count(&kit, "/device_authorization"), 0);
}

#[tokio::test]
async fn a_denied_code_fails_with_authorization_denied() {
    let kit = device_kit().await;
    let store = tempfile::tempdir().unwrap();
    let url = kit.resource_url();
    let mut args = store_args(&url, &store);
    args.push("--device");
    let mut run = Run::start(&args);
    let code = user_code(&run.next_url().await);
    assert!(kit.deny_user_code(&code));
    let (exit, _, err) = run.finish().await;
    assert_eq!(exit, 1);
    let text = err.join("\n");
    assert!(text.contains("AuthorizationDenied"), "{text}");
    assert!(text.contains("access_denied"), "{text}");
}

#[tokio::test]
async fn a_server_without_the_device_grant_says_so() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let store = tempfile::tempdir().unwrap();
    let url = kit.resource_url();
    let mut args = store_args(&url, &store);
    args.push("--device");
    let (exit, _, err) = Run::start(&args).finish().await;
    assert_eq!(exit, 1);
    let text = err.join("\n");
    assert!(text.contains("GrantNotSupported"), "{text}");
    assert!(text.contains("device_authorization_endpoint"), "{text}");
}

#[test]
fn the_device_flag_parses_and_is_in_the_usage() {
    let options =
        connect::Options::parse(["http://127.0.0.1:1/mcp", "--device"].map(String::from)).unwrap();
    assert!(options.device);
    assert!(!connect::Options::new("http://127.0.0.1:1/mcp").device);
    assert!(connect::USAGE.contains("[--device]"));
}
