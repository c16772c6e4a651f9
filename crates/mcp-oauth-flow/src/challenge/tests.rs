//! `challenge`'s unit tests.

use super::*;

/// A challenge of tens of thousands of parameters is refused after the first 64, not
/// compared each with each (about a billion compares for 45,000).
#[test]
fn a_challenge_with_too_many_parameters_is_refused() {
    let many: Vec<String> = (0..40_000).map(|i| format!("p{i}=1")).collect();
    let header = format!("DPoP error=\"use_dpop_nonce\", {}", many.join(", "));
    let err = Challenge::parse_all([header.as_bytes()]).unwrap_err();
    assert!(err.to_string().contains("more than 64 parameters"), "{err}");
    let few: Vec<String> = (0..63).map(|i| format!("p{i}=1")).collect();
    let header = format!("DPoP error=\"use_dpop_nonce\", {}", few.join(", "));
    assert_eq!(
        Challenge::parse_all([header.as_bytes()]).unwrap()[0]
            .params()
            .count(),
        64
    );
}

fn parse(s: &str) -> Result<Vec<Challenge>, Error> {
    Challenge::parse_all([s])
}

#[test]
fn params_are_every_parameter_in_order_with_lowercased_names() {
    let all = parse(r#"Bearer Error="invalid_token", scope="a b", realm=mcp"#).unwrap();
    let params: Vec<_> = all[0].params().collect();
    assert_eq!(
        params,
        [
            ("error", "invalid_token"),
            ("scope", "a b"),
            ("realm", "mcp")
        ]
    );
}

#[test]
fn only_the_insufficient_scope_error_asks_for_step_up() {
    // RFC 6750 §3.1: `invalid_token` (or no error at all) is not a request for more scope.
    let step_up = parse(r#"Bearer error="insufficient_scope", scope="admin""#).unwrap();
    assert!(step_up[0].is_insufficient_scope());
    for other in [
        r#"Bearer error="invalid_token""#,
        "Bearer",
        r#"Bearer scope="admin""#,
    ] {
        assert!(!parse(other).unwrap()[0].is_insufficient_scope(), "{other}");
    }
}

#[test]
fn every_www_authenticate_header_is_read() {
    let mut headers = http::HeaderMap::new();
    headers.append(
        http::header::WWW_AUTHENTICATE,
        "Basic realm=\"x\"".parse().unwrap(),
    );
    headers.append(
        http::header::WWW_AUTHENTICATE,
        "Bearer error=\"insufficient_scope\", scope=\"a\""
            .parse()
            .unwrap(),
    );
    let all = Challenge::from_headers(&headers).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].scheme(), "Bearer");
    assert_eq!(all[1].scope(), Some("a"));
    assert!(Challenge::from_headers(&http::HeaderMap::new())
        .unwrap()
        .is_empty());
}

#[test]
fn bearer_with_quoted_and_token_values() {
    let c = parse(r#"Bearer error=invalid_token, scope="a b", resource_metadata="https://x/.well-known/oauth-protected-resource/mcp""#).unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].scheme(), "Bearer");
    assert_eq!(c[0].error(), Some("invalid_token"));
    assert_eq!(c[0].scope(), Some("a b"));
    assert_eq!(
        c[0].resource_metadata(),
        Some("https://x/.well-known/oauth-protected-resource/mcp")
    );
}

#[test]
fn any_parameter_order_and_case() {
    let c =
        parse(r#"bearer Resource_Metadata="u", ERROR="insufficient_scope", Scope="s""#).unwrap();
    assert!(c[0].scheme_is("Bearer"));
    assert!(c[0].is_insufficient_scope());
    assert_eq!(c[0].scope(), Some("s"));
    assert_eq!(c[0].resource_metadata(), Some("u"));
}

#[test]
fn several_challenges_in_one_value() {
    let c =
        parse(r#"Basic realm="a, b", Bearer scope="x", error="invalid_token", DPoP algs="ES256""#)
            .unwrap();
    assert_eq!(c.len(), 3);
    assert_eq!(c[0].param("realm"), Some("a, b"));
    assert_eq!(c[1].scope(), Some("x"));
    assert_eq!(c[1].error(), Some("invalid_token"));
    assert_eq!(c[2].param("algs"), Some("ES256"));
    assert_eq!(select_challenge(&c).unwrap().scheme(), "Bearer");
}

#[test]
fn several_header_lines() {
    let c = Challenge::parse_all(["Basic realm=x", r#"Bearer scope="y""#]).unwrap();
    assert_eq!(c.len(), 2);
    assert_eq!(select_challenge(&c).unwrap().scope(), Some("y"));
}

#[test]
fn bare_scheme_and_token68() {
    let c = parse("Bearer, Negotiate abc+/def==, Other").unwrap();
    assert_eq!(c.len(), 3);
    assert!(c[0].params().next().is_none());
    assert_eq!(c[1].token68(), Some("abc+/def=="));
    assert_eq!(c[2].scheme(), "Other");
}

#[test]
fn escapes_in_quoted_strings() {
    let c = parse(r#"Bearer error_description="say \"no\"", scope="a\\b""#).unwrap();
    assert_eq!(c[0].param("error_description"), Some(r#"say "no""#));
    assert_eq!(c[0].scope(), Some(r"a\b"));
}

#[test]
fn whitespace_around_equals_and_trailing_commas() {
    let c = parse(r#"  Bearer   scope = "a" ,  error = invalid_token ,, "#).unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].scope(), Some("a"));
    assert_eq!(c[0].error(), Some("invalid_token"));
}

#[test]
fn duplicated_parameter_is_an_error() {
    let err = parse(r#"Bearer scope="a", scope="b""#).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidChallenge);
    let err = parse(r#"Bearer Scope="a", SCOPE="b""#).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidChallenge);
}

#[test]
fn malformed_inputs_are_errors() {
    for bad in [
        r#"Bearer scope="unterminated"#,
        r#"Bearer scope="a" junk"#,
        "=x",
        // A parameter needs a name (RFC 9110 §11.2: auth-param = token BWS "=" ...).
        r#"Bearer realm="a", ="b""#,
        r#"Bearer ="b""#,
        // A challenge needs a scheme: `/` may start a token68 but is no tchar.
        "/abc",
        r#"Bearer realm="a", /abc"#,
        "Bearer scope=\"a\u{1}\"",
        "Bearer abc== junk",
    ] {
        let err = parse(bad).expect_err(bad);
        assert_eq!(err.kind(), ErrorKind::InvalidChallenge, "{bad}");
    }
    assert!(Challenge::parse_all([&[0xff_u8, 0xfe][..]]).is_err());
}

#[test]
fn trailing_equals_reads_as_token68() {
    // `scope=` is a valid token68 (RFC 9110 §11.2), not a parameter without a value.
    let c = parse("Bearer scope=").unwrap();
    assert_eq!(c[0].token68(), Some("scope="));
    assert_eq!(c[0].scope(), None);
}

#[test]
fn empty_header_has_no_challenges() {
    assert!(parse("").unwrap().is_empty());
    assert!(parse(" , ").unwrap().is_empty());
}

proptest::proptest! {
    #[test]
    fn never_panics(s in "\\PC{0,200}") {
        let _ = parse(&s);
    }

    #[test]
    fn never_panics_on_bytes(b in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
        let _ = Challenge::parse_all([&b[..]]);
    }

    #[test]
    fn round_trips_quoted_params(
        scheme in "[A-Za-z][A-Za-z0-9]{0,8}",
        params in proptest::collection::btree_map("[a-z_]{1,12}", "[ -~]{0,30}", 0..5),
    ) {
        let rendered: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        let header = format!("{scheme} {}", rendered.join(", "));
        let parsed = parse(&header).unwrap();
        proptest::prop_assert_eq!(parsed.len(), 1);
        for (k, v) in &params {
            proptest::prop_assert_eq!(parsed[0].param(k), Some(v.as_str()));
        }
    }
}
