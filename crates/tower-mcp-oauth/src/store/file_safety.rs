//! What [`FileStore`](super::FileStore) refuses to trust on disk.
//!
//! A token store holds bearer credentials, so a file in it must be one this user wrote: a
//! directory another user owns or may write to (a path under a shared `/tmp`, say) lets that
//! user plant a token file (token injection) or a symbolic link that makes this process read
//! or lock a file of theirs. The rules are OpenSSH's `StrictModes` for `~/.ssh`, applied to the
//! store: the directory is this user's and writable by no one else, and a credential file is a
//! regular file this user owns, never a symbolic link.

use std::fs::{File, Metadata};
use std::io::ErrorKind as IoErrorKind;
use std::path::Path;

use mcp_oauth_flow::{Error, ErrorKind};

fn refused(path: &Path, why: &str) -> Error {
    Error::new(
        ErrorKind::Store,
        format!("refusing the token store path {}: {why}", path.display()),
    )
}

/// The user this process runs as (effective uid), through nix's safe wrapper.
#[cfg(unix)]
fn this_user() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Whether the file at `path` is one the store refuses to read and may replace: a symbolic
/// link (the rename replaces the link, never what it points to) or a file another user owns
/// (left by a run as another user, in a directory only this user may write). A write over it is
/// the way back to a working store; a file the store could read but not open (a sealed record
/// under another key) or not read for now is never written over.
pub(super) fn replaceable_refusal(path: &Path) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if meta.file_type().is_symlink() {
        return true;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.is_file() && meta.uid() != this_user() {
            return true;
        }
    }
    false
}

/// The store directory must belong to this user and be writable by no one else.
pub(super) fn check_store_dir(dir: &Path, meta: &Metadata) -> Result<(), Error> {
    if !meta.is_dir() {
        return Err(refused(dir, "not a directory"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.uid() != this_user() {
            return Err(refused(
                dir,
                &format!(
                    "owned by uid {}, not by this user (uid {}): another user could plant \
                     tokens in it; use a directory of your own",
                    meta.uid(),
                    this_user()
                ),
            ));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(refused(
                dir,
                &format!(
                    "writable by group or others (mode {:o}): run `chmod go-w` on it",
                    meta.mode() & 0o7777
                ),
            ));
        }
    }
    Ok(())
}

/// A credential file must not be a symbolic link (whatever it points to).
pub(super) fn refuse_symlink(path: &Path) -> Result<(), Error> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(refused(
            path,
            "a symbolic link; the store reads and locks only files it wrote (remove the link)",
        )),
        _ => Ok(()),
    }
}

/// Opens a credential file for reading: `None` when there is none, an error when it is a
/// symbolic link, not a regular file, owned by another user, or was swapped between the check
/// and the open.
pub(super) fn open_own_file(path: &Path) -> Result<Option<File>, Error> {
    let before = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == IoErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(super::file::io_error("cannot inspect", path, e)),
    };
    if before.file_type().is_symlink() {
        return Err(refused(
            path,
            "a symbolic link; the store reads and locks only files it wrote (remove the link)",
        ));
    }
    if !before.is_file() {
        return Err(refused(path, "not a regular file"));
    }
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == IoErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(super::file::io_error("cannot read", path, e)),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let opened = file
            .metadata()
            .map_err(|e| super::file::io_error("cannot inspect", path, e))?;
        if (opened.dev(), opened.ino()) != (before.dev(), before.ino()) {
            // Another writer's rename: read again, it is the new file.
            return Err(refused(path, "replaced while it was being opened").mark_transient());
        }
        if opened.uid() != this_user() {
            return Err(refused(
                path,
                &format!(
                    "owned by uid {}, not by this user: it was not written by this store",
                    opened.uid()
                ),
            ));
        }
    }
    Ok(Some(file))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_directory_writable_by_others_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let meta = std::fs::metadata(dir.path()).unwrap();
        assert!(check_store_dir(dir.path(), &meta).is_ok());

        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let meta = std::fs::metadata(dir.path()).unwrap();
        let err = check_store_dir(dir.path(), &meta).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Store);
        assert!(!err.is_transient());
        assert!(err.to_string().contains("chmod go-w"), "{err}");
    }

    #[test]
    fn a_file_is_not_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"").unwrap();
        let meta = std::fs::metadata(&file).unwrap();
        assert!(check_store_dir(&file, &meta).is_err());
    }

    #[test]
    fn links_and_non_files_are_refused_missing_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.json");
        std::fs::write(&target, b"{}").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();

        assert!(open_own_file(&target).unwrap().is_some());
        let err = open_own_file(&link).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(refuse_symlink(&link).is_err());
        assert!(refuse_symlink(&target).is_ok());
        assert!(refuse_symlink(&dir.path().join("missing")).is_ok());
        assert!(open_own_file(&dir.path().join("missing"))
            .unwrap()
            .is_none());
        assert!(open_own_file(dir.path()).is_err());
    }
}
