//! The system calls the protocol needs, through `rustix` — except the OFD
//! byte-range locks, which go through `libc` because rustix's `fcntl_lock`
//! locks whole files only and has no `F_OFD_GETLK` (ABI.md §9 needs both a
//! range and the probe).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::AtomicU32;
use std::sync::OnceLock;
use std::time::Duration;

use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::thread::futex;
use rustix::thread::{MembarrierCommand, MembarrierQuery};

/// The directory of the POSIX shared-memory namespace.
pub const SHM_DIR: &str = "/dev/shm";

/// `/dev/shm/NAME`.
pub(crate) fn shm_path(name: &str) -> String {
    format!("{SHM_DIR}/{name}")
}

/// `CLOCK_MONOTONIC` in nanoseconds (system-wide: comparable between
/// processes), for heartbeats.
pub(crate) fn mono_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    // Monotonic time is non-negative.
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// `CLOCK_REALTIME` in nanoseconds.
pub(crate) fn realtime_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    (t.tv_sec as u64).wrapping_mul(1_000_000_000) + t.tv_nsec as u64
}

pub(crate) fn pid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

/// Field 22 of `/proc/self/stat` (start time in clock ticks), 0 if unknown;
/// diagnostics only (liveness is the lock protocol).
pub(crate) fn process_start_time() -> u64 {
    static START: OnceLock<u64> = OnceLock::new();
    *START.get_or_init(|| {
        let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
            return 0;
        };
        // The command name may hold spaces and parentheses: count fields
        // after the last ')'. The first after it is field 3.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(19))
            .and_then(|f| f.parse().ok())
            .unwrap_or(0)
    })
}

/// Retries a system call interrupted by a signal.
pub(crate) fn retry<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> rustix::io::Result<T> {
    loop {
        match f() {
            Err(rustix::io::Errno::INTR) => continue,
            r => return r,
        }
    }
}

/// What a file that is not a regular file is, for the error that refuses it.
pub(crate) fn file_kind(st: &rustix::fs::Stat) -> Option<String> {
    use rustix::fs::FileType;
    let kind = match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => return None,
        FileType::Fifo => "a FIFO (named pipe)",
        FileType::Socket => "a Unix socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Unknown => return Some(format!("a file of type {:#o}", st.st_mode & 0o170000)),
    };
    Some(kind.to_owned())
}

/// Why [`open_regular`] refused a name: it does not exist, it is not a
/// regular file (what it is), or a system call failed.
pub(crate) enum OpenError {
    NotFound,
    NotRegular(String),
    Io(&'static str, io::Error),
}

/// Opens `/dev/shm/NAME` without ever waiting on what is there (ABI.md §2):
/// `lstat` first and refuse anything but a regular file, then `open` with
/// `O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY`, then `fstat` again.
pub(crate) fn open_regular(name: &str, write: bool) -> Result<std::os::fd::OwnedFd, OpenError> {
    let path = shm_path(name);
    let st = match rustix::fs::lstat(&path) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Err(OpenError::NotFound),
        Err(e) => return Err(OpenError::Io("lstat", e.into())),
    };
    if let Some(kind) = file_kind(&st) {
        return Err(OpenError::NotRegular(kind));
    }
    let access = if write { OFlags::RDWR } else { OFlags::RDONLY };
    let flags = access | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd = match retry(|| rustix::fs::open(&path, flags, Mode::empty())) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Err(OpenError::NotFound),
        // The name became a link between lstat and open.
        Err(rustix::io::Errno::LOOP) => {
            return Err(OpenError::NotRegular("a symbolic link".into()))
        }
        Err(e) => return Err(OpenError::Io("open", e.into())),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| OpenError::Io("fstat", e.into()))?;
    if let Some(kind) = file_kind(&st) {
        return Err(OpenError::NotRegular(kind));
    }
    Ok(fd)
}

/// One OFD byte-range lock request (`F_OFD_SETLK` / `F_OFD_GETLK`).
fn ofd(
    fd: BorrowedFd<'_>,
    cmd: libc::c_int,
    typ: libc::c_short,
    start: u64,
    len: u64,
) -> io::Result<libc::c_short> {
    // SAFETY: flock is a plain C struct; all-zero is a valid value.
    let mut lk: libc::flock = unsafe { std::mem::zeroed() };
    lk.l_type = typ;
    lk.l_whence = libc::SEEK_SET as libc::c_short;
    lk.l_start = start as libc::off_t;
    lk.l_len = len as libc::off_t;
    // l_pid must be 0 for OFD locks (the zeroed value).
    loop {
        // SAFETY: fd is a live descriptor for the borrow; lk is a valid
        // struct flock the kernel reads (and, for GETLK, writes).
        let r = unsafe { libc::fcntl(fd.as_raw_fd(), cmd, &mut lk as *mut libc::flock) };
        if r == 0 {
            return Ok(lk.l_type);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// Takes a write lock on `[start, start+len)` for this open file
/// description without waiting; false when another one holds a lock there.
pub(crate) fn try_lock(fd: BorrowedFd<'_>, start: u64, len: u64) -> io::Result<bool> {
    match ofd(
        fd,
        libc::F_OFD_SETLK,
        libc::F_WRLCK as libc::c_short,
        start,
        len,
    ) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Releases this open file description's lock on the range.
pub(crate) fn unlock(fd: BorrowedFd<'_>, start: u64, len: u64) {
    let _ = ofd(
        fd,
        libc::F_OFD_SETLK,
        libc::F_UNLCK as libc::c_short,
        start,
        len,
    );
}

/// Whether another open file description holds a **write** lock on the
/// range: the probe asks about a read lock, which only a write lock
/// conflicts with, so a reader's lock never makes a dead peer look alive
/// (ABI.md §9). An error counts as held: never declare a peer dead on a
/// guess.
pub(crate) fn held(fd: BorrowedFd<'_>, start: u64, len: u64) -> bool {
    match ofd(
        fd,
        libc::F_OFD_GETLK,
        libc::F_RDLCK as libc::c_short,
        start,
        len,
    ) {
        Ok(t) => t != libc::F_UNLCK as libc::c_short,
        Err(_) => true,
    }
}

/// Takes the registry lock (`flock(LOCK_EX)`), retrying `LOCK_NB` for at
/// most `timeout`; false on timeout.
pub(crate) fn lock_registry(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match retry(|| rustix::fs::flock(fd, FlockOperation::NonBlockingLockExclusive)) {
            Ok(()) => return Ok(true),
            Err(rustix::io::Errno::WOULDBLOCK) => {}
            Err(e) => return Err(e.into()),
        }
        if std::time::Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

pub(crate) fn unlock_registry(fd: BorrowedFd<'_>) {
    let _ = rustix::fs::flock(fd, FlockOperation::Unlock);
}

/// `FUTEX_WAIT` (shared: no `FUTEX_PRIVATE_FLAG`, the word lives in a
/// segment several processes map) while `*word == expected`, for at most
/// `timeout`. Returns true when the wait timed out.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) -> bool {
    let ts = rustix::time::Timespec {
        tv_sec: timeout.as_secs() as _,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    matches!(
        futex::wait(word, futex::Flags::empty(), expected, Some(&ts)),
        Err(rustix::io::Errno::TIMEDOUT)
    )
}

/// `FUTEX_WAKE` of up to `n` waiters on a shared word.
pub(crate) fn futex_wake(word: &AtomicU32, n: u32) {
    let _ = futex::wake(word, futex::Flags::empty(), n);
}

/// The environment variable that forces strong fences (ABI.md §8.6).
pub const FENCES_ENV: &str = "TACHYON_FENCES";

/// Registers this process (once) for `MEMBARRIER_CMD_GLOBAL_EXPEDITED` and
/// reports whether it can take part in asymmetric fences: registered, able
/// to issue the barrier, and not told otherwise by `TACHYON_FENCES=strong`.
pub(crate) fn membarrier_registered() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        if std::env::var_os(FENCES_ENV).is_some_and(|v| v == "strong") {
            return false;
        }
        let need = MembarrierQuery::GLOBAL_EXPEDITED | MembarrierQuery::REGISTER_GLOBAL_EXPEDITED;
        if !rustix::thread::membarrier_query().contains(need) {
            return false;
        }
        rustix::thread::membarrier(MembarrierCommand::RegisterGlobalExpedited).is_ok()
    })
}

/// The heavy side of an asymmetric fence: a full barrier on every CPU
/// running a thread of a registered process (ABI.md §8.6). Only called by a
/// process for which [`membarrier_registered`] is true.
pub(crate) fn heavy_barrier() {
    // It cannot fail once the query said it is supported; if it did, the
    // bounded sleeps still cover the handshake.
    let _ = rustix::thread::membarrier(MembarrierCommand::GlobalExpedited);
}

pub(crate) fn yield_now() {
    rustix::thread::sched_yield();
}

/// The effective uid.
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// `fstat` size and ownership of a descriptor.
pub(crate) fn fstat(fd: impl AsFd) -> io::Result<rustix::fs::Stat> {
    rustix::fs::fstat(fd).map_err(Into::into)
}
