//! The authorization-code flow as a sans-IO state machine.
//!
//! ```text
//!            401 / 403 insufficient_scope
//!                       │
//!                       ▼
//!        ┌── ExpectResourceMetadata ──┐   challenge URL, path-aware, root (RFC 9728 §3.1)
//!        │  (none found: 2025-03-26)  │   resource checked against the server (RFC 9728 §3.3)
//!        ▼                            ▼
//!   ExpectAuthServerMetadata (legacy) ExpectAuthServerMetadata   RFC 8414 / OIDC order, issuer check
//!        │  none found: default endpoints │
//!        └──────────────┬─────────────────┘
//!                       ▼                  PKCE S256 required
//!   pre-registered │ metadata document │ ExpectStoredClient ─▶ ExpectRegistration (RFC 7591)
//!                       ▼
//!            ExpectAuthorizationResponse   state, RFC 9207 iss
//!                       ▼
//!                  ExpectToken             tolerant parse ─▶ Complete(TokenSet)
//! ```
//!
//! Inputs arrive through `handle_*` methods, outputs leave through [`Flow::poll_action`]. The
//! flow owns no clock, no randomness and no IO: the driver passes `now` and the
//! [`FlowSecrets`], sends each [`SubRequest`], and feeds the responses back. Every transition
//! consumes the old state; an input the state does not expect is an
//! [`ErrorKind::InvalidTransition`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use oauth2::CsrfToken;
use url::Url;

use crate::authorization::{
    validate_authorization_response, AuthorizationRequest, AuthorizationResponse,
};
use crate::challenge::Challenge;
use crate::client_auth::{negotiate_client_auth, ClientAuthMethod, ClientCredentials};
use crate::config::{ClientConfig, PkcePolicy};
use crate::discovery::{
    authorization_server_metadata_urls, legacy_endpoints, legacy_issuer, origin_of,
    protected_resource_metadata_urls,
};
use crate::error::{Error, ErrorKind};
use crate::metadata::{AuthorizationServerMetadata, ProtectedResourceMetadata};
use crate::pkce::Pkce;
use crate::registration::{
    application_type_for, choose_client_source, parse_registration_response,
    registration_auth_method, registration_request_body, ClientRegistration, ClientSource,
};
use crate::report::{DiscoveryReport, Purpose};
use crate::resource::check_resource;
use crate::scope::{select_scopes, with_offline_access, Scopes};
use crate::token::{parse_token_response, token_request, Grant, TokenSet};
use crate::url_policy::{check_secure_url, parse_secure_url};

/// How many redirects one discovery fetch may follow.
const MAX_REDIRECTS: u8 = 5;

/// The random values one flow needs, supplied by the driver so the core stays deterministic.
///
/// ```
/// use mcp_oauth_flow::FlowSecrets;
/// let secrets = FlowSecrets::from_entropy([1; 32], [2; 32]);
/// assert!(!format!("{secrets:?}").contains(secrets.state().secret()));
/// ```
#[derive(Debug)]
pub struct FlowSecrets {
    state: CsrfToken,
    pkce: Pkce,
}

impl FlowSecrets {
    /// Builds the `state` value and the PKCE verifier from 32 random bytes each.
    pub fn from_entropy(state: [u8; 32], verifier: [u8; 32]) -> Self {
        use base64::Engine;
        Self {
            state: CsrfToken::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(state)),
            pkce: Pkce::from_entropy(verifier),
        }
    }

    /// The `state` value.
    pub fn state(&self) -> &CsrfToken {
        &self.state
    }
}

/// Why the flow was started and for which server.
#[derive(Clone, Debug)]
pub struct FlowStart {
    /// The URL of the MCP server that answered 401 or 403 (see
    /// [`server_url_from_uri`](crate::server_url_from_uri)).
    pub server_url: Url,
    /// The challenge that answer carried, if any.
    pub challenge: Option<Challenge>,
    /// Scopes already granted, which a step-up keeps (SEP-2350: request the union).
    pub held_scopes: Option<Scopes>,
}

impl FlowStart {
    /// A flow for `server_url` with no challenge and no held scopes.
    pub fn new(server_url: Url) -> Self {
        Self {
            server_url,
            challenge: None,
            held_scopes: None,
        }
    }
}

/// An HTTP request the driver must send for the flow, tagged with why.
#[derive(Debug)]
pub struct SubRequest {
    /// Why the request is made.
    pub purpose: Purpose,
    /// The request. Its body is complete; the URI is absolute.
    pub request: http::Request<Bytes>,
}

/// What the flow produced when it finished.
#[derive(Debug)]
pub struct FlowOutcome {
    /// The tokens.
    pub tokens: TokenSet,
    /// The URL prefix the tokens may be sent to: the protected resource metadata's `resource`,
    /// or for a 2025-03-26 server without metadata, its origin.
    pub protected_resource: Url,
    /// The authorization server metadata used.
    pub authorization_server: AuthorizationServerMetadata,
    /// Everything that was tried on the way.
    pub report: DiscoveryReport,
}

/// What the driver must do next.
#[derive(Debug)]
#[non_exhaustive]
pub enum Action {
    /// Send this request and feed the response to [`Flow::handle_response`].
    Send(SubRequest),
    /// Look up the client registration stored for `issuer` and feed it to
    /// [`Flow::handle_stored_client`].
    LoadClient {
        /// The authorization server's issuer.
        issuer: String,
    },
    /// Store this new registration (keyed by its issuer); no input is expected back.
    SaveClient(ClientRegistration),
    /// Get the user's consent and feed the response to [`Flow::handle_authorization_response`].
    Authorize(AuthorizationRequest),
    /// The flow succeeded.
    Complete(Box<FlowOutcome>),
    /// The flow failed. Nothing that was stored before it should be dropped because of it.
    Failed(Error),
}

/// The authorization flow for one protected resource. See the module docs for the diagram.
///
/// ```
/// use std::sync::Arc;
/// use mcp_oauth_flow::{Action, ClientConfig, Flow, FlowSecrets, FlowStart};
/// let config = Arc::new(ClientConfig::new("http://127.0.0.1:1/callback"));
/// let start = FlowStart::new("https://mcp.example.com/mcp".parse().unwrap());
/// let mut flow = Flow::new(config, start, FlowSecrets::from_entropy([0; 32], [1; 32]));
/// match flow.poll_action() {
///     Some(Action::Send(sub)) => assert_eq!(
///         sub.request.uri(),
///         "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
///     ),
///     other => panic!("unexpected {other:?}"),
/// }
/// assert!(flow.poll_action().is_none()); // now waiting for the response
/// ```
pub struct Flow {
    config: Arc<ClientConfig>,
    state: State,
    out: VecDeque<Action>,
    report: DiscoveryReport,
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow")
            .field("state", &self.state.name())
            .finish_non_exhaustive()
    }
}

struct Common {
    server_url: Url,
    challenge_scope: Option<String>,
    held_scopes: Option<Scopes>,
    secrets: FlowSecrets,
}

/// Walks a list of candidate URLs, following same-origin redirects.
struct Probe {
    purpose: Purpose,
    remaining: VecDeque<Url>,
    current: Url,
    /// The candidate as listed, before redirects (for "advertised" checks).
    listed: Url,
    hops: u8,
    visited: Vec<Url>,
}

enum Fetched {
    Document(Bytes),
    NotHere,
    Redirect,
}

impl Probe {
    fn new(purpose: Purpose, candidates: Vec<Url>) -> Option<Self> {
        let mut remaining: VecDeque<Url> = candidates.into();
        let current = remaining.pop_front()?;
        Some(Self {
            purpose,
            remaining,
            listed: current.clone(),
            current,
            hops: 0,
            visited: Vec::new(),
        })
    }

    fn request(&self) -> SubRequest {
        SubRequest {
            purpose: self.purpose,
            request: http::Request::get(self.current.as_str())
                .header(ACCEPT, "application/json")
                .body(Bytes::new())
                .expect("a parsed URL is a valid URI"),
        }
    }

    fn advance(&mut self) -> bool {
        match self.remaining.pop_front() {
            Some(next) => {
                self.listed = next.clone();
                self.current = next;
                self.hops = 0;
                self.visited.clear();
                true
            }
            None => false,
        }
    }

    /// Sorts a response into a document, a miss, or a redirect to follow. A redirect is only
    /// followed to the same origin, over a secure URL, without loops, and at most
    /// [`MAX_REDIRECTS`] times: metadata a server did not publish on its own origin is not its
    /// metadata.
    fn classify(
        &mut self,
        response: http::Response<Bytes>,
        report: &mut DiscoveryReport,
    ) -> Result<Fetched, Error> {
        let status = response.status();
        let url = self.current.to_string();
        if status.is_success() {
            return Ok(Fetched::Document(response.into_body()));
        }
        if status.is_redirection() {
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| self.current.join(l).ok());
            let Some(target) = location else {
                report.push(
                    self.purpose,
                    &url,
                    Some(status.as_u16()),
                    "redirect without a usable Location",
                );
                return Ok(Fetched::NotHere);
            };
            let refuse = |why: &str| {
                Error::new(
                    ErrorKind::RedirectLimit,
                    format!("{url} redirected to {target}: {why}"),
                )
                .with_status(status)
            };
            if target.origin() != self.current.origin() {
                report.push(
                    self.purpose,
                    &url,
                    Some(status.as_u16()),
                    "cross-origin redirect, not followed",
                );
                return Ok(Fetched::NotHere);
            }
            check_secure_url(&target, "redirect target")?;
            self.visited.push(self.current.clone());
            if self.visited.contains(&target) {
                report.push(self.purpose, &url, Some(status.as_u16()), "redirect loop");
                return Err(refuse("redirect loop"));
            }
            self.hops += 1;
            if self.hops > MAX_REDIRECTS {
                report.push(
                    self.purpose,
                    &url,
                    Some(status.as_u16()),
                    "too many redirects",
                );
                return Err(refuse("too many redirects"));
            }
            report.push(
                self.purpose,
                &url,
                Some(status.as_u16()),
                format!("redirect to {target}"),
            );
            self.current = target.clone();
            return Ok(Fetched::Redirect);
        }
        if status.is_client_error() && status != http::StatusCode::TOO_MANY_REQUESTS {
            report.push(
                self.purpose,
                &url,
                Some(status.as_u16()),
                "not found here, trying the next location",
            );
            return Ok(Fetched::NotHere);
        }
        report.push(
            self.purpose,
            &url,
            Some(status.as_u16()),
            "server error, stopping",
        );
        Err(Error::new(
            ErrorKind::UnexpectedStatus,
            format!("{url} answered {status}; try again later"),
        )
        .with_status(status))
    }
}

struct Resource {
    common: Common,
    /// The `resource` parameter, exactly as the metadata published it (RFC 8707 §2).
    resource: Option<String>,
    prm_scopes: Option<Vec<String>>,
    /// Where the tokens may be sent.
    protected_resource: Url,
}

struct ExpectResourceMetadata {
    common: Common,
    probe: Probe,
}

struct ExpectAuthServerMetadata {
    res: Resource,
    /// The issuer the metadata is fetched for; `None` on the 2025-03-26 path, where the
    /// document's issuer is taken as served.
    expected_issuer: Option<String>,
    probe: Probe,
    last_error: Option<Error>,
}

struct Authorizing {
    res: Resource,
    meta: AuthorizationServerMetadata,
    scopes: Option<Scopes>,
}

struct ExpectAuthorizationResponse {
    auth: Authorizing,
    client: ClientCredentials,
}

enum State {
    ExpectResourceMetadata(Box<ExpectResourceMetadata>),
    ExpectAuthServerMetadata(Box<ExpectAuthServerMetadata>),
    ExpectStoredClient(Box<Authorizing>),
    ExpectRegistration(Box<Authorizing>),
    ExpectAuthorizationResponse(Box<ExpectAuthorizationResponse>),
    ExpectToken(Box<ExpectAuthorizationResponse>),
    Finished,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            Self::ExpectResourceMetadata(_) => "ExpectResourceMetadata",
            Self::ExpectAuthServerMetadata(_) => "ExpectAuthServerMetadata",
            Self::ExpectStoredClient(_) => "ExpectStoredClient",
            Self::ExpectRegistration(_) => "ExpectRegistration",
            Self::ExpectAuthorizationResponse(_) => "ExpectAuthorizationResponse",
            Self::ExpectToken(_) => "ExpectToken",
            Self::Finished => "Finished",
        }
    }
}

impl Flow {
    /// Starts a flow. The first action is the first discovery request.
    pub fn new(config: Arc<ClientConfig>, start: FlowStart, secrets: FlowSecrets) -> Self {
        let mut flow = Self {
            config,
            state: State::Finished,
            out: VecDeque::new(),
            report: DiscoveryReport::default(),
        };
        let challenge_url = start
            .challenge
            .as_ref()
            .and_then(Challenge::resource_metadata)
            .map(|raw| parse_secure_url(raw, "resource_metadata"));
        let challenge_url = match challenge_url.transpose() {
            Ok(u) => u,
            Err(e) => {
                flow.fail(e);
                return flow;
            }
        };
        let common = Common {
            challenge_scope: start
                .challenge
                .as_ref()
                .and_then(Challenge::scope)
                .map(str::to_owned),
            held_scopes: start.held_scopes,
            secrets,
            server_url: start.server_url,
        };
        let candidates =
            protected_resource_metadata_urls(&common.server_url, challenge_url.as_ref());
        let probe = Probe::new(Purpose::ResourceMetadata, candidates)
            .expect("there is always a well-known candidate");
        flow.out.push_back(Action::Send(probe.request()));
        flow.state =
            State::ExpectResourceMetadata(Box::new(ExpectResourceMetadata { common, probe }));
        flow
    }

    /// The next thing the driver must do, or `None` while the flow waits for an input.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.out.pop_front()
    }

    /// Every URL tried so far.
    pub fn report(&self) -> &DiscoveryReport {
        &self.report
    }

    /// Whether the flow has produced its last action.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished)
    }

    /// Ends the flow with `error`, e.g. when the driver could not send a sub-request.
    pub fn fail(&mut self, error: Error) {
        self.state = State::Finished;
        let error = if error.report().is_none() {
            error.with_report(std::mem::take(&mut self.report))
        } else {
            error
        };
        self.out.push_back(Action::Failed(error));
    }

    /// Feeds the response to the last [`Action::Send`]. `now` makes token expiry absolute.
    pub fn handle_response(&mut self, response: http::Response<Bytes>, now: SystemTime) {
        let state = std::mem::replace(&mut self.state, State::Finished);
        let next = match state {
            State::ExpectResourceMetadata(s) => self.on_resource_metadata(*s, response),
            State::ExpectAuthServerMetadata(s) => self.on_auth_server_metadata(*s, response),
            State::ExpectRegistration(s) => self.on_registration(*s, response),
            State::ExpectToken(s) => self.on_token(*s, response, now),
            other => Err(unexpected(&other, "an HTTP response")),
        };
        self.settle(next);
    }

    /// Feeds the stored registration for the issuer named by [`Action::LoadClient`].
    pub fn handle_stored_client(&mut self, stored: Option<ClientRegistration>) {
        let state = std::mem::replace(&mut self.state, State::Finished);
        let next = match state {
            State::ExpectStoredClient(auth) => self.on_stored_client(*auth, stored),
            other => Err(unexpected(&other, "a stored client")),
        };
        self.settle(next);
    }

    /// Feeds the parameters that came back on the redirect URI.
    pub fn handle_authorization_response(&mut self, response: AuthorizationResponse) {
        let state = std::mem::replace(&mut self.state, State::Finished);
        let next = match state {
            State::ExpectAuthorizationResponse(s) => self.on_authorization_response(*s, response),
            other => Err(unexpected(&other, "an authorization response")),
        };
        self.settle(next);
    }

    fn settle(&mut self, next: Result<State, Error>) {
        match next {
            Ok(state) => self.state = state,
            Err(e) => self.fail(e),
        }
    }

    fn send(&mut self, sub: SubRequest) {
        self.out.push_back(Action::Send(sub));
    }

    fn on_resource_metadata(
        &mut self,
        mut s: ExpectResourceMetadata,
        response: http::Response<Bytes>,
    ) -> Result<State, Error> {
        let url = s.probe.current.to_string();
        let status = response.status().as_u16();
        match s.probe.classify(response, &mut self.report)? {
            Fetched::Redirect => {
                self.send(s.probe.request());
                Ok(State::ExpectResourceMetadata(Box::new(s)))
            }
            Fetched::NotHere => {
                if s.probe.advance() {
                    self.send(s.probe.request());
                    Ok(State::ExpectResourceMetadata(Box::new(s)))
                } else {
                    // No metadata anywhere: a 2025-03-26 server.
                    self.start_legacy(s.common)
                }
            }
            Fetched::Document(body) => {
                // A document that is there but wrong stops the flow: falling through to other
                // candidates, or to the legacy path, could authorize against the wrong server.
                let prm = ProtectedResourceMetadata::from_json(&body).inspect_err(|e| {
                    self.report
                        .push(Purpose::ResourceMetadata, &url, Some(status), e.to_string());
                })?;
                let protected =
                    check_resource(&prm.resource, &s.common.server_url).inspect_err(|e| {
                        self.report.push(
                            Purpose::ResourceMetadata,
                            &url,
                            Some(status),
                            e.to_string(),
                        );
                    })?;
                let issuer = prm.authorization_servers[0].clone();
                let issuer_url = parse_secure_url(&issuer, "authorization server")?;
                self.report.push(
                    Purpose::ResourceMetadata,
                    &url,
                    Some(status),
                    format!(
                        "used: resource {}, authorization server {issuer}",
                        prm.resource
                    ),
                );
                let res = Resource {
                    common: s.common,
                    resource: Some(prm.resource),
                    prm_scopes: prm.scopes_supported,
                    protected_resource: protected,
                };
                let probe = Probe::new(
                    Purpose::AuthorizationServerMetadata,
                    authorization_server_metadata_urls(&issuer_url),
                )
                .expect("there are always candidates");
                self.send(probe.request());
                Ok(State::ExpectAuthServerMetadata(Box::new(
                    ExpectAuthServerMetadata {
                        res,
                        expected_issuer: Some(issuer),
                        probe,
                        last_error: None,
                    },
                )))
            }
        }
    }

    /// MCP 2025-03-26: the authorization server is at the server's origin.
    fn start_legacy(&mut self, common: Common) -> Result<State, Error> {
        let origin = origin_of(&common.server_url);
        let res = Resource {
            common,
            resource: None,
            prm_scopes: None,
            protected_resource: origin.clone(),
        };
        let probe = Probe::new(
            Purpose::AuthorizationServerMetadata,
            authorization_server_metadata_urls(&origin),
        )
        .expect("there are always candidates");
        self.send(probe.request());
        Ok(State::ExpectAuthServerMetadata(Box::new(
            ExpectAuthServerMetadata {
                res,
                expected_issuer: None,
                probe,
                last_error: None,
            },
        )))
    }

    fn on_auth_server_metadata(
        &mut self,
        mut s: ExpectAuthServerMetadata,
        response: http::Response<Bytes>,
    ) -> Result<State, Error> {
        let url = s.probe.current.to_string();
        let status = response.status().as_u16();
        let fetched = s.probe.classify(response, &mut self.report)?;
        let meta = match fetched {
            Fetched::Redirect => {
                self.send(s.probe.request());
                return Ok(State::ExpectAuthServerMetadata(Box::new(s)));
            }
            Fetched::NotHere => None,
            Fetched::Document(body) => match AuthorizationServerMetadata::from_json(&body) {
                Ok(meta) => Some(meta),
                Err(e) => {
                    // Not a metadata document at all (an HTML page, say): keep looking, and
                    // report this if nothing better turns up.
                    self.report.push(
                        Purpose::AuthorizationServerMetadata,
                        &url,
                        Some(status),
                        e.to_string(),
                    );
                    s.last_error = Some(e);
                    None
                }
            },
        };
        let Some(mut meta) = meta else {
            if s.probe.advance() {
                self.send(s.probe.request());
                return Ok(State::ExpectAuthServerMetadata(Box::new(s)));
            }
            if s.expected_issuer.is_some() {
                return Err(s.last_error.unwrap_or_else(|| {
                    Error::new(
                        ErrorKind::AuthorizationServerMetadataNotFound,
                        format!("no authorization server metadata at any of the well-known locations for {url}"),
                    )
                }));
            }
            // 2025-03-26 with no metadata: the default endpoints at the origin.
            let server = &s.res.common.server_url;
            let (authorize, token, register) = legacy_endpoints(server);
            self.report.push(
                Purpose::AuthorizationServerMetadata,
                authorize.as_str(),
                None,
                "no metadata: using the 2025-03-26 default endpoints",
            );
            let meta = AuthorizationServerMetadata::legacy_defaults(
                legacy_issuer(server),
                &authorize,
                &token,
                &register,
            );
            return self.authorize_with(s.res, meta);
        };
        let validated = match &s.expected_issuer {
            Some(expected) => meta.validate(Some(expected)),
            None => {
                // 2025-03-26 metadata at the origin: its issuer is accepted as served (the
                // issuer was never derived from anything the client could check against).
                if meta.issuer.is_empty() {
                    meta.issuer = legacy_issuer(&s.res.common.server_url);
                }
                meta.validate(None)
            }
        };
        if let Err(e) = validated {
            self.report.push(
                Purpose::AuthorizationServerMetadata,
                &url,
                Some(status),
                e.to_string(),
            );
            return Err(e);
        }
        self.report.push(
            Purpose::AuthorizationServerMetadata,
            &url,
            Some(status),
            format!("used: issuer {}", meta.issuer),
        );
        self.authorize_with(s.res, meta)
    }

    /// PKCE check, scope choice, then the client identity.
    fn authorize_with(
        &mut self,
        res: Resource,
        meta: AuthorizationServerMetadata,
    ) -> Result<State, Error> {
        let pkce_ok = match &meta.code_challenge_methods_supported {
            Some(_) => meta.supports_pkce_s256(),
            None => self.config.pkce_policy == PkcePolicy::AssumeWhenAbsent,
        };
        if !pkce_ok {
            return Err(Error::new(
                ErrorKind::PkceNotSupported,
                format!(
                    "authorization server {} does not advertise PKCE S256 in code_challenge_methods_supported; \
                     set PkcePolicy::AssumeWhenAbsent to proceed with servers that omit the field",
                    meta.issuer
                ),
            ));
        }
        let selected = select_scopes(
            res.common.challenge_scope.as_deref(),
            res.prm_scopes.as_deref(),
        )
        .or_else(|| self.config.default_scopes.clone());
        let selected = match (&res.common.held_scopes, selected) {
            (Some(held), Some(asked)) => Some(held.union(&asked)),
            (held, asked) => asked.or_else(|| held.clone()),
        };
        let scopes = with_offline_access(selected, meta.scopes_supported.as_deref());
        let auth = Authorizing { res, meta, scopes };

        let config = Arc::clone(&self.config);
        match choose_client_source(
            &config.pre_registered,
            config.client_metadata_document.as_deref(),
            &auth.meta,
        ) {
            ClientSource::PreRegistered(client) => {
                let method = negotiate_client_auth(
                    client.auth_method.map(ClientAuthMethod::as_str),
                    client.client_secret.is_some(),
                    auth.meta.token_endpoint_auth_methods_supported.as_deref(),
                );
                let creds = ClientCredentials {
                    client_id: client.client_id.clone(),
                    client_secret: client.client_secret.clone(),
                    method,
                };
                self.request_authorization(auth, creds)
            }
            ClientSource::MetadataDocument(url) => {
                let creds = ClientCredentials {
                    client_id: url.to_owned(),
                    client_secret: None,
                    method: ClientAuthMethod::None,
                };
                self.request_authorization(auth, creds)
            }
            ClientSource::StoredOrRegister => {
                self.out.push_back(Action::LoadClient {
                    issuer: auth.meta.issuer.clone(),
                });
                Ok(State::ExpectStoredClient(Box::new(auth)))
            }
        }
    }

    fn on_stored_client(
        &mut self,
        auth: Authorizing,
        stored: Option<ClientRegistration>,
    ) -> Result<State, Error> {
        let usable = stored.filter(|reg| {
            // A registration belongs to the server that issued it (SEP-2352), and must allow our
            // redirect URI.
            reg.issuer == auth.meta.issuer
                && (reg.redirect_uris.is_empty()
                    || reg.redirect_uris.contains(&self.config.redirect_uri))
        });
        if let Some(reg) = usable {
            let creds = self.credentials_for(&reg, &auth.meta);
            return self.request_authorization(auth, creds);
        }
        let Some(endpoint) = auth.meta.registration_endpoint.as_deref() else {
            return Err(Error::new(
                ErrorKind::NoClientIdentity,
                format!(
                    "authorization server {} offers no registration endpoint and no client is pre-registered for it; \
                     register a client with it and configure it as a PreRegisteredClient",
                    auth.meta.issuer
                ),
            ));
        };
        let endpoint = parse_secure_url(endpoint, "registration_endpoint")?;
        let application_type = self
            .config
            .application_type
            .clone()
            .unwrap_or_else(|| application_type_for(&self.config.redirect_uri).to_owned());
        let body = registration_request_body(
            &self.config.client_name,
            &self.config.redirect_uri,
            &application_type,
            registration_auth_method(&auth.meta),
        );
        let request = http::Request::post(endpoint.as_str())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(Bytes::from(body.to_string()))
            .expect("a parsed URL is a valid URI");
        self.send(SubRequest {
            purpose: Purpose::Registration,
            request,
        });
        Ok(State::ExpectRegistration(Box::new(auth)))
    }

    fn on_registration(
        &mut self,
        auth: Authorizing,
        response: http::Response<Bytes>,
    ) -> Result<State, Error> {
        let endpoint = auth.meta.registration_endpoint.clone().unwrap_or_default();
        let status = response.status();
        let reg = parse_registration_response(status, response.body(), &auth.meta.issuer)
            .inspect_err(|e| {
                self.report.push(
                    Purpose::Registration,
                    &endpoint,
                    Some(status.as_u16()),
                    e.to_string(),
                );
            })?;
        self.report.push(
            Purpose::Registration,
            &endpoint,
            Some(status.as_u16()),
            format!("registered client {}", reg.client_id),
        );
        let creds = self.credentials_for(&reg, &auth.meta);
        self.out.push_back(Action::SaveClient(reg));
        self.request_authorization(auth, creds)
    }

    fn credentials_for(
        &self,
        reg: &ClientRegistration,
        meta: &AuthorizationServerMetadata,
    ) -> ClientCredentials {
        ClientCredentials {
            client_id: reg.client_id.clone(),
            client_secret: reg.client_secret.clone(),
            method: negotiate_client_auth(
                reg.token_endpoint_auth_method.as_deref(),
                reg.client_secret.is_some(),
                meta.token_endpoint_auth_methods_supported.as_deref(),
            ),
        }
    }

    fn request_authorization(
        &mut self,
        auth: Authorizing,
        client: ClientCredentials,
    ) -> Result<State, Error> {
        let endpoint = parse_secure_url(
            auth.meta
                .authorization_endpoint
                .as_deref()
                .unwrap_or_default(),
            "authorization_endpoint",
        )?;
        let secrets = &auth.res.common.secrets;
        let request = AuthorizationRequest::new(
            &endpoint,
            &client.client_id,
            &self.config.redirect_uri,
            secrets.pkce.challenge(),
            secrets.state.clone(),
            auth.scopes.as_ref(),
            auth.res.resource.as_deref(),
            &auth.meta.issuer,
        );
        self.out.push_back(Action::Authorize(request));
        Ok(State::ExpectAuthorizationResponse(Box::new(
            ExpectAuthorizationResponse { auth, client },
        )))
    }

    fn on_authorization_response(
        &mut self,
        s: ExpectAuthorizationResponse,
        response: AuthorizationResponse,
    ) -> Result<State, Error> {
        let meta = &s.auth.meta;
        let code = validate_authorization_response(
            response,
            &s.auth.res.common.secrets.state,
            &meta.issuer,
            meta.authorization_response_iss_parameter_supported,
        )?;
        let endpoint = parse_secure_url(
            meta.token_endpoint.as_deref().unwrap_or_default(),
            "token_endpoint",
        )?;
        let request = token_request(
            &endpoint,
            Grant::AuthorizationCode {
                code: &code,
                verifier: s.auth.res.common.secrets.pkce.verifier(),
                redirect_uri: &self.config.redirect_uri,
            },
            &s.client,
            s.auth.res.resource.as_deref(),
        );
        self.send(SubRequest {
            purpose: Purpose::Token,
            request,
        });
        Ok(State::ExpectToken(Box::new(s)))
    }

    fn on_token(
        &mut self,
        s: ExpectAuthorizationResponse,
        response: http::Response<Bytes>,
        now: SystemTime,
    ) -> Result<State, Error> {
        let endpoint = s.auth.meta.token_endpoint.clone().unwrap_or_default();
        let status = response.status();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let parsed =
            parse_token_response(status, content_type, response.body()).inspect_err(|e| {
                self.report.push(
                    Purpose::Token,
                    &endpoint,
                    Some(status.as_u16()),
                    e.to_string(),
                );
            })?;
        self.report.push(
            Purpose::Token,
            &endpoint,
            Some(status.as_u16()),
            "tokens issued",
        );
        let tokens = TokenSet::from_response(
            parsed,
            now,
            &s.auth.meta.issuer,
            &s.client.client_id,
            s.auth.scopes.as_ref(),
            s.auth.res.resource.as_deref(),
        );
        self.out.push_back(Action::Complete(Box::new(FlowOutcome {
            tokens,
            protected_resource: s.auth.res.protected_resource,
            authorization_server: s.auth.meta,
            report: std::mem::take(&mut self.report),
        })));
        Ok(State::Finished)
    }
}

fn unexpected(state: &State, input: &str) -> Error {
    Error::new(
        ErrorKind::InvalidTransition,
        format!("{input} is not expected in state {}", state.name()),
    )
}
