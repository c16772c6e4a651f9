//! The stored form of tokens, registrations, statuses and pending logins: their serde JSON, or,
//! in a sealed store ([`RedisStore::sealed_with`](super::RedisStore::sealed_with)), that JSON
//! sealed, in an envelope that shows only what the store's scripts compare.
//!
//! A sealed envelope is `{"sealed":"<base64 of the sealed JSON>", ...}` with, beside it, the id
//! of the key that sealed it (the store's scripts refuse to write over or remove a value
//! sealed under another key), the keyed fingerprints of the access and refresh tokens
//! (compare-and-swap compares those, not the tokens) and a registration's `client_id` (no
//! secret: the refused-client removal compares it). `sealed` comes first, so a sealed value is
//! told from a plain record (which never has such a field) by its first bytes. The seal binds
//! the value's kind and name (its Redis key without the prefix): a value copied under another
//! key (another user's, another server's) does not open there.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use mcp_oauth_flow::{client::ClientRegistration, token::TokenSet, Error, ErrorKind};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::store::sealing::{self, Opened, SealingKey};

/// How every sealed value starts.
const SEALED_PREFIX: &str = r#"{"sealed":""#;

/// What a sealed envelope shows beside the ciphertext.
#[derive(Default)]
pub(super) struct Shown<'a> {
    access_token: Option<&'a str>,
    refresh_token: Option<&'a str>,
    client_id: Option<&'a str>,
}

impl<'a> Shown<'a> {
    /// The fingerprints of `tokens`' access and refresh tokens.
    pub(super) fn tokens(tokens: &'a TokenSet) -> Self {
        Self {
            access_token: Some(tokens.access_token().secret()),
            refresh_token: tokens.refresh_token().map(|t| t.secret().as_str()),
            client_id: None,
        }
    }

    /// A registration's client id.
    pub(super) fn client(registration: &'a ClientRegistration) -> Self {
        Self {
            client_id: Some(&registration.client_id),
            ..Self::default()
        }
    }
}

#[derive(Serialize)]
struct SealedOut<'a> {
    sealed: String,
    key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token_fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token_fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
}

#[derive(Deserialize)]
struct SealedIn {
    sealed: String,
}

/// What a value of `kind` under `name` is sealed for.
pub(super) fn context(kind: &str, name: &str) -> String {
    format!("{kind}\0{name}")
}

/// `value`, the `kind` of `name`, as the store writes it: its JSON, sealed with `seal` when the
/// store has a key.
pub(super) fn encode<T: Serialize>(
    value: &T,
    kind: &str,
    name: &str,
    seal: Option<&SealingKey>,
    shown: Shown<'_>,
) -> Result<String, Error> {
    let encode_error = |e| Error::new(ErrorKind::Store, format!("cannot encode for Redis: {e}"));
    let json = sealing::record_json(value, false).map_err(encode_error)?;
    let Some(key) = seal else {
        // serde_json writes UTF-8.
        return String::from_utf8(json.to_vec())
            .map_err(|_| Error::new(ErrorKind::Store, "cannot encode for Redis: not UTF-8"));
    };
    let context = context(kind, name);
    let fingerprint = |secret: Option<&str>| secret.map(|s| sealing::fingerprint(key, &context, s));
    let envelope = SealedOut {
        sealed: STANDARD.encode(sealing::seal(key, &json, &context)?),
        key_id: sealing::key_id(key),
        access_token_fingerprint: fingerprint(shown.access_token),
        refresh_token_fingerprint: fingerprint(shown.refresh_token),
        client_id: shown.client_id,
    };
    serde_json::to_string(&envelope).map_err(encode_error)
}

/// The keyed fingerprint of `secret`, held in the `kind` of `name`, as a sealed envelope shows
/// it, for the compare-and-swap script; empty without a key (no sealed envelope's is).
pub(super) fn fingerprint(
    seal: Option<&SealingKey>,
    kind: &str,
    name: &str,
    secret: &str,
) -> String {
    seal.map(|key| sealing::fingerprint(key, &context(kind, name), secret))
        .unwrap_or_default()
}

/// The id of the store's key, for the scripts that refuse to write over a value another key
/// sealed; empty without a key.
pub(super) fn key_id(seal: Option<&SealingKey>) -> String {
    seal.map(sealing::key_id).unwrap_or_default()
}

/// Parses a stored value (`kind` of `name`, for the errors), opening it when sealed. A value
/// written before the store was sealed is read as it is. The serde error is not attached: its
/// text may quote part of the value, which may be a token; its category and position are
/// enough to find the problem.
pub(super) fn decode<T: DeserializeOwned>(
    raw: &str,
    kind: &str,
    name: &str,
    seal: Option<&SealingKey>,
) -> Result<T, Error> {
    if !raw.starts_with(SEALED_PREFIX) {
        return parse(raw.as_bytes(), kind, name);
    }
    let what = format!("the stored {kind} of {name}");
    let Some(key) = seal else {
        return Err(Error::new(
            ErrorKind::Store,
            format!(
                "{what} are sealed, and this store has no key to open them: give the store its \
                 key (RedisStore::sealed_with)"
            ),
        ));
    };
    let not_sealed = || {
        Error::new(
            ErrorKind::Store,
            format!("{what} are not a valid sealed value"),
        )
    };
    let envelope: SealedIn = serde_json::from_str(raw).map_err(|_| not_sealed())?;
    let bytes = STANDARD
        .decode(envelope.sealed.as_bytes())
        .map_err(|_| not_sealed())?;
    match sealing::open(key, &bytes, &context(kind, name), &what)? {
        Opened::Sealed(json) => parse(&json, kind, name),
        Opened::Plain => Err(not_sealed()),
    }
}

fn parse<T: DeserializeOwned>(json: &[u8], kind: &str, name: &str) -> Result<T, Error> {
    serde_json::from_slice(json).map_err(|e| {
        Error::new(
            ErrorKind::Store,
            format!(
                "the stored {kind} of {name} are not valid ({:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_oauth_flow::secrets::RefreshToken;
    use mcp_oauth_flow::token::TokenType;

    fn tokens() -> TokenSet {
        TokenSet::new("SECRET-at", TokenType::Bearer, "https://as", "c")
            .with_refresh_token(Some(RefreshToken::new("SECRET-rt".into())))
    }

    #[test]
    fn a_sealed_value_shows_fingerprints_only_and_opens_with_its_key() {
        let key = SealingKey::from_bytes([9; 32]);
        let tokens = tokens();
        let raw = encode(&tokens, "tokens", "r", Some(&key), Shown::tokens(&tokens)).unwrap();
        assert!(raw.starts_with(SEALED_PREFIX), "{raw}");
        assert!(!raw.contains("SECRET"), "{raw}");
        let shown: serde_json::Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(
            shown["access_token_fingerprint"],
            fingerprint(Some(&key), "tokens", "r", "SECRET-at")
        );
        assert_eq!(
            shown["refresh_token_fingerprint"],
            fingerprint(Some(&key), "tokens", "r", "SECRET-rt")
        );
        let back: TokenSet = decode(&raw, "tokens", "r", Some(&key)).unwrap();
        assert!(back.same_tokens(&tokens));
        assert_eq!(shown["key_id"], key_id(Some(&key)));
        // Copied under another name, or as another kind, it does not open.
        assert!(decode::<TokenSet>(&raw, "tokens", "other", Some(&key)).is_err());
        assert!(decode::<TokenSet>(&raw, "status", "r", Some(&key)).is_err());

        // No key, or another: a typed error that quotes nothing.
        let other = SealingKey::from_bytes([8; 32]);
        for seal in [None, Some(&other)] {
            let err = decode::<TokenSet>(&raw, "tokens", "r", seal).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Store);
            assert!(!err.to_string().contains("SECRET"), "{err}");
        }
    }

    #[test]
    fn a_plain_value_is_read_by_a_sealed_store_and_a_broken_envelope_is_refused() {
        let key = SealingKey::from_bytes([9; 32]);
        let tokens = tokens();
        let plain = encode(&tokens, "tokens", "r", None, Shown::tokens(&tokens)).unwrap();
        assert!(plain.contains("SECRET-at"));
        let back: TokenSet = decode(&plain, "tokens", "r", Some(&key)).unwrap();
        assert!(back.same_tokens(&tokens));
        for broken in [
            r#"{"sealed":"not base64!"}"#,
            r#"{"sealed":"e30="}"#,
            r#"{"sealed":""#,
        ] {
            let err = decode::<TokenSet>(broken, "tokens", "r", Some(&key)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Store, "{broken}");
        }
    }
}
