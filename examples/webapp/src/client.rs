//! The app's side of MCP: the inner HTTP client, a JSON-RPC request, and the answer read back.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_mcp_oauth::OAuthBody;

/// The request body the app sends.
pub type Body = Full<Bytes>;

/// hyper-util's legacy client, carrying the layer's body type.
pub type HttpClient = Client<HttpConnector, OAuthBody<Body>>;

/// A hyper-util client over plain HTTP (the example's MCP server listens on loopback).
pub fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A JSON-RPC 2.0 POST to an MCP endpoint.
pub(crate) fn jsonrpc(
    url: &str,
    id: u64,
    method: &str,
    params: serde_json::Value,
) -> http::Request<Body> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    http::Request::post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid request")
}

/// The most of an MCP answer the app reads.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// How long the app waits for an MCP answer.
const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads the JSON-RPC answer with `id` from a response body: the body itself, or, from a
/// Server-Sent Events stream, the first event that answers `id` (a server may send
/// notifications and requests of its own before it, and may keep the stream open after it).
/// At most [`MAX_ANSWER_BYTES`], within [`ANSWER_TIMEOUT`]: a server that sends more, or never
/// ends, fails the request instead of holding the handler. Each line is read once, as it
/// completes (bytes, so a character cut between two chunks is whole again).
pub(crate) async fn read_json<B>(
    response: http::Response<B>,
    id: u64,
) -> Result<serde_json::Value, String>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    // The answer: a response (a result or an error) with the request's id; a request of the
    // server's own may carry the same id (ids are each sender's).
    let answers = |message: &serde_json::Value| {
        message.get("method").is_none()
            && (message.get("result").is_some() || message.get("error").is_some())
            && message["id"] == id
    };
    let parsed = |text: &str| serde_json::from_str::<serde_json::Value>(text).ok();
    let read = async {
        let mut body = response.into_body();
        let mut bytes: Vec<u8> = Vec::new();
        // How far complete lines were read; the data of the event being read (RFC: one
        // event's `data:` lines joined by line breaks).
        let (mut read_to, mut event) = (0, String::new());
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("the MCP answer failed: {e}"))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            bytes.extend_from_slice(&data);
            if bytes.len() > MAX_ANSWER_BYTES {
                return Err(format!("the MCP answer is over {MAX_ANSWER_BYTES} bytes"));
            }
            while let Some(end) = bytes[read_to..].iter().position(|&b| b == b'\n') {
                let line = String::from_utf8_lossy(&bytes[read_to..read_to + end]).into_owned();
                read_to += end + 1;
                let line = line.trim_end_matches('\r');
                if let Some(data) = line.strip_prefix("data:") {
                    if !event.is_empty() {
                        event.push('\n');
                    }
                    event.push_str(data.strip_prefix(' ').unwrap_or(data));
                } else if line.is_empty() && !event.is_empty() {
                    if let Some(message) = parsed(&event).filter(answers) {
                        return Ok(message);
                    }
                    event.clear();
                }
            }
        }
        // The end: a last event no blank line closed, or a plain JSON body.
        if let Some(message) = parsed(&event).filter(answers) {
            return Ok(message);
        }
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .filter(answers)
            .ok_or_else(|| "the MCP answer holds no response to the request".to_owned())
    };
    tokio::time::timeout(ANSWER_TIMEOUT, read)
        .await
        .map_err(|_| format!("no MCP answer within {} s", ANSWER_TIMEOUT.as_secs()))?
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use http_body::Frame;

    use super::*;

    /// A body that hands out its chunks one frame at a time.
    struct Chunks(VecDeque<Bytes>);

    impl http_body::Body for Chunks {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
        }
    }

    fn response(chunks: &[&[u8]]) -> http::Response<Chunks> {
        let chunks = chunks.iter().map(|c| Bytes::copy_from_slice(c)).collect();
        http::Response::new(Chunks(chunks))
    }

    /// A stream with a request of the server's own under the same id, a notification, and
    /// the answer cut mid-character and spread over two `data:` lines: the answer is found,
    /// whole, and nothing after it is waited for.
    #[tokio::test]
    async fn the_answer_is_read_from_a_stream_past_what_is_not_it() {
        let answer = "{\"jsonrpc\":\"2.0\",\"id\":1,\n\"result\":{\"name\":\"café\"}}";
        let (before, after) = answer.as_bytes().split_at(answer.find('é').unwrap() + 1);
        let mut stream: Vec<&[u8]> = vec![
            b"data: {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n\n",
            b"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n",
        ];
        let first = [b"data: ".as_slice(), before].concat();
        let (line_one, rest) = first.split_at(first.iter().position(|&b| b == b'\n').unwrap() + 1);
        // The second line in two chunks, cut inside `é`.
        let line_two = [b"data: ".as_slice(), rest].concat();
        let end = [after, b"\n\n"].concat();
        stream.push(line_one);
        stream.push(&line_two);
        stream.push(&end);
        let message = read_json(response(&stream), 1).await.unwrap();
        assert_eq!(message["result"]["name"], "café");
    }

    #[tokio::test]
    async fn a_plain_body_an_oversized_one_and_one_without_the_answer() {
        let plain: &[u8] = b"{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}";
        assert!(read_json(response(&[plain]), 2).await.is_ok());
        assert!(read_json(response(&[plain]), 3).await.is_err());
        let big = vec![b'x'; MAX_ANSWER_BYTES + 1];
        let error = read_json(response(&[&big]), 2).await.unwrap_err();
        assert!(error.contains("over"), "{error}");
    }
}
