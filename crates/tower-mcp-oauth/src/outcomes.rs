//! How each MCP server's last flow ended, for [`status`](crate::OAuthLayer::status): kept in
//! memory and in the token store, so a status page in another process sharing the store, or in
//! the next run, shows the same last error.

use mcp_oauth_flow::Error;
use tracing::warn;

use crate::state::LayerState;
use crate::store::LastFlow;

/// Records how a flow for `server` ended. A failure is always written to the store; a success
/// only when the store holds a failure to clear, so a refresh costs no store write. A store
/// that cannot keep it is logged, never the flow's error: the record is for a status page.
pub(crate) async fn record(state: &LayerState, server: &str, result: &Result<(), Error>) {
    let record = LastFlow::of(result, state.now());
    state.flights.record_outcome(server, record.clone());
    let clears_a_failure = || async {
        matches!(
            state.store.load_last_flow(server).await,
            Ok(Some(LastFlow::Failed(_))) | Err(_)
        )
    };
    if result.is_err() || clears_a_failure().await {
        if let Err(e) = state.store.save_last_flow(server, &record).await {
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
