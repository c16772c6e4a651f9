//! The event stream: SSE answers read event by event and bounded, the GET stream rmcp
//! reconnects, and the refusals that end its reconnects.

use super::*;

#[tokio::test]
async fn sse_answers_stream_event_by_event() {
    let (tx, rx) = mpsc::unbounded::<Result<Frame<Bytes>, BoxError>>();
    let body = StreamBody::new(rx).boxed_unsync();
    let response = http::Response::builder()
        .header("content-type", "text/event-stream")
        .header("mcp-session-id", "s-9")
        .body(body)
        .unwrap();
    let mock = Mock::new([Ok(response)]);
    let answer = post(&mock, ping()).await.unwrap();
    let StreamableHttpPostResponse::Sse(mut events, session) = answer else {
        panic!("expected SSE, got {answer:?}");
    };
    assert_eq!(session.as_deref(), Some("s-9"));

    // The first event arrives while the server has not finished the body.
    let first = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}"#;
    tx.unbounded_send(Ok(Frame::data(Bytes::from(format!(
        "event: message\ndata: {first}\n\n"
    )))))
    .unwrap();
    // A client that waited for the whole body would wait here forever.
    let event = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("the event before the end of the body")
        .unwrap()
        .unwrap();
    assert_eq!(event.data.as_deref(), Some(first));

    tx.unbounded_send(Ok(Frame::data(Bytes::from_static(
        b"data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n",
    ))))
    .unwrap();
    drop(tx);
    let event = events.next().await.unwrap().unwrap();
    assert_eq!(
        event.data.as_deref(),
        Some(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#)
    );
    assert!(events.next().await.is_none());
}

#[tokio::test]
async fn sse_events_over_the_transport_limit_fail() {
    let mock = Mock::new([answer(
        200,
        &[("content-type", "text/event-stream")],
        "data: 0123456789\n\n",
    )]);
    let answer = mock
        .client()
        .post_message_with_max_sse_event_size(URI.into(), ping(), None, None, HashMap::new(), 8)
        .await
        .unwrap();
    let StreamableHttpPostResponse::Sse(mut events, _) = answer else {
        panic!("expected SSE, got {answer:?}");
    };
    let error = events.next().await.unwrap().unwrap_err();
    assert!(
        error.to_string().contains("maximum size of 8 bytes"),
        "{error}"
    );
}

#[tokio::test]
async fn get_stream_follows_rmcp() {
    let mock = Mock::new([
        answer(405, &[], ""),
        answer(
            200,
            &[("content-type", "text/event-stream")],
            "id: 4\ndata: {}\n\n",
        ),
        answer(200, &[("content-type", "text/plain")], ""),
    ]);
    let client = mock.client();
    let error = client
        .get_stream(URI.into(), Some("s".into()), None, None, HashMap::new())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(error, StreamableHttpError::ServerDoesNotSupportSse),
        "{error:?}"
    );

    let mut events = client
        .get_stream(
            URI.into(),
            Some("s".into()),
            Some("3".into()),
            None,
            HashMap::new(),
        )
        .await
        .unwrap();
    let event = events.next().await.unwrap().unwrap();
    assert_eq!(
        (event.id.as_deref(), event.data.as_deref()),
        (Some("4"), Some("{}"))
    );

    let error = client
        .get_stream(URI.into(), None, None, None, HashMap::new())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(error, StreamableHttpError::UnexpectedContentType(_)),
        "{error:?}"
    );

    let seen = mock.seen();
    assert!(seen.iter().all(|r| r.method == http::Method::GET));
    assert_eq!(seen[1].headers["mcp-session-id"], "s");
    assert_eq!(seen[1].headers["last-event-id"], "3");
    assert!(seen[2].headers.get("mcp-session-id").is_none());
}

/// A refusal no retry can lift, met by the event stream's GET, ends rmcp's reconnects: it is
/// rmcp's `AuthRequired` (its worker retries every `Client` error for ever); a passing trouble
/// stays the layer's error, which rmcp retries.
#[tokio::test]
async fn a_lasting_refusal_on_the_event_stream_ends_rmcps_reconnects() {
    for kind in [
        ErrorKind::InteractionRequired,
        ErrorKind::AuthorizationLimit,
        ErrorKind::LoggedOut,
        ErrorKind::ConsentTimeout,
    ] {
        let mock = Mock::new([Err(Error::new(kind, "no authorization"))]);
        let error = mock
            .client()
            .get_stream(URI.into(), Some("s".into()), None, None, HashMap::new())
            .await
            .err()
            .unwrap();
        assert!(
            matches!(error, StreamableHttpError::AuthRequired(_)),
            "{kind:?}: {error:?}"
        );
    }
    let passing = Error::new(ErrorKind::Transport, "connection reset").mark_transient();
    let mock = Mock::new([Err(passing)]);
    let error = mock
        .client()
        .get_stream(URI.into(), Some("s".into()), None, None, HashMap::new())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(error, StreamableHttpError::Client(TowerHttpError::Layer(_))),
        "{error:?}"
    );
    // A message's POST keeps the layer's own error, for its caller to read.
    let refused = Error::new(ErrorKind::InteractionRequired, "connect first");
    let mock = Mock::new([Err(refused)]);
    let error = post(&mock, ping()).await.unwrap_err();
    assert!(
        matches!(error, StreamableHttpError::Client(TowerHttpError::Layer(_))),
        "{error:?}"
    );
}
