//! The small HTML pages the receiver answers the browser with.
//!
//! The pages never echo the code or the `state`. Only an error response whose `state` matched
//! (so it came from the authorization server the flow talks to) has its `error` and
//! `error_description` shown, HTML-escaped.

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::Full;

/// The response type of the receiver's connections.
pub(super) type Page = Response<Full<Bytes>>;

/// The callback carried a code: the flow continues in the application.
pub(super) fn received() -> Page {
    html(
        StatusCode::OK,
        "Authorization received",
        "You can close this window and return to the application.",
    )
}

/// The authorization server answered with an error (RFC 6749 §4.1.2.1).
pub(super) fn denied(error: &str, description: Option<&str>) -> Page {
    let mut message = format!(
        "The authorization server did not grant access: <code>{}</code>",
        escape(error)
    );
    if let Some(description) = description {
        message.push_str(&format!(" ({})", escape(description)));
    }
    message.push_str(". You can close this window; the application reports the error.");
    html(StatusCode::BAD_REQUEST, "Authorization failed", &message)
}

/// The callback's `state` belongs to no sign-in in progress: the sign-ins were ended.
pub(super) fn state_mismatch() -> Page {
    html(
        StatusCode::BAD_REQUEST,
        "Unexpected authorization response",
        "This response does not belong to the sign-in the application was waiting for (its state \
         does not match). It may come from an older browser tab, or from a page that forged it. \
         The sign-in was stopped and nothing was authorized; start again from the application.",
    )
}

/// The callback names an authorization server other than the one the sign-in went to.
pub(super) fn issuer_mismatch() -> Page {
    html(
        StatusCode::BAD_REQUEST,
        "Unexpected authorization server",
        "This response names an authorization server other than the one the sign-in was sent to \
         (RFC 9207), a sign of a mix-up attack. The sign-in was stopped and nothing was \
         authorized; start again from the application.",
    )
}

/// The callback repeats one already handed to its sign-in (the tab reloaded): nothing changes.
pub(super) fn already_received() -> Page {
    html(
        StatusCode::OK,
        "Authorization already received",
        "The application already has this authorization response. You can close this window.",
    )
}

/// A request to the redirect path that is not the browser's navigation to it: another `Host`
/// than the receiver's (a DNS-rebound name), or a page's subresource (an image, a script, a
/// fetch). It reaches no sign-in.
pub(super) fn not_a_callback(status: StatusCode) -> Page {
    html(
        status,
        "Not an authorization response",
        "This request did not come from a browser sent here by the authorization server. It was \
         ignored.",
    )
}

/// No sign-in is waiting for a callback.
pub(super) fn nobody_waiting() -> Page {
    html(
        StatusCode::BAD_REQUEST,
        "No sign-in in progress",
        "The application is not waiting for an authorization response. Start the sign-in again \
         from the application.",
    )
}

/// Any path but the redirect path.
pub(super) fn not_found() -> Page {
    html(StatusCode::NOT_FOUND, "Not found", "Nothing here.")
}

/// The redirect path with a method other than `GET`.
pub(super) fn method_not_allowed() -> Page {
    let mut page = html(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed",
        "The authorization response arrives as a GET request.",
    );
    page.headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET"));
    page
}

fn html(status: StatusCode, title: &str, message: &str) -> Page {
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em}}</style>\
         </head><body><h1>{title}</h1><p>{message}</p></body></html>\n"
    );
    let mut page = Response::new(Full::new(Bytes::from(body)));
    *page.status_mut() = status;
    let headers = page.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // The callback URL carries the code: keep the page out of caches, and keep its URL out of
    // any Referer (RFC 6749 §10.5, §10.6).
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    page
}

/// Escapes text for an HTML text node.
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
    use http_body_util::BodyExt;

    async fn text(page: Page) -> String {
        let bytes = page.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn server_text_is_escaped() {
        let page = denied("<script>x</script>", Some("a & \"b\""));
        assert_eq!(page.status(), StatusCode::BAD_REQUEST);
        let body = text(page).await;
        assert!(body.contains("&lt;script&gt;x&lt;/script&gt;"), "{body}");
        assert!(body.contains("a &amp; &quot;b&quot;"), "{body}");
        assert!(!body.contains("<script>"));
    }

    #[test]
    fn pages_are_not_cached() {
        for page in [
            received(),
            state_mismatch(),
            issuer_mismatch(),
            nobody_waiting(),
            not_found(),
        ] {
            assert_eq!(page.headers()[CACHE_CONTROL], "no-store");
            assert_eq!(page.headers()["referrer-policy"], "no-referrer");
        }
        assert_eq!(method_not_allowed().headers()[ALLOW], "GET");
    }
}
