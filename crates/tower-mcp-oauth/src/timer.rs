//! [`Timer`]: the one thing the layer needs from a runtime to bound its own work, in the style
//! of hyper's `rt::Timer`; [`TokioTimer`] behind the default feature `tokio`.
//!
//! The layer itself spawns nothing and owns no clock. Its time limits (a sub-request, the
//! non-interactive part of a flow, the consent wait) each race the work against a sleep from
//! the configured timer; the sans-IO core never sees any of it. Without a timer (the `tokio`
//! feature off and none set) the limits are not enforced, and an outer `Timeout` is the only
//! bound.

use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::future::{select, Either};
use mcp_oauth_flow::{Error, ErrorKind};

use crate::BoxFuture;

/// A source of sleeps, so the layer can bound its own steps on any runtime.
///
/// Like hyper's `rt::Timer`: the runtime is injected, not assumed. `now` lets the layer
/// measure a deadline on the same clock its sleeps run on (tokio's paused time in tests, say).
///
/// A timer for any runtime is a few lines; here, one that counts its sleeps and never fires:
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::time::Duration;
/// use tower_mcp_oauth::{BoxFuture, Timer};
///
/// #[derive(Default)]
/// struct Counting(AtomicUsize);
///
/// impl Timer for Counting {
///     fn sleep(&self, _duration: Duration) -> BoxFuture<'static, ()> {
///         self.0.fetch_add(1, Ordering::Relaxed);
///         Box::pin(std::future::pending())
///     }
/// }
///
/// let timer = Counting::default();
/// drop(timer.sleep(Duration::from_secs(1)));
/// assert_eq!(timer.0.load(Ordering::Relaxed), 1);
/// ```
pub trait Timer: Send + Sync + 'static {
    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;

    /// The current instant on this timer's clock. Default: [`Instant::now`].
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Tokio's timer (feature `tokio`, on by default): sleeps are `tokio::time::sleep`, and `now`
/// follows tokio's clock, so tests with paused time see the limits fire at once.
///
/// Its sleeps need a Tokio runtime with the time driver (`enable_time`, or `enable_all`); one
/// made outside any runtime never fires, so the limit it was for is not enforced.
///
/// ```
/// use std::time::Duration;
/// use tower_mcp_oauth::{Timer, TokioTimer};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let before = TokioTimer.now();
/// TokioTimer.sleep(Duration::from_secs(30)).await; // paused time: no real wait
/// assert!(TokioTimer.now() - before >= Duration::from_secs(30));
/// # }
/// ```
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioTimer;

#[cfg(feature = "tokio")]
impl Timer for TokioTimer {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        match tokio::runtime::Handle::try_current() {
            Ok(_) => Box::pin(tokio::time::sleep(duration)),
            // No runtime to wake us: a sleep that never ends leaves the work unbounded rather
            // than panicking inside someone else's executor.
            Err(_) => Box::pin(std::future::pending()),
        }
    }

    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// The timer a layer starts with: tokio's with the `tokio` feature, else none.
pub(crate) fn default_timer() -> Option<std::sync::Arc<dyn Timer>> {
    #[cfg(feature = "tokio")]
    {
        Some(std::sync::Arc::new(TokioTimer))
    }
    #[cfg(not(feature = "tokio"))]
    {
        None
    }
}

/// The limit passed before the work finished.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Elapsed;

/// Runs `work`, giving up after `limit` on `timer`'s clock; without a timer, runs it unbounded.
pub(crate) async fn within<F: Future>(
    timer: Option<&dyn Timer>,
    limit: Duration,
    work: F,
) -> Result<F::Output, Elapsed> {
    let Some(timer) = timer else {
        return Ok(work.await);
    };
    let sleep = timer.sleep(limit);
    let work = std::pin::pin!(work);
    match select(work, sleep).await {
        Either::Left((output, _)) => Ok(output),
        Either::Right(((), _)) => Err(Elapsed),
    }
}

/// One deadline shared by the steps of a flight: each step is bounded by what the steps
/// before it left, so a flight's store reads, its wait for the refresh lock, the flow's
/// sub-requests and its wait for an assertion source end within the deadline together, not
/// each step within a deadline of its own. Waits it does not count (a user's consent) run
/// outside it, and the user's answer starts it over ([`restart`](Self::restart)).
///
/// The writes after the flow (its tokens, the refresh lock's release, the record of how it
/// ended) share a second deadline of the same length: tokens in hand, a rotated refresh token
/// among them, are not given up for want of the time the flow left, and a store that stopped
/// answering still ends the call. Only the time spent in a deadline's steps counts, so that
/// one is made with the flight and spends nothing until the flow is done.
pub(crate) struct Deadline<'t> {
    timer: Option<&'t dyn Timer>,
    limit: Duration,
    spent: Duration,
}

impl<'t> Deadline<'t> {
    /// A deadline of `limit` on `timer`'s clock, nothing spent yet; without a timer, no bound.
    pub(crate) fn new(timer: Option<&'t dyn Timer>, limit: Duration) -> Self {
        Self {
            timer,
            limit,
            spent: Duration::ZERO,
        }
    }

    /// Starts the deadline over: what was spent no longer counts.
    pub(crate) fn restart(&mut self) {
        self.spent = Duration::ZERO;
    }

    /// The whole deadline, for messages.
    pub(crate) fn limit(&self) -> Duration {
        self.limit
    }

    /// Runs a step of the flight that can fail (a store access, the application's assertion
    /// source) within what is left of the deadline: past it, a transient
    /// [`ErrorKind::Timeout`] that says "`missed` within the flow's deadline" (`missed`: "the
    /// token store did not read"), so a store that stopped answering or a source that never
    /// does fails the flight instead of holding every caller of the origin for ever.
    pub(crate) async fn step<T>(
        &mut self,
        missed: &str,
        work: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let limit = self.limit;
        self.run(work).await.unwrap_or_else(|_| {
            Err(Error::new(
                ErrorKind::Timeout,
                format!("{missed} within the flow's {} deadline", human(limit)),
            )
            .mark_transient())
        })
    }

    /// Whether nothing is left of the deadline (never, without a timer).
    pub(crate) fn is_spent(&self) -> bool {
        self.timer.is_some() && self.spent >= self.limit
    }

    /// Waits `pause`, or what is left of the deadline if less, and counts it as spent.
    /// Without a timer there is nothing to wait on: it returns at once.
    pub(crate) async fn pause(&mut self, pause: Duration) {
        if let Some(timer) = self.timer {
            let left = self.limit.saturating_sub(self.spent);
            let _ = self.run(timer.sleep(pause.min(left))).await;
        }
    }

    /// Runs `work` within what is left of the deadline, and counts the time it took. The work
    /// is polled before the limit is checked, so a step that is ready at once completes even
    /// on a spent deadline: the flow's driver relies on it to collect the failure it just
    /// handed the flow (the next turn yields it without waiting on anything).
    pub(crate) async fn run<F: Future>(&mut self, work: F) -> Result<F::Output, Elapsed> {
        let started = self.timer.map(|t| t.now());
        let output = within(self.timer, self.limit.saturating_sub(self.spent), work).await;
        if let (Some(timer), Some(started)) = (self.timer, started) {
            self.spent += timer.now().saturating_duration_since(started);
        }
        output
    }
}

/// A limit as people read it: `30 s`, `1.5 s`, `250 ms`.
pub(crate) fn human(limit: Duration) -> String {
    if limit < Duration::from_secs(1) {
        format!("{} ms", limit.as_millis())
    } else {
        format!("{} s", limit.as_secs_f64())
    }
}

#[cfg(all(test, feature = "tokio"))]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn work_that_ends_first_wins_and_a_stall_is_cut_at_the_limit() {
        let timer = TokioTimer;
        assert_eq!(
            within(Some(&timer), Duration::from_secs(1), async { 7 }).await,
            Ok(7)
        );
        let before = timer.now();
        let stalled = within(
            Some(&timer),
            Duration::from_secs(30),
            std::future::pending::<()>(),
        );
        assert_eq!(stalled.await, Err(Elapsed));
        assert_eq!(timer.now() - before, Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_timer_the_work_is_unbounded() {
        let slow = async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            "done"
        };
        assert_eq!(
            within(None, Duration::from_millis(1), slow).await,
            Ok("done")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_bounds_its_steps_together_not_each_on_its_own() {
        let timer = TokioTimer;
        let mut deadline = Deadline::new(Some(&timer), Duration::from_secs(10));
        let step = |secs| tokio::time::sleep(Duration::from_secs(secs));
        let before = timer.now();
        // Each step alone is within the deadline; the third is cut at what the first two left.
        assert_eq!(deadline.run(step(4)).await, Ok(()));
        assert_eq!(deadline.run(step(4)).await, Ok(()));
        assert_eq!(deadline.run(step(4)).await, Err(Elapsed));
        assert_eq!(timer.now() - before, Duration::from_secs(10));
        // Spent: anything more fails at once.
        assert_eq!(deadline.run(step(1)).await, Err(Elapsed));
        assert_eq!(timer.now() - before, Duration::from_secs(10));
        // Time outside the deadline's steps is not counted.
        let mut deadline = Deadline::new(Some(&timer), Duration::from_secs(10));
        assert_eq!(deadline.run(step(6)).await, Ok(()));
        step(60).await;
        assert_eq!(deadline.run(step(3)).await, Ok(()));
        assert_eq!(deadline.limit(), Duration::from_secs(10));
    }

    #[test]
    fn outside_a_runtime_a_tokio_sleep_never_fires_and_does_not_panic() {
        let sleep = TokioTimer.sleep(Duration::ZERO);
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        let mut sleep = sleep;
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
    }

    #[test]
    fn limits_read_as_people_write_them() {
        assert_eq!(human(Duration::from_secs(30)), "30 s");
        assert_eq!(human(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(human(Duration::from_millis(250)), "250 ms");
    }
}
