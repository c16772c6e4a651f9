//! What the flow tells its driver about DPoP (RFC 9449 §5) at each token request.

use super::*;
use crate::dpop::DpopKey;

/// Drives a fresh authorization to its token request and says whether DPoP was offered there
/// (and nowhere before it).
fn offered_at_token_request(meta: Value) -> bool {
    let net = std_net().json(
        &format!("{AS}/.well-known/oauth-authorization-server"),
        200,
        meta,
    );
    let mut flow = Flow::new(
        Arc::new(config()),
        start(Some(&challenge_with_prm())),
        FlowSecrets::from_entropy([9; 32], [8; 32]),
        now(),
    );
    loop {
        match flow.poll_action().expect("an action") {
            Action::Send(sub) if sub.purpose == crate::discovery::Purpose::Token => {
                assert!(
                    flow.dpop_bound_key().is_none(),
                    "a new grant is bound to nothing yet"
                );
                return flow.dpop_offered();
            }
            Action::Send(sub) => {
                assert!(!flow.dpop_offered(), "offered only at the token request");
                flow.handle_response(net.answer(&sub.request), now());
            }
            Action::LoadClient { .. } => flow.handle_stored_client(None),
            Action::SaveClient(_) => {}
            Action::Authorize(req) => {
                let query = format!("code=c&state={}&iss={AS}", req.state().secret());
                flow.handle_authorization_response(AuthorizationResponse::from_query(&query));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn dpop_is_offered_when_the_metadata_lists_es256() {
    let with = |algs: Value| {
        let mut meta = as_meta(AS);
        meta["dpop_signing_alg_values_supported"] = algs;
        meta
    };
    assert!(offered_at_token_request(with(json!(["RS256", "ES256"]))));
    assert!(!offered_at_token_request(with(json!(["EdDSA"]))));
    assert!(!offered_at_token_request(as_meta(AS)));
}

#[test]
fn a_refresh_is_bound_to_the_held_tokens_key() {
    let key = DpopKey::from_entropy([5; 32]).unwrap();
    let held = TokenSet::new("at", TokenType::DPoP, AS, "client-1")
        .with_refresh_token(Some(RefreshToken::new("rt".into())))
        .with_token_endpoint(Some(format!("{AS}/token")), Some(ClientAuthMethod::None))
        .with_expires_at(Some(now() + Duration::from_secs(5)))
        .with_dpop_key(Some(key.clone()));
    let resource = url::Url::parse(&format!("{RS}/mcp")).unwrap();
    let start = FlowStart::new(resource.clone())
        .trigger(Trigger::Expiring)
        .held(Some(held), Some(resource));
    let mut flow = Flow::new(
        Arc::new(config()),
        start,
        FlowSecrets::from_entropy([1; 32], [2; 32]),
        now(),
    );
    match flow.poll_action() {
        Some(Action::Send(sub)) => assert!(sub.request.uri().path().ends_with("/token")),
        other => panic!("expected the refresh, got {other:?}"),
    }
    let bound = flow.dpop_bound_key().expect("the held tokens' key");
    assert_eq!(bound.thumbprint(), key.thumbprint());
    assert!(!flow.dpop_offered());
    // The refreshed tokens keep the key (RFC 9449 §5): the driver proves with it again.
    let answer = http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Bytes::from(
            r#"{"access_token":"at-2","token_type":"DPoP","expires_in":60}"#,
        ))
        .unwrap();
    flow.handle_response(answer, now());
    match flow.poll_action() {
        Some(Action::Complete(outcome)) => {
            let kept = outcome.tokens.resource_dpop_key().expect("still bound");
            assert_eq!(kept.thumbprint(), key.thumbprint());
        }
        other => panic!("expected completion, got {other:?}"),
    }
}
