//! Every state of the flow, drawn once, and the data each one holds.
//!
//! The flow is a chain of `Expect*` states, each named after the input it waits for and holding
//! only what is still needed from there on (the PKCE verifier, for instance, is gone once the
//! token request has left). The three *steps* in italics below are not states: they run inside
//! the transition that reaches them and end in a state or in `Finished`.
//!
//! ```text
//!                           Flow::new(start, now)
//!           Expiring, refreshable │ otherwise
//!      ┌──────────────────────────┤
//!      │                          ▼
//!      │             ExpectResourceMetadata ◀─┐ same-origin redirect (≤ 5 hops, no loop),
//!      │               │      │      │        │ or the next candidate (RFC 9728 §3.1)
//!      │               │      │      └────────┘
//!      │ Unauthorized, │      │ document: resource checked (RFC 9728 §3.3), tokens of another
//!      │ same AS,      │      │ AS forgotten (SEP-2352); or none anywhere: the server's origin
//!      │ refreshable   │      │ (MCP 2025-03-26)
//!      │               │      ▼
//!      │               │  ExpectAuthServerMetadata ◀─┐ redirect, or the next candidate
//!      │               │      │    │                 │ (RFC 8414 §3, OpenID Connect Discovery)
//!      │               │      │    └─────────────────┘
//!      │               │      │ issuer checked; none on the 2025-03-26 path: default endpoints;
//!      │               │      │ a server whose metadata fails: the next one listed (RFC 9728 §7.6)
//!      │               │      ▼
//!      │               │  _authorize_ ── assertion grant (RFC 7523): ExpectAssertion ─▶ [ExpectIdJag
//!      │               │      │          (SEP-990, RFC 8693) ─▶] ExpectJwtBearerToken ─▶ Finished
//!      │               │  _authorize_ ── client_credentials only (RFC 6749 §4.4) ──────┐
//!      │               │      │  device grant (RFC 8628): the client as below, then
//!      │               │      │  ExpectDeviceAuthorization ─▶ ExpectPollDue ⇄ ExpectDeviceToken ─▶ Finished
//!      │               │      │ authorization_code: PKCE gate (RFC 7636)               │
//!      │               │      ├── pre-registered client / metadata document ──┐        │
//!      │               │      ▼ LoadClient                                    │        │
//!      │               │  ExpectStoredClient ── usable ──────────────────────┤        │
//!      │               │      │ none: register (RFC 7591)                     │        │
//!      │               │      ▼                                               │        │
//!      │               │  ExpectRegistration ── registered: SaveClient ───────┤        │
//!      │               │       (replacing one in use: in Complete)            ▼        │
//!      │               │                  ExpectAuthorizationResponse (Authorize)      │
//!      │               │                      │ state, RFC 9207 iss checked            │
//!      │               │                      ▼                                        │
//!      │               │                  ExpectToken ◀────────────────────────────────┘
//!      │               │                      │ tokens: Complete (+ registration kept)
//!      │               │                      │ invalid_client, challenged 401: Failed (+ DropClient)
//!      ▼               ▼                      ▼
//!   _refresh_ (RFC 6749 §6)               Finished ◀── Failed: any error, in any state
//!      │ public or pre-registered ───────────────┐
//!      │ else LoadClient                         │
//!      ▼                                         ▼
//!   ExpectRefreshClient ── the tokens' client ─▶ ExpectRefreshToken ── tokens: Complete(refreshed)
//!      │ none                                    │ 5xx, 429, network: Failed, all kept
//!      │                                         │ invalid_grant, unauthorized_client, bare 401: DropTokens
//!      │                                         │ invalid_client: DropTokens (+ DropClient)
//!      ▼                                         ▼
//!   _after refresh_ ─▶ ExpectResourceMetadata if the refresh was proactive,
//!                   ─▶ ExpectAuthServerMetadata if the resource metadata is known
//! ```
//!
//! | State | Input | Next | Actions |
//! |---|---|---|---|
//! | *start* | `Expiring`, held tokens refreshable | *refresh* | |
//! | *start* | otherwise | `ExpectResourceMetadata` | `Send` (first candidate) |
//! | *start* | challenge `resource_metadata` not a secure URL | `Finished` | `Failed` |
//! | `ExpectResourceMetadata` | same-origin redirect | `ExpectResourceMetadata` | `Send` (target) |
//! | `ExpectResourceMetadata` | 4xx, cross-origin redirect; candidates left | `ExpectResourceMetadata` | `Send` (next) |
//! | `ExpectResourceMetadata` | 4xx, no candidate left, one was 408/421/425 | `Finished` | `Failed` (transient) |
//! | `ExpectResourceMetadata` | 4xx, no candidate left, the challenge named `resource_metadata` | `Finished` | `Failed` (`ResourceMetadataNotFound`) |
//! | `ExpectResourceMetadata` | 4xx, no candidate left; `Unauthorized`, tokens of the origin, refreshable | *refresh* (then the 2025-03-26 way) | |
//! | `ExpectResourceMetadata` | 4xx, no candidate left, otherwise | `ExpectAuthServerMetadata` (at the origin) | `Send` |
//! | `ExpectResourceMetadata` | document; `Unauthorized`, tokens of that AS, refreshable | *refresh* | |
//! | `ExpectResourceMetadata` | document, otherwise | `ExpectAuthServerMetadata` | `Send` |
//! | `ExpectResourceMetadata` | bad document, wrong resource, 5xx, 429, loop, > 5 hops | `Finished` | `Failed` |
//! | `ExpectAuthServerMetadata` | redirect, or a miss with candidates left | `ExpectAuthServerMetadata` | `Send` |
//! | `ExpectAuthServerMetadata` | valid metadata, or none on the 2025-03-26 path | *authorize* | |
//! | `ExpectAuthServerMetadata` | on the 2025-03-26 path: a document with RFC 8414 members that does not validate, or only 408/421/425 | `Finished` | `Failed` |
//! | `ExpectAuthServerMetadata` | none, bad or wrong issuer, or no response (`handle_send_failure`); another listed server left | `ExpectAuthServerMetadata` | `Send` (its first candidate) |
//! | `ExpectAuthServerMetadata` | none, issuer from the resource metadata; wrong issuer; no server left | `Finished` | `Failed` (several listed: `NoUsableAuthorizationServer`) |
//! | *authorize* | assertion grant configured, AS lists jwt-bearer | `ExpectAssertion` | `ObtainAssertion` |
//! | *authorize* | assertion grant configured, AS does not list jwt-bearer | `Finished` | `Failed` (`GrantNotSupported`) |
//! | `ExpectAssertion` | workload token, fresh | `ExpectJwtBearerToken` | `Send` (jwt-bearer) |
//! | `ExpectAssertion` | ID token, fresh | `ExpectIdJag` | `Send` (RFC 8693 exchange at the IdP) |
//! | `ExpectAssertion` | expired, empty, or the source failed | `Finished` | `Failed` |
//! | `ExpectIdJag` | an ID-JAG | `ExpectJwtBearerToken` | `Send` (jwt-bearer, client authenticated) |
//! | `ExpectIdJag` | refused, not an ID-JAG | `Finished` | `Failed` |
//! | `ExpectJwtBearerToken` | tokens | `Finished` | `Complete` |
//! | `ExpectJwtBearerToken` | refused | `Finished` | `Failed` (`AssertionRejected`, never retried) |
//! | *authorize* | device grant configured, AS advertises no `device_authorization_endpoint` | `Finished` | `Failed` (`GrantNotSupported`) |
//! | *request authorization* | device grant configured (after the client identity) | `ExpectDeviceAuthorization` | `Send` (RFC 8628 §3.1) |
//! | `ExpectDeviceAuthorization` | device code | `ExpectPollDue` | `ShowUserCode`, `PollAfter` (`interval`) |
//! | `ExpectDeviceAuthorization` | `invalid_client`, or a 401 challenging the client's authentication | `Finished` | `DropClient` if registered, `Failed` |
//! | `ExpectDeviceAuthorization` | error, bad response | `Finished` | `Failed` |
//! | `ExpectPollDue` | poll due, code alive | `ExpectDeviceToken` | `Send` (device_code grant, §3.4) |
//! | `ExpectPollDue` | poll due, code's `expires_in` passed | `Finished` | `Failed` (`DeviceCodeExpired`; `UnexpectedStatus` if the last poll met a 5xx or 429) |
//! | `ExpectDeviceToken` | tokens | `Finished` | as `ExpectToken` |
//! | `ExpectDeviceToken` | `authorization_pending` | `ExpectPollDue` | `PollAfter` (`interval`) |
//! | `ExpectDeviceToken` | `slow_down` | `ExpectPollDue` | `PollAfter` (`interval` + 5 s, kept) |
//! | `ExpectDeviceToken` | `access_denied` / `expired_token` | `Finished` | `Failed` (`AuthorizationDenied` / `DeviceCodeExpired`) |
//! | `ExpectDeviceToken` | a 5xx or 429, whatever its body | `ExpectPollDue` | `PollAfter` (`interval` + 5 s, kept; reported when it begins) |
//! | `ExpectDeviceToken` | no answer (transport error, timeout: `handle_send_failure`) | `ExpectPollDue` | `PollAfter` (`interval` doubled up to 60 s, kept; reported) |
//! | `ExpectDeviceToken` | any other error | `Finished` | `Failed` (as `ExpectToken`) |
//! | *authorize* | client_credentials only, confidential client for this AS | `ExpectToken` | `Send` (token) |
//! | *authorize* | client_credentials only, no such client | `Finished` | `Failed` |
//! | *authorize* | PKCE gate refuses | `Finished` | `Failed` |
//! | *authorize* | pre-registered client, or client metadata document | `ExpectAuthorizationResponse` | `Authorize` |
//! | *authorize* | otherwise | `ExpectStoredClient` | `LoadClient` |
//! | `ExpectStoredClient` | a registration for this AS and redirect URI | `ExpectAuthorizationResponse` | `Authorize` |
//! | `ExpectStoredClient` | none, registration endpoint | `ExpectRegistration` | `Send` (register) |
//! | `ExpectStoredClient` | none, no registration endpoint | `Finished` | `Failed` |
//! | `ExpectRegistration` | registered, the store's registration for the issuer none, expired or another issuer's | `ExpectAuthorizationResponse` | `SaveClient`, `Authorize` |
//! | `ExpectRegistration` | registered, replacing one in use (same issuer, alive, another redirect URI) | `ExpectAuthorizationResponse` | `Authorize` (the registration kept until tokens) |
//! | `ExpectRegistration` | refused | `Finished` | `Failed` |
//! | *resume* (`Flow::resume`, another process) | a `PendingAuthorization` of this version and redirect URI | `ExpectAuthorizationResponse` | |
//! | `ExpectAuthorizationResponse` | code; state and `iss` check out | `ExpectToken` | `Send` (token) |
//! | `ExpectAuthorizationResponse` | error, state or `iss` mismatch | `Finished` | `Failed` |
//! | `ExpectToken` | tokens | `Finished` | `Complete` (with the registration kept until tokens, if any) |
//! | `ExpectToken` | `invalid_client`, or a 401 challenging the client's authentication | `Finished` | `DropClient` if registered, `Failed` |
//! | `ExpectToken` | error | `Finished` | `Failed` |
//! | *refresh* | public or pre-registered client | `ExpectRefreshToken` | `Send` (refresh) |
//! | *refresh* | otherwise | `ExpectRefreshClient` | `LoadClient` |
//! | `ExpectRefreshClient` | the registration the tokens were issued to | `ExpectRefreshToken` | `Send` (refresh) |
//! | `ExpectRefreshClient` | none | *after refresh* | |
//! | `ExpectRefreshToken` | tokens | `Finished` | `Complete` (refreshed) |
//! | `ExpectRefreshToken` | `invalid_scope` under `RefreshScope::RetryWithout`, first time | *refresh* | (the refresh again, without `scope`) |
//! | `ExpectRefreshToken` | grant refused | *after refresh* | `DropTokens` |
//! | `ExpectRefreshToken` | client refused | *after refresh* | `DropTokens`, `DropClient` if registered |
//! | `ExpectRefreshToken` | 5xx, 429, network | `Finished` | `Failed` |
//! | *after refresh* | the refresh was proactive | `ExpectResourceMetadata` | `Send` |
//! | *after refresh* | the resource metadata is known | `ExpectAuthServerMetadata` | `Send` |
//! | any | an input the state does not expect | `Finished` | `Failed` (`InvalidTransition`) |
//! | any | `Flow::fail` | `Finished` | `Failed` |
//!
//! The rules the transitions apply are named in `rules.rs`; the transitions
//! themselves live with their phase (`discover`, `authorize`, `refresh`).

use url::Url;

use super::choose::Candidates;
use super::probe::Probe;
use super::{FlowSecrets, Trigger};
use crate::client_auth::ClientCredentials;
use crate::error::Error;
use crate::metadata::AuthorizationServerMetadata;
use crate::registration::ClientRegistration;
use crate::scope::Scopes;
use crate::server_options::ServerOptions;
use crate::token_set::TokenSet;

/// What the flow was started with and still needs until the client asks for consent.
pub(super) struct Context {
    pub(super) server_url: Url,
    pub(super) challenge_scope: Option<String>,
    /// The challenge's `resource_metadata`, already checked to be a secure URL.
    pub(super) challenge_metadata: Option<Url>,
    pub(super) trigger: Trigger,
    /// Scopes to keep in a step-up (SEP-2350).
    pub(super) held_scopes: Option<Scopes>,
    pub(super) secrets: FlowSecrets,
}

/// The tokens held when the flow started, until a refresh takes them or a rule drops them.
pub(super) struct Held {
    pub(super) tokens: TokenSet,
    /// The URL prefix the tokens apply to (where refreshed tokens go back).
    pub(super) protected_resource: Option<Url>,
}

/// The protected resource, once its metadata (or the lack of any) is known.
pub(super) struct Resource {
    /// The `resource` parameter, exactly as the metadata published it (RFC 8707 §2); `None` on
    /// the 2025-03-26 path.
    pub(super) resource: Option<String>,
    pub(super) prm_scopes: Option<Vec<String>>,
    /// Where the tokens may be sent.
    pub(super) protected_resource: Url,
}

/// The authorization server chosen, and what the client asks of it.
pub(super) struct AuthServer {
    pub(super) meta: AuthorizationServerMetadata,
    /// The issuer client credentials are bound to (see `rules::client_issuer`).
    pub(super) client_issuer: String,
    pub(super) scopes: Option<Scopes>,
    /// The operator's options for this server, if any (see `ServerOptions`).
    pub(super) options: Option<ServerOptions>,
}

/// Waiting for a protected resource metadata candidate (RFC 9728).
pub(super) struct ExpectResourceMetadata {
    pub(super) ctx: Context,
    pub(super) held: Option<Held>,
    pub(super) probe: Probe,
}

/// Waiting for an authorization server metadata candidate (RFC 8414, OIDC Discovery).
pub(super) struct ExpectAuthServerMetadata {
    pub(super) ctx: Context,
    pub(super) resource: Resource,
    /// The issuer the metadata is fetched for; `None` on the 2025-03-26 path, where the
    /// document's issuer is taken as served.
    pub(super) expected_issuer: Option<String>,
    pub(super) probe: Probe,
    /// Why the last candidate was not metadata, reported if none is.
    pub(super) last_error: Option<Error>,
    /// Why a candidate that is metadata by its fields (a JSON object with RFC 8414 members,
    /// rather than an HTML page or an application's `{}`) did not validate: the server's
    /// metadata, broken, which the 2025-03-26 path must not replace with default endpoints.
    pub(super) broken_document: Option<Error>,
    /// The authorization servers still to try if this one's metadata does not validate, and
    /// those passed over so far (RFC 9728 §7.6; empty on the 2025-03-26 path).
    pub(super) servers: Candidates,
}

impl ExpectAuthServerMetadata {
    /// Whether another listed authorization server is left to try if this one fails.
    pub(super) fn has_another_server(&self) -> bool {
        self.expected_issuer.is_some() && !self.servers.order.is_empty()
    }
}

/// Waiting for the stored registration of `AuthServer::client_issuer`.
pub(super) struct ExpectStoredClient {
    pub(super) secrets: FlowSecrets,
    pub(super) resource: Resource,
    pub(super) server: AuthServer,
}

/// Waiting for the answer to a dynamic registration (RFC 7591).
pub(super) struct ExpectRegistration {
    pub(super) secrets: FlowSecrets,
    pub(super) resource: Resource,
    pub(super) server: AuthServer,
    /// Whether the new registration would replace one the store holds and another
    /// application still uses (`rules::replaces_registration_in_use`).
    pub(super) replaces_one_in_use: bool,
}

/// Waiting for the parameters of the redirect back from the authorization endpoint.
pub(super) struct ExpectAuthorizationResponse {
    pub(super) secrets: FlowSecrets,
    pub(super) resource: Resource,
    pub(super) server: AuthServer,
    pub(super) client: ClientCredentials,
    /// A registration made in this flow that would replace one the store holds for another
    /// redirect URI: handed over with the tokens it gets, in `FlowOutcome::registration`,
    /// never stored before (`rules::replaces_registration_in_use`).
    pub(super) unsaved: Option<Box<ClientRegistration>>,
}

/// Waiting for the token endpoint's answer to an authorization-code or client-credentials
/// request. The secrets are spent.
pub(super) struct ExpectToken {
    pub(super) resource: Resource,
    pub(super) server: AuthServer,
    pub(super) client: ClientCredentials,
    /// A registration made in this flow that would replace one the store holds for another
    /// redirect URI: handed over with the tokens it gets, in `FlowOutcome::registration`,
    /// never stored before (`rules::replaces_registration_in_use`).
    pub(super) unsaved: Option<Box<ClientRegistration>>,
}

/// Waiting for the application's assertion (`ObtainAssertion`): a workload identity token or
/// an ID token (see `assertion.rs`).
pub(super) struct ExpectAssertion {
    pub(super) secrets: FlowSecrets,
    pub(super) resource: Resource,
    pub(super) server: AuthServer,
}

/// Waiting for the enterprise IdP's answer to the ID-JAG token exchange (RFC 8693, SEP-990).
pub(super) struct ExpectIdJag {
    pub(super) secrets: FlowSecrets,
    pub(super) resource: Resource,
    pub(super) server: AuthServer,
}

/// Waiting for the device authorization response (RFC 8628 §3.2).
pub(super) struct ExpectDeviceAuthorization {
    pub(super) secrets: FlowSecrets,
    pub(super) resource: Resource,
    pub(super) server: AuthServer,
    pub(super) client: ClientCredentials,
    /// A registration made in this flow that would replace one the store holds for another
    /// redirect URI: handed over with the tokens it gets, in `FlowOutcome::registration`,
    /// never stored before (`rules::replaces_registration_in_use`).
    pub(super) unsaved: Option<Box<ClientRegistration>>,
}

/// A device code being polled for (RFC 8628 §3.4, §3.5): waiting for the driver to say the
/// interval has passed (`ExpectPollDue`), or for the answer to a poll (`ExpectDeviceToken`).
pub(super) struct DevicePoll {
    pub(super) secrets: FlowSecrets,
    pub(super) resource: Resource,
    pub(super) server: AuthServer,
    pub(super) client: ClientCredentials,
    /// A registration made in this flow that would replace one the store holds for another
    /// redirect URI: handed over with the tokens it gets, in `FlowOutcome::registration`,
    /// never stored before (`rules::replaces_registration_in_use`).
    pub(super) unsaved: Option<Box<ClientRegistration>>,
    /// The credential each poll presents; never shown.
    pub(super) device_code: String,
    /// The current interval: the server's, plus 5 s for every `slow_down`.
    pub(super) interval: std::time::Duration,
    /// When the code's `expires_in` runs out.
    pub(super) expires_at: std::time::SystemTime,
    /// The status of the server's own trouble (a 5xx or 429) at the last poll, if it had
    /// some: the polls wait it out, and if the code runs out meanwhile, that is the error.
    pub(super) trouble: Option<http::StatusCode>,
}

/// Where the flow goes when a refresh cannot be made or is refused.
pub(super) enum After {
    /// Start from protected resource metadata discovery (the refresh was proactive).
    Discover,
    /// The protected resource metadata is known; go on to its authorization server.
    AuthServer {
        resource: Resource,
        servers: Candidates,
    },
    /// The server publishes no protected resource metadata: go on the 2025-03-26 way.
    Legacy,
}

/// Waiting for the stored registration the held tokens were issued to.
pub(super) struct ExpectRefreshClient {
    pub(super) ctx: Context,
    pub(super) held: Held,
    pub(super) after: After,
}

/// Waiting for the token endpoint's answer to a refresh (RFC 6749 §6).
pub(super) struct ExpectRefreshToken {
    pub(super) ctx: Context,
    pub(super) held: Held,
    pub(super) after: After,
    /// The client id of the dynamic registration the refresh authenticated with (which
    /// `invalid_client` drops, if the store still holds it); `None` for a pre-registered or
    /// public client.
    pub(super) registered: Option<String>,
}

/// The flow's state: one variant per `Expect*` struct, and `Finished`.
pub(super) enum State {
    ExpectResourceMetadata(Box<ExpectResourceMetadata>),
    ExpectAuthServerMetadata(Box<ExpectAuthServerMetadata>),
    ExpectStoredClient(Box<ExpectStoredClient>),
    ExpectRegistration(Box<ExpectRegistration>),
    ExpectAuthorizationResponse(Box<ExpectAuthorizationResponse>),
    ExpectToken(Box<ExpectToken>),
    ExpectRefreshClient(Box<ExpectRefreshClient>),
    ExpectRefreshToken(Box<ExpectRefreshToken>),
    ExpectAssertion(Box<ExpectAssertion>),
    ExpectIdJag(Box<ExpectIdJag>),
    /// An `ExpectToken` for a jwt-bearer grant, whose refusal is `AssertionRejected`.
    ExpectJwtBearerToken(Box<ExpectToken>),
    ExpectDeviceAuthorization(Box<ExpectDeviceAuthorization>),
    ExpectPollDue(Box<DevicePoll>),
    ExpectDeviceToken(Box<DevicePoll>),
    /// The last action (`Complete` or `Failed`) has been queued; every input is refused.
    Finished,
}

impl State {
    pub(super) fn name(&self) -> &'static str {
        match self {
            Self::ExpectResourceMetadata(_) => "ExpectResourceMetadata",
            Self::ExpectAuthServerMetadata(_) => "ExpectAuthServerMetadata",
            Self::ExpectStoredClient(_) => "ExpectStoredClient",
            Self::ExpectRegistration(_) => "ExpectRegistration",
            Self::ExpectAuthorizationResponse(_) => "ExpectAuthorizationResponse",
            Self::ExpectToken(_) => "ExpectToken",
            Self::ExpectRefreshClient(_) => "ExpectRefreshClient",
            Self::ExpectRefreshToken(_) => "ExpectRefreshToken",
            Self::ExpectAssertion(_) => "ExpectAssertion",
            Self::ExpectIdJag(_) => "ExpectIdJag",
            Self::ExpectJwtBearerToken(_) => "ExpectJwtBearerToken",
            Self::ExpectDeviceAuthorization(_) => "ExpectDeviceAuthorization",
            Self::ExpectPollDue(_) => "ExpectPollDue",
            Self::ExpectDeviceToken(_) => "ExpectDeviceToken",
            Self::Finished => "Finished",
        }
    }
}
