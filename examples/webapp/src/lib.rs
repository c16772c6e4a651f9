//! The web-app example's logic, a library so `src/main.rs` runs it and `tests/webapp.rs`
//! drives it: an axum app that connects each of its users to one MCP server
//! with their own tokens, through [`tower_mcp_oauth::web::WebLogin`].
//!
//! | Route | What it does |
//! |---|---|
//! | `GET /` | a home page with links |
//! | `GET /connect` | starts a login for the user, `302` to the authorization server |
//! | `GET /callback` | completes it (`state` must be the user's own), a page linking `/tools` |
//! | `GET /tools` | `tools/list` and `tools/call test-tool` with the user's token, as HTML; a link to `/connect` when the user is not connected |
//!
//! The user is whoever holds the `uid` cookie, minted at random on the first visit. A real app
//! takes the user from its own sign-in session instead; the cookie only stands in for one.
//! `/connect` and `/tools` refuse requests the browser says another site sent (`Sec-Fetch-Site`).
//!
//! ```
//! use webapp::WebApp;
//! let app = WebApp::new("http://127.0.0.1:3000", "http://127.0.0.1:4000/mcp");
//! let router = app.router(); // serve it with axum::serve
//! # let _ = router;
//! ```

use std::sync::Arc;

use axum::body::Body as AxumBody;
use axum::extract::{RawQuery, State};
use axum::http::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_oauth::web::{ConnectRequired, WebLogin};
use tower_mcp_oauth::{
    AuthorizationFailed, ClientConfig, Error, ErrorKind, DEFAULT_MAX_RESPONSE_BYTES,
};

mod client;

pub use client::{http_client, Body, HttpClient};
use client::{jsonrpc, read_json};

/// The name of the cookie that identifies the user.
pub const USER_COOKIE: &str = "uid";

/// The web app: one [`WebLogin`] for all users, one MCP server, one HTTP client.
///
/// Cloning is cheap (an `Arc`); axum clones it into every handler.
///
/// ```
/// use webapp::WebApp;
/// let app = WebApp::new("http://127.0.0.1:3000", "http://127.0.0.1:4000/mcp");
/// assert_eq!(app.mcp_url(), "http://127.0.0.1:4000/mcp");
/// ```
#[derive(Clone)]
pub struct WebApp {
    inner: Arc<Inner>,
}

struct Inner {
    login: WebLogin,
    mcp_url: String,
    client: HttpClient,
    /// Whether the app is served over https: its cookie is then `Secure`.
    secure: bool,
}

impl std::fmt::Debug for WebApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebApp")
            .field("login", &self.inner.login)
            .field("mcp_url", &self.inner.mcp_url)
            .finish_non_exhaustive()
    }
}

impl WebApp {
    /// An app served at `base_url` (its callback is `{base_url}/callback`) for the MCP server
    /// at `mcp_url`, over hyper-util's client, with tokens in memory.
    ///
    /// ```
    /// use webapp::WebApp;
    /// let app = WebApp::new("http://127.0.0.1:3000/", "http://127.0.0.1:4000/mcp");
    /// # let _ = app;
    /// ```
    pub fn new(base_url: &str, mcp_url: &str) -> Self {
        let client = http_client();
        let redirect = format!("{}/callback", base_url.trim_end_matches('/'));
        let config = ClientConfig::new(redirect).client_name("tower-mcp-oauth web-app example");
        let login = WebLogin::new(
            config,
            tower_mcp_oauth::HttpClient::from_service(client.clone(), DEFAULT_MAX_RESPONSE_BYTES),
        )
        // A refresh cut off by a closed browser tab (axum drops the handler) still writes the
        // rotated tokens it received; with a store shared by processes, a must.
        .spawn_flows_with(|flow| {
            tokio::spawn(flow);
        });
        Self::with_login(login, base_url, mcp_url, client)
    }

    /// An app with a [`WebLogin`] configured by the caller (another store, another TTL; give
    /// it [`spawn_flows_with`](WebLogin::spawn_flows_with), as [`new`](Self::new) does), served
    /// at `base_url`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use webapp::http_client;
    /// use webapp::WebApp;
    /// use tower_mcp_oauth::web::WebLogin;
    /// use tower_mcp_oauth::{ClientConfig, HttpClient, DEFAULT_MAX_RESPONSE_BYTES};
    /// let client = http_client();
    /// let login = WebLogin::new(
    ///     ClientConfig::new("http://127.0.0.1:3000/callback"),
    ///     HttpClient::from_service(client.clone(), DEFAULT_MAX_RESPONSE_BYTES),
    /// )
    /// .pending_ttl(Duration::from_secs(120));
    /// let app = WebApp::with_login(login, "http://127.0.0.1:3000", "http://127.0.0.1:4000/mcp", client);
    /// # let _ = app;
    /// ```
    pub fn with_login(login: WebLogin, base_url: &str, mcp_url: &str, client: HttpClient) -> Self {
        Self {
            inner: Arc::new(Inner {
                login,
                mcp_url: mcp_url.to_owned(),
                client,
                secure: base_url.starts_with("https://"),
            }),
        }
    }

    /// The login every handler uses.
    ///
    /// ```
    /// use webapp::WebApp;
    /// let app = WebApp::new("http://127.0.0.1:3000", "http://127.0.0.1:4000/mcp");
    /// assert_eq!(app.login().pending_logins(), 0);
    /// ```
    pub fn login(&self) -> &WebLogin {
        &self.inner.login
    }

    /// The MCP server the app calls.
    ///
    /// ```
    /// use webapp::WebApp;
    /// let app = WebApp::new("http://127.0.0.1:3000", "http://127.0.0.1:4000/mcp");
    /// assert!(app.mcp_url().ends_with("/mcp"));
    /// ```
    pub fn mcp_url(&self) -> &str {
        &self.inner.mcp_url
    }

    /// The routes, ready for `axum::serve`.
    ///
    /// ```
    /// use webapp::WebApp;
    /// use tower::ServiceExt;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let router = WebApp::new("http://127.0.0.1:3000", "http://127.0.0.1:4000/mcp").router();
    /// let home = http::Request::get("/").body(axum::body::Body::empty()).unwrap();
    /// let response = router.oneshot(home).await.unwrap();
    /// assert_eq!(response.status(), 200);
    /// // A first visit is given a user id.
    /// assert!(response.headers()["set-cookie"].to_str().unwrap().starts_with("uid="));
    /// # });
    /// ```
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(home))
            .route("/connect", get(connect))
            .route("/callback", get(callback))
            .route("/tools", get(tools))
            .with_state(self.clone())
    }
}

/// The user named by the request's cookie, or a new one (then `Set-Cookie` must go out).
struct User {
    id: String,
    is_new: bool,
}

impl User {
    fn from_headers(headers: &HeaderMap) -> Option<String> {
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().strip_prefix(USER_COOKIE)?.strip_prefix('='))
            // Only ids this app minted: a forged cookie of another shape is a new visitor.
            .find(|id| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_owned)
    }

    /// The cookie's user, or a new one with an unguessable id (the id is the user's whole
    /// identity here, so it comes from the OS's random source).
    fn from_request_or_new(headers: &HeaderMap) -> Result<Self, getrandom::Error> {
        if let Some(id) = Self::from_headers(headers) {
            return Ok(Self { id, is_new: false });
        }
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes)?;
        let id = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self { id, is_new: true })
    }

    /// Sets the cookie on `response` if the user is new. `SameSite=Lax` still sends it on the
    /// top-level redirect back from the authorization server to `/callback`; `HttpOnly` keeps
    /// it from scripts; `Secure`, on an app served over https, keeps it off plain http, where
    /// anyone on the network could read it or plant another. (A real app's session is its
    /// sign-in, whose id it renews when the user signs in.)
    fn remember(&self, secure: bool, mut response: Response) -> Response {
        if self.is_new {
            let secure = if secure { "; Secure" } else { "" };
            let cookie = format!(
                "{USER_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax{secure}",
                self.id
            );
            if let Ok(value) = cookie.parse() {
                response.headers_mut().insert(SET_COOKIE, value);
            }
        }
        response
    }
}

async fn home(State(app): State<WebApp>, headers: HeaderMap) -> Response {
    let user = match User::from_request_or_new(&headers) {
        Ok(user) => user,
        Err(e) => return no_user(e),
    };
    user.remember(app.inner.secure, page(
        StatusCode::OK,
        "MCP web app",
        r#"<p><a href="/connect">Connect</a> to the MCP server, then see its <a href="/tools">tools</a>.</p>"#,
    ))
}

/// Whether the browser says another site sent this request (`Sec-Fetch-Site`, Fetch Metadata):
/// a link or a script elsewhere that would start a login for the user, or call a tool with
/// their token (cross-site request forgery; `SameSite=Lax` still sends the cookie on a
/// top-level navigation). A request a browser marks `none` (typed in, a bookmark) or
/// `same-origin` is the user's own; one without the header comes from no current browser.
fn from_another_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .is_some_and(|v| v == "cross-site" || v == "same-site")
}

/// The answer to a request [`from_another_site`].
fn refused_from_another_site() -> Response {
    page(
        StatusCode::FORBIDDEN,
        "Refused",
        r#"<p>Another site sent this request. Open the <a href="/">app</a> itself.</p>"#,
    )
}

async fn connect(State(app): State<WebApp>, headers: HeaderMap) -> Response {
    if from_another_site(&headers) {
        return refused_from_another_site();
    }
    let user = match User::from_request_or_new(&headers) {
        Ok(user) => user,
        Err(e) => return no_user(e),
    };
    let response = match app.login().start(&user.id, app.mcp_url()).await {
        Ok(url) => redirect(url.as_str()),
        Err(e) => error_page(StatusCode::BAD_GATEWAY, "Could not start the login", &e),
    };
    user.remember(app.inner.secure, response)
}

async fn callback(
    State(app): State<WebApp>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    // No cookie: nobody started a login in this browser, so the callback cannot be theirs.
    let Some(user) = User::from_headers(&headers) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Login refused",
            r#"<p>This browser has no session. <a href="/connect">Connect</a> again.</p>"#,
        );
    };
    match app
        .login()
        .complete(&user, query.as_deref().unwrap_or(""))
        .await
    {
        // A page, not a redirect to `/tools`: a redirect chain that began at the authorization
        // server is cross-site to the browser, which `/tools` refuses.
        Ok(_) => page(
            StatusCode::OK,
            "Connected",
            r#"<p>Connected to the MCP server. See its <a href="/tools">tools</a>.</p>"#,
        ),
        Err(e) => {
            let status = match e.kind() {
                // Not this user's login, a replay, a bad redirect: the request is at fault.
                ErrorKind::StateMismatch
                | ErrorKind::IssuerParameterMismatch
                | ErrorKind::InvalidAuthorizationResponse => StatusCode::BAD_REQUEST,
                ErrorKind::AuthorizationDenied => StatusCode::FORBIDDEN,
                _ => StatusCode::BAD_GATEWAY,
            };
            error_page(status, "Login refused", &e)
        }
    }
}

async fn tools(State(app): State<WebApp>, headers: HeaderMap) -> Response {
    if from_another_site(&headers) {
        return refused_from_another_site();
    }
    let user = match User::from_request_or_new(&headers) {
        Ok(user) => user,
        Err(e) => return no_user(e),
    };
    let response = match list_and_call(&app, &user.id).await {
        Ok(html) => page(StatusCode::OK, "Tools", &html),
        Err(e) if ConnectRequired::find(&e).is_some() => page(
            StatusCode::OK,
            "Not connected",
            r#"<p>You are not connected to the MCP server yet. <a href="/connect">Connect</a>.</p>"#,
        ),
        Err(e) => error_page(StatusCode::BAD_GATEWAY, "The MCP server call failed", &e),
    };
    user.remember(app.inner.secure, response)
}

/// `tools/list`, then `tools/call test-tool` when the server has it, through the user's layer.
async fn list_and_call(app: &WebApp, user: &str) -> Result<String, Error> {
    let service = ServiceBuilder::new()
        .layer(app.login().layer_for(user))
        .service(app.inner.client.clone());
    let call = |id, method, params| {
        let service = service.clone();
        let request = jsonrpc(app.mcp_url(), id, method, params);
        async move {
            let response = service.oneshot(request).await?;
            // A refused step-up comes back as the server's 403, marked with why.
            if let Some(failed) = response.extensions().get::<AuthorizationFailed>() {
                return Err(failed.error().clone());
            }
            if !response.status().is_success() {
                return Err(Error::new(
                    ErrorKind::UnexpectedStatus,
                    format!("{method} answered {}", response.status()),
                )
                .with_status(response.status()));
            }
            read_json(response, id)
                .await
                .map_err(|e| Error::new(ErrorKind::Transport, e))
        }
    };
    let listed = call(1, "tools/list", serde_json::json!({})).await?;
    let tools = listed["result"]["tools"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut html = String::from("<ul>");
    for tool in &tools {
        html += &format!(
            "<li><code>{}</code> {}</li>",
            escape(tool["name"].as_str().unwrap_or("?")),
            escape(tool["description"].as_str().unwrap_or("")),
        );
    }
    html += "</ul>";
    if tools.iter().any(|t| t["name"] == "test-tool") {
        let params = serde_json::json!({"name": "test-tool", "arguments": {}});
        let called = call(2, "tools/call", params).await?;
        let text = called["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or("");
        html += &format!("<p><code>test-tool</code> said: {}</p>", escape(text));
    }
    Ok(html)
}

fn no_user(error: getrandom::Error) -> Response {
    let message = format!(
        "<p>No randomness for a user id: {}</p>",
        escape(&error.to_string())
    );
    page(StatusCode::INTERNAL_SERVER_ERROR, "Error", &message)
}

fn redirect(location: &str) -> Response {
    Response::builder()
        .status(StatusCode::FOUND)
        .header(LOCATION, location)
        .body(AxumBody::empty())
        .unwrap_or_else(|_| page(StatusCode::INTERNAL_SERVER_ERROR, "Error", "bad redirect"))
}

/// An error page. The library's errors never carry a code, `state` or token, so the message
/// can be shown.
fn error_page(status: StatusCode, title: &str, error: &Error) -> Response {
    // The discovery report (every URL tried, its status, why it was skipped) is what an
    // operator needs to see why a server could not be reached; it holds no secret.
    let report = error
        .report()
        .filter(|r| !r.steps().is_empty())
        .map(|r| {
            format!(
                "<h2>Discovery report</h2><pre>{}</pre>",
                escape(&r.to_string())
            )
        })
        .unwrap_or_default();
    page(
        status,
        title,
        &format!("<p>{}</p>{report}", escape(&error.to_string())),
    )
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    );
    let mut response = Response::new(AxumBody::from(html));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// Escapes text for HTML: tool names and server messages are not ours.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_minted_ids_are_read_from_cookies() {
        let id = "ab".repeat(32);
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, format!("theme=dark; uid={id}").parse().unwrap());
        assert_eq!(User::from_headers(&headers), Some(id));
        headers.insert(COOKIE, "uid=alice".parse().unwrap());
        assert_eq!(User::from_headers(&headers), None);
        headers.insert(COOKIE, format!("xuid={}", "ab".repeat(32)).parse().unwrap());
        assert_eq!(User::from_headers(&headers), None);
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
