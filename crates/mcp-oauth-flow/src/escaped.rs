//! [`Escaped`]: text from a server shown in an error or a report without its control
//! characters. A leaf: the error and the report both use it.

use std::fmt;

/// Text shown with its control characters escaped (`\n`, `\u{1b}`): messages carry values a
/// server sent (an issuer, a URL, a client id), and through a terminal or a log line a
/// server's control characters would clear a screen or forge a line. So are the characters
/// that steer how text is laid out without being seen: the bidirectional overrides and
/// isolates (an issuer shown reversed, Unicode TR #9), the zero-width ones, and the line and
/// paragraph separators (a log line split).
pub(crate) struct Escaped<'a>(pub(crate) &'a str);

/// Whether `c` is escaped when shown (see [`Escaped`]).
fn unseen(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(unseen) {
            f.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            write!(f, "{}", c.escape_default())?;
            rest = &rest[at + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_steers_the_text_unseen_is_shown_escaped() {
        let shown = Escaped("a\u{1b}[2J\nb\u{202E}cba\u{2066}\u{2028}\u{200B}é").to_string();
        assert_eq!(
            shown,
            "a\\u{1b}[2J\\nb\\u{202e}cba\\u{2066}\\u{2028}\\u{200b}é"
        );
        // Shown twice, the same: nothing it writes is escaped again.
        assert_eq!(Escaped(&shown).to_string(), shown);
    }
}
