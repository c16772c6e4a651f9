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

/// Bytes between the `Arc`'s counts and [`Shared`]'s fields. The counts are the block's first
/// two words, and a block starts at a multiple of a word, so the rest of the line after the
/// counts is at most `64 - word` bytes (when the counts end a word past a line's start): that
/// much padding puts the fields on a later line from any block (56 bytes on 64-bit targets).
pub(crate) const COUNTS_PADDING: usize = 64 - std::mem::align_of::<usize>();

/// The layer's state and a spare inner service, shared by a service's clones and futures.
///
/// The `Arc`'s reference counts, which every request on every thread writes, are kept off the
/// lines of the fields every request reads: threads calling clones of one service at once would
/// otherwise miss the cache on each read. The counts are the `Arc`'s first two words, just
/// before this struct (for an inner service aligned to a word or less, as any HTTP client is);
/// [`COUNTS_PADDING`] bytes of padding put the fields on a later line than the counts' last
/// byte for any block the allocator may return (aligned to a word at least, as Rust asks of
/// it; glibc's are aligned to 16). The test
/// `the_read_fields_never_share_a_line_with_the_counts` checks both the arithmetic and real
/// blocks. Not `align(64)`, which did the same at a price: an allocation aligned past 16 bytes is
/// glibc's `posix_memalign`, which carves the block out of a larger one and frees the rest:
/// about 510 instructions more for every service made (a service made per request over the
/// trivial service: 7,329 instructions a request aligned, 6,846 padded, 6,445 with one service
/// for all; `scripts/instruction-budget.sh` holds it). A web app's handler makes one per
/// request (`layer_for(user).layer(client)`).
///
/// The fields a request with a valid token reads come first after the padding, copied out of
/// the state, so that no pointer is followed to reach them: after the network round trip of the
/// request before, their line is often in another core's cache. (Wherever the allocation falls, they span at
/// most two lines; with an inner service of a few dozen bytes or more, as any HTTP client is,
/// no other allocation's bytes share those lines.)
#[repr(C)]
pub(crate) struct Shared<S> {
    /// See [`COUNTS_PADDING`].
    _off_the_counts: [u8; COUNTS_PADDING],
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
    /// Every request reads whether the spare is kept, from the `OnceLock`'s state, which may
    /// lie at the struct's end: this keeps the allocation the allocator places next (whose
    /// bytes other threads may write on every request of theirs) off that line. See
    /// [`COUNTS_PADDING`] for why this many bytes.
    _off_the_next: [u8; COUNTS_PADDING],
}

impl<S> Shared<S> {
    /// No spare yet: [`keep_spare`](Self::keep_spare) takes one at the first request (a
    /// service that is never called needs none, and need not be `Clone` until then).
    pub(crate) fn new(state: Arc<LayerState>) -> Self {
        Self {
            _off_the_counts: [0; COUNTS_PADDING],
            cache: Arc::clone(&state.cache),
            clock: state.clock.clone(),
            max_replay_bytes: state.max_replay_bytes,
            limited: state.servers.is_some(),
            state,
            spare: OnceLock::new(),
            _off_the_next: [0; COUNTS_PADDING],
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

    /// The fields a request reads never share a line with the `Arc`'s counts: for a block at
    /// every word of a line (worked out from the layout), and for real blocks at whatever
    /// offsets the allocator gives (more than one).
    #[test]
    fn the_read_fields_never_share_a_line_with_the_counts() {
        let word = std::mem::size_of::<usize>();
        let fields = std::mem::offset_of!(Shared<u64>, cache);
        // std's `Arc` keeps its two counts (two words) just before the value, which starts
        // after them at its own alignment (a word here).
        let value = 2 * word;
        for block in (0..64).step_by(word) {
            let last_count_byte = block + 2 * word - 1;
            let first_read = block + value + fields;
            assert!(first_read / 64 > last_count_byte / 64, "block at {block}");
        }
        // And no more padding than that takes: a word less, and a block at some word of a line
        // has its first field on the counts' line (each word more is a word more per service).
        let less = fields - word;
        assert!(
            (0..64)
                .step_by(word)
                .any(|block| (block + value + less) / 64 == (block + 2 * word - 1) / 64),
            "{fields} bytes before the fields: more than they need"
        );

        let state = state();
        let mut offsets = std::collections::BTreeSet::new();
        let mut held = Vec::new();
        // Allocations of varied sizes between them, so the `Arc`s fall at varied offsets.
        for i in 0..256 {
            let shared = Arc::new(Shared::<u64>::new(Arc::clone(&state)));
            let data = Arc::as_ptr(&shared) as usize;
            let last_count_byte = data - 1;
            let first_read = data + fields;
            assert!(
                first_read / 64 > last_count_byte / 64,
                "the counts end at {last_count_byte:#x}, the fields start at {first_read:#x}"
            );
            offsets.insert(data % 64);
            held.push((shared, vec![0u8; 8 + i % 40]));
        }
        assert!(
            offsets.len() > 1,
            "every allocation fell at one offset: {offsets:?}"
        );
    }

    #[test]
    fn shared_is_send_and_sync_for_a_service_that_is_only_send() {
        fn send_sync<T: Send + Sync>() {}
        // `Cell` is `Send` but not `Sync`, as a `BoxCloneService` is.
        send_sync::<Shared<std::cell::Cell<u8>>>();
    }
}
