//! The last `DPoP-Nonce` each origin sent (RFC 9449 §8, §9): the next proof to that origin
//! carries it, so a server with a long-lived nonce challenges once, not on every request.

use std::collections::HashMap;
use std::sync::Mutex;

use http::Uri;

/// More origins than any client talks to; past it the memory starts over (a forgotten nonce
/// costs one challenge).
const MAX_ORIGINS: usize = 256;

#[derive(Default)]
pub(super) struct Nonces {
    by_origin: Mutex<HashMap<String, String>>,
}

/// `scheme://authority`, lowercased: the key nonces are kept under.
fn origin(uri: &Uri) -> Option<String> {
    let (scheme, _) = (uri.scheme_str()?, uri.authority()?);
    let authority = crate::origin::authority_text(uri);
    Some(format!("{scheme}://{authority}").to_ascii_lowercase())
}

impl Nonces {
    /// The nonce last sent by `uri`'s origin.
    pub(super) fn get(&self, uri: &Uri) -> Option<String> {
        let origin = origin(uri)?;
        self.lock().get(&origin).cloned()
    }

    /// Remembers the nonce `uri`'s origin sent.
    pub(super) fn remember(&self, uri: &Uri, nonce: String) {
        let Some(origin) = origin(uri) else { return };
        let mut map = self.lock();
        if map.len() >= MAX_ORIGINS && !map.contains_key(&origin) {
            map.clear();
        }
        map.insert(origin, nonce);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // A panic while holding this lock cannot leave the map half-written.
        self.by_origin.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_per_origin_whatever_the_path_or_case() {
        let nonces = Nonces::default();
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        nonces.remember(&uri("http://LocalHost:3000/token"), "n1".into());
        assert_eq!(
            nonces.get(&uri("http://localhost:3000/mcp")).as_deref(),
            Some("n1")
        );
        assert_eq!(nonces.get(&uri("http://localhost:3001/mcp")), None);
        assert_eq!(nonces.get(&uri("https://localhost:3000/mcp")), None);
        nonces.remember(&uri("http://localhost:3000/x"), "n2".into());
        assert_eq!(
            nonces.get(&uri("http://localhost:3000/")).as_deref(),
            Some("n2")
        );
        assert_eq!(nonces.get(&uri("/relative")), None);
    }
}
