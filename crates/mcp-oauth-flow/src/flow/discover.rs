//! Discovery: protected resource metadata, then authorization server metadata.

use bytes::Bytes;

use std::time::SystemTime;

use super::choose::{self, Candidates};
use super::probe::{Fetched, Probe};
use super::state::{After, Context, ExpectAuthServerMetadata, ExpectResourceMetadata, Resource};
use super::{held_rules, Flow, State, Trigger};
use crate::error::{Error, ErrorKind};
use crate::metadata::{AuthorizationServerMetadata, ProtectedResourceMetadata};
use crate::report::Purpose;
use crate::resource::check_resource;
use crate::url_policy::parse_secure_url;
use crate::well_known::{
    authorization_server_metadata_urls, legacy_endpoints, legacy_issuer, origin_of,
};

impl Flow {
    pub(super) fn on_resource_metadata(
        &mut self,
        mut s: ExpectResourceMetadata,
        response: http::Response<Bytes>,
        now: SystemTime,
    ) -> Result<State, Error> {
        let url = s.probe.current.to_string();
        let status = response.status().as_u16();
        match s.probe.classify(response, &mut self.report)? {
            Fetched::Redirect => {
                self.send(s.probe.request()?);
                Ok(State::ExpectResourceMetadata(Box::new(s)))
            }
            Fetched::NotHere => {
                if s.probe.advance() {
                    self.send(s.probe.request()?);
                    Ok(State::ExpectResourceMetadata(Box::new(s)))
                } else if let Some(passing) = s.probe.passing.take() {
                    Err(passing)
                } else if let Some(advertised) = &s.ctx.challenge_metadata {
                    // The server's own challenge named its metadata, so it is no 2025-03-26
                    // server: taking that path would log in without a resource indicator
                    // (RFC 8707) and bind the tokens to the whole origin, a downgrade.
                    Err(Error::new(
                        ErrorKind::ResourceMetadataNotFound,
                        format!(
                            "the server's challenge names its resource metadata at {advertised}, \
                             which is not there (nor at the well-known locations); not falling \
                             back to the 2025-03-26 discovery"
                        ),
                    ))
                } else {
                    // No metadata anywhere: a 2025-03-26 server. A `401` to tokens of its own
                    // (bound to its origin, as that path binds them) is answered with a
                    // refresh first, as on the other path, not a new sign-in.
                    let ExpectResourceMetadata { ctx, held, .. } = s;
                    let issuer = legacy_issuer(&ctx.server_url);
                    match held {
                        Some(held)
                            if ctx.trigger == Trigger::Unauthorized
                                && held_rules::refreshable(&held.tokens)
                                && held_rules::keeps_held_tokens(
                                    ctx.trigger,
                                    held.tokens.issuer(),
                                    &issuer,
                                ) =>
                        {
                            self.start_refresh(ctx, held, After::Legacy, now)
                        }
                        _ => self.start_legacy(ctx),
                    }
                }
            }
            Fetched::Document(body) => {
                // A document that is there but wrong stops the flow: falling through to other
                // candidates, or to the legacy path, could authorize against the wrong server.
                let prm = ProtectedResourceMetadata::from_json(&body).inspect_err(|e| {
                    self.report
                        .push(Purpose::ResourceMetadata, &url, Some(status), e.to_string());
                })?;
                let protected =
                    check_resource(&prm.resource, &s.ctx.server_url).inspect_err(|e| {
                        self.report.push(
                            Purpose::ResourceMetadata,
                            &url,
                            Some(status),
                            e.to_string(),
                        );
                    })?;
                let policy = &self.config.url_policy;
                let servers = choose::authorization_server_candidates(
                    &prm.authorization_servers,
                    self.config.authorization_server_chooser.as_ref(),
                    |url| policy.check_url(url, &self.server, "authorization server metadata"),
                );
                for (issuer, why) in &servers.passed_over {
                    self.report.push(
                        Purpose::AuthorizationServerMetadata,
                        issuer,
                        None,
                        format!("passed over: {why}"),
                    );
                }
                let Some(first) = servers.order.first().cloned() else {
                    return Err(choose::none_usable(servers.passed_over));
                };
                let named = match servers.order.len() {
                    1 => format!("authorization server {first}"),
                    _ => format!(
                        "authorization servers {} (tried in this order)",
                        servers.order.join(", ")
                    ),
                };
                self.report.push(
                    Purpose::ResourceMetadata,
                    &url,
                    Some(status),
                    format!("used: resource {}, {named}", prm.resource),
                );
                let ExpectResourceMetadata { ctx, held, .. } = s;
                let held = held.filter(|h| {
                    servers.order.iter().any(|issuer| {
                        held_rules::keeps_held_tokens(ctx.trigger, h.tokens.issuer(), issuer)
                    })
                });
                let resource = Resource {
                    resource: Some(prm.resource),
                    prm_scopes: prm.scopes_supported,
                    protected_resource: protected,
                };
                match held {
                    Some(held)
                        if ctx.trigger == Trigger::Unauthorized
                            && held_rules::refreshable(&held.tokens) =>
                    {
                        let after = After::AuthServer { resource, servers };
                        self.start_refresh(ctx, held, after, now)
                    }
                    _ => self.fetch_as_metadata(ctx, resource, servers),
                }
            }
        }
    }

    /// Starts authorization server metadata discovery for the next of `servers`; with none
    /// left, fails with why each was passed over.
    pub(super) fn fetch_as_metadata(
        &mut self,
        ctx: Context,
        resource: Resource,
        mut servers: Candidates,
    ) -> Result<State, Error> {
        if servers.order.is_empty() {
            return Err(choose::none_usable(servers.passed_over));
        }
        let issuer = servers.order.remove(0);
        let issuer_url = parse_secure_url(&issuer, "authorization server")?;
        let probe = Probe::new(
            Purpose::AuthorizationServerMetadata,
            authorization_server_metadata_urls(&issuer_url),
        )
        .expect("there are always candidates");
        self.send(probe.request()?);
        Ok(State::ExpectAuthServerMetadata(Box::new(
            ExpectAuthServerMetadata {
                ctx,
                resource,
                expected_issuer: Some(issuer),
                probe,
                last_error: None,
                broken_document: None,
                servers,
            },
        )))
    }

    /// MCP 2025-03-26: the authorization server is at the server's origin.
    pub(super) fn start_legacy(&mut self, ctx: Context) -> Result<State, Error> {
        let origin = origin_of(&ctx.server_url);
        let resource = Resource {
            resource: None,
            prm_scopes: None,
            protected_resource: origin.clone(),
        };
        let probe = Probe::new(
            Purpose::AuthorizationServerMetadata,
            authorization_server_metadata_urls(&origin),
        )
        .expect("there are always candidates");
        self.send(probe.request()?);
        Ok(State::ExpectAuthServerMetadata(Box::new(
            ExpectAuthServerMetadata {
                ctx,
                resource,
                expected_issuer: None,
                probe,
                last_error: None,
                broken_document: None,
                servers: Candidates::default(),
            },
        )))
    }

    pub(super) fn on_auth_server_metadata(
        &mut self,
        mut s: ExpectAuthServerMetadata,
        response: http::Response<Bytes>,
        now: SystemTime,
    ) -> Result<State, Error> {
        let url = s.probe.current.to_string();
        let status = response.status().as_u16();
        let fetched = match s.probe.classify(response, &mut self.report) {
            Ok(fetched) => fetched,
            Err(e) => return self.pass_over(s, e),
        };
        let meta = match fetched {
            Fetched::Redirect => {
                self.send(s.probe.request()?);
                return Ok(State::ExpectAuthServerMetadata(Box::new(s)));
            }
            Fetched::NotHere => None,
            Fetched::Document(body) => match AuthorizationServerMetadata::from_json(&body) {
                Ok(meta) => Some(meta),
                Err(e) => {
                    // Not a metadata document at all (an HTML page, say), or a broken one:
                    // keep looking, and report this if nothing better turns up.
                    self.report.push(
                        Purpose::AuthorizationServerMetadata,
                        &url,
                        Some(status),
                        e.to_string(),
                    );
                    if s.broken_document.is_none() && names_metadata_members(&body) {
                        s.broken_document = Some(e.clone());
                    }
                    s.last_error = Some(e);
                    None
                }
            },
        };
        let Some(mut meta) = meta else {
            if s.probe.advance() {
                self.send(s.probe.request()?);
                return Ok(State::ExpectAuthServerMetadata(Box::new(s)));
            }
            // A location in a passing state: this server's metadata may be there next time.
            if let Some(passing) = s.probe.passing.take() {
                return self.pass_over(s, passing);
            }
            // The server's own metadata, broken: its endpoints are not guessed (RFC 8414 §3.2:
            // a document that does not validate is not used, and the defaults are for a server
            // that publishes none).
            if s.expected_issuer.is_none() {
                if let Some(error) = s.broken_document.take() {
                    return Err(error);
                }
            }
            if s.expected_issuer.is_some() {
                let error = s.last_error.take().unwrap_or_else(|| {
                    Error::new(
                        ErrorKind::AuthorizationServerMetadataNotFound,
                        format!("no authorization server metadata at any of the well-known locations for {url}"),
                    )
                });
                return self.pass_over(s, error);
            }
            // 2025-03-26 with no metadata: the default endpoints at the origin.
            let server = &s.ctx.server_url;
            let (authorize, token, register) = legacy_endpoints(server);
            self.report.push(
                Purpose::AuthorizationServerMetadata,
                authorize.as_str(),
                None,
                "no metadata: using the 2025-03-26 default endpoints",
            );
            let meta = AuthorizationServerMetadata::legacy_defaults(
                legacy_issuer(server),
                &authorize,
                &token,
                &register,
            );
            return self.authorize_with(s.ctx, s.resource, meta, now);
        };
        let validated = match &s.expected_issuer {
            Some(expected) => meta.validate(Some(expected)),
            None => {
                // 2025-03-26 metadata at the origin: its issuer is accepted as served (the
                // issuer was never derived from anything the client could check against).
                if meta.issuer.is_empty() {
                    meta.issuer = legacy_issuer(&s.ctx.server_url);
                }
                meta.validate(None)
            }
        };
        if let Err(e) = validated {
            self.report.push(
                Purpose::AuthorizationServerMetadata,
                &url,
                Some(status),
                e.to_string(),
            );
            return self.pass_over(s, e);
        }
        self.report.push(
            Purpose::AuthorizationServerMetadata,
            &url,
            Some(status),
            format!("used: issuer {}", meta.issuer),
        );
        self.authorize_with(s.ctx, s.resource, meta, now)
    }

    /// The authorization server of `s` serves no valid metadata: go on to the next one the
    /// resource lists (RFC 9728 §7.6), or fail with `error` (with several listed, with why
    /// each was passed over). On the 2025-03-26 path there is no other server.
    pub(super) fn pass_over(
        &mut self,
        s: ExpectAuthServerMetadata,
        error: Error,
    ) -> Result<State, Error> {
        let ExpectAuthServerMetadata {
            ctx,
            resource,
            expected_issuer,
            mut servers,
            ..
        } = s;
        let Some(issuer) = expected_issuer else {
            return Err(error);
        };
        if !servers.order.is_empty() {
            self.report.push(
                Purpose::AuthorizationServerMetadata,
                &issuer,
                None,
                format!("passed over: {error}; trying {}", servers.order[0]),
            );
        }
        servers.passed_over.push((issuer, error));
        self.fetch_as_metadata(ctx, resource, servers)
    }
}

/// Whether `body` is a JSON object with a member RFC 8414 §2 defines: metadata, valid or not,
/// rather than some other document a server answers every path with (an HTML page, `{}`,
/// `{"status":"ok"}`).
fn names_metadata_members(body: &[u8]) -> bool {
    const MEMBERS: [&str; 6] = [
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "registration_endpoint",
        "response_types_supported",
        "code_challenge_methods_supported",
    ];
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .as_ref()
        .and_then(serde_json::Value::as_object)
        .is_some_and(|object| MEMBERS.iter().any(|m| object.contains_key(*m)))
}
