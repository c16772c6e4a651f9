//! Refreshing the held tokens (RFC 6749 §6), and what to do when the server says no.
//!
//! ```text
//!  Expiring ──────────────┐        Unauthorized ─▶ ExpectResourceMetadata ─(same issuer)─┐
//!                         ▼                                                             ▼
//!          [ExpectRefreshClient] ─▶ ExpectRefreshToken ─▶ Complete (refreshed)
//!                                          │ invalid_grant / invalid_client: DropTokens (+ DropClient)
//!                                          ▼
//!               full authorization (discovery, or straight to the AS metadata)
//!                                          │ network, 5xx, 429: Failed, every credential kept
//! ```

use std::time::SystemTime;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use url::Url;

use super::{Action, Common, Flow, FlowOutcome, Resource, State, SubRequest};
use crate::client_auth::{negotiate_client_auth, ClientAuthMethod, ClientCredentials};
use crate::discovery::origin_of;
use crate::error::Error;
use crate::refresh::{classify_refresh_failure, merge_refreshed, RefreshFailure};
use crate::registration::ClientRegistration;
use crate::report::Purpose;
use crate::token::TokenSet;
use crate::token_response::{parse_token_response, token_request, Grant};
use crate::url_policy::parse_secure_url;

/// Where the flow goes when a refresh is refused.
pub(super) enum After {
    /// Start from protected resource metadata discovery (the refresh was proactive).
    Discover,
    /// The protected resource metadata is known; go on to its authorization server.
    AuthServer {
        resource: Option<String>,
        prm_scopes: Option<Vec<String>>,
        protected_resource: Url,
        issuer: String,
    },
}

pub(super) struct Refreshing {
    common: Common,
    held: TokenSet,
    after: After,
}

pub(super) struct ExpectRefreshToken {
    refreshing: Refreshing,
    /// Whether the client came from a dynamic registration (which `invalid_client` drops).
    registered: bool,
}

impl Flow {
    /// Refreshes `common.held` (the caller checked it has a refresh token and an endpoint).
    pub(super) fn start_refresh(
        &mut self,
        mut common: Common,
        after: After,
    ) -> Result<State, Error> {
        let held = common.held.take().expect("start_refresh needs held tokens");
        let issuer = held.issuer().to_owned();
        let pre_registered = self
            .config
            .pre_registered
            .iter()
            .find(|c| c.client_id == held.client_id() && c.is_for(&issuer))
            .cloned();
        let refreshing = Refreshing {
            common,
            held,
            after,
        };
        if pre_registered.as_ref().is_some_and(|c| c.key.is_some()) {
            // A client assertion needs the time, which a proactive refresh does not have here;
            // such clients use the client-credentials grant, which simply runs again.
            return self.after_refresh(refreshing.common, refreshing.after);
        }
        if let Some(client) = pre_registered {
            let method = refreshing.held.client_auth().unwrap_or_else(|| {
                negotiate_client_auth(
                    client.auth_method.map(ClientAuthMethod::as_str),
                    client.client_secret.is_some(),
                    None,
                )
            });
            let creds = ClientCredentials {
                client_id: client.client_id,
                client_secret: client.client_secret,
                method,
                assertion: None,
            };
            return self.send_refresh(refreshing, creds, false);
        }
        let public = refreshing.held.client_auth() == Some(ClientAuthMethod::None)
            || self.config.client_metadata_document.as_deref() == Some(refreshing.held.client_id());
        if public {
            let creds = ClientCredentials {
                client_id: refreshing.held.client_id().to_owned(),
                client_secret: None,
                method: ClientAuthMethod::None,
                assertion: None,
            };
            return self.send_refresh(refreshing, creds, false);
        }
        self.out.push_back(Action::LoadClient { issuer });
        Ok(State::ExpectRefreshClient(Box::new(refreshing)))
    }

    pub(super) fn on_refresh_client(
        &mut self,
        refreshing: Refreshing,
        stored: Option<ClientRegistration>,
    ) -> Result<State, Error> {
        let usable = stored.filter(|reg| {
            reg.issuer == refreshing.held.issuer() && reg.client_id == refreshing.held.client_id()
        });
        let Some(reg) = usable else {
            // The tokens belong to a client this store no longer has: they cannot be refreshed,
            // so authorize again (the tokens are replaced when that succeeds).
            return self.after_refresh(refreshing.common, refreshing.after);
        };
        let method = refreshing.held.client_auth().unwrap_or_else(|| {
            negotiate_client_auth(
                reg.token_endpoint_auth_method.as_deref(),
                reg.client_secret.is_some(),
                None,
            )
        });
        let creds = ClientCredentials {
            client_id: reg.client_id,
            client_secret: reg.client_secret,
            method,
            assertion: None,
        };
        self.send_refresh(refreshing, creds, true)
    }

    fn send_refresh(
        &mut self,
        refreshing: Refreshing,
        creds: ClientCredentials,
        registered: bool,
    ) -> Result<State, Error> {
        let held = &refreshing.held;
        let endpoint =
            parse_secure_url(held.token_endpoint().unwrap_or_default(), "token_endpoint")?;
        let refresh_token = held
            .refresh_token()
            .expect("refreshable tokens have a refresh token");
        // RFC 8707 §2.2: the resource again, so the new token has the same audience; the granted
        // scope again, so it keeps its reach.
        let request = token_request(
            &endpoint,
            Grant::RefreshToken {
                refresh_token,
                scopes: held.scopes(),
            },
            &creds,
            held.resource(),
        )?;
        self.send(SubRequest {
            purpose: Purpose::Token,
            request,
        });
        Ok(State::ExpectRefreshToken(Box::new(ExpectRefreshToken {
            refreshing,
            registered,
        })))
    }

    pub(super) fn on_refresh_token(
        &mut self,
        s: ExpectRefreshToken,
        response: http::Response<Bytes>,
        now: SystemTime,
    ) -> Result<State, Error> {
        let ExpectRefreshToken {
            refreshing,
            registered,
        } = s;
        let endpoint = refreshing
            .held
            .token_endpoint()
            .unwrap_or_default()
            .to_owned();
        let status = response.status();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        match parse_token_response(status, content_type, response.body()) {
            Ok(parsed) => {
                self.report.push(
                    Purpose::Token,
                    &endpoint,
                    Some(status.as_u16()),
                    "refreshed",
                );
                let tokens = merge_refreshed(&refreshing.held, parsed, now);
                let protected_resource = refreshing
                    .common
                    .protected_resource
                    .clone()
                    .or_else(|| match &refreshing.after {
                        After::AuthServer {
                            protected_resource, ..
                        } => Some(protected_resource.clone()),
                        After::Discover => None,
                    })
                    .or_else(|| tokens.resource().and_then(|r| Url::parse(r).ok()))
                    .unwrap_or_else(|| origin_of(&refreshing.common.server_url));
                self.out.push_back(Action::Complete(Box::new(FlowOutcome {
                    tokens,
                    protected_resource,
                    authorization_server: None,
                    refreshed: true,
                    report: std::mem::take(&mut self.report),
                })));
                Ok(State::Finished)
            }
            Err(error) => {
                self.report.push(
                    Purpose::Token,
                    &endpoint,
                    Some(status.as_u16()),
                    error.to_string(),
                );
                match classify_refresh_failure(&error) {
                    // Keep every credential: the next call tries again.
                    RefreshFailure::Transient => Err(error),
                    failure => {
                        self.out.push_back(Action::DropTokens);
                        if failure == RefreshFailure::ClientRejected && registered {
                            self.out.push_back(Action::DropClient {
                                issuer: refreshing.held.issuer().to_owned(),
                            });
                        }
                        self.after_refresh(refreshing.common, refreshing.after)
                    }
                }
            }
        }
    }

    /// Goes on to a full authorization.
    fn after_refresh(&mut self, common: Common, after: After) -> Result<State, Error> {
        match after {
            After::Discover => self.begin_discovery(common),
            After::AuthServer {
                resource,
                prm_scopes,
                protected_resource,
                issuer,
            } => self.fetch_as_metadata(
                Resource {
                    common,
                    resource,
                    prm_scopes,
                    protected_resource,
                },
                issuer,
            ),
        }
    }
}
