//! The sealed mode (ABI.md §14), both sides in this client: a memfd ring
//! served over a Unix socket, the identity handshake, seals checked by the
//! receiver, truncation refused with EPERM.

use std::io::{IoSlice, Read, Write};
use std::mem::MaybeUninit;
use std::os::unix::net::UnixListener;
use std::thread;
use std::time::Duration;

use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

use super::*;
use crate::ring::{Error, ErrorKind, Options, Publisher, SubscribeOptions, Subscriber};

fn socket_path(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tachyon-rust-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("ring.sock")
}

#[test]
fn a_sealed_ring_serves_a_subscriber_and_nothing_appears_in_dev_shm() {
    let path = socket_path("serve");
    let name = Name::new("sealed");
    let mut publisher = Publisher::<Tick>::create_sealed(&name, Options::default()).unwrap();
    assert!(
        std::fs::symlink_metadata(name.path()).is_err(),
        "nothing in /dev/shm"
    );
    let listener = UnixListener::bind(&path).unwrap();
    let server = publisher.sealed_server().unwrap();
    let serving = thread::spawn(move || server.serve(&listener));

    let mut sub = Subscriber::<Tick>::dial_sealed(&path, SubscribeOptions::default()).unwrap();
    let err = Subscriber::<Small>::dial_sealed(&path, SubscribeOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Mismatch {
                field: "fingerprint",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("0x7ac49e0f1d2b3c4d")
            && err.to_string().contains("0x5a11000000000003"),
        "{err}"
    );

    publisher
        .wait_subscribers(1, Duration::from_secs(5))
        .unwrap();
    let reader = thread::spawn(move || {
        let mut m = Tick::default();
        let mut n = 0u64;
        loop {
            match sub.recv(&mut m, Some(Duration::from_secs(10))) {
                Ok(()) => {
                    assert_eq!(m, Tick::of(n));
                    n += 1;
                }
                Err(Error::Closed) => return n,
                Err(e) => panic!("{e}"),
            }
        }
    });
    for seq in 0..10_000 {
        publisher.publish(&Tick::of(seq)).unwrap();
    }
    publisher.close().unwrap();
    assert_eq!(reader.join().unwrap(), 10_000);
    serving.join().unwrap().unwrap(); // the server stops with its publisher
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn truncating_a_sealed_ring_fails_with_eperm() {
    let path = socket_path("trunc");
    let name = Name::new("sealed-trunc");
    let mut publisher = Publisher::<Tick>::create_sealed(&name, Options::default()).unwrap();
    let listener = UnixListener::bind(&path).unwrap();
    let server = publisher.sealed_server().unwrap();
    let serving = thread::spawn(move || server.serve(&listener));
    let mut sub = Subscriber::<Tick>::dial_sealed(&path, SubscribeOptions::default()).unwrap();
    for fd in [sub.consumer().seg.fd(), publisher.producer().seg.fd()] {
        for len in [0, 1 << 30] {
            let err = rustix::fs::ftruncate(fd, len).unwrap_err();
            assert_eq!(err, rustix::io::Errno::PERM, "ftruncate to {len}");
        }
    }
    publisher.publish(&Tick::of(0)).unwrap();
    let mut m = Tick::default();
    sub.try_recv(&mut m).unwrap();
    drop(publisher);
    serving.join().unwrap().unwrap();
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn an_unsealed_descriptor_is_refused() {
    // A server that answers OKAY with a plain (unsealed) memfd.
    let path = socket_path("unsealed");
    let listener = UnixListener::bind(&path).unwrap();
    let fake = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut hello = [0u8; 32];
        conn.read_exact(&mut hello).unwrap();
        let mut reply = hello;
        reply[..8].copy_from_slice(b"TACHOKAY");
        let memfd = rustix::fs::memfd_create("plain", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        let fds = [std::os::fd::AsFd::as_fd(&memfd)];
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        control.push(SendAncillaryMessage::ScmRights(&fds));
        rustix::net::sendmsg(
            &conn,
            &[IoSlice::new(&reply)],
            &mut control,
            SendFlags::empty(),
        )
        .unwrap();
        conn.flush().unwrap();
    });
    let err = Subscriber::<Tick>::dial_sealed(&path, SubscribeOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Insecure, "{err}");
    assert!(err.to_string().contains("seals"), "{err}");
    fake.join().unwrap();
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}
