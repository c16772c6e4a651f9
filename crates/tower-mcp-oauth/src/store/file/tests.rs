//! The file store's tests.

use super::*;
use mcp_oauth_flow::{secrets::RefreshToken, token::TokenType};
use std::time::{Duration, UNIX_EPOCH};

fn tokens(at: &str) -> TokenSet {
    TokenSet::new(at, TokenType::Bearer, "https://as", "c")
        .with_refresh_token(Some(RefreshToken::new(format!("rt-{at}"))))
        .with_expires_at(Some(UNIX_EPOCH + Duration::from_secs(2_000_000_000)))
}

#[tokio::test]
async fn round_trip_with_absolute_expiry_and_owner_only_mode() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("s")).unwrap();
    store
        .save_tokens("https://rs/mcp", &tokens("a"))
        .await
        .unwrap();
    let back = FileStore::new(dir.path().join("s"))
        .unwrap()
        .load_tokens("https://rs/mcp")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.access_token().secret(), "a");
    assert_eq!(
        back.expires_at(),
        Some(UNIX_EPOCH + Duration::from_secs(2_000_000_000))
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(store.files.tokens_path("https://rs/mcp"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dmode = std::fs::metadata(store.dir()).unwrap().permissions().mode();
        assert_eq!(dmode & 0o777, 0o700);
    }
    assert!(store
        .load_tokens("https://rs/other")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_file_that_does_not_parse_is_a_store_error_that_quotes_none_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path()).unwrap();
    let url = "https://rs/mcp";
    store.save_tokens(url, &tokens("a")).await.unwrap();
    // A secret where the file's reader expects a number (a downgrade that changed a
    // field's form): serde's own message would quote it.
    let path = store.files.tokens_path(url);
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    fn first_number(v: &mut serde_json::Value) -> Option<&mut serde_json::Value> {
        match v {
            serde_json::Value::Number(_) => Some(v),
            serde_json::Value::Object(map) => map.values_mut().find_map(first_number),
            serde_json::Value::Array(items) => items.iter_mut().find_map(first_number),
            _ => None,
        }
    }
    let number = first_number(&mut json).expect("a numeric field");
    *number = serde_json::Value::String("rt-hunter2".into());
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    let error = store.load_tokens(url).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Store, "{error:#}");
    assert!(
        !format!("{error:#} {error:?}").contains("hunter2"),
        "{error:#}"
    );
    assert!(error.to_string().contains("line 1, column"), "{error:#}");
}

#[tokio::test]
async fn a_crash_mid_write_leaves_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path()).unwrap();
    store
        .save_tokens("https://rs/mcp", &tokens("a"))
        .await
        .unwrap();
    // A writer that died before its rename leaves only a stray temporary file.
    let stray = store
        .files
        .tokens_path("https://rs/mcp")
        .with_extension("tmp-999-0");
    std::fs::write(&stray, b"{\"resource\": \"https://rs/mcp\", \"tok").unwrap();
    let back = store.load_tokens("https://rs/mcp").await.unwrap().unwrap();
    assert_eq!(back.access_token().secret(), "a");
    // A corrupt store file is a typed error, not a panic.
    std::fs::write(store.files.tokens_path("https://rs/mcp"), b"{not json").unwrap();
    assert_eq!(
        store
            .load_tokens("https://rs/mcp")
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Store
    );
}

#[tokio::test]
async fn compare_and_swap_across_handles() {
    let dir = tempfile::tempdir().unwrap();
    let one = FileStore::new(dir.path()).unwrap();
    let two = FileStore::new(dir.path()).unwrap();
    let (a, b, c) = (tokens("a"), tokens("b"), tokens("c"));
    one.save_tokens("r", &a).await.unwrap();
    assert!(matches!(
        one.compare_and_swap_tokens("r", Some(&a), Some(&b))
            .await
            .unwrap(),
        Replaced::Swapped
    ));
    match two
        .compare_and_swap_tokens("r", Some(&a), Some(&c))
        .await
        .unwrap()
    {
        Replaced::Conflict(Some(winner)) => assert_eq!(winner.access_token().secret(), "b"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        two.compare_and_swap_tokens("r", Some(&b), None)
            .await
            .unwrap(),
        Replaced::Swapped
    ));
    assert!(one.load_tokens("r").await.unwrap().is_none());
}

#[tokio::test]
async fn a_refused_client_is_removed_only_while_it_is_the_one_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path()).unwrap();
    crate::store::contract::removes_only_the_refused_client(&store).await;
}

/// Two issuers whose names hash to one file name: removing one's registration leaves the
/// other's, which `load_client` never reads as the first's either.
#[tokio::test]
async fn a_registration_under_a_colliding_name_is_not_removed_for_another_issuer() {
    use mcp_oauth_flow::client::ClientRegistration;
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path()).unwrap();
    let theirs = ClientRegistration {
        issuer: "https://other-issuer".into(),
        client_id: "theirs".into(),
        client_secret: None,
        client_secret_expires_at: None,
        token_endpoint_auth_method: Some("none".into()),
        redirect_uris: vec![],
        grant_types: Vec::new(),
    };
    // Written where "https://as" would be: a collision, played by writing it there.
    let path = store.files.client_path("https://as");
    std::fs::write(&path, serde_json::to_vec(&theirs).unwrap()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    assert!(store.load_client("https://as").await.unwrap().is_none());
    store.remove_client("https://as").await.unwrap();
    assert!(path.exists(), "another issuer's registration was removed");
    // Its own, or an unreadable file under its name, is removed.
    std::fs::write(&path, b"{not json").unwrap();
    store.remove_client("https://as").await.unwrap();
    assert!(!path.exists());
}

#[tokio::test]
async fn lock_excludes_other_handles_until_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let one = FileStore::new(dir.path()).unwrap();
    let two = FileStore::new(dir.path()).unwrap();
    let guard = one.lock("r").await.unwrap();
    let mut waiting = tokio_test::task::spawn(two.lock("r"));
    tokio_test::assert_pending!(waiting.poll());
    drop(guard);
    let _second = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap();
}

/// A refresh lock released and waited for is given back, the file's and the in-process
/// lock, by the time the release returns: another handle takes it at once; one whose release
/// is cut short is given back all the same.
#[tokio::test]
async fn a_released_lock_is_given_back_before_the_release_returns() {
    let dir = tempfile::tempdir().unwrap();
    let one = FileStore::new(dir.path()).unwrap();
    let two = FileStore::new(dir.path()).unwrap();
    let file = || two.files.lock_file("r", "lock").unwrap().1;
    one.lock("r").await.unwrap().release().await;
    assert!(file().try_lock().is_ok(), "the file lock is still held");
    let again = tokio_test::task::spawn(two.lock("r")).await.unwrap();
    assert!(
        file().try_lock().is_err(),
        "the second holder has no file lock"
    );

    // A release whose wait is cut at once still gives the lock back.
    let mut release = tokio_test::task::spawn(again.release());
    let _ = release.poll();
    drop(release);
    let _third = tokio::time::timeout(Duration::from_secs(5), one.lock("r"))
        .await
        .expect("a release cut short kept the lock")
        .unwrap();
}

#[tokio::test]
async fn the_last_flow_is_kept_per_server_owner_only() {
    use crate::store::{LastError, LastFlow};
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path()).unwrap();
    let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let failed = LastFlow::Failed(LastError::new(ErrorKind::Timeout, "no answer", at));
    store.save_last_flow("https://rs/a", &failed).await.unwrap();
    // Another handle (another process) reads it back whole.
    let again = FileStore::new(dir.path()).unwrap();
    assert_eq!(
        again.load_last_flow("https://rs/a").await.unwrap(),
        Some(failed)
    );
    assert!(again
        .load_last_flow("https://rs/b")
        .await
        .unwrap()
        .is_none());
    let succeeded = LastFlow::Succeeded { at };
    again
        .save_last_flow("https://rs/a", &succeeded)
        .await
        .unwrap();
    assert_eq!(
        store.load_last_flow("https://rs/a").await.unwrap(),
        Some(succeeded)
    );
    // A file holding another server's record (a name collision) is not this server's.
    std::fs::copy(
        store.files.status_path("https://rs/a"),
        store.files.status_path("https://rs/c"),
    )
    .unwrap();
    assert!(store
        .load_last_flow("https://rs/c")
        .await
        .unwrap()
        .is_none());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(store.files.status_path("https://rs/a"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn a_registration_write_waits_for_a_stopped_holder_off_the_executor() {
    use mcp_oauth_flow::client::ClientRegistration;
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path()).unwrap();
    // Another process stopped while holding the registration's lock.
    let (_, holder) = store.files.lock_file("https://as", "client-cas").unwrap();
    holder.lock().unwrap();
    let (done, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let registration = ClientRegistration {
            issuer: "https://as".into(),
            client_id: "c".into(),
            client_secret: None,
            client_secret_expires_at: None,
            token_endpoint_auth_method: Some("none".into()),
            redirect_uris: vec![],
            grant_types: Vec::new(),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        // The runtime's one thread stays free: the caller's own timeout fires.
        let timed_out = runtime.block_on(async {
            tokio::time::timeout(Duration::from_millis(100), store.save_client(&registration))
                .await
                .is_err()
        });
        let _ = done.send(timed_out);
    });
    assert_eq!(
        ended.recv_timeout(Duration::from_secs(5)),
        Ok(true),
        "the write blocked its runtime's thread"
    );
    drop(holder);
}

/// A disk that stops answering (a network mount gone away), played by work that blocks the
/// store's disk thread until told: every file system call after it waits behind it, as behind
/// a hung `read`.
#[test]
fn a_disk_that_stops_answering_holds_no_runtime_thread_and_loses_no_later_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path()).unwrap();
    let url = "https://rs/mcp";
    let (resume, stalled) = std::sync::mpsc::channel::<()>();
    let (answered, answers) = std::sync::mpsc::channel();
    let (done, ended) = std::sync::mpsc::channel();
    let hung = store.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (began, beginning) = futures_channel::oneshot::channel();
            let stall = hung.on_disk(move |_| {
                let _ = began.send(());
                let _ = stalled.recv();
                Ok(())
            });
            let mut stall = std::pin::pin!(stall);
            // Polled once, the stall's work is on the disk thread.
            assert!(futures_util::poll!(stall.as_mut()).is_pending());
            beginning.await.unwrap();
            // The runtime's one thread stays free: each caller's own timeout fires.
            let short = Duration::from_millis(100);
            let read = tokio::time::timeout(short, hung.load_tokens(url)).await;
            let written = tokio::time::timeout(short, hung.save_tokens(url, &tokens("late"))).await;
            let swapped = tokio::time::timeout(
                short,
                hung.compare_and_swap_tokens(url, None, Some(&tokens("late"))),
            )
            .await;
            let _ = answered.send((read.is_err(), written.is_err(), swapped.is_err()));
            stall.await.unwrap();
            // The disk answers again: the calls whose callers left were never made (no late
            // write lands over what the layer did since), and the store works.
            let after = hung.load_tokens(url).await.unwrap();
            hung.save_tokens(url, &tokens("a")).await.unwrap();
            let back = hung.load_tokens(url).await.unwrap().unwrap();
            let _ = done.send((after.is_none(), back.access_token().secret() == "a"));
        });
    });
    let (read, written, swapped) = answers
        .recv_timeout(Duration::from_secs(5))
        .expect("the store's file work blocked its runtime's thread");
    assert!(
        read && written && swapped,
        "a call answered from a hung disk"
    );
    resume.send(()).unwrap();
    let (nothing_late, works) = ended.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(nothing_late, "a write whose caller had left landed");
    assert!(works);
}

/// A compare-and-swap whose caller leaves after it took its lock, while its work waits behind
/// a disk that stopped answering: the lock goes with the work, given back when the disk
/// thread reaches it and skips it, and nothing is written.
#[tokio::test]
async fn a_compare_and_swap_whose_caller_left_gives_its_lock_back_with_the_skipped_work() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path()).unwrap();
    let url = "https://rs/mcp";
    let late = tokens("late");
    let mut swap = Box::pin(store.compare_and_swap_tokens(url, None, Some(&late)));
    // Its first step (open the lock file, try the lock) goes to the disk thread...
    assert!(futures_util::poll!(swap.as_mut()).is_pending());
    // ...and the disk stops answering right after it.
    let (began, beginning) = futures_channel::oneshot::channel();
    let (resume, stalled) = std::sync::mpsc::channel::<()>();
    let mut stall = Box::pin(store.on_disk(move |_| {
        let _ = began.send(());
        let _ = stalled.recv();
        Ok(())
    }));
    assert!(futures_util::poll!(stall.as_mut()).is_pending());
    beginning.await.unwrap();
    // The swap takes its lock and queues its read-compare-write behind the stall.
    assert!(futures_util::poll!(swap.as_mut()).is_pending());
    let other = || store.files.lock_file(url, "cas").unwrap().1;
    assert!(
        other().try_lock().is_err(),
        "the swap does not hold its lock"
    );
    drop(swap);
    // Its caller gone, the lock stays with the queued work, not closed on this thread.
    assert!(
        other().try_lock().is_err(),
        "the lock was let go before its work"
    );
    resume.send(()).unwrap();
    stall.await.unwrap();
    assert!(
        store.load_tokens(url).await.unwrap().is_none(),
        "skipped work wrote"
    );
    assert!(other().try_lock().is_ok(), "the lock was not given back");
}

/// Keys whose file names collide, and the locks that keep their records apart.
mod collisions;

/// Temporary files left by a crashed process whose id this one has (a container's app is
/// process 1 at every start), under the names a counter starting at 0 gives: no write meets
/// one, and none of them is removed (each could be another live writer's, about to be renamed).
#[tokio::test]
async fn a_stray_temporary_file_of_the_same_process_id_neither_fails_a_write_nor_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path()).unwrap();
    let path = store.files.tokens_path("https://rs/mcp");
    // The old counter was shared by every write of the test binary, whose other tests run
    // alongside: enough names that it cannot have passed them all.
    let strays: Vec<_> = (0..2048)
        .map(|n| path.with_extension(format!("tmp-{}-{n}", std::process::id())))
        .collect();
    for stray in &strays {
        std::fs::write(stray, b"{\"partial").unwrap();
    }
    for n in 0..8 {
        let access = format!("a{n}");
        store
            .save_tokens("https://rs/mcp", &tokens(&access))
            .await
            .unwrap();
        let back = store.load_tokens("https://rs/mcp").await.unwrap().unwrap();
        assert_eq!(back.access_token().secret(), &access);
    }
    assert!(strays.iter().all(|stray| stray.exists()));
}

#[test]
fn temporary_paths_differ_and_name_the_process() {
    let path = std::path::Path::new("/store/tokens-x.json");
    let (a, b) = (Files::temporary_path(path), Files::temporary_path(path));
    assert_ne!(a, b);
    let pid = format!(".tmp-{}-", std::process::id());
    for name in [&a, &b] {
        assert!(name.to_string_lossy().contains(&pid), "{}", name.display());
    }
}
