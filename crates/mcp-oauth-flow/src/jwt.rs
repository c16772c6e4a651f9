//! Reading a JWT's `exp` claim (RFC 7519 §4.1.4), the expiry of last resort when a token
//! response has no usable `expires_in`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// The `exp` claim of a JWT, read without verifying anything (RFC 7519 §4.1.4). `None` for an
/// opaque token.
///
/// ```
/// use mcp_oauth_flow::token::jwt_expiry;
/// // {"alg":"none"}.{"exp":1700000000}.
/// assert_eq!(jwt_expiry("eyJhbGciOiJub25lIn0.eyJleHAiOjE3MDAwMDAwMDB9."), Some(1_700_000_000));
/// assert_eq!(jwt_expiry("opaque-token"), None);
/// ```
pub fn jwt_expiry(token: &str) -> Option<u64> {
    let mut parts = token.split('.');
    let (_header, payload) = (parts.next()?, parts.next()?);
    parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?;
    exp.as_u64()
        .or_else(|| exp.as_f64().filter(|f| *f > 0.0).map(|f| f as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_jwts_have_no_expiry() {
        for bad in ["a.b", "a.b.c.d", "x.!!!.y", "eyJhIjoxfQ.eyJhIjoxfQ.x"] {
            assert_eq!(jwt_expiry(bad), None, "{bad}");
        }
    }

    /// RFC 7519 §2: a NumericDate may carry a fraction. It is rounded down, not ignored; a
    /// zero or negative one is no expiry.
    #[test]
    fn jwt_exp_with_a_fraction_is_read() {
        let jwt = |claims: &str| {
            format!(
                "{}.{}.sig",
                URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
                URL_SAFE_NO_PAD.encode(claims.as_bytes())
            )
        };
        assert_eq!(jwt_expiry(&jwt(r#"{"exp":2000.75}"#)), Some(2000));
        assert_eq!(jwt_expiry(&jwt(r#"{"exp":0.0}"#)), None);
        assert_eq!(jwt_expiry(&jwt(r#"{"exp":-3.5}"#)), None);
        assert_eq!(jwt_expiry(&jwt(r#"{"exp":"2000"}"#)), None);
        assert_eq!(jwt_expiry(&jwt(r#"{"sub":"x"}"#)), None);
    }
}
