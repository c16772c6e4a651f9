//! [`OriginTable`]: what the layer holds per origin, found at the same cost whether it holds one
//! server's tokens or ten thousand.
//!
//! A gateway holds tokens for many MCP servers in one layer, and every request must find its own
//! without walking the others. The table is keyed by a hash of the origin's authority in normal
//! form (`origin_hash.rs`), computed from the URI in place, so no allocation; and the table is
//! immutable (the cache swaps a new one in on every write, copy-on-write), so no lock. Two
//! origins that share a hash share a bucket, and the caller's own test decides inside it; a
//! bucket holds entries of one origin in all but astronomically rare cases.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use http::Uri;
#[cfg(test)]
use url::Url;

use crate::origin::{Origin, OwnedOrigin};
use crate::origin_hash::{origin_key, written_key, Keys, Prehashed};

/// An immutable map from origins to the entries held for them (most specific first, as the
/// caller orders them). Cloning it copies the bucket index, not the entries (each bucket is an
/// `Arc`), and keeps its hash keys.
pub(crate) struct OriginTable<T> {
    keys: Keys,
    buckets: HashMap<u64, Arc<[T]>, BuildHasherDefault<Prehashed>>,
    /// The only bucket, when there is exactly one: a client of one MCP server (the common
    /// case) finds its entries without hashing. Whatever its origin, it holds every entry.
    sole: Option<Arc<[T]>>,
}

impl<T> Default for OriginTable<T> {
    fn default() -> Self {
        Self {
            keys: Keys::random(),
            buckets: HashMap::default(),
            sole: None,
        }
    }
}

impl<T> Clone for OriginTable<T> {
    fn clone(&self) -> Self {
        Self {
            keys: self.keys.clone(),
            buckets: self.buckets.clone(),
            sole: self.sole.clone(),
        }
    }
}

impl<T> OriginTable<T> {
    /// A table in which every origin shares one bucket.
    #[cfg(test)]
    pub(crate) fn colliding() -> Self {
        Self {
            keys: Keys::Colliding,
            buckets: HashMap::default(),
            sole: None,
        }
    }

    fn key(&self, origin: Origin<'_>) -> u64 {
        match self.keys {
            Keys::Random(k0, k1) => origin_key((k0, k1), origin),
            #[cfg(test)]
            Keys::Colliding => 0,
        }
    }

    /// The entries of `origin`'s bucket (possibly sharing it with another origin: the caller
    /// checks each one), without allocating or locking.
    pub(crate) fn bucket(&self, origin: Origin<'_>) -> &[T] {
        self.at(self.key(origin))
    }

    fn at(&self, key: u64) -> &[T] {
        self.buckets.get(&key).map_or(&[], |b| b)
    }

    /// The first entry for `uri`'s origin that `wanted` accepts, in bucket order
    /// (`origin_of` says each entry's origin); `None` for a relative URI.
    ///
    /// A request almost always writes its authority as its resource URL does (`host` or
    /// `host:port`, no userinfo, no default port): then the bucket is found by hashing the
    /// authority as it is (or is the only one), without taking it apart, and an entry is
    /// recognised by comparing the text. Only a request written otherwise is parsed (RFC 6454
    /// §4) and looked up again.
    #[inline(always)]
    pub(crate) fn find_for_request<'a>(
        &'a self,
        uri: &Uri,
        origin_of: impl Fn(&T) -> &OwnedOrigin,
        wanted: impl Fn(&T) -> bool,
    ) -> Option<&'a T> {
        let scheme = uri.scheme_str()?;
        let authority = uri.authority()?.as_str();
        let bucket = match &self.sole {
            Some(sole) => sole,
            None => self.at(self.written_key(scheme, authority)),
        };
        let mut written_so = false;
        for entry in bucket {
            if origin_of(entry).is_written_as(scheme, authority) {
                if wanted(entry) {
                    return Some(entry);
                }
                written_so = true;
            }
        }
        if written_so {
            // Every entry of the request's origin is in that bucket (the sole one holds all).
            return None;
        }
        self.find_parsed(uri, authority, origin_of, wanted)
    }

    /// [`find_for_request`](Self::find_for_request) for a request whose authority is not
    /// written as its resource's: taken apart, and looked up again. Kept out of line, so that
    /// the hot path stays small.
    #[cold]
    #[inline(never)]
    fn find_parsed<'a>(
        &'a self,
        uri: &Uri,
        authority: &str,
        origin_of: impl Fn(&T) -> &OwnedOrigin,
        wanted: impl Fn(&T) -> bool,
    ) -> Option<&'a T> {
        let origin = Origin::of_uri(uri)?;
        // Written as normal already: the bucket above was the origin's, and held none of it.
        let port = origin.port_text();
        let normal_len = origin.host().len() + port.as_ref().map_or(0, |p| p.as_str().len());
        if normal_len == authority.len() {
            return None;
        }
        self.bucket(origin)
            .iter()
            .find(|entry| origin_of(entry).as_origin().same(&origin) && wanted(entry))
    }

    fn written_key(&self, scheme: &str, authority: &str) -> u64 {
        match self.keys {
            Keys::Random(k0, k1) => {
                written_key((k0, k1), scheme.as_bytes(), &[authority.as_bytes()])
            }
            #[cfg(test)]
            Keys::Colliding => 0,
        }
    }

    /// A copy of the table with `origin`'s bucket replaced by what `edit` makes of it; an empty
    /// bucket is dropped.
    pub(crate) fn with_bucket(
        &self,
        origin: Origin<'_>,
        edit: impl FnOnce(&[T]) -> Vec<T>,
    ) -> Self {
        let key = self.key(origin);
        let bucket = edit(self.buckets.get(&key).map_or(&[], |b| b));
        let mut next = self.clone();
        if bucket.is_empty() {
            next.buckets.remove(&key);
        } else {
            next.buckets.insert(key, bucket.into());
        }
        next.sole = match next.buckets.len() {
            1 => next.buckets.values().next().cloned(),
            _ => None,
        };
        next
    }

    /// How many buckets the table holds (about its origins: origins whose keys collide share
    /// one).
    pub(crate) fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// An empty table with the same hash keys.
    pub(crate) fn emptied(&self) -> Self {
        Self {
            keys: self.keys.clone(),
            buckets: HashMap::default(),
            sole: None,
        }
    }

    /// How many entries the table holds, over all buckets.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.buckets.values().map(|b| b.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    /// A table of resource URLs, each bucket most specific first, as the cache keeps it.
    fn table_of(base: OriginTable<Url>, resources: &[&str]) -> OriginTable<Url> {
        resources.iter().fold(base, |table, r| {
            let r = url(r);
            table.with_bucket(Origin::of_url(&r).unwrap(), |b| {
                let mut next: Vec<Url> = b.iter().filter(|u| **u != r).cloned().collect();
                next.push(r.clone());
                next.sort_by_key(|u| std::cmp::Reverse(u.path().len()));
                next
            })
        })
    }

    /// The resource `table` answers for `request`: the first of the bucket that covers it.
    fn found(table: &OriginTable<Url>, request: &str) -> Option<String> {
        let request = uri(request);
        let origin = Origin::of_uri(&request)?;
        table
            .bucket(origin)
            .iter()
            .find(|r| crate::scope::covers(r, &request))
            .map(|r| r.to_string())
    }

    #[test]
    fn hosts_and_schemes_ignore_case_and_default_ports_fill_in() {
        let table = table_of(OriginTable::default(), &["https://mcp.example.com/mcp"]);
        let hit = Some("https://mcp.example.com/mcp".to_owned());
        assert_eq!(found(&table, "https://MCP.Example.COM/mcp"), hit);
        assert_eq!(found(&table, "HTTPS://mcp.example.com/mcp"), hit);
        assert_eq!(found(&table, "https://mcp.example.com:443/mcp"), hit);
        assert_eq!(found(&table, "https://mcp.example.com:8443/mcp"), None);
        assert_eq!(found(&table, "http://mcp.example.com/mcp"), None);
        assert_eq!(found(&table, "https://mcp.example.co/mcp"), None);
        assert_eq!(found(&table, "/mcp"), None);

        let explicit = table_of(OriginTable::default(), &["http://localhost:80/"]);
        assert_eq!(
            found(&explicit, "http://LOCALHOST/x").as_deref(),
            Some("http://localhost/")
        );
    }

    #[test]
    fn the_most_specific_path_wins_at_segment_boundaries() {
        for base in [OriginTable::default(), OriginTable::colliding()] {
            let table = table_of(
                base,
                &[
                    "https://a.example/",
                    "https://a.example/mcp",
                    "https://a.example/mcp/v2",
                ],
            );
            let at = |r: &str| found(&table, r);
            assert_eq!(
                at("https://a.example/mcp/v2/x").as_deref(),
                Some("https://a.example/mcp/v2")
            );
            assert_eq!(
                at("https://a.example/mcp/v2").as_deref(),
                Some("https://a.example/mcp/v2")
            );
            assert_eq!(
                at("https://a.example/mcp/v20").as_deref(),
                Some("https://a.example/mcp")
            );
            assert_eq!(
                at("https://a.example/mcp").as_deref(),
                Some("https://a.example/mcp")
            );
            assert_eq!(
                at("https://a.example/mcpx").as_deref(),
                Some("https://a.example/")
            );
            assert_eq!(
                at("https://a.example/").as_deref(),
                Some("https://a.example/")
            );
        }
    }

    #[test]
    fn origins_sharing_a_bucket_never_answer_for_each_other() {
        let table = table_of(
            OriginTable::colliding(),
            &[
                "https://a.example/mcp",
                "https://b.example/",
                "http://a.example:8080/",
            ],
        );
        // One bucket holds all three: the origin check inside it keeps them apart.
        assert_eq!(table.buckets.len(), 1);
        assert_eq!(table.len(), 3);
        assert_eq!(
            found(&table, "https://a.example/mcp").as_deref(),
            Some("https://a.example/mcp")
        );
        assert_eq!(found(&table, "https://a.example/other"), None);
        assert_eq!(
            found(&table, "https://B.example/mcp").as_deref(),
            Some("https://b.example/")
        );
        assert_eq!(
            found(&table, "http://a.example:8080/mcp").as_deref(),
            Some("http://a.example:8080/")
        );
        assert_eq!(found(&table, "http://a.example/mcp"), None);
    }

    #[test]
    fn random_keys_spread_origins_and_emptied_buckets_go() {
        let resources: Vec<String> = (0..1000)
            .map(|i| format!("https://s{i}.example/mcp"))
            .collect();
        let refs: Vec<&str> = resources.iter().map(String::as_str).collect();
        let table = table_of(OriginTable::default(), &refs);
        assert_eq!(table.len(), 1000);
        // 1000 origins in 64-bit keyed hashes: a shared bucket would be a broken hash.
        assert_eq!(table.buckets.len(), 1000);
        let one = url("https://s7.example/mcp");
        let fewer = table.with_bucket(Origin::of_url(&one).unwrap(), |b| {
            b.iter().filter(|u| **u != one).cloned().collect()
        });
        assert_eq!((fewer.len(), fewer.buckets.len()), (999, 999));
        assert!(table.sole.is_none());
        // Down to one origin, its bucket is the sole one; emptied, none.
        let two = ["https://s1.example/mcp", "https://s2.example/mcp"];
        let (s1, s2) = (url(two[0]), url(two[1]));
        let one_left = table_of(OriginTable::default(), &two)
            .with_bucket(Origin::of_url(&s2).unwrap(), |_| Vec::new());
        assert_eq!(one_left.sole.as_deref(), Some(&[s1.clone()][..]));
        let none_left = one_left.with_bucket(Origin::of_url(&s1).unwrap(), |_| Vec::new());
        assert!(none_left.sole.is_none());
        assert_eq!(found(&none_left, two[0]), None);
        assert_eq!(found(&fewer, "https://s7.example/mcp"), None);
        // The copy left the original as it was.
        assert!(found(&table, "https://s7.example/mcp").is_some());
    }

    #[test]
    fn two_tables_draw_different_keys() {
        let a = OriginTable::<()>::default();
        let b = OriginTable::<()>::default();
        let o = uri("https://a.example/");
        let o = Origin::of_uri(&o).unwrap();
        assert_ne!(a.key(o), b.key(o));
        // A copy keeps its keys, or its buckets would be lost.
        assert_eq!(a.clone().key(o), a.key(o));
    }

    #[test]
    fn keys_tell_apart_what_origins_tell_apart() {
        let table = OriginTable::<()>::default();
        let key = |scheme, host, port| table.key(Origin::new(scheme, host, port));
        let base = key("https", "a.example", Some(443));
        assert_eq!(key("HTTPS", "A.Example", Some(443)), base);
        for other in [
            key("http", "a.example", Some(443)),
            key("https", "a.example", Some(444)),
            key("https", "a.exampl", Some(443)),
            key("https", "b.example", Some(443)),
            // Every byte counts, in both the whole words and the rest.
            key("https", "a.example.com.", Some(443)),
            key("https", "a.examplf", Some(443)),
            key("https", "b.example.com", Some(443)),
        ] {
            assert_ne!(other, base);
        }
        // The same bytes split differently between scheme and host.
        assert_ne!(key("ab", "c", None), key("a", "bc", None));
        assert_ne!(key("https", "x", Some(0)), key("https", "x", None));
        // No port and the default one are written alike, so they share a key: the bucket's
        // own test (`Origin::same`) tells them apart.
        assert_eq!(key("https", "a.example", None), base);
    }

    #[test]
    fn an_origin_and_its_authority_as_written_share_a_key() {
        let table = OriginTable::<()>::default();
        for (scheme, host, port, written) in [
            ("https", "a.example", Some(443), "a.example"),
            ("https", "A.example", Some(443), "a.EXAMPLE"),
            ("http", "a.example", Some(80), "a.example"),
            ("http", "localhost", Some(3000), "localhost:3000"),
            ("http", "localhost", Some(0), "localhost:0"),
            ("http", "localhost", Some(1), "localhost:1"),
            ("http", "localhost", Some(9), "localhost:9"),
            ("http", "localhost", Some(10), "localhost:10"),
            ("http", "localhost", Some(100), "localhost:100"),
            ("http", "localhost", Some(1000), "localhost:1000"),
            ("http", "localhost", Some(10000), "localhost:10000"),
            ("http", "localhost", Some(99), "localhost:99"),
            ("http", "localhost", Some(65535), "localhost:65535"),
            ("https", "a.example", Some(80), "a.example:80"),
            ("http", "[::1]", Some(8080), "[::1]:8080"),
            ("ws", "a.example", Some(80), "a.example:80"),
            ("ws", "a.example", None, "a.example"),
            (
                "https",
                "a-host-name-longer-than-a-few-words.example.com",
                Some(8443),
                "a-host-name-longer-than-a-few-words.example.com:8443",
            ),
        ] {
            let origin = Origin::new(scheme, host, port);
            assert_eq!(
                table.key(origin),
                table.written_key(scheme, written),
                "{scheme} {written}"
            );
            assert!(OwnedOrigin::new(origin).is_written_as(scheme, written));
        }
        assert_ne!(
            table.written_key("http", "localhost:3000"),
            table.written_key("http", "localhost:3001")
        );
        // A scheme in other letters is another scheme to the inner client (`web_scheme`).
        let https = OwnedOrigin::new(Origin::new("https", "a.example", Some(443)));
        assert!(!https.is_written_as("HTTPS", "a.example"));
    }

    /// A table of the origins of `resources`, each its own entry.
    fn table_of_origins(
        base: OriginTable<OwnedOrigin>,
        resources: &[&str],
    ) -> OriginTable<OwnedOrigin> {
        resources.iter().fold(base, |table, r| {
            let origin = OwnedOrigin::new(Origin::of_url(&url(r)).unwrap());
            table.with_bucket(origin.as_origin(), |b| {
                let mut next = b.to_vec();
                next.push(origin.clone());
                next
            })
        })
    }

    #[test]
    fn a_request_finds_its_bucket_however_it_writes_its_authority() {
        for base in [OriginTable::default(), OriginTable::colliding()] {
            let held = [
                "http://localhost:3000/",
                "https://a.example/",
                "http://[::1]/",
                // Host 4 bytes, port text 3: a request with 5 bytes of userinfo is 12 bytes
                // long, as long as 4 × 3, and must still be parsed and found.
                "http://abcd:99/",
            ];
            // Requests against a table of one origin: its only bucket.
            let sole = table_of_origins(base.clone(), &held[..1]);
            assert!(sole.sole.is_some());
            for (request, found) in [
                ("http://localhost:3000/mcp", true),
                ("http://LOCALHOST:3000/", true),
                ("http://u@localhost:3000/", true),
                ("http://localhost:03000/", true),
                ("http://localhost:3001/", false),
                ("http://u@localhost:3001/", false),
                ("https://a.example/", false),
                ("https://a.example:443/", false),
            ] {
                let request = uri(request);
                let hit = sole.find_for_request(&request, |o| o, |_| true);
                assert_eq!(hit.is_some(), found, "{request}");
            }
            let table = table_of_origins(base, &held);
            // Three origins: three buckets, or one when they collide.
            assert_eq!(table.sole.is_some(), table.buckets.len() == 1);
            let origin_of = |request: &str| {
                let request = uri(request);
                let found = table.find_for_request(&request, |o| o, |_| true)?;
                Some(found.authority().to_string())
            };
            let at = |a: &str| Some(a.to_owned());
            assert_eq!(origin_of("http://localhost:3000/mcp"), at("localhost:3000"));
            assert_eq!(origin_of("http://LocalHost:3000/"), at("localhost:3000"));
            assert_eq!(origin_of("https://a.example/x"), at("a.example"));
            assert_eq!(origin_of("http://[::1]/"), at("[::1]"));
            // Written otherwise: parsed, and found all the same.
            assert_eq!(
                origin_of("http://u:p@localhost:3000/"),
                at("localhost:3000")
            );
            assert_eq!(origin_of("http://localhost:03000/"), at("localhost:3000"));
            assert_eq!(origin_of("https://a.example:443/"), at("a.example"));
            assert_eq!(origin_of("http://[::1]:80/"), at("[::1]"));
            assert_eq!(origin_of("http://uuuu@abcd:99/"), at("abcd:99"));
            // Not held, however written.
            for other in [
                "http://localhost:3001/",
                "http://localhost/",
                "https://a.example:8443/",
                "http://a.example/",
                "https://b.example/",
                "http://u@localhost:3001/",
                "/relative",
            ] {
                assert_eq!(origin_of(other), None, "{other}");
            }
        }
    }

    #[test]
    fn long_hosts_hash_alike_whatever_their_case() {
        let table = OriginTable::<()>::default();
        let long = "a-very-long-host-name-beyond-one-buffer-of-sixty-four-bytes.example.com";
        let lower = uri(&format!("https://{long}/"));
        let upper = uri(&format!("https://{}/", long.to_ascii_uppercase()));
        let other = uri(&format!("https://{long}x/"));
        let key = |u: &Uri| table.key(Origin::of_uri(u).unwrap());
        assert_eq!(key(&lower), key(&upper));
        assert_ne!(key(&lower), key(&other));
        let owned = OwnedOrigin::new(Origin::of_uri(&upper).unwrap());
        assert!(owned.as_origin().same(&Origin::of_uri(&lower).unwrap()));
        assert_eq!(table.key(owned.as_origin()), key(&lower));
    }
}
