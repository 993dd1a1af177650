//! Line buffers handed back by the writers once a record is written, for the
//! consumers to encode the next records into.
//!
//! A record's buffer is a megabyte or more, allocated on a consumer thread
//! and freed on a writer thread. glibc hands such chunks back to the kernel
//! (its heap is trimmed, or the chunk was mapped on its own), so every new
//! record faulted its pages in again, zero-filled: in perf, `clear_page` on
//! the consumer thread was ~2 % of the persister's CPU, and a million
//! messages took 29 000–35 000 minor faults (22 000–26 000 with the pool).
//! Recycled buffers are already mapped and warm.

use std::sync::Mutex;

/// Bytes of capacity the pool keeps at most. Writers give buffers back about
/// as fast as consumers take them, so the pool is mostly near empty; this
/// bounds what it pins after a burst.
const MAX_KEPT_BYTES: usize = 16 << 20;

/// A buffer above this capacity is freed rather than kept.
const MAX_KEPT_CAPACITY: usize = 8 << 20;

/// A bounded pool of empty line buffers, shared by consumers and writers.
#[derive(Default)]
pub struct LineBuffers {
    free: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

impl LineBuffers {
    /// An empty buffer with room for at least `capacity` bytes: the buffer
    /// given back last (the warmest) when its capacity is between
    /// `capacity` and twice that, else a new one.
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        let reused = self.free.lock().ok().and_then(|mut kept| {
            let buf = kept.buffers.pop()?;
            kept.bytes -= buf.capacity();
            Some(buf)
        });
        match reused {
            // Growing a reused buffer would copy it for nothing, and one far
            // larger than asked would pin memory the hand-off budget does not
            // see (it counts lines, not capacity): a new one replaces both.
            Some(buf) if (capacity..=capacity.saturating_mul(2)).contains(&buf.capacity()) => buf,
            _ => Vec::with_capacity(capacity),
        }
    }

    /// Keeps `buf`, emptied, for a later [`LineBuffers::take`], unless it is
    /// too large or the pool is full (then it is freed).
    pub fn give_back(&self, mut buf: Vec<u8>) {
        let capacity = buf.capacity();
        if capacity == 0 || capacity > MAX_KEPT_CAPACITY {
            return;
        }
        buf.clear();
        if let Ok(mut kept) = self.free.lock() {
            if kept.bytes + capacity <= MAX_KEPT_BYTES {
                kept.bytes += capacity;
                kept.buffers.push(buf);
            }
        }
    }

    /// Bytes of capacity kept now.
    #[cfg(test)]
    fn kept_bytes(&self) -> usize {
        self.free.lock().map_or(0, |kept| kept.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_taken_again_empty() {
        let pool = LineBuffers::default();
        let mut buf = pool.take(1000);
        buf.extend_from_slice(b"cpu value=1 1\n");
        let at = buf.as_ptr();
        pool.give_back(buf);
        assert_eq!(pool.kept_bytes(), 1000);
        let again = pool.take(500);
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), at, "the same allocation is reused");
        assert_eq!(pool.kept_bytes(), 0);
    }

    #[test]
    fn a_kept_buffer_too_small_or_far_too_large_is_replaced() {
        let pool = LineBuffers::default();
        pool.give_back(Vec::with_capacity(100));
        assert!(pool.take(4096).capacity() >= 4096);
        assert_eq!(pool.kept_bytes(), 0, "the small one was dropped");
        pool.give_back(Vec::with_capacity(1 << 20));
        assert!(pool.take(1000).capacity() < 1 << 20);
        assert_eq!(pool.kept_bytes(), 0, "the large one was dropped");
    }

    #[test]
    fn the_pool_keeps_a_bounded_number_of_bytes() {
        let pool = LineBuffers::default();
        pool.give_back(Vec::with_capacity(MAX_KEPT_CAPACITY + 1));
        assert_eq!(pool.kept_bytes(), 0, "an oversized buffer is freed");
        for _ in 0..10 {
            pool.give_back(Vec::with_capacity(MAX_KEPT_CAPACITY));
        }
        assert_eq!(pool.kept_bytes(), MAX_KEPT_BYTES);
    }
}
