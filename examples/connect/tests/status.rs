//! `connect --status`: prints what the store holds for the server, without a browser or a
//! request to any server, and exits 0: not connected before a login, connected with the
//! issuer, expiry and refresh token after one, not connected again after `--logout`; and the
//! last error of an earlier run, from the store.

mod support;

use mcp_oauth_testkit::fault::{Fault, Step};
use mcp_oauth_testkit::{Testkit, TestkitConfig};
use support::{approve, get, revoking_kit, store_args, Run};

fn line<'a>(out: &'a [String], name: &str) -> Option<&'a str> {
    out.iter()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

#[tokio::test]
async fn status_before_and_after_a_login_and_a_logout() {
    let (kit, store) = revoking_kit().await;
    let url = kit.resource_url();
    let args = store_args(&url, &store);
    let mut status_args = args.clone();
    status_args.push("--status");

    let (code, out, err) = Run::start(&status_args).finish().await;
    assert_eq!(code, 0, "{err:#?}");
    assert_eq!(line(&out, "connected"), Some("no"), "{out:#?}");
    assert_eq!(line(&out, "issuer"), None);
    assert!(kit.requests().is_empty(), "no request, no login");

    let mut run = Run::start(&args);
    get(&approve(&run.next_url().await).await).await;
    let (code, _, err) = run.finish().await;
    assert_eq!(code, 0, "{err:#?}");
    let requests = kit.requests().len();

    let (code, out, err) = Run::start(&status_args).finish().await;
    assert_eq!(code, 0, "{err:#?}");
    assert_eq!(line(&out, "connected"), Some("yes"), "{out:#?}");
    assert_eq!(line(&out, "issuer"), Some(kit.issuer().as_str()));
    assert_eq!(line(&out, "refresh token"), Some("held"));
    assert!(
        line(&out, "access token expires").is_some_and(|v| v.contains(" s)")),
        "{out:#?}"
    );
    assert_eq!(kit.requests().len(), requests, "read from the store only");
    for request in kit.requests() {
        if let Some(token) = request.bearer() {
            assert!(!out.iter().any(|l| l.contains(&token)), "no token printed");
        }
    }

    let mut logout_args = args.clone();
    logout_args.push("--logout");
    assert_eq!(Run::start(&logout_args).finish().await.0, 0);
    let (code, out, _) = Run::start(&status_args).finish().await;
    assert_eq!(code, 0);
    assert_eq!(line(&out, "connected"), Some("no"), "{out:#?}");
}

/// The last error outlives the run that hit it: the store keeps it, so `--status` in a later
/// process shows it (kind and message), and a later successful run clears it.
#[tokio::test]
async fn status_shows_the_last_error_of_an_earlier_run() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let store = tempfile::tempdir().unwrap();
    let url = kit.resource_url();
    let args = store_args(&url, &store);
    let mut status_args = args.clone();
    status_args.push("--status");

    // The token endpoint is down: the run fails after the user approved.
    kit.inject_fault(Step::Token, Fault::ServerError);
    let mut run = Run::start(&args);
    get(&approve(&run.next_url().await).await).await;
    let (code, _, _) = run.finish().await;
    assert_ne!(code, 0, "the run failed");

    let (code, out, err) = Run::start(&status_args).finish().await;
    assert_eq!(code, 0, "{err:#?}");
    assert_eq!(line(&out, "connected"), Some("no"), "{out:#?}");
    let last = line(&out, "last error").expect("kept by the store");
    assert!(last.starts_with("UnexpectedStatus "), "{last}");
    assert!(last.contains("token endpoint"), "{last}");

    kit.clear_faults();
    let mut run = Run::start(&args);
    get(&approve(&run.next_url().await).await).await;
    assert_eq!(run.finish().await.0, 0);
    let (code, out, _) = Run::start(&status_args).finish().await;
    assert_eq!(code, 0);
    assert_eq!(line(&out, "connected"), Some("yes"), "{out:#?}");
    assert_eq!(
        line(&out, "last error"),
        None,
        "cleared by the success: {out:#?}"
    );
}
