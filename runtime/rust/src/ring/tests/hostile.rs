//! Issue 14's findings 1-3 for this client: whatever another process does
//! with the segment's locks and names must never hang us or stall the
//! producer past its bounds. Each fails on ABI v1's protocol.

use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::fs::{FileType, FlockOperation, Mode, OFlags};

use super::*;
use crate::ring::abi::{PROD_LOCK_LEN, PROD_LOCK_START};
use crate::ring::{
    inspect, remove, sys, Error, ErrorKind, Options, Publisher, SubscribeOptions, Subscriber,
    WATCHDOG,
};

const LIVENESS: Duration = Duration::from_millis(300);

/// Takes, on a read-only descriptor of its own, every lock a reader can
/// take: the registry flock and an OFD read lock on every 128-byte line no
/// live owner write-locks (what a hostile process of the same uid can do).
fn hold_locks_like_a_reader(name: &str) -> OwnedFd {
    let fd = rustix::fs::open(
        format!("/dev/shm/{name}"),
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    rustix::fs::flock(&fd, FlockOperation::LockExclusive).unwrap();
    let size = rustix::fs::fstat(&fd).unwrap().st_size as u64;
    for off in (0..size).step_by(128) {
        read_lock(fd.as_fd(), off, 128);
    }
    fd
}

fn read_lock(fd: std::os::fd::BorrowedFd<'_>, start: u64, len: u64) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: a zeroed struct flock is valid; fd is open.
    let mut lk: libc::flock = unsafe { std::mem::zeroed() };
    lk.l_type = libc::F_RDLCK as libc::c_short;
    lk.l_whence = libc::SEEK_SET as libc::c_short;
    lk.l_start = start as libc::off_t;
    lk.l_len = len as libc::off_t;
    // SAFETY: as above.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &mut lk) == 0 }
}

/// The same, in a child process running as the user `nobody`, with read
/// access only (a 0644 ring): it prints "holding" once it holds them.
fn nobody_holding_locks(name: &str) -> Child {
    const SCRIPT: &str = r#"
import fcntl, os, struct, sys, time
fd = os.open("/dev/shm/" + sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
fcntl.flock(fd, fcntl.LOCK_EX)
for off in range(0, os.fstat(fd).st_size, 128):
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi4x", fcntl.F_RDLCK, 0, off, 128, 0))
    except OSError:
        pass
print("holding", flush=True)
time.sleep(60)
"#;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT, name])
        .uid(65534)
        .gid(65534)
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python3 as nobody (the tests run as root, as in CI)");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "holding\n", "the child could not take its locks");
    child
}

#[test]
fn locks_held_by_others_cannot_stall_the_producer() {
    for who in ["same-uid", "read-only-other-uid"] {
        let name = Name::new("stall");
        let o = Options {
            capacity: 8,
            liveness_timeout: LIVENESS,
            timeout: Some(Duration::from_secs(10)),
            mode: 0o644,
            ..Options::default()
        };
        let mut publisher = Publisher::<Tick>::create(&name, o).unwrap();
        let mut stalled = Subscriber::<Tick>::attach(&name, SubscribeOptions::default()).unwrap();
        let (_fd, mut child) = match who {
            "same-uid" => (Some(hold_locks_like_a_reader(&name)), None),
            _ => (None, Some(nobody_holding_locks(&name))),
        };
        for seq in 0..8 {
            publisher.publish(&Tick::of(seq)).unwrap(); // full now
        }
        let t0 = Instant::now();
        publisher
            .publish(&Tick::of(8))
            .expect("the publisher evicts the stalled subscriber, whatever locks others hold");
        let waited = t0.elapsed();
        assert_eq!(publisher.producer().evictions, 1, "{who}");
        assert!(waited < LIVENESS + 2 * WATCHDOG, "{who}: waited {waited:?}");
        let mut m = Tick::default();
        let err = stalled
            .recv(&mut m, Some(Duration::from_secs(5)))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Evicted, "{who}: {err}");
        if let Some(c) = child.as_mut() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

#[test]
fn a_stalled_registry_lock_holder_does_not_stall_its_own_eviction() {
    // The stalled subscriber itself (same uid) also sits on the registry
    // lock: v1 needed that lock to evict it.
    let name = Name::new("stall-self");
    let o = Options {
        capacity: 8,
        liveness_timeout: LIVENESS,
        timeout: Some(Duration::from_secs(10)),
        ..Options::default()
    };
    let mut publisher = Publisher::<Tick>::create(&name, o).unwrap();
    let mut stalled = Subscriber::<Tick>::attach(&name, SubscribeOptions::default()).unwrap();
    assert!(stalled
        .consumer()
        .seg
        .lock_registry(Duration::from_secs(1))
        .unwrap());
    let t0 = Instant::now();
    for seq in 0..9 {
        publisher.publish(&Tick::of(seq)).unwrap();
    }
    assert!(
        t0.elapsed() < LIVENESS + 2 * WATCHDOG,
        "waited {:?}",
        t0.elapsed()
    );
    assert_eq!(publisher.producer().evictions, 1);
    stalled.consumer().seg.unlock_registry();
}

/// Makes `path` a FIFO, a Unix socket (kept bound by the returned
/// listener) or a character device (/dev/null's numbers).
fn squat(path: &str, kind: &str) -> Option<std::os::unix::net::UnixListener> {
    let mk = |ft: FileType, dev| {
        rustix::fs::mknodat(rustix::fs::CWD, path, ft, Mode::from_raw_mode(0o666), dev).unwrap()
    };
    match kind {
        "fifo" => mk(FileType::Fifo, 0),
        "socket" => return Some(std::os::unix::net::UnixListener::bind(path).unwrap()),
        "chardev" => mk(FileType::CharacterDevice, rustix::fs::makedev(1, 3)),
        _ => unreachable!(),
    }
    None
}

#[test]
fn special_files_at_the_name_are_refused_at_once() {
    for (kind, says) in [
        ("fifo", "a FIFO (named pipe)"),
        ("socket", "a Unix socket"),
        ("chardev", "a character device"),
    ] {
        let name = Name::new(kind);
        let _listener = squat(&name.path(), kind);
        let t0 = Instant::now();
        let err = Publisher::<Tick>::create(&name, Options::default()).unwrap_err();
        assert!(matches!(err, Error::Exists { .. }), "{kind} create: {err}");
        assert!(err.to_string().contains(says), "{kind} create: {err}");
        let err = Subscriber::<Tick>::attach(&name, SubscribeOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Insecure, "{kind} attach: {err}");
        assert!(err.to_string().contains(says), "{kind} attach: {err}");
        let err = inspect(&name).unwrap_err();
        assert!(err.to_string().contains(says), "{kind} inspect: {err}");
        let err = remove(&name).unwrap_err();
        assert!(err.to_string().contains(says), "{kind} remove: {err}");
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "{kind}: {:?}",
            t0.elapsed()
        );
        assert!(
            std::fs::symlink_metadata(name.path()).is_ok(),
            "{kind}: not ours to remove"
        );
    }
}

#[test]
fn a_symlink_at_the_name_is_refused() {
    let name = Name::new("link");
    std::os::unix::fs::symlink("/etc/passwd", name.path()).unwrap();
    let err = Subscriber::<Tick>::attach(&name, SubscribeOptions::default()).unwrap_err();
    assert!(err.to_string().contains("a symbolic link"), "{err}");
    std::fs::remove_file(name.path()).unwrap();
}

#[test]
fn a_fake_read_lock_never_keeps_a_dead_publisher_alive() {
    let name = Name::new("fakelock");
    let mut publisher = Publisher::<Tick>::create(&name, Options::default()).unwrap();
    let mut sub = Subscriber::<Tick>::attach(&name, SubscribeOptions::default()).unwrap();
    publisher.publish(&Tick::of(0)).unwrap();
    // Someone who can open the ring read-only locks the producer's range.
    let squatter =
        rustix::fs::open(name.path(), OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).unwrap();
    // The publisher dies (the kernel drops its write lock).
    sys::unlock(
        publisher.producer().seg.fd(),
        PROD_LOCK_START,
        PROD_LOCK_LEN,
    );
    std::mem::forget(publisher);
    assert!(read_lock(squatter.as_fd(), PROD_LOCK_START, PROD_LOCK_LEN));
    let mut m = Tick::default();
    sub.recv(&mut m, Some(Duration::from_secs(5))).unwrap();
    let t0 = Instant::now();
    let err = sub.recv(&mut m, Some(Duration::from_secs(5))).unwrap_err();
    assert!(matches!(err, Error::PublisherDead { .. }), "{err}");
    assert!(t0.elapsed() < 3 * WATCHDOG + Duration::from_secs(1));
    assert!(!inspect(&name).unwrap().producer.alive);
    drop(sub);
    remove(&name).expect("a dead ring is removed whatever locks are held on it");
    assert!(std::fs::symlink_metadata(name.path()).is_err());
}

#[test]
fn remove_refuses_live_rings_and_non_rings() {
    let name = Name::new("remove");
    let publisher = Publisher::<Tick>::create(&name, Options::default()).unwrap();
    assert_eq!(remove(&name).unwrap_err().kind(), ErrorKind::InUse);
    drop(publisher);
    let other = Name::new("notaring");
    std::fs::write(other.path(), b"not a ring, just a file").unwrap();
    assert_eq!(remove(&other).unwrap_err().kind(), ErrorKind::Corrupt);
    // A zero magic is not enough: the whole header must be zero.
    let mut header = vec![0u8; 512];
    header[100] = 1;
    std::fs::write(other.path(), &header).unwrap();
    assert_eq!(remove(&other).unwrap_err().kind(), ErrorKind::Corrupt);
    // An all-zero header: a creator still initialising (too young to be
    // stale) is left alone.
    std::fs::write(other.path(), [0u8; 512]).unwrap();
    assert_eq!(remove(&other).unwrap_err().kind(), ErrorKind::InUse);
    std::fs::remove_file(other.path()).unwrap();
}
