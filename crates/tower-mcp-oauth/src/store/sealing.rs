//! Records sealed at rest: [`SealingKey`], and the sealing and opening of one record's bytes
//! (XChaCha20-Poly1305), for the stores that keep credentials where others may read them (a
//! synced home directory, a backup, a data-loss scanner).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use mcp_oauth_flow::{Error, ErrorKind};
use zeroize::Zeroizing;

/// What a sealed record starts with: the format and its version, so that a record written
/// before the store was sealed (JSON, which starts with `{`) is told apart from a sealed one.
const MAGIC: &[u8; 8] = b"tmo-sl1\n";
/// XChaCha20's nonce: 192 random bits per record, too many to repeat by chance however many
/// records one key seals (a 96-bit nonce drawn at random is not safe past about 2^32).
const NONCE_LEN: usize = 24;
/// Bound to every record as associated data, before the record's own context (its kind, and
/// where the store may, its key): a sealed record of this store, in this format, of this
/// kind and key, so that one cannot be moved to another key (another user's, another
/// server's) and open there.
const CONTEXT: &[u8] = b"tower-mcp-oauth sealed record v1\0";

/// The key a store seals its records with (XChaCha20-Poly1305, 256 bits): tokens, refresh
/// tokens, client secrets and DPoP keys are written as ciphertext, useless to whoever reads
/// the files or the Redis values without the key.
///
/// Keep the key apart from the records, where the platform keeps secrets: the OS keychain
/// (Keychain, Credential Manager, Secret Service; the `keyring` crate reaches all three), a
/// secret manager, a hardware-backed store. A key kept beside the files seals nothing.
///
/// ```
/// use tower_mcp_oauth::SealingKey;
/// let key = SealingKey::generate().unwrap();
/// // The bytes to keep in the keychain, and the same key from them at the next start.
/// let bytes: [u8; 32] = *key.as_bytes();
/// let again = SealingKey::from_bytes(bytes);
/// assert_eq!(again.as_bytes(), key.as_bytes());
/// // Never shown.
/// assert_eq!(format!("{key:?}"), "SealingKey(..)");
/// ```
#[derive(Clone)]
pub struct SealingKey(Zeroizing<[u8; 32]>);

impl SealingKey {
    /// A new random key, from the operating system's generator.
    ///
    /// ```
    /// let a = tower_mcp_oauth::SealingKey::generate().unwrap();
    /// let b = tower_mcp_oauth::SealingKey::generate().unwrap();
    /// assert_ne!(a.as_bytes(), b.as_bytes());
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Store`] when the system has no randomness to give.
    pub fn generate() -> Result<Self, Error> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::getrandom(bytes.as_mut()).map_err(|e| {
            Error::new(
                ErrorKind::Store,
                format!("no randomness for a sealing key: {e}"),
            )
        })?;
        Ok(Self(bytes))
    }

    /// The key whose bytes are `bytes` (as [`as_bytes`](Self::as_bytes) gave them).
    ///
    /// ```
    /// let key = tower_mcp_oauth::SealingKey::from_bytes([7; 32]);
    /// assert_eq!(key.as_bytes(), &[7; 32]);
    /// ```
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The key's bytes, to keep where the platform keeps secrets.
    ///
    /// ```
    /// let key = tower_mcp_oauth::SealingKey::from_bytes([1; 32]);
    /// assert_eq!(key.as_bytes().len(), 32);
    /// ```
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        let key: &[u8; 32] = &self.0;
        XChaCha20Poly1305::new(key.into())
    }
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

/// The associated data of a record whose context is `context` (see [`CONTEXT`]).
fn associated(context: &str) -> Vec<u8> {
    [CONTEXT, context.as_bytes()].concat()
}

/// `record`'s JSON (pretty, for a file a person may read), in a buffer of exactly its size
/// (counted first), wiped when dropped: no copy is left behind by a buffer that grew. What
/// serde builds on the way is not wiped (a DPoP key's JWK, written through a JSON value).
/// Serialising a record twice gives the same bytes (derived `Serialize`, sorted maps), so the
/// count holds; were it ever short, the buffer would only grow, as any `Vec` does.
pub(crate) fn record_json(
    record: &impl serde::Serialize,
    pretty: bool,
) -> Result<Zeroizing<Vec<u8>>, serde_json::Error> {
    /// Counts what would be written.
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let write = |out: &mut dyn std::io::Write| match pretty {
        true => serde_json::to_writer_pretty(out, record),
        false => serde_json::to_writer(out, record),
    };
    let mut count = Count(0);
    write(&mut count)?;
    let mut bytes = Zeroizing::new(Vec::with_capacity(count.0));
    write(&mut *bytes)?;
    Ok(bytes)
}

/// `record` sealed with `key` for `context` (its kind, and its key where the store binds it):
/// [`MAGIC`], a random nonce, the ciphertext and its tag.
pub(crate) fn seal(key: &SealingKey, record: &[u8], context: &str) -> Result<Vec<u8>, Error> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::getrandom(&mut nonce)
        .map_err(|e| Error::new(ErrorKind::Store, format!("no randomness to seal with: {e}")))?;
    let aad = associated(context);
    let payload = Payload {
        msg: record,
        aad: &aad,
    };
    // Encrypting in memory fails only past the cipher's length limit (256 GiB).
    let sealed = key
        .cipher()
        .encrypt(&XNonce::from(nonce), payload)
        .map_err(|_| Error::new(ErrorKind::Store, "a record too large to seal"))?;
    let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + sealed.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// What a record's bytes turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Opened {
    /// A sealed record, opened: the record's own bytes.
    Sealed(Zeroizing<Vec<u8>>),
    /// Not sealed: written before the store was (or by a store that is not).
    Plain,
}

/// Opens `bytes` with `key` when they are a sealed record of `context`. A sealed record that
/// does not open (another key sealed it, it was sealed for another context, or its bytes were
/// changed) is an error naming `what`.
pub(crate) fn open(
    key: &SealingKey,
    bytes: &[u8],
    context: &str,
    what: &str,
) -> Result<Opened, Error> {
    let Some(rest) = bytes.strip_prefix(MAGIC.as_slice()) else {
        return Ok(Opened::Plain);
    };
    let refused = || {
        Error::new(
            ErrorKind::Store,
            format!(
                "{what} is sealed, and this store's key does not open it: another key sealed \
                 it, it was moved from another key, or it was changed since"
            ),
        )
    };
    if rest.len() < NONCE_LEN {
        return Err(refused());
    }
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let nonce = XNonce::try_from(nonce).map_err(|_| refused())?;
    let aad = associated(context);
    let payload = Payload {
        msg: sealed,
        aad: &aad,
    };
    let record = key
        .cipher()
        .decrypt(&nonce, payload)
        .map_err(|_| refused())?;
    Ok(Opened::Sealed(Zeroizing::new(record)))
}

/// A keyed fingerprint of a secret kept inside a sealed record (a token), in hex, for a store
/// that must compare records where it cannot open them (Redis's compare-and-swap script): equal
/// secrets give equal fingerprints, and without the key none can be told from another or
/// tested against a guess. SHA-256 of a subkey (itself a hash of the sealing key, so the key is
/// never used for two purposes) and the secret; equality is all it serves, which a length
/// extension cannot forge without the subkey.
/// The context (the record's kind and key) goes in too, so that one secret held under two keys
/// does not show as the same there.
// For the Redis store's scripts only.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn fingerprint(key: &SealingKey, context: &str, secret: &str) -> String {
    use sha2::{Digest, Sha256};
    let subkey = Zeroizing::new(
        Sha256::new()
            .chain_update(b"tower-mcp-oauth fingerprint v1\0")
            .chain_update(key.as_bytes())
            .finalize(),
    );
    let context_len = u64::try_from(context.len()).unwrap_or(u64::MAX);
    let digest = Sha256::new()
        .chain_update(subkey.as_slice())
        .chain_update(context_len.to_be_bytes())
        .chain_update(context.as_bytes())
        .chain_update(secret.as_bytes())
        .finalize();
    crate::hex::lower_hex(&digest)
}

/// Which key sealed a record, as a store's scripts can compare it without the key: the first
/// 128 bits of a hash of it, in hex. A store refuses to write over or remove a value another
/// key (or any key, for a store without one) sealed, which it could never read again.
// For the Redis store's scripts only.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn key_id(key: &SealingKey) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"tower-mcp-oauth key id v1\0")
        .chain_update(key.as_bytes())
        .finalize();
    crate::hex::lower_hex(&digest[..16])
}

/// Whether `bytes` are a sealed record (for a store without a key, which cannot read one).
pub(crate) fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_record_opens_with_its_key_only() {
        let key = SealingKey::from_bytes([3; 32]);
        let record = br#"{"resource":"https://mcp.example.com","tokens":{"access_token":"at"}}"#;
        let sealed = seal(&key, record, "tokens\0r").unwrap();
        assert!(is_sealed(&sealed));
        // Nothing of the record shows.
        assert!(!sealed.windows(2).any(|w| w == b"at"));
        assert_eq!(
            open(&key, &sealed, "tokens\0r", "f").unwrap(),
            Opened::Sealed(Zeroizing::new(record.to_vec()))
        );
        // Two seals of one record differ (a fresh nonce each).
        assert_ne!(seal(&key, record, "tokens\0r").unwrap(), sealed);
        // Moved to another key, or another kind, it does not open.
        assert!(open(&key, &sealed, "tokens\0other", "f").is_err());
        assert!(open(&key, &sealed, "client\0r", "f").is_err());

        let other = SealingKey::from_bytes([4; 32]);
        let err = open(&other, &sealed, "tokens\0r", "tokens-x.json").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Store);
        assert!(!err.is_transient());
        assert!(err.to_string().contains("tokens-x.json"), "{err}");
    }

    #[test]
    fn a_fingerprint_tells_secrets_apart_under_one_key_only() {
        let (a, b) = (
            SealingKey::from_bytes([1; 32]),
            SealingKey::from_bytes([2; 32]),
        );
        let f = |key, context, secret| fingerprint(key, context, secret);
        assert_eq!(f(&a, "k", "rt-1"), f(&a, "k", "rt-1"));
        assert_ne!(f(&a, "k", "rt-1"), f(&a, "k", "rt-2"));
        assert_ne!(f(&a, "k", "rt-1"), f(&b, "k", "rt-1"));
        // Under another key of the store, the same secret shows otherwise.
        assert_ne!(f(&a, "k", "rt-1"), f(&a, "k2", "rt-1"));
        // The context's length is bound: no moving bytes between it and the secret.
        assert_ne!(f(&a, "k", "rt-1"), f(&a, "kr", "t-1"));
        assert_eq!(f(&a, "k", "rt-1").len(), 64);
        assert!(!f(&a, "k", "rt-1").contains("rt-1"));
        // A key's id tells keys apart and shows nothing of them.
        assert_eq!(key_id(&a), key_id(&a.clone()));
        assert_ne!(key_id(&a), key_id(&b));
        assert_eq!(key_id(&a).len(), 32);
    }

    #[test]
    fn a_changed_or_cut_record_is_refused_and_a_plain_one_is_told_apart() {
        let key = SealingKey::from_bytes([5; 32]);
        let sealed = seal(&key, b"{}", "c").unwrap();
        for at in [MAGIC.len(), MAGIC.len() + NONCE_LEN, sealed.len() - 1] {
            let mut changed = sealed.clone();
            changed[at] ^= 1;
            assert!(open(&key, &changed, "c", "f").is_err(), "byte {at}");
        }
        for cut in [MAGIC.len(), MAGIC.len() + 3, MAGIC.len() + NONCE_LEN + 2] {
            assert!(
                open(&key, &sealed[..cut], "c", "f").is_err(),
                "cut at {cut}"
            );
        }
        assert_eq!(open(&key, b"{}", "c", "f").unwrap(), Opened::Plain);
        assert!(!is_sealed(b"{\"tokens\":1}"));
    }
}
