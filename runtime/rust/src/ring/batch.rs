//! Zero-copy views of borrowed slots: one message ([`Borrowed`]) or a run
//! of contiguous slots ([`Batch`]). A slot is a stamp followed by the
//! message and padding, so consecutive messages lie `slot_size` bytes apart
//! — never `size_of::<T>()` — and a batch is a strided view, not a `&[T]`.
//!
//! # Soundness
//! The messages are shared memory. A slot is borrowed only after its stamp
//! said it is committed, and for an unlimited subscriber of a Block or
//! `drop_newest` ring the producer cannot reuse it until the borrow is
//! released (it waits for the head). A lossy subscriber's borrowed slot may
//! be overwritten by the producer (another process, or another thread)
//! while the view is alive; `T: Message` admits every byte pattern and has
//! no interior mutability, so such a view reads stale or mixed bytes, never
//! an invalid value, and `release` reports [`Error::Overwritten`](super::Error::Overwritten) so that
//! they are discarded. Lossy readers that want no such caveat use
//! [`Subscriber::recv`](super::Subscriber::recv), which copies with atomic
//! loads and re-checks the stamp.

use std::iter::FusedIterator;
use std::marker::PhantomData;
use std::ops::{Deref, Index};

use super::error::Result;
use super::subscriber::Consumer;
use crate::Message;

/// One message borrowed in place; released when dropped, or explicitly
/// with [`release`](Self::release), which says whether it was overwritten.
pub struct Borrowed<'a, T: Message> {
    c: &'a mut Consumer,
    msg: *const T,
    released: bool,
}

impl<'a, T: Message> Borrowed<'a, T> {
    pub(crate) fn new(c: &'a mut Consumer, msg: *const u8) -> Self {
        Borrowed {
            c,
            msg: msg.cast(),
            released: false,
        }
    }

    /// Ends the borrow: [`Error::Overwritten`](super::Error::Overwritten) if the slot was overwritten
    /// meanwhile (discard what was read; it was counted as dropped).
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        self.c.release()
    }
}

impl<T: Message> Deref for Borrowed<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: msg is a committed slot's message, aligned for T and SIZE
        // bytes long, alive while the consumer (and its mapping) is
        // borrowed; see the module's soundness note for overwrites.
        unsafe { &*self.msg }
    }
}

impl<T: Message> Drop for Borrowed<'_, T> {
    fn drop(&mut self) {
        if !self.released {
            // An overwrite was counted as dropped; nobody asked to know.
            let _ = self.c.release();
        }
    }
}

impl<T: Message + std::fmt::Debug> std::fmt::Debug for Borrowed<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

/// A run of contiguous borrowed messages, `stride` bytes apart; released
/// when dropped, or with [`release`](Self::release).
pub struct Batch<'a, T: Message> {
    c: &'a mut Consumer,
    base: *const u8,
    len: usize,
    stride: usize,
    released: bool,
    _t: PhantomData<&'a T>,
}

impl<'a, T: Message> Batch<'a, T> {
    pub(crate) fn new(c: &'a mut Consumer, base: *const u8, len: usize, stride: usize) -> Self {
        Batch {
            c,
            base,
            len,
            stride,
            released: false,
            _t: PhantomData,
        }
    }

    /// The number of messages.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a batch holds at least one message.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes from one message to the next (the ring's slot size).
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// The `i`-th message, in place.
    pub fn get(&self, i: usize) -> Option<&T> {
        (i < self.len).then(|| {
            // SAFETY: i < len slots from base lie inside the slots region
            // (a batch never crosses the ring's end), each message aligned
            // for T; see the module's soundness note.
            unsafe { &*self.base.add(i * self.stride).cast::<T>() }
        })
    }

    /// The messages in order.
    pub fn iter(&self) -> BatchIter<'_, T> {
        BatchIter {
            base: self.base,
            front: 0,
            back: self.len,
            stride: self.stride,
            _t: PhantomData,
        }
    }

    /// Ends the borrow: [`Error::Overwritten`](super::Error::Overwritten) if any slot was overwritten
    /// meanwhile (discard the whole batch; it was counted as dropped).
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        self.c.release()
    }
}

impl<T: Message> Index<usize> for Batch<'_, T> {
    type Output = T;

    fn index(&self, i: usize) -> &T {
        match self.get(i) {
            Some(m) => m,
            None => panic!("batch index {i} out of range [0, {})", self.len),
        }
    }
}

impl<'b, T: Message> IntoIterator for &'b Batch<'_, T> {
    type Item = &'b T;
    type IntoIter = BatchIter<'b, T>;

    fn into_iter(self) -> BatchIter<'b, T> {
        self.iter()
    }
}

impl<T: Message> Drop for Batch<'_, T> {
    fn drop(&mut self) {
        if !self.released {
            let _ = self.c.release();
        }
    }
}

/// The iterator of [`Batch::iter`].
pub struct BatchIter<'b, T> {
    base: *const u8,
    front: usize,
    back: usize,
    stride: usize,
    _t: PhantomData<&'b T>,
}

impl<'b, T: Message> Iterator for BatchIter<'b, T> {
    type Item = &'b T;

    fn next(&mut self) -> Option<&'b T> {
        if self.front == self.back {
            return None;
        }
        // SAFETY: as in Batch::get, front < len.
        let m = unsafe { &*self.base.add(self.front * self.stride).cast::<T>() };
        self.front += 1;
        Some(m)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back - self.front;
        (n, Some(n))
    }
}

impl<T: Message> DoubleEndedIterator for BatchIter<'_, T> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front == self.back {
            return None;
        }
        self.back -= 1;
        // SAFETY: as in Batch::get, back < len.
        Some(unsafe { &*self.base.add(self.back * self.stride).cast::<T>() })
    }
}

impl<T: Message> ExactSizeIterator for BatchIter<'_, T> {}
impl<T: Message> FusedIterator for BatchIter<'_, T> {}
