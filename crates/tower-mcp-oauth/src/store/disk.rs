//! [`Disk`]: a [`FileStore`](super::FileStore)'s file work, done on a thread of its own.
//!
//! The store's opens, reads, writes and syncs are system calls that block: for microseconds
//! on a local disk (a sync for milliseconds), for ever on a network mount that stopped
//! answering (a home directory on a hard-mounted NFS server that went away). Made on the
//! caller's thread, such a call held an executor thread, and on a current-thread runtime the
//! whole runtime: no deadline of the layer's could fire, and no other task ran. So each store
//! does its file work on one thread of its own, in the order it was asked, and its callers
//! await the answer like any other store's: a caller that gives up (its deadline passed) is
//! no longer answered, and its work is skipped if it has not begun.
//!
//! One thread per store rather than one per call: a hung mount then holds one thread, not one
//! more for every attempt the layer makes while it hangs. The thread starts with the first
//! call and ends when the last handle of the store is dropped.

use std::sync::{mpsc, Mutex};

use futures_channel::oneshot;
use mcp_oauth_flow::{Error, ErrorKind};

use super::memory::lock as lock_std;

/// A piece of file work, with the way back to its caller.
type Job = Box<dyn FnOnce() + Send>;

thread_local! {
    /// Whether this thread is a store's disk thread.
    static DISK_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the caller runs on a store's disk thread, where file work may block.
pub(super) fn on_disk_thread() -> bool {
    DISK_THREAD.with(std::cell::Cell::get)
}

/// The thread a store does its file work on (see the module's docs).
#[derive(Default)]
pub(super) struct Disk {
    /// The way to the thread, once it has started; `None` before, or after it ended.
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
}

impl Disk {
    /// Runs `work` on the store's thread and answers with its result. The work is sent when
    /// the future is first polled, and skipped if the future is dropped before the thread
    /// reaches it; once begun, it runs to its end whether or not anyone waits (a write whose
    /// caller gave up may still land, as with any store whose answer is lost).
    pub(super) async fn run<T, F>(&self, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, Error> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.send(Box::new(move || {
            if !tx.is_canceled() {
                let _ = tx.send(work());
            }
        }))
        .map_err(|(_, e)| e)?;
        rx.await.unwrap_or_else(|_| {
            Err(Error::new(
                ErrorKind::Store,
                "the file store's disk work ended without an answer (it panicked)",
            )
            .mark_transient())
        })
    }

    /// Runs `work` on the store's thread without waiting for it: a lock's release, whose close
    /// of the lock file is a call to the file system like any other. Run here if the thread
    /// cannot be started.
    pub(super) fn detach(&self, work: impl FnOnce() + Send + 'static) {
        if let Err((job, _)) = self.send(Box::new(work)) {
            job();
        }
    }

    /// Hands `job` to the thread, starting it first if it has not started (or has ended); the
    /// job back if the thread cannot be started.
    fn send(&self, job: Job) -> Result<(), (Job, Error)> {
        let mut jobs = lock_std(&self.jobs);
        let job = match jobs.as_ref() {
            Some(sender) => match sender.send(job) {
                Ok(()) => return Ok(()),
                // The thread is gone (it catches a job's panic, so only something outside the
                // program ends it): a new one takes the job.
                Err(mpsc::SendError(job)) => job,
            },
            None => job,
        };
        let (sender, receiver) = mpsc::channel::<Job>();
        let started = std::thread::Builder::new()
            .name("tower-mcp-oauth-file-store".into())
            .spawn(move || {
                // Ends when the store's last handle drops the sender. A job that panics loses
                // its answer (its caller gets an error), not the thread.
                DISK_THREAD.with(|on| on.set(true));
                for job in receiver {
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })
            .map_err(|e| {
                Error::new(
                    ErrorKind::Store,
                    format!("cannot start the file store's disk thread: {e}"),
                )
                .with_source(e)
                .mark_transient()
            });
        if let Err(e) = started {
            return Err((job, e));
        }
        // A fresh receiver is alive: the send cannot fail.
        let _ = sender.send(job);
        *jobs = Some(sender);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::thread::ThreadId;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn work_runs_in_order_on_one_thread_that_is_not_the_callers() {
        let disk = Disk::default();
        let here = std::thread::current().id();
        let mut threads: Vec<ThreadId> = vec![];
        for i in 0..3 {
            let (thread, n) = disk
                .run(move || Ok((std::thread::current().id(), i)))
                .await
                .unwrap();
            assert_eq!(n, i);
            threads.push(thread);
        }
        assert!(
            threads.iter().all(|t| *t != here),
            "ran on the caller's thread"
        );
        assert!(
            threads.iter().all(|t| *t == threads[0]),
            "one thread per store"
        );
        let error = disk
            .run(|| Err::<(), _>(Error::new(ErrorKind::Store, "disk full")))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Store);
        assert!(error.to_string().contains("disk full"), "{error}");
    }

    #[tokio::test]
    async fn work_whose_caller_left_before_it_began_is_skipped() {
        let disk = Arc::new(Disk::default());
        // The thread is busy, as on a mount that stopped answering.
        let (resume, stalled) = std::sync::mpsc::channel::<()>();
        let (began, beginning) = oneshot::channel::<()>();
        let busy = tokio::spawn({
            let disk = Arc::clone(&disk);
            async move {
                disk.run(move || {
                    let _ = began.send(());
                    let _ = stalled.recv();
                    Ok(())
                })
                .await
            }
        });
        beginning.await.unwrap();
        let (ran, runs) = std::sync::mpsc::channel::<&str>();
        let left = {
            let ran = ran.clone();
            disk.run(move || {
                let _ = ran.send("left");
                Ok(())
            })
        };
        // The caller gives up while the thread is still busy.
        assert!(tokio::time::timeout(Duration::from_millis(50), left)
            .await
            .is_err());
        resume.send(()).unwrap();
        busy.await.unwrap().unwrap();
        disk.run(move || {
            let _ = ran.send("stayed");
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(runs.try_iter().collect::<Vec<_>>(), ["stayed"]);
    }

    #[tokio::test]
    async fn work_that_panics_is_an_error_and_the_next_work_runs() {
        let disk = Disk::default();
        let first = disk.run(|| Ok(std::thread::current().id())).await.unwrap();
        let failed = disk
            .run(|| -> Result<(), Error> { panic!("a bug in the store's file work") })
            .await
            .unwrap_err();
        assert_eq!(failed.kind(), ErrorKind::Store);
        assert!(failed.is_transient());
        let next = disk.run(|| Ok(std::thread::current().id())).await.unwrap();
        assert_eq!(first, next, "the thread outlived the panic");
    }
}
