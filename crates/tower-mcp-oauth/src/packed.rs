//! [`Packed`]: a request's URI and the caller's headers, packed as bytes into a
//! [`HeadBuffer`] for the head the hot path keeps ([`SentHead`](crate::head::SentHead)), and
//! rebuilt only when a retry needs them.
//!
//! A `HeaderMap` clone costs two allocations for the map and one more for each header whose
//! bytes were not shared yet (`Bytes` allocates its shared form on the first clone): six for a
//! typical MCP request. Packed, they cost a copy of their bytes into a buffer recycled per
//! thread; a head too large for it is copied the plain way.

use http::header::{
    HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, USER_AGENT,
};
use http::{HeaderMap, Uri};

use crate::head_buffer::{HeadBuffer, INLINE};

/// The URI and the caller's headers.
pub(crate) enum Packed {
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
/// `Host` is among them so that packing, which compares every header with these anyway, tells
/// the hot path whether the caller set one (see `route`) without a lookup of its own (about 90
/// instructions a request).
const KNOWN: [HeaderName; KNOWN_COUNT] = [CONTENT_TYPE, ACCEPT, AUTHORIZATION, USER_AGENT, HOST];
const KNOWN_COUNT: usize = 5;
/// `HOST`'s place in [`KNOWN`].
const HOST_AT: usize = 4;
/// A record's first byte: below this, the length of its name written out; `NAMED_FROM + i`,
/// the name `KNOWN[i]`, with no text.
const NAMED_FROM: u8 = (256 - KNOWN_COUNT) as u8;
// A name whose length would read as a known name's number does not fit the inline buffer.
const _: () = assert!(INLINE < NAMED_FROM as usize);
/// The longest value a record can hold (15 bits).
const MAX_VALUE: usize = 0x7FFF;

impl Packed {
    /// Nothing packed yet, in a buffer of this thread's.
    // Into the hot path, with its neighbours: see `route::route`.
    #[inline(always)]
    pub(crate) fn new() -> Self {
        Self::Inline {
            len: 0,
            bytes: HeadBuffer::take(),
        }
    }

    /// Packs `uri` and `headers` into `self`, inline when they fit, else as a plain copy.
    /// Returns whether `headers` hold a `Host`.
    pub(crate) fn pack(&mut self, uri: &Uri, headers: &HeaderMap) -> bool {
        if let Self::Inline { len, bytes } = self {
            let mut out = Writer {
                bytes,
                at: 0,
                host: false,
            };
            if out.records(uri, headers).is_some() {
                // `at <= INLINE` fits in a `u8`.
                *len = out.at as u8;
                return out.host;
            }
        }
        *self = Self::Copied(Box::new((uri.clone(), headers.clone())));
        headers.contains_key(HOST)
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

    /// The URI again, parsed from its text.
    pub(crate) fn uri(&self) -> Uri {
        match self {
            // It was a valid URI when packed, written as `http` reads it back.
            Self::Inline { len, bytes } => {
                Uri::try_from(Self::split(*len, bytes).0).unwrap_or_default()
            }
            Self::Copied(copied) => copied.0.clone(),
        }
    }

    /// The URI and the header map again, rebuilt record by record.
    pub(crate) fn unpack(self) -> (Uri, HeaderMap) {
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
    /// Whether a `Host` header was written.
    host: bool,
}

impl Writer<'_> {
    fn records(&mut self, uri: &Uri, headers: &HeaderMap) -> Option<()> {
        let text = uri_text(uri)?;
        let uri_len = text.iter().map(|part| part.len()).sum::<usize>();
        self.put(&[u8::try_from(uri_len).ok()?])?;
        for part in text {
            self.put(part)?;
        }
        for (name, value) in headers {
            let (name_len, name) = match KNOWN.iter().position(|k| k == name) {
                // `i < KNOWN_COUNT`: no overflow.
                Some(i) => {
                    self.host |= i == HOST_AT;
                    (NAMED_FROM + i as u8, &[][..])
                }
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
/// `None` for an absolute URI whose path does not start with `/` (`https://a:8443` and `*`,
/// put together from parts): written out, `https://a:8443*`, it reads back as another
/// authority and path; such a head is copied the plain way.
fn uri_text(uri: &Uri) -> Option<[&[u8]; 4]> {
    let path = uri
        .path_and_query()
        .map_or(&b""[..], |p| p.as_str().as_bytes());
    // The scheme's text, not a comparison with `Scheme::HTTPS`: for the standard schemes it is
    // a static string, and comparing costs more than copying its four or five bytes.
    Some(match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => {
            if path.first().is_some_and(|&b| b != b'/') {
                return None;
            }
            [
                scheme.as_bytes(),
                b"://",
                authority.as_str().as_bytes(),
                path,
            ]
        }
        (_, Some(authority)) => [authority.as_str().as_bytes(), b"", b"", b""],
        _ => [path, b"", b"", b""],
    })
}

#[cfg(test)]
mod tests {
    use http::request::Parts;

    use super::*;
    use crate::head::tests::{mcp_request, parts};

    fn packed(parts: &Parts) -> Packed {
        let mut packed = Packed::new();
        packed.pack(&parts.uri, &parts.headers);
        packed
    }

    #[test]
    fn small_heads_stay_inline_and_large_ones_are_copied() {
        let small = packed(&parts(mcp_request()));
        assert!(matches!(small, Packed::Inline { .. }));
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
            let head = packed(&large);
            assert!(matches!(head, Packed::Copied(_)));
            assert_eq!(head.uri(), large.uri);
            assert_eq!(head.unpack().1, large.headers);
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
        let packed_len = |head: &Packed| match head {
            Packed::Inline { len, .. } => usize::from(*len),
            Packed::Copied(_) => panic!("a small head is packed inline"),
        };
        let unknown: Vec<HeaderName> = KNOWN
            .iter()
            .map(|n| HeaderName::from_bytes("x".repeat(n.as_str().len()).as_bytes()).unwrap())
            .collect();
        let (request, written_out) = (build(&KNOWN), build(&unknown));
        let (head, other) = (packed(&request), packed(&written_out));
        // Six records of known names hold no text.
        let names: usize = KNOWN.iter().map(|n| n.as_str().len()).sum::<usize>()
            + KNOWN[1].as_str().len()
            + KNOWN[2].as_str().len();
        assert_eq!(packed_len(&head) + names, packed_len(&other));

        let headers = head.unpack().1;
        assert_eq!(headers, request.headers);
        assert_eq!(other.unpack().1, written_out.headers);
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
        let headers = packed(&request).unpack().1;
        assert_eq!(headers, request.headers);
        assert!(headers["x-secret"].is_sensitive());
    }

    #[test]
    fn a_head_exactly_at_the_inline_size_stays_inline() {
        let (uri, name) = ("http://127.0.0.1/mcp", "x-fill");
        let value = "v".repeat(INLINE - 1 - uri.len() - RECORD_HEAD - name.len());
        let head = packed(&parts(http::Request::get(uri).header(name, value.as_str())));
        assert!(matches!(head, Packed::Inline { len, .. } if usize::from(len) == INLINE));
        assert_eq!(head.unpack().1[name], value.as_str());
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
        let Packed::Inline { len, bytes } = packed(&request) else {
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
