//! The flows waiting for their callback, told apart by the `state` each one sent.
//!
//! Several flows may share one receiver (the layer runs one flow per origin, so two servers can
//! be authorizing at once); the callback's `state` says which flow it answers.
//!
//! A callback whose `state` matches no waiting flow (or that has none, an `error=` response
//! included) ends **every** waiting flow with [`ErrorKind::StateMismatch`] at once, as AppAuth,
//! the reference implementation of RFC 8252, ends its pending request: the browser was sent
//! somewhere the application did not send it (a forged request, or a tab from an earlier
//! attempt), so none of the sign-ins in progress can be trusted to finish, and the user should
//! learn that now rather than at the timeout. No code is redeemed (RFC 6749 §10.12). Only the
//! browser's own navigation to the redirect URI counts (the server refuses a page's `<img>` or
//! `fetch` of it, and a `Host` other than the receiver's), and a callback repeating one already
//! handed to its flow (the tab reloaded) ends nothing. A page open in the user's browser that
//! navigates to the loopback port can still abort a sign-in, which only makes the user start
//! again; it cannot complete one.
//!
//! A callback whose `state` matches but whose `iss` names another issuer (RFC 9207 §2.4) is
//! handed to its flow, whose check refuses it before any token request, and the browser gets
//! an error page, not "you can close this window".

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use mcp_oauth_flow::authorization::{constant_time_eq, AuthorizationResponse};
use mcp_oauth_flow::{Error, ErrorKind};
use tokio::sync::oneshot;

/// What a waiting flow receives: the callback, or why its sign-in was ended.
pub(super) type Outcome = Result<AuthorizationResponse, Error>;

/// What became of a callback.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Delivery {
    /// Handed to the flow whose `state` it carries.
    Delivered,
    /// Handed to the flow whose `state` it carries, but its `iss` is not that flow's issuer:
    /// the flow refuses it.
    IssuerMismatch,
    /// Flows were waiting, but the callback carries none of their `state` values (or none):
    /// each of them was ended with [`ErrorKind::StateMismatch`].
    Mismatch,
    /// The callback carries the `state` of one lately handed to its flow: a reload of that
    /// tab. Nothing changes.
    Repeated,
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
    /// The `state` of the last [`DELIVERED_KEPT`] callbacks handed to their flow, so a reload
    /// of one is told from a forgery. Used states: a code they came with is redeemed once.
    delivered: VecDeque<String>,
}

/// How many delivered `state` values are remembered.
const DELIVERED_KEPT: usize = 8;

struct Waiter {
    id: u64,
    /// The `state` sent in the authorization request. Never logged, never printed.
    state: String,
    /// The issuer the request went to, which a callback's `iss` must name (RFC 9207 §2.4).
    issuer: String,
    tx: oneshot::Sender<Outcome>,
}

impl Waiters {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock, but a poisoned registry is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a flow waiting for a callback with `state`, from `issuer`. The flow stops
    /// waiting (and a callback for it is refused) when the returned [`Registration`] is dropped.
    pub(super) fn register(
        self: &Arc<Self>,
        state: &str,
        issuer: &str,
    ) -> (Registration, oneshot::Receiver<Outcome>) {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        inner.waiting.push(Waiter {
            id,
            state: state.to_owned(),
            issuer: issuer.to_owned(),
            tx,
        });
        let registration = Registration {
            waiters: Arc::clone(self),
            id,
        };
        (registration, rx)
    }

    /// Hands `response` to the flow whose `state` it carries, or ends every waiting flow when
    /// it carries none of theirs. `redirect_uri` is named in their error.
    pub(super) fn deliver(&self, response: AuthorizationResponse, redirect_uri: &str) -> Delivery {
        let mut inner = self.lock();
        let received = response.state.as_deref().unwrap_or("").as_bytes();
        // Each compared in constant time, as the waiters are below.
        let repeated = inner.delivered.iter().fold(false, |seen, state| {
            seen | (!received.is_empty() && constant_time_eq(received, state.as_bytes()))
        });
        if repeated {
            return Delivery::Repeated;
        }
        if inner.waiting.is_empty() {
            return Delivery::NobodyWaiting;
        }
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
                // Exact comparison, as the flow's own check (RFC 9207 §2.4); an absent `iss`
                // is the flow's to judge (it knows whether the server promised one).
                let foreign_iss = response
                    .iss
                    .as_deref()
                    .is_some_and(|iss| iss != waiter.issuer);
                let state = waiter.state;
                let sent = waiter.tx.send(Ok(response));
                if sent.is_ok() {
                    if inner.delivered.len() == DELIVERED_KEPT {
                        inner.delivered.pop_front();
                    }
                    inner.delivered.push_back(state);
                }
                match sent {
                    Ok(()) if foreign_iss => Delivery::IssuerMismatch,
                    Ok(()) => Delivery::Delivered,
                    // The flow was dropped an instant ago, before its registration was.
                    Err(_) => Delivery::NobodyWaiting,
                }
            }
            None => {
                let message = format!(
                    "an authorization response reached {redirect_uri} with {}, matching no \
                     sign-in in progress (a forged request, or a browser tab from an earlier \
                     attempt); the sign-in was ended and no code was redeemed",
                    if received.is_empty() {
                        "no state"
                    } else {
                        "a state"
                    }
                );
                for waiter in inner.waiting.drain(..) {
                    // A flow dropped meanwhile has nobody to tell.
                    let _ = waiter
                        .tx
                        .send(Err(Error::new(ErrorKind::StateMismatch, message.clone())));
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

impl Drop for Registration {
    fn drop(&mut self) {
        self.waiters.lock().waiting.retain(|w| w.id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URI: &str = "http://127.0.0.1:1/callback";
    const ISSUER: &str = "https://as.example.com";

    fn callback(query: &str) -> AuthorizationResponse {
        AuthorizationResponse::from_query(query)
    }

    #[test]
    fn routes_by_state() {
        let waiters = Arc::new(Waiters::default());
        assert_eq!(
            waiters.deliver(callback("code=c&state=a"), URI),
            Delivery::NobodyWaiting
        );
        let (a, mut rx_a) = waiters.register("state-a", ISSUER);
        let (_b, mut rx_b) = waiters.register("state-b", ISSUER);
        assert_eq!(
            waiters.deliver(callback("code=for-b&state=state-b"), URI),
            Delivery::Delivered
        );
        assert_eq!(
            rx_b.try_recv().unwrap().unwrap().code.unwrap().secret(),
            "for-b"
        );
        assert!(rx_a.try_recv().is_err());
        assert_eq!(waiters.len(), 1);
        drop(a);
        assert_eq!(waiters.len(), 0);
    }

    #[test]
    fn a_callback_matching_no_state_ends_every_waiting_flow() {
        // A forged state, none at all, an empty one, and an error response without one.
        for query in [
            "code=c&state=state-x",
            "code=c",
            "code=c&state=",
            "error=access_denied",
        ] {
            let waiters = Arc::new(Waiters::default());
            let (_a, mut rx_a) = waiters.register("state-a", ISSUER);
            let (_b, mut rx_b) = waiters.register("state-b", ISSUER);
            assert_eq!(waiters.deliver(callback(query), URI), Delivery::Mismatch);
            for rx in [&mut rx_a, &mut rx_b] {
                let error = rx.try_recv().unwrap().unwrap_err();
                assert_eq!(error.kind(), ErrorKind::StateMismatch, "{query}");
                assert!(error.to_string().contains(URI), "{error}");
                assert!(
                    !error.to_string().contains("state-x"),
                    "never echoed: {error}"
                );
            }
            assert_eq!(waiters.len(), 0, "{query}");
        }
    }

    #[test]
    fn a_foreign_iss_is_delivered_for_the_flow_to_refuse_and_reported() {
        let waiters = Arc::new(Waiters::default());
        let (_a, mut rx) = waiters.register("s", ISSUER);
        let forged = "code=c&state=s&iss=https%3A%2F%2Fevil.example.com";
        assert_eq!(
            waiters.deliver(callback(forged), URI),
            Delivery::IssuerMismatch
        );
        let response = rx.try_recv().unwrap().unwrap();
        assert_eq!(response.iss.as_deref(), Some("https://evil.example.com"));

        // The right issuer, or none (the flow decides whether one was required), is plain.
        for (state, query) in [
            ("t1", "code=c&state=t1&iss=https%3A%2F%2Fas.example.com"),
            ("t2", "code=c&state=t2"),
        ] {
            let (_t, _rx) = waiters.register(state, ISSUER);
            assert_eq!(waiters.deliver(callback(query), URI), Delivery::Delivered);
        }
    }

    #[test]
    fn a_dropped_flow_is_nobody() {
        let waiters = Arc::new(Waiters::default());
        let (registration, rx) = waiters.register("s", ISSUER);
        drop(rx);
        assert_eq!(
            waiters.deliver(callback("code=c&state=s"), URI),
            Delivery::NobodyWaiting
        );
        drop(registration);
        assert_eq!(waiters.len(), 0);
    }
}
