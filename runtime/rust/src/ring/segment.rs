//! A mapped ring segment: creating one (ABI.md §2 "Creation"), opening and
//! validating one ("Attach", §6), its locks (§8.4, §9), removing stale ones
//! (§10), and typed access to its atomic words.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::fs::{FallocateFlags, Mode, OFlags};
use rustix::mm::{MapFlags, ProtFlags};

use super::abi::*;
use super::error::{Error, Result};
use super::sys::{self, OpenError};

/// How long a segment that never became ready must have existed before
/// `remove` treats its creator as dead rather than still initialising.
const STALE_INIT_AGE: Duration = Duration::from_secs(5);

/// One handle's view of a segment: its own descriptor (its own open file
/// description, so its OFD locks are its own), the mapping, and the
/// validated geometry, which is never re-read from shared memory.
pub(crate) struct Segment {
    /// The ring's name (or, for a dialled sealed ring, the socket path).
    pub name: String,
    pub hdr: Header,
    fd: OwnedFd,
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is shared memory that other processes write
// concurrently anyway; this process touches it through atomics (control
// words, stamps, message copies) or through references whose validity the
// slot protocol establishes. Nothing in Segment is tied to a thread.
unsafe impl Send for Segment {}
// SAFETY: as above; &Segment only hands out atomics and raw pointers.
unsafe impl Sync for Segment {}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: base/len describe the mapping this handle created; no
        // reference into it outlives the handle (every borrow API ties its
        // lifetime to the owning Publisher or Subscriber).
        unsafe {
            let _ = rustix::mm::munmap(self.base.as_ptr().cast(), self.len);
        }
        // The descriptor closes after: that drops this handle's OFD locks
        // and its flock.
    }
}

impl Segment {
    /// The atomic u64 at `off`.
    #[inline(always)]
    pub fn u64(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off.is_multiple_of(8) && off + 8 <= self.len);
        // SAFETY: every offset comes from the validated local geometry or
        // the ABI constants: inside the mapping and 8-aligned (the mapping
        // is page-aligned). The word is only ever accessed atomically by
        // this process.
        unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(off).cast()) }
    }

    /// The atomic u32 at `off`.
    #[inline(always)]
    pub fn u32(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off.is_multiple_of(4) && off + 4 <= self.len);
        // SAFETY: as for u64, 4-aligned.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(off).cast()) }
    }

    /// A raw pointer to the byte at `off`.
    #[inline(always)]
    pub fn ptr(&self, off: usize) -> *mut u8 {
        debug_assert!(off <= self.len);
        // SAFETY: in bounds (see u64).
        unsafe { self.base.as_ptr().add(off) }
    }

    /// The whole mapping as bytes (tests: golden vectors).
    #[cfg(test)]
    pub fn bytes(&self) -> Vec<u8> {
        (0..self.len)
            // SAFETY: in bounds; a racy read in tests of a quiescent ring.
            .map(|i| unsafe { self.ptr(i).read_volatile() })
            .collect()
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn entry_off(&self, i: usize) -> usize {
        self.hdr.geo.entry_off(i) as usize
    }

    /// The producer's eviction word of entry `i` (ABI.md §5.5).
    pub fn evicted(&self, i: usize) -> &AtomicU64 {
        self.u64(self.hdr.geo.evict_off as usize + 8 * i)
    }

    /// Entry `i`'s sleeper flag (ABI.md §5.4).
    pub fn sleeper(&self, i: usize) -> &AtomicU32 {
        self.u32(self.hdr.geo.sleepers_off as usize + 4 * i)
    }

    fn entry_range(&self, i: usize) -> (u64, u64) {
        (self.hdr.geo.entry_off(i), ENTRY_SIZE)
    }

    pub fn try_lock_entry(&self, i: usize) -> std::io::Result<bool> {
        let (s, n) = self.entry_range(i);
        sys::try_lock(self.fd(), s, n)
    }

    pub fn unlock_entry(&self, i: usize) {
        let (s, n) = self.entry_range(i);
        sys::unlock(self.fd(), s, n);
    }

    /// Whether another open file description holds entry `i`'s write lock.
    pub fn entry_alive(&self, i: usize) -> bool {
        let (s, n) = self.entry_range(i);
        sys::held(self.fd(), s, n)
    }

    /// Whether another open file description holds the producer's lock.
    pub fn producer_alive(&self) -> bool {
        sys::held(self.fd(), PROD_LOCK_START, PROD_LOCK_LEN)
    }

    /// `flock(LOCK_EX)`, bounded; false on timeout.
    pub fn lock_registry(&self, timeout: Duration) -> std::io::Result<bool> {
        sys::lock_registry(self.fd(), timeout)
    }

    pub fn unlock_registry(&self) {
        sys::unlock_registry(self.fd());
    }

    /// Creates `/dev/shm/NAME` exclusively and initialises it; the returned
    /// segment holds the producer's liveness lock.
    pub fn create(name: &str, hdr: &Header, mode: u32) -> Result<Self> {
        let path = sys::shm_path(name);
        // 0600 whatever mode was asked for: nobody else can open the file
        // (and lock a range of it) before the producer lock is taken.
        let flags = OFlags::RDWR
            | OFlags::CREATE
            | OFlags::EXCL
            | OFlags::NOFOLLOW
            | OFlags::NONBLOCK
            | OFlags::CLOEXEC;
        let fd = match sys::retry(|| rustix::fs::open(&path, flags, Mode::from_raw_mode(0o600))) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::EXIST) => {
                return Err(Error::Exists {
                    ring: name.to_owned(),
                    detail: format!("{path} {}", super::inspect::describe_existing(name)),
                })
            }
            Err(e) => return Err(Error::io(name, format!("open {path}"), e)),
        };
        Self::init(name, fd, hdr, mode).inspect_err(|_| {
            let _ = rustix::fs::unlink(&path);
        })
    }

    /// Sizes, maps and initialises a new segment's file (steps 2-7 of
    /// creation), for a named segment or a memfd.
    pub fn init(name: &str, fd: OwnedFd, hdr: &Header, mode: u32) -> Result<Self> {
        // The producer's liveness lock first: from now on every peer, and
        // remove, sees a live creator whatever state the file is in.
        match sys::try_lock(fd.as_fd(), PROD_LOCK_START, PROD_LOCK_LEN) {
            Ok(true) => {}
            Ok(false) => {
                return Err(Error::io(
                    name,
                    "producer lock",
                    std::io::Error::from(std::io::ErrorKind::WouldBlock),
                ))
            }
            Err(e) => return Err(Error::io(name, "producer lock", e)),
        }
        // The umask filtered the mode given to open: set it exactly.
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
            .map_err(|e| Error::io(name, "fchmod", e))?;
        let size = hdr.geo.seg_size;
        if let Ok(sfs) = rustix::fs::fstatfs(&fd) {
            let free = sfs.f_bavail.saturating_mul(sfs.f_bsize as u64);
            if sfs.f_blocks != 0 && size > free {
                return Err(Error::NoSpace {
                    ring: name.to_owned(),
                    detail: format!("needs {size} bytes, {} has {free} free", sys::SHM_DIR),
                });
            }
        }
        // Reserve the tmpfs pages now: a full filesystem is an error here,
        // not a SIGBUS on first touch.
        match sys::retry(|| rustix::fs::fallocate(&fd, FallocateFlags::empty(), 0, size)) {
            Ok(()) => {}
            Err(rustix::io::Errno::NOSPC) => {
                return Err(Error::NoSpace {
                    ring: name.to_owned(),
                    detail: format!("fallocate {size} bytes: no space left on device"),
                })
            }
            Err(rustix::io::Errno::OPNOTSUPP) => {
                rustix::fs::ftruncate(&fd, size).map_err(|e| Error::io(name, "ftruncate", e))?
            }
            Err(e) => return Err(Error::io(name, "fallocate", e)),
        }
        let seg = Self::map(name, fd, *hdr, true)?;
        seg.write_header();
        Ok(seg)
    }

    fn map(name: &str, fd: OwnedFd, hdr: Header, write: bool) -> Result<Self> {
        let len = usize::try_from(hdr.geo.seg_size)
            .map_err(|_| Error::invalid(name, "segment larger than the address space"))?;
        let prot = if write {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        // SAFETY: a fresh shared mapping of a file we hold open; nothing
        // else in this process refers to that address range.
        let p =
            unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, prot, MapFlags::SHARED, &fd, 0) }
                .map_err(|e| Error::io(name, format!("mmap {len} bytes"), e))?;
        Ok(Segment {
            name: name.to_owned(),
            hdr,
            fd,
            base: NonNull::new(p.cast()).expect("mmap never returns null on success"),
            len,
        })
    }

    /// Writes a fresh, zeroed segment's identity and producer lines and
    /// publishes it: `ready` last.
    fn write_header(&self) {
        let mut line = [0u8; 128];
        self.hdr.encode(&mut line);
        for (k, w) in line.chunks_exact(8).enumerate() {
            // Identity words: nobody reads them before ready (H6), so
            // relaxed stores; the release store of ready orders them.
            let v = u64::from_le_bytes(w.try_into().expect("8 bytes"));
            if k * 8 != OFF_VERSION {
                self.u64(k * 8).store(v, Ordering::Relaxed);
            }
        }
        // abi_version and ready share a word: version now, ready last.
        self.u32(OFF_VERSION).store(ABI_VERSION, Ordering::Relaxed);
        // Producer control line, before ready: an attacher that sees ready
        // sees an active producer.
        self.u32(OFF_PROD_PID).store(sys::pid(), Ordering::Relaxed);
        self.u64(OFF_PROD_START_TIME)
            .store(sys::process_start_time(), Ordering::Relaxed);
        self.u64(OFF_PROD_HEARTBEAT)
            .store(sys::mono_ns(), Ordering::Relaxed);
        if !self.hdr.asym_fences {
            self.u32(OFF_PROD_FENCES)
                .store(FENCES_STRONG, Ordering::Relaxed);
        }
        self.u32(OFF_PROD_STATE)
            .store(PROD_ACTIVE, Ordering::Relaxed);
        // H6: ready is stored last, a release; pairs with the attacher's
        // acquire load of ready before it copies the identity line.
        self.u32(OFF_READY).store(READY_READY, Ordering::Release);
    }

    /// Opens and validates the named segment (ABI.md §2 "Attach", §6).
    pub fn open(
        name: &str,
        write: bool,
        ready_timeout: Duration,
        allow_foreign: bool,
    ) -> Result<Self> {
        let fd = open_named(name, write)?;
        Self::open_fd(name, fd, write, ready_timeout, allow_foreign)
    }

    /// Validates and maps the segment open on `fd`.
    pub fn open_fd(
        name: &str,
        fd: OwnedFd,
        write: bool,
        ready_timeout: Duration,
        allow_foreign: bool,
    ) -> Result<Self> {
        let hdr = read_header(name, fd.as_fd(), ready_timeout, allow_foreign)?;
        // fstat again after validation: the mapping must lie inside the file.
        let st = sys::fstat(&fd).map_err(|e| Error::io(name, "fstat", e))?;
        if (st.st_size as u64) < hdr.geo.seg_size || st.st_size < 0 {
            return Err(Error::corrupt(
                name,
                format!(
                    "file is {} bytes, header says {}",
                    st.st_size, hdr.geo.seg_size
                ),
            ));
        }
        Self::map(name, fd, hdr, write)
    }

    /// Unlinks the owner's name on close, only if the name still refers to
    /// this segment's file (device and inode).
    pub fn unlink_owned(&self) -> Result<()> {
        let path = sys::shm_path(&self.name);
        let (Ok(own), Ok(cur)) = (sys::fstat(self.fd()), rustix::fs::lstat(&path)) else {
            return Ok(());
        };
        if own.st_dev != cur.st_dev || own.st_ino != cur.st_ino {
            return Ok(());
        }
        match rustix::fs::unlink(&path) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(Error::io(&self.name, "unlink", e)),
        }
    }
}

/// Opens `/dev/shm/NAME` by the non-blocking rule of ABI.md §2, mapping the
/// outcomes to the ring's errors.
pub(crate) fn open_named(name: &str, write: bool) -> Result<OwnedFd> {
    let path = sys::shm_path(name);
    sys::open_regular(name, write).map_err(|e| match e {
        OpenError::NotFound => Error::NotFound {
            ring: name.to_owned(),
            path,
        },
        OpenError::NotRegular(kind) => {
            Error::insecure(name, format!("{path} is {kind}, not a ring segment"))
        }
        OpenError::Io(op, e) => Error::io(name, format!("{op} {path}"), e),
    })
}

/// Checks the file behind `fd` (regular, owner, mode), waits for `ready`
/// and validates a private copy of the header. It reads with `pread`, never
/// through a mapping: a file truncated under us is a short read, not a
/// SIGBUS.
pub(crate) fn read_header(
    name: &str,
    fd: BorrowedFd<'_>,
    ready_timeout: Duration,
    allow_foreign: bool,
) -> Result<Header> {
    let stat = || sys::fstat(fd).map_err(|e| Error::io(name, "fstat", e));
    let mut st = stat()?;
    if let Some(kind) = sys::file_kind(&st) {
        return Err(Error::insecure(
            name,
            format!("the descriptor is {kind}, not a ring segment"),
        ));
    }
    if !allow_foreign && st.st_uid != sys::euid() {
        return Err(Error::insecure(
            name,
            format!("owner uid {}, want {}", st.st_uid, sys::euid()),
        ));
    }
    if st.st_mode & 0o002 != 0 {
        return Err(Error::insecure(
            name,
            format!("mode {:#o} is world-writable", st.st_mode & 0o777),
        ));
    }
    let deadline = Instant::now() + ready_timeout;
    // An empty file is a segment being created: wait for it as for ready.
    while (st.st_size as u64) < HEADER_SIZE {
        if st.st_size != 0 {
            return Err(Error::corrupt(
                name,
                format!(
                    "file is {} bytes, smaller than the {HEADER_SIZE}-byte header",
                    st.st_size
                ),
            ));
        }
        if Instant::now() >= deadline {
            return Err(Error::NotReady {
                ring: name.to_owned(),
                detail: "the file is still empty (being created, or its creator died first)".into(),
            });
        }
        std::thread::sleep(Duration::from_millis(1));
        st = stat()?;
    }
    let mut raw = [0u8; HEADER_SIZE as usize];
    loop {
        // ready alone first (ABI.md §2 step 3, a pread client); the rest of
        // the header only once it is 1. pread goes through the page cache,
        // which the creator's stores reach in order (TSO).
        let mut word = [0u8; 4];
        pread_exact(name, fd, &mut word, OFF_READY as u64)?;
        let ready = u32::from_le_bytes(word);
        if ready == READY_READY {
            pread_exact(name, fd, &mut raw, 0)?;
            // The private copy holds the ready value we acted on.
            raw[OFF_READY..OFF_READY + 4].copy_from_slice(&word);
            break;
        }
        if ready != READY_INIT || Instant::now() >= deadline {
            pread_exact(name, fd, &mut raw, 0)?;
            raw[OFF_READY..OFF_READY + 4].copy_from_slice(&word);
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Header::decode(name, &raw)
}

fn pread_exact(name: &str, fd: BorrowedFd<'_>, buf: &mut [u8], off: u64) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match sys::retry(|| rustix::io::pread(fd, &mut buf[done..], off + done as u64)) {
            Ok(0) => {
                return Err(Error::corrupt(
                    name,
                    format!(
                        "the file ended at byte {} while reading the header (truncated)",
                        off + done as u64
                    ),
                ))
            }
            Ok(n) => done += n,
            Err(e) => return Err(Error::io(name, "pread", e)),
        }
    }
    Ok(())
}

/// Deletes a ring segment that no live publisher holds (ABI.md §10): the
/// way to clean up after a crashed owner. It takes no lock. It refuses a
/// ring whose publisher is alive or that is being created
/// ([`Error::InUse`]) and a file that is not a ring ([`Error::Corrupt`]).
pub fn remove(name: &str) -> Result<()> {
    validate_name(name)?;
    let fd = open_named(name, false)?;
    if sys::held(fd.as_fd(), PROD_LOCK_START, PROD_LOCK_LEN) {
        return Err(Error::InUse {
            ring: name.to_owned(),
            detail: "its publisher is alive".into(),
        });
    }
    let st = sys::fstat(&fd).map_err(|e| Error::io(name, "fstat", e))?;
    let mut head = [0u8; HEADER_SIZE as usize];
    let n = sys::retry(|| rustix::io::pread(&fd, &mut head, 0)).unwrap_or(0);
    let magic = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
    if n >= 8 && magic == MAGIC {
        // A ring of any ABI version whose publisher is gone.
    } else if head[..n].iter().all(|&b| b == 0) {
        // An all-zero header (or an empty file): a creator that died before
        // writing it, or one still initialising. Only the former is stale.
        let mtime =
            std::time::UNIX_EPOCH + Duration::new(st.st_mtime as u64, st.st_mtime_nsec as u32);
        let age = std::time::SystemTime::now()
            .duration_since(mtime)
            .unwrap_or_default();
        if age < STALE_INIT_AGE {
            return Err(Error::InUse {
                ring: name.to_owned(),
                detail: format!("not initialised yet ({} ms old)", age.as_millis()),
            });
        }
    } else {
        return Err(Error::corrupt(
            name,
            format!("magic {magic:#018x}, not a ring segment; not removed"),
        ));
    }
    match rustix::fs::unlink(sys::shm_path(name)) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(Error::io(name, "unlink", e)),
    }
}

/// Removes every ring segment whose name starts with `prefix` and whose
/// publisher is dead; returns their names. Live rings, rings being created
/// and files that are not rings are left alone.
pub fn remove_stale(prefix: &str) -> Result<Vec<String>> {
    let dir = std::fs::read_dir(sys::SHM_DIR).map_err(|e| Error::io(prefix, "read /dev/shm", e))?;
    let mut removed = Vec::new();
    for entry in dir.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !name.starts_with(prefix) || validate_name(&name).is_err() {
            continue;
        }
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        match remove(&name) {
            Ok(()) => removed.push(name),
            Err(Error::InUse { .. } | Error::NotFound { .. } | Error::Corrupt { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}
