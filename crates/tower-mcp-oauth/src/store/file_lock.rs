//! The wait for a [`FileStore`](super::FileStore) refresh lock another process holds: off the
//! executor, and given up when nobody waits any more.
//!
//! A blocking `flock` on a helper thread cannot be cancelled: a caller that gave up (the
//! flight's deadline passed) left its thread blocked until the holder let go, one more thread
//! for every later attempt while a hung process kept the lock. So the helper tries the lock
//! again at short intervals and ends as soon as its caller is gone.

use std::fs::{File, TryLockError};
use std::io;
use std::time::Duration;

use futures_channel::oneshot;

/// The first pause between two tries; each pause doubles, up to [`LONGEST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(1);
/// The longest pause: how late, at most, a waiter notices the lock was let go (or that its
/// caller gave up).
const LONGEST_PAUSE: Duration = Duration::from_millis(25);

/// Takes the exclusive lock of `file`, waiting on a helper thread while another process holds
/// it. Dropping the future ends the wait within [`LONGEST_PAUSE`].
#[cfg(test)]
pub(super) async fn lock_exclusive(file: File) -> io::Result<File> {
    if try_lock(&file)? {
        return Ok(file);
    }
    wait_for(file).await
}

/// Tries the exclusive lock of `file` once: `false` while another holder has it. A call to
/// the file system (on a network mount, to its server): the file store makes it on its disk
/// thread.
pub(super) fn try_lock(file: &File) -> io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Waits on a helper thread until the lock of `file`, which another holder had at the last
/// try, is taken. Dropping the future ends the wait within [`LONGEST_PAUSE`].
pub(super) async fn wait_for(file: File) -> io::Result<File> {
    let (tx, rx) = oneshot::channel();
    std::thread::spawn(move || wait(file, tx));
    rx.await
        .unwrap_or_else(|_| Err(io::Error::other("the lock's waiting thread vanished")))
}

/// Tries the lock until it is taken, fails, or `tx`'s receiver is gone (the caller gave up:
/// the thread ends, holding nothing).
fn wait(file: File, tx: oneshot::Sender<io::Result<File>>) {
    let mut pause = FIRST_PAUSE;
    loop {
        match file.try_lock() {
            Ok(()) => {
                // If the caller left meanwhile, the file is dropped with the result, and the
                // lock with it.
                let _ = tx.send(Ok(file));
                return;
            }
            Err(TryLockError::Error(e)) => {
                let _ = tx.send(Err(e));
                return;
            }
            Err(TryLockError::WouldBlock) if tx.is_canceled() => return,
            Err(TryLockError::WouldBlock) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::sync::mpsc;

    use super::*;

    fn open(path: &std::path::Path) -> File {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap()
    }

    #[tokio::test]
    async fn a_held_lock_is_taken_once_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let holder = open(&path);
        holder.lock().unwrap();
        let mut waiting = tokio_test::task::spawn(lock_exclusive(open(&path)));
        tokio_test::assert_pending!(waiting.poll());
        drop(holder);
        let taken = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
        // Now it is the holder: a third handle waits.
        assert!(matches!(
            open(&path).try_lock(),
            Err(TryLockError::WouldBlock)
        ));
        drop(taken);
        open(&path).try_lock().unwrap();
    }

    #[test]
    fn a_waiter_whose_caller_gave_up_ends_while_the_lock_is_still_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let holder = open(&path);
        holder.lock().unwrap();
        let (tx, rx) = oneshot::channel();
        // The caller gave up: its deadline passed and its future was dropped.
        drop(rx);
        let (done, ended) = mpsc::channel();
        let waiting = open(&path);
        std::thread::spawn(move || {
            wait(waiting, tx);
            let _ = done.send(());
        });
        ended
            .recv_timeout(Duration::from_secs(5))
            .expect("the waiting thread ended with the lock still held elsewhere");
        drop(holder);
    }
}
