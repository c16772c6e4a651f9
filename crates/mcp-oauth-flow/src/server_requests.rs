//! A server's options applied to the requests the flow sends: its compatibility switches, then
//! its configured parameters (which win), on the authorization request's query and on token
//! and device authorization forms. What the options are, and which server they belong to, is
//! [`server_options`](crate::server_options).

use url::Url;

use crate::compat::{apply_edits, authorization_edits, token_edits, Edit};
use crate::extra_params::ExtraParams;
use crate::server_options::ServerOptions;

/// The query of `url`, its pairs rewritten by `edit`.
fn rewrite_query(url: &mut Url, edit: impl FnOnce(Vec<(String, String)>) -> Vec<(String, String)>) {
    let pairs = edit(url.query_pairs().into_owned().collect());
    url.set_query(None);
    if !pairs.is_empty() {
        url.query_pairs_mut().extend_pairs(pairs);
    }
}

/// A form-encoded request, its body's pairs rewritten by `edit`.
fn rewrite_form(
    request: http::Request<bytes::Bytes>,
    edit: impl FnOnce(Vec<(String, String)>) -> Vec<(String, String)>,
) -> http::Request<bytes::Bytes> {
    let (parts, body) = request.into_parts();
    let pairs = edit(url::form_urlencoded::parse(&body).into_owned().collect());
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    http::Request::from_parts(parts, bytes::Bytes::from(body))
}

/// Applies `extra` to the query of `url`, keeping every other pair in order.
pub(crate) fn apply_to_query(url: &mut Url, extra: &ExtraParams) {
    if extra.is_empty() {
        return;
    }
    rewrite_query(url, |pairs| extra.apply(pairs));
}

/// A token request with the compatibility switches of `options`, then its token parameters
/// (which win), applied to its form body.
pub(crate) fn with_token_params(
    request: http::Request<bytes::Bytes>,
    options: Option<&ServerOptions>,
) -> http::Request<bytes::Bytes> {
    let Some(options) = options else {
        return request;
    };
    let request = edit_form(request, &token_edits(options.compat()), "token");
    apply_to_form(request, options.token_params())
}

/// A device authorization request (RFC 8628 §3.1) with the switches that concern it: like the
/// authorization request it stands for, it names the resource and Auth0's `audience`, so
/// `omit_resource` and `audience` apply (the configured token parameters do not).
pub(crate) fn with_device_switches(
    request: http::Request<bytes::Bytes>,
    options: Option<&ServerOptions>,
) -> http::Request<bytes::Bytes> {
    match options {
        Some(options) => edit_form(
            request,
            &token_edits(options.compat()),
            "device_authorization",
        ),
        None => request,
    }
}

/// Applies switch `edits` to a form-encoded request body.
fn edit_form(
    request: http::Request<bytes::Bytes>,
    edits: &[Edit],
    what: &'static str,
) -> http::Request<bytes::Bytes> {
    if edits.is_empty() {
        return request;
    }
    rewrite_form(request, |pairs| apply_edits(pairs, edits, what))
}

/// Applies the compatibility switches of `options` to an authorization request's URL (before
/// the configured parameters, which win).
pub(crate) fn apply_switches_to_query(url: &mut Url, options: Option<&ServerOptions>) {
    let Some(edits) = options
        .map(|o| authorization_edits(o.compat()))
        .filter(|e| !e.is_empty())
    else {
        return;
    };
    rewrite_query(url, |pairs| apply_edits(pairs, &edits, "authorization"));
}

/// Applies `extra` to a form-encoded request body (a token request's).
pub(crate) fn apply_to_form(
    request: http::Request<bytes::Bytes>,
    extra: &ExtraParams,
) -> http::Request<bytes::Bytes> {
    if extra.is_empty() {
        return request;
    }
    rewrite_form(request, |pairs| extra.apply(pairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_forms_are_rewritten_only_when_configured() {
        let extra = ExtraParams::default()
            .set("prompt", "login")
            .unwrap()
            .remove("resource")
            .unwrap();
        let mut url =
            Url::parse("https://as/authorize?tenant=1&resource=r&prompt=consent").unwrap();
        apply_to_query(&mut url, &extra);
        assert_eq!(url.as_str(), "https://as/authorize?tenant=1&prompt=login");
        let mut untouched = Url::parse("https://as/authorize?a=%20b").unwrap();
        apply_to_query(&mut untouched, &ExtraParams::default());
        assert_eq!(untouched.as_str(), "https://as/authorize?a=%20b");

        let request = http::Request::post("https://as/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(bytes::Bytes::from("grant_type=refresh_token&resource=r"))
            .unwrap();
        let extra = ExtraParams::default()
            .set("audience", "a b")
            .unwrap()
            .remove("resource")
            .unwrap();
        let out = apply_to_form(request, &extra);
        assert_eq!(out.uri(), "https://as/token");
        assert_eq!(
            out.headers()["content-type"],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(&out.body()[..], b"grant_type=refresh_token&audience=a+b");
    }

    #[test]
    fn switches_reach_token_and_device_forms_and_configured_params_win() {
        let form = |body: &'static str| {
            http::Request::post("https://as/x")
                .body(bytes::Bytes::from(body))
                .unwrap()
        };
        let options = ServerOptions::for_issuer("i")
            .omit_resource(true)
            .audience("api")
            .token_param("audience", "mine")
            .unwrap();
        let token = with_token_params(form("grant_type=g&resource=r"), Some(&options));
        assert_eq!(&token.body()[..], b"grant_type=g&audience=mine");
        let device = with_device_switches(form("client_id=c&resource=r"), Some(&options));
        assert_eq!(&device.body()[..], b"client_id=c&audience=api");
        let untouched = with_device_switches(form("resource=r"), None);
        assert_eq!(&untouched.body()[..], b"resource=r");
        let mut url = Url::parse("https://as/authorize?resource=r&scope=s").unwrap();
        apply_switches_to_query(&mut url, Some(&options));
        assert_eq!(url.as_str(), "https://as/authorize?scope=s&audience=api");
    }
}
