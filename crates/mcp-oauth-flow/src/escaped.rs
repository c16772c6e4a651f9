//! [`Escaped`]: text from a server shown in an error or a report without its control
//! characters. A leaf: the error and the report both use it.

use std::fmt;

/// Text shown with its control characters escaped (`\n`, `\u{1b}`): messages carry values a
/// server sent (an issuer, a URL, a client id), and through a terminal or a log line a
/// server's control characters would clear a screen or forge a line.
pub(crate) struct Escaped<'a>(pub(crate) &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(char::is_control) {
            f.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            write!(f, "{}", c.escape_default())?;
            rest = &rest[at + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}
