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
