//! Refreshing the held tokens (RFC 6749 §6), and what to do when the server says no. See
//! `state.rs` for where this sits in the whole machine.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::CONTENT_TYPE;

use super::held_rules;
use super::state::{After, Context, ExpectRefreshClient, ExpectRefreshToken, Held};
use super::{Action, Flow, FlowOutcome, State, SubRequest};
use crate::client_assertion::sign_for_server;
use crate::client_auth::{ClientAuthMethod, ClientCredentials};
use crate::compat::{oauth_error_code, refresh_sends_scope, retries_refresh_without_scope};
use crate::error::Error;
use crate::refresh::{classify_refresh_failure, merge_refreshed, RefreshFailure};
use crate::registration::ClientRegistration;
use crate::report::Purpose;
use crate::server_options::{select_server_options, ServerOptions};
use crate::server_requests::with_token_params;
use crate::token_request::{token_request, Grant};
use crate::token_response::parse_token_response;
use crate::url_policy::parse_secure_url;

impl Flow {
    /// Refreshes `held` (the caller checked it is refreshable) at `now`.
    pub(super) fn start_refresh(
        &mut self,
        ctx: Context,
        held: Held,
        after: After,
        now: SystemTime,
    ) -> Result<State, Error> {
        let config = Arc::clone(&self.config);
        if let Some(client) =
            held_rules::refresh_pre_registered(&config.pre_registered, &held.tokens)
        {
            let method = held_rules::refresh_auth_method(
                held.tokens.client_auth(),
                client.auth_method.map(ClientAuthMethod::as_str),
                client.client_secret.is_some(),
                client.key.is_some(),
            );
            // A signed client assertion is fresh for each request, dated `now`, with a `jti` of
            // its own (FlowSecrets::next_jti).
            let assertion = client
                .key
                .as_ref()
                .filter(|_| method == ClientAuthMethod::PrivateKeyJwt)
                .map(|key| {
                    // The server's algorithm list is not kept with the tokens, so a refresh
                    // signs with the key's preferred algorithm.
                    sign_for_server(
                        key,
                        &client.client_id,
                        held.tokens.issuer(),
                        held.tokens.token_endpoint().unwrap_or_default(),
                        None,
                        now,
                        &ctx.secrets.next_jti(),
                    )
                })
                .transpose()?;
            let creds = ClientCredentials {
                client_id: client.client_id.clone(),
                client_secret: client.client_secret.clone(),
                method,
                assertion,
            };
            return self.send_refresh(ctx, held, after, creds, None);
        }
        if held_rules::refreshes_as_public(&held.tokens, config.client_metadata_document.as_deref())
        {
            let client_id = held.tokens.client_id().to_owned();
            // A public client registered dynamically is dropped when the server refuses it
            // (`invalid_client`), as a confidential one is: kept, the authorization that
            // follows would send the user to the server with an identifier it no longer
            // knows, which it must not redirect back from (RFC 6749 §4.1.2.1), and every
            // login after it the same way.
            let registered = self
                .registered_client_of(&client_id, held.tokens.issuer())
                .then(|| client_id.clone());
            let creds = ClientCredentials {
                client_id,
                client_secret: None,
                method: ClientAuthMethod::None,
                assertion: None,
            };
            return self.send_refresh(ctx, held, after, creds, registered);
        }
        self.out.push_back(Action::LoadClient {
            issuer: held.tokens.issuer().to_owned(),
        });
        Ok(State::ExpectRefreshClient(Box::new(ExpectRefreshClient {
            ctx,
            held,
            after,
        })))
    }

    pub(super) fn on_refresh_client(
        &mut self,
        s: ExpectRefreshClient,
        stored: Option<ClientRegistration>,
    ) -> Result<State, Error> {
        let ExpectRefreshClient { ctx, held, after } = s;
        let Some(reg) = stored.filter(|reg| held_rules::refresh_client_usable(reg, &held.tokens))
        else {
            // The tokens belong to a client this store no longer has: they cannot be refreshed,
            // so authorize again (the tokens are replaced when that succeeds).
            return self.after_refresh(ctx, after);
        };
        let method = held_rules::refresh_auth_method(
            held.tokens.client_auth(),
            reg.token_endpoint_auth_method.as_deref(),
            reg.client_secret.is_some(),
            false,
        );
        let creds = ClientCredentials {
            client_id: reg.client_id,
            client_secret: reg.client_secret,
            method,
            assertion: None,
        };
        let registered = Some(creds.client_id.clone());
        self.send_refresh(ctx, held, after, creds, registered)
    }

    fn send_refresh(
        &mut self,
        ctx: Context,
        held: Held,
        after: After,
        creds: ClientCredentials,
        registered: Option<String>,
    ) -> Result<State, Error> {
        let tokens = &held.tokens;
        let endpoint = parse_secure_url(
            tokens.token_endpoint().unwrap_or_default(),
            "token_endpoint",
        )?;
        let refresh_token = tokens
            .refresh_token()
            .expect("refreshable tokens have a refresh token");
        let options =
            select_server_options(&self.config.servers, &ctx.server_url, Some(tokens.issuer()));
        // RFC 8707 §2.2: the resource again, so the new token has the same audience (or, for
        // tokens that had none, the one the server names now: `refresh_resource`); the granted
        // scope again, so it keeps its reach, unless the server wants none (RefreshScope).
        let scopes = if self.refresh_sends_scope(options) {
            tokens.scopes()
        } else {
            if tokens.scopes().is_some_and(|s| !s.is_empty()) {
                tracing::debug!(
                    switch = "refresh_scope",
                    parameter = "scope",
                    request = "refresh",
                    "compatibility switch removed a parameter"
                );
            }
            None
        };
        let request = token_request(
            &endpoint,
            Grant::RefreshToken {
                refresh_token,
                scopes,
            },
            &creds,
            held_rules::refresh_resource(tokens, named_resource(&after)),
        )?;
        let request = with_token_params(request, options);
        self.send(SubRequest {
            purpose: Purpose::Token,
            request,
        });
        Ok(State::ExpectRefreshToken(Box::new(ExpectRefreshToken {
            ctx,
            held,
            after,
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
            ctx,
            held,
            after,
            registered,
        } = s;
        let endpoint = held.tokens.token_endpoint().unwrap_or_default().to_owned();
        let status = response.status();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        match parse_token_response(status, content_type, response.body()) {
            Ok(mut parsed) => {
                self.report.push(
                    Purpose::Token,
                    &endpoint,
                    Some(status.as_u16()),
                    "refreshed",
                );
                let options = select_server_options(
                    &self.config.servers,
                    &ctx.server_url,
                    Some(held.tokens.issuer()),
                );
                parsed.scope = crate::compat::granted_scope(
                    parsed.scope,
                    options.is_some_and(|o| o.compat().comma_separated_scope()),
                );
                let resource = held_rules::refresh_resource(&held.tokens, named_resource(&after))
                    .map(str::to_owned);
                let tokens = merge_refreshed(&held.tokens, parsed, now).with_resource(resource);
                let discovered = match &after {
                    After::AuthServer { resource, .. } => Some(&resource.protected_resource),
                    After::Discover | After::Legacy => None,
                };
                let protected_resource = held_rules::refreshed_protected_resource(
                    held.protected_resource.as_ref(),
                    discovered,
                    &tokens,
                    &ctx.server_url,
                );
                self.out.push_back(Action::Complete(Box::new(FlowOutcome {
                    tokens,
                    protected_resource,
                    authorization_server: None,
                    refreshed: true,
                    report: std::mem::take(&mut self.report),
                    registration: None,
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
                let options = select_server_options(
                    &self.config.servers,
                    &ctx.server_url,
                    Some(held.tokens.issuer()),
                );
                let sent_scope = self.refresh_sends_scope(options)
                    && held.tokens.scopes().is_some_and(|s| !s.is_empty());
                if retries_refresh_without_scope(
                    options.map_or_else(Default::default, |o| o.compat().refresh_scope()),
                    sent_scope,
                    oauth_error_code(&error),
                    self.refresh_scope_retried,
                ) {
                    tracing::debug!(
                        switch = "refresh_scope",
                        parameter = "scope",
                        "refresh refused with invalid_scope; sending it once more without scope"
                    );
                    self.refresh_scope_retried = true;
                    return self.start_refresh(ctx, held, after, now);
                }
                match classify_refresh_failure(&error) {
                    // Keep every credential: the next call tries again.
                    RefreshFailure::Transient => Err(error),
                    failure => {
                        self.out.push_back(Action::DropTokens);
                        if let (RefreshFailure::ClientRejected, Some(client_id)) =
                            (failure, registered)
                        {
                            self.out.push_back(Action::DropClient {
                                issuer: held.tokens.issuer().to_owned(),
                                client_id,
                            });
                        }
                        self.after_refresh(ctx, after)
                    }
                }
            }
        }
    }

    /// Whether this flow's refresh request restates the granted scope (see
    /// [`refresh_sends_scope`]).
    fn refresh_sends_scope(&self, options: Option<&ServerOptions>) -> bool {
        let policy = options.map_or_else(Default::default, |o| o.compat().refresh_scope());
        refresh_sends_scope(policy, self.refresh_scope_retried)
    }

    /// Goes on to a full authorization.
    fn after_refresh(&mut self, ctx: Context, after: After) -> Result<State, Error> {
        match after {
            After::Discover => self.begin_discovery(ctx, None),
            After::AuthServer { resource, servers } => {
                self.fetch_as_metadata(ctx, resource, servers)
            }
            After::Legacy => self.start_legacy(ctx),
        }
    }
}

/// The `resource` the protected resource metadata just named, when the refresh follows its
/// discovery (`None` for a proactive refresh and on the 2025-03-26 path).
fn named_resource(after: &After) -> Option<&str> {
    match after {
        After::AuthServer { resource, .. } => resource.resource.as_deref(),
        After::Discover | After::Legacy => None,
    }
}
