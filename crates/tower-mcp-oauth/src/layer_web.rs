//! The crate-internal hooks the web login ([`WebLogin`](crate::web::WebLogin)) uses on the
//! per-user layers it keeps: whether anything still holds one, a login's tokens installed in
//! one a service still holds, and the login's clock.

use std::sync::Arc;

use mcp_oauth_flow::token::TokenSet;
use url::Url;

use crate::clock::Clock;
use crate::flight::LogoutGeneration;
use crate::layer::OAuthLayer;

impl OAuthLayer {
    /// Marks a web user's layer: its users connect in the browser (see
    /// `LayerState::users_connect_in_browser`).
    pub(crate) fn users_connect_in_browser(mut self) -> Self {
        self.state_mut().users_connect_in_browser = true;
        self
    }

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

    /// The logouts so far, as a login for `server` running outside the layer's flows (a web
    /// login's code exchange) sees them before it starts.
    pub(crate) fn logout_generation(&self, server: &Url) -> LogoutGeneration {
        self.state.flights.logout_generation(server.as_str())
    }

    /// [`LoggedOut`](mcp_oauth_flow::ErrorKind::LoggedOut) when a logout that reaches the
    /// login's server, or `resource`, came after `generation`: it overrules the login, as it
    /// does the layer's own flows.
    pub(crate) fn check_logouts(
        &self,
        generation: &LogoutGeneration,
        resource: &Url,
    ) -> Result<(), mcp_oauth_flow::Error> {
        generation.check(&self.state.flights, Some(resource.as_str()))
    }

    /// Revokes the tokens of a login a logout overruled: no one uses them, and deleted
    /// unrevoked they would leave a live grant at the server with no copy to revoke it by.
    pub(crate) async fn revoke_overruled(
        &self,
        server: &Url,
        tokens: &TokenSet,
        client: &crate::HttpClient,
    ) {
        crate::logout::revoke_overruled(&self.state, server, tokens, client).await;
    }
}
