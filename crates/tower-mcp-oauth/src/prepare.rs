//! [`prepare`]: how the caller's body is wrapped for the first attempt and kept for the retry
//! after a `401`, decided once, up front (linkerd #1039: decide before wrapping, not after); and
//! [`pass_on`] for a request the layer does not act on.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, SizeHint};
use mcp_oauth_flow::BoxError;

use crate::body::OAuthBody;
use crate::head_buffer::{HeadBuffer, INLINE};
use crate::replay::ReplayBody;

/// How the caller's body was wrapped, decided once in `call` (linkerd #1039: decide before
/// wrapping, not after).
pub(crate) enum Prepared<B> {
    /// No body: replaying it is free.
    Empty,
    /// The whole body was in memory (a `Full`, a `String`) and its bytes are shared already
    /// (static, or held elsewhere too): replaying it is a refcount.
    Bytes(Bytes),
    /// The whole body was in memory, small, and its buffer held by nothing else: its bytes are
    /// copied (`len` of them) rather than shared. Sharing a buffer made at run time (a `Vec`
    /// turned into `Bytes`, as a JSON body is) allocates its reference count on the first
    /// clone, or costs two atomic operations; a copy of a JSON-RPC request of a few hundred
    /// bytes into a recycled buffer costs neither.
    Copied { len: u8, bytes: HeadBuffer },
    /// Larger than the cap by its own size hint: sent as is, never replayed.
    NotReplayable,
    /// Kept while streaming, up to the cap.
    Replayable(ReplayBody<B>),
}

impl<B> Prepared<B> {
    /// A body for the retry, if one can be made.
    pub(crate) fn replay(&self) -> Option<OAuthBody<B>> {
        match self {
            Prepared::Empty => Some(OAuthBody::empty()),
            Prepared::Bytes(bytes) => Some(OAuthBody::full(bytes.clone())),
            Prepared::Copied { len, bytes } => {
                let copy = Bytes::copy_from_slice(&bytes[..usize::from(*len)]);
                Some(OAuthBody::full(copy))
            }
            Prepared::NotReplayable => None,
            Prepared::Replayable(body) => body.try_replay().map(OAuthBody::replay),
        }
    }
}

/// What reading a body's first frame up front found.
enum First<B> {
    /// No bytes at all.
    Empty,
    /// The whole body, in one frame: a body already in memory (`Full`, `String`, `Bytes`).
    Whole(Bytes),
    /// Its first chunk, and the body to read the rest from.
    Partial(Bytes, B),
    /// The body failed, or sent trailers before its data.
    Failed(BoxError),
    /// Not read: its size is not known, or it was not ready.
    Unread(B),
}

/// Reads the first frame of a body that says its exact size: one in memory yields everything
/// on its first poll. Taking it now makes a replay a refcount and hands hyper a body it knows
/// the end of. Polling with a no-op waker is harmless: a body that is not ready registers the
/// real waker when the connection polls it. `hint` is the body's size hint, which the caller
/// has asked for already.
fn read_first<B>(mut body: B, hint: SizeHint) -> First<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let exact = hint.exact();
    if body.is_end_stream() {
        return First::Empty;
    }
    // No size known, or no data but not yet at its end (trailers may follow: a body of
    // trailers alone is a body, and taken for an empty one it would lose them): streamed.
    if exact.is_none() || exact == Some(0) {
        return First::Unread(body);
    }
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match Pin::new(&mut body).poll_frame(&mut cx) {
        Poll::Ready(None) => First::Empty,
        Poll::Ready(Some(Err(e))) => First::Failed(e.into()),
        Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
            Ok(data) if body.is_end_stream() => First::Whole(data),
            Ok(data) => First::Partial(data, body),
            Err(_) => First::Failed("request body sent trailers before its data".into()),
        },
        Poll::Pending => First::Unread(body),
    }
}

/// What a replay of a whole in-memory body keeps: a copy of a small one whose buffer nothing
/// else holds, the shared bytes otherwise (see [`Prepared::Copied`]).
fn keep_whole<B>(data: &Bytes) -> Prepared<B> {
    // `is_unique` is false for static bytes (a clone is free) and for bytes already shared;
    // asked only of a body small enough to copy (`INLINE` fits in a `u8`).
    if data.len() <= INLINE && data.is_unique() {
        let mut bytes = HeadBuffer::take();
        bytes[..data.len()].copy_from_slice(data);
        return Prepared::Copied {
            len: data.len() as u8,
            bytes,
        };
    }
    Prepared::Bytes(data.clone())
}

/// Wraps the caller's body for the first attempt.
// Into the hot path, with its neighbours: see `route::route`.
#[inline(always)]
pub(crate) fn prepare<B>(body: B, max_replay_bytes: usize) -> (OAuthBody<B>, Prepared<B>)
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let hint = body.size_hint();
    if hint.lower() > max_replay_bytes as u64 {
        return (OAuthBody::passthrough(body), Prepared::NotReplayable);
    }
    let (body, first) = match read_first(body, hint) {
        First::Empty => return (OAuthBody::empty(), Prepared::Empty),
        First::Whole(data) => {
            let kept = keep_whole(&data);
            return (OAuthBody::full(data), kept);
        }
        First::Failed(error) => return (OAuthBody::failed(error), Prepared::NotReplayable),
        First::Partial(data, body) => (body, Some(data)),
        First::Unread(body) => (body, None),
    };
    let replay = ReplayBody::new(body, max_replay_bytes, first);
    (
        OAuthBody::replay(replay.first_attempt()),
        Prepared::Replayable(replay),
    )
}

/// Wraps the body of a request the layer passes on untouched (outside its servers): a body in
/// memory is taken as on the hot path, so it costs no allocation; any other is sent as it is,
/// boxed.
pub(crate) fn pass_on<B>(body: B) -> OAuthBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let hint = body.size_hint();
    match read_first(body, hint) {
        First::Empty => OAuthBody::empty(),
        First::Whole(data) => OAuthBody::full(data),
        First::Failed(error) => OAuthBody::failed(error),
        // Nothing is kept for a replay: the cap of 0 drops every chunk after the first.
        First::Partial(data, body) => OAuthBody::replay(ReplayBody::new(body, 0, Some(data))),
        First::Unread(body) => OAuthBody::passthrough(body),
    }
}

#[cfg(test)]
mod tests {
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
}
