//! The receiver against what is not the browser's callback: a page's subresource, a
//! DNS-rebound name, a reloaded tab, a path a URL writes otherwise, a flood of connections and
//! an oversized head.

use super::*;

/// A GET of `url` with extra headers, as a page's subresource or a rebound name would send it.
async fn browse_with(url: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let mut request = http::Request::get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(request.body(Full::new(Bytes::new())).unwrap()).await
}

#[tokio::test]
async fn a_pages_image_or_a_rebound_name_reaches_no_sign_in() {
    let (receiver, _) = receiver(LoopbackReceiver::builder()).await;
    let waiting = start(&receiver, "s").await;
    let forged = format!("{}?code=c&state=forged", receiver.redirect_uri());
    // `<img src=...>` on any page: a subresource, not the authorization server's redirect.
    let (status, page) = browse_with(&forged, &[("sec-fetch-dest", "image")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("Not an authorization response"), "{page}");
    // A page whose name was rebound to 127.0.0.1 sends its own name as `Host`; even the right
    // state is not handed over that way.
    let port = receiver.local_addr().port();
    for query in ["code=c&state=forged", "code=c&state=s"] {
        let url = format!("{}?{query}", receiver.redirect_uri());
        let host = format!("evil.example:{port}");
        let (status, _) = browse_with(&url, &[("host", &host)]).await;
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{query}");
    }
    assert!(
        still_waiting(&waiting).await,
        "a forged request ended the sign-in"
    );
    // The browser's navigation (Fetch Metadata `document`, the receiver's own host) completes.
    let url = format!("{}?code=c&state=s", receiver.redirect_uri());
    let (status, _) = browse_with(&url, &[("sec-fetch-dest", "document")]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(waiting.await.unwrap().is_ok());
}

#[tokio::test]
async fn a_reloaded_callback_tab_ends_no_other_sign_in() {
    let (receiver, _) = receiver(LoopbackReceiver::builder()).await;
    let first = start(&receiver, "state-a").await;
    let callback = format!("{}?code=for-a&state=state-a", receiver.redirect_uri());
    assert_eq!(browse(&callback).await.0, StatusCode::OK);
    assert!(first.await.unwrap().is_ok());
    // Another server's sign-in is waiting when the first tab is reloaded.
    let second = start(&receiver, "state-b").await;
    let (status, page) = browse(&callback).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("already"), "{page}");
    assert!(
        still_waiting(&second).await,
        "a reload ended another sign-in"
    );
    // A state never handed out still ends it, as before.
    let (status, _) = browse(&format!("{}?code=c&state=forged", receiver.redirect_uri())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error = second.await.unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::StateMismatch);
}

#[tokio::test]
async fn a_path_a_url_would_write_otherwise_is_refused_at_bind() {
    for path in ["/a/../callback", "/o auth", "/回调", "/./cb"] {
        let err = LoopbackReceiver::builder()
            .path(path)
            .bind()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRedirectUri, "{path}");
        assert!(err.to_string().contains("as a URL writes it"), "{err}");
    }
    // Written as a URL writes it, it binds and is reached.
    let (receiver, _) = receiver(LoopbackReceiver::builder().path("/o%20auth")).await;
    let waiting = start(&receiver, "s").await;
    let (status, _) = browse(&format!("{}?code=c&state=s", receiver.redirect_uri())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(waiting.await.unwrap().is_ok());
}

/// The descriptors this process holds for TCP sockets whose local port is `port` (Linux): the
/// receiver's listener and the connections it accepted. Connections still in the kernel's
/// queue have none, and neither do the tests running beside this one, whatever they open.
#[cfg(target_os = "linux")]
fn descriptors_on_port(port: u16) -> usize {
    let mut inodes = std::collections::HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if let (Some(p), Some(inode)) = (local_port, fields.get(9)) {
                if p == port {
                    inodes.insert(format!("socket:[{inode}]"));
                }
            }
        }
    }
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.to_str().is_some_and(|t| inodes.contains(t)))
        .count()
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_flood_of_idle_connections_holds_few_descriptors_and_a_large_head_is_refused() {
    let (receiver, _) = receiver(LoopbackReceiver::builder()).await;
    let waiting = start(&receiver, "s").await;
    let port = receiver.local_addr().port();
    // The listener, and nothing accepted yet.
    assert_eq!(descriptors_on_port(port), 1);
    let mut idle = Vec::new();
    // Fewer than the limit and the kernel's queue (128) hold together: past them, connecting
    // waits on SYN retransmissions, seconds each.
    for _ in 0..120 {
        idle.push(
            tokio::net::TcpStream::connect(receiver.local_addr())
                .await
                .unwrap(),
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The receiver accepts at most its limit (32), the rest waiting in the kernel's queue,
    // where accepting every one held 120. Counted on the receiver's port only: a count of the
    // whole process's descriptors took in those of the tests running beside this one.
    let held = descriptors_on_port(port);
    assert!(
        held <= crate::loopback::server::MAX_CONNECTIONS + 1,
        "{held} descriptors on the receiver's side for 120 idle connections"
    );
    drop(idle);
    // A request head past the receiver's buffer is refused before it is read whole.
    let huge = "x".repeat(128 * 1024);
    let (status, _) = browse_with(
        &format!("{}?code=c&state=s", receiver.redirect_uri()),
        &[("x-padding", &huge)],
    )
    .await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert!(still_waiting(&waiting).await);
    let (status, _) = browse(&format!("{}?code=c&state=s", receiver.redirect_uri())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(waiting.await.unwrap().is_ok());
}

/// With every place held by idle connections, the browser's callback waits in the kernel's
/// queue (it is not accepted and closed) and is served once a place frees.
#[tokio::test]
async fn a_callback_waits_for_a_place_rather_than_being_closed() {
    let (receiver, _) = receiver(LoopbackReceiver::builder()).await;
    let waiting = start(&receiver, "s").await;
    let mut idle = Vec::new();
    for _ in 0..crate::loopback::server::MAX_CONNECTIONS {
        idle.push(
            tokio::net::TcpStream::connect(receiver.local_addr())
                .await
                .unwrap(),
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let url = format!("{}?code=c&state=s", receiver.redirect_uri());
    let callback = tokio::spawn(async move { browse(&url).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!callback.is_finished(), "served past the limit");
    drop(idle);
    let (status, _) = tokio::time::timeout(Duration::from_secs(5), callback)
        .await
        .expect("the callback was not served once places freed")
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(waiting.await.unwrap().is_ok());
}

#[tokio::test]
async fn a_receiver_on_port_80_takes_the_host_the_browser_sends_without_it() {
    // Port 80 may need privileges here; the rule itself is what is checked.
    use crate::loopback::server::Route;
    use crate::loopback::waiters::Waiters;
    let route = |host: &str, port| Route {
        path: "/cb".into(),
        redirect_uri: "http://localhost/cb".into(),
        host: host.into(),
        port,
        open: Arc::new(tokio::sync::Semaphore::new(1)),
        waiters: Arc::new(Waiters::default()),
    };
    let answer = |route: &Route, host: &str| {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::HOST, host.parse().unwrap());
        route
            .handle(
                &http::Method::GET,
                &"/cb?code=c&state=s".parse().unwrap(),
                &headers,
            )
            .status()
    };
    let on_80 = route("localhost", 80);
    // Nobody waits: a page that names the receiver says so (400); one for another host is 421.
    assert_eq!(answer(&on_80, "localhost"), StatusCode::BAD_REQUEST);
    assert_eq!(answer(&on_80, "LOCALHOST:80"), StatusCode::BAD_REQUEST);
    assert_eq!(
        answer(&on_80, "localhost:8080"),
        StatusCode::MISDIRECTED_REQUEST
    );
    assert_eq!(
        answer(&on_80, "evil.example"),
        StatusCode::MISDIRECTED_REQUEST
    );
    // A port of digits only (`u16`'s parser would take a sign).
    assert_eq!(
        answer(&on_80, "localhost:+80"),
        StatusCode::MISDIRECTED_REQUEST
    );
    let v6 = route("[::1]", 8080);
    assert_eq!(answer(&v6, "[::1]:8080"), StatusCode::BAD_REQUEST);
    assert_eq!(answer(&v6, "[::1]"), StatusCode::MISDIRECTED_REQUEST);
}
