//! Pending web logins in a real redis-server: the key layout, the time-to-live, take-once under
//! a race, and forgetting a user.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use super::test_server::RedisServer;
use super::*;
use crate::web::{PendingLogin, PendingLoginStore};
use mcp_oauth_flow::ErrorKind;

const TTL: Duration = Duration::from_secs(600);

fn login(server: &str) -> PendingLogin {
    PendingLogin::for_tests(server, UNIX_EPOCH + Duration::from_secs(2_000_000_000))
}

async fn connect(server: &RedisServer, prefix: &str) -> RedisStore {
    RedisStore::connect(&server.url())
        .await
        .unwrap()
        .prefix(prefix)
}

async fn keys(store: &RedisStore, pattern: &str) -> Vec<String> {
    let mut conn = store.conn.clone();
    let mut keys: Vec<String> = ::redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_login_waits_under_a_key_naming_neither_user_nor_state_for_its_ttl() {
    let server = RedisServer::start();
    let store = connect(&server, "app").await;
    store
        .put(
            "alice@example.com",
            "the-state",
            &login("https://a.example/"),
            TTL,
        )
        .await
        .unwrap();

    let stored = keys(&store, "app:pending:*").await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    let key = &stored[0];
    assert!(
        !key.contains("alice") && !key.contains("the-state"),
        "{key}"
    );
    // `app:pending:` + two 64-digit hashes.
    assert_eq!(key.len(), "app:pending:".len() + 64 + 1 + 64, "{key}");
    let mut conn = store.conn.clone();
    let ttl_ms: i64 = Cmd::pttl(key).query_async(&mut conn).await.unwrap();
    assert!(ttl_ms > 590_000 && ttl_ms <= 600_000, "{ttl_ms}");
    // The value is the record's JSON, with its version; it holds the login's secrets.
    let json: String = Cmd::get(key).query_async(&mut conn).await.unwrap();
    assert!(json.starts_with(r#"{"version":1,"#), "{json}");
    assert!(json.contains("verifier-secret"));

    let taken = store.take("alice@example.com", "the-state").await.unwrap();
    assert_eq!(taken.unwrap().server_url().as_str(), "https://a.example/");
    assert!(keys(&store, "app:*").await.is_empty(), "taken means gone");
}

#[tokio::test]
async fn a_login_is_taken_once_and_only_by_its_user() {
    let server = RedisServer::start();
    let store = connect(&server, "once").await;
    store
        .put("alice", "s1", &login("https://a.example/"), TTL)
        .await
        .unwrap();
    assert!(
        store.take("bob", "s1").await.unwrap().is_none(),
        "not bob's"
    );
    assert!(store.take("alice", "s2").await.unwrap().is_none());
    assert!(
        store.take("alice", "s1").await.unwrap().is_some(),
        "still alice's"
    );
    assert!(store.take("alice", "s1").await.unwrap().is_none(), "once");
}

#[tokio::test]
async fn a_login_expires_with_its_ttl() {
    let server = RedisServer::start();
    let store = connect(&server, "ttl").await;
    let short = Duration::from_millis(100);
    store
        .put("alice", "s1", &login("https://a.example/"), short)
        .await
        .unwrap();
    store
        .put("alice", "s2", &login("https://a.example/"), TTL)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(
        store.take("alice", "s1").await.unwrap().is_none(),
        "expired"
    );
    assert!(store.take("alice", "s2").await.unwrap().is_some());
}

/// Two processes receiving the same callback at once: each round, every connection tries to
/// take the same login, and exactly one gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_takes_over_separate_connections_have_one_winner() {
    let server = RedisServer::start();
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(Arc::new(connect(&server, "race").await));
    }
    for round in 0..25 {
        let state = format!("state-{round}");
        stores[0]
            .put("alice", &state, &login("https://a.example/"), TTL)
            .await
            .unwrap();
        let takes: Vec<_> = stores
            .iter()
            .map(|store| {
                let (store, state) = (Arc::clone(store), state.clone());
                tokio::spawn(async move { store.take("alice", &state).await.unwrap().is_some() })
            })
            .collect();
        let mut winners = 0;
        for take in takes {
            winners += usize::from(take.await.unwrap());
        }
        assert_eq!(winners, 1, "round {round}");
    }
}

#[tokio::test]
async fn a_second_put_under_the_same_state_does_not_replace_the_first() {
    let server = RedisServer::start();
    let store = connect(&server, "nx").await;
    store
        .put("alice", "s1", &login("https://a.example/"), TTL)
        .await
        .unwrap();
    let err = store
        .put("alice", "s1", &login("https://b.example/"), TTL)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store);
    assert!(!err.to_string().contains("s1"), "{err}");
    let kept = store.take("alice", "s1").await.unwrap().unwrap();
    assert_eq!(kept.server_url().as_str(), "https://a.example/");
}

#[tokio::test]
async fn forgetting_a_user_deletes_their_logins_only() {
    let server = RedisServer::start();
    // A prefix with glob characters, matched literally.
    let store = connect(&server, "app*[1]").await;
    let other_app = connect(&server, "app-x[1]").await;
    for state in ["s1", "s2", "s3"] {
        store
            .put("alice", state, &login("https://a.example/"), TTL)
            .await
            .unwrap();
    }
    store
        .put("bob", "s4", &login("https://a.example/"), TTL)
        .await
        .unwrap();
    other_app
        .put("alice", "s5", &login("https://a.example/"), TTL)
        .await
        .unwrap();
    store.forget_user("alice").await.unwrap();
    for state in ["s1", "s2", "s3"] {
        assert!(
            store.take("alice", state).await.unwrap().is_none(),
            "{state}"
        );
    }
    assert!(store.take("bob", "s4").await.unwrap().is_some());
    assert!(other_app.take("alice", "s5").await.unwrap().is_some());
}

#[tokio::test]
async fn a_corrupt_login_is_a_store_error_that_quotes_nothing() {
    let server = RedisServer::start();
    let store = connect(&server, "bad").await;
    store
        .put("alice", "s1", &login("https://a.example/"), TTL)
        .await
        .unwrap();
    let key = keys(&store, "bad:pending:*").await.remove(0);
    let mut conn = store.conn.clone();
    let () = Cmd::set(&key, r#"{"version":1,"secret-looking":"verifier-secret"#)
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = store.take("alice", "s1").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store);
    assert!(!format!("{err:#}").contains("verifier-secret"), "{err:#}");
}

/// Forgetting a user reads their index, not the database: with many other keys in it, no
/// `SCAN` (one round trip per hundred keys) and no `KEYS`; the index lives as long as the
/// user's longest login, and goes with the last one taken.
#[tokio::test]
async fn forgetting_a_user_reads_their_index_not_the_database() {
    let server = RedisServer::start();
    let store = connect(&server, "app").await;
    let mut conn = store.conn.clone();
    for i in 0..1_000 {
        let _: () = Cmd::set(format!("other:{i}"), "x")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    store
        .put("alice", "short", &login("https://a.example/"), TTL / 2)
        .await
        .unwrap();
    store
        .put("alice", "long", &login("https://a.example/"), TTL)
        .await
        .unwrap();
    let index = keys(&store, "app:pending-index:*").await;
    assert_eq!(index.len(), 1, "{index:?}");
    let ttl_ms: i64 = Cmd::pttl(&index[0]).query_async(&mut conn).await.unwrap();
    assert!(ttl_ms > 590_000 && ttl_ms <= 600_000, "{ttl_ms}");

    let _: () = ::redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .unwrap();
    store.forget_user("alice").await.unwrap();
    let stats: String = ::redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!stats.contains("cmdstat_scan:"), "{stats}");
    assert!(!stats.contains("cmdstat_keys:"), "{stats}");
    assert!(keys(&store, "app:*").await.is_empty());

    // Taken one by one, the last login takes the index with it.
    for state in ["s1", "s2"] {
        store
            .put("bob", state, &login("https://a.example/"), TTL)
            .await
            .unwrap();
    }
    for state in ["s1", "s2"] {
        assert!(store.take("bob", state).await.unwrap().is_some());
    }
    assert!(keys(&store, "app:*").await.is_empty());
}

/// A user who starts logins faster than they expire keeps their index alive: the keys of the
/// logins Redis dropped leave it as new ones are put, so it holds about the live ones rather
/// than every login ever started.
#[tokio::test]
async fn the_index_sheds_the_logins_that_expired() {
    let server = RedisServer::start();
    let store = connect(&server, "prune").await;
    // A login that keeps the index alive throughout, as a user's steady stream of logins does.
    store
        .put("alice", "long", &login("https://a.example/"), TTL)
        .await
        .unwrap();
    for n in 0..50 {
        let state = format!("old-{n}");
        store
            .put(
                "alice",
                &state,
                &login("https://a.example/"),
                Duration::from_millis(50),
            )
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for n in 0..10 {
        let state = format!("new-{n}");
        store
            .put("alice", &state, &login("https://a.example/"), TTL)
            .await
            .unwrap();
    }
    // Each put checks 16 members: at least 16 - (live ones) expired keys go each time, so ten
    // puts shed all fifty; the eleven live ones stay.
    let mut conn = store.conn.clone();
    let index = keys(&store, "prune:pending-index:*").await;
    assert_eq!(index.len(), 1, "{index:?}");
    let members: i64 = Cmd::scard(&index[0]).query_async(&mut conn).await.unwrap();
    assert_eq!(members, 11);
    assert!(store.take("alice", "long").await.unwrap().is_some());
}
