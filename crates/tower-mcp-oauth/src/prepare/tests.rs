//! How a caller's body is wrapped and kept for a retry, tested body by body.

use super::*;
use http_body::Frame;
use http_body_util::{BodyExt, Full};

async fn collect<B>(body: OAuthBody<B>) -> Result<Bytes, BoxError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    Ok(body.collect().await?.to_bytes())
}

/// A body that yields its frames one at a time, with no size hint.
struct Frames(std::collections::VecDeque<Frame<Bytes>>);

impl Body for Frames {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.pop_front().map(Ok))
    }
}

/// A body of one data frame per part.
fn chunks(parts: &[&'static str]) -> Frames {
    Frames(
        parts
            .iter()
            .map(|s| Frame::data(Bytes::from_static(s.as_bytes())))
            .collect(),
    )
}

/// A body of two data frames and trailers.
fn with_trailers() -> Frames {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-checksum", http::HeaderValue::from_static("abcd"));
    Frames(
        [
            Frame::data(Bytes::from_static(b"ab")),
            Frame::data(Bytes::from_static(b"cd")),
            Frame::trailers(trailers),
        ]
        .into(),
    )
}

#[tokio::test]
async fn a_replay_sends_the_trailers_the_first_attempt_sent() {
    let (mut body, prepared) = prepare(with_trailers(), 64);
    // As hyper sends a body: frame by frame, and no poll after the trailers.
    for _ in 0..2 {
        assert!(body.frame().await.unwrap().unwrap().is_data());
    }
    let trailers = body
        .frame()
        .await
        .unwrap()
        .unwrap()
        .into_trailers()
        .unwrap();
    assert_eq!(trailers["x-checksum"], "abcd");
    assert!(body.is_end_stream());
    for _ in 0..2 {
        let again = prepared.replay().unwrap().collect().await.unwrap();
        assert_eq!(again.trailers().unwrap()["x-checksum"], "abcd");
        assert_eq!(again.to_bytes(), "abcd");
    }
}

#[tokio::test]
async fn a_replay_is_at_its_end_once_it_sent_every_kept_frame() {
    let (body, prepared) = prepare(chunks(&["ab", "cd"]), 64);
    assert!(!body.is_end_stream());
    assert_eq!(collect(body).await.unwrap(), "abcd");
    let mut again = prepared.replay().unwrap();
    for chunk in ["ab", "cd"] {
        assert!(!again.is_end_stream(), "before {chunk}");
        assert_eq!(
            again.frame().await.unwrap().unwrap().into_data().unwrap(),
            chunk
        );
    }
    assert!(again.is_end_stream());
    // With trailers kept, not before they are sent.
    let (body, prepared) = prepare(with_trailers(), 64);
    collect(body).await.unwrap();
    let mut again = prepared.replay().unwrap();
    again.frame().await.unwrap().unwrap();
    again.frame().await.unwrap().unwrap();
    assert!(!again.is_end_stream());
    assert!(again.frame().await.unwrap().unwrap().is_trailers());
    assert!(again.is_end_stream());
    // Past the cap: the attempt that read on is at its end when the body is; another
    // attempt is not (its next chunks are gone, and polling it says so).
    let (mut body, prepared) = prepare(chunks(&["ab", "cd", "ef"]), 4);
    body.frame().await.unwrap().unwrap();
    let mut retry = prepared.replay().unwrap();
    let mut sent = Vec::new();
    while let Some(frame) = retry.frame().await {
        sent.extend_from_slice(&frame.unwrap().into_data().unwrap());
    }
    assert_eq!(sent, b"abcdef");
    assert!(retry.is_end_stream());
    assert!(!body.is_end_stream());
}

#[tokio::test]
async fn empty_bodies_are_free_to_replay() {
    let (body, prepared) = prepare(http_body_util::Empty::<Bytes>::new(), 16);
    assert!(matches!(prepared, Prepared::Empty));
    assert!(body.is_end_stream());
    assert!(prepared.replay().is_some());
}

#[tokio::test]
async fn replays_what_was_streamed() {
    let (body, prepared) = prepare(chunks(&["ab", "cd", "ef"]), 64);
    assert_eq!(collect(body).await.unwrap(), "abcdef");
    let again = prepared.replay().unwrap();
    assert_eq!(collect(again).await.unwrap(), "abcdef");
    // And again: any number of replays.
    assert_eq!(collect(prepared.replay().unwrap()).await.unwrap(), "abcdef");
}

#[tokio::test]
async fn replay_continues_a_partly_read_body() {
    let (mut body, prepared) = prepare(chunks(&["ab", "cd", "ef"]), 64);
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "ab");
    drop(body); // the server answered early; the first attempt is gone
    assert_eq!(collect(prepared.replay().unwrap()).await.unwrap(), "abcdef");
}

#[tokio::test]
async fn a_retry_that_reads_past_the_cap_sends_the_whole_body() {
    // The server answered after the first chunk; the retry reads on from the kept chunk
    // past the cap. It is the body's last use unless another replay is asked for, so it
    // streams to the end, and no replay is offered after it.
    let (mut body, prepared) = prepare(chunks(&["ab", "cd", "ef", "gh"]), 4);
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "ab");
    drop(body);
    let retry = prepared.replay().unwrap();
    assert_eq!(collect(retry).await.unwrap(), "abcdefgh");
    assert!(prepared.replay().is_none());
}

#[tokio::test]
async fn past_the_cap_only_the_attempt_that_read_on_goes_on() {
    // The first attempt is still being sent (its connection polls it) when the retry
    // reads past the cap: the chunks the first attempt would read next went to the
    // retry, so it fails rather than send a body with a hole in it.
    let (mut body, prepared) = prepare(chunks(&["ab", "cd", "ef", "gh"]), 4);
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "ab");
    let retry = prepared.replay().unwrap();
    assert_eq!(collect(retry).await.unwrap(), "abcdefgh");
    let error = body.frame().await.unwrap().unwrap_err();
    assert!(error.to_string().contains("replay buffer"), "{error}");
    // A replay that had fallen behind when another one capped the body fails the same
    // way: the chunks it had yet to send are gone.
    let (mut body, prepared) = prepare(chunks(&["ab", "cd", "ef"]), 4);
    body.frame().await.unwrap().unwrap();
    drop(body);
    let (mut ahead, mut behind) = (prepared.replay().unwrap(), prepared.replay().unwrap());
    let mut sent = Vec::new();
    while let Some(frame) = ahead.frame().await {
        sent.extend_from_slice(&frame.unwrap().into_data().unwrap());
    }
    assert_eq!(sent, b"abcdef");
    assert!(behind.frame().await.unwrap().is_err());
}

/// A body fed through a channel, which (as most do) wakes only the last task that polled
/// it.
struct Fed(tokio::sync::mpsc::UnboundedReceiver<&'static str>);

impl Body for Fed {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|s| s.map(|s| Ok(Frame::data(Bytes::from_static(s.as_bytes())))))
    }
}

/// A waker that counts its wakes.
struct Count(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Count {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A waker that counts its wakes, and the count.
fn counting() -> (std::sync::Arc<Count>, std::task::Waker) {
    let count = std::sync::Arc::new(Count(0.into()));
    (std::sync::Arc::clone(&count), count.into())
}

/// One poll of `body` on `waker`'s task.
fn poll(
    body: &mut OAuthBody<Fed>,
    waker: &std::task::Waker,
) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    Pin::new(body).poll_frame(&mut Context::from_waker(waker))
}

#[test]
fn every_handle_waiting_on_the_body_is_woken_when_it_yields() {
    use std::sync::atomic::Ordering;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (mut first, prepared) = prepare(Fed(rx), 64);
    let mut retry = prepared.replay().unwrap();
    let ((a, wa), (b, wb)) = (counting(), counting());
    // Both attempts wait on the caller's body; the channel keeps only the retry's waker.
    assert!(poll(&mut first, &wa).is_pending());
    assert!(poll(&mut retry, &wb).is_pending());
    tx.send("ab").unwrap();
    assert_eq!(b.0.load(Ordering::SeqCst), 1);
    let Poll::Ready(Some(Ok(frame))) = poll(&mut retry, &wb) else {
        panic!("the retry read the chunk")
    };
    assert_eq!(frame.into_data().unwrap(), "ab");
    // The first attempt's task is woken too, and finds the chunk kept for it.
    assert_eq!(a.0.load(Ordering::SeqCst), 1);
    let Poll::Ready(Some(Ok(frame))) = poll(&mut first, &wa) else {
        panic!("the first attempt got the kept chunk")
    };
    assert_eq!(frame.into_data().unwrap(), "ab");
}

#[test]
fn a_dropped_attempt_hands_the_wait_on_to_the_others() {
    use std::sync::atomic::Ordering;
    let (_tx, rx) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
    let (mut first, prepared) = prepare(Fed(rx), 64);
    let mut retry = prepared.replay().unwrap();
    let ((a, wa), (_, wb)) = (counting(), counting());
    assert!(poll(&mut retry, &wa).is_pending());
    // The first attempt polls last: the channel holds its waker alone.
    assert!(poll(&mut first, &wb).is_pending());
    // Its connection closes: the retry's task is woken to take the wait over.
    drop(first);
    assert_eq!(a.0.load(Ordering::SeqCst), 1);
}

/// A body whose first poll fails, and that ends after that, as many streams do.
struct FailsThenEnds(bool);

impl Body for FailsThenEnds {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let failed = std::mem::replace(&mut self.0, true);
        Poll::Ready((!failed).then(|| Err(std::io::Error::other("connection reset"))))
    }
}

#[tokio::test]
async fn after_the_body_failed_no_attempt_sends_it_as_complete() {
    let (mut first, prepared) = prepare(FailsThenEnds(false), 64);
    let mut retry = prepared.replay().unwrap();
    assert!(first.frame().await.unwrap().is_err());
    // The body now says it ended; the retry must not send what it has as the whole body.
    assert!(retry.frame().await.unwrap().is_err());
}

/// Empty chunks (a body's heartbeats) are not kept, whatever their number; past
/// `MAX_KEPT_CHUNKS` chunks the body is sent on and not replayed, as past the byte cap.
#[tokio::test]
async fn the_chunks_kept_are_bounded_as_the_bytes_are() {
    let mut frames: std::collections::VecDeque<_> =
        std::iter::repeat_with(|| Frame::data(Bytes::new()))
            .take(100_000)
            .collect();
    frames.push_back(Frame::data(Bytes::from_static(b"x")));
    let (body, prepared) = prepare(Frames(frames), 64);
    assert_eq!(collect(body).await.unwrap(), "x");
    assert_eq!(collect(prepared.replay().unwrap()).await.unwrap(), "x");

    let kept = crate::replay::MAX_KEPT_CHUNKS;
    let bytes = |n: usize| -> std::collections::VecDeque<_> {
        std::iter::repeat_with(|| Frame::data(Bytes::from_static(b"y")))
            .take(n)
            .collect()
    };
    let (body, prepared) = prepare(Frames(bytes(kept)), 64 * 1024);
    assert_eq!(collect(body).await.unwrap().len(), kept);
    assert_eq!(
        collect(prepared.replay().unwrap()).await.unwrap().len(),
        kept
    );
    let (body, prepared) = prepare(Frames(bytes(kept + 1)), 64 * 1024);
    assert_eq!(collect(body).await.unwrap().len(), kept + 1);
    assert!(prepared.replay().is_none());
}

/// A body that says it holds no data but is not at its end: trailers alone.
struct TrailersOnly(Frames);

impl Body for TrailersOnly {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }
    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(0)
    }
}

#[tokio::test]
async fn a_body_of_trailers_alone_keeps_them_sent_and_replayed() {
    let trailers = || {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-checksum", http::HeaderValue::from_static("abcd"));
        TrailersOnly(Frames([Frame::trailers(trailers)].into()))
    };
    let sent = |body: OAuthBody<TrailersOnly>| async move {
        let collected = body.collect().await.unwrap();
        collected.trailers().map(|t| t["x-checksum"].clone())
    };
    let (body, prepared) = prepare(trailers(), 64);
    assert_eq!(sent(body).await.unwrap(), "abcd");
    assert_eq!(sent(prepared.replay().unwrap()).await.unwrap(), "abcd");
    // And passed on untouched, outside the layer's servers.
    assert_eq!(sent(pass_on(trailers())).await.unwrap(), "abcd");
}

#[tokio::test]
async fn a_body_of_exactly_the_cap_is_replayable() {
    let (body, prepared) = prepare(chunks(&["ab", "cd"]), 4);
    assert_eq!(collect(body).await.unwrap(), "abcd");
    assert_eq!(collect(prepared.replay().unwrap()).await.unwrap(), "abcd");
}

#[tokio::test]
async fn over_the_cap_is_not_replayable() {
    let (body, prepared) = prepare(chunks(&["abcd", "efgh"]), 6);
    assert_eq!(collect(body).await.unwrap(), "abcdefgh");
    assert!(prepared.replay().is_none());
    // Known too large up front: passed through untouched.
    let (body, prepared) = prepare(Full::new(Bytes::from_static(b"0123456789")), 4);
    assert!(matches!(prepared, Prepared::NotReplayable));
    assert_eq!(collect(body).await.unwrap(), "0123456789");
}

#[tokio::test]
async fn in_memory_bodies_are_taken_up_front() {
    let (body, prepared) = prepare(Full::new(Bytes::from_static(b"{\"a\":1}")), 64);
    assert!(matches!(prepared, Prepared::Bytes(_)));
    assert_eq!(body.size_hint().exact(), Some(7));
    assert_eq!(collect(body).await.unwrap(), "{\"a\":1}");
    assert_eq!(
        collect(prepared.replay().unwrap()).await.unwrap(),
        "{\"a\":1}"
    );
}

/// A body with an exact size that arrives in two chunks.
struct Sized(std::collections::VecDeque<&'static str>, u64);

impl Body for Sized {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let next = self.0.pop_front().map(|s| {
            self.1 -= s.len() as u64;
            Ok(Frame::data(Bytes::from_static(s.as_bytes())))
        });
        Poll::Ready(next)
    }
    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.1)
    }
    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

#[tokio::test]
async fn a_body_passed_on_is_boxed_only_when_it_is_not_in_memory() {
    let full = pass_on(Full::new(Bytes::from_static(b"{}")));
    assert_eq!(format!("{full:?}"), r#"OAuthBody { kind: "Full" }"#);
    assert_eq!(full.size_hint().exact(), Some(2));
    assert_eq!(collect(full).await.unwrap(), "{}");
    let empty = pass_on(Full::new(Bytes::new()));
    assert!(empty.is_end_stream());
    // Streamed, size unknown: sent as it is.
    let streamed = pass_on(chunks(&["ab", "cd"]));
    assert_eq!(
        format!("{streamed:?}"),
        r#"OAuthBody { kind: "Passthrough" }"#
    );
    assert_eq!(collect(streamed).await.unwrap(), "abcd");
    // A known size in several frames: the first taken, the rest read after it.
    let sized = pass_on(Sized(["ab", "cd", "ef"].into_iter().collect(), 6));
    assert_eq!(sized.size_hint().exact(), Some(6));
    assert_eq!(collect(sized).await.unwrap(), "abcdef");
}

#[tokio::test]
async fn a_small_body_made_at_run_time_is_copied_for_the_replay_and_others_shared() {
    let json = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let kept = |body: Bytes| prepare(Full::new(body), 1 << 20).1;
    // Made at run time, held by nothing else: copied.
    let prepared = kept(Bytes::from(json.to_vec()));
    assert!(matches!(prepared, Prepared::Copied { len, .. } if usize::from(len) == json.len()));
    assert_eq!(
        collect(prepared.replay().unwrap()).await.unwrap(),
        &json[..]
    );
    // Static, shared elsewhere, or larger than the buffer: shared.
    assert!(matches!(kept(Bytes::from_static(json)), Prepared::Bytes(_)));
    let shared = Bytes::from(json.to_vec());
    let _elsewhere = shared.clone();
    assert!(matches!(kept(shared), Prepared::Bytes(_)));
    let large = Bytes::from(vec![b'x'; INLINE + 1]);
    assert!(matches!(kept(large), Prepared::Bytes(_)));
}

#[tokio::test]
async fn a_partly_read_body_keeps_its_first_chunk() {
    let (body, prepared) = prepare(Sized(["ab", "cd"].into_iter().collect(), 4), 64);
    assert!(matches!(prepared, Prepared::Replayable(_)));
    assert_eq!(body.size_hint().exact(), Some(4));
    assert_eq!(collect(body).await.unwrap(), "abcd");
    assert_eq!(collect(prepared.replay().unwrap()).await.unwrap(), "abcd");
}
