//! [`UserLayers`]: each user's layer, found without a lock or an allocation however many users
//! the app serves.
//!
//! A web app looks a user's layer up on every request it makes for them. The map is split in
//! [`SHARDS`] immutable shards, each swapped whole on a write (`arc-swap`, copy-on-write): a
//! lookup is a hash, an atomic load and a probe, and a new user copies only one shard's index
//! (a 64th of the users, and the values are `Arc`s), not the whole map. One hash of the name
//! picks both the shard (bits 32-37) and the bucket in it (the table's own bits: the low ones
//! and the top seven), SipHash keyed at random (std's `RandomState`), so user names an
//! attacker picks cannot pile up in one shard or bucket. (Two hashes, one for the shard and one
//! inside std's `HashMap`, were about 160 instructions of a web request's 7,400: 7,391 -> 7,227.)
//!
//! It keeps at most a set number of users (1,024 a shard by default): a new user past it
//! replaces one whose layer nothing else holds, and that user's tokens stay in the store for
//! their next layer to adopt. A layer still held (by a service the app keeps, a request in
//! flight) is not replaced: it lives on anyway, and only through this map can a logout reach
//! its token cache, which would otherwise go on sending the logged-out user's access token.
//! Past the bound by held layers only, a shard comes back to it as they are let go. (A lookup
//! racing the replacement can still be handed the layer being replaced: a window of a few
//! instructions, not the rule.)

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hashbrown::HashTable;

use crate::layer::OAuthLayer;

/// How many shards the users are spread over.
const SHARDS: usize = 64;

/// How many users' layers are kept by default: 1,024 a shard. See
/// [`WebLogin::max_cached_users`](super::WebLogin::max_cached_users).
pub(super) const DEFAULT_MAX_CACHED_USERS: usize = SHARDS * 1024;

/// A shard's users and their layers, found by the hash [`UserLayers::hash`] gives. Each entry
/// is shared by the copies of the shard a write makes (copy-on-write), so copying a shard
/// leaves every layer held once by the map, whatever the copies: a layer held more than once
/// is held outside it.
type Shard = HashTable<Arc<(Arc<str>, OAuthLayer)>>;

/// Whether a shard's entry is `user`'s.
fn named(user: &str) -> impl Fn(&Arc<(Arc<str>, OAuthLayer)>) -> bool + '_ {
    move |entry| *entry.0 == *user
}

/// Each user's [`OAuthLayer`], shared by every [`WebLogin::layer_for`](super::WebLogin::layer_for)
/// call for that user.
pub(super) struct UserLayers {
    keys: RandomState,
    shards: Box<[ArcSwap<Shard>]>,
    /// The most users a shard keeps; a new one past it replaces one of them.
    per_shard: usize,
}

impl Default for UserLayers {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_MAX_CACHED_USERS)
    }
}

impl UserLayers {
    /// A map that keeps about `users` layers (a 64th of them per shard, at least one).
    pub(super) fn with_capacity(users: usize) -> Self {
        Self {
            keys: RandomState::new(),
            shards: (0..SHARDS).map(|_| ArcSwap::default()).collect(),
            per_shard: users.div_ceil(SHARDS).max(1),
        }
    }

    /// The keyed hash of a user's name.
    fn hash(&self, user: &str) -> u64 {
        self.keys.hash_one(user)
    }

    /// The shard of a name hashed to `hash`: bits the table does not use to place an entry
    /// (hashbrown takes the low bits for the bucket and the top seven for its tags), so that
    /// the names of one shard still spread over its buckets.
    fn shard(&self, hash: u64) -> &ArcSwap<Shard> {
        &self.shards[((hash >> 32) % SHARDS as u64) as usize]
    }

    /// `user`'s layer, made by `make` (called at most once) if they have none. Two callers
    /// racing for a new user get the same layer: the one that made it into the map.
    pub(super) fn get_or_insert_with(
        &self,
        user: &str,
        make: impl FnOnce() -> OAuthLayer,
    ) -> OAuthLayer {
        let hash = self.hash(user);
        let shard = self.shard(hash);
        let found = |current: &Shard| current.find(hash, named(user)).map(|entry| entry.1.clone());
        if let Some(layer) = found(&shard.load()) {
            return layer;
        }
        let mut make = Some(make);
        let mut made: Option<OAuthLayer> = None;
        let mut chosen: Option<OAuthLayer> = None;
        shard.rcu(|current| {
            if let Some(existing) = found(current) {
                chosen = Some(existing);
                return Arc::clone(current);
            }
            let layer = made
                .get_or_insert_with(|| make.take().map_or_else(|| unreachable!(), |f| f()))
                .clone();
            let mut next = Shard::clone(current);
            // A loop, not one: a shard past its bound (every layer was held) comes back to it
            // as soon as layers are let go.
            while next.len() >= self.per_shard && self.evict_one(&mut next, hash) {}
            next.insert_unique(hash, Arc::new((Arc::from(user), layer.clone())), |entry| {
                self.hash(&entry.0)
            });
            chosen = Some(layer);
            Arc::new(next)
        });
        // `rcu` ran the closure at least once, and its last run is what was stored.
        chosen.unwrap_or_else(|| unreachable!())
    }

    /// Makes room in a full shard: drops the layer of one user whose layer nothing outside the
    /// map holds (no clone, service, request or flow), searching from a place the new user's
    /// `hash` picks (as good as random, and keyed: no one can aim it at a given user). Nothing
    /// is lost with it: the user's tokens are in the store, and their next lookup makes a
    /// layer that adopts them. A held layer is kept: it lives on anyway, and only through this
    /// map does a logout reach its cache. Whether one was dropped: if every layer is held,
    /// none, and the shard is past its bound by what the app holds.
    fn evict_one(&self, shard: &mut Shard, hash: u64) -> bool {
        let at = (hash as usize) % shard.len();
        let unheld = |entry: &&Arc<(Arc<str>, OAuthLayer)>| entry.1.holders() == 1;
        let victim = shard
            .iter()
            .skip(at)
            .find(unheld)
            .or_else(|| shard.iter().take(at).find(unheld))
            .map(|entry| Arc::clone(&entry.0));
        let Some(victim) = victim else {
            return false;
        };
        match shard.find_entry(self.hash(&victim), named(&victim)) {
            Ok(entry) => {
                entry.remove();
                true
            }
            Err(_) => false,
        }
    }

    /// Forgets `user`'s layer, so the next lookup makes a new one, unless something else holds
    /// it (a service the app keeps): that one is kept, since only through this map can a logout
    /// reach its token cache. Returns the layer that was there, kept or not (a lookup racing
    /// the removal may have taken the removed one).
    pub(super) fn remove_unless_held(&self, user: &str) -> Option<OAuthLayer> {
        let hash = self.hash(user);
        let shard = self.shard(hash);
        shard.load().find(hash, named(user))?;
        let mut held = None;
        shard.rcu(|current| {
            held = None;
            let mut next = Shard::clone(current);
            match next.find_entry(hash, named(user)) {
                Ok(entry) if entry.get().1.holders() > 1 => {
                    held = Some(entry.get().1.clone());
                    Arc::clone(current)
                }
                Ok(entry) => {
                    held = Some(entry.get().1.clone());
                    entry.remove();
                    Arc::new(next)
                }
                // Gone already (another caller removed it): the shard stays as it is.
                Err(_) => Arc::clone(current),
            }
        });
        held
    }

    /// How many users hold a layer.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.load().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HeadlessAuthorizer;
    use mcp_oauth_flow::ClientConfig;

    fn layer() -> OAuthLayer {
        OAuthLayer::new(
            ClientConfig::new("http://127.0.0.1:1/cb"),
            HeadlessAuthorizer::new(),
        )
    }

    /// Whether two layers share one state (one token cache).
    fn same(a: &OAuthLayer, b: &OAuthLayer) -> bool {
        a.shares_state_with(b)
    }

    #[test]
    fn one_layer_per_user_made_once() {
        let users = UserLayers::default();
        let mut calls = 0;
        let a1 = users.get_or_insert_with("alice", || {
            calls += 1;
            layer()
        });
        let a2 = users.get_or_insert_with("alice", || {
            calls += 1;
            layer()
        });
        assert_eq!(calls, 1);
        assert!(same(&a1, &a2));
        let b = users.get_or_insert_with("bob", layer);
        assert!(!same(&a1, &b));
        // Names differing only in case are different users.
        let upper = users.get_or_insert_with("ALICE", layer);
        assert!(!same(&a1, &upper));
        assert_eq!(users.len(), 3);

        // Held elsewhere, a layer stays (a logout must reach it), and is handed back.
        let held = users
            .remove_unless_held("alice")
            .expect("alice's layer is held");
        assert!(same(&a1, &held));
        assert!(users.remove_unless_held("nobody").is_none());
        assert_eq!(users.len(), 3);
        drop((a1, a2, held));
        // Let go, it is forgotten (and handed back once more, for a caller that raced it).
        assert!(users.remove_unless_held("alice").is_some());
        assert_eq!(users.len(), 2);
        assert!(users.remove_unless_held("alice").is_none());
        users.get_or_insert_with("alice", || {
            calls += 1;
            layer()
        });
        assert_eq!(calls, 2, "a layer let go was not forgotten");
        assert!(same(&b, &users.get_or_insert_with("bob", layer)));
    }

    #[test]
    fn ten_thousand_users_spread_over_the_shards() {
        let users = UserLayers::default();
        let first = layer();
        for i in 0..10_000 {
            let l = first.clone();
            users.get_or_insert_with(&format!("user-{i}"), move || l);
        }
        assert_eq!(users.len(), 10_000);
        let sizes: Vec<usize> = users.shards.iter().map(|s| s.load().len()).collect();
        // 156 per shard on average; keyed hashing keeps every shard near it.
        assert!(sizes.iter().all(|&n| (80..260).contains(&n)), "{sizes:?}");
    }

    #[test]
    fn past_its_capacity_a_shard_replaces_a_user() {
        // One user a shard: 64 in all at most, however many come.
        let users = UserLayers::with_capacity(SHARDS);
        for i in 0..1_000 {
            users.get_or_insert_with(&format!("anonymous-{i}"), layer);
        }
        assert!(users.len() <= SHARDS, "{}", users.len());
        // The last user made is there.
        let mut made = false;
        users.get_or_insert_with("anonymous-999", || {
            made = true;
            layer()
        });
        assert!(!made);
        // Under the capacity nothing is replaced.
        let roomy = UserLayers::with_capacity(10_000);
        for i in 0..1_000 {
            roomy.get_or_insert_with(&format!("user-{i}"), layer);
        }
        assert_eq!(roomy.len(), 1_000);
    }

    #[test]
    fn a_layer_still_held_is_never_replaced_so_a_logout_reaches_it() {
        let users = UserLayers::with_capacity(SHARDS);
        // Alice's service holds her layer (a clone of it stands for the service).
        let service = users.get_or_insert_with("alice", layer);
        for i in 0..1_000 {
            users.get_or_insert_with(&format!("anonymous-{i}"), layer);
        }
        // Still hers: the layer a logout finds is the one her service sends through.
        let mut made = false;
        let found = users.get_or_insert_with("alice", || {
            made = true;
            layer()
        });
        assert!(!made);
        assert!(same(&found, &service));
        // Only the held layer is past the bound.
        assert!(users.len() <= SHARDS + 1, "{}", users.len());
        // Once nothing holds it, it can be replaced like any other.
        drop((found, service));
        for i in 1_000..3_000 {
            users.get_or_insert_with(&format!("anonymous-{i}"), layer);
        }
        let mut made = false;
        users.get_or_insert_with("alice", || {
            made = true;
            layer()
        });
        assert!(made);
    }

    #[test]
    fn a_shard_past_its_bound_by_held_layers_comes_back_once_they_are_let_go() {
        let users = UserLayers::with_capacity(SHARDS);
        let held: Vec<OAuthLayer> = (0..640)
            .map(|i| users.get_or_insert_with(&format!("active-{i}"), layer))
            .collect();
        // Every layer held: none replaced.
        assert_eq!(users.len(), 640);
        drop(held);
        for i in 0..1_000 {
            users.get_or_insert_with(&format!("anonymous-{i}"), layer);
        }
        assert!(users.len() <= SHARDS, "{}", users.len());
    }

    #[test]
    fn racing_callers_for_a_new_user_get_one_layer() {
        let users = UserLayers::default();
        let layers: Vec<OAuthLayer> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| users.get_or_insert_with("carol", layer)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(layers.iter().all(|l| same(l, &layers[0])));
        assert_eq!(users.len(), 1);
    }
}
