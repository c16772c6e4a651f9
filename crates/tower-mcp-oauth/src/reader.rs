//! [`Reader`]: how one service reads the tokens the layer holds on the hot path.

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use http::Uri;

use crate::cache::{lookup_in, Cache, Lookup, Session};
use crate::origins::OriginTable;

/// One service's handle on the sessions. A service called again and again (behind a `Buffer`,
/// or driven with `&mut`) keeps the snapshot it last read, and a read only checks (one relaxed
/// load, no read-modify-write) that the cache has not swapped in another since: `ArcSwap::load`
/// protects each read with atomic writes of its own, which on the hot path cost more than the
/// lookup itself. A clone starts empty and reads through `ArcSwap::load` until its second
/// request: callers that clone the service for every request (`clone().oneshot(..)`) would
/// otherwise pay two reference counts shared by every thread, per clone, for a snapshot used
/// once.
///
/// The price: a service that stops sending keeps the snapshot it last read (tokens since
/// replaced or logged out included) until its next request or until it is dropped. It never
/// sends them: every request reads the current snapshot first.
#[derive(Default)]
pub(crate) struct Reader {
    snapshot: Option<arc_swap::Cache<Sessions, Arc<OriginTable<Session>>>>,
    /// Requests read without a snapshot (at most one).
    reads: u8,
}

impl Clone for Reader {
    fn clone(&self) -> Self {
        Self::default()
    }
}

/// The cache's sessions, owned: what [`Reader`] keeps its snapshot of.
#[derive(Clone)]
struct Sessions(Arc<Cache>);

impl std::ops::Deref for Sessions {
    type Target = ArcSwap<OriginTable<Session>>;

    fn deref(&self) -> &Self::Target {
        &self.0.sessions
    }
}

impl Reader {
    /// What to send with a request to `uri` (see [`Cache::lookup`]), from `cache`.
    pub(crate) fn lookup(
        &mut self,
        cache: &Arc<Cache>,
        uri: &Uri,
        now: impl FnOnce() -> SystemTime,
    ) -> Lookup {
        if self.snapshot.is_none() {
            if self.reads == 0 {
                self.reads = 1;
                return lookup_in(&cache.sessions.load(), uri, now);
            }
            self.snapshot = Some(arc_swap::Cache::new(Sessions(Arc::clone(cache))));
        }
        match &mut self.snapshot {
            Some(snapshot) => lookup_in(snapshot.load(), uri, now),
            None => lookup_in(&cache.sessions.load(), uri, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use mcp_oauth_flow::token::{TokenSet, TokenType};
    use url::Url;

    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    fn fresh(l: Lookup) -> Option<http::HeaderValue> {
        match l {
            Lookup::Fresh(h, _, _) => Some(h),
            _ => None,
        }
    }

    #[test]
    fn a_reader_sees_every_token_installed_and_a_clone_starts_without_a_snapshot() {
        let cache = Arc::new(Cache::default());
        let mcp = Url::parse("http://localhost:3000/mcp").unwrap();
        let at = |token: &str| TokenSet::new(token, TokenType::Bearer, "i", "c");
        cache.install(mcp.clone(), at("t1"), None);
        let request = uri("http://localhost:3000/mcp");
        let read = |reader: &mut Reader| fresh(reader.lookup(&cache, &request, SystemTime::now));

        let mut reader = Reader::default();
        // The first read goes through `ArcSwap::load`; the second keeps a snapshot.
        assert_eq!(read(&mut reader).unwrap(), "Bearer t1");
        assert!(reader.snapshot.is_none());
        assert_eq!(read(&mut reader).unwrap(), "Bearer t1");
        assert!(reader.snapshot.is_some());
        // A token installed since is seen at the next read, snapshot or not.
        cache.install(mcp.clone(), at("t2"), None);
        assert_eq!(read(&mut reader).unwrap(), "Bearer t2");
        let mut clone = reader.clone();
        assert!(clone.snapshot.is_none());
        assert_eq!(read(&mut clone).unwrap(), "Bearer t2");
        cache.remove(&mcp);
        assert!(read(&mut reader).is_none());
        assert!(read(&mut clone).is_none());
    }
}
