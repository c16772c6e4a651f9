//! The device authorization grant (RFC 8628) in the machine: once the client identity is
//! known, ask for a device code, show the user code, and poll at the interval until the
//! user approves, refuses, or the code expires. See `state.rs` for the rows, `device.rs` at the
//! crate root for the rules.

use std::time::SystemTime;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use url::Url;

use super::rules;
use super::state::{AuthServer, DevicePoll, ExpectDeviceAuthorization, ExpectToken, Resource};
use super::{Action, Flow, FlowSecrets, State, SubRequest};
use crate::client_assertion::sign_for_metadata;
use crate::client_auth::{ClientAuthMethod, ClientCredentials};
use crate::device::{
    check_device_code_alive, device_authorization_endpoint, device_authorization_request,
    parse_device_authorization_response, poll_verdict, PollVerdict,
};
use crate::error::{Error, ErrorKind};
use crate::registration::ClientRegistration;
use crate::report::Purpose;
use crate::server_requests::{with_device_switches, with_token_params};
use crate::token_request::{token_request, Grant};
use crate::token_response::parse_token_response;
use crate::url_policy::parse_secure_url;

impl Flow {
    /// RFC 8628 §3.1: the device authorization request, authenticated as the token requests
    /// will be.
    pub(super) fn device_authorization(
        &mut self,
        secrets: FlowSecrets,
        resource: Resource,
        server: AuthServer,
        client: ClientCredentials,
        unsaved: Option<Box<ClientRegistration>>,
    ) -> Result<State, Error> {
        let endpoint = device_authorization_endpoint(&server.meta)?;
        let now = self.last_now;
        let client = self.signed(client, &server, &secrets, &endpoint, now)?;
        let request = device_authorization_request(
            &endpoint,
            &client,
            server.scopes.as_ref(),
            resource.resource.as_deref(),
        )?;
        let request = with_device_switches(request, server.options.as_ref());
        self.send(SubRequest {
            purpose: Purpose::DeviceAuthorization,
            request,
        });
        Ok(State::ExpectDeviceAuthorization(Box::new(
            ExpectDeviceAuthorization {
                secrets,
                resource,
                server,
                client,
                unsaved,
            },
        )))
    }

    /// RFC 8628 §3.2, §3.3: the codes arrive; the user is shown theirs, and the first poll
    /// waits one interval (§3.4: the client polls "at the interval").
    pub(super) fn on_device_authorization(
        &mut self,
        s: ExpectDeviceAuthorization,
        response: http::Response<Bytes>,
        now: SystemTime,
    ) -> Result<State, Error> {
        let endpoint = s
            .server
            .meta
            .device_authorization_endpoint
            .clone()
            .unwrap_or_default();
        let status = response.status();
        let auth = match parse_device_authorization_response(status, response.body()) {
            Ok(auth) => auth,
            Err(e) => {
                self.report.push(
                    Purpose::DeviceAuthorization,
                    &endpoint,
                    Some(status.as_u16()),
                    e.to_string(),
                );
                self.drop_refused_client(&e, response.headers(), &s.client.client_id, &s.server);
                return Err(e);
            }
        };
        self.report.push(
            Purpose::DeviceAuthorization,
            &endpoint,
            Some(status.as_u16()),
            "device code issued",
        );
        let expires_at = now + auth.user.expires_in;
        self.out.push_back(Action::ShowUserCode(auth.user));
        self.out.push_back(Action::PollAfter(auth.interval));
        let ExpectDeviceAuthorization {
            secrets,
            resource,
            server,
            client,
            unsaved,
        } = s;
        Ok(State::ExpectPollDue(Box::new(DevicePoll {
            secrets,
            resource,
            server,
            client,
            unsaved,
            device_code: auth.device_code,
            interval: auth.interval,
            expires_at,
            trouble: None,
        })))
    }

    /// RFC 8628 §3.4: the interval has passed; poll, unless the code has run out (§3.2).
    pub(super) fn on_poll_due(&mut self, s: DevicePoll, now: SystemTime) -> Result<State, Error> {
        if let Err(expired) = check_device_code_alive(now, s.expires_at) {
            // Not the user's lateness when the server failed the last poll: its trouble is the
            // cause, transient (a new login may pass).
            return Err(match s.trouble {
                Some(status) => Error::new(
                    ErrorKind::UnexpectedStatus,
                    format!(
                        "the device code expired while the token endpoint answered {status} to \
                         the polls"
                    ),
                )
                .with_status(status),
                None => expired,
            });
        }
        let endpoint = parse_secure_url(
            s.server.meta.token_endpoint.as_deref().unwrap_or_default(),
            "token_endpoint",
        )?;
        let mut s = s;
        s.client = self.signed(s.client, &s.server, &s.secrets, &endpoint, now)?;
        let request = token_request(
            &endpoint,
            Grant::DeviceCode {
                device_code: &s.device_code,
            },
            &s.client,
            s.resource.resource.as_deref(),
        )?;
        let request = with_token_params(request, s.server.options.as_ref());
        self.send(SubRequest {
            purpose: Purpose::Token,
            request,
        });
        Ok(State::ExpectDeviceToken(Box::new(s)))
    }

    /// RFC 8628 §3.5: tokens end the flow as any token response does; a refusal is read as
    /// "wait", "wait longer" or "stop".
    pub(super) fn on_device_token(
        &mut self,
        s: DevicePoll,
        response: http::Response<Bytes>,
        now: SystemTime,
    ) -> Result<State, Error> {
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let refusal = parse_token_response(response.status(), content_type, response.body()).err();
        let Some(refusal) = refusal else {
            let DevicePoll {
                resource,
                server,
                client,
                unsaved,
                ..
            } = s;
            return self.on_token(
                ExpectToken {
                    resource,
                    server,
                    client,
                    unsaved,
                },
                response,
                now,
            );
        };
        let trouble = refusal
            .status()
            .filter(|s| s.is_server_error() || *s == http::StatusCode::TOO_MANY_REQUESTS);
        let shown = refusal.to_string();
        match poll_verdict(refusal, s.interval) {
            // Pending polls are not reported: a ten-minute wait would fill the report. The
            // server's trouble is, once each time it starts, so a login that then runs out of
            // time says why.
            PollVerdict::Wait(interval) => {
                let mut s = s;
                if let (Some(status), None) = (trouble, s.trouble) {
                    self.report.push(
                        Purpose::Token,
                        s.server.meta.token_endpoint.as_deref().unwrap_or_default(),
                        Some(status.as_u16()),
                        shown,
                    );
                }
                s.trouble = trouble;
                self.out.push_back(Action::PollAfter(interval));
                s.interval = interval;
                Ok(State::ExpectPollDue(Box::new(s)))
            }
            PollVerdict::Stop(error) => {
                self.report.push(
                    Purpose::Token,
                    s.server.meta.token_endpoint.as_deref().unwrap_or_default(),
                    error.status().map(|s| s.as_u16()),
                    error.to_string(),
                );
                self.drop_refused_client(
                    &error,
                    response.headers(),
                    &s.client.client_id,
                    &s.server,
                );
                Err(error)
            }
        }
    }

    /// A poll that got no answer (a connection timeout or reset) is no refusal: the device code
    /// is kept, the user may be approving it; the next poll waits
    /// [`after_lost_poll`](crate::device::after_lost_poll) (RFC 8628 §3.5), and the code's
    /// lifetime still ends the wait. Each loss is reported (the interval doubles, so a dead
    /// network reports a few, not one per poll).
    pub(super) fn on_lost_device_poll(
        &mut self,
        mut s: DevicePoll,
        error: Error,
    ) -> Result<State, Error> {
        self.report.push(
            Purpose::Token,
            s.server.meta.token_endpoint.as_deref().unwrap_or_default(),
            None,
            error.to_string(),
        );
        let interval = crate::device::after_lost_poll(s.interval);
        self.out.push_back(Action::PollAfter(interval));
        s.interval = interval;
        Ok(State::ExpectPollDue(Box::new(s)))
    }

    /// A `private_key_jwt` client signs a fresh assertion for every request, dated `now`, each
    /// with its own `jti` (a poll repeats for minutes; a replayed assertion would be refused).
    fn signed(
        &self,
        mut client: ClientCredentials,
        server: &AuthServer,
        secrets: &FlowSecrets,
        endpoint: &Url,
        now: SystemTime,
    ) -> Result<ClientCredentials, Error> {
        if client.method != ClientAuthMethod::PrivateKeyJwt {
            return Ok(client);
        }
        let key = rules::client_key(
            &self.config.pre_registered,
            &client.client_id,
            &server.client_issuer,
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
            &server.client_issuer,
            &server.meta,
            endpoint,
            now,
            &secrets.next_jti(),
        )?);
        Ok(client)
    }
}
