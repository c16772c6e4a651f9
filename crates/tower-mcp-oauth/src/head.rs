//! [`SentHead`]: what the hot path keeps of a request so that it can be sent again after a
//! `401`, without an allocation for a typical MCP request.
//!
//! The inner service consumes the request, so the head must be copied before it is sent, on
//! every request, for a retry that almost never happens. A `HeaderMap` clone costs two
//! allocations for the map and one more for each header whose bytes were not shared yet
//! (`Bytes` allocates its shared form on the first clone): six for a typical MCP request, and
//! most of the layer's cost over a bare client. So the caller's headers are packed as bytes into
//! a buffer recycled per thread ([`HeadBuffer`]; a plain copy only when they are large), the
//! layer's own `Authorization` and `DPoP` values are kept as they are (the first a reference
//! count, the second made for this request anyway), and the map is rebuilt only when a retry
//! needs it.

use http::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::request::Parts;
use http::{Extensions, HeaderMap, Method, Uri, Version};
use mcp_oauth_flow::dpop::DPOP;

use crate::head_buffer::{HeadBuffer, INLINE};

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
        let method = STANDARD_METHODS.iter().position(|m| *m == parts.method);
        let mut head = Self {
            // Fewer than 256 methods: no truncation.
            method: method.unwrap_or(STANDARD_METHODS.len()) as u8,
            version: parts.version,
            proved: false,
            extensions: parts.extensions.clone(),
            packed: Packed::Inline {
                len: 0,
                bytes: HeadBuffer::take(),
            },
            rare: None,
        };
        if method.is_none() {
            head.keep_other_method(&parts.method);
        }
        // Packed in place: the buffer is not copied from a builder into the head.
        head.packed.pack(&parts.uri, &parts.headers);
        head
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
    pub(crate) fn set_by_layer(&mut self, authorization: HeaderValue, proof: HeaderValue) {
        self.rare_mut().set_by_layer = Some((authorization, proof));
        self.proved = true;
    }

    /// Records that the request, sent by a slow path, carried a `DPoP` header when
    /// [`keep`](Self::keep) copied its headers: the slow path's own proof, or the caller's when
    /// no token was attached.
    pub(crate) fn carried_proof(&mut self) {
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
    /// `Authorization` of a bearer request, which the recovery replaces before sending).
    pub(crate) fn unpack(self) -> (Method, Uri, Version, HeaderMap, Extensions) {
        let (uri, mut headers) = self.packed.unpack();
        let rare = self.rare.map(|rare| *rare).unwrap_or_default();
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
        (method, uri, self.version, headers, self.extensions)
    }
}

/// The URI and the caller's headers.
enum Packed {
    /// `[URI length][URI]` then the header records `[name length, or a known name's number
    /// (see [`NAMED_FROM`])][value length, 15 bits; sensitive, 1 bit][name][value]` (the value
    /// length little-endian; no name text for a known name), `len` bytes in all.
    Inline { len: u8, bytes: HeadBuffer },
    /// Too large for the head, or a part too long for the compact lengths: a plain copy, with
    /// the allocations that costs.
    Copied(Box<(Uri, HeaderMap)>),
}

/// Bytes of a record before its name and value.
const RECORD_HEAD: usize = 3;
/// Names a record gives by number rather than by text: standard ones MCP requests carry.
/// Telling one apart is a compare of two small enums; writing its text out takes a call to
/// `http`'s name table and a copy (about 25 instructions a header).
const KNOWN: [HeaderName; KNOWN_COUNT] = [CONTENT_TYPE, ACCEPT, AUTHORIZATION, USER_AGENT];
const KNOWN_COUNT: usize = 4;
/// A record's first byte: below this, the length of its name written out; `NAMED_FROM + i`,
/// the name `KNOWN[i]`, with no text.
const NAMED_FROM: u8 = (256 - KNOWN_COUNT) as u8;
// A name whose length would read as a known name's number does not fit the inline buffer.
const _: () = assert!(INLINE < NAMED_FROM as usize);
/// The longest value a record can hold (15 bits).
const MAX_VALUE: usize = 0x7FFF;

impl Packed {
    /// Packs `uri` and `headers` into `self`, inline when they fit, else as a plain copy.
    fn pack(&mut self, uri: &Uri, headers: &HeaderMap) {
        if let Self::Inline { len, bytes } = self {
            let mut out = Writer { bytes, at: 0 };
            if out.records(uri, headers).is_some() {
                // `at <= INLINE` fits in a `u8`.
                *len = out.at as u8;
                return;
            }
        }
        *self = Self::Copied(Box::new((uri.clone(), headers.clone())));
    }

    /// The URI's text and the header records after it.
    fn split(len: u8, bytes: &[u8; INLINE]) -> (&[u8], &[u8]) {
        let bytes = &bytes[..usize::from(len)];
        let uri_len = bytes.first().map_or(0, |&n| usize::from(n));
        bytes
            .get(1..)
            .and_then(|rest| rest.split_at_checked(uri_len))
            .unwrap_or((&[], &[]))
    }

    fn uri(&self) -> Uri {
        match self {
            // It was a valid URI when packed, written as `http` reads it back.
            Self::Inline { len, bytes } => {
                Uri::try_from(Self::split(*len, bytes).0).unwrap_or_default()
            }
            Self::Copied(copied) => copied.0.clone(),
        }
    }

    fn unpack(self) -> (Uri, HeaderMap) {
        let (len, bytes) = match self {
            Self::Inline { len, bytes } => (len, bytes),
            Self::Copied(copied) => return *copied,
        };
        let (uri, mut rest) = Self::split(len, &bytes);
        let uri = Uri::try_from(uri).unwrap_or_default();
        let mut headers = HeaderMap::new();
        while rest.len() >= RECORD_HEAD {
            let value_len = u16::from_le_bytes([rest[1], rest[2]]);
            let sensitive = value_len >> 15 == 1;
            let value_len = usize::from(value_len & 0x7FFF);
            let (known, name_len) = match rest[0].checked_sub(NAMED_FROM) {
                Some(i) => (KNOWN.get(usize::from(i)), 0),
                None => (None, usize::from(rest[0])),
            };
            let Some((name, tail)) = rest[RECORD_HEAD..].split_at_checked(name_len) else {
                break;
            };
            let Some((value, tail)) = tail.split_at_checked(value_len) else {
                break;
            };
            rest = tail;
            // Both were a valid name and value when packed; the checks cannot fail.
            let name = known.map_or_else(|| HeaderName::from_bytes(name), |n| Ok(n.clone()));
            if let (Ok(name), Ok(mut value)) = (name, HeaderValue::from_bytes(value)) {
                value.set_sensitive(sensitive);
                headers.append(name, value);
            }
        }
        (uri, headers)
    }
}

/// Writes records into the inline buffer in one pass; `None` as soon as something does not
/// fit (the caller then copies the head the plain way).
struct Writer<'a> {
    bytes: &'a mut [u8; INLINE],
    at: usize,
}

impl Writer<'_> {
    fn records(&mut self, uri: &Uri, headers: &HeaderMap) -> Option<()> {
        let text = uri_text(uri);
        let uri_len = text.iter().map(|part| part.len()).sum::<usize>();
        self.put(&[u8::try_from(uri_len).ok()?])?;
        for part in text {
            self.put(part)?;
        }
        for (name, value) in headers {
            let (name_len, name) = match KNOWN.iter().position(|k| k == name) {
                // `i < KNOWN_COUNT`: no overflow.
                Some(i) => (NAMED_FROM + i as u8, &[][..]),
                // A length of `NAMED_FROM` or more would read as a known name, but such a
                // name does not fit the buffer (asserted with `NAMED_FROM`): `put` fails below
                // and the head is copied instead.
                None => {
                    let name = name.as_str().as_bytes();
                    (u8::try_from(name.len()).ok()?, name)
                }
            };
            let value_len = u16::try_from(value.len())
                .ok()
                .filter(|&len| usize::from(len) <= MAX_VALUE)?;
            let value_len = value_len | u16::from(value.is_sensitive()) << 15;
            let [low, high] = value_len.to_le_bytes();
            self.put_record_head([name_len, low, high])?;
            self.put(name)?;
            self.put(value.as_bytes())?;
        }
        Some(())
    }

    fn put_record_head(&mut self, head: [u8; RECORD_HEAD]) -> Option<()> {
        let end = self.at + RECORD_HEAD;
        self.bytes.get_mut(self.at..end)?.copy_from_slice(&head);
        self.at = end;
        Some(())
    }

    fn put(&mut self, src: &[u8]) -> Option<()> {
        let end = self.at.checked_add(src.len())?;
        copy_short(self.bytes.get_mut(self.at..end)?, src);
        self.at = end;
        Some(())
    }
}

/// `dst.copy_from_slice(src)` for the short pieces of a request head (the URI's parts, most
/// values, names not known by number): two overlapping fixed-size copies, which compile to a
/// few moves, where a slice copy of unknown length is a call to `memcpy` costing more than the
/// bytes it copies. The length is tested as a tree, shortest path for the common lengths of a
/// head's pieces (8 to 32: authorities, names, most values), not as a chain of every class in
/// turn.
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    debug_assert_eq!(dst.len(), n);
    // Tells the compiler `dst` is `n` long, so the slices below need no bounds checks of their
    // own.
    let dst = &mut dst[..n];
    if n <= 16 {
        if n >= 8 {
            dst[..8].copy_from_slice(&src[..8]);
            dst[n - 8..].copy_from_slice(&src[n - 8..]);
        } else if n >= 4 {
            dst[..4].copy_from_slice(&src[..4]);
            dst[n - 4..].copy_from_slice(&src[n - 4..]);
        } else if n >= 2 {
            dst[..2].copy_from_slice(&src[..2]);
            dst[n - 2..].copy_from_slice(&src[n - 2..]);
        } else if n == 1 {
            dst[0] = src[0];
        }
    } else if n <= 32 {
        dst[..16].copy_from_slice(&src[..16]);
        dst[n - 16..].copy_from_slice(&src[n - 16..]);
    } else if n <= 64 {
        dst[..32].copy_from_slice(&src[..32]);
        dst[n - 32..].copy_from_slice(&src[n - 32..]);
    } else {
        dst.copy_from_slice(src);
    }
}

/// A URI's text in parts, as its `Display` writes it and `Uri::try_from` reads it back: the
/// absolute form `scheme://authority/path?query`, or the authority form, or the origin form.
fn uri_text(uri: &Uri) -> [&[u8]; 4] {
    let path = uri
        .path_and_query()
        .map_or(&b""[..], |p| p.as_str().as_bytes());
    // The scheme's text, not a comparison with `Scheme::HTTPS`: for the standard schemes it is
    // a static string, and comparing costs more than copying its four or five bytes.
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => [
            scheme.as_bytes(),
            b"://",
            authority.as_str().as_bytes(),
            path,
        ],
        (_, Some(authority)) => [authority.as_str().as_bytes(), b"", b"", b""],
        _ => [path, b"", b"", b""],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(build: http::request::Builder) -> Parts {
        build.body(()).unwrap().into_parts().0
    }

    fn mcp_request() -> http::request::Builder {
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
        let (method, uri, version, headers, extensions) = head.unpack();
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
            let (kept, _, _, headers, _) = head.unpack();
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
        head.set_by_layer(ours.clone(), proof.clone());
        assert!(head.proved());
        let (kept, _, _, headers, _) = head.unpack();
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
        head.set_by_layer(ours, proof);
        assert!(head.proved());
        let headers = head.unpack().3;
        assert_eq!(headers, sent.headers);
        assert_eq!(headers.get_all(AUTHORIZATION).iter().count(), 1);
    }

    #[test]
    fn small_heads_stay_inline_and_large_ones_are_copied() {
        let small = SentHead::keep(&parts(mcp_request()));
        assert!(matches!(small.packed, Packed::Inline { .. }));
        // Too large in all, a value past 15 bits, a name past 255 bytes, names whose length
        // would read as a known name's number, a URI past 255 bytes.
        let long_name = "x".repeat(300);
        let [numbered_first, numbered_last] =
            [NAMED_FROM, u8::MAX].map(|n| "y".repeat(usize::from(n)));
        let long_uri = format!("https://mcp.example.com/{}", "p".repeat(300));
        for large in [
            parts(mcp_request().header("x-large", "x".repeat(INLINE).as_str())),
            parts(mcp_request().header("x-huge", "x".repeat(MAX_VALUE + 1).as_str())),
            parts(mcp_request().header(long_name.as_str(), "v")),
            parts(http::Request::get("/").header(numbered_first.as_str(), "v")),
            parts(http::Request::get("/").header(numbered_last.as_str(), "v")),
            parts(http::Request::get(long_uri.as_str())),
        ] {
            let head = SentHead::keep(&large);
            assert!(matches!(head.packed, Packed::Copied(_)));
            assert_eq!(head.uri(), large.uri);
            assert_eq!(head.unpack().3, large.headers);
        }
    }

    #[test]
    fn known_names_go_by_number_and_come_back_with_their_values_in_order() {
        // Each known name, then a name written out, then two known names again (an empty
        // value, a sensitive one); and the same head with each known name replaced by one of
        // the same length that is not known.
        let build = |names: &[HeaderName]| {
            let mut secret = HeaderValue::from_static("Bearer caller");
            secret.set_sensitive(true);
            let mut request = http::Request::get("http://mcp.example/mcp");
            for (i, name) in names.iter().enumerate() {
                request = request.header(name, format!("v{i}"));
            }
            let request = request
                .header("x-between", "b")
                .header(&names[1], "")
                .header(&names[2], secret);
            parts(request)
        };
        let packed_len = |head: &SentHead| match &head.packed {
            Packed::Inline { len, .. } => usize::from(*len),
            Packed::Copied(_) => panic!("a small head is packed inline"),
        };
        let unknown: Vec<HeaderName> = KNOWN
            .iter()
            .map(|n| HeaderName::from_bytes("x".repeat(n.as_str().len()).as_bytes()).unwrap())
            .collect();
        let (request, written_out) = (build(&KNOWN), build(&unknown));
        let (head, other) = (SentHead::keep(&request), SentHead::keep(&written_out));
        // Six records of known names hold no text.
        let names: usize = KNOWN.iter().map(|n| n.as_str().len()).sum::<usize>()
            + KNOWN[1].as_str().len()
            + KNOWN[2].as_str().len();
        assert_eq!(packed_len(&head) + names, packed_len(&other));

        let headers = head.unpack().3;
        assert_eq!(headers, request.headers);
        assert_eq!(other.unpack().3, written_out.headers);
        let authorizations: Vec<_> = headers.get_all(AUTHORIZATION).iter().collect();
        assert_eq!(authorizations, ["v2", "Bearer caller"]);
        assert!(authorizations[1].is_sensitive());
        let accepts: Vec<_> = headers.get_all(KNOWN[1].clone()).iter().collect();
        assert_eq!(accepts, ["v1", ""]);
    }

    #[test]
    fn a_sensitive_value_keeps_its_length_and_its_flag() {
        // 200 bytes: the length's low byte has its top bit set, the flag sits in the high
        // byte's; neither may bleed into the other.
        let mut value = HeaderValue::from_str(&"v".repeat(200)).unwrap();
        value.set_sensitive(true);
        let request = parts(http::Request::get("/").header("x-secret", value));
        let headers = SentHead::keep(&request).unpack().3;
        assert_eq!(headers, request.headers);
        assert!(headers["x-secret"].is_sensitive());
    }

    #[test]
    fn a_head_exactly_at_the_inline_size_stays_inline() {
        let (uri, name) = ("http://127.0.0.1/mcp", "x-fill");
        let value = "v".repeat(INLINE - 1 - uri.len() - RECORD_HEAD - name.len());
        let head = SentHead::keep(&parts(http::Request::get(uri).header(name, value.as_str())));
        assert!(matches!(head.packed, Packed::Inline { len, .. } if usize::from(len) == INLINE));
        assert_eq!(head.unpack().3[name], value.as_str());
    }

    #[test]
    fn short_copies_copy_every_byte_at_every_length() {
        let src: Vec<u8> = (1..=80).collect();
        for n in 0..=src.len() {
            let mut dst = vec![0; n];
            copy_short(&mut dst, &src[..n]);
            assert_eq!(dst, &src[..n], "{n}");
        }
    }

    #[test]
    fn a_truncated_buffer_yields_the_whole_records_only() {
        let request = parts(
            http::Request::get("http://127.0.0.1/mcp")
                .header("accept", "a")
                .header("x-custom", "bc"),
        );
        let mut packed = Packed::Inline {
            len: 0,
            bytes: HeadBuffer::take(),
        };
        packed.pack(&request.uri, &request.headers);
        let Packed::Inline { len, bytes } = packed else {
            panic!("inline");
        };
        let raw: [u8; INLINE] = *bytes;
        let truncated = Packed::Inline {
            len: len - 1,
            bytes,
        };
        assert_eq!(truncated.uri(), request.uri);
        let (uri, headers) = truncated.unpack();
        assert_eq!(uri, request.uri);
        assert_eq!(headers.len(), 1);
        assert_eq!(headers["accept"], "a");
        // Cut inside the URI: nothing usable, and no panic.
        let cut = Packed::Inline {
            len: 6,
            bytes: HeadBuffer::from(raw),
        };
        assert_eq!(cut.uri(), Uri::default());
        assert!(cut.unpack().1.is_empty());
    }
}
