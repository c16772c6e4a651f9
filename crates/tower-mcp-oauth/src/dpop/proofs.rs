//! The layer's DPoP state: its settings, its key (made when first needed), the nonces servers
//! sent, and the proof header for one request.

use std::sync::OnceLock;
use std::time::SystemTime;

use http::{HeaderValue, Method, Uri};
use mcp_oauth_flow::dpop::{DpopKey, Proof};
use mcp_oauth_flow::{Error, ErrorKind, Flow};

use super::nonces::Nonces;
use super::{Dpop, DpopPolicy};

/// One layer's DPoP state, shared by its services and flows.
#[derive(Default)]
pub(crate) struct DpopState {
    pub(crate) settings: Dpop,
    /// Whether each new authorization's tokens get a key of their own rather than the one
    /// key generated for the layer (see [`per_login`](Self::per_login)).
    key_per_login: bool,
    generated: OnceLock<DpopKey>,
    nonces: Nonces,
}

impl DpopState {
    pub(crate) fn new(settings: Dpop) -> Self {
        Self {
            settings,
            ..Self::default()
        }
    }

    /// A state whose every new authorization binds its tokens to a key generated for it (unless
    /// the application gave one): the web API's, where one process logs in many users. With one
    /// key for all, a store record read by someone it was not meant for (a user's tokens and
    /// key, as stored together) would let them prove possession for every other user's tokens
    /// they got hold of, which is what DPoP is there to stop (RFC 9449 §1).
    #[cfg(feature = "web")]
    pub(crate) fn per_login(settings: Dpop) -> Self {
        Self {
            settings,
            key_per_login: true,
            ..Self::default()
        }
    }

    /// The key for new tokens: the application's, else one generated for these tokens (a
    /// state [`per_login`](Self::per_login)), else one generated once per layer.
    fn layer_key(&self) -> Result<DpopKey, Error> {
        if let Some(key) = &self.settings.key {
            return Ok(key.clone());
        }
        if self.key_per_login {
            return generate_key();
        }
        if let Some(key) = self.generated.get() {
            return Ok(key.clone());
        }
        let key = generate_key()?;
        Ok(self.generated.get_or_init(|| key).clone())
    }

    /// The key to prove on the token request `flow` has just queued, if any: the held tokens'
    /// key for a refresh of bound tokens (RFC 9449 §5), else the layer's key when the policy
    /// and the server's metadata call for it.
    pub(crate) fn token_request_key(&self, flow: &Flow) -> Result<Option<DpopKey>, Error> {
        if let Some(bound) = flow.dpop_bound_key() {
            return Ok(Some(bound.clone()));
        }
        let wanted = match self.settings.policy {
            DpopPolicy::Always => true,
            DpopPolicy::IfOffered => flow.dpop_offered(),
            DpopPolicy::Never => false,
        };
        wanted.then(|| self.layer_key()).transpose()
    }

    /// A fresh proof header for a `method` request to `uri` at `now`, with the nonce last sent
    /// by its origin and, for a resource request, the hash of the `access_token` it presents.
    pub(crate) fn proof(
        &self,
        key: &DpopKey,
        method: &Method,
        uri: &Uri,
        now: SystemTime,
        access_token: Option<&str>,
    ) -> Result<HeaderValue, Error> {
        let mut jti = [0u8; 16];
        getrandom::getrandom(&mut jti).map_err(no_randomness)?;
        let jti: String = jti.iter().map(|b| format!("{b:02x}")).collect();
        let nonce = self.nonces.get(uri);
        let url = target_uri(uri);
        let extra = self
            .settings
            .claims
            .as_ref()
            .map(|hook| hook(method, mcp_oauth_flow::dpop::htu(&url)));
        let proof = Proof::new(method, &url, now, &jti)
            .nonce(nonce.as_deref())
            .access_token(access_token)
            .extra_claims(extra.as_ref());
        let mut value = HeaderValue::try_from(key.sign(&proof)).map_err(|_| {
            Error::new(
                ErrorKind::InvalidRequestUri,
                "a DPoP proof is not a header value",
            )
        })?;
        // A proof is replayable for its lifetime by whoever reads it: keep it out of logs and
        // HPACK tables like the token it travels with.
        value.set_sensitive(true);
        Ok(value)
    }

    /// Remembers the nonce `uri`'s origin sent.
    pub(crate) fn remember_nonce(&self, uri: &Uri, nonce: String) {
        self.nonces.remember(uri, nonce);
    }

    /// Remembers the `DPoP-Nonce` a response carries, if any (RFC 9449 §8.2: a server may
    /// send the next nonce on any response).
    pub(crate) fn note_response(&self, uri: &Uri, headers: &http::HeaderMap) {
        if let Some(nonce) = mcp_oauth_flow::dpop::nonce_header(headers) {
            self.nonces.remember(uri, nonce);
        }
    }
}

/// A new ES256 key from the system's randomness.
fn generate_key() -> Result<DpopKey, Error> {
    // A random 32-byte string is a valid scalar but for a 2^-128 chance; try again then.
    loop {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).map_err(no_randomness)?;
        if let Ok(key) = DpopKey::from_entropy(bytes) {
            return Ok(key);
        }
    }
}

fn no_randomness(e: getrandom::Error) -> Error {
    Error::new(
        ErrorKind::Transport,
        format!("no randomness available: {e}"),
    )
}

/// The request's target URI as the server sees it (RFC 9110 §7.1), the proof's `htu` before
/// its query is dropped: scheme, host, port and path. Not the user information a caller may
/// have put in the URL: an `http(s)` sender must not send it (RFC 9110 §4.2.4), so it is not
/// in the URI the server checks the proof against, and a proof is read by whoever reads the
/// request.
fn target_uri(uri: &Uri) -> String {
    let host = crate::origin::authority_text(uri);
    let path = uri.path_and_query().map_or("", |p| p.as_str());
    match uri.scheme_str() {
        Some(scheme) => format!("{scheme}://{host}{path}"),
        None => format!("{host}{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_uri_carries_no_user_information() {
        let uri: Uri = "https://user:pw@mcp.example.com:8443/mcp?x=1"
            .parse()
            .unwrap();
        assert_eq!(target_uri(&uri), "https://mcp.example.com:8443/mcp?x=1");
        let plain: Uri = "http://127.0.0.1:3000/mcp".parse().unwrap();
        assert_eq!(target_uri(&plain), plain.to_string());
    }
}
