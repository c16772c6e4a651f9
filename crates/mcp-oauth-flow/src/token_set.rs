//! The tokens held for one protected resource ([`TokenSet`]) and how they are presented
//! ([`TokenType`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::HeaderValue;
use oauth2::{AccessToken, RefreshToken};
use serde::{Deserialize, Serialize};

use crate::scope::Scopes;

/// How an access token is presented to the resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TokenType {
    /// RFC 6750 bearer tokens.
    Bearer,
    /// RFC 9449 sender-constrained tokens.
    #[serde(rename = "DPoP")]
    DPoP,
}

impl TokenType {
    /// Reads `token_type` case-insensitively (RFC 6749 §7.1: "The client MUST NOT use an access
    /// token if it does not understand the token type"; many servers send `bearer`).
    pub fn from_wire(value: &str) -> Option<Self> {
        if value.eq_ignore_ascii_case("bearer") {
            Some(Self::Bearer)
        } else if value.eq_ignore_ascii_case("dpop") {
            Some(Self::DPoP)
        } else {
            None
        }
    }

    /// The `Authorization` scheme, spelled canonically (some resource servers only accept
    /// `Bearer`, never `bearer`).
    pub fn scheme(self) -> &'static str {
        match self {
            Self::Bearer => "Bearer",
            Self::DPoP => "DPoP",
        }
    }
}

/// The tokens obtained for one protected resource, with everything needed to use and renew
/// them.
///
/// The expiry is absolute (seconds since the Unix epoch), so a token set read back from a store
/// after a restart still knows when it expires. `Debug` never shows a token.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use mcp_oauth_flow::token::{TokenSet, TokenType};
/// let now = SystemTime::now();
/// let tokens = TokenSet::new("at", TokenType::Bearer, "https://as.example.com", "client")
///     .with_expires_at(Some(now + Duration::from_secs(60)));
/// assert!(!tokens.is_expired(now, Duration::from_secs(10)));
/// assert!(tokens.is_expired(now + Duration::from_secs(55), Duration::from_secs(10)));
/// assert_eq!(tokens.authorization_value().to_str().unwrap(), "Bearer at");
/// assert!(!format!("{tokens:?}").contains("\"at\""));
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenSet {
    access_token: AccessToken,
    token_type: TokenType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<RefreshToken>,
    /// Seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scopes: Option<Scopes>,
    issuer: String,
    client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource: Option<String>,
    /// Seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    issued_at: Option<u64>,
    /// Where to refresh: kept so a token read back from a store can be refreshed without
    /// discovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_auth: Option<crate::client_auth::ClientAuthMethod>,
    /// The key the tokens are bound to (RFC 9449 §5, §6), stored with them so a bound refresh
    /// token still works after a restart. Absent in token sets stored before DPoP existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dpop_key: Option<crate::dpop::DpopKey>,
}

fn to_unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenSet {
    /// A token set with no refresh token, expiry, scope or resource.
    pub fn new(
        access_token: impl Into<String>,
        token_type: TokenType,
        issuer: impl Into<String>,
        client_id: impl Into<String>,
    ) -> Self {
        Self {
            access_token: AccessToken::new(access_token.into()),
            token_type,
            refresh_token: None,
            expires_at: None,
            scopes: None,
            issuer: issuer.into(),
            client_id: client_id.into(),
            resource: None,
            issued_at: None,
            token_endpoint: None,
            client_auth: None,
            dpop_key: None,
        }
    }

    /// Sets the DPoP key the tokens were requested with (RFC 9449 §5): their proofs are signed
    /// with it from then on.
    pub fn with_dpop_key(mut self, key: Option<crate::dpop::DpopKey>) -> Self {
        self.dpop_key = key;
        self
    }

    /// The DPoP key the tokens were requested with, if any.
    pub fn dpop_key(&self) -> Option<&crate::dpop::DpopKey> {
        self.dpop_key.as_ref()
    }

    /// The key resource requests must prove possession of: the DPoP key of a `DPoP` token
    /// (RFC 9449 §7.1). `None` for a bearer token, even one requested with a proof (§5 lets a
    /// server answer `Bearer`).
    pub fn resource_dpop_key(&self) -> Option<&crate::dpop::DpopKey> {
        self.dpop_key
            .as_ref()
            .filter(|_| self.token_type == TokenType::DPoP)
    }

    /// Sets when the tokens were issued.
    pub fn with_issued_at(mut self, at: Option<SystemTime>) -> Self {
        self.issued_at = at.map(to_unix);
        self
    }

    /// Sets the token endpoint that issued the tokens and the client authentication method
    /// used there, so a refresh needs no discovery.
    pub fn with_token_endpoint(
        mut self,
        endpoint: Option<String>,
        client_auth: Option<crate::client_auth::ClientAuthMethod>,
    ) -> Self {
        self.token_endpoint = endpoint;
        self.client_auth = client_auth;
        self
    }

    /// When the tokens were issued, if known.
    pub fn issued_at(&self) -> Option<SystemTime> {
        self.issued_at
            .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s)))
    }

    /// The token endpoint that issued the tokens, if known.
    pub fn token_endpoint(&self) -> Option<&str> {
        self.token_endpoint.as_deref()
    }

    /// The client authentication method used at the token endpoint, if known.
    pub fn client_auth(&self) -> Option<crate::client_auth::ClientAuthMethod> {
        self.client_auth
    }

    /// Whether two token sets are the same grant state (same access and refresh token).
    /// Stores compare with this before replacing tokens.
    pub fn same_tokens(&self, other: &TokenSet) -> bool {
        self.access_token.secret() == other.access_token.secret()
            && self.refresh_token.as_ref().map(|t| t.secret())
                == other.refresh_token.as_ref().map(|t| t.secret())
    }

    /// Sets the refresh token.
    pub fn with_refresh_token(mut self, token: Option<RefreshToken>) -> Self {
        self.refresh_token = token;
        self
    }

    /// Sets the absolute expiry.
    pub fn with_expires_at(mut self, at: Option<SystemTime>) -> Self {
        self.expires_at = at.map(to_unix);
        self
    }

    /// Sets the granted scopes.
    pub fn with_scopes(mut self, scopes: Option<Scopes>) -> Self {
        self.scopes = scopes;
        self
    }

    /// Sets the resource the token was issued for (RFC 8707).
    pub fn with_resource(mut self, resource: Option<String>) -> Self {
        self.resource = resource;
        self
    }

    /// The access token.
    pub fn access_token(&self) -> &AccessToken {
        &self.access_token
    }

    /// How the token is presented.
    pub fn token_type(&self) -> TokenType {
        self.token_type
    }

    /// The refresh token, if one was issued.
    pub fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }

    /// When the access token expires, if the server said.
    pub fn expires_at(&self) -> Option<SystemTime> {
        // Checked: a stored or server-sent value past what `SystemTime` holds is no expiry.
        self.expires_at
            .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s)))
    }

    /// The scopes granted (the requested ones when the server did not say, RFC 6749 §5.1).
    pub fn scopes(&self) -> Option<&Scopes> {
        self.scopes.as_ref()
    }

    /// The issuer of the authorization server that issued the tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The client the tokens were issued to.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The resource indicator the tokens were requested for.
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }

    /// Whether the access token expires within `skew` of `now`. A token with no known expiry
    /// never counts as expired: the resource's 401 will say so.
    pub fn is_expired(&self, now: SystemTime, skew: Duration) -> bool {
        match self.expires_at() {
            Some(at) => now.checked_add(skew).is_none_or(|deadline| deadline >= at),
            None => false,
        }
    }

    /// The `Authorization` header value (`Bearer …` or `DPoP …`), marked sensitive so that
    /// hyper's and http's `Debug` never print it and HPACK never indexes it.
    pub fn authorization_value(&self) -> HeaderValue {
        let mut value = HeaderValue::try_from(format!(
            "{} {}",
            self.token_type.scheme(),
            self.access_token.secret()
        ))
        .unwrap_or_else(|_| HeaderValue::from_static(""));
        value.set_sensitive(true);
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expired from `expires_at - skew` on, inclusive; never for a token of unknown expiry.
    #[test]
    fn expiry_counts_the_skew_and_is_inclusive() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let tokens = TokenSet::new("at", TokenType::Bearer, "i", "c")
            .with_expires_at(Some(t0 + Duration::from_secs(60)));
        assert!(!tokens.is_expired(t0, Duration::ZERO));
        assert!(!tokens.is_expired(t0 + Duration::from_secs(59), Duration::ZERO));
        assert!(tokens.is_expired(t0 + Duration::from_secs(60), Duration::ZERO));
        assert!(tokens.is_expired(t0 + Duration::from_secs(61), Duration::ZERO));
        assert!(!tokens.is_expired(t0, Duration::from_secs(59)));
        assert!(tokens.is_expired(t0, Duration::from_secs(60)));
        let unknown = TokenSet::new("at", TokenType::Bearer, "i", "c");
        assert!(!unknown.is_expired(t0 + Duration::from_secs(1 << 30), Duration::ZERO));
    }

    fn set(access: &str, refresh: Option<&str>) -> TokenSet {
        TokenSet::new(access, TokenType::Bearer, "https://as", "c")
            .with_refresh_token(refresh.map(|r| RefreshToken::new(r.into())))
    }

    /// The scheme is spelled canonically, whatever case the server used.
    #[test]
    fn scheme_is_canonical() {
        assert_eq!(TokenType::from_wire("bearer").unwrap().scheme(), "Bearer");
        assert_eq!(TokenType::from_wire("DPOP").unwrap().scheme(), "DPoP");
    }

    /// A token set stored before DPoP existed still reads; a bound one writes its key and reads
    /// it back; an unbound one writes nothing new (older readers see the same document).
    #[test]
    fn the_stored_format_stays_backward_compatible() {
        let old = r#"{"access_token":"a","token_type":"Bearer","issuer":"i","client_id":"c"}"#;
        let tokens: TokenSet = serde_json::from_str(old).unwrap();
        assert!(tokens.dpop_key().is_none());
        assert_eq!(serde_json::to_string(&tokens).unwrap(), old);

        let key = crate::dpop::DpopKey::from_entropy([6; 32]).unwrap();
        let bound = TokenSet::new("a", TokenType::DPoP, "i", "c").with_dpop_key(Some(key.clone()));
        let back: TokenSet = serde_json::from_str(&serde_json::to_string(&bound).unwrap()).unwrap();
        let read = back.resource_dpop_key().expect("the key is stored");
        assert_eq!(read.thumbprint(), key.thumbprint());
        // A bearer token requested with a proof keeps the key (its refresh token may be
        // bound) but its requests carry no proof.
        let bearer = TokenSet::new("a", TokenType::Bearer, "i", "c").with_dpop_key(Some(key));
        assert!(bearer.dpop_key().is_some() && bearer.resource_dpop_key().is_none());
        assert!(!format!("{bound:?}").contains("\"d\""));
    }

    /// The comparison behind every store's compare-and-swap: same access *and* refresh token.
    #[test]
    fn same_tokens_compares_both_tokens() {
        assert!(set("a", Some("r")).same_tokens(&set("a", Some("r"))));
        assert!(set("a", None).same_tokens(&set("a", None)));
        assert!(!set("a", Some("r")).same_tokens(&set("b", Some("r"))));
        assert!(!set("a", Some("r")).same_tokens(&set("a", Some("s"))));
        assert!(!set("a", Some("r")).same_tokens(&set("a", None)));
        assert!(!set("a", None).same_tokens(&set("a", Some("r"))));
        // Everything else may differ: it is not the grant state.
        let later = set("a", Some("r")).with_scopes(Some(Scopes::parse("x")));
        assert!(later.same_tokens(&set("a", Some("r"))));
    }
}
