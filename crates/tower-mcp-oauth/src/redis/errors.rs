//! How a [`RedisStore`](super::RedisStore)'s failures read: which Redis errors may pass (a
//! server down, loading or failing over) and which will not, and its URL without its password.

use ::redis::RedisError;
use mcp_oauth_flow::{Error, ErrorKind};

pub(super) fn redis_error(message: String, source: RedisError) -> Error {
    // The server down, slow or gone mid-call may come back, as may one busy for a moment:
    // loading its data after a restart (`LOADING`), a failover under way (`MASTERDOWN`,
    // `TRYAGAIN`, `CLUSTERDOWN`, a write that reached a demoted primary, `READONLY`), which
    // the redis crate tells to wait and try again. A refused command, a bad URL or missing
    // permission will not.
    let transient = source.is_io_error()
        || source.is_timeout()
        || source.is_connection_dropped()
        || source.is_connection_refusal()
        || matches!(
            source.retry_method(),
            ::redis::RetryMethod::WaitAndRetry | ::redis::RetryMethod::RefreshSlotsAndRetry
        );
    let error = Error::new(ErrorKind::Store, format!("{message}: {source}")).with_source(source);
    if transient {
        error.mark_transient()
    } else {
        error
    }
}

/// `url` without its password and query (a `redis+unix` URL carries the password as `pass=`).
pub(super) fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "<unparsable Redis URL>".to_owned();
    };
    if parsed.password().is_some() {
        // Only fails for URLs that cannot have a password, which then have none.
        let _ = parsed.set_password(Some("***"));
    }
    parsed.set_query(None);
    parsed.set_fragment(None);
    parsed.to_string()
}
