//! Keys whose file names collide (played by a store whose names all collide), and the short
//! locks under which a record's place is decided.

use super::*;

/// A store in `dir` under which every key's own file name is the same: two keys' names
/// colliding, as a key chosen to hash like another's would (see `slots`).
fn colliding_store(dir: &Path) -> FileStore {
    FileStore {
        files: Arc::new(Files {
            dir: dir.to_owned(),
            name: |prefix, _key, ext| format!("{prefix}-same.{ext}"),
            seal: None,
        }),
        disk: Arc::default(),
    }
}

#[tokio::test]
async fn keys_whose_names_collide_never_write_over_or_remove_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let store = colliding_store(dir.path());
    let (alice, mallory) = (
        "user:5:alice|https://rs/mcp",
        "user:7:mallory|https://rs/mcp",
    );
    let load = |key| {
        let store = store.clone();
        async move {
            store
                .load_tokens(key)
                .await
                .unwrap()
                .map(|t| t.access_token().secret().clone())
        }
    };
    store.save_tokens(alice, &tokens("a1")).await.unwrap();
    // The second key finds its name taken: kept beside, not over, the first.
    store.save_tokens(mallory, &tokens("m1")).await.unwrap();
    assert_eq!(load(alice).await.as_deref(), Some("a1"));
    assert_eq!(load(mallory).await.as_deref(), Some("m1"));
    // Swapped, and removed by a logout, the second key's record leaves the first one's alone.
    let swapped = store
        .compare_and_swap_tokens(mallory, Some(&tokens("m1")), Some(&tokens("m2")))
        .await
        .unwrap();
    assert!(matches!(swapped, Replaced::Swapped));
    assert_eq!(load(mallory).await.as_deref(), Some("m2"));
    store
        .compare_and_swap_tokens(mallory, Some(&tokens("m2")), None)
        .await
        .unwrap();
    assert_eq!(load(mallory).await, None);
    assert_eq!(load(alice).await.as_deref(), Some("a1"));

    // Written while the name was taken, a record is still found once the name is free...
    store.save_tokens(mallory, &tokens("m3")).await.unwrap();
    store
        .compare_and_swap_tokens(alice, Some(&tokens("a1")), None)
        .await
        .unwrap();
    assert_eq!(load(mallory).await.as_deref(), Some("m3"));
    // ...and goes home at its next write, leaving no copy beside: an earlier build's logout,
    // which removes the file under the name only, leaves nothing to be read in its place.
    store.save_tokens(mallory, &tokens("m4")).await.unwrap();
    let home = store.files.own_path(TOKENS, mallory);
    let record: TokensFile = store.files.read(&home, TOKENS).unwrap().unwrap();
    assert_eq!(record.resource, mallory);
    std::fs::remove_file(&home).unwrap();
    assert_eq!(load(mallory).await, None);
    store.save_tokens(alice, &tokens("a2")).await.unwrap();
    assert_eq!(load(mallory).await, None);
    assert_eq!(load(alice).await.as_deref(), Some("a2"));
    // One file for the one record left, under the name.
    let files: Vec<_> = std::fs::read_dir(store.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert_eq!(files, ["tokens-same.json"]);
}

#[tokio::test]
async fn registrations_and_statuses_whose_names_collide_are_each_kept() {
    use crate::store::LastFlow;
    use mcp_oauth_flow::client::ClientRegistration;
    let dir = tempfile::tempdir().unwrap();
    let store = colliding_store(dir.path());
    let registration = |issuer: &str, id: &str| ClientRegistration {
        issuer: issuer.into(),
        // The same client id at both: only the issuer tells them apart (the redirect URI
        // tells the test which one it read).
        client_id: "c-1".into(),
        client_secret: None,
        client_secret_expires_at: None,
        token_endpoint_auth_method: Some("none".into()),
        redirect_uris: vec![id.into()],
        grant_types: Vec::new(),
    };
    let client_id = |issuer| {
        let store = store.clone();
        async move {
            store
                .load_client(issuer)
                .await
                .unwrap()
                .map(|r| r.redirect_uris[0].clone())
        }
    };
    store
        .save_client(&registration("https://as", "ours"))
        .await
        .unwrap();
    store
        .save_client(&registration("https://as.evil", "theirs"))
        .await
        .unwrap();
    assert_eq!(client_id("https://as").await.as_deref(), Some("ours"));
    assert_eq!(
        client_id("https://as.evil").await.as_deref(),
        Some("theirs")
    );
    // A refused client, and a removal, reach only their own issuer's registration.
    store
        .remove_refused_client("https://as.evil", "c-1")
        .await
        .unwrap();
    assert_eq!(client_id("https://as.evil").await, None);
    assert_eq!(client_id("https://as").await.as_deref(), Some("ours"));
    store
        .save_client(&registration("https://as.evil", "theirs"))
        .await
        .unwrap();
    store.remove_client("https://as.evil").await.unwrap();
    assert_eq!(client_id("https://as.evil").await, None);
    assert_eq!(client_id("https://as").await.as_deref(), Some("ours"));

    let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    store
        .save_last_flow("https://rs/a", &LastFlow::Succeeded { at })
        .await
        .unwrap();
    let later = LastFlow::Succeeded {
        at: at + Duration::from_secs(1),
    };
    store.save_last_flow("https://rs/b", &later).await.unwrap();
    assert_eq!(
        store.load_last_flow("https://rs/a").await.unwrap(),
        Some(LastFlow::Succeeded { at })
    );
    assert_eq!(
        store.load_last_flow("https://rs/b").await.unwrap(),
        Some(later)
    );
    // Written again, each stays where it is and the other is left alone.
    let latest = LastFlow::Succeeded {
        at: at + Duration::from_secs(2),
    };
    store.save_last_flow("https://rs/b", &latest).await.unwrap();
    assert_eq!(
        store.load_last_flow("https://rs/b").await.unwrap(),
        Some(latest)
    );
    assert_eq!(
        store.load_last_flow("https://rs/a").await.unwrap(),
        Some(LastFlow::Succeeded { at })
    );
}

/// What a stop between the two steps of a move home leaves (the record under its name, an
/// older copy beside it): the newer is read, and the next write or removal clears the copy.
#[tokio::test]
async fn a_copy_left_beside_a_record_is_never_read_and_goes_at_the_next_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = colliding_store(dir.path());
    let key = "user:5:alice|https://rs/mcp";
    let beside = store.files.overflow_path(TOKENS, key);
    let leave_old_copy = || {
        let file = TokensFile {
            resource: key.into(),
            tokens: tokens("old"),
        };
        Files::write_atomic(&beside, &serde_json::to_vec(&file).unwrap()).unwrap();
    };
    let load = || async {
        store
            .load_tokens(key)
            .await
            .unwrap()
            .map(|t| t.access_token().secret().clone())
    };
    store.save_tokens(key, &tokens("new")).await.unwrap();
    leave_old_copy();
    assert_eq!(load().await.as_deref(), Some("new"));
    store.save_tokens(key, &tokens("newer")).await.unwrap();
    assert!(!beside.exists(), "a write left the copy beside");
    leave_old_copy();
    store
        .compare_and_swap_tokens(key, Some(&tokens("newer")), None)
        .await
        .unwrap();
    assert!(!beside.exists(), "a removal left the copy beside");
    assert_eq!(load().await, None);
}

/// A plain save takes the compare-and-swap's lock: held elsewhere (another process's swap),
/// the save waits for it, and writes once it is given back.
#[tokio::test]
async fn a_save_waits_for_the_compare_and_swap_lock() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path()).unwrap();
    let url = "https://rs/mcp";
    let (_, held) = store.files.lock_file(url, "cas").unwrap();
    held.try_lock().unwrap();
    let saving = {
        let store = store.clone();
        tokio::spawn(async move { store.save_tokens(url, &tokens("a")).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!saving.is_finished(), "the save did not wait for the lock");
    assert!(store.load_tokens(url).await.unwrap().is_none());
    drop(held);
    tokio::time::timeout(Duration::from_secs(5), saving)
        .await
        .expect("the save still waits after the lock was given back")
        .unwrap()
        .unwrap();
    assert!(store.load_tokens(url).await.unwrap().is_some());
}

/// A status write and a registration's removal also decide where their record is under a lock
/// that colliding keys share: each waits for it while it is held elsewhere.
#[tokio::test]
async fn a_status_write_and_a_client_removal_wait_for_their_locks() {
    use crate::store::LastFlow;
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path()).unwrap();
    let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for (key, kind) in [("https://rs/a", "status-cas"), ("https://as", "client-cas")] {
        let (_, held) = store.files.lock_file(key, kind).unwrap();
        held.try_lock().unwrap();
        let waiting = {
            let store = store.clone();
            tokio::spawn(async move {
                if kind == "status-cas" {
                    store.save_last_flow(key, &LastFlow::Succeeded { at }).await
                } else {
                    store.remove_client(key).await
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "{kind}: did not wait for the lock");
        drop(held);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap_or_else(|_| panic!("{kind}: still waits after the lock was given back"))
            .unwrap()
            .unwrap();
    }
    assert!(store
        .load_last_flow("https://rs/a")
        .await
        .unwrap()
        .is_some());
}
