//! [`HeadBuffer`]: the bytes a kept request head is packed into (and a small request body
//! copied into, see `prepare::Prepared::Copied`), recycled per thread.
//!
//! Every request's future carries its packed head until the answer comes (for the retry after
//! a `401`), and a future is moved several times on its way to the executor and inside it
//! (`Oneshot`, the task cell, the caller's own `async` blocks): every byte kept inline in it is
//! copied each time. A pointer to a buffer is moved instead. Allocating the buffer per request
//! would cost more than the copies it saves, so buffers are recycled: taken from a pool kept
//! per thread, given back to the pool of the thread that drops them. A thread that makes and
//! drops its own requests (a current-thread runtime, a `Buffer` worker, most tasks of a
//! multi-thread one) allocates none after its first; a thread that only drops heads others
//! made keeps up to [`POOL_SIZE`] and frees the rest.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

/// Bytes a head is packed into: a typical MCP request's URI and own headers (`Content-Type`,
/// `Accept`, `MCP-Protocol-Version`, `Mcp-Session-Id`) take about 200.
pub(crate) const INLINE: usize = 232;
// The packer and the body's copy keep lengths up to `INLINE` in a `u8`.
const _: () = assert!(INLINE <= u8::MAX as usize);

/// How many spare buffers a thread keeps: as many as requests it commonly has in flight and
/// completes at once, about 15 KB at most.
const POOL_SIZE: usize = 64;

type Bytes = Box<[u8; INLINE]>;

thread_local! {
    static SPARE: RefCell<Vec<Bytes>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of [`INLINE`] bytes that goes back to its thread's pool when dropped. Its bytes
/// are whatever the last head left: the packer keeps the length it wrote.
pub(crate) struct HeadBuffer(Option<Bytes>);

impl HeadBuffer {
    /// A spare buffer of this thread, or a new one.
    #[inline]
    pub(crate) fn take() -> Self {
        let spare = SPARE
            .try_with(|pool| pool.borrow_mut().pop())
            .ok()
            .flatten();
        Self(Some(spare.unwrap_or_else(|| Box::new([0; INLINE]))))
    }
}

#[cfg(test)]
impl From<[u8; INLINE]> for HeadBuffer {
    fn from(bytes: [u8; INLINE]) -> Self {
        Self(Some(Box::new(bytes)))
    }
}

impl Deref for HeadBuffer {
    type Target = [u8; INLINE];

    fn deref(&self) -> &[u8; INLINE] {
        // Always `Some` until dropped.
        self.0.as_deref().unwrap_or(&[0; INLINE])
    }
}

impl DerefMut for HeadBuffer {
    fn deref_mut(&mut self) -> &mut [u8; INLINE] {
        self.0.get_or_insert_with(|| Box::new([0; INLINE]))
    }
}

impl Drop for HeadBuffer {
    #[inline]
    fn drop(&mut self) {
        if let Some(mut bytes) = self.0.take() {
            // Cleared before it waits in the pool: it held a request's URI and the caller's
            // headers (a cookie, a session id), which should not outlive the request.
            bytes.fill(0);
            // On a thread being torn down, or with the pool full, the buffer is freed.
            let _ = SPARE.try_with(|pool| {
                let mut pool = pool.borrow_mut();
                if pool.len() < POOL_SIZE {
                    pool.push(bytes);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spare() -> usize {
        SPARE.with(|pool| pool.borrow().len())
    }

    #[test]
    fn a_dropped_buffer_is_the_next_one_taken_on_its_thread() {
        let first = HeadBuffer::take();
        let address = first.as_ptr();
        let before = spare();
        drop(first);
        assert_eq!(spare(), before + 1);
        let again = HeadBuffer::take();
        assert_eq!(again.as_ptr(), address);
        assert_eq!(spare(), before);
    }

    #[test]
    fn a_buffer_waits_in_the_pool_cleared() {
        let mut buffer = HeadBuffer::take();
        buffer.fill(0xA5);
        drop(buffer);
        let again = HeadBuffer::take();
        assert!(again.iter().all(|&b| b == 0));
    }

    #[test]
    fn a_thread_keeps_at_most_its_pool_size() {
        let many: Vec<HeadBuffer> = (0..POOL_SIZE + 10).map(|_| HeadBuffer::take()).collect();
        drop(many);
        assert_eq!(spare(), POOL_SIZE);
    }

    #[test]
    fn a_buffer_dropped_on_another_thread_goes_to_that_threads_pool() {
        let mut buffer = HeadBuffer::take();
        buffer[0] = 7;
        let here = spare();
        let there = std::thread::spawn(move || {
            assert_eq!(buffer[0], 7);
            drop(buffer);
            spare()
        })
        .join()
        .unwrap();
        assert_eq!(there, 1);
        assert_eq!(spare(), here);
    }
}
