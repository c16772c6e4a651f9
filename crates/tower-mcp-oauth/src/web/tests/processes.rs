//! Logins started in one process of a web app and completed in another.

use super::*;

/// One process of a web app served by several: its own `WebLogin` (its own memory, layers and
/// DPoP key) over the stores every process shares.
fn process(
    fake: &Arc<Fake>,
    redirect: &str,
    pending: Arc<dyn PendingLoginStore>,
    store: Arc<dyn TokenStore>,
) -> WebLogin {
    let f = Arc::clone(fake);
    let client = HttpClient::from_fn(move |req| {
        let response = f.handle(req);
        async move { Ok(response) }
    });
    WebLogin::new(ClientConfig::new(redirect), client)
        .token_store(store)
        .pending_login_store(pending)
}

fn shared_stores() -> (Arc<dyn PendingLoginStore>, Arc<dyn TokenStore>) {
    (
        Arc::new(MemoryPendingLogins::new()),
        Arc::new(MemoryStore::new()),
    )
}

#[tokio::test]
async fn a_login_started_in_one_process_completes_in_another() {
    let fake = Fake::new(3600);
    let (pending, store) = shared_stores();
    let a = process(&fake, REDIRECT, Arc::clone(&pending), Arc::clone(&store));
    let b = process(&fake, REDIRECT, Arc::clone(&pending), store);
    let url = a.start("alice", MCP).await.unwrap();
    assert_eq!(b.pending_logins(), 1, "the login waits in the shared store");

    let connection = b.complete("alice", &approve(&url, "c1")).await.unwrap();
    assert_eq!(connection.server_url.as_str(), MCP);
    assert_eq!(connection.issuer, AS);
    assert_eq!(fake.count("POST /token"), 1);
    // The process that started the login finds the tokens the other one stored.
    assert_eq!(tokens_of(&a, "alice").await.as_deref(), Some("at-c1"));
    let err = a.complete("alice", &approve(&url, "c1")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StateMismatch, "used once, anywhere");
}

#[tokio::test]
async fn two_processes_completing_one_callback_have_one_winner() {
    let fake = Fake::new(3600);
    let (pending, store) = shared_stores();
    let a = process(&fake, REDIRECT, Arc::clone(&pending), Arc::clone(&store));
    let b = process(&fake, REDIRECT, pending, store);
    let url = a.start("alice", MCP).await.unwrap();
    let callback = approve(&url, "c1");
    let (from_a, from_b) = tokio::join!(
        a.complete("alice", &callback),
        b.complete("alice", &callback)
    );
    let kinds: Vec<_> = [&from_a, &from_b]
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.kind()))
        .collect();
    assert_eq!(kinds, [ErrorKind::StateMismatch], "{from_a:?} {from_b:?}");
    assert_eq!(fake.count("POST /token"), 1, "the code is exchanged once");
}

#[tokio::test]
async fn a_process_with_another_redirect_uri_cannot_complete_the_login() {
    let fake = Fake::new(3600);
    let (pending, store) = shared_stores();
    let a = process(&fake, REDIRECT, Arc::clone(&pending), Arc::clone(&store));
    let b = process(&fake, "https://other.example.com/callback", pending, store);
    let url = a.start("alice", MCP).await.unwrap();
    let err = b.complete("alice", &approve(&url, "c1")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRedirectUri);
    assert_eq!(fake.count("POST /token"), 0);
}

/// A store that keeps everything and fails when told to: the login checks expiry itself, and
/// a store error reaches the caller.
#[derive(Default)]
struct Forever {
    logins: Mutex<Vec<(String, String, PendingLogin)>>,
    broken: bool,
}

impl PendingLoginStore for Forever {
    fn put<'a>(
        &'a self,
        user: &'a str,
        state: &'a str,
        login: &'a PendingLogin,
        _ttl: Duration,
    ) -> crate::BoxFuture<'a, Result<(), crate::Error>> {
        let result = if self.broken {
            Err(crate::Error::new(ErrorKind::Store, "the store is down"))
        } else {
            self.logins
                .lock()
                .unwrap()
                .push((user.into(), state.into(), login.clone()));
            Ok(())
        };
        Box::pin(async move { result })
    }

    fn take<'a>(
        &'a self,
        user: &'a str,
        state: &'a str,
    ) -> crate::BoxFuture<'a, Result<Option<PendingLogin>, crate::Error>> {
        let mut logins = self.logins.lock().unwrap();
        let found = logins.iter().position(|(u, s, _)| u == user && s == state);
        let login = found.map(|i| logins.remove(i).2);
        Box::pin(async move { Ok(login) })
    }

    fn forget_user<'a>(&'a self, user: &'a str) -> crate::BoxFuture<'a, Result<(), crate::Error>> {
        self.logins.lock().unwrap().retain(|(u, _, _)| u != user);
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn an_expired_login_is_refused_even_if_its_store_still_has_it() {
    let fake = Fake::new(3600);
    let (login, now) = setup(&fake);
    let store = Arc::new(Forever::default());
    let login = login.pending_login_store(Arc::clone(&store));
    let url = login.start("alice", MCP).await.unwrap();
    assert_eq!(login.pending_logins(), 0, "this store cannot count");
    *now.lock().unwrap() += DEFAULT_PENDING_TTL;
    let err = login
        .complete("alice", &approve(&url, "c1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StateMismatch);
    assert!(err.to_string().contains("expired"), "{err}");
    assert_eq!(fake.count("POST /token"), 0);
    assert!(
        store.logins.lock().unwrap().is_empty(),
        "taken all the same"
    );
}

#[tokio::test]
async fn a_start_whose_login_cannot_be_kept_fails() {
    let fake = Fake::new(3600);
    let (login, _) = setup(&fake);
    let login = login.pending_login_store(Forever {
        broken: true,
        ..Forever::default()
    });
    let err = login.start("alice", MCP).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store);
}

#[tokio::test]
async fn forgetting_a_user_drops_their_pending_logins() {
    let fake = Fake::new(3600);
    let (login, _) = setup(&fake);
    let url = login.start("alice", MCP).await.unwrap();
    login.start("bob", MCP).await.unwrap();
    login.forget_user("alice").await.unwrap();
    assert_eq!(login.pending_logins(), 1);
    let err = login
        .complete("alice", &approve(&url, "c1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StateMismatch);
}
