//! From metadata to tokens: scope, client identity, consent, token request.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};

use super::rules::{self, GrantChoice};
use super::state::{
    AuthServer, Context, ExpectAuthorizationResponse, ExpectRegistration, ExpectStoredClient,
    ExpectToken, Resource,
};
use super::{Action, Flow, FlowOutcome, FlowSecrets, State, SubRequest};
use crate::authorization_endpoint::{
    validate_authorization_response, AuthorizationRequest, AuthorizationResponse,
};
use crate::client_assertion::sign_for_metadata;
use crate::client_auth::{negotiate_client_auth, ClientAuthMethod, ClientCredentials};
use crate::compat::with_offline_access_scope;
use crate::error::{Error, ErrorKind};
use crate::metadata::AuthorizationServerMetadata;
use crate::registration::{
    application_type_for, choose_client_source, parse_registration_response,
    registration_auth_method, registration_request_body, ClientRegistration, ClientSource,
};
use crate::report::Purpose;
use crate::server_options::{authorization_extras, check_refresh_token, select_server_options};
use crate::server_requests::with_token_params;
use crate::token_request::{token_request, Grant};
use crate::token_response::parse_token_response;
use crate::token_set::TokenSet;
use crate::url_policy::{parse_secure_url, unusable_url};

impl Flow {
    /// Scope choice, the grant, the PKCE check, then the client identity.
    pub(super) fn authorize_with(
        &mut self,
        ctx: Context,
        resource: Resource,
        meta: AuthorizationServerMetadata,
        now: SystemTime,
    ) -> Result<State, Error> {
        let client_credentials = rules::choose_grant(&meta, self.config.device_authorization)
            == GrantChoice::ClientCredentials;
        let user_grant = self.config.assertion_grant.is_none() && !client_credentials;
        let scopes = rules::requested_scopes(
            ctx.challenge_scope.as_deref(),
            resource.prm_scopes.as_deref(),
            self.config.default_scopes.as_ref(),
            ctx.held_scopes.as_ref(),
            meta.scopes_supported.as_deref(),
            user_grant,
        );
        // With resource metadata, the issuer was checked against the one it named.
        let client_issuer =
            rules::client_issuer(&meta.issuer, resource.resource.is_some(), &ctx.server_url);
        // Options set for an issuer go to the issuer the credentials are bound to, never to
        // one a 2025-03-26 server's metadata merely claims.
        let options =
            select_server_options(&self.config.servers, &ctx.server_url, Some(&client_issuer))
                .cloned();
        let mut server = AuthServer {
            meta,
            client_issuer,
            scopes,
            options,
        };
        let secrets = ctx.secrets;
        if let Some(grant) = self.config.assertion_grant.clone() {
            return self.assertion_grant(&grant, secrets, resource, server);
        }
        if client_credentials {
            return self.client_credentials(secrets, resource, server, now);
        }
        // Only a user's grant asks for offline access: it keeps the user's session.
        let offline = server
            .options
            .as_ref()
            .is_some_and(|o| o.compat().request_offline_access());
        server.scopes = with_offline_access_scope(server.scopes.take(), offline);
        if self.config.device_authorization {
            // RFC 8628 §4: chosen by the application, so a server without it is an error
            // that names the fix, never a browser it cannot open. No PKCE: no redirect.
            crate::device::device_authorization_endpoint(&server.meta)?;
        } else {
            rules::check_pkce(&server.meta, self.config.pkce_policy)?;
        }
        let config = Arc::clone(&self.config);
        match choose_client_source(
            &config.pre_registered,
            config.client_metadata_document.as_deref(),
            &server.meta,
            &server.client_issuer,
        ) {
            ClientSource::PreRegistered(client) => {
                let method = match &client.key {
                    // RFC 7523 §2.2 on the code exchange too. The algorithm is checked now, so
                    // a server that accepts none of the key's is refused before the user is
                    // asked.
                    Some(key) => {
                        key.choose_algorithm(
                            server
                                .meta
                                .token_endpoint_auth_signing_alg_values_supported
                                .as_deref(),
                        )?;
                        ClientAuthMethod::PrivateKeyJwt
                    }
                    None => negotiate_client_auth(
                        client.auth_method.map(ClientAuthMethod::as_str),
                        client.client_secret.is_some(),
                        server.meta.token_endpoint_auth_methods_supported.as_deref(),
                    ),
                };
                let creds = ClientCredentials {
                    client_id: client.client_id.clone(),
                    client_secret: client.client_secret.clone(),
                    method,
                    assertion: None,
                };
                self.request_authorization(secrets, resource, server, creds, None)
            }
            ClientSource::MetadataDocument(url) => {
                let creds = ClientCredentials {
                    client_id: url.to_owned(),
                    client_secret: None,
                    method: ClientAuthMethod::None,
                    assertion: None,
                };
                self.request_authorization(secrets, resource, server, creds, None)
            }
            ClientSource::StoredOrRegister => {
                self.out.push_back(Action::LoadClient {
                    issuer: server.client_issuer.clone(),
                });
                Ok(State::ExpectStoredClient(Box::new(ExpectStoredClient {
                    secrets,
                    resource,
                    server,
                })))
            }
        }
    }

    /// The client-credentials grant (RFC 6749 §4.4) with a pre-registered confidential client:
    /// a secret (basic or post), or a private key (`private_key_jwt`, RFC 7523 §2.2).
    fn client_credentials(
        &mut self,
        secrets: FlowSecrets,
        resource: Resource,
        server: AuthServer,
        now: SystemTime,
    ) -> Result<State, Error> {
        let config = Arc::clone(&self.config);
        let client = rules::client_credentials_client(&config.pre_registered, &server.client_issuer)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NoClientIdentity,
                    format!(
                        "authorization server {} offers only the client-credentials grant; configure a \
                         PreRegisteredClient with a secret or a private key for it",
                        server.meta.issuer
                    ),
                )
            })?;
        let method = rules::client_credentials_method(client, &server.meta);
        let endpoint = parse_secure_url(
            server.meta.token_endpoint.as_deref().unwrap_or_default(),
            "token_endpoint",
        )?;
        // Each assertion gets its own `jti` (FlowSecrets::next_jti).
        let assertion = client
            .key
            .as_ref()
            .map(|key| {
                sign_for_metadata(
                    key,
                    &client.client_id,
                    &server.client_issuer,
                    &server.meta,
                    &endpoint,
                    now,
                    &secrets.next_jti(),
                )
            })
            .transpose()?;
        let creds = ClientCredentials {
            client_id: client.client_id.clone(),
            client_secret: client.client_secret.clone(),
            method,
            assertion,
        };
        let request = token_request(
            &endpoint,
            Grant::ClientCredentials {
                scopes: server.scopes.as_ref(),
            },
            &creds,
            resource.resource.as_deref(),
        )?;
        let request = with_token_params(request, server.options.as_ref());
        self.send(SubRequest {
            purpose: Purpose::Token,
            request,
        });
        Ok(State::ExpectToken(Box::new(ExpectToken {
            resource,
            server,
            client: creds,
            unsaved: None,
        })))
    }

    pub(super) fn on_stored_client(
        &mut self,
        s: ExpectStoredClient,
        stored: Option<ClientRegistration>,
    ) -> Result<State, Error> {
        let ExpectStoredClient {
            secrets,
            resource,
            server,
        } = s;
        let replaces_one_in_use = stored.as_ref().is_some_and(|reg| {
            rules::replaces_registration_in_use(reg, &server.client_issuer, self.last_now)
        });
        let grant = self.grant_in_use();
        let usable = stored.filter(|reg| {
            rules::stored_client_usable(
                reg,
                &server.client_issuer,
                &self.config.redirect_uri,
                grant,
                self.last_now,
            )
        });
        if let Some(reg) = usable {
            let creds = registered_credentials(&reg, &server.meta);
            return self.request_authorization(secrets, resource, server, creds, None);
        }
        let Some(endpoint) = server.meta.registration_endpoint.as_deref() else {
            return Err(Error::new(
                ErrorKind::NoClientIdentity,
                format!(
                    "authorization server {} offers no registration endpoint and no client is pre-registered for it; \
                     register a client with it and configure it as a PreRegisteredClient",
                    server.meta.issuer
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
            registration_auth_method(&server.meta),
        );
        let body = self.config.metadata.add_to(body);
        let body = if self.config.device_authorization {
            crate::device::with_device_grant(body)
        } else {
            body
        };
        let request = http::Request::post(endpoint.as_str())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(Bytes::from(body.to_string()))
            .map_err(|e| unusable_url(endpoint.as_str(), e))?;
        self.send(SubRequest {
            purpose: Purpose::Registration,
            request,
        });
        Ok(State::ExpectRegistration(Box::new(ExpectRegistration {
            secrets,
            resource,
            server,
            replaces_one_in_use,
        })))
    }

    pub(super) fn on_registration(
        &mut self,
        s: ExpectRegistration,
        response: http::Response<Bytes>,
    ) -> Result<State, Error> {
        let ExpectRegistration {
            secrets,
            resource,
            server,
            replaces_one_in_use,
        } = s;
        let endpoint = server
            .meta
            .registration_endpoint
            .clone()
            .unwrap_or_default();
        let status = response.status();
        let mut reg = parse_registration_response(status, response.body(), &server.client_issuer)
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
        // The grants it echoes are kept as evidence only when they include the one it was
        // registered for: a server may echo another list than it allows (RFC 7591 §3.2.1 lets
        // it replace values), and kept, such a list would have every later login of this mode
        // register again. Unknown, it is reused; a refusal then says what the server allows.
        if !rules::registration_allows_grant(&reg, self.grant_in_use()) {
            reg.grant_types.clear();
        }
        let creds = registered_credentials(&reg, &server.meta);
        // Saved now, so that a login abandoned at consent still reuses it next time; but not
        // over a registration another application still uses, which only tokens replace.
        let unsaved = if replaces_one_in_use {
            Some(Box::new(reg))
        } else {
            self.out.push_back(Action::SaveClient(reg));
            None
        };
        self.request_authorization(secrets, resource, server, creds, unsaved)
    }

    fn request_authorization(
        &mut self,
        secrets: FlowSecrets,
        resource: Resource,
        server: AuthServer,
        client: ClientCredentials,
        unsaved: Option<Box<ClientRegistration>>,
    ) -> Result<State, Error> {
        if self.config.device_authorization {
            return self.device_authorization(secrets, resource, server, client, unsaved);
        }
        let endpoint = parse_secure_url(
            server
                .meta
                .authorization_endpoint
                .as_deref()
                .unwrap_or_default(),
            "authorization_endpoint",
        )?;
        let request = AuthorizationRequest::new(
            &endpoint,
            &client.client_id,
            &self.config.redirect_uri,
            secrets.pkce.challenge(),
            secrets.state.clone(),
            server.scopes.as_ref(),
            resource.resource.as_deref(),
            &server.meta.issuer,
        )
        .with_switches(server.options.as_ref())
        .with_extra_params(&authorization_extras(
            server.scopes.as_ref(),
            server.options.as_ref(),
        ));
        self.out.push_back(Action::Authorize(request));
        Ok(State::ExpectAuthorizationResponse(Box::new(
            ExpectAuthorizationResponse {
                secrets,
                resource,
                server,
                client,
                unsaved,
            },
        )))
    }

    pub(super) fn on_authorization_response(
        &mut self,
        s: ExpectAuthorizationResponse,
        response: AuthorizationResponse,
        now: SystemTime,
    ) -> Result<State, Error> {
        let meta = &s.server.meta;
        let code = validate_authorization_response(
            response,
            &s.secrets.state,
            &meta.issuer,
            meta.authorization_response_iss_parameter_supported,
        )?;
        let endpoint = parse_secure_url(
            meta.token_endpoint.as_deref().unwrap_or_default(),
            "token_endpoint",
        )?;
        let mut client = s.client;
        if client.method == ClientAuthMethod::PrivateKeyJwt {
            // Signed when the code comes back, dated `now`: consent may have taken minutes.
            // Its `jti` is the flow's next (`FlowSecrets::next_jti`), none of which repeats,
            // across a resume too.
            let key = rules::client_key(
                &self.config.pre_registered,
                &client.client_id,
                &s.server.client_issuer,
            )
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NoClientIdentity,
                    "the private_key_jwt client is no longer configured with a key",
                )
            })?;
            client.assertion = Some(sign_for_metadata(
                key,
                &client.client_id,
                &s.server.client_issuer,
                meta,
                &endpoint,
                now,
                &s.secrets.next_jti(),
            )?);
        }
        let request = token_request(
            &endpoint,
            Grant::AuthorizationCode {
                code: &code,
                verifier: s.secrets.pkce.verifier(),
                redirect_uri: &self.config.redirect_uri,
            },
            &client,
            s.resource.resource.as_deref(),
        )?;
        let request = with_token_params(request, s.server.options.as_ref());
        self.send(SubRequest {
            purpose: Purpose::Token,
            request,
        });
        Ok(State::ExpectToken(Box::new(ExpectToken {
            resource: s.resource,
            server: s.server,
            client,
            unsaved: s.unsaved,
        })))
    }

    /// The grant a user's login of this configuration uses: the device grant in device mode
    /// (RFC 8628 §3.4), else the authorization code.
    fn grant_in_use(&self) -> &'static str {
        if self.config.device_authorization {
            crate::token_request::DEVICE_CODE_GRANT_TYPE
        } else {
            "authorization_code"
        }
    }

    /// Whether `client_id` came from a dynamic registration stored for `server` (neither a
    /// pre-registered client nor a client ID metadata document).
    fn registered_client(&self, client_id: &str, server: &AuthServer) -> bool {
        self.registered_client_of(client_id, &server.client_issuer)
    }

    /// [`registered_client`](Self::registered_client), for the issuer `client_issuer`.
    pub(super) fn registered_client_of(&self, client_id: &str, client_issuer: &str) -> bool {
        let pre_registered = self
            .config
            .pre_registered
            .iter()
            .any(|c| c.client_id == client_id && c.is_for(client_issuer));
        let document = self.config.client_metadata_document.as_deref() == Some(client_id);
        !client_id.is_empty() && !pre_registered && !document
    }

    /// A registration the server no longer knows (RFC 6749 §5.2 `invalid_client`, at the token
    /// endpoint or the device authorization endpoint, RFC 8628 §3.2) is dropped
    /// ([`Action::DropClient`]), so the next authorization registers again rather than ask the
    /// user to consent for a client the server refuses. A pre-registered client is the
    /// application's to fix, and is kept.
    ///
    /// So is a 401 without an error code that challenges the client's authentication (RFC
    /// 6749 §5.2: a failed HTTP authentication of the client is a 401 with
    /// `WWW-Authenticate`): kept, the registration would ask the user to consent again for
    /// nothing at every authorization. A 401 page without a challenge (a gateway's, a WAF's)
    /// says nothing of the client, and a registration every user of the issuer shares is not
    /// dropped for it.
    pub(super) fn drop_refused_client(
        &mut self,
        e: &Error,
        headers: &http::HeaderMap,
        client_id: &str,
        server: &AuthServer,
    ) {
        let challenged_401 = e.oauth_error().is_none()
            && e.kind() == ErrorKind::TokenRejected
            && e.status() == Some(http::StatusCode::UNAUTHORIZED)
            && headers.contains_key(http::header::WWW_AUTHENTICATE);
        let refused =
            challenged_401 || e.oauth_error().is_some_and(|o| o.error == "invalid_client");
        if refused && self.registered_client(client_id, server) {
            self.out.push_back(Action::DropClient {
                issuer: server.client_issuer.clone(),
                client_id: client_id.to_owned(),
            });
        }
    }

    pub(super) fn on_token(
        &mut self,
        s: ExpectToken,
        response: http::Response<Bytes>,
        now: SystemTime,
    ) -> Result<State, Error> {
        let endpoint = s.server.meta.token_endpoint.clone().unwrap_or_default();
        let status = response.status();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let parsed = match parse_token_response(status, content_type, response.body()) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.report.push(
                    Purpose::Token,
                    &endpoint,
                    Some(status.as_u16()),
                    e.to_string(),
                );
                self.drop_refused_client(&e, response.headers(), &s.client.client_id, &s.server);
                return Err(e);
            }
        };
        self.report.push(
            Purpose::Token,
            &endpoint,
            Some(status.as_u16()),
            "tokens issued",
        );
        // Checked before the tokens leave the flow: refused ones are never stored.
        check_refresh_token(
            s.server.options.as_ref(),
            parsed.refresh_token.is_some(),
            &s.server.meta.issuer,
            s.resource.protected_resource.as_str(),
        )?;
        let mut parsed = parsed;
        parsed.scope = crate::compat::granted_scope(
            parsed.scope,
            s.server
                .options
                .as_ref()
                .is_some_and(|o| o.compat().comma_separated_scope()),
        );
        let tokens = TokenSet::from_response(
            parsed,
            now,
            &s.server.client_issuer,
            &s.client.client_id,
            s.server.scopes.as_ref(),
            s.resource.resource.as_deref(),
        )
        .with_token_endpoint(Some(endpoint), Some(s.client.method));
        self.out.push_back(Action::Complete(Box::new(FlowOutcome {
            tokens,
            protected_resource: s.resource.protected_resource,
            authorization_server: Some(s.server.meta),
            refreshed: false,
            report: std::mem::take(&mut self.report),
            // Stored by the driver with the tokens, if it keeps them (see `ExpectToken::unsaved`).
            registration: s.unsaved.map(|registration| *registration),
        })));
        Ok(State::Finished)
    }
}

/// The credentials of a registered client (stored or new): the method the server registered,
/// when the client can use it, else one negotiated with the metadata (see
/// [`negotiate_client_auth`]).
fn registered_credentials(
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
        assertion: None,
    }
}
