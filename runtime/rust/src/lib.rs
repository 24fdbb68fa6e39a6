//! Tachyon for Rust.
//!
//! `tachyon-gen generate --rust-out DIR` writes one module per schema file;
//! every message it generates implements [`Message`], the identity a ring
//! checks before it reads a slot. Booleans are [`Bool`] (any byte is a valid
//! `Bool`, so a view of shared memory is never undefined behaviour), and a
//! raw enum value the schema does not declare converts to
//! [`UnknownEnumValue`].
//!
//! The shared-memory ring client (`runtime/ABI.md`) lives behind the default
//! feature `ring`; build with `default-features = false` to encode and
//! decode generated messages only.

mod message;

pub use message::{Bool, Message, UnknownEnumValue};

#[cfg(feature = "ring")]
pub mod ring;

/// The `zerocopy` the generated code derives with, re-exported so that a
/// crate using generated modules needs no dependency of its own on it (it
/// may add one to name the traits; Cargo unifies the two 0.8 versions).
pub use zerocopy;
