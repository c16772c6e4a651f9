//! A sealed file store ([`FileStore::sealed_with`]): nothing secret on disk, records written
//! before sealing read and sealed when next written, and a record it cannot open refused
//! without being touched.

use super::*;
use crate::store::sealing::SealingKey;
use mcp_oauth_flow::secrets::{ClientSecret, RefreshToken};
use mcp_oauth_flow::token::TokenType;

const RESOURCE: &str = "https://rs/mcp";
const ISSUER: &str = "https://as";

fn tokens(at: &str) -> TokenSet {
    TokenSet::new(at, TokenType::Bearer, ISSUER, "c")
        .with_refresh_token(Some(RefreshToken::new(format!("{at}-refresh"))))
}

fn registration() -> ClientRegistration {
    ClientRegistration {
        issuer: ISSUER.into(),
        client_id: "c".into(),
        client_secret: Some(ClientSecret::new("SECRET-client".into())),
        client_secret_expires_at: None,
        token_endpoint_auth_method: Some("client_secret_basic".into()),
        redirect_uris: vec![],
        grant_types: Vec::new(),
    }
}

/// Every file of the store's directory, with its bytes (lock files are empty).
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut all: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    all.sort();
    all
}

fn shows_a_secret(bytes: &[u8]) -> bool {
    String::from_utf8_lossy(bytes).contains("SECRET")
}

/// No file of the store's directory shows a secret.
fn assert_nothing_secret(dir: &Path) {
    for (path, bytes) in files(dir) {
        assert!(!shows_a_secret(&bytes), "{} shows a secret", path.display());
    }
}

#[tokio::test]
async fn tokens_and_client_secrets_are_ciphertext_on_disk_and_read_back_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = SealingKey::generate().unwrap();
    let store = FileStore::new(dir.path()).unwrap().sealed_with(key.clone());
    store
        .save_tokens(RESOURCE, &tokens("SECRET-at"))
        .await
        .unwrap();
    store.save_client(&registration()).await.unwrap();
    let written = files(dir.path());
    assert!(written.len() >= 2, "{written:?}");
    assert_nothing_secret(dir.path());

    // Another handle (another process) with the same key reads every record.
    let again = FileStore::new(dir.path()).unwrap().sealed_with(key);
    let back = again.load_tokens(RESOURCE).await.unwrap().unwrap();
    assert_eq!(back.access_token().secret(), "SECRET-at");
    assert_eq!(
        back.refresh_token().map(|r| r.secret().as_str()),
        Some("SECRET-at-refresh")
    );
    let client = again.load_client(ISSUER).await.unwrap().unwrap();
    assert_eq!(
        client.client_secret.as_ref().map(|s| s.secret().as_str()),
        Some("SECRET-client")
    );
    // Compare-and-swap against what is sealed there works as on plain records.
    let swapped = again
        .compare_and_swap_tokens(RESOURCE, Some(&back), Some(&tokens("SECRET-next")))
        .await
        .unwrap();
    assert!(matches!(swapped, Replaced::Swapped));
    assert_nothing_secret(dir.path());
}

#[tokio::test]
async fn records_written_before_sealing_are_read_and_sealed_when_next_written() {
    let dir = tempfile::tempdir().unwrap();
    let plain = FileStore::new(dir.path()).unwrap();
    plain
        .save_tokens(RESOURCE, &tokens("SECRET-old"))
        .await
        .unwrap();
    assert!(files(dir.path()).iter().any(|(_, b)| shows_a_secret(b)));

    let sealed = FileStore::new(dir.path())
        .unwrap()
        .sealed_with(SealingKey::generate().unwrap());
    let old = sealed.load_tokens(RESOURCE).await.unwrap().unwrap();
    assert_eq!(old.access_token().secret(), "SECRET-old");
    let swapped = sealed
        .compare_and_swap_tokens(RESOURCE, Some(&old), Some(&tokens("SECRET-new")))
        .await
        .unwrap();
    assert!(matches!(swapped, Replaced::Swapped));
    assert_nothing_secret(dir.path());
}

#[tokio::test]
async fn a_record_this_store_cannot_open_is_refused_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let key = SealingKey::generate().unwrap();
    let owner = FileStore::new(dir.path()).unwrap().sealed_with(key.clone());
    owner
        .save_tokens(RESOURCE, &tokens("SECRET-at"))
        .await
        .unwrap();
    let before = files(dir.path());

    let other = FileStore::new(dir.path())
        .unwrap()
        .sealed_with(SealingKey::generate().unwrap());
    let unsealed = FileStore::new(dir.path()).unwrap();
    for (store, says) in [(&other, "does not open it"), (&unsealed, "sealed_with")] {
        let err = store.load_tokens(RESOURCE).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Store);
        assert!(!err.is_transient());
        assert!(err.to_string().contains("tokens-"), "{err}");
        assert!(err.to_string().contains(says), "{err}");
        // Nor does a compare-and-swap write over it.
        let swap = store
            .compare_and_swap_tokens(RESOURCE, None, Some(&tokens("SECRET-mine")))
            .await;
        assert!(swap.is_err(), "{swap:?}");
    }
    assert_eq!(files(dir.path()), before, "a record was changed");
    let back = owner.load_tokens(RESOURCE).await.unwrap().unwrap();
    assert_eq!(back.access_token().secret(), "SECRET-at");
}

/// Two keys whose names collide: the record under the shared name is another key's, which
/// the sealed store must read (opened) to tell, and then keeps its own beside it.
#[tokio::test]
async fn a_colliding_name_is_told_apart_through_the_seal() {
    let dir = tempfile::tempdir().unwrap();
    let key = SealingKey::generate().unwrap();
    let mut store = FileStore::new(dir.path()).unwrap().sealed_with(key);
    let same_name: fn(&str, &str, &str) -> String = |prefix, _key, ext| format!("{prefix}-x.{ext}");
    Arc::get_mut(&mut store.files).unwrap().name = same_name;
    store
        .save_tokens("https://rs/a", &tokens("SECRET-a"))
        .await
        .unwrap();
    store
        .save_tokens("https://rs/b", &tokens("SECRET-b"))
        .await
        .unwrap();
    let a = store.load_tokens("https://rs/a").await.unwrap().unwrap();
    let b = store.load_tokens("https://rs/b").await.unwrap().unwrap();
    assert_eq!(a.access_token().secret(), "SECRET-a");
    assert_eq!(b.access_token().secret(), "SECRET-b");
    assert_nothing_secret(dir.path());
}

/// Nor is it written over or removed: a plain save, a removal, a registration's save or
/// removal, a status, from a store with another key or none. Each could never be read again by
/// the key that sealed it.
#[tokio::test]
async fn a_record_this_store_cannot_open_is_never_written_over_or_removed() {
    let dir = tempfile::tempdir().unwrap();
    let owner = FileStore::new(dir.path())
        .unwrap()
        .sealed_with(SealingKey::generate().unwrap());
    owner
        .save_tokens(RESOURCE, &tokens("SECRET-at"))
        .await
        .unwrap();
    owner.save_client(&registration()).await.unwrap();
    let before = files(dir.path());

    let other = FileStore::new(dir.path())
        .unwrap()
        .sealed_with(SealingKey::generate().unwrap());
    let unsealed = FileStore::new(dir.path()).unwrap();
    for store in [&other, &unsealed] {
        let save = store.save_tokens(RESOURCE, &tokens("SECRET-mine")).await;
        assert_eq!(save.unwrap_err().kind(), ErrorKind::Store);
        let save = store.save_client(&registration()).await;
        assert_eq!(save.unwrap_err().kind(), ErrorKind::Store);
        let remove = store.remove_client(ISSUER).await;
        assert_eq!(remove.unwrap_err().kind(), ErrorKind::Store);
        let swap = store.compare_and_swap_tokens(RESOURCE, None, None).await;
        assert!(swap.is_err(), "{swap:?}");
    }
    assert_eq!(files(dir.path()), before, "a record was changed");
    // A status over one this store cannot open, the same.
    let status = crate::store::LastFlow::of(&Ok(()), std::time::UNIX_EPOCH);
    owner.save_last_flow(RESOURCE, &status).await.unwrap();
    let before = files(dir.path());
    for store in [&other, &unsealed] {
        let save = store.save_last_flow(RESOURCE, &status).await;
        assert_eq!(save.unwrap_err().kind(), ErrorKind::Store);
    }
    assert_eq!(files(dir.path()), before, "a record was changed");
    // A record that is merely broken (not sealed) goes with its name, as before.
    let path = owner.files.tokens_path(RESOURCE);
    std::fs::write(&path, b"{not json").unwrap();
    unsealed
        .save_tokens(RESOURCE, &tokens("SECRET-fresh"))
        .await
        .unwrap();
    let fresh = unsealed.load_tokens(RESOURCE).await.unwrap().unwrap();
    assert_eq!(fresh.access_token().secret(), "SECRET-fresh");
}

/// A sealed record that opens but does not parse (a newer build's, sharing the directory) is
/// no record another key could lose: it goes with its name, as a broken plain one does.
#[tokio::test]
async fn a_record_that_opens_but_does_not_parse_is_written_over() {
    let dir = tempfile::tempdir().unwrap();
    let key = SealingKey::generate().unwrap();
    let store = FileStore::new(dir.path()).unwrap().sealed_with(key.clone());
    let path = store.files.tokens_path(RESOURCE);
    let unreadable =
        crate::store::sealing::seal(&key, b"{\"from\":\"a newer build\"}", TOKENS).unwrap();
    std::fs::write(&path, unreadable).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    assert!(store.load_tokens(RESOURCE).await.is_err());
    store
        .save_tokens(RESOURCE, &tokens("SECRET-new"))
        .await
        .unwrap();
    let back = store.load_tokens(RESOURCE).await.unwrap().unwrap();
    assert_eq!(back.access_token().secret(), "SECRET-new");
}
