//! The ring's errors: one enum whose variants are the Go runtime's sentinel
//! errors (`runtime/ring/errors.go`), each carrying the ring's name and the
//! values involved.

use std::fmt;
use std::io;

/// What went wrong, without the details: for `match` on an [`Error`] of any
/// variant (`err.kind() == ErrorKind::Timeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A Block publish or a receive with a timeout waited longer than allowed.
    Timeout,
    /// A `drop_newest` ring had no free slot: the message was refused and
    /// counted.
    Full,
    /// A non-blocking receive found no message.
    Empty,
    /// The publisher closed the ring and every message has been received.
    Closed,
    /// The publisher died without closing; every message it published has
    /// been received.
    PublisherDead,
    /// The producer evicted this subscriber (it stalled past the liveness
    /// timeout, or its head was impossible).
    Evicted,
    /// A borrowed slot was overwritten before it was released: what was
    /// read from it must be discarded (it was counted as dropped).
    Overwritten,
    /// The ring's message identity differs from the type's.
    Mismatch,
    /// The segment's header or indices are invalid.
    Corrupt,
    /// The segment speaks another ABI version.
    Version,
    /// The segment's creator has not finished initialising it in time.
    NotReady,
    /// The shared-memory filesystem cannot hold the segment.
    NoSpace,
    /// A segment of that name already exists.
    Exists,
    /// No segment of that name exists.
    NotFound,
    /// The segment still has a live publisher.
    InUse,
    /// Every subscriber entry has a live owner.
    TableFull,
    /// A ring name that is not a safe segment name.
    InvalidName,
    /// Options that cannot describe a ring.
    InvalidOptions,
    /// A segment whose owner, mode, file type or seals are not trusted.
    Insecure,
    /// The platform lacks a needed primitive.
    Unsupported,
    /// A second claim before commit, or a borrow while one is outstanding.
    Claimed,
    /// A system call failed for another reason.
    Io,
}

/// An error of the ring client. Every variant but the hot-path ones
/// ([`Error::Full`], [`Error::Empty`], [`Error::Closed`],
/// [`Error::Overwritten`]) names the ring and the values involved; none of
/// those four allocates.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// See [`ErrorKind::Timeout`].
    Timeout { ring: String, detail: String },
    /// See [`ErrorKind::Full`].
    Full,
    /// See [`ErrorKind::Empty`].
    Empty,
    /// See [`ErrorKind::Closed`].
    Closed,
    /// See [`ErrorKind::PublisherDead`].
    PublisherDead { ring: String },
    /// See [`ErrorKind::Evicted`].
    Evicted {
        ring: String,
        entry: usize,
        generation: u64,
    },
    /// See [`ErrorKind::Overwritten`].
    Overwritten,
    /// See [`ErrorKind::Mismatch`]: `field` of the ring is `got`, the type
    /// (or this side of a sealed handshake) has `want`.
    Mismatch {
        op: &'static str,
        ring: String,
        field: &'static str,
        got: u64,
        want: u64,
    },
    /// See [`ErrorKind::Corrupt`].
    Corrupt { ring: String, detail: String },
    /// See [`ErrorKind::Version`]: the segment's version and this client's.
    Version { ring: String, got: u32, want: u32 },
    /// See [`ErrorKind::NotReady`].
    NotReady { ring: String, detail: String },
    /// See [`ErrorKind::NoSpace`].
    NoSpace { ring: String, detail: String },
    /// See [`ErrorKind::Exists`].
    Exists { ring: String, detail: String },
    /// See [`ErrorKind::NotFound`].
    NotFound { ring: String, path: String },
    /// See [`ErrorKind::InUse`].
    InUse { ring: String, detail: String },
    /// See [`ErrorKind::TableFull`].
    TableFull { ring: String, entries: usize },
    /// See [`ErrorKind::InvalidName`].
    InvalidName { name: String, detail: String },
    /// See [`ErrorKind::InvalidOptions`].
    InvalidOptions { ring: String, detail: String },
    /// See [`ErrorKind::Insecure`].
    Insecure { ring: String, detail: String },
    /// See [`ErrorKind::Unsupported`].
    Unsupported { ring: String, detail: String },
    /// See [`ErrorKind::Claimed`].
    Claimed { ring: String, detail: &'static str },
    /// A system call failed: `op` says which, on which ring.
    Io {
        ring: String,
        op: String,
        source: io::Error,
    },
}

impl Error {
    /// The variant, without its details.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Full => ErrorKind::Full,
            Error::Empty => ErrorKind::Empty,
            Error::Closed => ErrorKind::Closed,
            Error::PublisherDead { .. } => ErrorKind::PublisherDead,
            Error::Evicted { .. } => ErrorKind::Evicted,
            Error::Overwritten => ErrorKind::Overwritten,
            Error::Mismatch { .. } => ErrorKind::Mismatch,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::Version { .. } => ErrorKind::Version,
            Error::NotReady { .. } => ErrorKind::NotReady,
            Error::NoSpace { .. } => ErrorKind::NoSpace,
            Error::Exists { .. } => ErrorKind::Exists,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::InUse { .. } => ErrorKind::InUse,
            Error::TableFull { .. } => ErrorKind::TableFull,
            Error::InvalidName { .. } => ErrorKind::InvalidName,
            Error::InvalidOptions { .. } => ErrorKind::InvalidOptions,
            Error::Insecure { .. } => ErrorKind::Insecure,
            Error::Unsupported { .. } => ErrorKind::Unsupported,
            Error::Claimed { .. } => ErrorKind::Claimed,
            Error::Io { .. } => ErrorKind::Io,
        }
    }

    pub(crate) fn io(ring: &str, op: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Error::Io {
            ring: ring.to_owned(),
            op: op.into(),
            source: source.into(),
        }
    }

    pub(crate) fn corrupt(ring: &str, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            ring: ring.to_owned(),
            detail: detail.into(),
        }
    }

    pub(crate) fn invalid(ring: &str, detail: impl Into<String>) -> Self {
        Error::InvalidOptions {
            ring: ring.to_owned(),
            detail: detail.into(),
        }
    }

    pub(crate) fn insecure(ring: &str, detail: impl Into<String>) -> Self {
        Error::Insecure {
            ring: ring.to_owned(),
            detail: detail.into(),
        }
    }

    /// Whether a retry may succeed where this attach failed: the ring (or
    /// its sealed socket) does not exist yet, or is still being created.
    #[must_use]
    pub fn is_not_yet(&self) -> bool {
        match self {
            Error::NotFound { .. } | Error::NotReady { .. } => true,
            Error::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ),
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout { ring, detail } => write!(f, "ring {ring:?}: timeout: {detail}"),
            Error::Full => f.write_str("ring full"),
            Error::Empty => f.write_str("ring empty"),
            Error::Closed => f.write_str("publisher closed"),
            Error::PublisherDead { ring } => write!(f, "receive {ring:?}: publisher dead"),
            Error::Evicted {
                ring,
                entry,
                generation,
            } => write!(
                f,
                "receive {ring:?}: subscriber evicted (entry {entry}, generation {generation})"
            ),
            Error::Overwritten => f.write_str("borrowed slot overwritten"),
            Error::Mismatch {
                op,
                ring,
                field,
                got,
                want,
            } => write!(
                f,
                "{op} {ring:?}: message type mismatch: {field} {got:#x}, want {want:#x}"
            ),
            Error::Corrupt { ring, detail } => write!(f, "ring {ring:?}: corrupt segment: {detail}"),
            Error::Version { ring, got, want } => write!(
                f,
                "ring {ring:?}: unsupported ABI version: the segment is ABI version {got}, this client speaks version {want}"
            ),
            Error::NotReady { ring, detail } => {
                write!(f, "ring {ring:?}: segment not ready: {detail}")
            }
            Error::NoSpace { ring, detail } => {
                write!(f, "create {ring:?}: no space for segment: {detail}")
            }
            Error::Exists { ring, detail } => write!(f, "create {ring:?}: segment exists: {detail}"),
            Error::NotFound { ring, path } => {
                write!(f, "ring {ring:?}: segment not found: {path}")
            }
            Error::InUse { ring, detail } => write!(f, "ring {ring:?}: segment in use: {detail}"),
            Error::TableFull { ring, entries } => write!(
                f,
                "attach {ring:?}: subscriber table full: all {entries} entries have live owners"
            ),
            Error::InvalidName { name, detail } => {
                write!(f, "ring name {name:?}: invalid name: {detail}")
            }
            Error::InvalidOptions { ring, detail } => {
                write!(f, "ring {ring:?}: invalid options: {detail}")
            }
            Error::Insecure { ring, detail } => {
                write!(f, "ring {ring:?}: insecure segment: {detail}")
            }
            Error::Unsupported { ring, detail } => {
                write!(f, "ring {ring:?}: unsupported platform: {detail}")
            }
            Error::Claimed { ring, detail } => {
                write!(f, "ring {ring:?}: claim or borrow outstanding: {detail}")
            }
            Error::Io { ring, op, source } => write!(f, "ring {ring:?}: {op}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The result of a ring operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatch_names_both_values() {
        let e = Error::Mismatch {
            op: "attach",
            ring: "x".into(),
            field: "fingerprint",
            got: 0xab,
            want: 0xcd,
        };
        assert_eq!(e.kind(), ErrorKind::Mismatch);
        assert_eq!(
            e.to_string(),
            "attach \"x\": message type mismatch: fingerprint 0xab, want 0xcd"
        );
    }

    #[test]
    fn io_has_a_source() {
        let e = Error::io("r", "open", io::Error::from_raw_os_error(2));
        assert!(std::error::Error::source(&e).is_some());
        assert!(e.is_not_yet());
    }
}
