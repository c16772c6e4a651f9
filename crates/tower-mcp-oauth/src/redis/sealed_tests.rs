//! A sealed Redis store ([`RedisStore::sealed_with`]) against a real redis-server: nothing
//! secret in any value, compare-and-swap on fingerprints, values from before sealing read and
//! sealed when next written, and a value it cannot open refused without being touched.

use super::test_server::RedisServer;
use super::tests::assert_swapped;
use super::*;
use crate::store::sealing::SealingKey;
use mcp_oauth_flow::secrets::{ClientSecret, RefreshToken};
use mcp_oauth_flow::token::TokenType;
use mcp_oauth_flow::ErrorKind;

const RESOURCE: &str = "https://mcp.example.com/mcp";
const ISSUER: &str = "https://as.example.com";

fn tokens(access: &str) -> TokenSet {
    TokenSet::new(access, TokenType::Bearer, ISSUER, "client-1")
        .with_refresh_token(Some(RefreshToken::new(format!("{access}-refresh"))))
}

fn registration(client_id: &str) -> ClientRegistration {
    ClientRegistration {
        issuer: ISSUER.into(),
        client_id: client_id.into(),
        client_secret: Some(ClientSecret::new("SECRET-client".into())),
        client_secret_expires_at: None,
        token_endpoint_auth_method: Some("client_secret_basic".into()),
        redirect_uris: vec![],
        grant_types: Vec::new(),
    }
}

async fn store(server: &RedisServer, seal: Option<&SealingKey>) -> RedisStore {
    let store = RedisStore::connect(&server.url()).await.unwrap();
    match seal {
        Some(key) => store.sealed_with(key.clone()),
        None => store,
    }
}

/// Every value under the store's prefix.
async fn values(store: &RedisStore) -> Vec<(String, String)> {
    let mut conn = store.conn.clone();
    let mut keys: Vec<String> = ::redis::cmd("KEYS")
        .arg(format!("{}:*", store.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.sort();
    let mut out = Vec::new();
    for key in keys {
        // The strings: a pending login's index is a set.
        let value: Result<Option<String>, _> = Cmd::get(&key).query_async(&mut conn).await;
        out.extend(value.ok().flatten().map(|v| (key, v)));
    }
    out
}

fn assert_nothing_secret(values: &[(String, String)]) {
    for (key, value) in values {
        assert!(!value.contains("SECRET"), "{key}: {value}");
    }
}

/// Logs every command from now on (`SLOWLOG` with no threshold), with its arguments, as
/// `MONITOR` would show them.
async fn slowlog_reset(store: &RedisStore) {
    let mut conn = store.conn.clone();
    let () = ::redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg("0")
        .query_async(&mut conn)
        .await
        .unwrap();
    let () = ::redis::cmd("SLOWLOG")
        .arg("RESET")
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// The commands logged since [`slowlog_reset`], arguments and all, as text.
async fn slowlog(store: &RedisStore) -> String {
    let mut conn = store.conn.clone();
    let log: ::redis::Value = ::redis::cmd("SLOWLOG")
        .arg("GET")
        .arg("100")
        .query_async(&mut conn)
        .await
        .unwrap();
    format!("{log:?}")
}

/// Puts alice's pending web login (`PendingLogin::for_tests`: its verifier and client secret
/// are `verifier-secret` and `client-secret`) under the state `the-state`.
#[cfg(feature = "web")]
async fn put_pending_login(store: &RedisStore) {
    use crate::web::{PendingLogin, PendingLoginStore};
    let login = PendingLogin::for_tests(
        "https://a.example/",
        std::time::UNIX_EPOCH + Duration::from_secs(2_000_000_000),
    );
    store
        .put("alice", "the-state", &login, Duration::from_secs(600))
        .await
        .unwrap();
}

#[tokio::test]
async fn every_value_is_sealed_and_read_back_with_the_key() {
    let server = RedisServer::start();
    let key = SealingKey::generate().unwrap();
    let sealed = store(&server, Some(&key)).await;
    sealed
        .save_tokens(RESOURCE, &tokens("SECRET-at"))
        .await
        .unwrap();
    sealed.save_client(&registration("client-1")).await.unwrap();
    let written = values(&sealed).await;
    assert_eq!(written.len(), 2, "{written:?}");
    assert_nothing_secret(&written);

    // Another process with the key reads them.
    let other = store(&server, Some(&key)).await;
    let back = other.load_tokens(RESOURCE).await.unwrap().unwrap();
    assert_eq!(back.access_token().secret(), "SECRET-at");
    let client = other.load_client(ISSUER).await.unwrap().unwrap();
    assert_eq!(
        client.client_secret.as_ref().map(|s| s.secret().as_str()),
        Some("SECRET-client")
    );
    // The refused-client removal reads the client id the envelope shows (under a prefix of
    // its own: the contract starts from nothing stored).
    let contract = other.prefix("contract");
    crate::store::contract::removes_only_the_refused_client(&contract).await;
    assert_nothing_secret(&values(&contract).await);
}

#[tokio::test]
async fn compare_and_swap_works_on_what_a_sealed_value_shows() {
    let server = RedisServer::start();
    let key = SealingKey::generate().unwrap();
    let store = store(&server, Some(&key)).await;
    let first = tokens("SECRET-1");
    store.save_tokens(RESOURCE, &first).await.unwrap();

    // Expecting other tokens: a conflict, which reports the stored ones, opened.
    let stale = tokens("SECRET-0");
    match store
        .compare_and_swap_tokens(RESOURCE, Some(&stale), Some(&tokens("SECRET-x")))
        .await
        .unwrap()
    {
        Replaced::Conflict(Some(current)) => assert!(current.same_tokens(&first)),
        other => panic!("expected a conflict with the stored tokens, got {other:?}"),
    }
    // The same access token with another refresh token is not the same tokens either.
    let other_refresh =
        tokens("SECRET-1").with_refresh_token(Some(RefreshToken::new("SECRET-other".into())));
    assert!(matches!(
        store
            .compare_and_swap_tokens(RESOURCE, Some(&other_refresh), None)
            .await
            .unwrap(),
        Replaced::Conflict(Some(_))
    ));
    // Expecting the stored ones: swapped, and sealed again.
    let second = tokens("SECRET-2");
    assert_swapped(
        store
            .compare_and_swap_tokens(RESOURCE, Some(&first), Some(&second))
            .await
            .unwrap(),
    );
    assert!(store
        .load_tokens(RESOURCE)
        .await
        .unwrap()
        .unwrap()
        .same_tokens(&second));
    assert_nothing_secret(&values(&store).await);
    // And removed on a swap to nothing.
    assert_swapped(
        store
            .compare_and_swap_tokens(RESOURCE, Some(&second), None)
            .await
            .unwrap(),
    );
    assert!(values(&store).await.is_empty());
}

#[tokio::test]
async fn values_from_before_sealing_are_read_and_sealed_when_next_written() {
    let server = RedisServer::start();
    let plain = store(&server, None).await;
    let old = tokens("SECRET-old");
    plain.save_tokens(RESOURCE, &old).await.unwrap();
    assert!(values(&plain).await[0].1.contains("SECRET-old"));

    let sealed = store(&server, Some(&SealingKey::generate().unwrap())).await;
    let read = sealed.load_tokens(RESOURCE).await.unwrap().unwrap();
    assert!(read.same_tokens(&old));
    assert_swapped(
        sealed
            .compare_and_swap_tokens(RESOURCE, Some(&read), Some(&tokens("SECRET-new")))
            .await
            .unwrap(),
    );
    assert_nothing_secret(&values(&sealed).await);
}

#[tokio::test]
async fn a_value_this_store_cannot_open_is_refused_and_left_as_it_is() {
    let server = RedisServer::start();
    let owner = store(&server, Some(&SealingKey::generate().unwrap())).await;
    owner
        .save_tokens(RESOURCE, &tokens("SECRET-at"))
        .await
        .unwrap();
    let before = values(&owner).await;

    let other = store(&server, Some(&SealingKey::generate().unwrap())).await;
    let unsealed = store(&server, None).await;
    for (store, says) in [(&other, "does not open"), (&unsealed, "sealed_with")] {
        let err = store.load_tokens(RESOURCE).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Store);
        assert!(!err.is_transient());
        assert!(err.to_string().contains(says), "{err}");
        // Nor does a compare-and-swap write over it, whatever it expects.
        for expected in [None, Some(tokens("SECRET-at"))] {
            let swap = store
                .compare_and_swap_tokens(RESOURCE, expected.as_ref(), Some(&tokens("SECRET-mine")))
                .await;
            assert!(swap.is_err(), "{swap:?}");
        }
    }
    assert_eq!(values(&owner).await, before, "a value was changed");
}

#[cfg(feature = "web")]
#[tokio::test]
async fn a_pending_web_login_is_sealed_too() {
    use crate::web::PendingLoginStore;
    let server = RedisServer::start();
    let store = store(&server, Some(&SealingKey::generate().unwrap())).await;
    put_pending_login(&store).await;
    for (key, value) in values(&store).await {
        assert!(
            !value.contains("verifier-secret") && !value.contains("client-secret"),
            "{key}: {value}"
        );
    }
    assert!(store.take("alice", "the-state").await.unwrap().is_some());
}

/// A sealed value is bound to its key: copied under another resource's (a server the attacker
/// runs, another user's), it does not open there, and its token goes nowhere.
#[tokio::test]
async fn a_value_copied_under_another_key_does_not_open() {
    let server = RedisServer::start();
    let store = store(&server, Some(&SealingKey::generate().unwrap())).await;
    store
        .save_tokens(RESOURCE, &tokens("SECRET-at"))
        .await
        .unwrap();
    let mut conn = store.conn.clone();
    let value: String = Cmd::get(store.key(TOKENS, RESOURCE))
        .query_async(&mut conn)
        .await
        .unwrap();
    let elsewhere = "https://attacker.example.com/mcp";
    let () = Cmd::set(store.key(TOKENS, elsewhere), &value)
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = store.load_tokens(elsewhere).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store);
    assert!(store.load_tokens(RESOURCE).await.unwrap().is_some());
}

/// Nor is a value this store cannot open written over or removed, by any write: tokens, a
/// registration, its removal, a status.
#[tokio::test]
async fn a_value_this_store_cannot_open_is_never_written_over_or_removed() {
    let server = RedisServer::start();
    let owner = store(&server, Some(&SealingKey::generate().unwrap())).await;
    owner
        .save_tokens(RESOURCE, &tokens("SECRET-at"))
        .await
        .unwrap();
    owner.save_client(&registration("client-1")).await.unwrap();
    let status = crate::store::LastFlow::of(&Ok(()), std::time::UNIX_EPOCH);
    owner.save_last_flow(RESOURCE, &status).await.unwrap();
    let before = values(&owner).await;
    assert_eq!(before.len(), 3, "{before:?}");

    let other = store(&server, Some(&SealingKey::generate().unwrap())).await;
    let unsealed = store(&server, None).await;
    for store in [&other, &unsealed] {
        let refused = [
            store.save_tokens(RESOURCE, &tokens("SECRET-mine")).await,
            store.save_client(&registration("client-2")).await,
            store.remove_client(ISSUER).await,
            store.save_last_flow(RESOURCE, &status).await,
        ];
        for outcome in refused {
            let err = outcome.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Store);
            assert!(
                err.to_string().contains("sealed under another key"),
                "{err}"
            );
        }
        // Nor removed as a refused client (the envelope shows its client id).
        store
            .remove_refused_client(ISSUER, "client-1")
            .await
            .unwrap();
    }
    assert_eq!(values(&owner).await, before, "a value was changed");
}

/// A sealed store's compare-and-swap sends no token to Redis (where `SLOWLOG` and `MONITOR`
/// show a command's arguments, and Redis before 5 replicates a script's): only fingerprints,
/// and the tokens once, for a value written before the store was sealed.
#[tokio::test]
async fn a_sealed_compare_and_swap_sends_no_token() {
    let server = RedisServer::start();
    let store = store(&server, Some(&SealingKey::generate().unwrap())).await;
    let first = tokens("SECRET-1");
    store.save_tokens(RESOURCE, &first).await.unwrap();
    slowlog_reset(&store).await;
    assert_swapped(
        store
            .compare_and_swap_tokens(RESOURCE, Some(&first), Some(&tokens("SECRET-2")))
            .await
            .unwrap(),
    );
    let shown = slowlog(&store).await;
    assert!(
        shown.contains("EVALSHA") || shown.contains("evalsha") || shown.contains("EVAL"),
        "{shown}"
    );
    assert!(!shown.contains("SECRET"), "{shown}");
}

#[cfg(feature = "web")]
#[tokio::test]
async fn a_pending_login_this_store_cannot_open_is_left_as_it_is() {
    use crate::web::PendingLoginStore;
    let server = RedisServer::start();
    let owner = store(&server, Some(&SealingKey::generate().unwrap())).await;
    put_pending_login(&owner).await;
    let other = store(&server, Some(&SealingKey::generate().unwrap())).await;
    assert!(other.take("alice", "the-state").await.is_err());
    assert!(owner.take("alice", "the-state").await.unwrap().is_some());
}

/// A sealed store meeting a value written before it was sealed compares it itself: other
/// tokens than it expects are a conflict (nothing written); the expected ones are swapped,
/// named to Redis by the value's SHA-1, and no token is an argument of either call.
#[tokio::test]
async fn a_value_from_before_sealing_is_compared_without_sending_a_token() {
    let server = RedisServer::start();
    let plain = store(&server, None).await;
    let old = tokens("SECRET-old");
    plain.save_tokens(RESOURCE, &old).await.unwrap();
    let sealed = store(&server, Some(&SealingKey::generate().unwrap())).await;
    slowlog_reset(&sealed).await;

    match sealed
        .compare_and_swap_tokens(
            RESOURCE,
            Some(&tokens("SECRET-other")),
            Some(&tokens("SECRET-x")),
        )
        .await
        .unwrap()
    {
        Replaced::Conflict(Some(stored)) => assert!(stored.same_tokens(&old)),
        other => panic!("expected a conflict with the stored tokens, got {other:?}"),
    }
    assert!(plain
        .load_tokens(RESOURCE)
        .await
        .unwrap()
        .unwrap()
        .same_tokens(&old));
    assert_swapped(
        sealed
            .compare_and_swap_tokens(RESOURCE, Some(&old), Some(&tokens("SECRET-new")))
            .await
            .unwrap(),
    );
    assert_nothing_secret(&values(&sealed).await);
    let shown = slowlog(&sealed).await;
    assert!(shown.to_ascii_lowercase().contains("evalsha"), "{shown}");
    assert!(!shown.contains("SECRET"), "{shown}");
}
