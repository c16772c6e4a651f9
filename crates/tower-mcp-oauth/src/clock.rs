//! [`Clock`]: the layer's wall-clock time, and the cheap reading of it every request's expiry
//! check takes.
//!
//! A request with a token that expires asks the time once, to compare with the moment to
//! refresh. `SystemTime::now` reads the clock to the nanosecond: on Linux a vDSO call that
//! reads the CPU's cycle counter (`rdtsc` on x86-64), 23 ns on the 2-core VM this was measured
//! on (35 with `SystemTime`'s conversion): about a tenth of all the layer adds to a call over
//! loopback with 64 in flight, a few percent one call at a time, though it is only a few dozen
//! instructions (callgrind counts the instructions, not what the counter read costs under a
//! hypervisor). The expiry check needs no such precision: the refresh is scheduled tens of
//! seconds before the token expires (`RefreshPolicy::skew`). Linux keeps a coarse copy of the
//! same clock, updated at every scheduler tick (1-10 ms), that the vDSO returns without reading
//! the counter: 4.7 ns measured. It is never ahead of the precise clock and at most a tick
//! behind.

use std::sync::Arc;
use std::time::SystemTime;

/// The layer's source of wall-clock time: the system's, or one the caller passed
/// (`OAuthLayer::clock`; tests pass a controllable one).
#[derive(Clone)]
pub(crate) struct Clock(Option<Arc<dyn Fn() -> SystemTime + Send + Sync>>);

impl Clock {
    /// The system's clock.
    pub(crate) fn system() -> Self {
        Self(None)
    }

    /// A clock of the caller's.
    pub(crate) fn given(clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(clock)))
    }

    /// Now, as precisely as the clock tells: for everything but the per-request expiry check
    /// (flows, proofs, the expiry stored with new tokens).
    pub(crate) fn now(&self) -> SystemTime {
        match &self.0 {
            None => SystemTime::now(),
            Some(clock) => clock(),
        }
    }

    /// Now, to within a scheduler tick behind ([`coarse_now`]): for the check every request
    /// with an expiring token makes. A clock the caller gave is read as it is, so a test that
    /// moves time moves the hot path's too.
    #[inline(always)]
    pub(crate) fn now_coarse(&self) -> SystemTime {
        match &self.0 {
            None => coarse_now(),
            Some(clock) => clock(),
        }
    }
}

/// The system's wall-clock time as of the last scheduler tick: `CLOCK_REALTIME_COARSE`
/// (Linux's `clock_gettime(2)`), never ahead of `SystemTime::now` and at most a tick (1-10 ms)
/// behind it. A token checked with it may be sent one tick after the moment to refresh it, or,
/// with nothing to refresh it with, one tick after it expired: the server's `401` then starts
/// the recovery any rejected token does.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn coarse_now() -> SystemTime {
    use std::time::{Duration, UNIX_EPOCH};

    use nix::time::{clock_gettime, ClockId};

    // The clock missing (a kernel before 2.6.32), before 1970, or a nanosecond field out of
    // range (none happens): the precise clock.
    let Ok(now) = clock_gettime(ClockId::CLOCK_REALTIME_COARSE) else {
        return SystemTime::now();
    };
    match (u64::try_from(now.tv_sec()), u32::try_from(now.tv_nsec())) {
        // The guard changes no answer the kernel gives (its nanoseconds are below a second;
        // `Duration::new` would carry any whole second out of them), but it tells the compiler
        // there is nothing to carry and that the sum cannot overflow (`SystemTime` holds every
        // `i64` of seconds). Without it and with a checked sum in place of `+`, (a) measured
        // about 2% slower, alternated four times.
        (Ok(secs), Ok(nanos)) if nanos < 1_000_000_000 => UNIX_EPOCH + Duration::new(secs, nanos),
        _ => SystemTime::now(),
    }
}

/// Elsewhere, the precise clock: no other platform this crate is built for offers a coarse
/// wall clock through a safe wrapper (FreeBSD's `CLOCK_REALTIME_FAST` would do, but `nix`
/// does not name it).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn coarse_now() -> SystemTime {
    SystemTime::now()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn the_coarse_clock_is_never_ahead_and_at_most_a_tick_behind() {
        for _ in 0..1000 {
            let before = SystemTime::now();
            let coarse = coarse_now();
            let after = SystemTime::now();
            assert!(coarse <= after, "{coarse:?} is ahead of {after:?}");
            // How far behind the coarse copy is, bounded from above: the kernel updates it at
            // every tick (10 ms at most, at 100 Hz), and after a few stalled ticks at the
            // latest; 100 ms leaves room for a loaded machine. (A thread descheduled between
            // the reads only makes the copy it reads newer.)
            let behind = before.duration_since(coarse).unwrap_or_default();
            assert!(behind < Duration::from_millis(100), "{behind:?} behind");
        }
    }

    /// What tells the coarse copy from the precise clock: it stands still between ticks (a
    /// read takes nanoseconds, a tick lasts milliseconds), where the precise clock, read to
    /// the nanosecond, moves between any two reads.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn the_coarse_clock_stands_still_between_ticks() {
        let reads: Vec<SystemTime> = (0..1000).map(|_| coarse_now()).collect();
        let repeats = reads.windows(2).filter(|pair| pair[0] == pair[1]).count();
        assert!(
            repeats > 900,
            "only {repeats} of 999 reads repeated the one before"
        );
    }

    #[test]
    fn the_coarse_clock_moves() {
        let first = coarse_now();
        std::thread::sleep(Duration::from_millis(30));
        assert!(coarse_now() > first);
    }

    #[test]
    fn a_given_clock_is_read_as_it_is_both_ways() {
        let at = UNIX_EPOCH + Duration::new(1_700_000_000, 123);
        let clock = Clock::given(move || at);
        assert_eq!(clock.now(), at);
        assert_eq!(clock.now_coarse(), at);
        let system = Clock::system();
        let before = SystemTime::now();
        assert!(system.now() >= before);
        assert!(system.now_coarse() <= SystemTime::now());
    }
}
