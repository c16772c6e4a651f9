//! With a valid token, the layer puts on the wire what the bare client puts there with the
//! header added by hand: the same bytes, in as many writes to the socket. The layer's body
//! wrapper reports the caller's size and end, so hyper frames the body as it would have (a
//! `Content-Length`, or chunks for a stream), and nothing the layer keeps for its retry changes
//! the request it sends. Recorded at the socket, below hyper-util's `Client`, for each way the
//! layer takes a body (whole in memory, made at run time or static; none; a stream; a sized body
//! in several frames, whose first it reads up front; one over the replay cap), in both calling
//! forms (`ready` and `call` on a shared `&service`, a clone per call), and for a request outside
//! the servers a layer is limited to.
//!
//! The write count is the part a timing cannot see and a user would: each write is a system
//! call, and hyper's framing of a body it cannot size is a chunk header per frame.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Body, Frame, SizeHint};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mcp_oauth_testkit::bench::minimal_server;
use tokio::net::TcpStream;
use tower::{Layer, Service, ServiceExt};
use tower_mcp_oauth::{
    ClientConfig, HeadlessAuthorizer, McpServers, MemoryStore, OAuthLayer, TokenSet, TokenStore,
    TokenType,
};

/// What one connection wrote, write by write.
type Writes = Arc<Mutex<Vec<Vec<u8>>>>;

/// A connection to the test's server that records every write hyper makes to it.
struct Recorded {
    io: TokioIo<TcpStream>,
    writes: Writes,
}

impl hyper::rt::Read for Recorded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Recorded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.io).poll_write(cx, buf))?;
        self.writes.lock().unwrap().push(buf[..written].to_vec());
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, bufs))?;
        let mut bytes: Vec<u8> = bufs.iter().flat_map(|buf| buf.iter().copied()).collect();
        bytes.truncate(written);
        self.writes.lock().unwrap().push(bytes);
        Poll::Ready(Ok(written))
    }

    // Passed through, as hyper's own connector does: a connection that writes vectored gets
    // each request's head and body in one `writev`, and the writes recorded are those a real
    // connection makes.
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl Connection for Recorded {
    fn connected(&self) -> Connected {
        self.io.inner().connected()
    }
}

/// Connects to the test's server with connections that record their writes.
#[derive(Clone)]
struct Recording {
    addr: SocketAddr,
    writes: Writes,
}

impl tower::Service<http::Uri> for Recording {
    type Response = Recorded;
    type Error = io::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = io::Result<Recorded>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let (addr, writes) = (self.addr, Arc::clone(&self.writes));
        Box::pin(async move {
            let stream = TcpStream::connect(addr).await?;
            Ok(Recorded {
                io: TokioIo::new(stream),
                writes,
            })
        })
    }
}

/// hyper-util's `Client` over connections to `addr` that record their writes into the result.
fn recording_client<B>(addr: SocketAddr) -> (Client<Recording, B>, Writes)
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let writes = Writes::default();
    let connector = Recording {
        addr,
        writes: Arc::clone(&writes),
    };
    let client = Client::builder(TokioExecutor::new()).build(connector);
    (client, writes)
}

/// A token the server accepts (any does), expiring in an hour like a real one.
fn token(access: &str) -> TokenSet {
    TokenSet::new(access, TokenType::Bearer, "http://127.0.0.1:2", "c")
        .with_expires_at(Some(SystemTime::now() + Duration::from_secs(3600)))
}

/// A layer whose store holds a token for `url`, adopted at its first request there.
async fn layer_holding(url: &str) -> OAuthLayer {
    let store = MemoryStore::new();
    store.save_tokens(url, &token("wire-token")).await.unwrap();
    OAuthLayer::new(
        ClientConfig::new("http://127.0.0.1:1/cb"),
        HeadlessAuthorizer::new(),
    )
    .token_store(store)
}

/// How the layered service is called.
#[derive(Clone, Copy, Debug)]
enum Form {
    /// `ready` and `call` on `&service`: no clone, no `Oneshot`.
    Shared,
    /// `service.clone().oneshot(..)`.
    Cloned,
}

/// The writes of the second of two requests `send` makes, each answered `status`: the first
/// opens the connection (and, through the layer, adopts the stored token: a slow path); the
/// second, which finds the token the first adopted (the hot path, whose cost
/// `tests/hot_path_no_extra_allocation.rs` and the instruction budget hold), is the one
/// compared.
async fn second_request_writes<F, Fut>(writes: &Writes, status: u16, mut send: F) -> Vec<Vec<u8>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    assert_eq!(send().await, status);
    let before = writes.lock().unwrap().len();
    assert_eq!(send().await, status);
    let writes = writes.lock().unwrap();
    // A second connection, if the pool had not yet taken the first back, logs here too: an
    // HTTP/1 connection writes nothing before its request.
    assert!(writes.len() > before, "the second request wrote nothing");
    writes[before..].to_vec()
}

/// The bare client's writes for `make`'s request with `authorization` added by hand, and the
/// layer's (called in `form`) for the same request without it, over connections to one server
/// that answers `status`.
async fn bare_and_layered<B>(
    make: impl Fn() -> http::Request<B>,
    authorization: Option<http::HeaderValue>,
    layer: OAuthLayer,
    form: Form,
    addr: SocketAddr,
    status: u16,
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>)
where
    B: Body<Data = Bytes> + Unpin + Send + Sync + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (bare, bare_writes) = recording_client::<B>(addr);
    let bare_wire = second_request_writes(&bare_writes, status, || {
        let mut request = make();
        if let Some(value) = &authorization {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, value.clone());
        }
        let response = bare.request(request);
        async move { drain(response.await.unwrap()).await }
    })
    .await;

    let (inner, layered_writes) = recording_client(addr);
    let service = layer.layer(inner);
    let layered_wire = second_request_writes(&layered_writes, status, || {
        let request = make();
        let service = &service;
        async move {
            let response = match form {
                Form::Shared => {
                    let mut shared = service;
                    let ready = shared.ready().await.unwrap();
                    ready.call(request).await
                }
                Form::Cloned => service.clone().oneshot(request).await,
            };
            drain(response.unwrap()).await
        }
    })
    .await;
    assert_eq!(service.flows_started(), 0);
    (bare_wire, layered_wire)
}

/// The response's status, its body read to the end (so the connection is free for the next).
async fn drain<B: Body>(response: http::Response<B>) -> u16
where
    B::Error: std::fmt::Debug,
{
    let status = response.status().as_u16();
    response.into_body().collect().await.unwrap();
    status
}

/// A request as an MCP client sends it after `initialize`: headers and a JSON body made at run
/// time (the layer copies such a small body for its replay).
fn tools_list(url: &str) -> http::Request<Full<Bytes>> {
    http::Request::post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", format!("{:032x}", 0x5eed_u128))
        .body(Full::new(Bytes::from(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_vec(),
        )))
        .unwrap()
}

/// Two frames, no size: hyper sends it in chunks, and the layer keeps it while it streams.
type Streamed = StreamBody<futures_util::stream::Iter<std::vec::IntoIter<FrameResult>>>;
type FrameResult = Result<Frame<Bytes>, Infallible>;

/// The two frames of the bodies sent in more than one: a JSON-RPC `ping`, split.
const PING_IN_TWO: [&[u8]; 2] = [br#"{"jsonrpc":"2.0","#, br#""id":1,"method":"ping"}"#];

fn streamed(url: &str) -> http::Request<Streamed> {
    let frames: Vec<FrameResult> = PING_IN_TWO
        .into_iter()
        .map(|data| Ok(Frame::data(Bytes::from_static(data))))
        .collect();
    http::Request::post(url)
        .header("content-type", "application/json")
        .body(StreamBody::new(futures_util::stream::iter(frames)))
        .unwrap()
}

/// A body whose size is known but which comes in several frames: the layer reads the first up
/// front (to tell a whole body from a longer one) and hands it back before reading the rest.
struct SizedFrames {
    frames: VecDeque<Bytes>,
}

impl Body for SizedFrames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.frames.pop_front().map(|data| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        // What is left: the whole body's size before its first frame is read.
        SizeHint::with_exact(self.frames.iter().map(|data| data.len() as u64).sum())
    }
}

fn sized_in_frames(url: &str) -> http::Request<SizedFrames> {
    let frames = PING_IN_TWO.into_iter().map(Bytes::from_static).collect();
    http::Request::post(url)
        .header("content-type", "application/json")
        .body(SizedFrames { frames })
        .unwrap()
}

async fn server() -> (SocketAddr, String) {
    let addr = minimal_server(1).await;
    (addr, format!("http://{addr}/mcp"))
}

fn bearer() -> Option<http::HeaderValue> {
    Some(token("wire-token").authorization_value())
}

/// Sends `make`'s request bare (with `authorization` added by hand) and through a layer
/// holding a token for `url` (as `configure` sets it up), in each calling form, each answered
/// `status`; asserts the layer's writes are the bare client's, and returns the bare client's.
async fn same_on_the_wire<B>(
    (addr, url): (SocketAddr, &str),
    make: impl Fn() -> http::Request<B>,
    authorization: Option<http::HeaderValue>,
    configure: impl Fn(OAuthLayer) -> OAuthLayer,
    status: u16,
) -> Vec<Vec<u8>>
where
    B: Body<Data = Bytes> + Unpin + Send + Sync + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut sent = Vec::new();
    for form in [Form::Shared, Form::Cloned] {
        let layer = configure(layer_holding(url).await);
        let (bare, layered) =
            bare_and_layered(&make, authorization.clone(), layer, form, addr, status).await;
        assert_eq!(layered, bare, "{form:?}");
        sent = bare;
    }
    sent
}

/// The writes as one text, for the checks of what was compared.
fn text(writes: &[Vec<u8>]) -> String {
    String::from_utf8(writes.concat()).unwrap()
}

#[tokio::test]
async fn a_request_with_a_body_made_at_run_time_goes_out_as_the_bare_clients() {
    let (addr, url) = server().await;
    let writes = same_on_the_wire((addr, &url), || tools_list(&url), bearer(), |l| l, 200).await;
    // What is compared is a request that carried the token, framed by its length, in one write.
    let sent = text(&writes);
    assert!(
        sent.contains("authorization: Bearer wire-token\r\n"),
        "{sent}"
    );
    assert!(sent.contains("content-length: 46\r\n"), "{sent}");
    assert_eq!(writes.len(), 1, "{sent}");
}

#[tokio::test]
async fn a_request_with_a_static_body_goes_out_as_the_bare_clients() {
    let (addr, url) = server().await;
    let with_static = || {
        http::Request::post(url.as_str())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(
                br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
            )))
            .unwrap()
    };
    let sent = text(&same_on_the_wire((addr, &url), with_static, bearer(), |l| l, 200).await);
    assert!(sent.contains("content-length: 40\r\n"), "{sent}");
}

#[tokio::test]
async fn a_request_with_no_body_goes_out_as_the_bare_clients() {
    let (addr, url) = server().await;
    // The GET a client opens its event stream with. Had the layer's body hidden its end, hyper
    // would add a `content-length: 0`.
    let without = || {
        http::Request::get(url.as_str())
            .header("accept", "text/event-stream")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let sent = text(&same_on_the_wire((addr, &url), without, bearer(), |l| l, 200).await);
    assert!(sent.starts_with("GET /mcp HTTP/1.1\r\n"), "{sent}");
    assert!(!sent.contains("content-length"), "{sent}");
}

#[tokio::test]
async fn a_streamed_body_goes_out_in_the_same_chunks_and_writes() {
    let (addr, url) = server().await;
    let sent = text(&same_on_the_wire((addr, &url), || streamed(&url), bearer(), |l| l, 200).await);
    assert!(sent.contains("transfer-encoding: chunked\r\n"), "{sent}");
}

#[tokio::test]
async fn a_sized_body_in_several_frames_goes_out_as_the_bare_clients() {
    let (addr, url) = server().await;
    let make = || sized_in_frames(&url);
    let sent = text(&same_on_the_wire((addr, &url), make, bearer(), |l| l, 200).await);
    assert!(sent.contains("content-length: 40\r\n"), "{sent}");
}

#[tokio::test]
async fn a_body_over_the_replay_cap_goes_out_as_the_bare_clients() {
    let (addr, url) = server().await;
    // A cap below the body's size: sent as it is, never kept.
    let capped = |layer: OAuthLayer| layer.max_replay_bytes(8);
    let sent =
        text(&same_on_the_wire((addr, &url), || tools_list(&url), bearer(), capped, 200).await);
    assert!(sent.contains("content-length: 46\r\n"), "{sent}");
}

#[tokio::test]
async fn a_request_outside_the_layers_servers_goes_out_as_the_bare_clients_without_a_token() {
    let (addr, url) = server().await;
    let elsewhere = McpServers::prefixes([format!("http://{addr}/elsewhere")]).unwrap();
    let limited = |layer: OAuthLayer| layer.only_for(elsewhere.clone());
    // Outside the servers nothing is added: the server answers 401, which passes on as it is,
    // and the bare side sends no token either.
    let sent = text(&same_on_the_wire((addr, &url), || tools_list(&url), None, limited, 401).await);
    assert!(!sent.contains("authorization"), "{sent}");
}
