//! [`LayerState`]: everything one [`OAuthLayer`](crate::OAuthLayer) shares with the services it
//! makes, written once.
//!
//! The layer owns an `Arc<LayerState>`; `layer()` clones the `Arc` into each service, like
//! tower's `GlobalConcurrencyLimitLayer` shares its semaphore and hyper-util's client its pool.
//! Every module that runs a request or a flow reads its settings and shared parts from here, and
//! this module imports none of them: the arrows of the crate point down to it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mcp_oauth_flow::{
    token::{RefreshPolicy, TokenSet},
    ClientConfig,
};

use crate::assertion::AssertionSource;
use crate::authorize::Authorizer;
use crate::cache::Cache;
use crate::clock::Clock;
use crate::dpop::DpopState;
use crate::flight::Flights;
use crate::servers::McpServers;
use crate::store::{MemoryStore, TokenStore};
use crate::timer::Timer;

/// Default cap on the request body kept for the retry after a `401`.
pub const DEFAULT_MAX_REPLAY_BYTES: usize = 64 * 1024;
/// Default cap on the body of every metadata, registration and token response.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// Default time for one sub-request, its whole response body included: 30 s.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time for the non-interactive part of one flow (everything but consent): 2 min.
pub const DEFAULT_FLOW_DEADLINE: Duration = Duration::from_secs(120);
/// Default bound on one consent wait, a backstop behind the authorizer's own timeout (the
/// loopback receiver's 5 minutes ends it first): 10 min.
pub const DEFAULT_CONSENT_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs a future to completion in the background (`tokio::spawn`, say).
pub(crate) type Spawn = Arc<dyn Fn(crate::BoxFuture<'static, ()>) + Send + Sync>;

/// Bounds on how often the layer authorizes, from the layer's configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// How long callers of an origin get a failed flow's error without a new flow.
    pub(crate) failure_backoff: Duration,
    /// Authorizations for the same missing scopes before a `403` is handed back.
    pub(crate) step_up_attempts: u32,
    /// Interactive authorizations allowed per MCP server within `budget_window`.
    pub(crate) authorization_budget: u32,
    pub(crate) budget_window: Duration,
    /// One sub-request, its body included.
    pub(crate) request_timeout: Duration,
    /// The non-interactive part of one flow.
    pub(crate) flow_deadline: Duration,
    /// One consent wait.
    pub(crate) consent_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            failure_backoff: Duration::from_secs(1),
            step_up_attempts: 3,
            authorization_budget: 10,
            budget_window: Duration::from_secs(600),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            flow_deadline: DEFAULT_FLOW_DEADLINE,
            consent_timeout: DEFAULT_CONSENT_TIMEOUT,
        }
    }
}

/// State shared by one layer, its clones and every service made from them.
///
/// `Clone` only so the layer's builder methods can change a setting of a layer that was already
/// cloned (`Arc::make_mut`): the cache and the flights stay behind their own `Arc`s, so a layer
/// configured after a clone still shares its tokens and flows with the original.
#[derive(Clone)]
pub(crate) struct LayerState {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) authorizer: Arc<dyn Authorizer>,
    pub(crate) store: Arc<dyn TokenStore>,
    pub(crate) cache: Arc<Cache>,
    pub(crate) flights: Arc<Flights>,
    pub(crate) clock: Clock,
    pub(crate) refresh_policy: RefreshPolicy,
    pub(crate) limits: Limits,
    pub(crate) max_replay_bytes: usize,
    pub(crate) max_response_bytes: usize,
    pub(crate) spawn: Option<Spawn>,
    /// The application's assertions, for the assertion grants (see `assertion.rs`).
    pub(crate) assertions: Option<Arc<dyn AssertionSource>>,
    /// Shows the device grant's user code; `None`: [`StderrPrompt`](crate::StderrPrompt).
    pub(crate) device_prompt: Option<Arc<dyn crate::device::DeviceCodePrompt>>,
    /// What the time limits sleep on; `None`: they are not enforced.
    pub(crate) timer: Option<Arc<dyn Timer>>,
    /// The MCP servers the layer acts for; `None`: every request.
    pub(crate) servers: Option<McpServers>,
    /// DPoP settings, key and nonces (RFC 9449).
    pub(crate) dpop: Arc<DpopState>,
    /// Looks up host names for the address policy (see `resolve.rs`); `None`: not done.
    pub(crate) resolver: Option<Arc<dyn crate::resolve::Resolver>>,
    /// The layer's users connect in the browser, never through it (a web app's user's layer,
    /// whose authorizer refuses every prompt): its refusals to prompt are their unconnected
    /// state, not a failure for the store's status records (see `outcomes::record`).
    pub(crate) users_connect_in_browser: bool,
}

impl LayerState {
    /// The defaults of [`OAuthLayer::new`](crate::OAuthLayer::new).
    pub(crate) fn new(config: ClientConfig, authorizer: Arc<dyn Authorizer>) -> Self {
        Self {
            config: Arc::new(config),
            authorizer,
            store: Arc::new(MemoryStore::new()),
            cache: Arc::new(Cache::default()),
            flights: Arc::new(Flights::default()),
            clock: Clock::system(),
            refresh_policy: RefreshPolicy::default(),
            limits: Limits::default(),
            max_replay_bytes: DEFAULT_MAX_REPLAY_BYTES,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            spawn: None,
            assertions: None,
            device_prompt: None,
            timer: crate::timer::default_timer(),
            servers: None,
            dpop: Arc::new(DpopState::default()),
            resolver: None,
            users_connect_in_browser: false,
        }
    }

    /// A stretch of the flow deadline on the layer's timer, nothing spent yet: one for a
    /// flight's store steps and flow, and one for the writes after it (see
    /// [`Deadline`](crate::timer::Deadline)).
    pub(crate) fn deadline(&self) -> crate::timer::Deadline<'_> {
        crate::timer::Deadline::new(self.timer.as_deref(), self.limits.flow_deadline)
    }

    /// The current time, from the configured clock.
    pub(crate) fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// When to refresh `tokens`, with a random jitter sample so a fleet spreads out.
    pub(crate) fn refresh_at(&self, tokens: &TokenSet) -> Option<SystemTime> {
        let mut bytes = [0u8; 4];
        let sample = match getrandom::getrandom(&mut bytes) {
            Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
            Err(_) => 0.0,
        };
        self.refresh_policy.refresh_at(tokens, sample)
    }

    /// Whether `tokens` are due for refresh at `now` (the earliest point, before jitter).
    pub(crate) fn refresh_due(&self, tokens: &TokenSet, now: SystemTime) -> bool {
        self.refresh_policy
            .refresh_at(tokens, 0.0)
            .is_some_and(|at| at <= now)
    }
}
