//! `connect --logout`: revoke at the authorization server (RFC 7009), forget locally, exit 0
//! once the local state is gone; the next run logs in through the browser again.

mod support;

use mcp_oauth_testkit::{Testkit, TestkitConfig};
use support::{approve, count, get, revoking_kit, store_args, Run};

async fn login(args: &[&str]) {
    let mut run = Run::start(args);
    get(&approve(&run.next_url().await).await).await;
    let (code, _, err) = run.finish().await;
    assert_eq!(code, 0, "{err:#?}");
}

#[tokio::test]
async fn logout_revokes_both_tokens_and_the_next_run_logs_in_again() {
    let (kit, store) = revoking_kit().await;
    let url = kit.resource_url();
    let args = store_args(&url, &store);
    login(&args).await;

    let mut logout_args = args.clone();
    logout_args.push("--logout");
    let (code, out, err) = Run::start(&logout_args).finish().await;
    assert_eq!(code, 0, "{err:#?}");
    assert!(out.is_empty());
    assert!(
        err.contains(&"refresh token: revoked".to_owned()),
        "{err:#?}"
    );
    assert!(
        err.contains(&"access token: revoked".to_owned()),
        "{err:#?}"
    );
    assert_eq!(count(&kit, "/revoke"), 2);

    // Logged out twice: nothing left to do.
    let (code, _, err) = Run::start(&logout_args).finish().await;
    assert_eq!(code, 0);
    assert!(
        err.iter().any(|l| l.starts_with("No tokens stored")),
        "{err:#?}"
    );

    login(&args).await;
    assert_eq!(count(&kit, "/authorize"), 2);
}

#[tokio::test]
async fn without_a_revocation_endpoint_logout_still_forgets_and_says_so() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let store = tempfile::tempdir().unwrap();
    let url = kit.resource_url();
    let args = store_args(&url, &store);
    login(&args).await;
    let mut logout_args = args.clone();
    logout_args.push("--logout");
    let (code, _, err) = Run::start(&logout_args).finish().await;
    assert_eq!(code, 0, "{err:#?}");
    assert!(
        err.iter().any(
            |l| l.starts_with("access token: not revoked") && l.contains("revocation_endpoint")
        ),
        "{err:#?}"
    );
    login(&args).await;
    assert_eq!(count(&kit, "/authorize"), 2);
}

#[tokio::test]
async fn forget_client_also_drops_the_registration_so_the_next_login_registers_again() {
    let (kit, store) = revoking_kit().await;
    let url = kit.resource_url();
    let args = store_args(&url, &store);
    login(&args).await;
    assert_eq!(count(&kit, "/register"), 1);

    // A plain logout keeps the registration: the next login reuses it.
    let mut logout_args = args.clone();
    logout_args.push("--logout");
    assert_eq!(Run::start(&logout_args).finish().await.0, 0);
    login(&args).await;
    assert_eq!(count(&kit, "/register"), 1);

    logout_args.push("--forget-client");
    let (code, _, err) = Run::start(&logout_args).finish().await;
    assert_eq!(code, 0, "{err:#?}");
    assert!(
        err.contains(&format!(
            "Forgot the client registration at {}.",
            kit.issuer()
        )),
        "{err:#?}"
    );
    login(&args).await;
    assert_eq!(count(&kit, "/register"), 2, "registered afresh");
    assert_eq!(count(&kit, "/authorize"), 3);
}
