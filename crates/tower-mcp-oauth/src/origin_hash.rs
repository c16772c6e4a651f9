//! The keyed hash an [`OriginTable`](crate::origins::OriginTable) files origins under.
//!
//! The hash is keyed with secrets drawn at random per table: whoever picks the server URLs
//! cannot predict it, so cannot pile every origin into one bucket to make lookups linear
//! again. It is a folded multiply per eight bytes (the wyhash family's step), case folded as it
//! reads: SipHash over a lowercased copy was a third of a lookup. Two origins that do share a
//! hash simply share a bucket, and the table's own test decides inside it.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use crate::origin::{Origin, PortText};

/// How a table turns an origin into its key.
#[derive(Clone)]
pub(crate) enum Keys {
    /// A hash keyed with two secrets drawn at random for each table: what every table uses.
    Random(u64, u64),
    /// Every origin hashes alike, so the tests can see that the bucket's own test decides.
    #[cfg(test)]
    Colliding,
}

impl Keys {
    pub(crate) fn random() -> Self {
        // std's `RandomState` is seeded from the OS once per thread and stepped for each new
        // state: two tables never draw the same secrets.
        let state = RandomState::new();
        Self::Random(state.hash_one(0_u8), state.hash_one(1_u8))
    }
}

/// The hash is already the key: the bucket map uses it as it is instead of hashing it again.
#[derive(Default)]
pub(crate) struct Prehashed(u64);

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
pub(crate) fn written_key(keys: (u64, u64), scheme: &[u8], authority: &[&[u8]]) -> u64 {
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
pub(crate) fn origin_key(keys: (u64, u64), origin: Origin<'_>) -> u64 {
    let port = origin.port_text();
    let port = port.as_ref().map_or("", PortText::as_str);
    written_key(
        keys,
        origin.scheme().as_bytes(),
        &[origin.host().as_bytes(), port.as_bytes()],
    )
}
