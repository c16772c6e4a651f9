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
mod tests;
