//! [`Shared`]: what every request's future shares with the service that made it, behind one
//! reference count: the layer's state and a spare inner service for the retry.
//!
//! A future that may retry after a `401` needs an inner service to send through. Cloning the
//! inner service into every future costs what the clone costs on every request: for
//! hyper-util's `Client` about five reference counts, incremented and decremented across the
//! runtime's threads. One spare, cloned from the service at its first request and cloned again
//! only when a retry happens, costs the hot path nothing but the one reference count it shares
//! with the state.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::cache::Cache;
use crate::clock::Clock;
use crate::state::LayerState;

/// The layer's state and a spare inner service, shared by a service's clones and futures.
///
/// Aligned to a cache line so that the `Arc`'s reference counts, which every request on every
/// thread writes, do not share a line with the fields every request reads: threads calling
/// clones of one service at once would otherwise miss the cache on each read.
///
/// The fields a request with a valid token reads come first, copied out of the state, so that
/// they share one line and no pointer is followed to reach them: after the network round trip
/// of the request before, that line is often in another core's cache.
#[repr(C, align(64))]
pub(crate) struct Shared<S> {
    /// The tokens held (`state.cache`).
    pub(crate) cache: Arc<Cache>,
    /// `state.clock`, asked (coarsely) when the token has an expiry.
    pub(crate) clock: Clock,
    /// `state.max_replay_bytes`.
    pub(crate) max_replay_bytes: usize,
    /// Whether the layer is limited to some servers (`state.servers` is set).
    pub(crate) limited: bool,
    pub(crate) state: Arc<LayerState>,
    /// Behind a `Mutex` so that `Shared` is `Sync` for any `Send` service (a `BoxCloneService`
    /// is not `Sync`); locked only to clone it for a retry.
    spare: OnceLock<Mutex<S>>,
}

impl<S> Shared<S> {
    /// No spare yet: [`keep_spare`](Self::keep_spare) takes one at the first request (a
    /// service that is never called needs none, and need not be `Clone` until then).
    pub(crate) fn new(state: Arc<LayerState>) -> Self {
        Self {
            cache: Arc::clone(&state.cache),
            clock: state.clock.clone(),
            max_replay_bytes: state.max_replay_bytes,
            limited: state.servers.is_some(),
            state,
            spare: OnceLock::new(),
        }
    }

    /// With `spare` already (the slow paths, which own a service).
    pub(crate) fn with_spare(state: Arc<LayerState>, spare: S) -> Self {
        Self {
            spare: OnceLock::from(Mutex::new(spare)),
            ..Self::new(state)
        }
    }
}

impl<S: Clone> Shared<S> {
    /// Keeps a clone of `inner` as the spare, unless one is kept already (after the first
    /// request, one atomic load).
    pub(crate) fn keep_spare(&self, inner: &S) {
        self.spare.get_or_init(|| Mutex::new(inner.clone()));
    }

    /// A clone of the spare, for a retry; `None` if none was kept (a bug).
    pub(crate) fn spare(&self) -> Option<S> {
        let spare = self.spare.get()?;
        let spare = spare.lock().unwrap_or_else(PoisonError::into_inner);
        Some(spare.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_oauth_flow::ClientConfig;

    fn state() -> Arc<LayerState> {
        let layer = crate::OAuthLayer::new(
            ClientConfig::new("http://127.0.0.1:1/cb"),
            crate::HeadlessAuthorizer::new(),
        );
        Arc::clone(&layer.state)
    }

    #[test]
    fn the_first_spare_kept_is_the_one_handed_out() {
        let shared = Shared::new(state());
        assert_eq!(shared.spare(), None::<String>);
        shared.keep_spare(&"first".to_owned());
        shared.keep_spare(&"second".to_owned());
        assert_eq!(shared.spare().as_deref(), Some("first"));
        // Each retry gets its own clone.
        assert_eq!(shared.spare().as_deref(), Some("first"));
        let owned = Shared::with_spare(state(), "given".to_owned());
        assert_eq!(owned.spare().as_deref(), Some("given"));
    }

    #[test]
    fn shared_is_send_and_sync_for_a_service_that_is_only_send() {
        fn send_sync<T: Send + Sync>() {}
        // `Cell` is `Send` but not `Sync`, as a `BoxCloneService` is.
        send_sync::<Shared<std::cell::Cell<u8>>>();
    }
}
