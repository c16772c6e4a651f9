//! The token cache's tests: lookups by origin and path, expiry and refresh, epochs.

use super::*;
use mcp_oauth_flow::{secrets::RefreshToken, token::TokenType};
use std::time::Duration;

fn uri(s: &str) -> Uri {
    s.parse().unwrap()
}

fn fresh(l: Lookup) -> Option<HeaderValue> {
    match l {
        Lookup::Fresh(h, _, _) => Some(h),
        _ => None,
    }
}

#[test]
fn the_lookup_covers_what_covers_covers() {
    let resources = [
        "http://localhost:3000/mcp",
        "https://Example.com",
        "https://example.com/a/b/",
        "http://127.0.0.1/",
        "http://[::1]:8080/mcp",
    ];
    // (No `ws://` resource: the URL policy admits `https` and loopback `http` only, so no
    // `ws://` request finds a session.)
    let requests = [
        "http://localhost:3000/mcp",
        "http://LOCALHOST:3000/mcp/sub?x=1",
        "http://localhost:3000/mcpx",
        "http://localhost:3001/mcp",
        "https://example.com:443/a/b/c",
        "https://EXAMPLE.com/a/bc",
        "https://example.com/a",
        "https://example.com.evil.net/",
        "http://127.0.0.1:80/x",
        "http://[::1]:8080/mcp/1",
        "http://[::1]/mcp",
        "ws://example.com/socket",
        "ws://example.com:80/socket",
        // Written otherwise than the resource: userinfo, a default or padded port, case.
        "http://user:pw@localhost:3000/mcp",
        "http://localhost:03000/mcp",
        "HTTPS://EXAMPLE.COM:0443/a/b",
        "http://127.0.0.1:80/",
        "http://[::1]:08080/mcp",
        "http://localhost:/mcp",
        "http://127.0.0.1:/x",
        // Below the prefix by its bytes, out of it once a server removes dot-segments.
        "https://example.com/a/b/../../x",
        "http://localhost:3000/mcp/%2E%2e/admin",
        "/mcp",
    ];
    let mut agreed = 0;
    for r in resources {
        let resource = Url::parse(r).unwrap();
        // Held alone (the table's sole bucket) and among others, in a bucket of its own
        // and in one every origin shares.
        let alone: &[&str] = &[];
        let among: &[&str] = &["http://other.example:3000/", "https://example.org/a"];
        for (cache, others) in [
            (Cache::default(), alone),
            (Cache::default(), among),
            (colliding(), alone),
            (colliding(), among),
        ] {
            for other in others {
                let tokens = TokenSet::new("o", TokenType::Bearer, "i", "c");
                cache.install(Url::parse(other).unwrap(), tokens, None);
            }
            cache.install(
                resource.clone(),
                TokenSet::new("t", TokenType::Bearer, "i", "c"),
                None,
            );
            for q in requests {
                let q = uri(q);
                let sessions = cache.sessions.load();
                // The others cover none of the requests: any answer is this resource's.
                let found = find(&sessions, &q).map(|s| &s.resource);
                let expected = covers(&resource, &q).then_some(&resource);
                assert_eq!(found, expected, "{r} vs {q}");
                agreed += usize::from(found.is_some());
            }
        }
    }
    // Not a matrix of refusals only.
    assert!(agreed >= 40, "{agreed}");
}

#[test]
fn tokens_never_leave_their_resource() {
    let cache = Cache::default();
    cache.install(
        Url::parse("http://localhost:3000/mcp").unwrap(),
        TokenSet::new("t", TokenType::Bearer, "i", "c"),
        None,
    );
    let now = SystemTime::now;
    let header = fresh(cache.lookup(&uri("http://localhost:3000/mcp"), now)).unwrap();
    assert!(header.is_sensitive());
    assert!(fresh(cache.lookup(&uri("http://localhost:4000/mcp"), now)).is_none());
}

/// A DPoP token's session hands its tokens to the hot path; a bearer one (even with a key,
/// RFC 9449 §5's bearer answer to a proof) hands nothing, so no proof is signed.
#[test]
fn only_dpop_sessions_carry_their_tokens() {
    let cache = Cache::default();
    let key = mcp_oauth_flow::dpop::DpopKey::from_entropy([2; 32]).unwrap();
    let dpop = Url::parse("http://localhost:3000/a").unwrap();
    let bearer = Url::parse("http://localhost:3000/b").unwrap();
    cache.install(
        dpop,
        TokenSet::new("d", TokenType::DPoP, "i", "c").with_dpop_key(Some(key.clone())),
        None,
    );
    cache.install(
        bearer,
        TokenSet::new("b", TokenType::Bearer, "i", "c").with_dpop_key(Some(key)),
        None,
    );
    let now = SystemTime::now;
    let Lookup::Fresh(header, _, Some(tokens)) = cache.lookup(&uri("http://localhost:3000/a"), now)
    else {
        panic!("a DPoP session")
    };
    assert_eq!(header, "DPoP d");
    assert_eq!(tokens.access_token().secret(), "d");
    assert!(cache
        .dpop_tokens(&uri("http://localhost:3000/a"), &header)
        .is_some());
    assert!(matches!(
        cache.lookup(&uri("http://localhost:3000/b"), now),
        Lookup::Fresh(_, _, None)
    ));
    // A header that is not the session's current one gets no proof from it.
    let stale = HeaderValue::from_static("DPoP old");
    assert!(cache
        .dpop_tokens(&uri("http://localhost:3000/a"), &stale)
        .is_none());
}

#[test]
fn staleness_and_epochs() {
    let cache = Cache::default();
    let r = Url::parse("http://localhost:3000/").unwrap();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
    let u = uri("http://localhost:3000/mcp");
    cache.install(
        r.clone(),
        TokenSet::new("a", TokenType::Bearer, "i", "c"),
        None,
    );
    let Lookup::Fresh(_, first, _) = cache.lookup(&u, || t0) else {
        panic!()
    };
    assert!(cache.newer(&u, first, t0).is_none());

    // Due for refresh with a refresh token: stale. Without one: used to its expiry.
    let with_rt = TokenSet::new("b", TokenType::Bearer, "i", "c")
        .with_refresh_token(Some(RefreshToken::new("r".into())))
        .with_expires_at(Some(t0 + Duration::from_secs(60)));
    cache.install(r.clone(), with_rt, Some(t0 + Duration::from_secs(50)));
    assert!(fresh(cache.lookup(&u, || t0)).is_some());
    assert_eq!(cache.newer(&u, first, t0).unwrap(), "Bearer b");
    assert!(matches!(
        cache.lookup(&u, || t0 + Duration::from_secs(50)),
        Lookup::Stale(_)
    ));

    let no_rt = TokenSet::new("c", TokenType::Bearer, "i", "c")
        .with_expires_at(Some(t0 + Duration::from_secs(60)));
    cache.install(r.clone(), no_rt, Some(t0 + Duration::from_secs(50)));
    assert!(fresh(cache.lookup(&u, || t0 + Duration::from_secs(55))).is_some());
    assert!(matches!(
        cache.lookup(&u, || t0 + Duration::from_secs(60)),
        Lookup::Missing
    ));

    cache.remove(&r);
    assert!(cache.session(&u).is_none());
}

fn bearer(token: &str) -> TokenSet {
    TokenSet::new(token, TokenType::Bearer, "i", "c")
}

/// A cache whose origins all share one bucket, as a hash collision would make them.
fn colliding() -> Cache {
    Cache {
        sessions: ArcSwap::from_pointee(OriginTable::colliding()),
        next_epoch: AtomicU64::new(0),
        checked_origins: ArcSwap::from_pointee(OriginTable::colliding()),
    }
}

#[test]
fn a_path_scoped_token_wins_over_the_origin_one_and_stays_bound_to_its_origin() {
    for cache in [Cache::default(), colliding()] {
        let now = SystemTime::now;
        cache.install(
            Url::parse("https://a.example/").unwrap(),
            bearer("root"),
            None,
        );
        cache.install(
            Url::parse("https://a.example/mcp").unwrap(),
            bearer("mcp"),
            None,
        );
        cache.install(
            Url::parse("https://b.example/mcp").unwrap(),
            bearer("b"),
            None,
        );
        let at = |u: &str| fresh(cache.lookup(&uri(u), now));
        assert_eq!(at("https://a.example/mcp/x").unwrap(), "Bearer mcp");
        assert_eq!(at("https://A.EXAMPLE:443/mcp").unwrap(), "Bearer mcp");
        assert_eq!(at("https://a.example/mcpx").unwrap(), "Bearer root");
        assert_eq!(at("https://b.example/mcp").unwrap(), "Bearer b");
        assert!(at("https://b.example/other").is_none());
        assert!(at("http://a.example/mcp").is_none());
        assert!(at("https://a.example:8443/mcp").is_none());
        // A scheme whose default port only `url` knows: found as `covers` finds it.
        cache.install(
            Url::parse("ws://c.example/socket").unwrap(),
            bearer("ws"),
            None,
        );
        assert_eq!(at("ws://c.example:80/socket").unwrap(), "Bearer ws");
        assert!(at("ws://c.example/socket").is_none());
        cache.remove(&Url::parse("ws://c.example/socket").unwrap());
        // Replacing a resource's tokens keeps one session for it, with a newer epoch.
        let (_, before) = cache.header(&uri("https://a.example/mcp")).unwrap();
        cache.install(
            Url::parse("https://a.example/mcp").unwrap(),
            bearer("mcp2"),
            None,
        );
        assert_eq!(cache.len(), 3);
        let (header, after) = cache.header(&uri("https://a.example/mcp")).unwrap();
        assert_eq!(header, "Bearer mcp2");
        assert!(after.epoch > before.epoch);
        // Removing one leaves the rest of its bucket.
        cache.remove(&Url::parse("https://a.example/mcp").unwrap());
        assert_eq!(at("https://a.example/mcp").unwrap(), "Bearer root");
        assert_eq!(at("https://b.example/mcp").unwrap(), "Bearer b");
    }
}

#[test]
fn the_checked_origins_are_bounded_and_keep_the_latest() {
    let cache = Cache::default();
    for port in 1..=(MAX_CHECKED_ORIGINS as u16 + 10) {
        cache.mark_origin_checked(&uri(&format!("http://127.0.0.1:{port}/mcp")));
    }
    assert!(cache.checked_origins.load().buckets() <= MAX_CHECKED_ORIGINS);
    let last = MAX_CHECKED_ORIGINS as u16 + 10;
    assert!(cache.origin_checked(&uri(&format!("http://127.0.0.1:{last}/"))));
}

#[test]
fn checked_origins_are_origins_whatever_the_case_or_default_port() {
    for cache in [Cache::default(), colliding()] {
        assert!(!cache.origin_checked(&uri("https://a.example/mcp")));
        cache.mark_origin_checked(&uri("https://A.example/mcp"));
        cache.mark_origin_checked(&uri("https://a.example:443/other"));
        assert_eq!(cache.checked_origins.load().len(), 1);
        assert!(cache.origin_checked(&uri("https://a.example/")));
        assert!(cache.origin_checked(&uri("HTTPS://a.EXAMPLE:443/x")));
        assert!(!cache.origin_checked(&uri("http://a.example/")));
        assert!(!cache.origin_checked(&uri("https://a.example:8443/")));
        assert!(!cache.origin_checked(&uri("https://b.example/")));
        // A relative URI, or one with no host, has no origin to look up.
        assert!(cache.origin_checked(&uri("/mcp")));
        assert!(cache.origin_checked(&uri("http://:80/")));
        assert!(cache.origin_checked(&uri("http://u@:80/")));
    }
}

#[test]
fn a_thousand_servers_each_find_their_own_token() {
    let cache = Cache::default();
    for i in 0..1_000 {
        let resource = Url::parse(&format!("https://s{i}.example/mcp")).unwrap();
        cache.install(resource, bearer(&format!("t{i}")), None);
    }
    assert_eq!(cache.len(), 1_000);
    for i in [0, 1, 499, 999] {
        let header =
            fresh(cache.lookup(&uri(&format!("https://s{i}.example/mcp")), SystemTime::now));
        assert_eq!(header.unwrap(), format!("Bearer t{i}").as_str());
    }
    assert!(fresh(cache.lookup(&uri("https://s1000.example/mcp"), SystemTime::now)).is_none());
}
