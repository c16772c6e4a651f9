//! The last `DPoP-Nonce` each server sent (RFC 9449 §8, §9): the next proof to it carries it,
//! so a server with a long-lived nonce challenges once, not on every request.
//!
//! Kept per URL (its origin and path, without the query), not per origin: an MCP server that
//! is its own authorization server has its token endpoint and its resource on one origin, and
//! "a nonce issued by any of them should be used only at the issuing server" (§9). Kept per
//! origin, each one's nonce overwrote the other's, and every switch between a refresh and a
//! resource request cost a challenge (a request whose body cannot be sent again, its `401`).

use std::collections::HashMap;
use std::sync::Mutex;

use http::Uri;

/// More servers than any client talks to; past it the memory starts over (a forgotten nonce
/// costs one challenge).
const MAX_TARGETS: usize = 256;

#[derive(Default)]
pub(super) struct Nonces {
    by_target: Mutex<HashMap<String, String>>,
}

/// `scheme://authority/path`, the scheme and authority lowercased: the key nonces are kept
/// under.
fn target(uri: &Uri) -> Option<String> {
    let (scheme, _) = (uri.scheme_str()?, uri.authority()?);
    let authority = crate::origin::authority_text(uri);
    let origin = format!("{scheme}://{authority}").to_ascii_lowercase();
    Some(format!("{origin}{}", uri.path()))
}

impl Nonces {
    /// The nonce last sent by the server at `uri`.
    pub(super) fn get(&self, uri: &Uri) -> Option<String> {
        let target = target(uri)?;
        self.lock().get(&target).cloned()
    }

    /// Remembers the nonce the server at `uri` sent.
    pub(super) fn remember(&self, uri: &Uri, nonce: String) {
        let Some(target) = target(uri) else { return };
        let mut map = self.lock();
        if map.len() >= MAX_TARGETS && !map.contains_key(&target) {
            map.clear();
        }
        map.insert(target, nonce);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // A panic while holding this lock cannot leave the map half-written.
        self.by_target.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_per_server_url_whatever_the_query_or_case() {
        let nonces = Nonces::default();
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        // An authorization server and a resource on one origin: each its own nonce.
        nonces.remember(&uri("http://LocalHost:3000/token"), "as".into());
        nonces.remember(&uri("http://localhost:3000/mcp"), "rs".into());
        assert_eq!(
            nonces.get(&uri("http://localhost:3000/token")).as_deref(),
            Some("as")
        );
        assert_eq!(
            nonces
                .get(&uri("http://LOCALHOST:3000/mcp?session=1"))
                .as_deref(),
            Some("rs")
        );
        assert_eq!(nonces.get(&uri("http://localhost:3001/mcp")), None);
        assert_eq!(nonces.get(&uri("https://localhost:3000/mcp")), None);
        nonces.remember(&uri("http://localhost:3000/mcp?x=2"), "rs2".into());
        assert_eq!(
            nonces.get(&uri("http://localhost:3000/mcp")).as_deref(),
            Some("rs2")
        );
        assert_eq!(nonces.get(&uri("/relative")), None);
    }
}
