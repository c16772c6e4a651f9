//! Scope values (RFC 6749 §3.3) and the MCP rules for choosing them.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The `offline_access` scope that asks for a refresh token (OpenID Connect Core §11).
pub const OFFLINE_ACCESS: &str = "offline_access";

/// An ordered set of scope tokens. Order is kept as first seen, duplicates are dropped.
///
/// ```
/// use mcp_oauth_flow::authorization::Scopes;
/// let held = Scopes::parse("mcp:read mcp:write");
/// let asked = Scopes::parse("mcp:write  mcp:admin");
/// assert_eq!(held.union(&asked).to_string(), "mcp:read mcp:write mcp:admin");
/// assert!(held.union(&asked).contains_all(&asked));
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Scopes(Vec<String>);

impl Scopes {
    /// Parses a space-delimited scope string (any run of spaces separates).
    pub fn parse(s: &str) -> Self {
        Self::from_iter(s.split(' ').filter(|t| !t.is_empty()))
    }

    /// Whether there is no scope at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `scope` is in the set.
    pub fn contains(&self, scope: &str) -> bool {
        #[cfg(test)]
        tests::SCANNED.with(|n| n.set(n.get() + self.0.len()));
        self.0.iter().any(|s| s == scope)
    }

    /// Whether every scope of `other` is in the set.
    pub fn contains_all(&self, other: &Scopes) -> bool {
        if self.0.len() <= SHORT {
            return other.iter().all(|s| self.contains(s));
        }
        let held: HashSet<&str> = self.iter().collect();
        other.iter().all(|s| held.contains(s))
    }

    /// The scopes of `self` followed by those of `other` not already present.
    pub fn union(&self, other: &Scopes) -> Scopes {
        self.iter().chain(other.iter()).collect()
    }

    /// Adds a scope if absent.
    pub fn insert(&mut self, scope: &str) {
        if !self.contains(scope) {
            self.0.push(scope.to_owned());
        }
    }

    /// The scope tokens in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

/// Up to this many scopes, a set is searched in turn; past it, through a hash set. The scopes
/// come from servers (a token response's `scope`, a resource's `scopes_supported`, a
/// challenge), up to the response limit: tens of thousands of them, compared each with each,
/// would hold an executor thread for seconds.
const SHORT: usize = 16;

impl<S: AsRef<str>> FromIterator<S> for Scopes {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut out = Scopes::default();
        let mut seen: Option<HashSet<String>> = None;
        for s in iter {
            let s = s.as_ref();
            match &mut seen {
                None if out.0.len() < SHORT => out.insert(s),
                None => {
                    let mut set: HashSet<String> = out.0.iter().cloned().collect();
                    if set.insert(s.to_owned()) {
                        out.0.push(s.to_owned());
                    }
                    seen = Some(set);
                }
                Some(set) => {
                    if set.insert(s.to_owned()) {
                        out.0.push(s.to_owned());
                    }
                }
            }
        }
        out
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scopes({:?})", self.to_string())
    }
}

impl Serialize for Scopes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Scopes::parse(&String::deserialize(d)?))
    }
}

/// The scopes of a first authorization request, by the MCP 2025-11-25 rule ("Scope Selection
/// Strategy"): the `scope` of the challenge, else the protected resource's `scopes_supported`,
/// else none, in which case the `scope` parameter is left out.
///
/// ```
/// use mcp_oauth_flow::authorization::{select_scopes, Scopes};
/// let prm = vec!["a".to_string(), "b".to_string()];
/// assert_eq!(select_scopes(Some("x"), Some(&prm)), Some(Scopes::parse("x")));
/// assert_eq!(select_scopes(None, Some(&prm)), Some(Scopes::parse("a b")));
/// assert_eq!(select_scopes(None, None), None);
/// ```
pub fn select_scopes(
    challenge_scope: Option<&str>,
    prm_scopes: Option<&[String]>,
) -> Option<Scopes> {
    if let Some(s) = challenge_scope.map(Scopes::parse).filter(|s| !s.is_empty()) {
        return Some(s);
    }
    prm_scopes
        .map(|l| l.iter().collect::<Scopes>())
        .filter(|s| !s.is_empty())
}

/// Adds `offline_access` when the authorization server lists it in `scopes_supported` (SEP-2207)
/// and some scope is being requested anyway. A request with no scope is left alone: asking for
/// `offline_access` alone would replace the server's default scope with it.
///
/// ```
/// use mcp_oauth_flow::authorization::{with_offline_access, Scopes};
/// let supported = vec!["mcp".to_string(), "offline_access".to_string()];
/// assert_eq!(with_offline_access(Some(Scopes::parse("mcp")), Some(&supported)).unwrap().to_string(), "mcp offline_access");
/// assert_eq!(with_offline_access(Some(Scopes::parse("mcp")), None).unwrap().to_string(), "mcp");
/// ```
pub fn with_offline_access(
    scopes: Option<Scopes>,
    as_supported: Option<&[String]>,
) -> Option<Scopes> {
    let supported = as_supported.is_some_and(|l| l.iter().any(|s| s == OFFLINE_ACCESS));
    scopes.map(|mut s| {
        if supported {
            s.insert(OFFLINE_ACCESS);
        }
        s
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::Cell;

    use super::*;

    thread_local! {
        /// How many scopes linear searches ([`Scopes::contains`]) passed on this thread.
        pub(crate) static SCANNED: Cell<usize> = const { Cell::new(0) };
    }

    /// Scopes are not secret: `Debug` shows them, so a log of a step-up says what was asked.
    #[test]
    fn debug_shows_the_scopes() {
        assert_eq!(
            format!("{:?}", Scopes::parse("mcp:read  mcp:write")),
            r#"Scopes("mcp:read mcp:write")"#
        );
    }

    /// `contains_all` decides whether shared tokens cover a step-up (SEP-2350).
    #[test]
    fn contains_all_needs_every_scope() {
        let held = Scopes::parse("a b c");
        assert!(held.contains_all(&Scopes::parse("a c")));
        assert!(held.contains_all(&Scopes::parse("")));
        assert!(!held.contains_all(&Scopes::parse("a d")));
        assert!(!held.contains_all(&Scopes::parse("d")));
        assert!(!Scopes::parse("").contains_all(&Scopes::parse("a")));
    }

    #[test]
    fn parse_drops_empty_and_duplicates() {
        assert_eq!(Scopes::parse("  a  b a ").to_string(), "a b");
        assert!(Scopes::parse("   ").is_empty());
    }

    #[test]
    fn blank_challenge_scope_falls_back() {
        let prm = vec!["p".to_string()];
        assert_eq!(
            select_scopes(Some("  "), Some(&prm)),
            Some(Scopes::parse("p"))
        );
        assert_eq!(select_scopes(None, Some(&[])), None);
    }

    #[test]
    fn offline_access_only_when_listed_and_requested() {
        let listed = vec!["offline_access".to_string()];
        assert_eq!(with_offline_access(None, Some(&listed)), None);
        let s =
            with_offline_access(Some(Scopes::parse("a offline_access")), Some(&listed)).unwrap();
        assert_eq!(s.to_string(), "a offline_access");
        let unlisted = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            with_offline_access(Some(Scopes::parse("a")), Some(&unlisted))
                .unwrap()
                .to_string(),
            "a"
        );
    }

    /// A server's list of tens of thousands of scopes (its `scopes_supported`, a token
    /// response's `scope`, up to the response limit) is read in linear time, duplicates
    /// dropped and order kept as for a short one. Compared each with each, 60,000 scopes are
    /// 1.8 billion string compares; hashed, 60,000 inserts. Counted, not timed: every scope a
    /// linear search passes is counted ([`SCANNED`]).
    #[test]
    fn many_scopes_are_read_in_linear_time() {
        let many: Vec<String> = (0..60_000).map(|i| format!("s{i}")).collect();
        let text = format!("{} s0 s59999", many.join(" "));
        SCANNED.with(|n| n.set(0));
        let scopes = Scopes::parse(&text);
        assert_eq!(scopes.iter().count(), 60_000);
        assert_eq!(scopes.iter().next(), Some("s0"));
        assert_eq!(scopes.iter().last(), Some("s59999"));
        let again = Scopes::parse(&text);
        assert!(scopes.contains_all(&again));
        assert_eq!(scopes.union(&again), scopes);
        let scanned = SCANNED.with(|n| n.get());
        assert!(
            scanned < 1_000,
            "{scanned} scopes passed in linear searches"
        );
        // Past the short length, order and duplicates as below it.
        let long = (0..40)
            .map(|i| format!("t{}", i % 20))
            .collect::<Vec<_>>()
            .join(" ");
        let expected = (0..20)
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(Scopes::parse(&long).to_string(), expected);
    }

    #[test]
    fn serde_as_space_delimited_string() {
        let s = Scopes::parse("a b");
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(j, "\"a b\"");
        assert_eq!(serde_json::from_str::<Scopes>(&j).unwrap(), s);
    }
}
