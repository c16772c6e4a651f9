//! The refresh lease of a [`RedisStore`]: taken with `SET NX PX` and a bounded, jittered
//! backoff, renewed while its holder lives, released by a compare-and-delete script.

use std::time::Duration;

use ::redis::aio::ConnectionManager;
use ::redis::RedisError;
use mcp_oauth_flow::{Error, ErrorKind};
use tokio::runtime::Handle;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::scripts::{RELEASE, RENEW};
use super::{redis_error, RedisStore, LOCK};

/// The first pause between two attempts to take a held lease; it doubles up to
/// [`LEASE_POLL_MAX`]. A refresh is one token request, so most waits are short.
const LEASE_POLL_FIRST: Duration = Duration::from_millis(5);
const LEASE_POLL_MAX: Duration = Duration::from_millis(200);
/// The longest a holder keeps its lease by renewing it: past the layer's flow deadline (2
/// minutes by default) with room, so a live refresh keeps it, and a holder stuck for good
/// gives it back.
const MAX_HOLD: Duration = Duration::from_secs(5 * 60);

impl RedisStore {
    pub(super) async fn acquire(&self, resource: &str) -> Result<Lease, Error> {
        let runtime = Handle::try_current().map_err(|e| {
            Error::new(ErrorKind::Store, "RedisStore::lock needs a tokio runtime").with_source(e)
        })?;
        // Returned once the SET succeeds; dropped on any other way out, which deletes the key
        // only if it holds this lease's token. After an error that matters: the SET may have
        // been applied with only its reply lost, and must not block the fleet for a whole TTL.
        let mut lease = Lease {
            conn: self.conn.clone(),
            key: self.key(LOCK, resource),
            token: lease_token()?,
            runtime,
            renewal: None,
        };
        let ttl_ms = u64::try_from(self.lock_ttl.as_millis()).unwrap_or(u64::MAX);
        let mut set = ::redis::cmd("SET");
        set.arg(&lease.key)
            .arg(&lease.token)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms);
        let mut conn = self.conn.clone();
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            match set.query_async::<Option<String>>(&mut conn).await {
                Ok(Some(_)) => {
                    lease.renewal = Some(lease.renew_every(self.lock_ttl));
                    return Ok(lease);
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(redis_error(
                        format!("cannot take the refresh lease of {resource}"),
                        e,
                    ))
                }
            }
            let waited = started.elapsed();
            if waited >= self.lock_wait {
                return Err(Error::new(
                    ErrorKind::Store,
                    format!(
                        "the refresh lease of {resource} was still held by another process after \
                         {:?}",
                        self.lock_wait
                    ),
                )
                // The holder releases it or its lease expires: a later call gets it.
                .mark_transient());
            }
            if attempt == 0 {
                debug!(%resource, "refresh lease held by another process; waiting");
            }
            tokio::time::sleep(poll_delay(attempt).min(self.lock_wait - waited)).await;
            attempt = attempt.saturating_add(1);
        }
    }
}

/// A held refresh lease. Dropping it deletes the lease key if it still holds this lease's token.
pub(super) struct Lease {
    conn: ConnectionManager,
    pub(super) key: String,
    pub(super) token: String,
    /// The runtime the lease was taken on: `Drop` is synchronous, so the release (one round trip)
    /// is spawned there. If that runtime is gone, the TTL frees the lease.
    runtime: Handle,
    /// The task that keeps the lease alive while it is held (see [`Lease::renew_every`]).
    renewal: Option<AbortHandle>,
}

impl Lease {
    /// Extends the lease to `ttl` again every third of it, for as long as it is held (at most
    /// [`MAX_HOLD`]): a
    /// refresh may take longer than the TTL (the layer allows each token request 30 s, a DPoP
    /// nonce challenge makes two, and the flow deadline is 2 minutes), and a lease that expired
    /// under its holder lets another process send the same refresh token, which a server with
    /// reuse detection answers by revoking the grant (RFC 6749 §10.4, RFC 9700 §4.14.2). The
    /// TTL keeps its job: a crashed holder renews nothing, and its lease expires within it.
    fn renew_every(&self, ttl: Duration) -> AbortHandle {
        let (mut conn, key, token) = (self.conn.clone(), self.key.clone(), self.token.clone());
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let every = (ttl / 3).max(Duration::from_millis(1));
        // A holder that is alive but never polled again (a flight whose callers were all
        // cancelled) must not keep the lease for as long as the process lives: renewals stop
        // after MAX_HOLD, and the lease then expires within its TTL.
        let stop_at = Instant::now() + MAX_HOLD.max(ttl);
        self.runtime
            .spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    if Instant::now() >= stop_at {
                        warn!(%key, "a refresh lease was held past its longest hold; not renewing it");
                        return;
                    }
                    let renewed: Result<i64, RedisError> = RENEW
                        .key(&key)
                        .arg(&token)
                        .arg(ttl_ms)
                        .invoke_async(&mut conn)
                        .await;
                    match renewed {
                        Ok(1) => {}
                        Ok(_) => {
                            warn!(%key, "a refresh lease expired while it was held; not renewing it");
                            return;
                        }
                        // The next renewal may get through; the TTL still runs meanwhile.
                        Err(e) => warn!(%key, error = %e, "could not renew a refresh lease"),
                    }
                }
            })
            .abort_handle()
    }

    /// Stops the renewals (if they run): the lease is being released, or its holder died.
    fn stop_renewing(&mut self) {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
    }

    /// A holder that dies without releasing: no renewal and no release, so the lease lives
    /// out its TTL.
    #[cfg(test)]
    pub(super) fn crash(mut self) {
        self.stop_renewing();
        std::mem::forget(self);
    }

    /// Releases the lease now and waits for the answer.
    ///
    /// The key stays in `self` until the answer: a release cut short (the flight's deadline
    /// drops this future before the command was sent, while the connection reconnects, say)
    /// leaves `Drop` to send it in the background, rather than every other process waiting
    /// out the lease's TTL.
    pub(super) async fn release_now(mut self) {
        self.stop_renewing();
        let mut conn = self.conn.clone();
        if let Err(e) = release(&mut conn, &self.key, &self.token).await {
            warn!(key = %self.key, error = %e, "could not release a refresh lease; it expires with its TTL");
        }
        // Released (or failed, and said so): nothing for `Drop` to send.
        self.key.clear();
        self.token.clear();
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop_renewing();
        if self.key.is_empty() {
            // Already released by `release_now`.
            return;
        }
        let mut conn = self.conn.clone();
        let key = std::mem::take(&mut self.key);
        let token = std::mem::take(&mut self.token);
        self.runtime.spawn(async move {
            if let Err(e) = release(&mut conn, &key, &token).await {
                warn!(%key, error = %e, "could not release a refresh lease; it expires with its TTL");
            }
        });
    }
}

/// Deletes the lease at `key` if it still holds `token`; returns whether it did.
pub(super) async fn release(
    conn: &mut ConnectionManager,
    key: &str,
    token: &str,
) -> Result<bool, RedisError> {
    let deleted: i64 = RELEASE.key(key).arg(token).invoke_async(conn).await?;
    Ok(deleted == 1)
}

/// A lease token: random, so a holder can tell its own lease from a later holder's.
fn lease_token() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| {
        Error::new(ErrorKind::Store, "no randomness for a refresh lease").with_source(e)
    })?;
    Ok(crate::hex::lower_hex(&bytes))
}

/// The pause before attempt `attempt + 1` to take a held lease: doubling from
/// [`LEASE_POLL_FIRST`] up to [`LEASE_POLL_MAX`], scaled by a random 50–150 % so the processes
/// of a fleet do not poll in lockstep.
fn poll_delay(attempt: u32) -> Duration {
    let base = LEASE_POLL_FIRST
        .saturating_mul(1 << attempt.min(8))
        .min(LEASE_POLL_MAX);
    let mut bytes = [0u8; 4];
    let sample = match getrandom::getrandom(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    };
    base.mul_f64(0.5 + sample)
}
