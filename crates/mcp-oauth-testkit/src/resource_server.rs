//! The protected MCP endpoint: bearer token checks and a one-tool JSON-RPC server.

use std::sync::Arc;
use std::time::Instant;

use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::record::RecordedRequest;
use crate::response::{self, method_not_allowed, HttpResponse};
use crate::state::{find_by_issuer, Shared};

/// The protocol version answered when `initialize` names none.
const DEFAULT_PROTOCOL_VERSION: &str = "2025-11-25";

/// `POST /mcp`.
pub(crate) fn mcp(shared: &Arc<Shared>, request: &RecordedRequest) -> HttpResponse {
    if request.method != Method::POST {
        return method_not_allowed("POST");
    }
    let granted = match request.bearer() {
        None => {
            return challenge(
                shared,
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "missing bearer token",
                None,
            )
        }
        Some(token) => match validate(shared, &token) {
            Ok(scope) => scope,
            Err(why) => {
                return challenge(shared, StatusCode::UNAUTHORIZED, "invalid_token", why, None)
            }
        },
    };
    let Some(message) = request.json() else {
        let body = rpc_error_body(Value::Null, -32700, "parse error");
        return response::json(StatusCode::BAD_REQUEST, &body);
    };
    let method = message
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let config = &shared.config;
    let mut needed: Vec<&str> = config.required_scopes.iter().map(String::as_str).collect();
    if method == "tools/call" {
        needed.extend(config.tool_call_scopes.iter().map(String::as_str));
    }
    let held: Vec<&str> = granted.split_whitespace().collect();
    if needed.iter().any(|scope| !held.contains(scope)) {
        let scope = needed.join(" ");
        let (status, error) = if config.insufficient_scope_as_401 {
            (StatusCode::UNAUTHORIZED, "invalid_token")
        } else {
            (StatusCode::FORBIDDEN, "insufficient_scope")
        };
        return challenge(
            shared,
            status,
            error,
            "the token lacks a required scope",
            Some(&scope),
        );
    }
    let Some(id) = message.get("id").cloned() else {
        // A notification (or a response to a server request): accepted, nothing to answer.
        return response::empty(StatusCode::ACCEPTED);
    };
    if method.starts_with("notifications/") {
        return response::empty(StatusCode::ACCEPTED);
    }
    let params = message.get("params").cloned().unwrap_or(Value::Null);
    let result = match method {
        "initialize" => json!({
            "protocolVersion": params
                .get("protocolVersion")
                .and_then(Value::as_str)
                .unwrap_or(DEFAULT_PROTOCOL_VERSION),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "mcp-oauth-testkit", "version": env!("CARGO_PKG_VERSION")},
        }),
        "ping" => json!({}),
        "tools/list" => json!({"tools": [{
            "name": "test-tool",
            "description": "Answers \"test\".",
            "inputSchema": {"type": "object"},
        }]}),
        "tools/call" => match params.get("name").and_then(Value::as_str) {
            Some("test-tool") => json!({"content": [{"type": "text", "text": "test"}]}),
            _ => return rpc_answer(shared, rpc_error_body(id, -32602, "unknown tool")),
        },
        _ => return rpc_answer(shared, rpc_error_body(id, -32601, "method not found")),
    };
    rpc_answer(
        shared,
        json!({"jsonrpc": "2.0", "id": id, "result": result}),
    )
}

/// Checks a bearer token; `Ok` is the granted scope string, `Err` why it is invalid.
///
/// Tokens are trusted only from the authorization server the PRM currently names: the own one,
/// or another live testkit after [`set_prm_authorization_server`](crate::Testkit::set_prm_authorization_server).
fn validate(shared: &Arc<Shared>, token: &str) -> Result<String, &'static str> {
    let trusted = if shared.config.layout.is_legacy() {
        vec![shared.site.issuer.clone()]
    } else {
        shared.lock().listed_authorization_servers()
    };
    // The token is looked up at each trusted server in turn: the one that issued it knows it.
    let kits: Vec<Arc<Shared>> = trusted
        .iter()
        .filter_map(|issuer| {
            if issuer.trim_end_matches('/') == shared.site.issuer {
                Some(Arc::clone(shared))
            } else {
                find_by_issuer(issuer)
            }
        })
        .collect();
    if kits.is_empty() {
        return Err("token not issued by the trusted authorization server");
    }
    let Some(issuer_kit) = kits
        .into_iter()
        .find(|kit| kit.lock().access_tokens.contains_key(token))
    else {
        return Err("unknown token");
    };
    let state = issuer_kit.lock();
    let Some(entry) = state.access_tokens.get(token) else {
        return Err("unknown token");
    };
    if entry.revoked {
        return Err("token revoked");
    }
    if Instant::now() >= entry.expires_at {
        return Err("token expired");
    }
    if let Some(resource) = &entry.resource {
        if !shared.site.accepts_resource(resource) {
            return Err("token was issued for another resource");
        }
    }
    Ok(entry.scope.clone().unwrap_or_default())
}

/// A 401/403 with a `WWW-Authenticate: Bearer …` challenge.
fn challenge(
    shared: &Shared,
    status: StatusCode,
    error: &str,
    description: &str,
    scope: Option<&str>,
) -> HttpResponse {
    let mut value = format!("Bearer error=\"{error}\", error_description=\"{description}\"");
    let scope = scope.or(shared.config.challenge_scope.as_deref());
    if let Some(scope) = scope {
        value.push_str(&format!(", scope=\"{scope}\""));
    }
    if let Some(url) = shared.site.challenge_prm_url() {
        value.push_str(&format!(", resource_metadata=\"{url}\""));
    }
    let body = json!({"error": error, "error_description": description});
    let mut response = response::json(status, &body);
    response::set_header(&mut response, "www-authenticate", &value);
    response
}

fn rpc_error_body(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// A JSON-RPC response as JSON, or as one SSE event when `sse_responses` is on.
fn rpc_answer(shared: &Shared, body: Value) -> HttpResponse {
    if shared.config.sse_responses {
        let event = format!("event: message\ndata: {body}\n\n");
        let mut response = response::with_body(StatusCode::OK, "text/event-stream", event);
        response::set_header(&mut response, "cache-control", "no-cache");
        response
    } else {
        response::json(StatusCode::OK, &body)
    }
}
