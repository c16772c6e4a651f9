//! Named bounds for the inner service and the bodies, so the private async helpers that run a
//! flow do not each repeat the same eight-line where-clause. The public impls keep their bounds
//! spelled out, where they document the API.

use bytes::Bytes;
use http_body::Body;
use mcp_oauth_flow::BoxError;
use tower_service::Service;

use crate::body::OAuthBody;

/// An HTTP client service the layer can drive: takes the layer's body, answers with `RB`.
pub(crate) trait InnerService<B, RB>:
    Service<
        http::Request<OAuthBody<B>>,
        Response = http::Response<RB>,
        Future: Send + 'static,
        Error: Into<BoxError>,
    > + Clone
    + Send
    + 'static
{
}

impl<S, B, RB> InnerService<B, RB> for S
where
    S: Service<http::Request<OAuthBody<B>>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
{
}

/// A caller's request body the layer can keep for a retry.
pub(crate) trait CallerBody:
    Body<Data = Bytes, Error: Into<BoxError>> + Unpin + Send + 'static
{
}

impl<B> CallerBody for B
where
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
{
}

/// A response body of the inner service.
pub(crate) trait ResponseBody:
    Body<Data: Send, Error: Into<BoxError>> + Send + 'static
{
}

impl<B> ResponseBody for B
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
}
