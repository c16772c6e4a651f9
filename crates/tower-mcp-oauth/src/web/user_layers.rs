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

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hashbrown::HashTable;

use crate::layer::OAuthLayer;

/// How many shards the users are spread over.
const SHARDS: usize = 64;

/// A shard's users and their layers, found by the hash [`UserLayers::hash`] gives.
type Shard = HashTable<(Arc<str>, OAuthLayer)>;

/// Whether a shard's entry is `user`'s.
fn named(user: &str) -> impl Fn(&(Arc<str>, OAuthLayer)) -> bool + '_ {
    move |(name, _)| **name == *user
}

/// Each user's [`OAuthLayer`], shared by every [`WebLogin::layer_for`](super::WebLogin::layer_for)
/// call for that user.
pub(super) struct UserLayers {
    keys: RandomState,
    shards: Box<[ArcSwap<Shard>]>,
}

impl Default for UserLayers {
    fn default() -> Self {
        Self {
            keys: RandomState::new(),
            shards: (0..SHARDS).map(|_| ArcSwap::default()).collect(),
        }
    }
}

impl UserLayers {
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
        let found = |current: &Shard| {
            current
                .find(hash, named(user))
                .map(|(_, layer)| layer.clone())
        };
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
            next.insert_unique(hash, (Arc::from(user), layer.clone()), |(name, _)| {
                self.hash(name)
            });
            chosen = Some(layer);
            Arc::new(next)
        });
        // `rcu` ran the closure at least once, and its last run is what was stored.
        chosen.unwrap_or_else(|| unreachable!())
    }

    /// Forgets `user`'s layer: the next lookup makes a new one.
    pub(super) fn remove(&self, user: &str) {
        let hash = self.hash(user);
        let shard = self.shard(hash);
        if shard.load().find(hash, named(user)).is_none() {
            return;
        }
        shard.rcu(|current| {
            let mut next = Shard::clone(current);
            match next.find_entry(hash, named(user)) {
                Ok(entry) => {
                    entry.remove();
                    Arc::new(next)
                }
                // Gone already (another caller removed it): the shard stays as it is.
                Err(_) => Arc::clone(current),
            }
        });
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

        users.remove("alice");
        users.remove("nobody");
        assert_eq!(users.len(), 2);
        let a3 = users.get_or_insert_with("alice", layer);
        assert!(!same(&a1, &a3));
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
