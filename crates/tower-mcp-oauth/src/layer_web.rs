//! The crate-internal hooks the web login ([`WebLogin`](crate::web::WebLogin)) uses on the
//! per-user layers it keeps: whether anything still holds one, a login's tokens installed in
//! one a service still holds, and the login's clock.

use std::sync::Arc;

use mcp_oauth_flow::token::TokenSet;
use url::Url;

use crate::clock::Clock;
use crate::layer::OAuthLayer;

impl OAuthLayer {
    /// How many hold this layer's token cache: its clones, the services made from it, the
    /// requests and flows in flight through them, and the layers a builder call made from a
    /// clone of it (`layer_for(user).max_replay_bytes(..)` copies the settings, and shares the
    /// cache a logout must reach).
    pub(crate) fn holders(&self) -> usize {
        // The state's holders, plus the cache's other than this state (forks, services).
        Arc::strong_count(&self.state) + Arc::strong_count(&self.state.cache) - 1
    }

    /// A web login for this layer's user completed, while a service the app keeps holds the
    /// layer: the new tokens for `resource` are installed now (the layer would otherwise go on
    /// sending the ones it holds), and the last failure for `server` (a "must connect") is
    /// forgotten.
    pub(crate) fn adopt_login(&self, server: &Url, resource: Url, tokens: TokenSet) {
        // The store holds them (the login saved them): no write of this layer's is pending.
        self.state.flights.store_caught_up(resource.as_str());
        crate::stored::install(&self.state, resource, tokens);
        self.state.flights.forget_failure(server.as_str());
    }

    /// Reads the time from `clock`, the web login's, which every user's layer shares.
    pub(crate) fn with_shared_clock(mut self, clock: Clock) -> Self {
        self.state_mut().clock = clock;
        self
    }
}
