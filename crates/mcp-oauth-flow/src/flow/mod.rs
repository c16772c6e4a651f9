//! The authorization flow as a sans-IO state machine.
//!
//! The whole machine (discovery, client identity, authorization, client credentials, refresh,
//! dropping tokens or a client, finished, failed) is drawn once, with its "state × input → next
//! state / actions" table, in `state.rs`; the rules its transitions apply are the pure
//! functions of `rules.rs`, each citing its RFC or SEP and tested on its own. The transitions
//! live with their phase: `discover.rs`, `authorize.rs`, `refresh.rs`.
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

use url::Url;

use crate::authorization_endpoint::{AuthorizationRequest, AuthorizationResponse};
use crate::challenge::Challenge;
use crate::config::ClientConfig;
use crate::error::{Error, ErrorKind};
use crate::metadata::AuthorizationServerMetadata;
use crate::registration::ClientRegistration;
use crate::report::{DiscoveryReport, Purpose};
use crate::token_set::TokenSet;
use crate::url_policy::parse_secure_url;
use crate::well_known::protected_resource_metadata_urls;

mod assertion;
mod authorize;
mod choose;
mod device;
mod discover;
mod dpop;
mod pending;
mod police;
mod probe;
mod refresh;
mod secrets;
// Shared with revocation, which picks the client the same way a refresh does.
pub(crate) mod held_rules;
mod rules;
mod state;

pub use pending::{PendingAuthorization, PENDING_AUTHORIZATION_VERSION};
use probe::Probe;
pub use secrets::FlowSecrets;
use state::{After, Context, ExpectResourceMetadata, Held, State};

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
    /// [`server_url_from_uri`](crate::discovery::server_url_from_uri)).
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
///
/// `Debug` shows the purpose, the method, the URL without its query and the body's length:
/// the body of a token request holds the code and its verifier, a refresh token, a client
/// secret or assertion, and its headers the client's credentials.
///
/// ```
/// use bytes::Bytes;
/// use mcp_oauth_flow::{discovery::Purpose, SubRequest};
/// let request = http::Request::post("https://as.example.com/token?x=1")
///     .header("authorization", "Basic Y2xpZW50OnNlY3JldA==")
///     .body(Bytes::from_static(b"grant_type=refresh_token&refresh_token=rt-secret"))
///     .unwrap();
/// let shown = format!("{:?}", SubRequest { purpose: Purpose::Token, request });
/// assert!(shown.contains("https://as.example.com/token") && shown.contains("POST"));
/// assert!(!shown.contains("rt-secret") && !shown.contains("Y2xp") && !shown.contains("x=1"));
/// ```
pub struct SubRequest {
    /// Why the request is made.
    pub purpose: Purpose,
    /// The request. Its body is complete; the URI is absolute.
    pub request: http::Request<Bytes>,
}

impl std::fmt::Debug for SubRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let uri = self.request.uri();
        let url = format!(
            "{}://{}{}",
            uri.scheme_str().unwrap_or(""),
            uri.host().unwrap_or(""),
            uri.port().map(|p| format!(":{p}")).unwrap_or_default()
        ) + uri.path();
        f.debug_struct("SubRequest")
            .field("purpose", &self.purpose)
            .field("method", self.request.method())
            .field("url", &url)
            .field("body_bytes", &self.request.body().len())
            .finish_non_exhaustive()
    }
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
    /// The client registration made in this flow, when it is stored only with the tokens it
    /// got rather than as [`Action::SaveClient`] when it was made: it would replace one that
    /// another application sharing the store still uses (same issuer, its secret alive,
    /// another redirect URI), and a login that fails, is abandoned, or whose tokens are not
    /// kept (a logout overtook it) must leave that one as it was. A driver that keeps the
    /// tokens stores it too, after them; without it, tokens of a confidential client cannot
    /// be refreshed.
    pub registration: Option<ClientRegistration>,
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
    /// (`invalid_client`): forget the registration so the flow can register again, but only
    /// if the one stored is still `client_id`: another user or process sharing the store may
    /// already have registered anew, and that registration is not the refused one.
    /// Pre-registered clients are never dropped.
    DropClient {
        /// The issuer the registration belongs to.
        issuer: String,
        /// The client the authorization server refused.
        client_id: String,
    },
    /// Get the assertion the configured [`AssertionGrant`](crate::grants::AssertionGrant) needs
    /// from the application (read the platform's token file afresh, call its closure) and feed
    /// it to [`Flow::handle_assertion`].
    ObtainAssertion(crate::assertion_grant::AssertionRequest),
    /// Show the user where to approve this device and the code to enter there (RFC 8628 §3.3);
    /// no input is expected back. A [`PollAfter`](Action::PollAfter) follows.
    ShowUserCode(crate::device::UserCode),
    /// Wait this long (the device grant's polling interval, RFC 8628 §3.5), then call
    /// [`Flow::handle_poll_due`]. The flow owns no timer: the driver sleeps.
    PollAfter(std::time::Duration),
    /// Get the user's consent and feed the response to [`Flow::handle_authorization_response`].
    Authorize(AuthorizationRequest),
    /// The flow succeeded. A driver that keeps the tokens stores them, and then
    /// [`FlowOutcome::registration`] if there is one (without it, a confidential client's
    /// tokens cannot be refreshed); one that discards them discards it too.
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
/// let secrets = FlowSecrets::from_entropy([0; 32], [1; 32]);
/// let mut flow = Flow::new(config, start, secrets, std::time::SystemTime::now());
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
    /// The time of the latest input that carried one: what
    /// [`Flow::handle_authorization_response`] dates a client assertion with.
    last_now: SystemTime,
    /// The MCP server the flow authorizes for, which the address policy judges URLs against.
    server: Url,
    /// Whether a refresh refused with `invalid_scope` was already sent again without `scope`
    /// ([`RefreshScope::RetryWithout`](crate::server::RefreshScope::RetryWithout)): once per
    /// flow at most.
    refresh_scope_retried: bool,
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow")
            .field("state", &self.state.name())
            .finish_non_exhaustive()
    }
}

impl Flow {
    /// Starts a flow at `now`. The first action is the first discovery request, or, for
    /// [`Trigger::Expiring`], the refresh request (whose client assertion, if the client signs
    /// one, is dated `now`).
    pub fn new(
        config: Arc<ClientConfig>,
        start: FlowStart,
        secrets: FlowSecrets,
        now: SystemTime,
    ) -> Self {
        let mut flow = Self {
            config,
            state: State::Finished,
            out: VecDeque::new(),
            report: DiscoveryReport::default(),
            last_now: now,
            server: start.server_url.clone(),
            refresh_scope_retried: false,
        };
        if let Some(error) = rules::unbound_credential(&flow.config.pre_registered) {
            flow.fail(error);
            return flow;
        }
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
        let ctx = Context {
            challenge_scope: start
                .challenge
                .as_ref()
                .and_then(Challenge::scope)
                .map(str::to_owned),
            challenge_metadata,
            trigger: start.trigger,
            held_scopes,
            secrets,
            server_url: start.server_url,
        };
        let held = start.held.map(|tokens| Held {
            tokens,
            protected_resource: start.protected_resource,
        });
        let next = match held {
            Some(held)
                if ctx.trigger == Trigger::Expiring && held_rules::refreshable(&held.tokens) =>
            {
                flow.start_refresh(ctx, held, After::Discover, now)
            }
            held => flow.begin_discovery(ctx, held),
        };
        flow.settle(next);
        flow
    }

    /// Starts protected resource metadata discovery.
    fn begin_discovery(&mut self, ctx: Context, held: Option<Held>) -> Result<State, Error> {
        let candidates =
            protected_resource_metadata_urls(&ctx.server_url, ctx.challenge_metadata.as_ref());
        let probe = Probe::new(Purpose::ResourceMetadata, candidates)
            .expect("there is always a well-known candidate");
        self.send(probe.request()?);
        Ok(State::ExpectResourceMetadata(Box::new(
            ExpectResourceMetadata { ctx, held, probe },
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

    /// Says the last [`Action::Send`] got no response at all (a connection refused or reset, a
    /// timeout, an address the resolver refused). While authorization server metadata is
    /// fetched and the resource lists another server, that one is tried next (RFC 9728 §7.6);
    /// anywhere else the flow ends with `error`, as [`fail`](Self::fail) does.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::SystemTime;
    /// use mcp_oauth_flow::{Action, ClientConfig, Error, ErrorKind, Flow, FlowSecrets, FlowStart};
    /// let config = Arc::new(ClientConfig::new("http://127.0.0.1:1/callback"));
    /// let start = FlowStart::new("https://mcp.example.com/mcp".parse().unwrap());
    /// let mut flow = Flow::new(config, start, FlowSecrets::from_entropy([0; 32], [1; 32]), SystemTime::now());
    /// let mut next_url = |flow: &mut Flow| match flow.poll_action() {
    ///     Some(Action::Send(sub)) => sub.request.uri().to_string(),
    ///     other => panic!("unexpected {other:?}"),
    /// };
    /// next_url(&mut flow); // the protected resource metadata
    /// let prm = r#"{"resource": "https://mcp.example.com/mcp",
    ///     "authorization_servers": ["https://down.example.com", "https://up.example.com"]}"#;
    /// flow.handle_response(http::Response::new(prm.into()), SystemTime::now());
    /// assert_eq!(next_url(&mut flow), "https://down.example.com/.well-known/oauth-authorization-server");
    /// flow.handle_send_failure(Error::new(ErrorKind::Transport, "connection refused"));
    /// assert_eq!(next_url(&mut flow), "https://up.example.com/.well-known/oauth-authorization-server");
    /// ```
    pub fn handle_send_failure(&mut self, error: Error) {
        let state = std::mem::replace(&mut self.state, State::Finished);
        match state {
            State::ExpectAuthServerMetadata(s) if s.has_another_server() => {
                let next = self.pass_over(*s, error);
                self.settle(next);
            }
            // A poll lost on the network: polled again, less often (RFC 8628 §3.5).
            State::ExpectDeviceToken(s) if error.is_transient() => {
                let next = self.on_lost_device_poll(*s, error);
                self.settle(next);
            }
            other => {
                self.state = other;
                self.fail(error);
            }
        }
    }

    /// Feeds the response to the last [`Action::Send`]. `now` makes token expiry absolute.
    pub fn handle_response(&mut self, response: http::Response<Bytes>, now: SystemTime) {
        self.last_now = now;
        let state = std::mem::replace(&mut self.state, State::Finished);
        let next = match state {
            State::ExpectResourceMetadata(s) => self.on_resource_metadata(*s, response, now),
            State::ExpectAuthServerMetadata(s) => self.on_auth_server_metadata(*s, response, now),
            State::ExpectRegistration(s) => self.on_registration(*s, response),
            State::ExpectToken(s) => self.on_token(*s, response, now),
            State::ExpectRefreshToken(s) => self.on_refresh_token(*s, response, now),
            State::ExpectIdJag(s) => self.on_id_jag(*s, response, now),
            State::ExpectJwtBearerToken(s) => self.on_jwt_bearer_token(*s, response, now),
            State::ExpectDeviceAuthorization(s) => self.on_device_authorization(*s, response, now),
            State::ExpectDeviceToken(s) => self.on_device_token(*s, response, now),
            other => Err(unexpected(&other, "an HTTP response")),
        };
        self.settle(next);
    }

    /// Feeds the stored registration for the issuer named by [`Action::LoadClient`].
    pub fn handle_stored_client(&mut self, stored: Option<ClientRegistration>) {
        let state = std::mem::replace(&mut self.state, State::Finished);
        let next = match state {
            State::ExpectStoredClient(s) => self.on_stored_client(*s, stored),
            State::ExpectRefreshClient(r) => self.on_refresh_client(*r, stored),
            other => Err(unexpected(&other, "a stored client")),
        };
        self.settle(next);
    }

    /// Feeds the parameters that came back on the redirect URI. A `private_key_jwt` client's
    /// assertion is dated the last time the flow was given; a driver that knows the time
    /// (consent may take minutes) uses [`handle_authorization_response_at`](Self::handle_authorization_response_at).
    pub fn handle_authorization_response(&mut self, response: AuthorizationResponse) {
        self.handle_authorization_response_at(response, self.last_now);
    }

    /// Feeds the parameters that came back on the redirect URI at `now`, which dates the
    /// client assertion of a `private_key_jwt` client's code exchange.
    pub fn handle_authorization_response_at(
        &mut self,
        response: AuthorizationResponse,
        now: SystemTime,
    ) {
        self.last_now = now;
        let state = std::mem::replace(&mut self.state, State::Finished);
        let next = match state {
            State::ExpectAuthorizationResponse(s) => {
                self.on_authorization_response(*s, response, now)
            }
            other => Err(unexpected(&other, "an authorization response")),
        };
        self.settle(next);
    }

    /// Feeds the assertion asked for by [`Action::ObtainAssertion`], or why the application
    /// could not give one (best as [`ErrorKind::AssertionUnavailable`]). `now` judges its expiry
    /// and dates the client's own assertion, if it signs one.
    pub fn handle_assertion(&mut self, assertion: Result<String, Error>, now: SystemTime) {
        self.last_now = now;
        let state = std::mem::replace(&mut self.state, State::Finished);
        let next = match state {
            State::ExpectAssertion(s) => self.on_assertion(*s, assertion, now),
            other => Err(unexpected(&other, "an assertion")),
        };
        self.settle(next);
    }

    /// Says the wait asked for by [`Action::PollAfter`] is over at `now`: the flow polls the
    /// token endpoint, unless the device code has expired by then
    /// ([`ErrorKind::DeviceCodeExpired`]).
    pub fn handle_poll_due(&mut self, now: SystemTime) {
        self.last_now = now;
        let state = std::mem::replace(&mut self.state, State::Finished);
        let next = match state {
            State::ExpectPollDue(s) => self.on_poll_due(*s, now),
            other => Err(unexpected(&other, "a poll")),
        };
        self.settle(next);
    }

    fn settle(&mut self, next: Result<State, Error>) {
        match next {
            Ok(state) => self.state = state,
            Err(e) => self.fail(e),
        }
        self.police();
    }

    fn send(&mut self, sub: SubRequest) {
        self.out.push_back(Action::Send(sub));
    }
}

fn unexpected(state: &State, input: &str) -> Error {
    Error::new(
        ErrorKind::InvalidTransition,
        format!("{input} is not expected in state {}", state.name()),
    )
}
