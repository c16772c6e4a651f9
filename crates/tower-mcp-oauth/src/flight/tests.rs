//! `flight`'s unit tests.

use super::*;

const BUDGET: u32 = 2;
const WINDOW: Duration = Duration::from_secs(60);

#[tokio::test]
async fn second_caller_joins_the_first() {
    let flights = Flights::default();
    let started = |_| -> BoxFuture<'static, _> { Box::pin(async { Ok(()) }) };
    let (a, joined_a) = flights.join_or_start("k", "k/a", true, started);
    let (b, joined_b) = flights.join_or_start("k", "k/a", false, |_| unreachable!("must join"));
    let (c, joined_c) = flights.join_or_start("k", "k/c", false, |_| unreachable!("must join"));
    assert_eq!(
        [joined_a, joined_b, joined_c],
        [
            Joined::Started,
            Joined::SameServer { refresh: true },
            Joined::OtherServer
        ]
    );
    a.await.unwrap();
    b.await.unwrap();
    c.await.unwrap();
}

#[test]
fn one_origin_is_one_flight_however_written() {
    let key = |uri: &str| flight_key(&uri.parse().unwrap());
    assert_eq!(key("https://h/a"), "https://h");
    for same in ["https://H:443/b", "https://h:0443/c", "https://user@h/d"] {
        assert_eq!(key(same), key("https://h/a"), "{same}");
    }
    assert_eq!(key("http://h:80/"), key("http://h/"));
    assert_eq!(key("https://h:8443/"), "https://h:8443");
    assert_ne!(key("http://h/"), key("https://h/"));
}

#[test]
fn finish_clears_and_backoff_expires() {
    let flights = Flights::default();
    let (_f, _) = flights.join_or_start("k", "k/a", false, |_| Box::pin(async { Ok(()) }));
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
    let down = Err(Error::new(ErrorKind::Transport, "down"));
    flights.finish("k", "k/a", 0, &down, t0);
    assert!(lock(&flights.inflight).is_empty());
    let backoff = Duration::from_secs(1);
    assert_eq!(
        flights.recent_failure("k/a", t0, backoff).unwrap().kind(),
        ErrorKind::Transport
    );
    // Another server on the origin is not held back.
    assert!(flights.recent_failure("k/b", t0, backoff).is_none());
    assert!(flights
        .recent_failure("k/a", t0 + backoff, backoff)
        .is_none());
    flights.finish("k", "k/a", 1, &Ok(()), t0);
    assert!(flights.recent_failure("k/a", t0, backoff).is_none());
}

#[test]
fn a_clock_stepped_back_ends_the_backoff_and_the_budget_window() {
    let flights = Flights::default();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
    let an_hour_back = t0 - Duration::from_secs(3600);
    let down = Err(Error::new(ErrorKind::Transport, "down"));
    flights.finish("k", "k/a", 0, &down, t0);
    let backoff = Duration::from_secs(30);
    assert!(flights.recent_failure("k/a", t0, backoff).is_some());
    assert!(flights
        .recent_failure("k/a", an_hour_back, backoff)
        .is_none());
    let window = Duration::from_secs(600);
    flights.spend_authorization("k/a", t0, 1, window).unwrap();
    assert!(flights.spend_authorization("k/a", t0, 1, window).is_err());
    flights
        .spend_authorization("k/a", an_hour_back, 1, window)
        .unwrap();
}

/// Every record kept per server URL, origin or logged-out URL stays within
/// [`MAX_RECORDS`] however many URLs fail, step up, authorize or are logged out of, and
/// the newest entry of each still counts.
#[test]
fn records_per_url_are_bounded() {
    let flights = Flights::default();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
    let failed = Err(Error::new(ErrorKind::Transport, "down"));
    let first_flow = flights.logout_generation("https://h/0");
    // At its limit (two of two), before a thousand others at one of two: step-ups, and
    // authorizations in the window.
    for _ in 0..2 {
        flights.try_step_up("https://h/limited", "s", 2).unwrap();
        flights
            .spend_authorization("https://h/limited", t0, BUDGET, WINDOW)
            .unwrap();
    }
    for i in 0..MAX_RECORDS + 10 {
        let server = format!("https://h/{i}");
        let at = t0 + Duration::from_millis(i as u64);
        flights.finish(&server, &server, 0, &failed, at);
        flights.try_step_up(&server, "s", 2).unwrap();
        flights
            .spend_authorization(&server, at, BUDGET, WINDOW)
            .unwrap();
        flights.logging_out(&format!("https://g/{i}"));
    }
    assert_eq!(lock(&flights.failures).len(), MAX_RECORDS);
    assert_eq!(lock(&flights.step_ups).len(), MAX_RECORDS);
    assert_eq!(lock(&flights.authorizations).len(), MAX_RECORDS);
    assert_eq!(lock(&flights.logouts).latest.len(), MAX_RECORDS);
    // The oldest failure gave way; the newest still holds callers back.
    let last = format!("https://h/{}", MAX_RECORDS + 9);
    let later = t0 + Duration::from_secs(2);
    assert!(flights.recent_failure("https://h/0", t0, WINDOW).is_none());
    assert!(flights.recent_failure(&last, later, WINDOW).is_some());
    // The newest counts still refuse, and so does one at its limit that came first.
    assert!(flights.try_step_up(&last, "s", 1).is_err());
    assert!(flights.try_step_up("https://h/limited", "s", 2).is_err());
    assert!(flights
        .spend_authorization("https://h/limited", later, BUDGET, WINDOW)
        .is_err());
    flights
        .spend_authorization(&last, later, BUDGET, WINDOW)
        .unwrap();
    assert!(flights
        .spend_authorization(&last, later, BUDGET, WINDOW)
        .is_err());
    // A flow that started before a forgotten logout counts as logged out: it was of a
    // URL no longer known, which could have been its server. One started after does not.
    assert_eq!(
        first_flow.check(&flights, None).unwrap_err().kind(),
        ErrorKind::LoggedOut
    );
    flights
        .logout_generation("https://h/0")
        .check(&flights, None)
        .unwrap();
}

#[test]
fn the_last_error_outlives_the_backoff_until_a_success() {
    let flights = Flights::default();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
    let failed = Err(Error::new(ErrorKind::Transport, "down"));
    flights.finish("k", "k", 0, &failed, t0);
    flights.record_outcome("k", LastFlow::of(&failed, t0));
    assert!(flights
        .recent_failure("k", t0 + Duration::from_secs(60), Duration::from_secs(1))
        .is_none());
    let last = flights.last_flow("k").unwrap();
    let error = last.error().unwrap();
    assert_eq!((error.at, error.kind), (t0, ErrorKind::Transport));
    assert!(flights.last_flow("other").is_none());
    flights.finish("k", "k", 1, &Ok(()), t0);
    flights.record_outcome("k", LastFlow::of(&Ok(()), t0));
    assert!(flights.last_flow("k").unwrap().error().is_none());
}

#[test]
fn step_ups_are_bounded_per_need() {
    let flights = Flights::default();
    for _ in 0..3 {
        flights.try_step_up("k", "admin", 3).unwrap();
    }
    assert_eq!(
        flights.try_step_up("k", "admin", 3).unwrap_err().kind(),
        ErrorKind::StepUpLimit
    );
    flights.try_step_up("k", "write", 3).unwrap();
    flights.step_up_succeeded("k", "admin");
    flights.try_step_up("k", "admin", 3).unwrap();
}

#[test]
fn a_server_naming_new_scopes_every_time_is_bounded() {
    let flights = Flights::default();
    for i in 0..MAX_OUTSTANDING_STEP_UPS {
        flights.try_step_up("k", &format!("s{i}"), 3).unwrap();
    }
    let refused = flights.try_step_up("k", "one-more", 3).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::StepUpLimit);
    assert_eq!(lock(&flights.step_ups).len(), MAX_OUTSTANDING_STEP_UPS);
    // A need already counted is counted on, another origin has its own room, and a
    // success makes room again.
    flights.try_step_up("k", "s0", 3).unwrap();
    flights.try_step_up("other", "one-more", 3).unwrap();
    flights.step_up_succeeded("k", "s1");
    flights.try_step_up("k", "one-more", 3).unwrap();
}

#[test]
fn authorization_budget_per_window() {
    let flights = Flights::default();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
    flights
        .spend_authorization("k", t0, BUDGET, WINDOW)
        .unwrap();
    flights
        .spend_authorization("k", t0, BUDGET, WINDOW)
        .unwrap();
    assert_eq!(
        flights
            .spend_authorization("k", t0, BUDGET, WINDOW)
            .unwrap_err()
            .kind(),
        ErrorKind::AuthorizationLimit
    );
    flights
        .spend_authorization("k", t0 + Duration::from_secs(60), BUDGET, WINDOW)
        .unwrap();
}
