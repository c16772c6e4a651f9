//! Token requests (RFC 6749 §4.1.3, §6; RFC 8707 §2.2; RFC 8628 §3.4; RFC 7523 §2.1): the form
//! each grant sends to the token endpoint.

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use oauth2::{AuthorizationCode, PkceCodeVerifier, RefreshToken};
use url::Url;

use crate::client_auth::ClientCredentials;
use crate::error::Error;
use crate::scope::Scopes;

/// The `grant_type` of the device access token request (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The grant a token request uses.
pub enum Grant<'a> {
    /// RFC 6749 §4.1.3, with the PKCE verifier of RFC 7636 §4.5.
    AuthorizationCode {
        /// The code from the authorization response.
        code: &'a AuthorizationCode,
        /// The PKCE verifier.
        verifier: &'a PkceCodeVerifier,
        /// The redirect URI of the authorization request.
        redirect_uri: &'a str,
    },
    /// RFC 6749 §6.
    RefreshToken {
        /// The refresh token.
        refresh_token: &'a RefreshToken,
        /// The scopes to ask for (the granted ones, to keep them).
        scopes: Option<&'a Scopes>,
    },
    /// RFC 6749 §4.4: the client acting on its own behalf, no user.
    ClientCredentials {
        /// The scopes to ask for.
        scopes: Option<&'a Scopes>,
    },
    /// RFC 7523 §2.1: a JWT as the authorization grant (a workload identity token, SEP-1933;
    /// an ID-JAG, SEP-990).
    JwtBearer {
        /// The assertion, sent as the `assertion` parameter.
        assertion: &'a str,
        /// The scopes to ask for.
        scopes: Option<&'a Scopes>,
    },
    /// RFC 8628 §3.4: a poll for the tokens of an approved device code.
    DeviceCode {
        /// The `device_code` of the device authorization response.
        device_code: &'a str,
    },
}

/// Builds a token request: form-encoded body, `Accept: application/json` (without it some
/// servers, GitHub among them, answer form-encoded), client authentication, and the RFC 8707
/// `resource`.
pub fn token_request(
    endpoint: &Url,
    grant: Grant<'_>,
    client: &ClientCredentials,
    resource: Option<&str>,
) -> Result<http::Request<Bytes>, Error> {
    let mut form: Vec<(&'static str, String)> = Vec::with_capacity(8);
    match grant {
        Grant::AuthorizationCode {
            code,
            verifier,
            redirect_uri,
        } => {
            form.push(("grant_type", "authorization_code".into()));
            form.push(("code", code.secret().clone()));
            form.push(("redirect_uri", redirect_uri.into()));
            form.push(("code_verifier", verifier.secret().clone()));
        }
        Grant::RefreshToken {
            refresh_token,
            scopes,
        } => {
            form.push(("grant_type", "refresh_token".into()));
            form.push(("refresh_token", refresh_token.secret().clone()));
            if let Some(scopes) = scopes.filter(|s| !s.is_empty()) {
                form.push(("scope", scopes.to_string()));
            }
        }
        Grant::ClientCredentials { scopes } => {
            form.push(("grant_type", "client_credentials".into()));
            if let Some(scopes) = scopes.filter(|s| !s.is_empty()) {
                form.push(("scope", scopes.to_string()));
            }
        }
        Grant::JwtBearer { assertion, scopes } => {
            form.push((
                "grant_type",
                crate::assertion_grant::JWT_BEARER_GRANT_TYPE.into(),
            ));
            form.push(("assertion", assertion.into()));
            if let Some(scopes) = scopes.filter(|s| !s.is_empty()) {
                form.push(("scope", scopes.to_string()));
            }
        }
        Grant::DeviceCode { device_code } => {
            form.push(("grant_type", DEVICE_CODE_GRANT_TYPE.into()));
            form.push(("device_code", device_code.into()));
        }
    }
    if let Some(resource) = resource {
        form.push(("resource", resource.into()));
    }
    form_post(endpoint, form, client)
}

/// A form POST to a token-style endpoint (RFC 6749 §3.2: `application/x-www-form-urlencoded`,
/// a JSON answer), authenticated with `client` (a Basic header or form fields).
pub(crate) fn form_post(
    endpoint: &Url,
    mut form: Vec<(&'static str, String)>,
    client: &ClientCredentials,
) -> Result<http::Request<Bytes>, Error> {
    let mut headers = http::HeaderMap::new();
    client.apply(&mut form, &mut headers);
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let mut req = http::Request::post(endpoint.as_str())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json")
        .body(Bytes::from(body))
        .map_err(|e| crate::url_policy::unusable_url(endpoint.as_str(), e))?;
    req.headers_mut().extend(headers);
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_auth::ClientAuthMethod;

    #[test]
    fn request_shape() {
        // The client-credentials grant names its scopes, and an empty set is no `scope` at all.
        let public = ClientCredentials {
            client_id: "c".into(),
            client_secret: None,
            method: ClientAuthMethod::None,
            assertion: None,
        };
        let endpoint = Url::parse("https://as.example.com/token").unwrap();
        let scope_of = |scopes: Option<&Scopes>| {
            let req = token_request(
                &endpoint,
                Grant::ClientCredentials { scopes },
                &public,
                None,
            )
            .unwrap();
            url::form_urlencoded::parse(req.body())
                .find(|(k, _)| k == "scope")
                .map(|(_, v)| v.into_owned())
        };
        assert_eq!(
            scope_of(Some(&Scopes::parse("a b"))).as_deref(),
            Some("a b")
        );
        assert_eq!(scope_of(Some(&Scopes::default())), None);
        assert_eq!(scope_of(None), None);

        let client = ClientCredentials {
            client_id: "c".into(),
            client_secret: None,
            method: ClientAuthMethod::None,
            assertion: None,
        };
        let code = AuthorizationCode::new("the code".into());
        let verifier = PkceCodeVerifier::new("v".into());
        let req = token_request(
            &Url::parse("https://as.example.com/token").unwrap(),
            Grant::AuthorizationCode {
                code: &code,
                verifier: &verifier,
                redirect_uri: "http://127.0.0.1/cb",
            },
            &client,
            Some("https://mcp.example.com/mcp"),
        )
        .unwrap();
        assert_eq!(req.method(), http::Method::POST);
        assert_eq!(req.headers()[ACCEPT], "application/json");
        let body = std::str::from_utf8(req.body()).unwrap();
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("grant_type"), Some("authorization_code"));
        assert_eq!(get("code"), Some("the code"));
        assert_eq!(get("code_verifier"), Some("v"));
        assert_eq!(get("resource"), Some("https://mcp.example.com/mcp"));
        assert_eq!(get("client_id"), Some("c"));
    }
}
