//! [`ReplayBody`]: a request body that keeps what it streams, so that it can be sent again.
//!
//! Replay follows the linkerd model: no `B: Clone`, no buffering up front. While the first
//! attempt streams, each chunk is kept (a refcounted `Bytes` clone, no copy) up to a byte cap;
//! a replay yields the kept chunks and then, if the first attempt stopped early because the
//! server answered before reading everything, goes on reading the original body. A replay that
//! reads past the cap keeps nothing more and sends the rest (no replay can follow it); only
//! the attempt that went past the cap reads on, as the chunks any other had yet to send are
//! gone.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use mcp_oauth_flow::BoxError;

struct ReplayState<B> {
    body: Option<B>,
    chunks: Vec<Bytes>,
    len: usize,
    max: usize,
    capped: bool,
    failed: bool,
    done: bool,
    trailers: Option<HeaderMap>,
    /// The tasks of the handles waiting on the caller's body, woken when it yields.
    waiting: Vec<Waker>,
}

/// What the first attempt's handle and the replay's share: the size hint, fixed when the body
/// was wrapped, and the state the two take turns with.
struct Replay<B> {
    size_hint: SizeHint,
    state: Mutex<ReplayState<B>>,
}

/// The most chunks of a streamed body kept for a replay; past them, as past the byte cap, the
/// body is sent on and not replayed.
pub(crate) const MAX_KEPT_CHUNKS: usize = 1024;

/// A body that keeps what it streams so it can be sent again. Small (the size hint lives in
/// the shared part), so that the body's `Kind` (in `body.rs`) stays the size of a `Full<Bytes>`.
pub(crate) struct ReplayBody<B> {
    shared: Arc<Replay<B>>,
    /// How many kept chunks this handle has yielded.
    pos: usize,
    trailers_sent: bool,
    /// This handle read the body past the cap: the kept chunks were dropped then, so it is the
    /// one handle that reads on; any other would find its next chunks gone.
    reads_on: bool,
}

impl<B: Body> ReplayBody<B> {
    /// A replayable body; `first` is a chunk already read from it.
    pub(crate) fn new(body: B, max: usize, first: Option<Bytes>) -> Self {
        let mut size_hint = body.size_hint();
        let len = first.as_ref().map_or(0, Bytes::len);
        if let Some(exact) = size_hint.exact() {
            size_hint.set_exact(exact + len as u64);
        }
        Self {
            shared: Arc::new(Replay {
                size_hint,
                state: Mutex::new(ReplayState {
                    body: Some(body),
                    chunks: first.into_iter().collect(),
                    len,
                    max,
                    capped: false,
                    failed: false,
                    done: false,
                    trailers: None,
                    waiting: Vec::new(),
                }),
            }),
            pos: 0,
            trailers_sent: false,
            reads_on: false,
        }
    }
}

impl<B> ReplayBody<B> {
    /// The handle the first attempt sends: it keeps what it streams for this one.
    pub(crate) fn first_attempt(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            pos: 0,
            trailers_sent: false,
            reads_on: false,
        }
    }

    /// The size hint of the body it wraps (with any chunk read up front).
    pub(crate) fn size_hint(&self) -> SizeHint {
        self.shared.size_hint
    }

    fn lock(&self) -> MutexGuard<'_, ReplayState<B>> {
        // A poisoned lock only means another handle panicked mid-poll; the state is still
        // consistent (every mutation is a single assignment).
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new handle that yields the body from the start, unless the cap was exceeded or the
    /// body failed.
    pub(crate) fn try_replay(&self) -> Option<Self> {
        let state = self.lock();
        if state.capped || state.failed {
            return None;
        }
        drop(state);
        Some(Self {
            shared: Arc::clone(&self.shared),
            pos: 0,
            trailers_sent: false,
            reads_on: false,
        })
    }

    pub(crate) fn is_end_stream(&self) -> bool {
        let state = self.lock();
        // Past the cap, a handle other than the one reading on is not at its end: its next
        // chunks are gone, and polling it says so.
        let at_end = if state.capped {
            self.reads_on
        } else {
            self.pos >= state.chunks.len()
        };
        state.done && at_end && (self.trailers_sent || state.trailers.is_none())
    }
}

/// A handle dropped while the caller's body may hold its task's waker (its connection closed)
/// wakes the others waiting, so that one of them polls the body and takes over the wait.
impl<B> Drop for ReplayBody<B> {
    fn drop(&mut self) {
        let waiting = {
            let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut state.waiting)
        };
        for waker in waiting {
            waker.wake();
        }
    }
}

impl<B> ReplayBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    pub(crate) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let shared = Arc::clone(&self.shared);
        let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if !state.capped && self.pos < state.chunks.len() {
            let chunk = state.chunks[self.pos].clone();
            self.pos += 1;
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if state.failed {
            // The caller's body failed under another attempt: what it yields after an error
            // (often its end) would make this attempt's body look complete when it is cut off.
            return Poll::Ready(Some(Err(
                "the request body failed while another attempt was sending it".into(),
            )));
        }
        if state.capped && !self.reads_on {
            // Another attempt read the body past the cap: the chunks this one had yet to send
            // were dropped then, or went to that attempt. Sending on would leave a hole.
            return Poll::Ready(Some(Err(
                "request body exceeded the replay buffer while another attempt was sending it"
                    .into(),
            )));
        }
        if state.done {
            if !self.trailers_sent {
                self.trailers_sent = true;
                if let Some(trailers) = state.trailers.clone() {
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
            }
            return Poll::Ready(None);
        }
        let Some(body) = state.body.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(body).poll_frame(cx);
        if polled.is_pending() {
            // The caller's body wakes the last task that polled it; the other handle's task
            // (the first attempt's connection, still sending, or a replay) is woken from here
            // when a frame or the end comes, to take it from the kept chunks.
            if !state.waiting.iter().any(|w| w.will_wake(cx.waker())) {
                state.waiting.push(cx.waker().clone());
            }
            return Poll::Pending;
        }
        let waiting = std::mem::take(&mut state.waiting);
        let polled = self.take(&mut state, polled);
        drop(state);
        for waker in waiting {
            waker.wake();
        }
        polled
    }

    /// Records what the caller's body yielded (anything but `Pending`) in the shared state,
    /// and hands it on.
    fn take(
        &mut self,
        state: &mut ReplayState<B>,
        polled: Poll<Option<Result<Frame<Bytes>, B::Error>>>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                state.done = true;
                state.body = None;
                self.trailers_sent = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                state.failed = true;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(Some(Ok(frame))) => {
                let frame = match frame.into_data() {
                    Ok(data) => {
                        if state.body.as_ref().is_some_and(B::is_end_stream) {
                            // Known finished: say so now, so the connection need not poll again.
                            state.done = true;
                            state.body = None;
                        }
                        // An empty chunk carries nothing to send again: not kept (a body of
                        // heartbeats would otherwise grow the list for ever at no cost to the
                        // byte cap). Nor are more than `MAX_KEPT_CHUNKS`: tiny chunks (a byte
                        // each, under a 64 KiB cap) cost far more to keep than their bytes.
                        if !state.capped && !data.is_empty() {
                            state.len += data.len();
                            if state.len > state.max || state.chunks.len() >= MAX_KEPT_CHUNKS {
                                // No replay after this one; this attempt sends the rest.
                                state.capped = true;
                                state.chunks = Vec::new();
                                self.reads_on = true;
                            } else {
                                state.chunks.push(data.clone());
                                self.pos = state.chunks.len();
                            }
                        }
                        Frame::data(data)
                    }
                    Err(frame) => match frame.into_trailers() {
                        Ok(trailers) => {
                            // Trailers end a body (`http_body::Frame`): a sender stops here,
                            // without polling for the end, so the end is recorded now, and a
                            // replay sends them after the kept chunks.
                            state.trailers = Some(trailers.clone());
                            state.done = true;
                            state.body = None;
                            self.trailers_sent = true;
                            Frame::trailers(trailers)
                        }
                        Err(other) => other,
                    },
                };
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }
}
