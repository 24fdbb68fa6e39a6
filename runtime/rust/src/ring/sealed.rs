//! The sealed mode (ABI.md §14): the ring lives in an anonymous memfd whose
//! size is sealed, handed to subscribers over a Unix stream socket with
//! `SCM_RIGHTS` after a handshake that compares message identities. Nobody
//! can shrink or grow it under a reader (no `SIGBUS`), and nothing appears
//! in `/dev/shm`.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use super::abi::{validate_name, Identity, ABI_VERSION};
use super::error::{Error, Result};
use super::publisher::{Options, Publisher};
use super::segment::Segment;
use super::subscriber::{SubscribeOptions, Subscriber};
use crate::Message;

/// The seals a sealed segment carries; a subscriber refuses a descriptor
/// without all of them.
fn seals() -> SealFlags {
    SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL
}

const HANDSHAKE: usize = 32;
const HELLO: &[u8; 8] = b"TACHHELO";
const OKAY: &[u8; 8] = b"TACHOKAY";
const NOPE: &[u8; 8] = b"TACHNOPE";
/// Bounds every handshake read and write.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

fn encode(magic: &[u8; 8], id: &Identity) -> [u8; HANDSHAKE] {
    let mut b = [0u8; HANDSHAKE];
    b[..8].copy_from_slice(magic);
    b[8..12].copy_from_slice(&ABI_VERSION.to_le_bytes());
    b[12..16].copy_from_slice(&id.type_id.to_le_bytes());
    // Sizes and alignments are at most 2^20 (validated geometry).
    b[16..20].copy_from_slice(&(id.size as u32).to_le_bytes());
    b[20..24].copy_from_slice(&(id.align as u32).to_le_bytes());
    b[24..32].copy_from_slice(&id.fingerprint.to_le_bytes());
    b
}

fn decode(b: &[u8; HANDSHAKE]) -> ([u8; 8], u32, Identity) {
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    let magic = b[..8].try_into().expect("8 bytes");
    let id = Identity {
        type_id: u32_at(12),
        size: u64::from(u32_at(16)),
        align: u64::from(u32_at(20)),
        fingerprint: u64::from_le_bytes(b[24..32].try_into().expect("8 bytes")),
    };
    (magic, u32_at(8), id)
}

/// What a sealed publisher's server hands out: its own descriptor of the
/// segment (the publisher's open file description), closed when the
/// publisher closes.
pub(crate) struct SealedShare {
    fd: Mutex<Option<OwnedFd>>,
    id: Identity,
    name: String,
}

impl SealedShare {
    pub(crate) fn close(&self) {
        *self.fd.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

impl<T: Message> Publisher<T> {
    /// Creates a ring of `T` in an anonymous, size-sealed memfd. `name`
    /// labels it in errors and in `/proc/PID/fd` (`memfd:tachyon:NAME`);
    /// nothing is created in `/dev/shm`. Subscribers reach it through
    /// [`SealedServer::serve`] and [`Subscriber::dial_sealed`].
    pub fn create_sealed(name: &str, opts: Options) -> Result<Self> {
        validate_name(name)?;
        let hdr = opts.header(name, Identity::of::<T>(), false)?;
        let fd = rustix::fs::memfd_create(
            format!("tachyon:{name}"),
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )
        .map_err(|e| Error::io(name, "memfd_create", e))?;
        let seg = Segment::init(name, fd, &hdr, opts.mode)?;
        rustix::fs::fcntl_add_seals(seg.fd(), seals()).map_err(|e| Error::io(name, "seal", e))?;
        let dup =
            rustix::io::fcntl_dupfd_cloexec(seg.fd(), 0).map_err(|e| Error::io(name, "dup", e))?;
        let share = Arc::new(SealedShare {
            fd: Mutex::new(Some(dup)),
            id: hdr.identity,
            name: name.to_owned(),
        });
        Ok(Publisher::from_sealed(seg, &opts, share))
    }

    /// The server of a sealed ring, which may run on another thread (it
    /// never touches the publisher); `None` for a named ring.
    pub fn sealed_server(&self) -> Option<SealedServer> {
        self.sealed_share()
            .map(|s| SealedServer { share: s.clone() })
    }
}

/// Answers subscribers of a sealed ring (ABI.md §14 steps 1-2). Cloneable,
/// `Send` and `Sync`; it serves until its publisher closes.
#[derive(Clone)]
pub struct SealedServer {
    share: Arc<SealedShare>,
}

impl SealedServer {
    /// Accepts subscribers on `listener` until the publisher closes; each
    /// connection performs the handshake (a subscriber whose identity
    /// differs is refused with both values). The listener is switched to
    /// non-blocking so that a closed publisher is noticed within 1 ms.
    pub fn serve(&self, listener: &UnixListener) -> io::Result<()> {
        listener.set_nonblocking(true)?;
        loop {
            if self
                .share
                .fd
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_none()
            {
                return Ok(());
            }
            match listener.accept() {
                Ok((conn, _)) => {
                    // One subscriber's failed handshake is its problem.
                    let _ = self.handshake(conn);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Answers one subscriber on `conn`.
    pub fn handshake(&self, mut conn: UnixStream) -> io::Result<()> {
        conn.set_nonblocking(false)?;
        conn.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
        conn.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
        let mut hello = [0u8; HANDSHAKE];
        conn.read_exact(&mut hello)?;
        let (magic, abi, theirs) = decode(&hello);
        let ours = self.share.id;
        let fd = self.share.fd.lock().unwrap_or_else(|e| e.into_inner());
        let ok = &magic == HELLO && abi == ABI_VERSION && theirs == ours;
        match fd.as_ref().filter(|_| ok) {
            None => conn.write_all(&encode(NOPE, &ours)),
            Some(fd) => {
                let reply = encode(OKAY, &ours);
                let fds = [fd.as_fd()];
                let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
                let mut control = SendAncillaryBuffer::new(&mut space);
                control.push(SendAncillaryMessage::ScmRights(&fds));
                let n = rustix::net::sendmsg(
                    &conn,
                    &[IoSlice::new(&reply)],
                    &mut control,
                    SendFlags::NOSIGNAL,
                )?;
                if n < HANDSHAKE {
                    conn.write_all(&reply[n..])?;
                }
                Ok(())
            }
        }
    }

    /// The ring's name.
    pub fn name(&self) -> &str {
        &self.share.name
    }
}

impl<T: Message> Subscriber<T> {
    /// Connects to a sealed ring's server at `path`, performs the handshake
    /// for `T`, checks the received descriptor's seals, reopens it through
    /// `/proc/self/fd` (so that this subscriber's locks are on its own open
    /// file description, ABI.md §14 step 3), validates it and registers.
    pub fn dial_sealed(path: impl AsRef<Path>, opts: SubscribeOptions) -> Result<Self> {
        let path = path.as_ref();
        let label = path.display().to_string();
        let want = Identity::of::<T>();
        let mut conn = UnixStream::connect(path).map_err(|e| Error::io(&label, "dial", e))?;
        let hs = |e: io::Error| Error::io(&label, "handshake", e);
        conn.set_read_timeout(Some(HANDSHAKE_TIMEOUT)).map_err(hs)?;
        conn.set_write_timeout(Some(HANDSHAKE_TIMEOUT))
            .map_err(hs)?;
        conn.write_all(&encode(HELLO, &want)).map_err(hs)?;
        let mut reply = [0u8; HANDSHAKE];
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(4))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let got = rustix::net::recvmsg(
            &conn,
            &mut [IoSliceMut::new(&mut reply)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )
        .map_err(|e| hs(e.into()))?;
        // Every descriptor received is owned (and closed when dropped).
        let mut fds: Vec<OwnedFd> = Vec::new();
        for msg in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = msg {
                fds.extend(rights);
            }
        }
        if got.bytes == 0 {
            return Err(hs(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the publisher closed the connection",
            )));
        }
        if got.bytes < HANDSHAKE {
            conn.read_exact(&mut reply[got.bytes..]).map_err(hs)?;
        }
        let (magic, abi, ring) = decode(&reply);
        if &magic != OKAY && &magic != NOPE {
            return Err(Error::corrupt(
                &label,
                format!(
                    "not a Tachyon ring socket (reply {:?})",
                    String::from_utf8_lossy(&magic)
                ),
            ));
        }
        if abi != ABI_VERSION {
            return Err(Error::Version {
                ring: label,
                got: abi,
                want: ABI_VERSION,
            });
        }
        ring.check("dial", &label, &want)?;
        if &magic == NOPE {
            return Err(hs(io::Error::other(
                "the publisher refused the handshake (closing)",
            )));
        }
        let [received] = <[OwnedFd; 1]>::try_from(fds).map_err(|fds| {
            Error::corrupt(
                &label,
                format!("expected one descriptor, got {}", fds.len()),
            )
        })?;
        let have = rustix::fs::fcntl_get_seals(&received).unwrap_or(SealFlags::empty());
        if !have.contains(seals()) {
            return Err(Error::insecure(
                &label,
                format!(
                    "descriptor seals {:#x}, want {:#x} (shrink, grow, seal)",
                    have.bits(),
                    seals().bits()
                ),
            ));
        }
        let proc_path = format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&received)
        );
        let fd = rustix::fs::open(&proc_path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| Error::io(&label, "reopen the segment through /proc/self/fd", e))?;
        drop(received);
        let seg = Segment::open_fd(
            &label,
            fd,
            true,
            opts.ready_timeout,
            opts.allow_foreign_owner,
        )?;
        Self::subscribe(seg, &opts)
    }
}
