//! How each MCP server's last flow ended, for [`status`](crate::OAuthLayer::status): kept in
//! memory and in the token store, so a status page in another process sharing the store, or in
//! the next run, shows the same last error.

use mcp_oauth_flow::{Error, ErrorKind};
use tracing::warn;

use crate::state::LayerState;
use crate::store::LastFlow;
use crate::timer::Deadline;

/// What a read of the last flow's record says when the store did not answer within its
/// deadline: here, and for a status.
pub(crate) const NOT_READ_STATUS: &str = "the token store did not read the status";

/// Records how a flow for `server` ended. A failure is written to the store, but for a web
/// layer's refusal of a user who must connect (`InteractionRequired` in a layer whose users
/// connect in the browser, `LayerState::users_connect_in_browser`: the status's `connected`
/// says it already) and a flow a logout ended ([`ErrorKind::LoggedOut`]: the logout is what
/// happened, not a fault of the server); a success only when the store holds a failure to
/// clear, so a refresh costs no store write. A store that cannot keep it is logged, never the
/// flow's error: the record is for a status page.
///
/// Those two stay in this process's memory only: a web app's every unconnected user (an app
/// may make up an id per anonymous visitor) meets the refusal on each call, and a record in
/// the store for each, kept for ever by a memory or file store, would grow without bound; and
/// after a logout every process that held the tokens would show it as the server's error.
pub(crate) async fn record(
    state: &LayerState,
    server: &str,
    result: &Result<(), Error>,
    writes: &mut Deadline<'_>,
) {
    let record = LastFlow::of(result, state.now());
    state.flights.record_outcome(server, record.clone());
    // Unread in time: written anyway, if time is left.
    let clears_a_failure = match result {
        Err(e) if e.kind() == ErrorKind::LoggedOut => false,
        Err(e) if state.users_connect_in_browser && e.kind() == ErrorKind::InteractionRequired => {
            false
        }
        Err(_) => true,
        Ok(()) => matches!(
            writes
                .step(NOT_READ_STATUS, state.store.load_last_flow(server))
                .await,
            Ok(Some(LastFlow::Failed(_))) | Err(_)
        ),
    };
    if clears_a_failure {
        let save = state.store.save_last_flow(server, &record);
        if let Err(e) = writes
            .step("the token store did not write the status", save)
            .await
        {
            warn!(error = %e, %server, "could not store how the flow ended");
        }
    }
}

/// How the last flow for `server` ended: the later of what this process remembers and what
/// the store holds (another process, or an earlier run, may have written it).
pub(crate) async fn last_flow(state: &LayerState, server: &str) -> Result<Option<LastFlow>, Error> {
    let stored = state.store.load_last_flow(server).await?;
    Ok(LastFlow::newest(stored, state.flights.last_flow(server)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mcp_oauth_flow::client::ClientRegistration;
    use mcp_oauth_flow::token::TokenSet;
    use mcp_oauth_flow::ErrorKind;

    use super::*;
    use crate::store::{MemoryStore, Replaced, TokenStore};
    use crate::{BoxFuture, ClientConfig, HeadlessAuthorizer, OAuthLayer};

    /// A third-party store written before `save_last_flow` existed: only the required methods.
    struct Older(MemoryStore);

    impl TokenStore for Older {
        fn load_tokens<'a>(&'a self, r: &'a str) -> BoxFuture<'a, Result<Option<TokenSet>, Error>> {
            self.0.load_tokens(r)
        }
        fn save_tokens<'a>(
            &'a self,
            r: &'a str,
            t: &'a TokenSet,
        ) -> BoxFuture<'a, Result<(), Error>> {
            self.0.save_tokens(r, t)
        }
        fn compare_and_swap_tokens<'a>(
            &'a self,
            r: &'a str,
            c: Option<&'a TokenSet>,
            n: Option<&'a TokenSet>,
        ) -> BoxFuture<'a, Result<Replaced, Error>> {
            self.0.compare_and_swap_tokens(r, c, n)
        }
        fn load_client<'a>(
            &'a self,
            i: &'a str,
        ) -> BoxFuture<'a, Result<Option<ClientRegistration>, Error>> {
            self.0.load_client(i)
        }
        fn save_client<'a>(
            &'a self,
            c: &'a ClientRegistration,
        ) -> BoxFuture<'a, Result<(), Error>> {
            self.0.save_client(c)
        }
        fn remove_client<'a>(&'a self, i: &'a str) -> BoxFuture<'a, Result<(), Error>> {
            self.0.remove_client(i)
        }
    }

    fn layer(store: impl TokenStore) -> OAuthLayer {
        OAuthLayer::new(
            ClientConfig::new("http://127.0.0.1:1/cb"),
            HeadlessAuthorizer::new(),
        )
        .token_store(store)
    }

    /// Records how a flow for `https://h/mcp` ended, within a deadline of its own.
    async fn record_server_h(layer: &OAuthLayer, result: &Result<(), Error>) {
        record(
            &layer.state,
            "https://h/mcp",
            result,
            &mut layer.state.deadline(),
        )
        .await;
    }

    #[tokio::test]
    async fn a_store_that_keeps_nothing_still_shows_this_processes_error() {
        let layer = layer(Older(MemoryStore::new()));
        let failed = Err(Error::new(ErrorKind::Timeout, "no answer"));
        record_server_h(&layer, &failed).await;
        let last = last_flow(&layer.state, "https://h/mcp").await.unwrap();
        assert_eq!(last.unwrap().error().unwrap().kind, ErrorKind::Timeout);
    }

    #[tokio::test]
    async fn a_success_writes_only_to_clear_a_stored_failure() {
        let store = Arc::new(MemoryStore::new());
        let layer = layer(Arc::clone(&store));
        record_server_h(&layer, &Ok(())).await;
        assert!(
            store
                .load_last_flow("https://h/mcp")
                .await
                .unwrap()
                .is_none(),
            "nothing to clear"
        );
        let failed = Err(Error::new(ErrorKind::Timeout, "no answer"));
        record_server_h(&layer, &failed).await;
        assert!(store
            .load_last_flow("https://h/mcp")
            .await
            .unwrap()
            .unwrap()
            .error()
            .is_some());
        record_server_h(&layer, &Ok(())).await;
        let cleared = store
            .load_last_flow("https://h/mcp")
            .await
            .unwrap()
            .unwrap();
        assert!(cleared.error().is_none());
    }
}
