use super::lease::release;
use super::test_server::RedisServer;
use super::*;
use mcp_oauth_flow::ErrorKind;
use mcp_oauth_flow::{
    secrets::{ClientSecret, RefreshToken},
    token::TokenType,
};
use std::time::UNIX_EPOCH;
use tokio::time::Instant;

const RESOURCE: &str = "https://mcp.example.com/mcp";

fn tokens(access: &str, refresh: Option<&str>) -> TokenSet {
    TokenSet::new(
        access,
        TokenType::Bearer,
        "https://as.example.com",
        "client-1",
    )
    .with_refresh_token(refresh.map(|r| RefreshToken::new(r.to_owned())))
    .with_expires_at(Some(UNIX_EPOCH + Duration::from_secs(2_000_000_000)))
}

async fn connect(server: &RedisServer) -> RedisStore {
    RedisStore::connect(&server.url()).await.unwrap()
}

async fn raw<T: ::redis::FromRedisValue>(store: &RedisStore, cmd: &Cmd) -> T {
    cmd.query_async(&mut store.conn.clone()).await.unwrap()
}

pub(super) fn assert_swapped(outcome: Replaced) {
    assert!(matches!(outcome, Replaced::Swapped), "{outcome:?}");
}

/// The access token of the tokens a conflict reports (`None`: nothing stored).
fn conflict(outcome: Replaced) -> Option<String> {
    match outcome {
        Replaced::Conflict(current) => current.map(|t| t.access_token().secret().clone()),
        Replaced::Swapped => panic!("expected a conflict, got a swap"),
    }
}

#[tokio::test]
async fn tokens_and_registrations_round_trip_as_json_under_prefixed_keys() {
    let server = RedisServer::start();
    let store = connect(&server).await.prefix("app-a");
    let saved = tokens("at-secret", Some("rt-secret"));
    store.save_tokens(RESOURCE, &saved).await.unwrap();

    let back = store.load_tokens(RESOURCE).await.unwrap().unwrap();
    assert!(back.same_tokens(&saved));
    assert_eq!(back.expires_at(), saved.expires_at());
    // The value is the TokenSet's JSON, the form FileStore writes.
    let json: String = raw(&store, &Cmd::get(format!("app-a:tokens:{RESOURCE}"))).await;
    let parsed: TokenSet = serde_json::from_str(&json).unwrap();
    assert!(parsed.same_tokens(&saved));

    let registration = ClientRegistration {
        issuer: "https://as.example.com".to_owned(),
        client_id: "client-1".to_owned(),
        client_secret: Some(ClientSecret::new("cs-secret".to_owned())),
        client_secret_expires_at: None,
        token_endpoint_auth_method: Some("client_secret_basic".to_owned()),
        redirect_uris: vec!["http://127.0.0.1:8976/callback".to_owned()],
        grant_types: Vec::new(),
    };
    store.save_client(&registration).await.unwrap();
    let loaded = store
        .load_client("https://as.example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.client_id, "client-1");
    assert_eq!(loaded.client_secret.unwrap().secret(), "cs-secret");

    // Keys name URLs only, never a secret.
    let mut keys: Vec<String> = raw(&store, &::redis::cmd("KEYS").arg("*").to_owned()).await;
    keys.sort();
    assert_eq!(
        keys,
        [
            "app-a:client:https://as.example.com".to_owned(),
            format!("app-a:tokens:{RESOURCE}")
        ]
    );

    // Another prefix is another store; unknown names are absent, not errors.
    let other = connect(&server).await.prefix("app-b");
    assert!(other.load_tokens(RESOURCE).await.unwrap().is_none());
    assert!(other
        .load_client("https://as.example.com")
        .await
        .unwrap()
        .is_none());

    store.remove_client("https://as.example.com").await.unwrap();
    store.remove_client("https://as.example.com").await.unwrap();
    assert!(store
        .load_client("https://as.example.com")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_refused_client_is_removed_only_while_it_is_the_one_stored() {
    let server = RedisServer::start();
    let store = connect(&server).await.prefix("app-a");
    crate::store::contract::removes_only_the_refused_client(&store).await;
    // Not JSON: kept, not an error.
    let key = "app-a:client:https://as.example.com";
    let () = raw(&store, &Cmd::set(key, "not json")).await;
    store
        .remove_refused_client("https://as.example.com", "new")
        .await
        .unwrap();
    let kept: String = raw(&store, &Cmd::get(key)).await;
    assert_eq!(kept, "not json");
}

#[tokio::test]
async fn compare_and_swap_replaces_only_the_expected_tokens() {
    let server = RedisServer::start();
    let store = connect(&server).await;
    let (a, b, c) = (
        tokens("at-a", Some("rt-a")),
        tokens("at-b", Some("rt-b")),
        tokens("at-c", None),
    );

    // Nothing stored: only a caller expecting nothing may write.
    assert_eq!(
        conflict(
            store
                .compare_and_swap_tokens(RESOURCE, Some(&a), Some(&b))
                .await
                .unwrap()
        ),
        None
    );
    assert_swapped(
        store
            .compare_and_swap_tokens(RESOURCE, None, Some(&a))
            .await
            .unwrap(),
    );
    assert_eq!(
        conflict(
            store
                .compare_and_swap_tokens(RESOURCE, None, Some(&b))
                .await
                .unwrap()
        )
        .as_deref(),
        Some("at-a")
    );

    // Same access token, another refresh token: not the same grant state.
    let rotated = tokens("at-a", Some("rt-other"));
    assert!(conflict(
        store
            .compare_and_swap_tokens(RESOURCE, Some(&rotated), Some(&b))
            .await
            .unwrap()
    )
    .is_some());
    let no_refresh = tokens("at-a", None);
    assert!(conflict(
        store
            .compare_and_swap_tokens(RESOURCE, Some(&no_refresh), Some(&b))
            .await
            .unwrap()
    )
    .is_some());

    // Same tokens with other metadata (expiry): the same grant state.
    let same = a
        .clone()
        .with_expires_at(Some(UNIX_EPOCH + Duration::from_secs(1)));
    assert_swapped(
        store
            .compare_and_swap_tokens(RESOURCE, Some(&same), Some(&c))
            .await
            .unwrap(),
    );
    // A token set without a refresh token compares as such.
    assert!(conflict(
        store
            .compare_and_swap_tokens(RESOURCE, Some(&tokens("at-c", Some("x"))), None)
            .await
            .unwrap()
    )
    .is_some());
    assert_swapped(
        store
            .compare_and_swap_tokens(RESOURCE, Some(&c), None)
            .await
            .unwrap(),
    );
    assert!(store.load_tokens(RESOURCE).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_swaps_from_the_same_tokens_have_one_winner() {
    let server = RedisServer::start();
    let (one, two) = (connect(&server).await, connect(&server).await);
    let start = tokens("at-0", Some("rt-0"));
    one.save_tokens(RESOURCE, &start).await.unwrap();
    let attempts: Vec<_> = (0..20)
        .map(|i| {
            let store = if i % 2 == 0 { one.clone() } else { two.clone() };
            let start = start.clone();
            tokio::spawn(async move {
                let mine = tokens(&format!("at-{}", i + 1), Some("rt-new"));
                store
                    .compare_and_swap_tokens(RESOURCE, Some(&start), Some(&mine))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut swapped = 0;
    for attempt in attempts {
        if matches!(attempt.await.unwrap(), Replaced::Swapped) {
            swapped += 1;
        }
    }
    assert_eq!(swapped, 1);
}

#[tokio::test]
async fn a_corrupt_value_is_a_store_error_that_quotes_nothing() {
    let server = RedisServer::start();
    let store = connect(&server).await;
    let corrupt =
        r#"{"access_token":"at","token_type":"sekrit-value","issuer":"i","client_id":"c"}"#;
    let _: () = raw(
        &store,
        &Cmd::set(format!("{DEFAULT_PREFIX}:tokens:{RESOURCE}"), corrupt),
    )
    .await;
    let err = store.load_tokens(RESOURCE).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store);
    assert!(!format!("{err} {err:?}").contains("sekrit"), "{err}");

    let _: () = raw(
        &store,
        &Cmd::set(format!("{DEFAULT_PREFIX}:tokens:{RESOURCE}"), "{not json"),
    )
    .await;
    let err = store
        .compare_and_swap_tokens(RESOURCE, Some(&tokens("at", None)), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_excludes_another_handle_until_dropped() {
    let server = RedisServer::start();
    let (one, two) = (connect(&server).await, connect(&server).await);
    let guard = one.lock(RESOURCE).await.unwrap();
    // Another resource is another lease.
    let _other = two.lock("https://other.example.com/mcp").await.unwrap();

    let waiting = tokio::spawn({
        let two = two.clone();
        async move { two.lock(RESOURCE).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "a held lease was taken twice");
    drop(guard);
    let second = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the released lease was taken")
        .unwrap();
    assert!(second.is_ok());

    // A waiter gives up after its wait limit with a typed error.
    let impatient = one.clone().lock_wait(Duration::from_millis(50));
    let started = Instant::now();
    let err = impatient.lock(RESOURCE).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store);
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert!(err.to_string().contains("still held"), "{err}");
}

#[tokio::test]
async fn a_crashed_holders_lease_expires_after_its_ttl() {
    let server = RedisServer::start();
    let crashed = connect(&server).await.lock_ttl(Duration::from_millis(300));
    let survivor = connect(&server).await;
    let taken = Instant::now();
    let lease = crashed.acquire(RESOURCE).await.unwrap();
    let pttl: i64 = raw(&crashed, ::redis::cmd("PTTL").arg(&lease.key)).await;
    assert!((1..=300).contains(&pttl), "{pttl}");
    // A crash: the guard is never dropped, so the lease is neither renewed nor released.
    lease.crash();

    let _guard = tokio::time::timeout(Duration::from_secs(5), survivor.lock(RESOURCE))
        .await
        .expect("the expired lease was taken")
        .unwrap();
    // Not before the TTL (less Redis's millisecond rounding).
    assert!(taken.elapsed() >= Duration::from_millis(295));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lease_outlives_its_ttl_until_released() {
    let server = RedisServer::start();
    // A TTL of a second, renewed every third of one: a stall of the test's runtime shorter than
    // two thirds of a second loses nothing (at 300 ms, one of 200 ms on a loaded machine could).
    let holder = connect(&server).await.lock_ttl(Duration::from_secs(1));
    let other = connect(&server).await.lock_wait(Duration::from_millis(100));
    let guard = holder.lock(RESOURCE).await.unwrap();
    // A TTL and a half later, a refresh still running: the lease is still its holder's.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let err = other.lock(RESOURCE).await.unwrap_err();
    assert!(err.to_string().contains("still held"), "{err}");
    let key = format!("{DEFAULT_PREFIX}:lock:{RESOURCE}");
    let pttl: i64 = raw(&holder, ::redis::cmd("PTTL").arg(&key)).await;
    assert!((1..=1_000).contains(&pttl), "{pttl}");
    guard.release().await;
    let _taken = tokio::time::timeout(Duration::from_secs(5), other.lock(RESOURCE))
        .await
        .expect("the released lease was taken")
        .unwrap();
}

#[tokio::test]
async fn dropping_the_guard_releases_its_own_lease_only() {
    let server = RedisServer::start();
    let store = connect(&server).await;
    let key = format!("{DEFAULT_PREFIX}:lock:{RESOURCE}");
    let guard = store.lock(RESOURCE).await.unwrap();
    let exists = Cmd::exists(&key);
    assert_eq!(raw::<i64>(&store, &exists).await, 1);
    drop(guard);
    let deadline = Instant::now() + Duration::from_secs(5);
    while raw::<i64>(&store, &exists).await == 1 {
        assert!(
            Instant::now() < deadline,
            "the dropped lease is still there"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Our lease expired and someone else took the key: releasing ours leaves theirs.
    let lease = store.acquire(RESOURCE).await.unwrap();
    let _: () = raw(&store, &Cmd::set(&key, "someone-else")).await;
    let mut conn = store.conn.clone();
    assert!(!release(&mut conn, &lease.key, &lease.token).await.unwrap());
    let holder: String = raw(&store, &Cmd::get(&key)).await;
    assert_eq!(holder, "someone-else");
    let _: () = raw(&store, &Cmd::set(&key, &lease.token)).await;
    assert!(release(&mut conn, &lease.key, &lease.token).await.unwrap());
}

#[tokio::test]
async fn neither_debug_nor_errors_show_the_password() {
    assert_eq!(
        redact_url("redis://user:hunter2@redis.internal:6380/2"),
        "redis://user:***@redis.internal:6380/2"
    );
    assert_eq!(
        redact_url("redis+unix:///run/redis.sock?db=1&pass=hunter2"),
        "redis+unix:///run/redis.sock"
    );
    assert!(!redact_url("hunter2://::").contains("hunter2"));

    let server = RedisServer::start();
    let store = connect(&server).await.prefix("my-app");
    let shown = format!("{store:?}");
    assert!(
        shown.contains("127.0.0.1") && shown.contains("my-app"),
        "{shown}"
    );

    // Nothing listens on a port that was just free: a typed error, without the password.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let once = ConnectionManagerConfig::new().set_number_of_retries(0);
    let url = format!("redis://:hunter2@127.0.0.1:{port}/");
    let err = RedisStore::connect_with_config(&url, once)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store);
    assert!(err.is_transient());
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("127.0.0.1"), "{shown}");
    // A URL the redis crate refuses.
    let err = RedisStore::connect("redis://:hunter2@127.0.0.1:6379/not-a-db")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store);
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err}");
}

#[tokio::test]
async fn a_status_record_lives_for_its_ttl_after_each_write() {
    use crate::store::{LastError, LastFlow};
    let server = RedisServer::start();
    let store = connect(&server).await.prefix("app-a");
    let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let failed = LastFlow::Failed(LastError::new(ErrorKind::Timeout, "no answer", at));
    let key = &Cmd::pttl(format!("app-a:status:{RESOURCE}"));
    store.save_last_flow(RESOURCE, &failed).await.unwrap();
    assert_eq!(store.load_last_flow(RESOURCE).await.unwrap(), Some(failed));
    let ttl: i64 = raw(&store, key).await;
    let thirty_days = 30 * 24 * 3600 * 1000;
    assert!((thirty_days - 60_000..=thirty_days).contains(&ttl), "{ttl}");
    // A shorter one, set by the application, and renewed by each write.
    let store = store.status_ttl(Duration::from_secs(2));
    store
        .save_last_flow(RESOURCE, &LastFlow::Succeeded { at })
        .await
        .unwrap();
    let ttl: i64 = raw(&store, key).await;
    assert!((1..=2_000).contains(&ttl), "{ttl}");
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(store.load_last_flow(RESOURCE).await.unwrap(), None);
    // "For ever": as long as Redis takes (a hundred years), not an error on every write.
    let store = store.status_ttl(Duration::MAX);
    store
        .save_last_flow(RESOURCE, &LastFlow::Succeeded { at })
        .await
        .unwrap();
    let ttl: i64 = raw(&store, key).await;
    assert!(ttl > 99 * 365 * 24 * 3600 * 1000, "{ttl}");
}

/// A lease TTL outside what Redis takes (past a 64-bit count of milliseconds) or what makes a
/// lease at all (a millisecond, renewed every third of one) is taken as the nearest bound.
#[tokio::test]
async fn a_lease_ttl_out_of_bounds_is_taken_as_the_nearest_bound() {
    let server = RedisServer::start();
    let longest = connect(&server).await.lock_ttl(Duration::MAX);
    let lease = longest.acquire(RESOURCE).await.unwrap();
    let pttl: i64 = raw(&longest, ::redis::cmd("PTTL").arg(&lease.key)).await;
    assert!((86_399_000..=86_400_000).contains(&pttl), "{pttl}");
    lease.release_now().await;
    let shortest = connect(&server).await.lock_ttl(Duration::from_nanos(1));
    // Taken as the bound (a nanosecond was once taken as a millisecond, a lease gone before
    // its holder could renew it); read from the store rather than from Redis's clock, which a
    // stall of this test's runtime would run down.
    assert_eq!(shortest.lock_ttl, MIN_LOCK_TTL);
    let lease = shortest.acquire(RESOURCE).await.unwrap();
    let pttl: i64 = raw(&shortest, ::redis::cmd("PTTL").arg(&lease.key)).await;
    // No longer than the bound, and with a TTL (-1 would be a lease that never runs out); -2,
    // already run out, only after a stall of the test's runtime.
    assert!(pttl == -2 || (1..=100).contains(&pttl), "{pttl}");
    lease.release_now().await;
}

/// A server busy for a moment (loading its data, a failover under way) may answer the same
/// call later: its errors are transient, as a dropped connection's are; a refused command's or
/// a missing permission's are not.
#[test]
fn a_server_busy_for_a_moment_is_a_passing_error() {
    use ::redis::{ErrorKind as RedisKind, RedisError, ServerErrorKind};
    let error = |kind| {
        redis_error(
            "cannot read".into(),
            RedisError::from((kind, "from the server")),
        )
    };
    for passing in [
        ServerErrorKind::BusyLoading,
        ServerErrorKind::TryAgain,
        ServerErrorKind::MasterDown,
        ServerErrorKind::ClusterDown,
        ServerErrorKind::ReadOnly,
    ] {
        assert!(
            error(RedisKind::Server(passing)).is_transient(),
            "{passing:?}"
        );
    }
    for lasting in [
        ServerErrorKind::ResponseError,
        ServerErrorKind::NoPerm,
        ServerErrorKind::NoScript,
    ] {
        assert!(
            !error(RedisKind::Server(lasting)).is_transient(),
            "{lasting:?}"
        );
    }
}
