//! The `connect` command end to end over loopback TCP, with the test playing the browser:
//! it reads the printed authorization URL, fetches it from the testkit's authorization server
//! (which approves at once and redirects), and delivers the redirect to the loopback receiver.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use mcp_oauth_testkit::{CannedResponse, ServerRole, Testkit, TestkitConfig};
use support::{approve, count, get, is_url_line, store_args, Run};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test]
async fn logs_in_through_the_browser_once_then_silently() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let store = tempfile::tempdir().unwrap();
    let url = kit.resource_url();
    let args = store_args(&url, &store);

    // First run: the URL is printed on a line of its own; the "browser" completes the login.
    let mut first = Run::start(&args);
    let authorization_url = first.next_url().await;
    assert!(
        authorization_url.starts_with(&format!("{}/authorize?", kit.issuer())),
        "{authorization_url}"
    );
    let callback = approve(&authorization_url).await;
    let (status, _, page) = get(&callback).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("close this window"), "{page}");
    let (code, out, err) = first.finish().await;
    assert_eq!(code, 0, "{err:#?}");
    assert_eq!(out, ["test-tool\tAnswers \"test\"."], "{err:#?}");
    assert_eq!(count(&kit, "/authorize"), 1);
    assert_eq!(count(&kit, "/token"), 1);
    // The receiver passed the code on; the command printed neither it nor the state.
    let code_value = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    assert!(!err.iter().any(|l| l.contains(&code_value)), "{err:#?}");

    // Second run, same store: no URL, no authorization, no token request.
    kit.clear_requests();
    let second = Run::start(&args);
    let (code, out, err) = second.finish().await;
    assert_eq!(code, 0, "{err:#?}");
    assert_eq!(out, ["test-tool\tAnswers \"test\"."]);
    assert!(!err.iter().any(|l| is_url_line(l)), "{err:#?}");
    let paths: Vec<String> = kit
        .requests()
        .iter()
        .map(|r| format!("{} {} {:?}", r.method, r.path, r.bearer().is_some()))
        .collect();
    // The layer finds the stored tokens before its first request to the server: every
    // request carries them, with no 401, no discovery and no flow.
    assert_eq!(
        paths,
        ["POST /mcp true", "POST /mcp true", "POST /mcp true"]
    );
}

#[tokio::test]
async fn sse_answers_and_a_pre_registered_client() {
    let kit = Testkit::start(
        TestkitConfig::default()
            .sse_responses(true)
            .registration(false)
            .preregistered_client("connect-cli", Some("cli-secret")),
    )
    .await
    .unwrap();
    let store = tempfile::tempdir().unwrap();
    let url = kit.resource_url();
    let issuer = kit.issuer();
    let mut args = store_args(&url, &store);
    args.extend([
        "--client-id",
        "connect-cli",
        "--client-secret",
        "cli-secret",
        "--issuer",
        &issuer,
    ]);
    let mut run = Run::start(&args);
    let authorization_url = run.next_url().await;
    assert!(
        authorization_url.contains("client_id=connect-cli"),
        "{authorization_url}"
    );
    get(&approve(&authorization_url).await).await;
    let (code, out, err) = run.finish().await;
    assert_eq!(code, 0, "{err:#?}");
    assert_eq!(out, ["test-tool\tAnswers \"test\"."]);
    let token = kit
        .requests()
        .into_iter()
        .find(|r| r.path == "/token")
        .unwrap();
    assert_eq!(
        token.basic_credentials(),
        Some(("connect-cli".into(), "cli-secret".into()))
    );
    assert!(!err.iter().any(|l| l.contains("cli-secret")), "{err:#?}");
}

#[tokio::test]
async fn a_forged_callback_ends_the_run_at_once_with_the_report_and_no_token_request() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let store = tempfile::tempdir().unwrap();
    let url = kit.resource_url();
    // The receiver's default 5-minute timeout: the run must end long before it.
    let mut run = Run::start(&store_args(&url, &store));
    let callback = approve(&run.next_url().await).await;
    // Deliver the redirect (a valid code, the right iss) with another state, as a forged or
    // stale request would.
    let mut forged = url::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = forged
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                "zz-forged-zz".into()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(pairs);
    let (status, _, page) = get(forged.as_str()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("does not match"), "{page}");

    let started = std::time::Instant::now();
    let (code, out, err) = run.finish().await;
    assert!(started.elapsed() < Duration::from_secs(10), "ended at once");
    assert_eq!(code, 1);
    assert!(out.is_empty());
    let text = err.join("\n");
    assert!(
        text.contains(
            "error: authorization response state mismatch: an authorization response reached"
        ),
        "{text}"
    );
    assert!(text.contains("kind: StateMismatch"), "{text}");
    assert!(
        !text.contains("zz-forged-zz"),
        "the forged state is not echoed: {text}"
    );
    assert!(
        text.contains("discovery report (every URL the flow tried):"),
        "{text}"
    );
    assert!(
        text.contains("/.well-known/oauth-protected-resource/mcp"),
        "{text}"
    );
    assert!(
        text.contains("/.well-known/oauth-authorization-server"),
        "{text}"
    );
    // No code was exchanged.
    assert_eq!(count(&kit, "/token"), 0);
}

/// How the misbehaving server below answers one request.
enum Answer {
    /// This whole response, then the connection closes.
    Now(String),
    /// These headers at once, then a body of `len` bytes at one byte per second.
    Drip { head: String, len: usize },
    /// Nothing, ever: the connection stays open.
    Stall,
}

/// A server on loopback TCP that answers each request by its path through `answer` (given the
/// path and its own origin), and counts the requests it saw.
async fn misbehaving(
    answer: impl Fn(&str, &str) -> Answer + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (answer, log, me) = (Arc::new(answer), Arc::clone(&seen), origin.clone());
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let (answer, log, me) = (Arc::clone(&answer), Arc::clone(&log), me.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let path = text.split(' ').nth(1).unwrap_or("").to_owned();
                log.lock().unwrap().push(path.clone());
                match answer(&path, &me) {
                    Answer::Now(response) => {
                        let _ = stream.write_all(response.as_bytes()).await;
                    }
                    Answer::Drip { head, len } => {
                        let _ = stream.write_all(head.as_bytes()).await;
                        for _ in 0..len {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            if stream.write_all(b" ").await.is_err() {
                                return;
                            }
                        }
                    }
                    Answer::Stall => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                }
            });
        }
    });
    (origin, seen)
}

#[tokio::test]
async fn a_slow_drip_metadata_server_ends_the_run_at_the_request_timeout() {
    // 401 at once, then metadata whose headers come at once and whose body drips forever.
    let (origin, _) = misbehaving(|path, me| match path {
        "/mcp" => Answer::Now(format!(
            "HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer resource_metadata=\"{me}/prm\"\r\n\
             content-length: 0\r\nconnection: close\r\n\r\n"
        )),
        "/prm" => Answer::Drip {
            head: "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\
                   connection: close\r\n\r\n"
                .into(),
            len: 1000,
        },
        _ => Answer::Now("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into()),
    })
    .await;
    let store = tempfile::tempdir().unwrap();
    let url = format!("{origin}/mcp");
    let mut args = store_args(&url, &store);
    args.extend(["--request-timeout", "1"]);
    let started = std::time::Instant::now();
    let (code, out, err) = Run::start(&args).finish().await;
    let took = started.elapsed();
    assert_eq!(code, 1);
    assert!(out.is_empty());
    let text = err.join("\n");
    assert!(text.contains("kind: Timeout"), "{text}");
    assert!(
        text.contains(&format!(
            "no complete response from {origin}/prm within 1 s"
        )),
        "{text}"
    );
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_stalled_token_endpoint_ends_the_run_at_the_request_timeout() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    // The authorization server's token endpoint accepts the request and never answers.
    let (stalled, seen) = misbehaving(|_, _| Answer::Stall).await;
    let metadata_url = format!("{}/.well-known/oauth-authorization-server", kit.issuer());
    let (_, _, metadata) = get(&metadata_url).await;
    let mut metadata: serde_json::Value = serde_json::from_str(&metadata).unwrap();
    metadata["token_endpoint"] = format!("{stalled}/token").into();
    kit.set_override(
        ServerRole::Authorization,
        "/.well-known/oauth-authorization-server",
        CannedResponse::json(200, metadata),
    );
    let store = tempfile::tempdir().unwrap();
    let url = kit.resource_url();
    let mut args = store_args(&url, &store);
    args.extend(["--request-timeout", "1"]);
    let mut run = Run::start(&args);
    let callback = approve(&run.next_url().await).await;
    let (status, _, _) = get(&callback).await;
    assert_eq!(status, StatusCode::OK);
    let started = std::time::Instant::now();
    let (code, out, err) = run.finish().await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(code, 1);
    assert!(out.is_empty());
    let text = err.join("\n");
    assert!(text.contains("kind: Timeout"), "{text}");
    assert!(
        text.contains(&format!(
            "no complete response from {stalled}/token within 1 s"
        )),
        "{text}"
    );
    assert_eq!(*seen.lock().unwrap(), ["/token"]);
}

#[tokio::test]
async fn a_resource_mismatch_stops_before_the_browser_and_prints_the_report() {
    let kit = Testkit::start(
        TestkitConfig::default().prm_resource_override("http://127.0.0.1:1/elsewhere"),
    )
    .await
    .unwrap();
    let store = tempfile::tempdir().unwrap();
    let url = kit.resource_url();
    let (code, _, err) = Run::start(&store_args(&url, &store)).finish().await;
    assert_eq!(code, 1);
    let text = err.join("\n");
    assert!(text.contains("kind: ResourceMismatch"), "{text}");
    assert!(
        text.contains("/.well-known/oauth-protected-resource/mcp"),
        "the report lists the metadata URL: {text}"
    );
    assert!(
        !err.iter().any(|l| is_url_line(l)),
        "no browser step: {text}"
    );
    assert_eq!(count(&kit, "/authorize"), 0);
}

#[tokio::test]
async fn an_unreachable_server_is_a_transport_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let (code, _, err) = Run::start(&store_args(&url, &store)).finish().await;
    assert_eq!(code, 1);
    let text = err.join("\n");
    assert!(text.contains("kind: Transport"), "{text}");
    // The whole chain, down to the operating system's refusal, on the error line.
    let error_line = text
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or("");
    assert!(error_line.contains("refused"), "{text}");
    assert!(text.contains("discovery report: empty"), "{text}");
}

#[tokio::test]
async fn a_server_error_is_an_mcp_error() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let store = tempfile::tempdir().unwrap();
    let url = kit.resource_url();
    kit.set_override(
        ServerRole::Resource,
        "/mcp",
        CannedResponse::new(500, "boom"),
    );
    let (code, _, err) = Run::start(&store_args(&url, &store)).finish().await;
    assert_eq!(code, 1);
    let text = err.join("\n");
    assert!(text.contains("initialize with HTTP 500"), "{text}");
    assert!(text.contains("kind: MCP protocol"), "{text}");
}

#[tokio::test]
async fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["--bogus"][..],
        &["ftp://mcp.example.com/mcp"][..],
        &["http://127.0.0.1:1/mcp", "--client-secret", "s"][..],
    ] {
        let (code, out, err) = Run::start(args).finish().await;
        assert_eq!(code, 2, "{args:?}");
        assert!(out.is_empty());
        assert!(err.last().unwrap().starts_with("usage: connect"), "{err:?}");
    }
    // --help: the usage line first, then a line per flag (help.rs checks those).
    let (code, out, _) = Run::start(&["--help"]).finish().await;
    assert_eq!(code, 0);
    assert!(out[0].starts_with("usage: connect"), "{out:?}");
    assert!(out.len() > 1, "{out:?}");
}
