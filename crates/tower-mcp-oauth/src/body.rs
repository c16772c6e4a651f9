//! The request body the inner service receives: the caller's body, made replayable for the one
//! retry after a `401` (decided once, up front: `prepare.rs`), or a body of the layer's own
//! sub-requests. A streamed body is kept while it streams by [`ReplayBody`] (`replay.rs`).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use mcp_oauth_flow::BoxError;

use crate::replay::ReplayBody;

/// The body type the layer hands to the inner service.
///
/// The inner service must accept `Request<OAuthBody<B>>` where `B` is the caller's body type,
/// exactly as tower-http's `RequestBodyLimit` hands on `Limited<B>`. It is `Unpin` whenever `B`
/// is.
///
/// ```
/// use bytes::Bytes;
/// use http_body::Body;
/// use tower_mcp_oauth::OAuthBody;
/// let body: OAuthBody<http_body_util::Empty<Bytes>> = OAuthBody::full(Bytes::from_static(b"{}"));
/// assert_eq!(body.size_hint().exact(), Some(2));
/// ```
pub struct OAuthBody<B> {
    kind: Kind<B>,
}

/// The size of a `Bytes`, 32 bytes, whatever `B` is (a test holds it there): the size of the
/// `Full<Bytes>` a bare client sends. The request is moved several times through hyper's
/// dispatch channels, and a request past 256 bytes takes `memcpy`'s slower path at every move,
/// on every request. Two variants, so that the tag fits in the niche of `Bytes`.
enum Kind<B> {
    /// A body in memory, yielded whole on the first poll; no body is the empty `Bytes` (no
    /// allocation).
    Bytes(Bytes),
    /// Any other body: boxed, as these are not the hot path (a streamed body, one too large to
    /// replay, one outside the layer's servers, a failure) and the box keeps the enum small.
    Other(Box<Other<B>>),
}

enum Other<B> {
    Passthrough(B),
    Replay(ReplayBody<B>),
    /// The caller's body failed while it was being read up front; the error is handed on.
    Failed(Option<BoxError>),
}

impl<B> OAuthBody<B> {
    /// A body of one chunk (the layer's sub-requests use it).
    pub fn full(bytes: Bytes) -> Self {
        Self {
            kind: Kind::Bytes(bytes),
        }
    }

    /// An empty body.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body::Body;
    /// use tower_mcp_oauth::OAuthBody;
    /// let body = OAuthBody::<http_body_util::Full<Bytes>>::empty();
    /// assert!(body.is_end_stream());
    /// // A body of no bytes is the empty body.
    /// assert!(OAuthBody::<http_body_util::Full<Bytes>>::full(Bytes::new()).is_end_stream());
    /// ```
    pub fn empty() -> Self {
        Self::full(Bytes::new())
    }

    pub(crate) fn passthrough(body: B) -> Self {
        Self {
            kind: Kind::Other(Box::new(Other::Passthrough(body))),
        }
    }

    pub(crate) fn replay(body: ReplayBody<B>) -> Self {
        Self {
            kind: Kind::Other(Box::new(Other::Replay(body))),
        }
    }

    pub(crate) fn failed(error: BoxError) -> Self {
        Self {
            kind: Kind::Other(Box::new(Other::Failed(Some(error)))),
        }
    }
}

/// An empty body, as [`OAuthBody::empty`].
///
/// tower-http's `FollowRedirect` needs `ReqBody: Default` to resend an empty body on a redirect,
/// so this is what lets it sit inside the layer.
///
/// ```
/// use bytes::Bytes;
/// use http_body::Body;
/// use tower_mcp_oauth::OAuthBody;
/// let body = OAuthBody::<http_body_util::Full<Bytes>>::default();
/// assert!(body.is_end_stream());
/// assert_eq!(body.size_hint().exact(), Some(0));
/// ```
impl<B> Default for OAuthBody<B> {
    fn default() -> Self {
        Self::empty()
    }
}

impl<B> std::fmt::Debug for OAuthBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Bytes(bytes) if bytes.is_empty() => "Empty",
            Kind::Bytes(_) => "Full",
            Kind::Other(other) => match **other {
                Other::Passthrough(_) => "Passthrough",
                Other::Replay(_) => "Replay",
                Other::Failed(_) => "Failed",
            },
        };
        f.debug_struct("OAuthBody").field("kind", &kind).finish()
    }
}

impl<B> Body for OAuthBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            Kind::Bytes(bytes) if bytes.is_empty() => Poll::Ready(None),
            Kind::Bytes(bytes) => Poll::Ready(Some(Ok(Frame::data(std::mem::take(bytes))))),
            Kind::Other(other) => match &mut **other {
                Other::Passthrough(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
                Other::Replay(body) => body.poll_frame(cx),
                Other::Failed(error) => Poll::Ready(error.take().map(Err)),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Bytes(bytes) => bytes.is_empty(),
            Kind::Other(other) => match &**other {
                Other::Passthrough(body) => body.is_end_stream(),
                Other::Replay(body) => body.is_end_stream(),
                Other::Failed(error) => error.is_none(),
            },
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Bytes(bytes) => SizeHint::with_exact(bytes.len() as u64),
            Kind::Other(other) => match &**other {
                Other::Passthrough(body) => body.size_hint(),
                Other::Replay(body) => body.size_hint(),
                Other::Failed(_) => SizeHint::default(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    #[test]
    fn the_body_is_no_larger_than_the_full_body_a_bare_client_sends() {
        use std::mem::size_of;
        // Whatever the caller's body type: the others are boxed.
        assert_eq!(
            size_of::<OAuthBody<Full<Bytes>>>(),
            size_of::<Full<Bytes>>()
        );
        assert_eq!(size_of::<OAuthBody<String>>(), size_of::<Bytes>());
        assert_eq!(size_of::<OAuthBody<[u8; 1024]>>(), size_of::<Bytes>());
        // So the request stays within the 256 bytes of a bare client's.
        assert_eq!(
            size_of::<http::Request<OAuthBody<Full<Bytes>>>>(),
            size_of::<http::Request<Full<Bytes>>>()
        );
    }

    #[test]
    fn unpin_when_inner_is() {
        fn assert_unpin<T: Unpin>() {}
        assert_unpin::<OAuthBody<Full<Bytes>>>();
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<OAuthBody<Full<Bytes>>>();
    }
}
