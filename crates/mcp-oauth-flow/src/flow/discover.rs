//! Discovery: protected resource metadata, then authorization server metadata.

use bytes::Bytes;

use std::time::SystemTime;

use super::probe::{Fetched, Probe};
use super::state::{After, Context, ExpectAuthServerMetadata, ExpectResourceMetadata, Resource};
use super::{rules, Flow, State, Trigger};
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
                } else {
                    // No metadata anywhere: a 2025-03-26 server.
                    self.start_legacy(s.ctx)
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
                let issuer = prm.authorization_servers[0].clone();
                parse_secure_url(&issuer, "authorization server")?;
                self.report.push(
                    Purpose::ResourceMetadata,
                    &url,
                    Some(status),
                    format!(
                        "used: resource {}, authorization server {issuer}",
                        prm.resource
                    ),
                );
                let ExpectResourceMetadata { ctx, held, .. } = s;
                let held = held
                    .filter(|h| rules::keeps_held_tokens(ctx.trigger, h.tokens.issuer(), &issuer));
                let resource = Resource {
                    resource: Some(prm.resource),
                    prm_scopes: prm.scopes_supported,
                    protected_resource: protected,
                };
                match held {
                    Some(held)
                        if ctx.trigger == Trigger::Unauthorized
                            && rules::refreshable(&held.tokens) =>
                    {
                        let after = After::AuthServer { resource, issuer };
                        self.start_refresh(ctx, held, after, now)
                    }
                    _ => self.fetch_as_metadata(ctx, resource, issuer),
                }
            }
        }
    }

    /// Starts authorization server metadata discovery for `issuer`.
    pub(super) fn fetch_as_metadata(
        &mut self,
        ctx: Context,
        resource: Resource,
        issuer: String,
    ) -> Result<State, Error> {
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
        let fetched = s.probe.classify(response, &mut self.report)?;
        let meta = match fetched {
            Fetched::Redirect => {
                self.send(s.probe.request()?);
                return Ok(State::ExpectAuthServerMetadata(Box::new(s)));
            }
            Fetched::NotHere => None,
            Fetched::Document(body) => match AuthorizationServerMetadata::from_json(&body) {
                Ok(meta) => Some(meta),
                Err(e) => {
                    // Not a metadata document at all (an HTML page, say): keep looking, and
                    // report this if nothing better turns up.
                    self.report.push(
                        Purpose::AuthorizationServerMetadata,
                        &url,
                        Some(status),
                        e.to_string(),
                    );
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
            if s.expected_issuer.is_some() {
                return Err(s.last_error.unwrap_or_else(|| {
                    Error::new(
                        ErrorKind::AuthorizationServerMetadataNotFound,
                        format!("no authorization server metadata at any of the well-known locations for {url}"),
                    )
                }));
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
            return Err(e);
        }
        self.report.push(
            Purpose::AuthorizationServerMetadata,
            &url,
            Some(status),
            format!("used: issuer {}", meta.issuer),
        );
        self.authorize_with(s.ctx, s.resource, meta, now)
    }
}
