//! [`Escaped`]: text from a server shown in an error or a report without its control
//! characters, and [`unsafe_to_display`], the one rule of which characters those are. A leaf:
//! the error and the report both use it, and so do the layer's device prompt and the examples.

use std::fmt;

/// Text shown with the characters [`unsafe_to_display`] names escaped (`\n`, `\u{1b}`):
/// messages carry values a server sent (an issuer, a URL, a client id), and through a terminal
/// or a log line a server's control characters would clear a screen or forge a line.
pub(crate) struct Escaped<'a>(pub(crate) &'a str);

/// Whether `c` must not reach a terminal or a log line as a server sent it:
///
/// - a control character (C0, DEL, C1): escape sequences that move the cursor, retitle the
///   window, write the clipboard or make a link show another address; a line break that forges
///   a line;
/// - one that steers or hides text without being seen: the bidirectional marks, embeddings,
///   overrides and isolates (an issuer shown reversed, Unicode TR #9), the line and paragraph
///   separators (a line break to some terminals and log viewers), and Unicode's default
///   ignorable code points (zero-width spaces and joiners, the soft hyphen, the Hangul fillers,
///   variation selectors, the interlinear annotation marks, the tag characters), which a
///   terminal draws as nothing.
///
/// Text a person must read to decide (a URL to open, a code to type, a server's message) is
/// shown with these replaced or escaped. One rule for the crate's errors and reports, the
/// layer's device prompt and the examples' output.
///
/// ```
/// use mcp_oauth_flow::unsafe_to_display;
/// let shown: String = "pay\u{202E}lapyap\u{1b}[2J\u{E0041}"
///     .chars()
///     .map(|c| if unsafe_to_display(c) { '\u{FFFD}' } else { c })
///     .collect();
/// assert_eq!(shown, "pay\u{FFFD}lapyap\u{FFFD}[2J\u{FFFD}");
/// assert!(!unsafe_to_display('é') && !unsafe_to_display(' ') && !unsafe_to_display('/'));
/// ```
pub fn unsafe_to_display(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'..='\u{1160}'
                | '\u{17B4}'..='\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFFB}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(unsafe_to_display) {
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

    /// What a terminal draws as nothing is escaped too: a soft hyphen, a Hangul filler, a
    /// variation selector, a tag character (ASCII smuggled as tags reads as nothing).
    #[test]
    fn what_a_terminal_draws_as_nothing_is_shown_escaped() {
        for c in [
            '\u{AD}',
            '\u{3164}',
            '\u{FE0F}',
            '\u{E0041}',
            '\u{FFFB}',
            '\u{180E}',
        ] {
            let shown = Escaped(&format!("a{c}b")).to_string();
            assert_eq!(shown, format!("a{}b", c.escape_default()), "{c:?}");
        }
        // And nothing else: letters of every script, marks that are seen, punctuation.
        for c in ['é', 'ß', 'д', '中', '\u{0301}', '€', '…', '\u{00A0}'] {
            assert!(!unsafe_to_display(c), "{c:?}");
        }
    }
}
