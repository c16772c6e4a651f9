//! A flow waiting for its authorization response, as a record another process can resume.
//!
//! A web app behind a load balancer may receive the callback in another process than the one
//! that started the login. What the exchange needs from then on is small and fixed: the
//! `state` and PKCE verifier, the redirect URI, the protected resource, the authorization
//! server's metadata, the issuer the client is bound to, the scopes asked for, and the client.
//! [`PendingAuthorization`] is exactly that, with serde, so the flow's state itself (which
//! holds discovery probes and queued actions that are all spent by then) never needs to be.

use std::sync::Arc;
use std::time::SystemTime;

use oauth2::{ClientSecret, CsrfToken};
use serde::{Deserialize, Serialize};
use url::Url;

use super::state::{AuthServer, ExpectAuthorizationResponse, Resource, State};
use super::{Flow, FlowSecrets};
use crate::client_auth::{ClientAuthMethod, ClientCredentials};
use crate::config::ClientConfig;
use crate::error::{Error, ErrorKind};
use crate::metadata::AuthorizationServerMetadata;
use crate::pkce::Pkce;
use crate::registration::ClientRegistration;
use crate::report::DiscoveryReport;
use crate::scope::Scopes;
use crate::server_options::select_server_options;

/// The version of [`PendingAuthorization`]'s stored form this crate writes and reads. A record
/// of another version is refused by [`Flow::resume`] (the login is started again), so a fleet
/// mid-upgrade never misreads one.
///
/// ```
/// assert_eq!(mcp_oauth_flow::PENDING_AUTHORIZATION_VERSION, 1);
/// ```
pub const PENDING_AUTHORIZATION_VERSION: u32 = 1;

/// A flow stopped at the consent step, as data: what the code exchange needs once the
/// callback arrives, in this process or another ([`Flow::pending_authorization`],
/// [`Flow::resume`]).
///
/// It holds secrets: the `state`, the PKCE verifier and, for a confidential client, the client
/// secret. Its serde form carries them (whoever resumes the flow needs them), so keep it where
/// you keep tokens; its `Debug` shows none of them. A `private_key_jwt` client's key is never in
/// it: the resuming flow signs with the key of its own configuration.
///
/// ```
/// use std::sync::Arc;
/// use mcp_oauth_flow::{ClientConfig, Flow, FlowSecrets, FlowStart, PendingAuthorization};
/// let config = Arc::new(ClientConfig::new("https://app.example.com/callback"));
/// let start = FlowStart::new("https://mcp.example.com/mcp".parse().unwrap());
/// let flow = Flow::new(config, start, FlowSecrets::from_entropy([0; 32], [1; 32]), std::time::SystemTime::now());
/// // Still discovering: nothing to hand over yet.
/// assert!(flow.pending_authorization().is_none());
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingAuthorization {
    /// [`PENDING_AUTHORIZATION_VERSION`] when written.
    version: u32,
    /// The MCP server the flow authorizes for (the address policy judges URLs against it).
    #[serde(with = "url_string")]
    server_url: Url,
    /// The redirect URI the authorization request named; the code exchange repeats it.
    redirect_uri: String,
    state: String,
    code_verifier: String,
    /// The RFC 8707 `resource`, exactly as the resource metadata published it.
    resource: Option<String>,
    /// Where the tokens may be sent.
    #[serde(with = "url_string")]
    protected_resource: Url,
    authorization_server: AuthorizationServerMetadata,
    /// The issuer the client credentials are bound to.
    client_issuer: String,
    scopes: Option<Scopes>,
    client_id: String,
    client_secret: Option<String>,
    client_auth_method: ClientAuthMethod,
    /// The flow's new registration when it is stored only with the tokens it gets (see
    /// `FlowOutcome::registration`); absent from records that have none, and from those of
    /// builds before it, which this one reads the same. A build before it reads a record
    /// holding one without it (the version is the same): in a fleet mid-upgrade, a login
    /// completed there keeps its tokens but not the registration, which costs a confidential
    /// client its refresh, never a public one's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    registration: Option<ClientRegistration>,
}

impl std::fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The state, the verifier and the client secret stay out.
        f.debug_struct("PendingAuthorization")
            .field("version", &self.version)
            .field("server_url", &self.server_url.as_str())
            .field("issuer", &self.authorization_server.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl PendingAuthorization {
    /// The `state` the callback must carry (RFC 6749 §10.12). Treat it as a secret.
    pub fn state(&self) -> &str {
        &self.state
    }

    /// The MCP server URL the flow was started for.
    pub fn server_url(&self) -> &Url {
        &self.server_url
    }

    /// The issuer of the authorization server the user was sent to.
    pub fn issuer(&self) -> &str {
        &self.authorization_server.issuer
    }
}

impl Flow {
    /// The record another process needs to [`resume`](Self::resume) this flow, when it waits
    /// for the authorization response (after [`Action::Authorize`](super::Action::Authorize));
    /// `None` in any other state.
    pub fn pending_authorization(&self) -> Option<PendingAuthorization> {
        let State::ExpectAuthorizationResponse(s) = &self.state else {
            return None;
        };
        Some(PendingAuthorization {
            version: PENDING_AUTHORIZATION_VERSION,
            server_url: self.server.clone(),
            redirect_uri: self.config.redirect_uri.clone(),
            state: s.secrets.state.secret().clone(),
            code_verifier: s.secrets.pkce.verifier().secret().clone(),
            resource: s.resource.resource.clone(),
            protected_resource: s.resource.protected_resource.clone(),
            authorization_server: s.server.meta.clone(),
            client_issuer: s.server.client_issuer.clone(),
            scopes: s.server.scopes.clone(),
            client_id: s.client.client_id.clone(),
            client_secret: s.client.client_secret.as_ref().map(|c| c.secret().clone()),
            client_auth_method: s.client.method,
            registration: s.unsaved.as_deref().cloned(),
        })
    }

    /// A flow waiting for the authorization response of `pending`, as the flow that wrote it
    /// was: feed the callback to
    /// [`handle_authorization_response_at`](Self::handle_authorization_response_at). The
    /// per-server options are chosen again from `config`, as the first flow chose them.
    ///
    /// Fails with [`ErrorKind::Store`] for a record of another
    /// [version](PENDING_AUTHORIZATION_VERSION), and with [`ErrorKind::InvalidRedirectUri`]
    /// when `config` has another redirect URI than the flow that asked for consent (the code
    /// exchange must repeat it, RFC 6749 §4.1.3).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use mcp_oauth_flow::{ClientConfig, ErrorKind, Flow, PendingAuthorization};
    /// let json = r#"{"version":99}"#;
    /// let record: Result<PendingAuthorization, _> = serde_json::from_str(json);
    /// assert!(record.is_err(), "a record of another shape does not even parse");
    /// ```
    pub fn resume(
        config: Arc<ClientConfig>,
        pending: PendingAuthorization,
        now: SystemTime,
    ) -> Result<Self, Error> {
        check_resumable(&pending, &config.redirect_uri)?;
        // By the issuer the credentials are bound to, as the flow it resumes chose them: on
        // the 2025-03-26 path that is the server's origin, whatever issuer its metadata claims.
        let options = select_server_options(
            &config.servers,
            &pending.server_url,
            Some(&pending.client_issuer),
        )
        .cloned();
        let secrets = FlowSecrets::restore(
            CsrfToken::new(pending.state),
            Pkce::from_verifier(pending.code_verifier),
            now,
        );
        let state = ExpectAuthorizationResponse {
            secrets,
            resource: Resource {
                resource: pending.resource,
                // Only the scope choice read it, and that is made.
                prm_scopes: None,
                protected_resource: pending.protected_resource,
            },
            server: AuthServer {
                meta: pending.authorization_server,
                client_issuer: pending.client_issuer,
                scopes: pending.scopes,
                options,
            },
            client: ClientCredentials {
                client_id: pending.client_id,
                client_secret: pending.client_secret.map(ClientSecret::new),
                method: pending.client_auth_method,
                assertion: None,
            },
            unsaved: pending.registration.map(Box::new),
        };
        Ok(Self {
            config,
            state: State::ExpectAuthorizationResponse(Box::new(state)),
            out: Default::default(),
            report: DiscoveryReport::default(),
            last_now: now,
            server: pending.server_url,
            // A resumed flow is past consent: it has refreshed nothing yet.
            refresh_scope_retried: false,
        })
    }
}

/// Whether a stored record can be resumed under a configuration whose redirect URI is
/// `redirect_uri`: written by this version, for the same redirect URI (RFC 6749 §4.1.3: the
/// token request repeats the one the authorization request named).
fn check_resumable(pending: &PendingAuthorization, redirect_uri: &str) -> Result<(), Error> {
    if pending.version != PENDING_AUTHORIZATION_VERSION {
        return Err(Error::new(
            ErrorKind::Store,
            format!(
                "the pending login was stored in version {} of its form, this build reads \
                 version {PENDING_AUTHORIZATION_VERSION}: start the login again",
                pending.version
            ),
        ));
    }
    if pending.redirect_uri != redirect_uri {
        return Err(Error::new(
            ErrorKind::InvalidRedirectUri,
            format!(
                "the pending login was started with the redirect URI {:?}, this configuration \
                 has {redirect_uri:?}; every process completing logins needs the same one",
                pending.redirect_uri
            ),
        ));
    }
    Ok(())
}

/// A URL as its string: the `url` crate's serde support is an optional feature this crate does
/// not turn on.
mod url_string {
    use serde::{Deserialize, Deserializer, Serializer};
    use url::Url;

    pub(super) fn serialize<S: Serializer>(url: &Url, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(url.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Url, D::Error> {
        let raw = String::deserialize(d)?;
        Url::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> PendingAuthorization {
        PendingAuthorization {
            version: PENDING_AUTHORIZATION_VERSION,
            server_url: "https://mcp.example.com/mcp".parse().unwrap(),
            redirect_uri: "https://app.example.com/callback".into(),
            state: "the-state".into(),
            code_verifier: "the-verifier".into(),
            resource: Some("https://mcp.example.com/mcp".into()),
            protected_resource: "https://mcp.example.com/mcp".parse().unwrap(),
            authorization_server: AuthorizationServerMetadata {
                issuer: "https://as.example.com".into(),
                ..Default::default()
            },
            client_issuer: "https://as.example.com".into(),
            scopes: Some(Scopes::parse("read write")),
            client_id: "app".into(),
            client_secret: Some("the-client-secret".into()),
            client_auth_method: ClientAuthMethod::ClientSecretBasic,
            registration: Some(ClientRegistration {
                issuer: "https://as.example.com".into(),
                client_id: "app".into(),
                client_secret: Some(ClientSecret::new("the-client-secret".into())),
                client_secret_expires_at: None,
                token_endpoint_auth_method: Some("client_secret_basic".into()),
                redirect_uris: vec!["https://app.example.com/callback".into()],
                grant_types: Vec::new(),
            }),
        }
    }

    /// The serde form round-trips every field the exchange needs, and carries its version.
    #[test]
    fn the_record_round_trips_through_json() {
        let json = serde_json::to_string(&record()).unwrap();
        assert!(json.contains(r#""version":1"#), "{json}");
        let back: PendingAuthorization = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        assert_eq!(back.state(), "the-state");
        assert_eq!(back.issuer(), "https://as.example.com");
    }

    /// A record written before the registration it may carry was part of it reads the same.
    #[test]
    fn a_record_without_a_registration_reads_as_having_none() {
        let mut json = serde_json::to_value(record()).unwrap();
        json.as_object_mut().unwrap().remove("registration");
        let back: PendingAuthorization = serde_json::from_value(json).unwrap();
        assert!(back.registration.is_none());
        let written = serde_json::to_value(&back).unwrap();
        assert!(written.get("registration").is_none(), "{written}");
    }

    #[test]
    fn debug_shows_no_secret() {
        let shown = format!("{:?}", record());
        for secret in ["the-state", "the-verifier", "the-client-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("https://as.example.com"), "{shown}");
    }

    #[test]
    fn another_version_or_redirect_uri_is_refused() {
        let mut old = record();
        old.version = 2;
        let e = check_resumable(&old, "https://app.example.com/callback").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Store);
        assert!(e.to_string().contains("version 2"), "{e}");
        let e = check_resumable(&record(), "https://other.example.com/callback").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRedirectUri);
        assert!(!e.to_string().contains("the-state"));
        check_resumable(&record(), "https://app.example.com/callback").unwrap();
    }
}
