use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use super::*;

#[test]
fn sse_with_priming_event_and_notification() {
    let body = b"id: 1\nretry: 1000\ndata:\n\n\
        event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n\n\
        event: message\r\ndata: {\"jsonrpc\":\"2.0\",\r\ndata: \"id\":7,\"result\":{\"ok\":true}}\r\n\r\n";
    let reply = find_response("text/event-stream", body, 7).unwrap();
    assert_eq!(reply["result"]["ok"], json!(true));
    assert!(find_response("text/event-stream", body, 8).is_none());
}

#[test]
fn sse_without_trailing_blank_line() {
    let body = b"data: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}";
    assert_eq!(sse_data(body).len(), 1);
    assert!(find_response("text/event-stream", body, 3).is_some());
}

#[test]
fn json_single_batch_and_orphan_error() {
    let single = br#"{"jsonrpc":"2.0","id":2,"result":{"tools":[]}}"#;
    assert!(find_response("application/json", single, 2).is_some());
    let batch =
        br#"[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":2,"error":{"code":-1}}]"#;
    assert_eq!(
        find_response("application/json", batch, 2).unwrap()["error"]["code"],
        json!(-1)
    );
    let orphan =
        br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32022,"data":{"supported":["x"]}}}"#;
    let reply = find_response("application/json", orphan, 9).unwrap();
    assert_eq!(supported_versions(&reply).as_deref(), Some("x"));
    assert!(find_response("application/json", b"not json", 1).is_none());
}

/// A fake stateless server: rejects the first version, then answers with plain JSON.
#[tokio::test]
async fn stateless_wire_headers_meta_and_version_retry() {
    let seen: Arc<Mutex<Vec<(HeaderMap, Value)>>> = Arc::default();
    let log = Arc::clone(&seen);
    let service = tower::service_fn(move |request: Request<Full<Bytes>>| {
        let log = Arc::clone(&log);
        async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let message: Value = serde_json::from_slice(&body).unwrap();
            log.lock()
                .unwrap()
                .push((parts.headers.clone(), message.clone()));
            let version = parts.headers["mcp-protocol-version"]
                .to_str()
                .unwrap()
                .to_owned();
            let (status, reply) = if version == "2026-07-28" {
                (
                    StatusCode::OK,
                    json!({"jsonrpc":"2.0","id":message["id"],"result":{"tools":[]}}),
                )
            } else {
                let error =
                    json!({"code":-32022,"message":"no","data":{"supported":["2026-07-28"]}});
                (
                    StatusCode::BAD_REQUEST,
                    json!({"jsonrpc":"2.0","id":message["id"],"error":error}),
                )
            };
            let response = Response::builder()
                .status(status)
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(reply.to_string())))
                .unwrap();
            Ok::<_, Infallible>(response)
        }
    });
    let url: Uri = "http://localhost:1/mcp".parse().unwrap();
    let mut session = Session::new(service, url, "2099-01-01", "test");
    session.run().await.unwrap();
    let seen = seen.lock().unwrap();
    let methods: Vec<_> = seen
        .iter()
        .map(|(_, m)| m["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["tools/list", "tools/list", "tools/call"]);
    let (headers, message) = &seen[2];
    assert_eq!(headers["mcp-method"], "tools/call");
    assert_eq!(headers["mcp-name"], "test-tool");
    assert_eq!(headers["mcp-protocol-version"], "2026-07-28");
    let meta = &message["params"]["_meta"];
    assert_eq!(
        meta["io.modelcontextprotocol/protocolVersion"],
        json!("2026-07-28")
    );
    assert_eq!(
        meta["io.modelcontextprotocol/clientCapabilities"],
        json!({})
    );
    assert_eq!(message["params"]["name"], json!("test-tool"));
}

/// A fake stateful server answering with SSE and a session id.
#[tokio::test]
async fn stateful_wire_handshake_session_id_and_sse() {
    let seen: Arc<Mutex<Vec<(HeaderMap, Value)>>> = Arc::default();
    let log = Arc::clone(&seen);
    let service = tower::service_fn(move |request: Request<Full<Bytes>>| {
        let log = Arc::clone(&log);
        async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let message: Value = serde_json::from_slice(&body).unwrap();
            log.lock()
                .unwrap()
                .push((parts.headers.clone(), message.clone()));
            let builder = Response::builder().header("mcp-session-id", "s-1");
            let response = if message.get("id").is_none() {
                builder.status(StatusCode::ACCEPTED).body(Full::default())
            } else {
                let result = match message["method"].as_str() {
                    Some("initialize") => json!({"protocolVersion": "2025-11-25"}),
                    _ => json!({"tools": [], "content": []}),
                };
                let reply = json!({"jsonrpc": "2.0", "id": message["id"], "result": result});
                builder
                    .header(CONTENT_TYPE, "text/event-stream")
                    .body(Full::new(Bytes::from(format!(
                        "event: message\ndata: {reply}\n\n"
                    ))))
            };
            Ok::<_, Infallible>(response.unwrap())
        }
    });
    let url: Uri = "http://localhost:1/mcp".parse().unwrap();
    let mut session = Session::new(service, url, "2025-11-25", "test");
    session.run().await.unwrap();
    let seen = seen.lock().unwrap();
    let methods: Vec<_> = seen
        .iter()
        .map(|(_, m)| m["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        methods,
        [
            "initialize",
            "notifications/initialized",
            "tools/list",
            "tools/call"
        ]
    );
    let (first, message) = &seen[0];
    assert!(first.get("mcp-protocol-version").is_none());
    assert!(first.get("mcp-session-id").is_none());
    assert_eq!(message["params"]["protocolVersion"], json!("2025-11-25"));
    for (headers, message) in &seen[1..] {
        assert_eq!(headers["mcp-protocol-version"], "2025-11-25");
        assert_eq!(headers["mcp-session-id"], "s-1");
        assert!(headers.get("mcp-method").is_none());
        assert!(message["params"].get("_meta").is_none());
    }
}
