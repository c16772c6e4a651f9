//! Single-flight: per origin, at most one flow (authorization, refresh or step-up) runs at a
//! time, and every caller that needs one joins it.
//!
//! A flow is a `Shared` future kept in a map. Whichever waiter polls it drives it, so
//! cancelling any waiter (even the one that started it) never stalls the others; the map keeps
//! a handle too, so a flow whose waiters all went away is resumed by the next caller instead of
//! being started twice. No lock here is held across an `.await`.
//!
//! Alongside: the short backoff after a failed flow (its waiters and the callers right after
//! see the same error), the step-up limit per need, and the budget of interactive
//! authorizations per origin.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use futures_util::future::{FutureExt, Shared};
use mcp_oauth_flow::{Error, ErrorKind};

use crate::store::memory::lock;
use crate::BoxFuture;

pub(crate) type FlightFuture = Shared<BoxFuture<'static, Result<(), Error>>>;

struct Inflight {
    id: u64,
    future: FlightFuture,
}

#[derive(Default)]
pub(crate) struct Flights {
    inflight: Mutex<HashMap<String, Inflight>>,
    failures: Mutex<HashMap<String, (SystemTime, Error)>>,
    step_ups: Mutex<HashMap<(String, String), u32>>,
    authorizations: Mutex<HashMap<String, VecDeque<SystemTime>>>,
    next_id: AtomicU64,
    started: AtomicU64,
}

impl Flights {
    /// Joins the flow running for `key`, or starts the one `make` builds (given its id).
    /// Returns the future and whether this caller started it.
    pub(crate) fn join_or_start(
        &self,
        key: &str,
        make: impl FnOnce(u64) -> BoxFuture<'static, Result<(), Error>>,
    ) -> (FlightFuture, bool) {
        let mut map = lock(&self.inflight);
        if let Some(running) = map.get(key) {
            return (running.future.clone(), false);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let future = make(id).shared();
        map.insert(
            key.to_owned(),
            Inflight {
                id,
                future: future.clone(),
            },
        );
        self.started.fetch_add(1, Ordering::Relaxed);
        (future, true)
    }

    /// Called by a flow when it ends: forgets it and, on failure, starts the backoff.
    pub(crate) fn finish(&self, key: &str, id: u64, result: &Result<(), Error>, now: SystemTime) {
        // The failure is recorded before the flow leaves the map, so a caller arriving in
        // between sees either the running flow or its error, never neither (which would start
        // a second flow and skip the backoff).
        {
            let mut failures = lock(&self.failures);
            match result {
                Ok(()) => {
                    failures.remove(key);
                }
                Err(e) => {
                    failures.insert(key.to_owned(), (now, e.clone()));
                }
            }
        }
        let mut map = lock(&self.inflight);
        if map.get(key).is_some_and(|f| f.id == id) {
            map.remove(key);
        }
    }

    /// The error of a flow for `key` that failed less than `backoff` ago.
    pub(crate) fn recent_failure(
        &self,
        key: &str,
        now: SystemTime,
        backoff: Duration,
    ) -> Option<Error> {
        let failures = lock(&self.failures);
        let (at, error) = failures.get(key)?;
        (now.duration_since(*at).unwrap_or_default() < backoff).then(|| error.clone())
    }

    /// Counts a step-up for `scope` at `key`; refuses once `max` were made without success.
    pub(crate) fn try_step_up(&self, key: &str, scope: &str, max: u32) -> Result<(), Error> {
        let mut map = lock(&self.step_ups);
        let count = map.entry((key.to_owned(), scope.to_owned())).or_insert(0);
        if *count >= max {
            return Err(Error::new(
                ErrorKind::StepUpLimit,
                format!(
                    "{key} keeps answering 403 insufficient_scope for {scope:?} after {max} authorizations; not asking again"
                ),
            ));
        }
        *count += 1;
        Ok(())
    }

    /// A request succeeded after a step-up for `scope`: the need is met.
    pub(crate) fn step_up_succeeded(&self, key: &str, scope: &str) {
        lock(&self.step_ups).remove(&(key.to_owned(), scope.to_owned()));
    }

    /// Spends one interactive authorization of `key`'s budget: at most `budget` within
    /// `window`.
    pub(crate) fn spend_authorization(
        &self,
        key: &str,
        now: SystemTime,
        budget: u32,
        window: Duration,
    ) -> Result<(), Error> {
        let mut map = lock(&self.authorizations);
        let recent = map.entry(key.to_owned()).or_default();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t).unwrap_or_default() >= window)
        {
            recent.pop_front();
        }
        if recent.len() as u32 >= budget {
            return Err(Error::new(
                ErrorKind::AuthorizationLimit,
                format!(
                    "{key} needed {} authorizations within {:?}; it keeps refusing fresh tokens, so the user is not asked again for now",
                    recent.len(),
                    window
                ),
            ));
        }
        recent.push_back(now);
        Ok(())
    }

    /// How many flows were started (for tests and benchmarks).
    pub(crate) fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: u32 = 2;
    const WINDOW: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn second_caller_joins_the_first() {
        let flights = Flights::default();
        let (a, started_a) = flights.join_or_start("k", |_| Box::pin(async { Ok(()) }));
        let (b, started_b) = flights.join_or_start("k", |_| unreachable!("must join"));
        assert!(started_a && !started_b);
        a.await.unwrap();
        b.await.unwrap();
        assert_eq!(flights.started(), 1);
    }

    #[test]
    fn finish_clears_and_backoff_expires() {
        let flights = Flights::default();
        let (_f, _) = flights.join_or_start("k", |_| Box::pin(async { Ok(()) }));
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        flights.finish("k", 0, &Err(Error::new(ErrorKind::Transport, "down")), t0);
        assert!(lock(&flights.inflight).is_empty());
        let backoff = Duration::from_secs(1);
        assert_eq!(
            flights.recent_failure("k", t0, backoff).unwrap().kind(),
            ErrorKind::Transport
        );
        assert!(flights.recent_failure("k", t0 + backoff, backoff).is_none());
        flights.finish("k", 1, &Ok(()), t0);
        assert!(flights.recent_failure("k", t0, backoff).is_none());
    }

    #[test]
    fn step_ups_are_bounded_per_need() {
        let flights = Flights::default();
        for _ in 0..3 {
            flights.try_step_up("k", "admin", 3).unwrap();
        }
        assert_eq!(
            flights.try_step_up("k", "admin", 3).unwrap_err().kind(),
            ErrorKind::StepUpLimit
        );
        flights.try_step_up("k", "write", 3).unwrap();
        flights.step_up_succeeded("k", "admin");
        flights.try_step_up("k", "admin", 3).unwrap();
    }

    #[test]
    fn authorization_budget_per_window() {
        let flights = Flights::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        flights
            .spend_authorization("k", t0, BUDGET, WINDOW)
            .unwrap();
        flights
            .spend_authorization("k", t0, BUDGET, WINDOW)
            .unwrap();
        assert_eq!(
            flights
                .spend_authorization("k", t0, BUDGET, WINDOW)
                .unwrap_err()
                .kind(),
            ErrorKind::AuthorizationLimit
        );
        flights
            .spend_authorization("k", t0 + Duration::from_secs(60), BUDGET, WINDOW)
            .unwrap();
    }
}
