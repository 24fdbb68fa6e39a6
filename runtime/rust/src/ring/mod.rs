//! The shared-memory ring client (feature `ring`): ABI v2 of
//! `runtime/ABI.md`, implemented from the text.
//!
//! A [`Publisher`] creates a ring of one generated message type `T` in
//! `/dev/shm` (or, sealed, in a memfd served over a Unix socket) and is its
//! single producer; any number of [`Subscriber`]s attach, each checked
//! against `T` (fingerprint, type id, size, alignment) and registered in
//! the ring's subscriber table. Hot paths (claim/commit/publish,
//! recv/borrow/release) make no system call and allocate nothing; waits
//! spin, then park on a futex bounded by the 200 ms [`WATCHDOG`].
//!
//! Modules by role: `abi` (offsets, geometry, header validation), `segment`
//! (shm files, mapping, locks), `publisher`, `subscriber`, `batch`
//! (zero-copy views), `wait` (fences, copies, spinning), `sealed` (memfd +
//! `SCM_RIGHTS`), `inspect` (reading a ring without registering), `sys`
//! (the system calls).
//!
//! Not guarded: a named segment truncated under a reader (by a process of
//! the same uid, or one granted write access) kills it with `SIGBUS`, as in
//! the C++ and Python clients (ABI.md §11); use the sealed mode, where
//! truncation fails with `EPERM`.

mod abi;
mod batch;
mod error;
mod inspect;
mod publisher;
mod sealed;
mod segment;
mod subscriber;
mod sys;
mod wait;

#[cfg(test)]
mod tests;

pub use abi::{
    subscriber_key, validate_name, Identity, Policy, SlotLayout, ABI_VERSION, MAX_CAPACITY,
    MAX_NAME_LEN, MAX_SUBSCRIBERS,
};
pub use batch::{Batch, BatchIter, Borrowed};
pub use error::{Error, ErrorKind, Result};
pub use inspect::{inspect, ProducerStats, Stats, SubscriberStats};
pub use publisher::{
    Fences, Options, Publisher, DEFAULT_CAPACITY, DEFAULT_LIVENESS_TIMEOUT, DEFAULT_MAX_SUBSCRIBERS,
};
pub use sealed::SealedServer;
pub use segment::{remove, remove_stale};
pub use subscriber::{Messages, Start, SubscribeOptions, Subscriber};
pub use sys::{FENCES_ENV, SHM_DIR};
pub use wait::WATCHDOG;

/// Hidden entry points for this crate's own fuzz/property tests and tools.
#[doc(hidden)]
pub mod __private {
    /// Validates `bytes` as a segment header exactly as attach does.
    pub fn decode_header(bytes: &[u8]) -> Result<(), super::Error> {
        super::abi::Header::decode("fuzz", bytes).map(|_| ())
    }
}
