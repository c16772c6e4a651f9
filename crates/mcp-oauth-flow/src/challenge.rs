//! `WWW-Authenticate` parsing (RFC 9110 §11.6.1, RFC 6750 §3, RFC 9728 §5.1).
//!
//! The grammar is a comma-separated list of challenges whose parameters are themselves
//! comma-separated, so a comma may end a parameter or a whole challenge. The parser decides by
//! looking ahead: `name =` continues the current challenge, anything else starts a new one.

use crate::error::{Error, ErrorKind};

/// The most parameters one challenge may carry. Real ones carry a handful (`realm`, `scope`,
/// `error`, `error_description`, `resource_metadata`, `algs`).
const MAX_PARAMS: usize = 64;

/// One challenge of a `WWW-Authenticate` header: a scheme and its parameters.
///
/// Parameter names are case-insensitive (RFC 9110 §11.2) and stored lowercased; values are kept
/// as sent, with quoted-string escapes removed.
///
/// ```
/// use mcp_oauth_flow::challenge::Challenge;
/// let challenges = Challenge::parse_all([
///     r#"Bearer error="invalid_token", scope="mcp:read mcp:write", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource""#,
/// ]).unwrap();
/// let bearer = &challenges[0];
/// assert!(bearer.scheme_is("bearer"));
/// assert_eq!(bearer.param("scope"), Some("mcp:read mcp:write"));
/// assert_eq!(bearer.error(), Some("invalid_token"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    scheme: String,
    token68: Option<String>,
    params: Vec<(String, String)>,
}

impl Challenge {
    /// Parses every challenge in a set of `WWW-Authenticate` field values (a response may carry
    /// several header lines; each may hold several challenges).
    ///
    /// A field value that cannot be read and names neither `Bearer` nor `DPoP` (another
    /// scheme's, `Basic realm=My Realm` unquoted) is left out when another value can be read:
    /// the client acts on neither, and it must not hide a readable `Bearer` challenge on a line
    /// of its own. One that may hold an OAuth challenge is an error, as is a set of which
    /// nothing can be read. Bytes past ASCII, which RFC 9110 allows in a quoted string
    /// (`obs-text`, §5.6.4; an ISO-8859-1 `error_description`), are read as U+FFFD.
    ///
    /// ```
    /// use mcp_oauth_flow::challenge::Challenge;
    /// let all = Challenge::parse_all([
    ///     &b"Basic realm=My Realm"[..],
    ///     &b"Bearer error_description=\"caf\xE9\", scope=\"a\""[..],
    /// ]).unwrap();
    /// assert_eq!(all.len(), 1);
    /// assert_eq!(all[0].scope(), Some("a"));
    /// assert_eq!(all[0].param("error_description"), Some("caf\u{FFFD}"));
    /// // A broken line that may be an OAuth challenge is an error.
    /// assert!(Challenge::parse_all(["Bearer scope=\"a\", scope=\"b\"", "Basic realm=\"x\""]).is_err());
    /// ```
    pub fn parse_all<'a, I>(values: I) -> Result<Vec<Challenge>, Error>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]> + 'a,
    {
        let mut out = Vec::new();
        let mut unreadable = None;
        for value in values {
            let text = String::from_utf8_lossy(value.as_ref());
            let mut these = Vec::new();
            match Parser::new(&text).challenges(&mut these) {
                Ok(()) => out.extend(these),
                Err(e) if !may_name_an_oauth_scheme(&text) => {
                    unreadable.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        match unreadable {
            Some(e) if out.is_empty() => Err(e),
            _ => Ok(out),
        }
    }

    /// Parses the `WWW-Authenticate` headers of a response.
    pub fn from_headers(headers: &http::HeaderMap) -> Result<Vec<Challenge>, Error> {
        Self::parse_all(
            headers
                .get_all(http::header::WWW_AUTHENTICATE)
                .iter()
                .map(|v| v.as_bytes()),
        )
    }

    /// The auth scheme as sent (`Bearer`, `DPoP`, …).
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// Whether the scheme is `scheme`, compared case-insensitively (RFC 9110 §11.1).
    pub fn scheme_is(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }

    /// The token68 form of the challenge, if it used one instead of parameters.
    pub fn token68(&self) -> Option<&str> {
        self.token68.as_deref()
    }

    /// A parameter by (case-insensitive) name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All parameters, names lowercased, in the order sent.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The RFC 6750 §3 `error` parameter.
    pub fn error(&self) -> Option<&str> {
        self.param("error")
    }

    /// The RFC 6750 §3 `scope` parameter.
    pub fn scope(&self) -> Option<&str> {
        self.param("scope")
    }

    /// The RFC 9728 §5.1 `resource_metadata` parameter.
    pub fn resource_metadata(&self) -> Option<&str> {
        self.param("resource_metadata")
    }

    /// Whether this is the RFC 6750 §3.1 `insufficient_scope` error, the trigger for step-up.
    pub fn is_insufficient_scope(&self) -> bool {
        self.error() == Some("insufficient_scope")
    }
}

/// Picks the challenge an OAuth client should act on: the first `Bearer` or `DPoP` one.
///
/// ```
/// use mcp_oauth_flow::challenge::{select_challenge, Challenge};
/// let all = Challenge::parse_all([r#"Basic realm="x", Bearer scope="a""#]).unwrap();
/// assert_eq!(select_challenge(&all).unwrap().scope(), Some("a"));
/// ```
pub fn select_challenge(challenges: &[Challenge]) -> Option<&Challenge> {
    challenges
        .iter()
        .find(|c| c.scheme_is("bearer") || c.scheme_is("dpop"))
}

/// Whether a field value may hold a `Bearer` (RFC 6750 §3) or `DPoP` (RFC 9449 §7.1)
/// challenge, readable or not: a comma-separated piece of it starts with either scheme's name
/// (a piece of auth-params starts with a parameter name and `=` instead).
///
/// ```
/// use mcp_oauth_flow::challenge::may_name_an_oauth_scheme;
/// assert!(may_name_an_oauth_scheme(r#"Basic realm="x", Bearer scope="unterminated"#));
/// assert!(!may_name_an_oauth_scheme("Basic realm=My Realm"));
/// ```
pub fn may_name_an_oauth_scheme(value: &str) -> bool {
    value
        .split(',')
        .filter_map(|piece| piece.split_whitespace().next())
        .any(|word| word.eq_ignore_ascii_case("bearer") || word.eq_ignore_ascii_case("dpop"))
}

/// The challenge a `403` steps up on: whichever `Bearer` or `DPoP` challenge says
/// `insufficient_scope` (RFC 6750 §3.1), not only the first OAuth one (a server answering a
/// `DPoP` request may list `Bearer realm=…` first).
///
/// ```
/// use mcp_oauth_flow::challenge::{insufficient_scope_challenge, Challenge};
/// let all = Challenge::parse_all([r#"Bearer realm="mcp", DPoP error="insufficient_scope", scope="w""#]).unwrap();
/// assert_eq!(insufficient_scope_challenge(&all).unwrap().scope(), Some("w"));
/// let none = Challenge::parse_all([r#"Bearer error="invalid_token""#]).unwrap();
/// assert!(insufficient_scope_challenge(&none).is_none());
/// ```
pub fn insufficient_scope_challenge(challenges: &[Challenge]) -> Option<&Challenge> {
    challenges
        .iter()
        .filter(|c| c.scheme_is("bearer") || c.scheme_is("dpop"))
        .find(|c| c.is_insufficient_scope())
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidChallenge, msg)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            s: text.as_bytes(),
            pos: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn skip_ows_and_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.pos += 1;
        }
    }

    fn token(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        (self.pos > start).then(|| {
            // Only ASCII tchars were consumed.
            std::str::from_utf8(&self.s[start..self.pos]).unwrap_or_default()
        })
    }

    fn challenges(&mut self, out: &mut Vec<Challenge>) -> Result<(), Error> {
        loop {
            self.skip_ows_and_commas();
            if self.peek().is_none() {
                return Ok(());
            }
            let scheme = self
                .token()
                .ok_or_else(|| invalid(format!("expected an auth scheme at byte {}", self.pos)))?
                .to_owned();
            let mut challenge = Challenge {
                scheme,
                token68: None,
                params: Vec::new(),
            };
            self.challenge_body(&mut challenge)?;
            out.push(challenge);
        }
    }

    /// Parses what follows a scheme: nothing, a token68, or a list of auth-params.
    fn challenge_body(&mut self, challenge: &mut Challenge) -> Result<(), Error> {
        self.skip_ows();
        match self.peek() {
            None | Some(b',') => return Ok(()),
            _ => {}
        }
        if !self.at_param_start() {
            return self.token68(challenge);
        }
        loop {
            self.param(challenge)?;
            self.skip_ows();
            match self.peek() {
                None => return Ok(()),
                Some(b',') => {
                    // A comma either separates two params or ends the challenge.
                    let save = self.pos;
                    self.skip_ows_and_commas();
                    if self.peek().is_none() {
                        return Ok(());
                    }
                    if !self.at_param_start() {
                        self.pos = save;
                        return Ok(());
                    }
                }
                Some(b) => {
                    return Err(invalid(format!(
                        "unexpected {:?} after a parameter at byte {}",
                        b as char, self.pos
                    )))
                }
            }
        }
    }

    /// Whether the cursor is at `token BWS "=" BWS` followed by something that is not `=`
    /// (which would make it the padding of a token68).
    fn at_param_start(&self) -> bool {
        let mut p = self.pos;
        let start = p;
        while self.s.get(p).copied().is_some_and(is_tchar) {
            p += 1;
        }
        if p == start {
            return false;
        }
        while matches!(self.s.get(p), Some(b' ' | b'\t')) {
            p += 1;
        }
        if self.s.get(p) != Some(&b'=') {
            return false;
        }
        p += 1;
        while matches!(self.s.get(p), Some(b' ' | b'\t')) {
            p += 1;
        }
        !matches!(self.s.get(p), None | Some(b'=' | b','))
    }

    fn token68(&mut self, challenge: &mut Challenge) -> Result<(), Error> {
        let start = self.pos;
        while self.peek().is_some_and(is_token68_char) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(invalid(format!("unexpected byte at {}", self.pos)));
        }
        while self.peek() == Some(b'=') {
            self.pos += 1;
        }
        let value = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or_default();
        challenge.token68 = Some(value.to_owned());
        self.skip_ows();
        match self.peek() {
            None | Some(b',') => Ok(()),
            Some(_) => Err(invalid("garbage after token68")),
        }
    }

    fn param(&mut self, challenge: &mut Challenge) -> Result<(), Error> {
        let name = self
            .token()
            .ok_or_else(|| invalid("expected a parameter name"))?
            .to_ascii_lowercase();
        self.skip_ows();
        if self.peek() != Some(b'=') {
            return Err(invalid(format!("parameter {name} has no value")));
        }
        self.pos += 1;
        self.skip_ows();
        let value = match self.peek() {
            Some(b'"') => self.quoted_string()?,
            _ => self
                .token()
                .ok_or_else(|| invalid(format!("parameter {name} has no value")))?
                .to_owned(),
        };
        // RFC 9110 §11.2: "Each parameter name MUST only occur once per challenge." A duplicate
        // is ambiguous (which scope? which metadata URL?), so it is refused, not guessed. The
        // names are compared each with each: bounded, so that a header of tens of thousands of
        // parameters (hyper reads heads up to hundreds of kilobytes) costs no billion compares.
        if challenge.params.len() >= MAX_PARAMS {
            return Err(invalid(format!(
                "more than {MAX_PARAMS} parameters in one challenge"
            )));
        }
        if challenge.params.iter().any(|(n, _)| *n == name) {
            return Err(invalid(format!("duplicate parameter {name}")));
        }
        challenge.params.push((name, value));
        Ok(())
    }

    fn quoted_string(&mut self) -> Result<String, Error> {
        debug_assert_eq!(self.peek(), Some(b'"'));
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(invalid("unterminated quoted string")),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let escaped = self
                        .peek()
                        .ok_or_else(|| invalid("unterminated quoted string"))?;
                    out.push(escaped);
                    self.pos += 1;
                }
                Some(b) if b == b'\t' || b >= 0x20 && b != 0x7f => {
                    out.push(b);
                    self.pos += 1;
                }
                Some(_) => return Err(invalid("control character in quoted string")),
            }
        }
        String::from_utf8(out).map_err(|_| invalid("quoted string is not UTF-8"))
    }
}

#[cfg(test)]
mod tests;
