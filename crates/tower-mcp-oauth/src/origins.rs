//! [`OriginTable`]: what the layer holds per origin, found at the same cost whether it holds one
//! server's tokens or ten thousand.
//!
//! A gateway holds tokens for many MCP servers in one layer, and every request must find its own
//! without walking the others. The table is keyed by a hash of the request's origin (RFC 6454
//! §4: scheme, host, port), computed from the URI in place: ASCII-lowercased through a small
//! stack buffer, so no allocation; and the table is immutable (the cache swaps a new one in on
//! every write, copy-on-write), so no lock.
//!
//! The hash is keyed with secrets drawn at random per table: whoever picks the server URLs
//! cannot predict it, so cannot pile every origin into one bucket to make lookups linear
//! again. It is a folded multiply per eight bytes (the wyhash family's step), case folded as it
//! reads: SipHash over a lowercased copy was a third of a lookup. Two origins that do share a
//! hash simply share a bucket, and the caller's own test
//! (`cache::covers`) decides inside it; a bucket holds entries of one origin in all but
//! astronomically rare cases.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::Arc;

use http::Uri;
use url::Url;

/// An origin's parts, borrowed from a URI or URL: scheme and host as written (compared and
/// hashed ignoring ASCII case), and the port with the scheme's default filled in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Origin<'a> {
    scheme: &'a str,
    host: &'a str,
    port: Option<u16>,
}

/// The default port of the schemes MCP is spoken over (RFC 9110 §4.2.1, §4.2.2), so that
/// `https://a` and `https://a:443` are one origin (RFC 6454 §4 step 4-5).
fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else {
        None
    }
}

/// The host and port of an authority (`userinfo@host:port`, RFC 3986 §3.2) that `http` has
/// already validated, as `Authority::host` and `Authority::port_u16` give them, in one pass from
/// the end: those parse the authority again for each call with `str` searches, and on the hot
/// path that was a third of a lookup.
fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    let bytes = authority.as_bytes();
    // The host starts after the last `@` (userinfo may hold `:` but not `@`, RFC 3986 §3.2.1);
    // the port follows the last `:` after any `]` (an IP literal holds colons).
    let (mut start, mut colon, mut bracket) = (0, None, false);
    for (i, &b) in bytes.iter().enumerate().rev() {
        match b {
            b'@' => {
                start = i + 1;
                break;
            }
            b']' => bracket = true,
            b':' if colon.is_none() && !bracket => colon = Some(i),
            _ => {}
        }
    }
    let end = if bytes.get(start) == Some(&b'[') {
        // An IP literal: up to its closing bracket, colons and all.
        start + bytes[start..].iter().position(|&b| b == b']')? + 1
    } else {
        colon.unwrap_or(bytes.len())
    };
    let port = colon.and_then(|colon| parse_port(&bytes[colon + 1..]));
    (end > start).then(|| (&authority[start..end], port))
}

/// Decimal digits as a port, as `u16::from_str` reads them (leading zeros allowed, nothing
/// else): `None` when empty, not all digits, or past 65535.
fn parse_port(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() {
        return None;
    }
    let mut value: u32 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(b - b'0');
        if value > u32::from(u16::MAX) {
            return None;
        }
    }
    u16::try_from(value).ok()
}

impl<'a> Origin<'a> {
    /// The origin of a request URI; `None` for a relative one (no scheme or host).
    pub(crate) fn of_uri(uri: &'a Uri) -> Option<Self> {
        let scheme = uri.scheme_str()?;
        let (host, port) = split_authority(uri.authority()?.as_str())?;
        Some(Self {
            scheme,
            host,
            port: port.or_else(|| default_port(scheme)),
        })
    }

    /// The origin of a resource URL; `None` when it has no host. Its port is the one `url`
    /// knows for its scheme, as `cache::covers` compares it, so that a request `covers` accepts
    /// lands in the resource's bucket whatever the scheme.
    pub(crate) fn of_url(url: &'a Url) -> Option<Self> {
        Some(Self {
            scheme: url.scheme(),
            host: url.host_str()?,
            port: url.port_or_known_default(),
        })
    }

    /// An origin from its parts (the port with any default already filled in).
    pub(crate) fn new(scheme: &'a str, host: &'a str, port: Option<u16>) -> Self {
        Self { scheme, host, port }
    }

    /// The scheme, as written.
    pub(crate) fn scheme(&self) -> &'a str {
        self.scheme
    }

    /// The host, as written (IPv6 in brackets).
    pub(crate) fn host(&self) -> &'a str {
        self.host
    }

    /// The port, or the scheme's default for `http` and `https`.
    pub(crate) fn port(&self) -> Option<u16> {
        self.port
    }

    /// `:port` when the port is not the scheme's default (RFC 3986 §6.2.3: the normal form
    /// omits a default port), as the resource URL and nearly every request write it.
    pub(crate) fn port_text(&self) -> Option<PortText> {
        let port = self.port?;
        if Some(port) == default_port(self.scheme) {
            return None;
        }
        let mut text = PortText {
            bytes: [b':'; 6],
            len: 1,
        };
        let digits = if port == 0 {
            1
        } else {
            port.ilog10() as usize + 1
        };
        let mut rest = port;
        for at in (1..=digits).rev() {
            text.bytes[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        text.len = 1 + digits as u8;
        Some(text)
    }

    /// Whether `self` and `other` are the same origin (RFC 6454 §5: scheme, host and port
    /// equal; scheme and host compared ignoring ASCII case, as RFC 3986 §6.2.2.1 says).
    pub(crate) fn same(&self, other: &Origin<'_>) -> bool {
        // Exact bytes first: requests are mostly written in lowercase, and a `memcmp` is far
        // cheaper than comparing byte by byte with case folded.
        let eq = |a: &str, b: &str| a == b || a.eq_ignore_ascii_case(b);
        self.port == other.port && eq(self.scheme, other.scheme) && eq(self.host, other.host)
    }
}

/// `:` and a port's decimal digits, on the stack.
pub(crate) struct PortText {
    bytes: [u8; 6],
    len: u8,
}

impl PortText {
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII digits and `:` are written.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

/// An origin kept in a table (the store was searched for it, say), lowercased once, with its
/// authority as a request to it is normally written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OwnedOrigin {
    scheme: Box<str>,
    host: Box<str>,
    port: Option<u16>,
    /// `host`, or `host:port` when the port is not the scheme's default (see
    /// [`Origin::port_text`]): the table's key is a hash of it.
    authority: Box<str>,
}

impl OwnedOrigin {
    pub(crate) fn new(origin: Origin<'_>) -> Self {
        let host = origin.host.to_ascii_lowercase();
        let mut authority = host.clone();
        if let Some(port) = origin.port_text() {
            authority.push_str(port.as_str());
        }
        Self {
            scheme: origin.scheme.to_ascii_lowercase().into(),
            host: host.into(),
            port: origin.port,
            authority: authority.into(),
        }
    }

    pub(crate) fn as_origin(&self) -> Origin<'_> {
        Origin {
            scheme: &self.scheme,
            host: &self.host,
            port: self.port,
        }
    }

    /// Whether a request written with `scheme` and `authority` goes to this origin because it
    /// writes them as this origin does (ASCII case aside). `false` says nothing: the request
    /// may write the same origin another way (userinfo, an explicit default port).
    #[inline]
    pub(crate) fn is_written_as(&self, scheme: &str, authority: &str) -> bool {
        same_text(&self.authority, authority) && same_text(&self.scheme, scheme)
    }
}

/// `a == b` ignoring ASCII case, for the short strings of an origin: the exact comparison
/// first ([`same_bytes`]: requests are mostly written in lowercase), then byte by byte with case
/// folded.
#[inline]
fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    same_bytes(a, b) || a.eq_ignore_ascii_case(b)
}

/// `a == b` for the short byte strings of the hot path (a scheme, an authority, a path prefix),
/// without a call to `memcmp`, which costs more than the bytes it compares: overlapping loads
/// of four or eight bytes cover any length past three, so there is no byte loop.
#[inline]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let diff = match n {
        0 => 0,
        // Bytes 0, n/2 and n-1 cover every position of one to three.
        1..4 => {
            let pick =
                |s: &[u8]| u32::from(s[0]) | u32::from(s[n / 2]) << 8 | u32::from(s[n - 1]) << 16;
            pick(a) ^ pick(b)
        }
        4..8 => (half(a, 0) ^ half(b, 0)) | (half(a, n - 4) ^ half(b, n - 4)),
        _ => {
            let mut diff = word(&a[n - 8..]) ^ word(&b[n - 8..]);
            for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
                diff |= word(x) ^ word(y);
            }
            return diff == 0;
        }
    };
    diff == 0
}

/// Eight bytes as one word.
#[inline]
fn word(bytes: &[u8]) -> u64 {
    let mut le = [0; 8];
    le.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(le)
}

/// Four bytes from `at`, as one word.
#[inline]
fn half(bytes: &[u8], at: usize) -> u32 {
    let mut le = [0; 4];
    le.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(le)
}

/// How a table turns an origin into its key.
#[derive(Clone)]
enum Keys {
    /// A hash keyed with two secrets drawn at random for each table: what every table uses.
    Random(u64, u64),
    /// Every origin hashes alike, so the tests can see that the bucket's own test decides.
    #[cfg(test)]
    Colliding,
}

impl Keys {
    fn random() -> Self {
        // std's `RandomState` is seeded from the OS once per thread and stepped for each new
        // state: two tables never draw the same secrets.
        let state = RandomState::new();
        Self::Random(state.hash_one(0_u8), state.hash_one(1_u8))
    }
}

/// The hash is already the key: the bucket map uses it as it is instead of hashing it again.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed (through `write_u64`); kept correct for any input anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The low and high halves of a 64×64-bit product, folded together: the mixing step of the
/// wyhash family, one multiplication per eight bytes.
fn fold(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// Bit 5 of every byte (`0x20`): set, it makes ASCII letters lowercase, so the hash ignores their case
/// without copying the bytes. It also folds a few punctuation marks onto others (`@` onto
/// `` ` ``, `[` onto `{`): origins differing only there share a bucket, and the bucket's own
/// test keeps them apart.
const LOWERCASE: u64 = 0x2020_2020_2020_2020;

/// Mixes `bytes` into `hash`, eight at a time, case folded (see [`LOWERCASE`]).
fn feed(mut hash: u64, (k0, k1): (u64, u64), bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut le = [0; 8];
        le.copy_from_slice(word);
        hash = fold((u64::from_le_bytes(le) | LOWERCASE) ^ k0, hash ^ k1);
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        // Byte by byte: for at most seven bytes a loop is cheaper than a call to `memcpy`.
        let mut word = 0;
        for (i, &b) in rest.iter().enumerate() {
            word |= u64::from(b | 0x20) << (8 * i);
        }
        hash = fold(word ^ k0, hash ^ k1);
    }
    hash
}

/// Mixes the concatenation of `parts` into `hash` exactly as [`feed`] mixes it in one piece: a
/// byte at a time, for the slow path that has the authority in pieces.
fn feed_parts(mut hash: u64, (k0, k1): (u64, u64), parts: &[&[u8]]) -> u64 {
    let (mut word, mut filled) = (0_u64, 0);
    for &b in parts.iter().flat_map(|part| part.iter()) {
        word |= u64::from(b | 0x20) << (8 * filled);
        filled += 1;
        if filled == 8 {
            hash = fold(word ^ k0, hash ^ k1);
            (word, filled) = (0, 0);
        }
    }
    if filled > 0 {
        hash = fold(word ^ k0, hash ^ k1);
    }
    hash
}

/// The key of an origin written as `scheme` and `authority` (`host` or `host:port`, the port
/// only when it is not the default): the two lengths, then the scheme's and the authority's
/// bytes, ASCII case folded; the lengths keep `ab` + `c` apart from `a` + `bc`.
fn written_key(keys: (u64, u64), scheme: &[u8], authority: &[&[u8]]) -> u64 {
    let authority_len: usize = authority.iter().map(|part| part.len()).sum();
    let lengths = (scheme.len() as u64) << 17 ^ (authority_len as u64) << 32;
    let hash = feed(lengths, keys, scheme);
    let hash = match authority {
        [one] => feed(hash, keys, one),
        parts => feed_parts(hash, keys, parts),
    };
    fold(hash ^ keys.0, keys.1 ^ 0x9E37_79B9_7F4A_7C15)
}

/// The key of an origin: that of its authority as normally written (see [`Origin::port_text`]),
/// so that a request written so finds its bucket without taking its authority apart.
fn origin_key(keys: (u64, u64), origin: Origin<'_>) -> u64 {
    let port = origin.port_text();
    let port = port.as_ref().map_or("", PortText::as_str);
    written_key(
        keys,
        origin.scheme.as_bytes(),
        &[origin.host.as_bytes(), port.as_bytes()],
    )
}

/// An immutable map from origins to the entries held for them (most specific first, as the
/// caller orders them). Cloning it copies the bucket index, not the entries (each bucket is an
/// `Arc`), and keeps its hash keys.
pub(crate) struct OriginTable<T> {
    keys: Keys,
    buckets: HashMap<u64, Arc<[T]>, BuildHasherDefault<Prehashed>>,
    /// The only bucket, when there is exactly one: a client of one MCP server (the common
    /// case) finds its entries without hashing. Whatever its origin, it holds every entry.
    sole: Option<Arc<[T]>>,
}

impl<T> Default for OriginTable<T> {
    fn default() -> Self {
        Self {
            keys: Keys::random(),
            buckets: HashMap::default(),
            sole: None,
        }
    }
}

impl<T> Clone for OriginTable<T> {
    fn clone(&self) -> Self {
        Self {
            keys: self.keys.clone(),
            buckets: self.buckets.clone(),
            sole: self.sole.clone(),
        }
    }
}

impl<T> OriginTable<T> {
    /// A table in which every origin shares one bucket.
    #[cfg(test)]
    pub(crate) fn colliding() -> Self {
        Self {
            keys: Keys::Colliding,
            buckets: HashMap::default(),
            sole: None,
        }
    }

    fn key(&self, origin: Origin<'_>) -> u64 {
        match self.keys {
            Keys::Random(k0, k1) => origin_key((k0, k1), origin),
            #[cfg(test)]
            Keys::Colliding => 0,
        }
    }

    /// The entries of `origin`'s bucket (possibly sharing it with another origin: the caller
    /// checks each one), without allocating or locking.
    pub(crate) fn bucket(&self, origin: Origin<'_>) -> &[T] {
        self.at(self.key(origin))
    }

    fn at(&self, key: u64) -> &[T] {
        self.buckets.get(&key).map_or(&[], |b| b)
    }

    /// The first entry for `uri`'s origin that `wanted` accepts, in bucket order
    /// (`origin_of` says each entry's origin); `None` for a relative URI.
    ///
    /// A request almost always writes its authority as its resource URL does (`host` or
    /// `host:port`, no userinfo, no default port): then the bucket is found by hashing the
    /// authority as it is (or is the only one), without taking it apart, and an entry is
    /// recognised by comparing the text. Only a request written otherwise is parsed (RFC 6454
    /// §4) and looked up again.
    #[inline(always)]
    pub(crate) fn find_for_request<'a>(
        &'a self,
        uri: &Uri,
        origin_of: impl Fn(&T) -> &OwnedOrigin,
        wanted: impl Fn(&T) -> bool,
    ) -> Option<&'a T> {
        let scheme = uri.scheme_str()?;
        let authority = uri.authority()?.as_str();
        let bucket = match &self.sole {
            Some(sole) => sole,
            None => self.at(self.written_key(scheme, authority)),
        };
        let mut written_so = false;
        for entry in bucket {
            if origin_of(entry).is_written_as(scheme, authority) {
                if wanted(entry) {
                    return Some(entry);
                }
                written_so = true;
            }
        }
        if written_so {
            // Every entry of the request's origin is in that bucket (the sole one holds all).
            return None;
        }
        self.find_parsed(uri, authority, origin_of, wanted)
    }

    /// [`find_for_request`](Self::find_for_request) for a request whose authority is not
    /// written as its resource's: taken apart, and looked up again. Kept out of line, so that
    /// the hot path stays small.
    #[cold]
    #[inline(never)]
    fn find_parsed<'a>(
        &'a self,
        uri: &Uri,
        authority: &str,
        origin_of: impl Fn(&T) -> &OwnedOrigin,
        wanted: impl Fn(&T) -> bool,
    ) -> Option<&'a T> {
        let origin = Origin::of_uri(uri)?;
        // Written as normal already: the bucket above was the origin's, and held none of it.
        let port = origin.port_text();
        let normal_len = origin.host.len() + port.as_ref().map_or(0, |p| p.as_str().len());
        if normal_len == authority.len() {
            return None;
        }
        self.bucket(origin)
            .iter()
            .find(|entry| origin_of(entry).as_origin().same(&origin) && wanted(entry))
    }

    fn written_key(&self, scheme: &str, authority: &str) -> u64 {
        match self.keys {
            Keys::Random(k0, k1) => {
                written_key((k0, k1), scheme.as_bytes(), &[authority.as_bytes()])
            }
            #[cfg(test)]
            Keys::Colliding => 0,
        }
    }

    /// A copy of the table with `origin`'s bucket replaced by what `edit` makes of it; an empty
    /// bucket is dropped.
    pub(crate) fn with_bucket(
        &self,
        origin: Origin<'_>,
        edit: impl FnOnce(&[T]) -> Vec<T>,
    ) -> Self {
        let key = self.key(origin);
        let bucket = edit(self.buckets.get(&key).map_or(&[], |b| b));
        let mut next = self.clone();
        if bucket.is_empty() {
            next.buckets.remove(&key);
        } else {
            next.buckets.insert(key, bucket.into());
        }
        next.sole = match next.buckets.len() {
            1 => next.buckets.values().next().cloned(),
            _ => None,
        };
        next
    }

    /// How many entries the table holds, over all buckets.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.buckets.values().map(|b| b.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    /// A table of resource URLs, each bucket most specific first, as the cache keeps it.
    fn table_of(base: OriginTable<Url>, resources: &[&str]) -> OriginTable<Url> {
        resources.iter().fold(base, |table, r| {
            let r = url(r);
            table.with_bucket(Origin::of_url(&r).unwrap(), |b| {
                let mut next: Vec<Url> = b.iter().filter(|u| **u != r).cloned().collect();
                next.push(r.clone());
                next.sort_by_key(|u| std::cmp::Reverse(u.path().len()));
                next
            })
        })
    }

    /// The resource `table` answers for `request`: the first of the bucket that covers it.
    fn found(table: &OriginTable<Url>, request: &str) -> Option<String> {
        let request = uri(request);
        let origin = Origin::of_uri(&request)?;
        table
            .bucket(origin)
            .iter()
            .find(|r| crate::cache::covers(r, &request))
            .map(|r| r.to_string())
    }

    #[test]
    fn authorities_split_as_http_splits_them() {
        for s in [
            "http://mcp.example.com/mcp",
            "https://MCP.Example.com:8443/x",
            "http://user:pw@host.example:81/",
            "http://user@host.example/",
            "http://[::1]/mcp",
            "http://[::1]:8080/mcp",
            "http://[fe80::1%25eth0]:1/",
            "http://127.0.0.1:65535/",
            "http://host:/",
            "http://host:0080/",
            "http://host:99999/",
            "http://[::1]:/",
        ] {
            let u = uri(s);
            let (host, port) = split_authority(u.authority().unwrap().as_str()).unwrap();
            assert_eq!((Some(host), port), (u.host(), u.port_u16()), "{s}");
        }
    }

    #[test]
    fn hosts_and_schemes_ignore_case_and_default_ports_fill_in() {
        let table = table_of(OriginTable::default(), &["https://mcp.example.com/mcp"]);
        let hit = Some("https://mcp.example.com/mcp".to_owned());
        assert_eq!(found(&table, "https://MCP.Example.COM/mcp"), hit);
        assert_eq!(found(&table, "HTTPS://mcp.example.com/mcp"), hit);
        assert_eq!(found(&table, "https://mcp.example.com:443/mcp"), hit);
        assert_eq!(found(&table, "https://mcp.example.com:8443/mcp"), None);
        assert_eq!(found(&table, "http://mcp.example.com/mcp"), None);
        assert_eq!(found(&table, "https://mcp.example.co/mcp"), None);
        assert_eq!(found(&table, "/mcp"), None);

        let explicit = table_of(OriginTable::default(), &["http://localhost:80/"]);
        assert_eq!(
            found(&explicit, "http://LOCALHOST/x").as_deref(),
            Some("http://localhost/")
        );
    }

    #[test]
    fn the_most_specific_path_wins_at_segment_boundaries() {
        for base in [OriginTable::default(), OriginTable::colliding()] {
            let table = table_of(
                base,
                &[
                    "https://a.example/",
                    "https://a.example/mcp",
                    "https://a.example/mcp/v2",
                ],
            );
            let at = |r: &str| found(&table, r);
            assert_eq!(
                at("https://a.example/mcp/v2/x").as_deref(),
                Some("https://a.example/mcp/v2")
            );
            assert_eq!(
                at("https://a.example/mcp/v2").as_deref(),
                Some("https://a.example/mcp/v2")
            );
            assert_eq!(
                at("https://a.example/mcp/v20").as_deref(),
                Some("https://a.example/mcp")
            );
            assert_eq!(
                at("https://a.example/mcp").as_deref(),
                Some("https://a.example/mcp")
            );
            assert_eq!(
                at("https://a.example/mcpx").as_deref(),
                Some("https://a.example/")
            );
            assert_eq!(
                at("https://a.example/").as_deref(),
                Some("https://a.example/")
            );
        }
    }

    #[test]
    fn origins_sharing_a_bucket_never_answer_for_each_other() {
        let table = table_of(
            OriginTable::colliding(),
            &[
                "https://a.example/mcp",
                "https://b.example/",
                "http://a.example:8080/",
            ],
        );
        // One bucket holds all three: the origin check inside it keeps them apart.
        assert_eq!(table.buckets.len(), 1);
        assert_eq!(table.len(), 3);
        assert_eq!(
            found(&table, "https://a.example/mcp").as_deref(),
            Some("https://a.example/mcp")
        );
        assert_eq!(found(&table, "https://a.example/other"), None);
        assert_eq!(
            found(&table, "https://B.example/mcp").as_deref(),
            Some("https://b.example/")
        );
        assert_eq!(
            found(&table, "http://a.example:8080/mcp").as_deref(),
            Some("http://a.example:8080/")
        );
        assert_eq!(found(&table, "http://a.example/mcp"), None);
    }

    #[test]
    fn random_keys_spread_origins_and_emptied_buckets_go() {
        let resources: Vec<String> = (0..1000)
            .map(|i| format!("https://s{i}.example/mcp"))
            .collect();
        let refs: Vec<&str> = resources.iter().map(String::as_str).collect();
        let table = table_of(OriginTable::default(), &refs);
        assert_eq!(table.len(), 1000);
        // 1000 origins in 64-bit keyed hashes: a shared bucket would be a broken hash.
        assert_eq!(table.buckets.len(), 1000);
        let one = url("https://s7.example/mcp");
        let fewer = table.with_bucket(Origin::of_url(&one).unwrap(), |b| {
            b.iter().filter(|u| **u != one).cloned().collect()
        });
        assert_eq!((fewer.len(), fewer.buckets.len()), (999, 999));
        assert!(table.sole.is_none());
        // Down to one origin, its bucket is the sole one; emptied, none.
        let two = ["https://s1.example/mcp", "https://s2.example/mcp"];
        let (s1, s2) = (url(two[0]), url(two[1]));
        let one_left = table_of(OriginTable::default(), &two)
            .with_bucket(Origin::of_url(&s2).unwrap(), |_| Vec::new());
        assert_eq!(one_left.sole.as_deref(), Some(&[s1.clone()][..]));
        let none_left = one_left.with_bucket(Origin::of_url(&s1).unwrap(), |_| Vec::new());
        assert!(none_left.sole.is_none());
        assert_eq!(found(&none_left, two[0]), None);
        assert_eq!(found(&fewer, "https://s7.example/mcp"), None);
        // The copy left the original as it was.
        assert!(found(&table, "https://s7.example/mcp").is_some());
    }

    #[test]
    fn two_tables_draw_different_keys() {
        let a = OriginTable::<()>::default();
        let b = OriginTable::<()>::default();
        let o = uri("https://a.example/");
        let o = Origin::of_uri(&o).unwrap();
        assert_ne!(a.key(o), b.key(o));
        // A copy keeps its keys, or its buckets would be lost.
        assert_eq!(a.clone().key(o), a.key(o));
    }

    #[test]
    fn keys_tell_apart_what_origins_tell_apart() {
        let table = OriginTable::<()>::default();
        let key = |scheme, host, port| table.key(Origin::new(scheme, host, port));
        let base = key("https", "a.example", Some(443));
        assert_eq!(key("HTTPS", "A.Example", Some(443)), base);
        for other in [
            key("http", "a.example", Some(443)),
            key("https", "a.example", Some(444)),
            key("https", "a.exampl", Some(443)),
            key("https", "b.example", Some(443)),
            // Every byte counts, in both the whole words and the rest.
            key("https", "a.example.com.", Some(443)),
            key("https", "a.examplf", Some(443)),
            key("https", "b.example.com", Some(443)),
        ] {
            assert_ne!(other, base);
        }
        // The same bytes split differently between scheme and host.
        assert_ne!(key("ab", "c", None), key("a", "bc", None));
        assert_ne!(key("https", "x", Some(0)), key("https", "x", None));
        // No port and the default one are written alike, so they share a key: the bucket's
        // own test (`Origin::same`) tells them apart.
        assert_eq!(key("https", "a.example", None), base);
    }

    #[test]
    fn bytes_are_the_same_only_when_every_byte_is() {
        let text: Vec<u8> = (1..=40).collect();
        for n in 0..=text.len() {
            let a = &text[..n];
            // Equal bytes elsewhere in memory.
            let copy = a.to_vec();
            assert!(same_bytes(a, &copy));
            if n > 0 {
                assert!(!same_bytes(a, &text[..n - 1]));
            }
            for at in 0..n {
                let mut other = a.to_vec();
                other[at] ^= 0x80;
                assert!(!same_bytes(a, &other), "{n} {at}");
            }
        }
    }

    #[test]
    fn texts_are_the_same_only_when_every_byte_is_ignoring_case() {
        let text = "abcdefghijklmnopqrstu";
        for n in 0..=text.len() {
            let a = &text[..n];
            assert!(same_text(a, a));
            assert!(same_text(a, &a.to_ascii_uppercase()));
            assert!(!same_text(a, &text[..n.saturating_sub(1)]) || n == 0);
            for at in 0..n {
                let mut other = a.as_bytes().to_vec();
                other[at] = b'-';
                assert!(
                    !same_text(a, std::str::from_utf8(&other).unwrap()),
                    "{n} {at}"
                );
            }
        }
    }

    #[test]
    fn an_origin_and_its_authority_as_written_share_a_key() {
        let table = OriginTable::<()>::default();
        for (scheme, host, port, written) in [
            ("https", "a.example", Some(443), "a.example"),
            ("HTTPS", "A.example", Some(443), "a.EXAMPLE"),
            ("http", "a.example", Some(80), "a.example"),
            ("http", "localhost", Some(3000), "localhost:3000"),
            ("http", "localhost", Some(0), "localhost:0"),
            ("http", "localhost", Some(1), "localhost:1"),
            ("http", "localhost", Some(9), "localhost:9"),
            ("http", "localhost", Some(10), "localhost:10"),
            ("http", "localhost", Some(100), "localhost:100"),
            ("http", "localhost", Some(1000), "localhost:1000"),
            ("http", "localhost", Some(10000), "localhost:10000"),
            ("http", "localhost", Some(99), "localhost:99"),
            ("http", "localhost", Some(65535), "localhost:65535"),
            ("https", "a.example", Some(80), "a.example:80"),
            ("http", "[::1]", Some(8080), "[::1]:8080"),
            ("ws", "a.example", Some(80), "a.example:80"),
            ("ws", "a.example", None, "a.example"),
            (
                "https",
                "a-host-name-longer-than-a-few-words.example.com",
                Some(8443),
                "a-host-name-longer-than-a-few-words.example.com:8443",
            ),
        ] {
            let origin = Origin::new(scheme, host, port);
            assert_eq!(
                table.key(origin),
                table.written_key(scheme, written),
                "{scheme} {written}"
            );
            assert!(OwnedOrigin::new(origin).is_written_as(scheme, written));
        }
        assert_ne!(
            table.written_key("http", "localhost:3000"),
            table.written_key("http", "localhost:3001")
        );
    }

    /// A table of the origins of `resources`, each its own entry.
    fn table_of_origins(
        base: OriginTable<OwnedOrigin>,
        resources: &[&str],
    ) -> OriginTable<OwnedOrigin> {
        resources.iter().fold(base, |table, r| {
            let origin = OwnedOrigin::new(Origin::of_url(&url(r)).unwrap());
            table.with_bucket(origin.as_origin(), |b| {
                let mut next = b.to_vec();
                next.push(origin.clone());
                next
            })
        })
    }

    #[test]
    fn a_request_finds_its_bucket_however_it_writes_its_authority() {
        for base in [OriginTable::default(), OriginTable::colliding()] {
            let held = [
                "http://localhost:3000/",
                "https://a.example/",
                "http://[::1]/",
                // Host 4 bytes, port text 3: a request with 5 bytes of userinfo is 12 bytes
                // long, as long as 4 × 3, and must still be parsed and found.
                "http://abcd:99/",
            ];
            // Requests against a table of one origin: its only bucket.
            let sole = table_of_origins(base.clone(), &held[..1]);
            assert!(sole.sole.is_some());
            for (request, found) in [
                ("http://localhost:3000/mcp", true),
                ("http://LOCALHOST:3000/", true),
                ("http://u@localhost:3000/", true),
                ("http://localhost:03000/", true),
                ("http://localhost:3001/", false),
                ("http://u@localhost:3001/", false),
                ("https://a.example/", false),
                ("https://a.example:443/", false),
            ] {
                let request = uri(request);
                let hit = sole.find_for_request(&request, |o| o, |_| true);
                assert_eq!(hit.is_some(), found, "{request}");
            }
            let table = table_of_origins(base, &held);
            // Three origins: three buckets, or one when they collide.
            assert_eq!(table.sole.is_some(), table.buckets.len() == 1);
            let origin_of = |request: &str| {
                let request = uri(request);
                let found = table.find_for_request(&request, |o| o, |_| true)?;
                Some(found.authority.to_string())
            };
            let at = |a: &str| Some(a.to_owned());
            assert_eq!(origin_of("http://localhost:3000/mcp"), at("localhost:3000"));
            assert_eq!(origin_of("http://LocalHost:3000/"), at("localhost:3000"));
            assert_eq!(origin_of("https://a.example/x"), at("a.example"));
            assert_eq!(origin_of("http://[::1]/"), at("[::1]"));
            // Written otherwise: parsed, and found all the same.
            assert_eq!(
                origin_of("http://u:p@localhost:3000/"),
                at("localhost:3000")
            );
            assert_eq!(origin_of("http://localhost:03000/"), at("localhost:3000"));
            assert_eq!(origin_of("https://a.example:443/"), at("a.example"));
            assert_eq!(origin_of("http://[::1]:80/"), at("[::1]"));
            assert_eq!(origin_of("http://uuuu@abcd:99/"), at("abcd:99"));
            // Not held, however written.
            for other in [
                "http://localhost:3001/",
                "http://localhost/",
                "https://a.example:8443/",
                "http://a.example/",
                "https://b.example/",
                "http://u@localhost:3001/",
                "/relative",
            ] {
                assert_eq!(origin_of(other), None, "{other}");
            }
        }
    }

    #[test]
    fn long_hosts_hash_alike_whatever_their_case() {
        let table = OriginTable::<()>::default();
        let long = "a-very-long-host-name-beyond-one-buffer-of-sixty-four-bytes.example.com";
        let lower = uri(&format!("https://{long}/"));
        let upper = uri(&format!("https://{}/", long.to_ascii_uppercase()));
        let other = uri(&format!("https://{long}x/"));
        let key = |u: &Uri| table.key(Origin::of_uri(u).unwrap());
        assert_eq!(key(&lower), key(&upper));
        assert_ne!(key(&lower), key(&other));
        let owned = OwnedOrigin::new(Origin::of_uri(&upper).unwrap());
        assert!(owned.as_origin().same(&Origin::of_uri(&lower).unwrap()));
        assert_eq!(table.key(owned.as_origin()), key(&lower));
    }
}
