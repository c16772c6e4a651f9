//! The revocation endpoint (RFC 7009): the client authenticates as at the token endpoint; a
//! refresh token revokes its whole grant, an access token only itself; an unknown token is
//! success (§2.2).

use http::{Method, StatusCode};

use crate::record::RecordedRequest;
use crate::response::{self, bad_request, method_not_allowed, HttpResponse};
use crate::state::Shared;
use crate::token_issue::authenticate;

/// `POST revoke`.
pub(crate) fn revoke(shared: &Shared, request: &RecordedRequest) -> HttpResponse {
    if request.method != Method::POST {
        return method_not_allowed("POST");
    }
    let mut state = shared.lock();
    let client_id = match authenticate(shared, &mut state, request) {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let Some(token) = request.form_param("token") else {
        return bad_request("invalid_request", "missing token");
    };
    if let Some(entry) = state.refresh_tokens.get(&token).cloned() {
        // §2.1: a token of another client is refused.
        if entry.client_id != client_id {
            return bad_request("invalid_grant", "token was issued to another client");
        }
        state.revoke_grant(entry.grant);
    } else if let Some(entry) = state.access_tokens.get_mut(&token) {
        entry.revoked = true;
    }
    response::empty(StatusCode::OK)
}
