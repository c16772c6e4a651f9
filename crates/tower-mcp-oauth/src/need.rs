//! [`Need`]: why the layer wants a token for a request, and whether some tokens meet it.

use mcp_oauth_flow::{authorization::Scopes, challenge::Challenge, token::TokenSet, Trigger};

/// Why a token is needed.
#[derive(Clone, Debug)]
pub(crate) enum Need {
    /// A `401` (with its challenge, if any).
    Unauthorized(Option<Challenge>),
    /// A `403 insufficient_scope`.
    InsufficientScope(Challenge),
    /// The token is due for refresh.
    Expiring,
}

impl Need {
    pub(crate) fn trigger(&self) -> Trigger {
        match self {
            Need::Unauthorized(_) => Trigger::Unauthorized,
            Need::InsufficientScope(_) => Trigger::InsufficientScope,
            Need::Expiring => Trigger::Expiring,
        }
    }

    pub(crate) fn challenge(&self) -> Option<Challenge> {
        match self {
            Need::Unauthorized(c) => c.clone(),
            Need::InsufficientScope(c) => Some(c.clone()),
            Need::Expiring => None,
        }
    }

    /// For a step-up, the scopes it asks for (those challenged).
    pub(crate) fn step_up_scopes(&self) -> Option<Scopes> {
        match self {
            Need::InsufficientScope(c) => Some(Scopes::parse(c.scope().unwrap_or(""))),
            _ => None,
        }
    }

    /// Whether `tokens` meet this need (for a step-up: hold every challenged scope).
    pub(crate) fn met_by(&self, tokens: &TokenSet) -> bool {
        match self {
            Need::InsufficientScope(c) => {
                let wanted = Scopes::parse(c.scope().unwrap_or(""));
                tokens
                    .scopes()
                    .is_some_and(|held| held.contains_all(&wanted))
            }
            _ => true,
        }
    }
}

/// Whether a `401` that answered `tokens` (fresh from a refresh) asks for scopes they provably
/// do not hold: its challenge names scopes (MCP 2025-11-25, "Scope Selection Strategy") and
/// the tokens' granted scopes are known and lack one. A refresh cannot widen a grant (RFC 6749
/// §6: "MUST NOT include any scope not originally granted"), so refreshing again would get the
/// same `401`; only a new authorization for the wider scopes can, as after a
/// `403 insufficient_scope` (RFC 6750 §3.1, which such servers should have sent). Scopes the
/// token response left out (RFC 6749 §5.1: then as requested) are not known to lack anything:
/// no new authorization on a guess.
pub(crate) fn refresh_cannot_meet(challenge: &Challenge, tokens: &TokenSet) -> bool {
    let wanted = Scopes::parse(challenge.scope().unwrap_or(""));
    !wanted.is_empty()
        && tokens
            .scopes()
            .is_some_and(|held| !held.contains_all(&wanted))
}

#[cfg(test)]
mod tests {
    use mcp_oauth_flow::token::TokenType;

    use super::*;

    fn challenge(header: &str) -> Challenge {
        Challenge::parse_all([header]).unwrap().remove(0)
    }

    fn tokens(scope: Option<&str>) -> TokenSet {
        let tokens = TokenSet::new("at", TokenType::Bearer, "https://as.example", "c");
        match scope {
            Some(scope) => tokens.with_scopes(Some(Scopes::parse(scope))),
            None => tokens,
        }
    }

    #[test]
    fn only_scopes_the_tokens_are_known_to_lack_need_a_new_authorization() {
        let wider = challenge(r#"Bearer error="invalid_token", scope="mcp:read mcp:write""#);
        // Granted fewer than the challenge names: a refresh keeps the grant as it is.
        assert!(refresh_cannot_meet(&wider, &tokens(Some("mcp:read"))));
        // Every named scope held (in any order, with more besides): the 401 is about
        // something else, and a refresh may cure it.
        assert!(!refresh_cannot_meet(
            &wider,
            &tokens(Some("mcp:write offline_access mcp:read"))
        ));
        // The grant's scopes unknown: no guess.
        assert!(!refresh_cannot_meet(&wider, &tokens(None)));
        // A challenge naming no scope (or an empty one) asks for none.
        let bare = challenge(r#"Bearer error="invalid_token""#);
        assert!(!refresh_cannot_meet(&bare, &tokens(Some("mcp:read"))));
        let empty = challenge(r#"Bearer scope="""#);
        assert!(!refresh_cannot_meet(&empty, &tokens(Some("mcp:read"))));
    }
}
