//! SSE response bodies as rmcp's event stream, read frame by frame as they arrive, with the
//! transport's limit on the size of one event.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use http_body::{Body, Frame, SizeHint};
use mcp_oauth_flow::BoxError;
use pin_project_lite::pin_project;
use sse_stream::{Sse, SseStream};

use super::error::TowerHttpError;

/// rmcp's SSE error type (a re-export of `sse_stream::Error`).
pub(crate) type SseError = ::rmcp::transport::streamable_http_client::SseError;

/// The event stream rmcp's trait returns.
pub(crate) type EventStream = BoxStream<'static, Result<Sse, SseError>>;

/// Parses `body` as a stream of SSE events as its frames arrive. An event larger than
/// `max_event_size` ends the stream with [`TowerHttpError::SseEventTooLarge`].
pub(crate) fn event_stream<B>(body: B, max_event_size: usize) -> EventStream
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    SseStream::new(EventLimitBody {
        body,
        limit: EventLimit::new(max_event_size),
        failed: false,
    })
    .boxed()
}

/// Counts the bytes of the event being received, so that a server cannot make the parser
/// buffer without bound. The count is of field lines (`data:`, `event:`, …), which is what the
/// parser keeps; comment lines (`: keep-alive`) are not kept and not counted, so a long-lived
/// stream of keep-alives never trips it. A blank line ends an event and resets the count.
#[derive(Debug)]
struct EventLimit {
    max: usize,
    event: usize,
    line: usize,
    comment: bool,
    after_cr: bool,
}

impl EventLimit {
    fn new(max: usize) -> Self {
        Self {
            max,
            event: 0,
            line: 0,
            comment: false,
            after_cr: false,
        }
    }

    /// Observes the next chunk; `false` once the current event is over the limit.
    fn observe(&mut self, chunk: &[u8]) -> bool {
        for &byte in chunk {
            let after_cr = std::mem::replace(&mut self.after_cr, false);
            match byte {
                // The LF of a CRLF: the CR already ended the line.
                b'\n' if after_cr => {}
                b'\r' | b'\n' => {
                    if self.line == 0 {
                        self.event = 0;
                    } else if !self.comment {
                        // The line break the parser keeps between joined `data` lines.
                        self.event = self.event.saturating_add(1);
                    }
                    self.line = 0;
                    self.comment = false;
                    self.after_cr = byte == b'\r';
                }
                _ => {
                    if self.line == 0 {
                        self.comment = byte == b':';
                    }
                    self.line += 1;
                    if !self.comment {
                        self.event = self.event.saturating_add(1);
                    }
                }
            }
            // A comment is dropped once its line ends, but the parser holds the line until
            // then: a comment line is bounded on its own, or one that never ends would grow
            // the parser's buffer for ever.
            if self.event > self.max || (self.comment && self.line > self.max) {
                return false;
            }
        }
        true
    }
}

pin_project! {
    /// The response body with the event limit applied and its error made a concrete
    /// `std::error::Error`, which `SseStream` needs.
    struct EventLimitBody<B> {
        #[pin]
        body: B,
        limit: EventLimit,
        failed: bool,
    }
}

impl<B> Body for EventLimitBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = TowerHttpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, TowerHttpError>>> {
        let this = self.project();
        if *this.failed {
            return Poll::Ready(None);
        }
        match ready!(this.body.poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    if !this.limit.observe(data) {
                        *this.failed = true;
                        return Poll::Ready(Some(Err(TowerHttpError::SseEventTooLarge {
                            max_size: this.limit.max,
                        })));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(error)) => {
                *this.failed = true;
                Poll::Ready(Some(Err(TowerHttpError::Body(error.into()))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;
    use http_body_util::StreamBody;

    type Chunks = StreamBody<stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, BoxError>>>>;

    fn body(chunks: &[&str]) -> Chunks {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c.as_bytes()))))
            .collect();
        StreamBody::new(stream::iter(frames))
    }

    async fn events(body: Chunks, max: usize) -> Vec<Result<Sse, String>> {
        event_stream(body, max)
            .map(|item| item.map_err(|e| e.to_string()))
            .collect()
            .await
    }

    #[tokio::test]
    async fn events_split_across_frames_are_parsed() {
        let events = events(
            body(&[
                "event: message\nda",
                "ta: {\"a\":1}\n",
                "\n",
                "data: 2\r\n\r\n",
            ]),
            1024,
        )
        .await;
        assert_eq!(events.len(), 2);
        let first = events[0].as_ref().unwrap();
        assert_eq!(first.event.as_deref(), Some("message"));
        assert_eq!(first.data.as_deref(), Some("{\"a\":1}"));
        assert_eq!(events[1].as_ref().unwrap().data.as_deref(), Some("2"));
    }

    #[tokio::test]
    async fn an_event_over_the_limit_ends_the_stream_with_an_error() {
        let events = events(body(&["data: 0123456789\n\n", "data: ok\n\n"]), 8).await;
        assert_eq!(events.len(), 1);
        let error = events[0].as_ref().unwrap_err();
        assert!(error.contains("maximum size of 8 bytes"), "{error}");
    }

    #[tokio::test]
    async fn the_limit_is_per_event_and_ignores_comments() {
        // Comments longer than the limit in all, each line within it.
        let keep_alives = ": keep-alive\n".repeat(4);
        let frames = [keep_alives.as_str(), "data: 12345\n\n", "data: 67890\n\n"];
        let events = events(body(&frames), 12).await;
        let data: Vec<_> = events
            .iter()
            .map(|e| e.as_ref().unwrap().data.clone().unwrap())
            .collect();
        assert_eq!(data, ["12345", "67890"]);
    }

    #[test]
    fn a_comment_line_that_never_ends_is_bounded() {
        let mut limit = EventLimit::new(10);
        assert!(limit.observe(b": 12345678"), "ten bytes: at the limit");
        assert!(!limit.observe(b"9"), "the parser would hold it all");
        // Ended within the limit, a comment counts for nothing.
        let mut limit = EventLimit::new(10);
        assert!(limit.observe(b": 12345678\n: 12345678\ndata: 123\n"));
    }

    #[test]
    fn limit_counts_lines_of_one_event_together() {
        let mut limit = EventLimit::new(10);
        assert!(limit.observe(b"data: 1\r\n"));
        assert!(!limit.observe(b"data: 2\n"));
        let mut limit = EventLimit::new(10);
        assert!(limit.observe(b"data: 1\r\n\r\ndata: 2\r\n\r\n"));
    }

    #[tokio::test]
    async fn a_body_error_is_reported() {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
            Ok(Frame::data(Bytes::from_static(b"data: 1\n\n"))),
            Err("connection reset".into()),
        ];
        let events = events(StreamBody::new(stream::iter(frames)), 1024).await;
        assert_eq!(events.len(), 2);
        assert!(events[1].as_ref().unwrap_err().contains("connection reset"));
    }
}
