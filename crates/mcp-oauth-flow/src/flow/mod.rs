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

use oauth2::CsrfToken;
use url::Url;

use crate::authorization::{AuthorizationRequest, AuthorizationResponse};
use crate::challenge::Challenge;
use crate::client_auth::ClientCredentials;
use crate::config::ClientConfig;
use crate::discovery::protected_resource_metadata_urls;
use crate::error::{Error, ErrorKind};
use crate::metadata::AuthorizationServerMetadata;
use crate::pkce::Pkce;
use crate::registration::ClientRegistration;
use crate::report::{DiscoveryReport, Purpose};
use crate::scope::Scopes;
use crate::token::TokenSet;
use crate::url_policy::parse_secure_url;

mod authorize;
mod discover;
mod probe;
mod refresh;

use probe::Probe;
use refresh::{ExpectRefreshToken, Refreshing};

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

/// What set the flow off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Trigger {
    /// A `401`: the held token (if any) is refreshed once the protected resource metadata
    /// confirms the same authorization server (a resource that moved to another server is
    /// authorized there instead, SEP-2352); without one, or if the refresh is refused, a full
    /// authorization follows.
    #[default]
    Unauthorized,
    /// A `403` with `insufficient_scope`: a refresh cannot widen a grant (RFC 6749 §6), so a new
    /// authorization asks for the held scopes plus the challenged ones (SEP-2350).
    InsufficientScope,
    /// The held token is about to expire: refresh it directly, no discovery.
    Expiring,
}

/// Why the flow was started and for which server.
#[derive(Clone, Debug)]
pub struct FlowStart {
    /// The URL of the MCP server that answered 401 or 403 (see
    /// [`server_url_from_uri`](crate::server_url_from_uri)).
    pub server_url: Url,
    /// The challenge that answer carried, if any.
    pub challenge: Option<Challenge>,
    /// What set the flow off.
    pub trigger: Trigger,
    /// The tokens held for the server, if any.
    pub held: Option<TokenSet>,
    /// The URL prefix the held tokens apply to (where refreshed tokens go back).
    pub protected_resource: Option<Url>,
}

impl FlowStart {
    /// A flow for `server_url` after a `401`, with no challenge and no tokens held.
    pub fn new(server_url: Url) -> Self {
        Self {
            server_url,
            challenge: None,
            trigger: Trigger::Unauthorized,
            held: None,
            protected_resource: None,
        }
    }

    /// Sets the challenge.
    pub fn challenge(mut self, challenge: Option<Challenge>) -> Self {
        self.challenge = challenge;
        self
    }

    /// Sets the trigger.
    pub fn trigger(mut self, trigger: Trigger) -> Self {
        self.trigger = trigger;
        self
    }

    /// Sets the tokens held and the URL prefix they apply to.
    pub fn held(mut self, tokens: Option<TokenSet>, protected_resource: Option<Url>) -> Self {
        self.held = tokens;
        self.protected_resource = protected_resource;
        self
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
    /// The authorization server metadata used (`None` after a refresh, which needs none).
    pub authorization_server: Option<AuthorizationServerMetadata>,
    /// Whether the tokens come from a refresh rather than a new authorization.
    pub refreshed: bool,
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
    /// The held tokens were refused for good (`invalid_grant`, RFC 6749 §5.2): forget them.
    /// No input is expected back; the flow goes on to a new authorization.
    DropTokens,
    /// The authorization server no longer knows the dynamically registered client of `issuer`
    /// (`invalid_client`): forget the registration so the flow can register again.
    /// Pre-registered clients are never dropped.
    DropClient {
        /// The issuer the registration belongs to.
        issuer: String,
    },
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
    /// The challenge's `resource_metadata`, already checked to be a secure URL.
    challenge_metadata: Option<Url>,
    trigger: Trigger,
    /// The held tokens, until a refresh takes them.
    held: Option<TokenSet>,
    /// Scopes to keep in a step-up (SEP-2350).
    held_scopes: Option<Scopes>,
    protected_resource: Option<Url>,
    secrets: FlowSecrets,
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
    /// The issuer client credentials are bound to: the metadata's issuer when it was checked
    /// against where it came from (RFC 8414 §3.3), else the server's origin (see
    /// `authorize_with`).
    client_issuer: String,
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
    ExpectRefreshClient(Box<Refreshing>),
    ExpectRefreshToken(Box<ExpectRefreshToken>),
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
            Self::ExpectRefreshClient(_) => "ExpectRefreshClient",
            Self::ExpectRefreshToken(_) => "ExpectRefreshToken",
            Self::Finished => "Finished",
        }
    }
}

impl Flow {
    /// Starts a flow. The first action is the first discovery request, or, for
    /// [`Trigger::Expiring`], the refresh request.
    pub fn new(config: Arc<ClientConfig>, start: FlowStart, secrets: FlowSecrets) -> Self {
        let mut flow = Self {
            config,
            state: State::Finished,
            out: VecDeque::new(),
            report: DiscoveryReport::default(),
        };
        let challenge_metadata = start
            .challenge
            .as_ref()
            .and_then(Challenge::resource_metadata)
            .map(|raw| parse_secure_url(raw, "resource_metadata"))
            .transpose();
        let challenge_metadata = match challenge_metadata {
            Ok(u) => u,
            Err(e) => {
                flow.fail(e);
                return flow;
            }
        };
        let held_scopes = match start.trigger {
            Trigger::InsufficientScope => start.held.as_ref().and_then(|t| t.scopes().cloned()),
            _ => None,
        };
        let common = Common {
            challenge_scope: start
                .challenge
                .as_ref()
                .and_then(Challenge::scope)
                .map(str::to_owned),
            challenge_metadata,
            trigger: start.trigger,
            held: start.held,
            held_scopes,
            protected_resource: start.protected_resource,
            secrets,
            server_url: start.server_url,
        };
        let next = if common.trigger == Trigger::Expiring && refreshable(common.held.as_ref()) {
            flow.start_refresh(common, refresh::After::Discover)
        } else {
            flow.begin_discovery(common)
        };
        flow.settle(next);
        flow
    }

    /// Starts protected resource metadata discovery.
    fn begin_discovery(&mut self, common: Common) -> Result<State, Error> {
        let candidates = protected_resource_metadata_urls(
            &common.server_url,
            common.challenge_metadata.as_ref(),
        );
        let probe = Probe::new(Purpose::ResourceMetadata, candidates)
            .expect("there is always a well-known candidate");
        self.send(probe.request()?);
        Ok(State::ExpectResourceMetadata(Box::new(
            ExpectResourceMetadata { common, probe },
        )))
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
            State::ExpectAuthServerMetadata(s) => self.on_auth_server_metadata(*s, response, now),
            State::ExpectRegistration(s) => self.on_registration(*s, response),
            State::ExpectToken(s) => self.on_token(*s, response, now),
            State::ExpectRefreshToken(s) => self.on_refresh_token(*s, response, now),
            other => Err(unexpected(&other, "an HTTP response")),
        };
        self.settle(next);
    }

    /// Feeds the stored registration for the issuer named by [`Action::LoadClient`].
    pub fn handle_stored_client(&mut self, stored: Option<ClientRegistration>) {
        let state = std::mem::replace(&mut self.state, State::Finished);
        let next = match state {
            State::ExpectStoredClient(auth) => self.on_stored_client(*auth, stored),
            State::ExpectRefreshClient(r) => self.on_refresh_client(*r, stored),
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
}

/// Whether `held` can be refreshed without discovery: a refresh token and a token endpoint.
fn refreshable(held: Option<&TokenSet>) -> bool {
    held.is_some_and(|t| t.refresh_token().is_some() && t.token_endpoint().is_some())
}

fn unexpected(state: &State, input: &str) -> Error {
    Error::new(
        ErrorKind::InvalidTransition,
        format!("{input} is not expected in state {}", state.name()),
    )
}
