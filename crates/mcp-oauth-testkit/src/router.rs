//! Per-request pipeline: read the body, record, apply overrides, route.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::json;

use crate::discovery::MCP_PATH;
use crate::fault;
use crate::record::{RecordedRequest, ServerRole};
use crate::response::{self, HttpResponse};
use crate::state::Shared;
use crate::{authorization_server, resource_server, revocation_endpoint, token_endpoint};

/// Largest body recorded; longer ones are cut there and answered 413.
const BODY_LIMIT: usize = 1024 * 1024;

/// Handles one request to the server playing `role`; an error drops the connection unanswered
/// (an injected [`Fault::ConnectionReset`](crate::fault::Fault::ConnectionReset)).
pub(crate) async fn handle(
    shared: Arc<Shared>,
    role: ServerRole,
    request: Request<Incoming>,
) -> Result<Response<fault::Body>, fault::Reset> {
    let (parts, body) = request.into_parts();
    let (body, complete) = read_body(body).await;
    let recorded = RecordedRequest {
        role,
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
    };
    let (canned, fault) = {
        let mut state = shared.lock();
        state.records.push(recorded.clone());
        let fault = state
            .faults
            .iter()
            .find(|(step, _)| step.matches(&shared.site, &recorded))
            .map(|(_, fault)| *fault);
        (
            state.overrides.get(&(role, recorded.path.clone())).cloned(),
            fault,
        )
    };
    if let Some(fault) = fault {
        return match fault::answer(fault, &recorded) {
            fault::Answer::Respond(response) => Ok(fault::whole(response)),
            fault::Answer::Truncated(response) => Ok(response),
            fault::Answer::Stall => std::future::pending().await,
            fault::Answer::Reset => Err(fault::Reset),
        };
    }
    if let Some(canned) = canned {
        return Ok(fault::whole(response::canned(&canned)));
    }
    if !complete {
        return Ok(fault::whole(response::with_body(
            StatusCode::PAYLOAD_TOO_LARGE,
            "text/plain",
            "body too large",
        )));
    }
    Ok(fault::whole(route(&shared, role, &recorded)))
}

/// Reads at most [`BODY_LIMIT`] bytes; the flag says whether the whole body fit.
async fn read_body(mut body: Incoming) -> (Bytes, bool) {
    let mut buffer = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return (buffer.freeze(), false);
        };
        if let Ok(data) = frame.into_data() {
            let room = BODY_LIMIT - buffer.len();
            if data.len() > room {
                buffer.extend_from_slice(&data[..room]);
                return (buffer.freeze(), false);
            }
            buffer.extend_from_slice(&data);
        }
    }
    (buffer.freeze(), true)
}

fn route(shared: &Arc<Shared>, role: ServerRole, request: &RecordedRequest) -> HttpResponse {
    let site = &shared.site;
    let path = request.path.as_str();
    if role == ServerRole::Resource && path == MCP_PATH {
        if shared.config.dpop.is_some() {
            return crate::dpop::mcp(shared, request);
        }
        return resource_server::mcp(shared, request);
    }
    if role == ServerRole::Resource && site.prm_path == Some(path) {
        return document(request, || {
            let authorization_servers = shared.lock().listed_authorization_servers();
            site.prm_document(&shared.config, &authorization_servers)
        });
    }
    if let Some((metadata_role, metadata_path, oidc)) = &site.metadata {
        if role == *metadata_role && path == metadata_path {
            return document(request, || metadata_document(shared, *oidc));
        }
    }
    if role == site.endpoint_role {
        if path == site.authorize_path {
            return authorization_server::authorize(shared, request);
        }
        if path == site.token_path {
            if shared.config.dpop.is_some() {
                return crate::dpop::token(shared, request);
            }
            return token_endpoint::token(shared, request);
        }
        if path == crate::assertion_grants::IDP_TOKEN_PATH
            && shared.config.assertion_issuer_key.is_some()
        {
            return crate::assertion_grants::token_exchange(shared, request);
        }
        if path == crate::DEVICE_AUTHORIZATION_PATH {
            return crate::device_grant::device_authorization(shared, request);
        }
        if path == site.revoke_path && shared.config.revocation {
            return revocation_endpoint::revoke(shared, request);
        }
        if path == site.register_path && shared.config.registration {
            return authorization_server::register(shared, request);
        }
        let oidc = site.metadata.as_ref().is_some_and(|(_, _, oidc)| *oidc);
        if path == site.jwks_path && oidc {
            return document(request, || json!({"keys": []}));
        }
    }
    response::not_found()
}

/// A JSON document answered to `GET`.
fn document(request: &RecordedRequest, body: impl FnOnce() -> serde_json::Value) -> HttpResponse {
    if request.method != Method::GET {
        return response::method_not_allowed("GET");
    }
    response::json(StatusCode::OK, &body())
}

/// The authorization server metadata with what the extension grants add (the jwt-bearer grant
/// and signing algorithms, the device authorization endpoint): those modules sit above the
/// site, so they extend its document here rather than the site calling up into them.
fn metadata_document(shared: &Shared, oidc: bool) -> serde_json::Value {
    let site = &shared.site;
    let mut doc = site.as_metadata_document(&shared.config, oidc);
    if let serde_json::Value::Object(map) = &mut doc {
        crate::assertion_grants::extend_metadata(&shared.config, map);
        let device = site.endpoint_url(crate::DEVICE_AUTHORIZATION_PATH);
        crate::device_grant::extend_metadata(&shared.config, device, map);
    }
    doc
}
