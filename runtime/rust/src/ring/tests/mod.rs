//! The ring client's tests: golden ABI vectors, protocol behaviour, the
//! hostile cases and races of issue 14, the sealed mode, and a property
//! test of header validation. They run against real segments in /dev/shm
//! and remove what they create.

use std::sync::atomic::{AtomicUsize, Ordering};

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::Message;

mod basic;
mod golden;
mod hostile;
mod property;
mod races;
mod sealed;

/// The Go tests' Tick: 64 bytes, align 8, id 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub(crate) struct Tick {
    pub seq: u64,
    pub timestamp_ns: u64,
    pub payload: [u8; 48],
}

impl Message for Tick {
    const NAME: &'static str = "test.Tick";
    const TYPE_ID: u32 = 1;
    const FINGERPRINT: u64 = 0x7ac4_9e0f_1d2b_3c4d;
    const SIZE: usize = 64;
    const ALIGN: usize = 8;
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Default for Tick {
    fn default() -> Self {
        Tick::new_zeroed()
    }
}

impl Tick {
    /// golden/abi/README.md: payload word k = mix(seq*8 + k), timestamp =
    /// XOR of the six words.
    pub fn fill(&mut self, seq: u64) {
        self.seq = seq;
        let mut sum = 0;
        for k in 0..6 {
            let w = mix(seq.wrapping_mul(8).wrapping_add(k as u64));
            sum ^= w;
            self.payload[8 * k..8 * k + 8].copy_from_slice(&w.to_le_bytes());
        }
        self.timestamp_ns = sum;
    }

    pub fn of(seq: u64) -> Self {
        let mut t = Tick::default();
        t.fill(seq);
        t
    }

    /// Whether the message is `fill(seq)` for its own seq (not torn).
    pub fn intact(&self) -> bool {
        *self == Tick::of(self.seq)
    }
}

/// Book: 64 bytes, @align(64), id 2.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C, align(64))]
pub(crate) struct Book {
    pub seq: u64,
    pub levels: [u64; 6],
    pub check: u64,
}

impl Message for Book {
    const NAME: &'static str = "test.Book";
    const TYPE_ID: u32 = 2;
    const FINGERPRINT: u64 = 0xb00c_0000_0000_0002;
    const SIZE: usize = 64;
    const ALIGN: usize = 64;
}

/// Small: 16 bytes, align 8, id 3.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub(crate) struct Small {
    pub seq: u64,
    pub value: u64,
}

impl Message for Small {
    const NAME: &'static str = "test.Small";
    const TYPE_ID: u32 = 3;
    const FINGERPRINT: u64 = 0x5a11_0000_0000_0003;
    const SIZE: usize = 16;
    const ALIGN: usize = 8;
}

/// Odd: 12 bytes, align 4 — a size that is not a multiple of 8.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub(crate) struct Odd {
    pub a: u32,
    pub b: u32,
    pub c: u32,
}

impl Message for Odd {
    const NAME: &'static str = "test.Odd";
    const TYPE_ID: u32 = 4;
    const FINGERPRINT: u64 = 0x0dd0_0000_0000_0004;
    const SIZE: usize = 12;
    const ALIGN: usize = 4;
}

/// A ring name unique to this test process and call, removed (if a test
/// left it behind) when the guard drops.
pub(crate) struct Name(pub String);

impl Name {
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        Name(format!("t-rust-{}-{tag}-{n}", std::process::id()))
    }

    pub fn path(&self) -> String {
        format!("/dev/shm/{}", self.0)
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = super::remove(&self.0);
        // A squatter a test made (FIFO, socket, device) is not a ring.
        if let Ok(md) = std::fs::symlink_metadata(self.path()) {
            if !md.is_file() {
                let _ = std::fs::remove_file(self.path());
            }
        }
    }
}
