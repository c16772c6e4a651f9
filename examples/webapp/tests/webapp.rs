//! End to end: the web-app example (this package's library) on loopback TCP in front of the
//! testkit, driven by a hyper-util client playing two browsers, each with a one-cookie jar.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mcp_oauth_testkit::{ServerRole, Testkit, TestkitConfig};
use tower_mcp_oauth::TokenStore;
use webapp::WebApp;

/// A browser: follows nothing by itself, keeps the app's one cookie, sends it only to the app.
struct Browser {
    client: Client<HttpConnector, Empty<Bytes>>,
    app: String,
    cookie: Option<String>,
}

struct Page {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Browser {
    fn new(app: &str) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            app: app.to_owned(),
            cookie: None,
        }
    }

    /// The user id the app gave this browser.
    fn user(&self) -> &str {
        self.cookie
            .as_deref()
            .and_then(|c| c.strip_prefix("uid="))
            .expect("the app set a uid cookie")
    }

    async fn get(&mut self, target: &str) -> Page {
        let url = match target.strip_prefix('/') {
            Some(path) => format!("{}/{path}", self.app),
            None => target.to_owned(),
        };
        let to_app = url.starts_with(&format!("{}/", self.app));
        let mut request = http::Request::get(&url);
        if let (true, Some(cookie)) = (to_app, &self.cookie) {
            request = request.header("cookie", cookie);
        }
        let response = self
            .client
            .request(request.body(Empty::new()).unwrap())
            .await
            .unwrap();
        if to_app {
            if let Some(set) = response.headers().get("set-cookie") {
                let pair = set.to_str().unwrap().split(';').next().unwrap();
                self.cookie = Some(pair.to_owned());
            }
        }
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Page {
            status,
            location,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// `/connect`, then the authorization server (which approves at once): returns the
    /// callback URL the server sent the browser back to, not yet visited.
    async fn approve(&mut self, kit: &Testkit) -> String {
        let connect = self.get("/connect").await;
        assert_eq!(connect.status, 302, "{}", connect.body);
        let authorize = connect.location.unwrap();
        assert!(authorize.starts_with(&format!("{}/authorize?", kit.issuer())));
        let approved = self.get(&authorize).await;
        assert_eq!(approved.status, 302, "{}", approved.body);
        let callback = approved.location.unwrap();
        assert!(callback.starts_with(&format!("{}/callback?", self.app)));
        callback
    }
}

async fn serve(kit: &Testkit) -> (WebApp, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = WebApp::new(&base, &kit.resource_url());
    let router = app.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (app, base)
}

fn token_requests(kit: &Testkit) -> usize {
    kit.requests()
        .iter()
        .filter(|r| r.role == ServerRole::Authorization && r.path == "/token")
        .count()
}

/// Visits `/tools` and returns the page with the bearer tokens the MCP server saw meanwhile.
async fn tools(kit: &Testkit, browser: &mut Browser) -> (Page, Vec<String>) {
    let before = kit.requests().len();
    let page = browser.get("/tools").await;
    let bearers = kit.requests()[before..]
        .iter()
        .filter(|r| r.role == ServerRole::Resource && r.path == "/mcp")
        .filter_map(|r| r.bearer())
        .collect();
    (page, bearers)
}

async fn stored_token(app: &WebApp, kit: &Testkit, user: &str) -> Option<String> {
    app.login()
        .user_store(user)
        .load_tokens(&kit.resource_url())
        .await
        .unwrap()
        .map(|t| t.access_token().secret().clone())
}

#[tokio::test]
async fn two_users_connect_with_their_own_tokens_and_cannot_use_each_others_callback() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let (app, base) = serve(&kit).await;

    // Alice gets as far as the callback URL but does not visit it yet.
    let mut alice = Browser::new(&base);
    let alices_callback = alice.approve(&kit).await;

    // Bob is a user of the app too, not connected.
    let mut bob = Browser::new(&base);
    let (page, _) = tools(&kit, &mut bob).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(r#"href="/connect""#), "{}", page.body);
    assert_ne!(alice.user(), bob.user());

    // Bob's browser is made to present Alice's callback (login CSRF, RFC 6749 §10.12).
    let refused = bob.get(&alices_callback).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(token_requests(&kit), 0, "the code was not exchanged");
    assert_eq!(stored_token(&app, &kit, bob.user()).await, None);
    assert_eq!(stored_token(&app, &kit, alice.user()).await, None);
    let (page, bearers) = tools(&kit, &mut alice).await;
    assert!(page.body.contains(r#"href="/connect""#), "{}", page.body);
    assert!(bearers.is_empty());

    // Alice's own login was not consumed: she completes it.
    let completed = alice.get(&alices_callback).await;
    assert_eq!(completed.status, 200, "{}", completed.body);
    assert!(
        completed.body.contains(r#"href="/tools""#),
        "{}",
        completed.body
    );
    assert!(stored_token(&app, &kit, alice.user()).await.is_some());
    let (page, alices_bearers) = tools(&kit, &mut alice).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("test-tool"), "{}", page.body);
    assert!(page.body.contains("said: test"), "{}", page.body);

    // A callback works once.
    let replayed = alice.get(&alices_callback).await;
    assert_eq!(replayed.status, 400, "{}", replayed.body);

    // Bob is still not connected, until he connects himself.
    let (page, bearers) = tools(&kit, &mut bob).await;
    assert!(page.body.contains(r#"href="/connect""#), "{}", page.body);
    assert!(bearers.is_empty());
    let bobs_callback = bob.approve(&kit).await;
    assert_eq!(bob.get(&bobs_callback).await.status, 200);
    let (page, bobs_bearers) = tools(&kit, &mut bob).await;
    assert!(page.body.contains("test-tool"), "{}", page.body);

    // Each user's MCP requests carried their own token, and only theirs.
    assert!(!alices_bearers.is_empty() && !bobs_bearers.is_empty());
    assert!(alices_bearers.iter().all(|b| *b == alices_bearers[0]));
    assert!(bobs_bearers.iter().all(|b| *b == bobs_bearers[0]));
    assert_ne!(alices_bearers[0], bobs_bearers[0]);
    let (_, again) = tools(&kit, &mut alice).await;
    assert_eq!(
        again,
        [alices_bearers[0].clone(), alices_bearers[0].clone()]
    );

    // One registration for the app, one code exchange per user.
    let registrations = kit
        .requests()
        .iter()
        .filter(|r| r.role == ServerRole::Authorization && r.path == "/register")
        .count();
    assert_eq!(registrations, 1);
    assert_eq!(token_requests(&kit), 2);
}

#[tokio::test]
async fn a_callback_without_a_session_is_refused() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let (_app, base) = serve(&kit).await;
    let mut alice = Browser::new(&base);
    let callback = alice.approve(&kit).await;
    let mut stranger = Browser::new(&base);
    let refused = stranger.get(&callback).await;
    assert_eq!(refused.status, 400);
    assert_eq!(token_requests(&kit), 0);
    assert_eq!(alice.get(&callback).await.status, 200);
}

/// A link or a script on another site cannot start a login for the user nor call a tool with
/// their token: the browser marks such requests (`Sec-Fetch-Site: cross-site`), and the app
/// refuses them; the same pages opened from the app itself work.
#[tokio::test]
async fn requests_another_site_sent_are_refused() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let (app, _) = serve(&kit).await;
    let router = app.router();
    for path in ["/connect", "/tools"] {
        for (site, status) in [
            ("cross-site", 403),
            ("same-site", 403),
            ("same-origin", 200),
        ] {
            let request = http::Request::get(path)
                .header("sec-fetch-site", site)
                .body(axum::body::Body::empty())
                .unwrap();
            let response = tower::ServiceExt::oneshot(router.clone(), request)
                .await
                .unwrap();
            let got = response.status().as_u16();
            // The app's own /connect redirects to the authorization server.
            let expected = if path == "/connect" && status == 200 {
                302
            } else {
                status
            };
            assert_eq!(got, expected, "{path} {site}");
        }
    }
    assert_eq!(token_requests(&kit), 0);
}
