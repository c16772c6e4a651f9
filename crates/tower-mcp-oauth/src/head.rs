//! [`SentHead`]: what the hot path keeps of a request so that it can be sent again after a
//! `401`, without an allocation for a typical MCP request.
//!
//! The inner service consumes the request, so the head must be copied before it is sent, on
//! every request, for a retry that almost never happens. A `HeaderMap` clone would cost six
//! allocations for a typical MCP request, and most of the layer's cost over a bare client. So
//! the URI and the caller's headers are packed as bytes ([`Packed`]), a standard method is kept
//! as a number, the layer's own `Authorization` and `DPoP` values are kept as they are (the
//! first a reference count, the second made for this request anyway), and the map is rebuilt
//! only when a retry needs it.

use std::sync::Arc;

use http::header::{HeaderValue, AUTHORIZATION};
use http::request::Parts;
use http::{Extensions, HeaderMap, Method, Uri, Version};
use mcp_oauth_flow::dpop::DPOP;
use mcp_oauth_flow::token::TokenSet;

use crate::packed::Packed;

/// The head of a request as it was sent: method, version, extensions, the URI and the caller's
/// headers packed, and the headers the layer set on a proved request. No `Debug`: it holds
/// credentials.
// Small on purpose: it rides in every request's future, and the future is moved a few times on
// its way to the executor. At 128 bytes or less the compiler moves a future with a few vector
// moves (x86-64's baseline, SSE2; with AVX up to 256); past that, with a call to `memcpy` each
// time. So a standard method is one byte, and the rest is boxed: a method other than the
// standard ones (few requests use one), and the layer's DPoP headers (a proof costs far more
// than a box).
pub(crate) struct SentHead {
    /// The method's number in [`STANDARD_METHODS`]; past its end, the method is in `rare`.
    method: u8,
    version: Version,
    /// Whether a `DPoP-Nonce` in the answer is to be remembered: the request carried the
    /// layer's proof, or, sent by a slow path, any `DPoP` header (RFC 9449 §8.2, §9).
    proved: bool,
    extensions: Extensions,
    packed: Packed,
    rare: Option<Box<Rare>>,
}

/// What only a few heads keep.
#[derive(Default)]
struct Rare {
    /// A method not in [`STANDARD_METHODS`].
    method: Option<Method>,
    /// The `Authorization` and `DPoP` values of a proved request (see
    /// [`set_by_layer`](SentHead::set_by_layer)): boxed with the rare, as making the proof
    /// costs far more than a box.
    set_by_layer: Option<(HeaderValue, HeaderValue)>,
    /// The DPoP-bound tokens the layer's proof was made for: a retry proves for them again,
    /// whatever the cache holds by then (see [`proved_with`](SentHead::proved_with)).
    proved_for: Option<Arc<TokenSet>>,
}

/// The methods a head keeps as a number, most used by MCP first (`POST` for every message,
/// `GET` for the event stream, `DELETE` to end a session): finding one is a compare of two
/// small enums each.
const STANDARD_METHODS: [Method; 9] = [
    Method::POST,
    Method::GET,
    Method::DELETE,
    Method::HEAD,
    Method::OPTIONS,
    Method::PUT,
    Method::PATCH,
    Method::TRACE,
    Method::CONNECT,
];

impl SentHead {
    /// Keeps what is needed to send `parts` again (the body is kept elsewhere).
    // Into the hot path, with its neighbours: see `route::route`.
    #[inline(always)]
    pub(crate) fn keep(parts: &Parts) -> Self {
        Self::keep_noting_host(parts).0
    }

    /// [`keep`](Self::keep), and whether `parts` hold a `Host` header (which packing sees).
    #[inline(always)]
    pub(crate) fn keep_noting_host(parts: &Parts) -> (Self, bool) {
        let method = STANDARD_METHODS.iter().position(|m| *m == parts.method);
        let mut head = Self {
            // Fewer than 256 methods: no truncation.
            method: method.unwrap_or(STANDARD_METHODS.len()) as u8,
            version: parts.version,
            proved: false,
            extensions: parts.extensions.clone(),
            packed: Packed::new(),
            rare: None,
        };
        if method.is_none() {
            head.keep_other_method(&parts.method);
        }
        // Packed in place: the buffer is not copied from a builder into the head.
        let host = head.packed.pack(&parts.uri, &parts.headers);
        (head, host)
    }

    /// Boxes a method past [`STANDARD_METHODS`]: out of line, so that the hot path's lines
    /// hold none of it.
    #[cold]
    #[inline(never)]
    fn keep_other_method(&mut self, method: &Method) {
        self.rare_mut().method = Some(method.clone());
    }

    fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// Records the `Authorization` value and the `DPoP` proof the layer is about to set on the
    /// request [`keep`](Self::keep) copied: they replace any the caller had set, as `insert`
    /// does on the request itself.
    ///
    /// A request that was sent with a proof may be sent again with the same token and a new
    /// proof (a resource's nonce challenge, RFC 9449 §9), so the value is kept. A bearer
    /// request is only ever sent again with a token the recovery sets, so nothing is kept for
    /// it: not even a reference count on the hot path.
    pub(crate) fn set_by_layer(
        &mut self,
        authorization: HeaderValue,
        proof: HeaderValue,
        tokens: Arc<TokenSet>,
    ) {
        let rare = self.rare_mut();
        rare.set_by_layer = Some((authorization, proof));
        rare.proved_for = Some(tokens);
        self.proved = true;
    }

    /// Records that the request, sent by a slow path, carried the layer's `DPoP` proof for
    /// `tokens` when [`keep`](Self::keep) copied its headers.
    pub(crate) fn carried_proof(&mut self, tokens: Arc<TokenSet>) {
        self.rare_mut().proved_for = Some(tokens);
        self.proved = true;
    }

    /// Whether a `DPoP-Nonce` the answer brings is remembered for the next proof (RFC 9449
    /// §8.2, §9): see [`carried_proof`](Self::carried_proof) and
    /// [`set_by_layer`](Self::set_by_layer).
    pub(crate) fn proved(&self) -> bool {
        self.proved
    }

    /// Where the request went (parsed again from its text: only a failure or a DPoP answer
    /// asks).
    pub(crate) fn uri(&self) -> Uri {
        self.packed.uri()
    }

    /// The head again, with its header map rebuilt as the request carried it (less the
    /// `Authorization` of a bearer request, which the recovery replaces before sending), and
    /// the DPoP-bound tokens the layer's proof was made for, if it carried one.
    pub(crate) fn unpack(self) -> (Method, Uri, Version, HeaderMap, Extensions, ProvedFor) {
        let (uri, mut headers) = self.packed.unpack();
        let rare = self.rare.map(|rare| *rare).unwrap_or_default();
        let proved_for = rare.proved_for;
        if let Some((authorization, proof)) = rare.set_by_layer {
            headers.insert(DPOP, proof);
            headers.insert(AUTHORIZATION, authorization);
        }
        let method = match STANDARD_METHODS.get(usize::from(self.method)) {
            Some(method) => method.clone(),
            // `keep` boxed every method past the table: the default is never taken.
            None => {
                debug_assert!(rare.method.is_some(), "a method past the table is boxed");
                rare.method.unwrap_or_default()
            }
        };
        (
            method,
            uri,
            self.version,
            headers,
            self.extensions,
            proved_for,
        )
    }
}

/// The DPoP-bound tokens a request's proof was made for (`None`: a bearer request, or no
/// proof of the layer's).
pub(crate) type ProvedFor = Option<Arc<TokenSet>>;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn parts(build: http::request::Builder) -> Parts {
        build.body(()).unwrap().into_parts().0
    }

    pub(crate) fn mcp_request() -> http::request::Builder {
        http::Request::put("https://mcp.example.com/mcp?x=1")
            .version(Version::HTTP_2)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .header("accept", "text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .header("x-obs-text", HeaderValue::from_bytes(b"caf\xe9").unwrap())
            .extension(7u32)
    }

    #[test]
    fn the_head_comes_back_as_it_was_sent() {
        let mut secret = HeaderValue::from_static("Bearer caller");
        secret.set_sensitive(true);
        let mut original = parts(mcp_request().header("authorization", secret));
        original
            .headers
            .append("x-empty", HeaderValue::from_static(""));
        let head = SentHead::keep(&original);
        assert_eq!(head.uri(), original.uri);
        let (method, uri, version, headers, extensions, _) = head.unpack();
        assert_eq!(method, Method::PUT);
        assert_eq!(uri, original.uri);
        assert_eq!(version, Version::HTTP_2);
        assert_eq!(extensions.get::<u32>(), Some(&7));
        assert_eq!(headers, original.headers);
        // Repeated names keep their order; sensitivity survives.
        let accepts: Vec<_> = headers.get_all("accept").iter().collect();
        assert_eq!(accepts, ["application/json", "text/event-stream"]);
        assert!(headers["authorization"].is_sensitive());
        assert!(!headers["content-type"].is_sensitive());
    }

    #[test]
    fn every_method_comes_back_the_same() {
        let extension = Method::from_bytes(b"MKCALENDAR").unwrap();
        let long = Method::from_bytes("X".repeat(40).as_bytes()).unwrap();
        for method in STANDARD_METHODS.iter().chain([&extension, &long]) {
            let original = parts(mcp_request().method(method.clone()));
            let head = SentHead::keep(&original);
            // A standard method is a number; only another one needs the rare box.
            assert_eq!(
                head.rare.is_some(),
                !STANDARD_METHODS.contains(method),
                "{method}"
            );
            let (kept, _, _, headers, _, _) = head.unpack();
            assert_eq!(&kept, method);
            assert_eq!(headers, original.headers);
        }
    }

    #[test]
    fn another_method_and_the_layers_dpop_headers_share_the_box_and_both_come_back() {
        let method = Method::from_bytes(b"MKCALENDAR").unwrap();
        let original = parts(mcp_request().method(method.clone()));
        let mut head = SentHead::keep(&original);
        let (ours, proof) = (
            HeaderValue::from_static("DPoP layer-token"),
            HeaderValue::from_static("layer-proof"),
        );
        let tokens = Arc::new(TokenSet::new(
            "t",
            mcp_oauth_flow::token::TokenType::DPoP,
            "i",
            "c",
        ));
        head.set_by_layer(ours.clone(), proof.clone(), Arc::clone(&tokens));
        assert!(head.proved());
        let (kept, _, _, headers, _, _) = head.unpack();
        assert_eq!(kept, method);
        assert_eq!(headers[AUTHORIZATION], ours);
        assert_eq!(headers[DPOP], proof);
    }

    #[test]
    fn a_head_fits_its_40_bytes() {
        // Every request's future carries one: see the note on `SentHead`.
        assert!(std::mem::size_of::<SentHead>() <= 40);
    }

    #[test]
    fn every_form_of_uri_comes_back_equal() {
        for text in [
            "https://mcp.example.com/mcp?x=1&y=%20",
            "http://user:pw@127.0.0.1:8080/a/b;c",
            "http://[::1]:3000/",
            "https://mcp.example.com",
            "https://mcp.example.com?q",
            "HTTP://MCP.Example.com/Path",
            "/relative/path?q=1",
            "/",
            "*",
            "mcp.example.com:443",
        ] {
            let uri: Uri = text.parse().unwrap();
            let head = SentHead::keep(&parts(http::Request::get(uri.clone())));
            assert_eq!(head.uri(), uri, "{text}");
            assert_eq!(head.uri().to_string(), uri.to_string(), "{text}");
        }
        let default = SentHead::keep(&parts(http::Request::builder()));
        assert_eq!(default.uri(), Uri::default());
        // Put together from parts: an absolute URI whose path is `*` (`OPTIONS *` to a proxy)
        // has no text that reads back as itself; it comes back all the same.
        let mut uri_parts = http::uri::Parts::default();
        uri_parts.scheme = Some(http::uri::Scheme::HTTPS);
        uri_parts.authority = Some("a.example:8443".parse().unwrap());
        uri_parts.path_and_query = Some("*".parse().unwrap());
        let star = Uri::from_parts(uri_parts).unwrap();
        let head = SentHead::keep(&parts(http::Request::options(star.clone())));
        assert_eq!(head.uri(), star);
        assert_eq!(head.uri().authority(), star.authority());
    }

    #[test]
    fn a_proved_request_keeps_the_layers_headers_replacing_the_callers() {
        let original = parts(
            mcp_request()
                .header("authorization", "Bearer caller")
                .header("dpop", "caller-proof"),
        );
        let mut sent = original.clone();
        let ours = HeaderValue::from_static("DPoP layer-token");
        let proof = HeaderValue::from_static("layer-proof");
        sent.headers.insert(AUTHORIZATION, ours.clone());
        sent.headers.insert(DPOP, proof.clone());

        let mut head = SentHead::keep(&original);
        assert!(!head.proved());
        let tokens = TokenSet::new("t", mcp_oauth_flow::token::TokenType::DPoP, "i", "c");
        head.set_by_layer(ours, proof, Arc::new(tokens));
        assert!(head.proved());
        let headers = head.unpack().3;
        assert_eq!(headers, sent.headers);
        assert_eq!(headers.get_all(AUTHORIZATION).iter().count(), 1);
    }
}
