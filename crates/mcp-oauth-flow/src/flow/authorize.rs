//! From metadata to tokens: scope, client identity, consent, token request.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};

use super::{
    Action, Authorizing, ExpectAuthorizationResponse, Flow, FlowOutcome, Resource, State,
    SubRequest,
};
use crate::authorization::{
    validate_authorization_response, AuthorizationRequest, AuthorizationResponse,
};
use crate::client_auth::{negotiate_client_auth, ClientAuthMethod, ClientCredentials};
use crate::config::PkcePolicy;
use crate::discovery::legacy_issuer;
use crate::error::{Error, ErrorKind};
use crate::metadata::{issuer_matches, AuthorizationServerMetadata};
use crate::registration::{
    application_type_for, choose_client_source, parse_registration_response, redirect_uri_matches,
    registration_auth_method, registration_request_body, ClientRegistration, ClientSource,
};
use crate::report::Purpose;
use crate::scope::{select_scopes, with_offline_access};
use crate::token::TokenSet;
use crate::token_response::{parse_token_response, token_request, Grant};
use crate::url_policy::{parse_secure_url, unusable_url};

impl Flow {
    /// Scope choice, the grant, the PKCE check, then the client identity.
    pub(super) fn authorize_with(
        &mut self,
        res: Resource,
        meta: AuthorizationServerMetadata,
        now: SystemTime,
    ) -> Result<State, Error> {
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
        // Credentials (pre-registered clients, stored registrations, new registrations,
        // tokens) are bound to an issuer. On the 2025-03-26 path the metadata's issuer was
        // never checked against anything (it is accepted as served), so a server could claim
        // another authorization server's issuer and be handed that server's client secret.
        // There the binding is the server's own origin, unless the metadata names exactly that.
        let client_issuer = if res.resource.is_some() {
            meta.issuer.clone()
        } else {
            let origin = legacy_issuer(&res.common.server_url);
            if issuer_matches(&origin, &meta.issuer) {
                meta.issuer.clone()
            } else {
                origin
            }
        };
        let auth = Authorizing {
            res,
            meta,
            client_issuer,
            scopes,
        };

        // RFC 6749 §4.4: a server that offers client credentials and not the authorization code
        // serves machines: no user, no consent, no PKCE.
        if !auth.meta.supports_grant("authorization_code")
            && auth.meta.supports_grant("client_credentials")
        {
            return self.client_credentials(auth, now);
        }
        let meta = &auth.meta;
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
        let config = Arc::clone(&self.config);
        match choose_client_source(
            &config.pre_registered,
            config.client_metadata_document.as_deref(),
            &auth.meta,
            &auth.client_issuer,
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
                    assertion: None,
                };
                self.request_authorization(auth, creds)
            }
            ClientSource::MetadataDocument(url) => {
                let creds = ClientCredentials {
                    client_id: url.to_owned(),
                    client_secret: None,
                    method: ClientAuthMethod::None,
                    assertion: None,
                };
                self.request_authorization(auth, creds)
            }
            ClientSource::StoredOrRegister => {
                self.out.push_back(Action::LoadClient {
                    issuer: auth.client_issuer.clone(),
                });
                Ok(State::ExpectStoredClient(Box::new(auth)))
            }
        }
    }

    /// The client-credentials grant (RFC 6749 §4.4) with a pre-registered confidential client:
    /// a secret (basic or post), or a private key (`private_key_jwt`, RFC 7523 §2.2).
    fn client_credentials(&mut self, auth: Authorizing, now: SystemTime) -> Result<State, Error> {
        let config = Arc::clone(&self.config);
        let client = config
            .pre_registered
            .iter()
            .find(|c| c.is_for(&auth.client_issuer) && c.is_confidential())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NoClientIdentity,
                    format!(
                        "authorization server {} offers only the client-credentials grant; configure a \
                         PreRegisteredClient with a secret or a private key for it",
                        auth.meta.issuer
                    ),
                )
            })?;
        let method = if client.key.is_some() {
            ClientAuthMethod::PrivateKeyJwt
        } else {
            negotiate_client_auth(
                client.auth_method.map(ClientAuthMethod::as_str),
                true,
                auth.meta.token_endpoint_auth_methods_supported.as_deref(),
            )
        };
        let endpoint = parse_secure_url(
            auth.meta.token_endpoint.as_deref().unwrap_or_default(),
            "token_endpoint",
        )?;
        // The flow's random `state` is never sent in this grant: it serves as the unique `jti`.
        let assertion = client.key.as_ref().map(|key| {
            key.assertion(
                &client.client_id,
                &auth.meta.issuer,
                now,
                auth.res.common.secrets.state.secret(),
            )
        });
        let creds = ClientCredentials {
            client_id: client.client_id.clone(),
            client_secret: client.client_secret.clone(),
            method,
            assertion,
        };
        let request = token_request(
            &endpoint,
            Grant::ClientCredentials {
                scopes: auth.scopes.as_ref(),
            },
            &creds,
            auth.res.resource.as_deref(),
        )?;
        self.send(SubRequest {
            purpose: Purpose::Token,
            request,
        });
        Ok(State::ExpectToken(Box::new(ExpectAuthorizationResponse {
            auth,
            client: creds,
        })))
    }

    pub(super) fn on_stored_client(
        &mut self,
        auth: Authorizing,
        stored: Option<ClientRegistration>,
    ) -> Result<State, Error> {
        let usable = stored.filter(|reg| {
            // A registration belongs to the server that issued it (SEP-2352), and must allow our
            // redirect URI.
            reg.issuer == auth.client_issuer
                && (reg.redirect_uris.is_empty()
                    || reg
                        .redirect_uris
                        .iter()
                        .any(|r| redirect_uri_matches(r, &self.config.redirect_uri)))
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
            .map_err(|e| unusable_url(endpoint.as_str(), e))?;
        self.send(SubRequest {
            purpose: Purpose::Registration,
            request,
        });
        Ok(State::ExpectRegistration(Box::new(auth)))
    }

    pub(super) fn on_registration(
        &mut self,
        auth: Authorizing,
        response: http::Response<Bytes>,
    ) -> Result<State, Error> {
        let endpoint = auth.meta.registration_endpoint.clone().unwrap_or_default();
        let status = response.status();
        let reg = parse_registration_response(status, response.body(), &auth.client_issuer)
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

    pub(super) fn credentials_for(
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
            assertion: None,
        }
    }

    pub(super) fn request_authorization(
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

    pub(super) fn on_authorization_response(
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
        )?;
        self.send(SubRequest {
            purpose: Purpose::Token,
            request,
        });
        Ok(State::ExpectToken(Box::new(s)))
    }

    pub(super) fn on_token(
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
            &s.auth.client_issuer,
            &s.client.client_id,
            s.auth.scopes.as_ref(),
            s.auth.res.resource.as_deref(),
        )
        .with_token_endpoint(Some(endpoint), Some(s.client.method));
        self.out.push_back(Action::Complete(Box::new(FlowOutcome {
            tokens,
            protected_resource: s.auth.res.protected_resource,
            authorization_server: Some(s.auth.meta),
            refreshed: false,
            report: std::mem::take(&mut self.report),
        })));
        Ok(State::Finished)
    }
}
