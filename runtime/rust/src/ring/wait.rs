//! Waiting and the fences of the handshakes (ABI.md §8 "Memory-ordering
//! rule", §8.3, §8.6), and the word-wise atomic copies of message bytes.

use std::sync::atomic::{compiler_fence, AtomicU64, Ordering};
use std::time::Duration;

/// Every futex sleep is bounded by this; after it the waiter re-checks
/// liveness and state.
pub const WATCHDOG: Duration = Duration::from_millis(200);
/// Polls before a waiter parks; the last [`YIELD_POLLS`] of them yield the
/// CPU first (it matters when peers share few cores).
pub(crate) const DEFAULT_SPIN: u32 = 1024;
pub(crate) const YIELD_POLLS: u32 = 64;

/// A full (StoreLoad) fence: a locked instruction on x86-64. Used on the
/// strong side of handshakes H1, H2 and H5.
#[inline(always)]
pub(crate) fn full_fence() {
    std::sync::atomic::fence(Ordering::SeqCst);
}

/// The light side of an asymmetric handshake: no CPU fence, only a compiler
/// barrier so that the store stays before the load in program order (the
/// heavy side's membarrier provides the CPU ordering, ABI.md §8.6).
#[inline(always)]
pub(crate) fn light_fence() {
    compiler_fence(Ordering::SeqCst);
}

/// One poll of a spin: a CPU pause, or a `sched_yield` near the end.
#[inline(always)]
pub(crate) fn spin_pause(spins: u32, limit: u32) {
    if spins >= limit.saturating_sub(YIELD_POLLS) {
        super::sys::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

/// Copies the `T` at `src` (a slot's message bytes, which another party may
/// overwrite concurrently) into `dst`, one relaxed atomic u64 load at a
/// time: a racing write makes the copy stale, never undefined behaviour;
/// the seqlock stamp re-check decides whether it is kept.
///
/// # Safety
/// `src` is 8-aligned and readable for `round_up(size_of::<T>(), 8)` bytes
/// (a slot's message region always is: ABI.md §3); `dst` is valid for
/// writes of a `T`.
#[inline(always)]
pub(crate) unsafe fn copy_from_slot<T: crate::Message>(dst: *mut T, src: *const u8) {
    let size = std::mem::size_of::<T>();
    let d = dst.cast::<u8>();
    let words = size / 8;
    for k in 0..words {
        // SAFETY (caller): src+8k is an aligned word of the slot.
        let w = unsafe { AtomicU64::from_ptr(src.add(8 * k).cast_mut().cast()) }
            .load(Ordering::Relaxed);
        // SAFETY: dst is valid for size bytes; T may be less aligned.
        unsafe { d.add(8 * k).cast::<u64>().write_unaligned(w) };
    }
    let rem = size % 8;
    if rem != 0 {
        // SAFETY (caller): the slot's region extends to the next word.
        let w = unsafe { AtomicU64::from_ptr(src.add(8 * words).cast_mut().cast()) }
            .load(Ordering::Relaxed);
        let b = w.to_le_bytes();
        // SAFETY: dst has rem bytes left.
        unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), d.add(8 * words), rem) };
    }
}

/// Writes `src` into a slot's message bytes at `dst` with relaxed atomic u64
/// stores (readers may be copying the slot concurrently); the bytes of the
/// last word beyond `size_of::<T>()` are written as zeros (slot padding).
///
/// # Safety
/// `dst` is 8-aligned and writable for `round_up(size_of::<T>(), 8)` bytes.
#[inline(always)]
pub(crate) unsafe fn copy_to_slot<T: crate::Message>(dst: *mut u8, src: &T) {
    let bytes = zerocopy::IntoBytes::as_bytes(src);
    let words = bytes.len() / 8;
    for k in 0..words {
        let w = u64::from_le_bytes(bytes[8 * k..8 * k + 8].try_into().expect("8 bytes"));
        // SAFETY (caller): an aligned word of the slot.
        unsafe { AtomicU64::from_ptr(dst.add(8 * k).cast()) }.store(w, Ordering::Relaxed);
    }
    let rem = bytes.len() % 8;
    if rem != 0 {
        let mut b = [0u8; 8];
        b[..rem].copy_from_slice(&bytes[8 * words..]);
        // SAFETY (caller): the slot's region extends to the next word.
        unsafe { AtomicU64::from_ptr(dst.add(8 * words).cast()) }
            .store(u64::from_le_bytes(b), Ordering::Relaxed);
    }
}

/// Offsets, from a slot's stamp, of one word in each further cache line the
/// slot may span (at most three of them), which a waiting reader loads
/// beside the stamp so that the message's lines travel with it (ABI.md §8.5
/// step 1a, non-normative).
pub(crate) fn watch_offsets(slot_size: u64) -> ([usize; 4], usize) {
    let mut w = [0usize; 4];
    let mut n = 0;
    let mut off = 64;
    while off < slot_size && n < 3 {
        w[n] = off as usize;
        n += 1;
        off += 64;
    }
    let last = (slot_size - 8) as usize;
    if n == 0 || w[n - 1] != last {
        w[n] = last;
        n += 1;
    }
    (w, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_offsets_cover_every_line() {
        assert_eq!(watch_offsets(72), ([64, 0, 0, 0], 1));
        assert_eq!(watch_offsets(64), ([56, 0, 0, 0], 1));
        assert_eq!(watch_offsets(16), ([8, 0, 0, 0], 1));
        assert_eq!(watch_offsets(200), ([64, 128, 192, 0], 3));
        assert_eq!(watch_offsets(4096).1, 4);
    }
}
