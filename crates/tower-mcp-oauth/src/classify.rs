//! Which responses ask the layer for (more) authorization: a pure function of the status and the
//! `WWW-Authenticate` headers, so the rule can be read and tested apart from the future that
//! applies it.

use http::{HeaderMap, StatusCode};
use mcp_oauth_flow::{
    challenge::{
        insufficient_scope_challenge, may_name_an_oauth_scheme, select_challenge, Challenge,
    },
    dpop::{asks_for_a_nonce, nonce_header, refuses_the_proof},
    Error,
};

/// What a response asks of the layer.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Not the layer's business: hand the response to the caller.
    PassOn,
    /// A `401` to answer with an authorization flow (with the Bearer challenge, if it sent one).
    Unauthorized(Option<Challenge>),
    /// A `401` whose challenge could not be parsed: the flow cannot start.
    Malformed(Error),
    /// A `403 insufficient_scope` (RFC 6750 §3.1): a step-up for the challenged scopes.
    InsufficientScope(Challenge),
    /// A `401` whose `DPoP` challenge asks for a nonce (RFC 9449 §9): the same request once
    /// more with a fresh proof carrying it, if the request carried a proof; else a `401` like
    /// any other (with its challenge).
    DpopNonce {
        nonce: String,
        challenge: Option<Challenge>,
    },
    /// A `401` whose `DPoP` challenge refuses the proof for good: `invalid_dpop_proof` (RFC
    /// 9449 §7.1), or a nonce asked for that cannot be used (none, or one past
    /// `MAX_NONCE_BYTES` or outside `NQCHAR`). No new token fixes it: a request that carried
    /// the layer's proof fails with `DpopRejected`; one without any proof is a plain `401`.
    DpopRefused(Option<Challenge>),
}

/// Whether a response with `status` may ask for (more) authorization at all: only a `401`
/// (RFC 6750 §3.1 `invalid_token`, RFC 9110 §15.5.2) or a `403` (`insufficient_scope`) can;
/// every other answer is passed on without reading its headers.
#[inline]
pub(crate) fn may_need_authorization(status: StatusCode) -> bool {
    matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
}

/// Why a response asks for (more) authorization, if it does.
pub(crate) fn needs_authorization(status: StatusCode, headers: &HeaderMap) -> Verdict {
    match status {
        // The headers are parsed once: a hostile `401` may carry hundreds of kilobytes of them.
        StatusCode::UNAUTHORIZED => match Challenge::from_headers(headers) {
            Ok(all) if refuses_the_proof(&all) => {
                Verdict::DpopRefused(select_challenge(&all).cloned())
            }
            Ok(all) if asks_for_a_nonce(&all) => match nonce_header(headers) {
                Some(nonce) => Verdict::DpopNonce {
                    nonce,
                    challenge: select_challenge(&all).cloned(),
                },
                None => Verdict::DpopRefused(select_challenge(&all).cloned()),
            },
            Ok(all) => match select_challenge(&all) {
                Some(challenge) => Verdict::Unauthorized(Some(challenge.clone())),
                // A 401 with no challenge at all (some 2025-03-26 servers) still means OAuth;
                // one that only offers other schemes (Basic, Negotiate) is not ours to answer.
                None if all.is_empty() => Verdict::Unauthorized(None),
                None => Verdict::PassOn,
            },
            // A challenge of ours that cannot be read is the server's fault, typed. One of
            // another scheme that cannot (`Basic realm=My Realm`, unquoted) says nothing to the
            // layer: like a readable one, it is not ours to answer, and the 401 goes to the
            // caller as the server sent it.
            Err(e) if names_an_oauth_scheme(headers) => Verdict::Malformed(e),
            Err(_) => Verdict::PassOn,
        },
        // RFC 6750 §3.1: only `insufficient_scope` asks for a new authorization; any other 403
        // (and one whose challenge cannot be read) is the resource's final word.
        StatusCode::FORBIDDEN => match Challenge::from_headers(headers) {
            Ok(all) => insufficient_scope_challenge(&all)
                .cloned()
                .map_or(Verdict::PassOn, Verdict::InsufficientScope),
            Err(_) => Verdict::PassOn,
        },
        _ => Verdict::PassOn,
    }
}

/// Whether a `WWW-Authenticate` header may hold a `Bearer` or `DPoP` challenge (see
/// [`may_name_an_oauth_scheme`]). Read lossily: a value with bytes past ASCII (a UTF-8
/// `error_description`) is still ours.
fn names_an_oauth_scheme(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::WWW_AUTHENTICATE)
        .iter()
        .any(|value| may_name_an_oauth_scheme(&String::from_utf8_lossy(value.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::WWW_AUTHENTICATE;
    use mcp_oauth_flow::ErrorKind;

    fn headers(challenges: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for c in challenges {
            map.append(WWW_AUTHENTICATE, c.parse().unwrap());
        }
        map
    }

    /// A verdict as a short word plus the scope, so the table below reads as a table.
    fn summary(v: &Verdict) -> (&'static str, Option<String>) {
        match v {
            Verdict::PassOn => ("pass", None),
            Verdict::Unauthorized(None) => ("flow", None),
            Verdict::Unauthorized(Some(c)) => ("flow+challenge", c.scope().map(str::to_owned)),
            Verdict::Malformed(e) => {
                assert_eq!(e.kind(), ErrorKind::InvalidChallenge);
                ("malformed", None)
            }
            Verdict::InsufficientScope(c) => ("step-up", c.scope().map(str::to_owned)),
            Verdict::DpopNonce { nonce, .. } => ("nonce", Some(nonce.clone())),
            Verdict::DpopRefused(_) => ("proof refused", None),
        }
    }

    /// Status, `WWW-Authenticate` values, expected summary.
    type Row = (
        u16,
        &'static [&'static str],
        (&'static str, Option<&'static str>),
    );

    /// RFC 9449 §9: a `DPoP` challenge with `use_dpop_nonce` and a `DPoP-Nonce` header asks for
    /// the same request with the nonce; without a usable one there is nothing to retry with,
    /// and no new token would help either: the proof is refused (for a request that carried
    /// none, the recovery reads that as a plain `401`).
    #[test]
    fn a_dpop_nonce_challenge_is_its_own_verdict() {
        let mut map =
            headers(&[r#"DPoP error="use_dpop_nonce", resource_metadata="https://rs/prm""#]);
        assert!(matches!(
            needs_authorization(StatusCode::UNAUTHORIZED, &map),
            Verdict::DpopRefused(Some(_))
        ));
        map.insert("dpop-nonce", "n".repeat(3000).parse().unwrap());
        assert!(matches!(
            needs_authorization(StatusCode::UNAUTHORIZED, &map),
            Verdict::DpopRefused(Some(_))
        ));
        map.insert("dpop-nonce", "n-7".parse().unwrap());
        match needs_authorization(StatusCode::UNAUTHORIZED, &map) {
            Verdict::DpopNonce { nonce, challenge } => {
                assert_eq!(nonce, "n-7");
                assert_eq!(
                    challenge.unwrap().resource_metadata(),
                    Some("https://rs/prm")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            needs_authorization(StatusCode::FORBIDDEN, &map),
            Verdict::PassOn
        ));
    }

    /// RFC 9449 §7.1: `invalid_dpop_proof` refuses the proof itself, whatever else the
    /// challenges say; an `invalid_token` from a `DPoP` challenge is a token's refusal.
    #[test]
    fn an_invalid_dpop_proof_refuses_the_proof() {
        let map = headers(&[
            r#"Bearer realm="mcp""#,
            r#"DPoP error="invalid_dpop_proof", algs="ES256""#,
        ]);
        assert!(matches!(
            needs_authorization(StatusCode::UNAUTHORIZED, &map),
            Verdict::DpopRefused(_)
        ));
        let map = headers(&[r#"DPoP error="invalid_token""#]);
        assert!(matches!(
            needs_authorization(StatusCode::UNAUTHORIZED, &map),
            Verdict::Unauthorized(Some(_))
        ));
    }

    #[test]
    fn an_unreadable_bearer_challenge_with_bytes_past_ascii_is_still_ours() {
        let mut map = HeaderMap::new();
        let value = "Bearer error_description=\"caf\u{e9}".as_bytes();
        map.append(
            WWW_AUTHENTICATE,
            http::HeaderValue::from_bytes(value).unwrap(),
        );
        assert!(matches!(
            needs_authorization(StatusCode::UNAUTHORIZED, &map),
            Verdict::Malformed(_)
        ));
    }

    /// A broken challenge of another scheme on a line of its own hides no `Bearer` one; bytes
    /// past ASCII in a quoted string (RFC 9110 `obs-text`) are read, not refused.
    #[test]
    fn a_bearer_challenge_is_read_beside_a_broken_basic_one_and_past_ascii() {
        let mut map = headers(&[
            "Basic realm=My Realm",
            r#"Bearer resource_metadata="https://rs/prm", scope="a""#,
        ]);
        match needs_authorization(StatusCode::UNAUTHORIZED, &map) {
            Verdict::Unauthorized(Some(c)) => {
                assert_eq!(c.resource_metadata(), Some("https://rs/prm"))
            }
            other => panic!("{other:?}"),
        }
        map = HeaderMap::new();
        map.append(
            WWW_AUTHENTICATE,
            http::HeaderValue::from_bytes(b"Bearer error_description=\"caf\xE9\", scope=\"a\"")
                .unwrap(),
        );
        assert_eq!(
            summary(&needs_authorization(StatusCode::UNAUTHORIZED, &map)),
            ("flow+challenge", Some("a".to_owned()))
        );
    }

    #[test]
    fn classification_table() {
        const MALFORMED: &str = r#"Bearer scope="unterminated"#;
        let table: &[Row] = &[
            (200, &[], ("pass", None)),
            (
                200,
                &[r#"Bearer error="insufficient_scope""#],
                ("pass", None),
            ),
            (403, &[], ("pass", None)),
            (401, &[r#"Basic realm="x""#], ("pass", None)),
            (401, &[], ("flow", None)),
            (401, &[MALFORMED], ("malformed", None)),
            (401, &[r#"DPoP algs="ES256"#], ("malformed", None)),
            (
                401,
                &[r#"Basic realm="x", Bearer scope="a"#],
                ("malformed", None),
            ),
            // Not ours, readable or not: the server's 401 goes to the caller.
            (401, &["Basic realm=My Realm"], ("pass", None)),
            (401, &["Negotiate ===, x"], ("pass", None)),
            (403, &[MALFORMED], ("pass", None)),
            (
                403,
                &[r#"Bearer error="insufficient_scope", scope="admin write""#],
                ("step-up", Some("admin write")),
            ),
            (403, &[r#"Bearer error="invalid_token""#], ("pass", None)),
            // The challenge that asks for scope, wherever it stands.
            (
                403,
                &[r#"Bearer realm="mcp", DPoP error="insufficient_scope", scope="w""#],
                ("step-up", Some("w")),
            ),
            (
                401,
                &[
                    r#"Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource", scope="read""#,
                ],
                ("flow+challenge", Some("read")),
            ),
            (
                401,
                &[r#"Basic realm="x""#, r#"Bearer scope="read""#],
                ("flow+challenge", Some("read")),
            ),
            // RFC 9449 §7.1: a DPoP challenge is handled like a Bearer one.
            (
                401,
                &[r#"DPoP algs="ES256", scope="read""#],
                ("flow+challenge", Some("read")),
            ),
            (
                403,
                &[r#"DPoP error="insufficient_scope", scope="admin""#],
                ("step-up", Some("admin")),
            ),
        ];
        for (status, challenges, (want, scope)) in table {
            let verdict =
                needs_authorization(StatusCode::from_u16(*status).unwrap(), &headers(challenges));
            let (got, got_scope) = summary(&verdict);
            assert_eq!(
                (got, got_scope.as_deref()),
                (*want, *scope),
                "{status} {challenges:?}"
            );
        }
    }

    #[test]
    fn the_status_prefilter_never_hides_a_verdict() {
        // Headers that would ask for a flow or a step-up under a 401 or a 403.
        let asking = headers(&[r#"Bearer error="insufficient_scope", scope="admin""#]);
        // Only two statuses are classified at all: every other answer skips the headers.
        let classified = (100..=599)
            .filter(|&code| may_need_authorization(StatusCode::from_u16(code).unwrap()))
            .count();
        assert_eq!(classified, 2);
        for code in 100..=599 {
            let status = StatusCode::from_u16(code).unwrap();
            let verdict = needs_authorization(status, &asking);
            if !may_need_authorization(status) {
                assert!(matches!(verdict, Verdict::PassOn), "{code}: {verdict:?}");
            }
        }
        assert!(may_need_authorization(StatusCode::UNAUTHORIZED));
        assert!(may_need_authorization(StatusCode::FORBIDDEN));
    }
}
