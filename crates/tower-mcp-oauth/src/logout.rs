//! Logout: wipe a server's tokens from the cache and the store, then revoke them at the
//! authorization server (RFC 7009), whatever the revocation's fate.

use mcp_oauth_flow::client::ClientRegistration;
use mcp_oauth_flow::discovery::{authorization_server_metadata_urls, AuthorizationServerMetadata};
use mcp_oauth_flow::revocation::{
    check_revocation_response, no_revocation_endpoint, revocation_client, revocation_order,
    revocation_request, revocation_retry_delay, RevokedToken, TokenToRevoke,
};
use mcp_oauth_flow::token::TokenSet;
use mcp_oauth_flow::url_policy::{parse_secure_url, shown_url};
use mcp_oauth_flow::{Error, ErrorKind};
use tracing::{debug, warn};
use url::Url;

use crate::client::HttpClient;
use crate::driver::random_secrets;
use crate::flight::server_key;
use crate::servers::absolute_server_uri;
use crate::state::LayerState;
use crate::store::Replaced;
use crate::stored::find_stored;
use crate::timer::Deadline;

/// What [`OAuthLayer::logout`](crate::OAuthLayer::logout) did. The local state is gone
/// whenever it is returned; each revocation says whether the authorization server confirmed it.
///
/// ```
/// use tower_mcp_oauth::Logout;
/// fn summary(logout: &Logout) -> String {
///     match &logout.resource {
///         None => "nothing was stored".into(),
///         Some(resource) if logout.all_revoked() => format!("{resource}: revoked and forgotten"),
///         Some(resource) => format!("{resource}: forgotten, not all revoked"),
///     }
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Logout {
    /// The protected resource whose tokens were forgotten; `None` when none were held.
    pub resource: Option<Url>,
    /// The authorization server that issued them (pass it to
    /// [`TokenStore::remove_client`](crate::TokenStore::remove_client) to forget the client
    /// registration too).
    pub issuer: Option<String>,
    /// One entry per token, refresh token first; when the store held newer tokens than this
    /// process (another process refreshed them), theirs first, then this process's.
    pub revocations: Vec<Revocation>,
}

impl Logout {
    /// Whether the authorization server confirmed the revocation of every token held.
    pub fn all_revoked(&self) -> bool {
        self.revocations.iter().all(|r| r.result.is_ok())
    }
}

/// The revocation of one token.
#[derive(Debug)]
#[non_exhaustive]
pub struct Revocation {
    /// Which token.
    pub token: RevokedToken,
    /// `Ok` when the server confirmed it; else why not:
    /// [`RevocationUnsupported`](ErrorKind::RevocationUnsupported) (no endpoint),
    /// [`RevocationRefused`](ErrorKind::RevocationRefused), a transport error, a `5xx` (a
    /// `503`, like a `429`, after the retries its `Retry-After` allowed, none without a
    /// timer: see
    /// [`revocation_retry_delay`](mcp_oauth_flow::revocation::revocation_retry_delay)), or a
    /// [`Timeout`](ErrorKind::Timeout) (the request timeout, or the flow deadline of the
    /// revocations).
    pub result: Result<(), Error>,
}

/// Forgets the tokens held for `server_url`, then revokes them. `Err` only when `server_url`
/// is unusable or the store could not forget them (the revocations are still sent).
///
/// Forgotten first: the revocation needs only the tokens in hand, and a logout its caller cuts
/// short during the revocation (a timeout of its own), or one whose authorization server
/// stalls, must not leave the tokens in use. The store steps have one flow deadline and the
/// revocation's requests another, each request within the request timeout too.
pub(crate) async fn logout(
    state: &LayerState,
    server_url: &str,
    client: &HttpClient,
) -> Result<Logout, Error> {
    let uri = absolute_server_uri(server_url, "logout")?;
    // First: a flow running for this server now may not install its tokens after the wipe.
    // Other servers on the same origin are left alone.
    if let Some(server) = server_key(&uri) {
        state.flights.logging_out(&server);
    }
    let mut deadline = state.deadline();
    let held = match state.cache.session(&uri) {
        Some(session) => Some(((*session.tokens).clone(), session.resource.clone())),
        None => {
            let read = find_stored(state, &uri);
            deadline.step(crate::stored::NOT_READ, read).await?
        }
    };
    let Some((tokens, resource)) = held else {
        return Ok(Logout {
            resource: None,
            issuer: None,
            revocations: Vec::new(),
        });
    };
    let server = Url::parse(server_url).map_err(|e| {
        Error::new(
            ErrorKind::InvalidRequestUri,
            format!("{:?}: {e}", shown_url(server_url)),
        )
    })?;
    // And every flow whose tokens are for the same resource (reached through another URL).
    state.flights.logging_out(resource.as_str());
    // Out of the cache before the first await; out of the store next.
    let forgotten = deadline
        .step(
            "the token store did not forget the tokens",
            forget(state, &resource),
        )
        .await;
    let client = revocation_http(state, client, &server);
    // A deadline of their own: a store that used up the first must not cost the revocations,
    // the one part of a logout that reaches the authorization server.
    let mut revocations_deadline = state.deadline();
    // What the store held may be newer than what this process held (another process refreshed
    // them, or completed a new login): those are the live ones, and revoked first. Revoking
    // only this process's would leave the store's refresh token valid at the server, with no
    // copy left to revoke it later (a rotated-away refresh token is merely "invalid", RFC
    // 7009 §2.2).
    let mut sets = Vec::new();
    if let Ok(Some(stored)) = &forgotten {
        if !stored.same_tokens(&tokens) {
            sets.push(stored);
        }
    }
    sets.push(&tokens);
    let revocations = revoke_all(state, &sets, &client, &mut revocations_deadline).await;
    forgotten?;
    Ok(Logout {
        resource: Some(resource),
        issuer: Some(tokens.issuer().to_owned()),
        revocations,
    })
}

/// Revokes `tokens` a login got after a logout overruled it, through the guarded client a
/// logout uses; failures are logged (by [`revoke_all`]), nothing more can be done about them.
#[cfg(feature = "web")]
pub(crate) async fn revoke_overruled(
    state: &LayerState,
    server: &Url,
    tokens: &TokenSet,
    client: &HttpClient,
) {
    let client = revocation_http(state, client, server);
    revoke_all(state, &[tokens], &client, &mut state.deadline()).await;
}

/// `client` as a logout's requests go through it: the revocation endpoint comes from
/// metadata, so it is judged like every URL a flow fetches, and each request (its name's
/// lookup included) is bounded like a flow's.
fn revocation_http(state: &LayerState, client: &HttpClient, server: &Url) -> HttpClient {
    crate::resolve::guarded(
        client.clone(),
        std::sync::Arc::clone(&state.config.url_policy),
        state.resolver.clone(),
        server.clone(),
    )
    .bounded_by(state.limits.request_timeout, state.timer.as_ref())
}

/// Revokes each token of each of `sets` in order, within `deadline`; a failure to start (no
/// endpoint, no client) is each of its set's tokens'.
///
/// A revocation the server defers (a `503` or `429`) is sent again as
/// [`revocation_retry_delay`] allows: a logout has forgotten the token, and given up on, it
/// stays valid at the server. Every token's first request, of every set, goes out before any
/// wait, so a deferral of one does not hold the others back (nor leave them to a caller that
/// gives up on the logout during the wait); then each round waits the longest wait asked of
/// it and sends the deferred ones again, each time with fresh credentials. A wait the
/// deadline cuts ends the retries, and a retry that gets no answer leaves the server's last
/// answer as the outcome. Without a timer there is no wait to honour, and no retry.
async fn revoke_all(
    state: &LayerState,
    sets: &[&TokenSet],
    client: &HttpClient,
    deadline: &mut Deadline<'_>,
) -> Vec<Revocation> {
    // Each request: its set, the set's revoker and the token.
    let mut requests = Vec::new();
    // Each token's place in the outcome, in order: failed to start, or a request.
    let mut slots = Vec::new();
    for (set, tokens) in sets.iter().enumerate() {
        let order = revocation_order(tokens);
        let missed = "the revocation endpoint and client were not found";
        match deadline.step(missed, prepare(state, tokens, client)).await {
            Ok(revoker) => {
                let revoker = std::sync::Arc::new(revoker);
                for token in order {
                    slots.push(Slot::Request(requests.len()));
                    requests.push((set, std::sync::Arc::clone(&revoker), token));
                }
            }
            Err(e) => {
                debug!(error = %e, "no revocation possible");
                slots.extend(order.iter().map(|t| {
                    Slot::Unstarted(Revocation {
                        token: t.kind(),
                        result: Err(e.clone()),
                    })
                }));
            }
        }
    }
    let mut outcomes = Vec::with_capacity(requests.len());
    // Which of `requests` the server deferred, and the wait it asked for.
    let mut deferred = Vec::new();
    for (i, (set, revoker, token)) in requests.iter().enumerate() {
        let attempt = revoker
            .send(state, sets[*set], token, client, deadline, 0)
            .await;
        if let Some(delay) = attempt.deferred {
            deferred.push((i, delay));
        }
        outcomes.push(attempt.result);
    }
    let mut retries = 0;
    while state.timer.is_some() {
        let Some(wait) = deferred.iter().map(|(_, delay)| *delay).max() else {
            break;
        };
        deadline.pause(wait).await;
        if deadline.is_spent() {
            // No time left to send them again: the server's answers are the outcome.
            break;
        }
        retries += 1;
        let mut still = Vec::new();
        for (i, _) in deferred {
            let (set, revoker, token) = &requests[i];
            debug!(
                token = token.kind().hint(),
                "revocation deferred by the server; sent again"
            );
            let attempt = revoker
                .send(state, sets[*set], token, client, deadline, retries)
                .await;
            if let Some(delay) = attempt.deferred {
                still.push((i, delay));
            }
            if attempt.answered {
                outcomes[i] = attempt.result;
            }
        }
        deferred = still;
    }
    let mut outcomes: Vec<Option<Result<(), Error>>> = outcomes.into_iter().map(Some).collect();
    let out: Vec<Revocation> = slots
        .into_iter()
        .map(|slot| match slot {
            Slot::Unstarted(revocation) => revocation,
            Slot::Request(i) => Revocation {
                token: requests[i].2.kind(),
                // Each request's outcome is taken once: its slot is its own.
                result: outcomes[i].take().unwrap_or(Ok(())),
            },
        })
        .collect();
    for revocation in &out {
        if let Err(e) = &revocation.result {
            warn!(error = %e, token = revocation.token.hint(), "revocation failed");
        }
    }
    out
}

/// A token's place among a logout's revocations.
enum Slot {
    /// Its revocation could not start (no endpoint, no client).
    Unstarted(Revocation),
    /// Its request, by its index.
    Request(usize),
}

/// One revocation request's outcome.
struct Attempt {
    result: Result<(), Error>,
    /// Whether the server answered (else the request failed or ran out of time).
    answered: bool,
    /// The wait before sending it again, if the server deferred it and a retry is left.
    deferred: Option<std::time::Duration>,
}

/// Where and as whom the tokens are revoked: the issuer's revocation endpoint (from its
/// metadata, RFC 8414 §2), the metadata itself and the client's stored registration, from
/// which each request's credentials are made.
struct Revoker {
    endpoint: Url,
    meta: AuthorizationServerMetadata,
    stored: Option<ClientRegistration>,
}

impl Revoker {
    /// Sends the revocation of `token` once, with fresh credentials, within `deadline`;
    /// `retries_done` of it were sent before.
    async fn send(
        &self,
        state: &LayerState,
        tokens: &TokenSet,
        token: &TokenToRevoke,
        client: &HttpClient,
        deadline: &mut Deadline<'_>,
        retries_done: u32,
    ) -> Attempt {
        let request = self
            .credentials(state, tokens)
            .and_then(|credentials| revocation_request(&self.endpoint, token, &credentials));
        let response = match request {
            Ok(request) => {
                let sent = client.send(request);
                deadline.step("the revocation did not finish", sent).await
            }
            Err(e) => Err(e),
        };
        let response = match response {
            Ok(response) => response,
            Err(e) => {
                return Attempt {
                    result: Err(e),
                    answered: false,
                    deferred: None,
                }
            }
        };
        let result = check_revocation_response(response.status(), response.body());
        let retry_after = response.headers().get(http::header::RETRY_AFTER);
        let deferred = result
            .is_err()
            .then(|| revocation_retry_delay(response.status(), retry_after, retries_done))
            .flatten();
        Attempt {
            result,
            answered: true,
            deferred,
        }
    }

    /// The credentials of the client the tokens were issued to, for one request: an assertion
    /// of a `private_key_jwt` client is used once (RFC 7523 §3), so each request gets its own,
    /// with a fresh `jti`.
    fn credentials(
        &self,
        state: &LayerState,
        tokens: &TokenSet,
    ) -> Result<mcp_oauth_flow::client::ClientCredentials, Error> {
        let jti = random_secrets()?.state().secret().clone();
        let (stored, meta) = (self.stored.as_ref(), Some(&self.meta));
        revocation_client(&state.config, tokens, stored, meta, state.now(), &jti)?.ok_or_else(
            || {
                let unbound = state
                    .config
                    .pre_registered
                    .iter()
                    .any(|c| c.client_id == tokens.client_id() && c.is_unbound_credential());
                let why = if unbound {
                    "is configured with a secret or key but no issuer (see \
                     `PreRegisteredClient::for_issuer`)"
                } else {
                    "is neither configured nor stored"
                };
                Error::new(
                    ErrorKind::NoClientIdentity,
                    format!(
                        "the client the tokens were issued to ({}) {why}; they cannot be revoked",
                        tokens.client_id()
                    ),
                )
            },
        )
    }
}

/// The revocation endpoint of the tokens' issuer (from its metadata, RFC 8414 §2) and the
/// client they were issued to (checked here: no client, no request).
async fn prepare(
    state: &LayerState,
    tokens: &TokenSet,
    client: &HttpClient,
) -> Result<Revoker, Error> {
    let meta = fetch_metadata(tokens.issuer(), client).await?;
    let endpoint = meta
        .revocation_endpoint
        .as_deref()
        .ok_or_else(|| no_revocation_endpoint(tokens.issuer()))?;
    let endpoint = parse_secure_url(endpoint, "revocation_endpoint")?;
    let stored = state
        .store
        .load_client(tokens.issuer())
        .await
        .unwrap_or_else(|e| {
            warn!(error = %e, "could not read the client registration");
            None
        });
    let revoker = Revoker {
        endpoint,
        meta,
        stored,
    };
    revoker.credentials(state, tokens)?;
    Ok(revoker)
}

/// The issuer's metadata, from the first well-known candidate that serves it (RFC 8414 §3,
/// OpenID Connect Discovery §4), its issuer checked (RFC 8414 §3.3).
async fn fetch_metadata(
    issuer: &str,
    client: &HttpClient,
) -> Result<AuthorizationServerMetadata, Error> {
    let issuer_url = parse_secure_url(issuer, "issuer")?;
    let mut last = None;
    for candidate in authorization_server_metadata_urls(&issuer_url) {
        // A URL `url` parses is almost always a valid `http::Uri`; a stored issuer that is not
        // (a corrupt store) is an error of this logout, not a panic.
        let request = http::Request::get(candidate.as_str())
            .header(http::header::ACCEPT, "application/json")
            .body(bytes::Bytes::new())
            .map_err(|e| {
                Error::new(
                    ErrorKind::InvalidRequestUri,
                    format!("{:?}: {e}", shown_url(candidate.as_str())),
                )
            })?;
        match client.send(request).await {
            Ok(response) if response.status().is_success() => {
                let meta = AuthorizationServerMetadata::from_json(response.body())
                    .and_then(|m| m.validate(Some(issuer)).map(|()| m));
                match meta {
                    Ok(meta) => return Ok(meta),
                    Err(e) => last = Some(e),
                }
            }
            Ok(_) => {}
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| no_revocation_endpoint(issuer)))
}

/// Removes the tokens of `resource` from the cache and the store (whatever the store holds by
/// then: another holder may have refreshed them meanwhile).
/// Returns what the store held (and no longer holds).
async fn forget(state: &LayerState, resource: &Url) -> Result<Option<TokenSet>, Error> {
    state.cache.remove(resource);
    // Whatever the store was behind is gone with the tokens.
    state.flights.store_caught_up(resource.as_str());
    let key = resource.as_str();
    for _ in 0..3 {
        let current = state.store.load_tokens(key).await?;
        if current.is_none() {
            return Ok(None);
        }
        match state
            .store
            .compare_and_swap_tokens(key, current.as_ref(), None)
            .await?
        {
            Replaced::Swapped => {
                debug!(%resource, "tokens forgotten");
                return Ok(current);
            }
            _ => continue,
        }
    }
    Err(Error::new(
        ErrorKind::Store,
        format!("the tokens of {resource} kept changing in the store; they were not removed"),
    ))
}
