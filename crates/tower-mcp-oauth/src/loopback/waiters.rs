//! The flows waiting for their callback, told apart by the `state` each one sent.
//!
//! Several flows may share one receiver (the layer runs one flow per origin, so two servers can
//! be authorizing at once); the callback's `state` says which flow it answers. A callback whose
//! `state` matches no waiting flow is refused and ends nothing: it is a stale tab from an earlier
//! attempt or a forged request, and letting it end the wait would let any web page abort a
//! login by pointing an `<img>` at the loopback port (RFC 6749 §10.12, RFC 8252 §8.9).

use std::sync::{Arc, Mutex, MutexGuard};

use mcp_oauth_flow::authorization::{constant_time_eq, AuthorizationResponse};
use tokio::sync::oneshot;

/// What became of a callback.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Delivery {
    /// Handed to the flow whose `state` it carries.
    Delivered,
    /// Flows are waiting, but the callback carries none of their `state` values (or none).
    Mismatch,
    /// No flow is waiting.
    NobodyWaiting,
}

/// The registry of waiting flows, shared by the receiver and its connections.
#[derive(Default)]
pub(super) struct Waiters {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    waiting: Vec<Waiter>,
}

struct Waiter {
    id: u64,
    /// The `state` sent in the authorization request. Never logged, never printed.
    state: String,
    /// Callbacks refused while this flow waited, reported if it times out.
    refused: usize,
    tx: oneshot::Sender<AuthorizationResponse>,
}

impl Waiters {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock, but a poisoned registry is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a flow waiting for a callback with `state`. The flow stops waiting (and a
    /// callback for it is refused) when the returned [`Registration`] is dropped.
    pub(super) fn register(
        self: &Arc<Self>,
        state: &str,
    ) -> (Registration, oneshot::Receiver<AuthorizationResponse>) {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        inner.waiting.push(Waiter {
            id,
            state: state.to_owned(),
            refused: 0,
            tx,
        });
        let registration = Registration {
            waiters: Arc::clone(self),
            id,
        };
        (registration, rx)
    }

    /// Hands `response` to the flow whose `state` it carries.
    pub(super) fn deliver(&self, response: AuthorizationResponse) -> Delivery {
        let mut inner = self.lock();
        if inner.waiting.is_empty() {
            return Delivery::NobodyWaiting;
        }
        let received = response.state.as_deref().unwrap_or("").as_bytes();
        // Every waiter is compared, each in constant time (RFC 6749 §10.12), so neither the
        // timing of one comparison nor the number made tells a guesser anything.
        let mut found = None;
        for (index, waiter) in inner.waiting.iter().enumerate() {
            let matches =
                !received.is_empty() && constant_time_eq(received, waiter.state.as_bytes());
            if matches && found.is_none() {
                found = Some(index);
            }
        }
        match found {
            Some(index) => {
                let waiter = inner.waiting.swap_remove(index);
                match waiter.tx.send(response) {
                    Ok(()) => Delivery::Delivered,
                    // The flow was dropped an instant ago, before its registration was.
                    Err(_) => Delivery::NobodyWaiting,
                }
            }
            None => {
                for waiter in &mut inner.waiting {
                    waiter.refused += 1;
                }
                Delivery::Mismatch
            }
        }
    }

    /// How many flows are waiting.
    pub(super) fn len(&self) -> usize {
        self.lock().waiting.len()
    }
}

/// A waiting flow's place in the registry; dropping it takes the flow out (the flow was
/// cancelled, timed out, or got its callback).
pub(super) struct Registration {
    waiters: Arc<Waiters>,
    id: u64,
}

impl Registration {
    /// Callbacks refused while this flow waited.
    pub(super) fn refused(&self) -> usize {
        self.waiters
            .lock()
            .waiting
            .iter()
            .find(|w| w.id == self.id)
            .map_or(0, |w| w.refused)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.waiters.lock().waiting.retain(|w| w.id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn callback(query: &str) -> AuthorizationResponse {
        AuthorizationResponse::from_query(query)
    }

    #[test]
    fn routes_by_state_and_counts_refusals() {
        let waiters = Arc::new(Waiters::default());
        assert_eq!(
            waiters.deliver(callback("code=c&state=a")),
            Delivery::NobodyWaiting
        );
        let (a, mut rx_a) = waiters.register("state-a");
        let (b, mut rx_b) = waiters.register("state-b");
        assert_eq!(
            waiters.deliver(callback("code=c&state=state-x")),
            Delivery::Mismatch
        );
        assert_eq!(waiters.deliver(callback("code=c")), Delivery::Mismatch);
        // An empty state never matches, not even an (impossible) empty expected one.
        assert_eq!(
            waiters.deliver(callback("code=c&state=")),
            Delivery::Mismatch
        );
        assert_eq!((a.refused(), b.refused()), (3, 3));
        assert_eq!(
            waiters.deliver(callback("code=for-b&state=state-b")),
            Delivery::Delivered
        );
        assert_eq!(rx_b.try_recv().unwrap().code.unwrap().secret(), "for-b");
        assert!(rx_a.try_recv().is_err());
        assert_eq!(waiters.len(), 1);
        drop(b);
        assert_eq!(waiters.len(), 1);
        drop(a);
        assert_eq!(waiters.len(), 0);
    }

    #[test]
    fn a_dropped_flow_is_nobody() {
        let waiters = Arc::new(Waiters::default());
        let (registration, rx) = waiters.register("s");
        drop(rx);
        assert_eq!(
            waiters.deliver(callback("code=c&state=s")),
            Delivery::NobodyWaiting
        );
        drop(registration);
        assert_eq!(waiters.len(), 0);
    }
}
