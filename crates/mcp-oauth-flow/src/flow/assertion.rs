//! The assertion grants: workload identity (SEP-1933) and enterprise-managed authorization
//! (SEP-990). See `state.rs` for where they sit in the whole machine.

use std::time::SystemTime;

use bytes::Bytes;

use super::rules;
use super::state::{AuthServer, ExpectAssertion, ExpectIdJag, ExpectToken, Resource, State};
use super::{Action, Flow, FlowSecrets, SubRequest};
use crate::assertion_grant::{
    assertion_rejected, check_assertion_fresh, check_jwt_bearer_offered, AssertionGrant,
    AssertionKind, AssertionRequest,
};
use crate::client_assertion::sign_for_metadata;
use crate::client_auth::{ClientAuthMethod, ClientCredentials};
use crate::error::{Error, ErrorKind};
use crate::report::Purpose;
use crate::token_exchange::{parse_token_exchange_response, token_exchange_request};
use crate::token_request::{token_request, Grant};
use crate::url_policy::parse_secure_url;

impl Flow {
    /// Starts the configured assertion grant: the server must offer it (no fallback to another
    /// grant), then the application is asked for the assertion, afresh on every run.
    pub(super) fn assertion_grant(
        &mut self,
        grant: &AssertionGrant,
        secrets: FlowSecrets,
        resource: Resource,
        server: AuthServer,
    ) -> Result<State, Error> {
        check_jwt_bearer_offered(&server.meta)?;
        let kind = match grant {
            AssertionGrant::EnterpriseManaged(_) => AssertionKind::IdToken,
            AssertionGrant::WorkloadIdentity => AssertionKind::WorkloadIdentity,
        };
        self.out
            .push_back(Action::ObtainAssertion(AssertionRequest {
                kind,
                // The issuer the credentials are bound to: on the 2025-03-26 path, the
                // server's origin rather than an issuer its metadata merely claims (a source
                // minting a token for the issuer it is given would mint one for the victim).
                issuer: server.client_issuer.clone(),
                resource: resource.resource.clone(),
            }));
        Ok(State::ExpectAssertion(Box::new(ExpectAssertion {
            secrets,
            resource,
            server,
        })))
    }

    pub(super) fn on_assertion(
        &mut self,
        s: ExpectAssertion,
        assertion: Result<String, Error>,
        now: SystemTime,
    ) -> Result<State, Error> {
        let assertion = assertion?;
        let ExpectAssertion {
            secrets,
            resource,
            server,
        } = s;
        let Some(AssertionGrant::EnterpriseManaged(idp)) = self.config.assertion_grant.clone()
        else {
            check_assertion_fresh(&assertion, AssertionKind::WorkloadIdentity, now)?;
            return self.jwt_bearer(secrets, resource, server, &assertion, now, false);
        };
        // SEP-990 step 1: the ID token for an ID-JAG addressed to this authorization server
        // (`audience` = its issuer) and this resource.
        check_assertion_fresh(&assertion, AssertionKind::IdToken, now)?;
        let endpoint =
            parse_secure_url(&idp.token_endpoint, "the enterprise IdP's token_endpoint")?;
        let request = token_exchange_request(
            &endpoint,
            &idp,
            &assertion,
            &server.client_issuer,
            resource.resource.as_deref(),
            server.scopes.as_ref(),
        )?;
        self.send(SubRequest {
            purpose: Purpose::TokenExchange,
            request,
        });
        Ok(State::ExpectIdJag(Box::new(ExpectIdJag {
            secrets,
            resource,
            server,
        })))
    }

    pub(super) fn on_id_jag(
        &mut self,
        s: ExpectIdJag,
        response: http::Response<Bytes>,
        now: SystemTime,
    ) -> Result<State, Error> {
        let endpoint = match &self.config.assertion_grant {
            Some(AssertionGrant::EnterpriseManaged(idp)) => idp.token_endpoint.clone(),
            _ => String::new(),
        };
        let status = response.status();
        let jag = parse_token_exchange_response(status, response.body()).inspect_err(|e| {
            self.report.push(
                Purpose::TokenExchange,
                &endpoint,
                Some(status.as_u16()),
                e.to_string(),
            );
        })?;
        self.report.push(
            Purpose::TokenExchange,
            &endpoint,
            Some(status.as_u16()),
            "ID-JAG issued",
        );
        // SEP-990 step 2: the ID-JAG in a jwt-bearer grant, with the client's authentication
        // (the authorization server checks the ID-JAG's `client_id` against it).
        self.jwt_bearer(s.secrets, s.resource, s.server, &jag, now, true)
    }

    /// The jwt-bearer grant (RFC 7523 §2.1) at the authorization server, authenticated as the
    /// pre-registered client for its issuer, if there is one (RFC 7523 §3.1 makes client
    /// authentication optional; SEP-990 needs it: `client_required`).
    fn jwt_bearer(
        &mut self,
        secrets: FlowSecrets,
        resource: Resource,
        server: AuthServer,
        assertion: &str,
        now: SystemTime,
        client_required: bool,
    ) -> Result<State, Error> {
        let endpoint = parse_secure_url(
            server.meta.token_endpoint.as_deref().unwrap_or_default(),
            "token_endpoint",
        )?;
        let client = self
            .config
            .pre_registered
            .iter()
            .find(|c| c.is_for(&server.client_issuer));
        let creds = match client {
            Some(client) if client.is_confidential() => {
                let method = rules::client_credentials_method(client, &server.meta);
                // Each assertion gets its own `jti` (FlowSecrets::next_jti).
                let assertion = match &client.key {
                    Some(key) if method == ClientAuthMethod::PrivateKeyJwt => {
                        Some(sign_for_metadata(
                            key,
                            &client.client_id,
                            &server.client_issuer,
                            &server.meta,
                            &endpoint,
                            now,
                            &secrets.next_jti(),
                        )?)
                    }
                    _ => None,
                };
                ClientCredentials {
                    client_id: client.client_id.clone(),
                    client_secret: client.client_secret.clone(),
                    method,
                    assertion,
                }
            }
            _ if client_required => {
                return Err(Error::new(
                    ErrorKind::NoClientIdentity,
                    format!(
                        "enterprise-managed authorization needs the client's authentication at \
                         authorization server {}; configure a PreRegisteredClient with a secret \
                         or a private key for it",
                        server.meta.issuer
                    ),
                ))
            }
            client => ClientCredentials {
                client_id: client.map(|c| c.client_id.clone()).unwrap_or_default(),
                client_secret: None,
                method: ClientAuthMethod::None,
                assertion: None,
            },
        };
        let request = token_request(
            &endpoint,
            Grant::JwtBearer {
                assertion,
                scopes: server.scopes.as_ref(),
            },
            &creds,
            resource.resource.as_deref(),
        )?;
        self.send(SubRequest {
            purpose: Purpose::Token,
            request,
        });
        Ok(State::ExpectJwtBearerToken(Box::new(ExpectToken {
            unsaved: None,
            resource,
            server,
            client: creds,
        })))
    }

    /// The answer to a jwt-bearer grant: a refusal is [`ErrorKind::AssertionRejected`] and ends
    /// the flow (SEP-1933: no retry loop, no other grant).
    pub(super) fn on_jwt_bearer_token(
        &mut self,
        s: ExpectToken,
        response: http::Response<Bytes>,
        now: SystemTime,
    ) -> Result<State, Error> {
        let server = format!("authorization server {}", s.server.meta.issuer);
        self.on_token(s, response, now)
            .map_err(|e| assertion_rejected(e, &server))
    }
}
