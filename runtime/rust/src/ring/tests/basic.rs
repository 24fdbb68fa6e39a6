//! The protocol from a user's side: streams under each policy, borrows and
//! batches, lossy accounting, named subscribers, close, death, eviction,
//! identity checks and option errors.

use std::thread;
use std::time::{Duration, Instant};

use super::*;
use crate::ring::abi::{OFF_PROD_FENCES, PROD_LOCK_LEN, PROD_LOCK_START};
use crate::ring::{
    inspect, sys, Error, ErrorKind, Fences, Options, Policy, Publisher, SlotLayout, Start,
    SubscribeOptions, Subscriber,
};

const SEC: Option<Duration> = Some(Duration::from_secs(10));

fn opts(capacity: usize, policy: Policy, batch: usize) -> Options {
    Options {
        capacity,
        policy,
        batch,
        ..Options::default()
    }
}

fn lossy(max_lag: usize) -> SubscribeOptions {
    SubscribeOptions {
        max_lag,
        ..SubscribeOptions::default()
    }
}

/// Receives until closed, checking order and content; returns (received,
/// gaps).
fn drain(sub: &mut Subscriber<Tick>) -> (u64, u64) {
    let (mut n, mut gaps, mut last) = (0u64, 0u64, None::<u64>);
    let mut m = Tick::default();
    loop {
        match sub.recv(&mut m, SEC) {
            Ok(()) => {}
            Err(Error::Closed) => return (n, gaps),
            Err(e) => panic!("recv: {e}"),
        }
        assert!(m.intact(), "torn message {}", m.seq);
        if let Some(l) = last {
            assert!(m.seq > l, "reordered: {} after {l}", m.seq);
            gaps += m.seq - l - 1;
        } else {
            gaps += m.seq;
        }
        last = Some(m.seq);
        n += 1;
    }
}

#[test]
fn block_stream_between_threads_loses_nothing() {
    for (layout, batch) in [
        (SlotLayout::Packed, 1),
        (SlotLayout::Line, 8),
        (SlotLayout::Auto, 32),
    ] {
        let name = Name::new("stream");
        let count = 100_000u64;
        let o = Options {
            slot_layout: layout,
            ..opts(64, Policy::Block, batch)
        };
        let mut publisher = Publisher::<Tick>::create(&name, o).unwrap();
        let mut copy = Subscriber::<Tick>::attach(&name, SubscribeOptions::default()).unwrap();
        let mut batches = Subscriber::<Tick>::attach(&name, SubscribeOptions::default()).unwrap();
        assert_eq!(publisher.subscribers(), 2);
        let a = thread::spawn(move || drain(&mut copy));
        let b = thread::spawn(move || {
            let mut next = 0u64;
            loop {
                match batches.borrow_batch(16, SEC) {
                    Ok(batch) => {
                        assert!(batch.len() <= 16 && !batch.is_empty());
                        for m in &batch {
                            assert_eq!(m.seq, next);
                            assert!(m.intact());
                            next += 1;
                        }
                        batch.release().unwrap();
                    }
                    Err(Error::Closed) => return next,
                    Err(e) => panic!("{e}"),
                }
            }
        });
        for seq in 0..count {
            if seq % 2 == 0 {
                publisher.claim().unwrap().fill(seq);
                publisher.commit().unwrap();
            } else {
                publisher.publish(&Tick::of(seq)).unwrap();
            }
        }
        assert_eq!(publisher.published(), count);
        publisher.close().unwrap();
        assert_eq!(a.join().unwrap(), (count, 0), "{layout:?}");
        assert_eq!(b.join().unwrap(), count, "{layout:?}");
        assert!(
            !std::path::Path::new(&name.path()).exists(),
            "close unlinks"
        );
    }
}

#[test]
fn messages_not_a_multiple_of_eight_bytes() {
    let name = Name::new("odd");
    let mut publisher = Publisher::<Odd>::create(&name, opts(8, Policy::Block, 1)).unwrap();
    let mut sub = Subscriber::<Odd>::attach(&name, SubscribeOptions::default()).unwrap();
    for i in 0..20u32 {
        publisher
            .publish(&Odd {
                a: i,
                b: !i,
                c: i * 3,
            })
            .unwrap();
        let mut m = Odd::default();
        sub.try_recv(&mut m).unwrap();
        assert_eq!(
            m,
            Odd {
                a: i,
                b: !i,
                c: i * 3
            }
        );
    }
    let st = inspect(&name).unwrap();
    // 8-byte stamp + 12 bytes in one line: line slots chosen automatically.
    assert!(st.line_slots);
    assert_eq!(st.slot_size, 64);
}

#[test]
fn drop_newest_refuses_and_counts() {
    let name = Name::new("dropnewest");
    let mut publisher = Publisher::<Tick>::create(&name, opts(8, Policy::DropNewest, 1)).unwrap();
    let mut sub = Subscriber::<Tick>::attach(&name, SubscribeOptions::default()).unwrap();
    let mut refused = 0;
    for seq in 0..20 {
        match publisher.publish(&Tick::of(seq)) {
            Ok(()) => {}
            Err(Error::Full) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(
        (publisher.published(), publisher.dropped(), refused),
        (8, 12, 12)
    );
    assert_eq!(inspect(&name).unwrap().producer.dropped_newest, 12);
    let mut m = Tick::default();
    for seq in 0..8 {
        sub.try_recv(&mut m).unwrap();
        assert_eq!(m.seq, seq);
    }
    assert!(matches!(sub.try_recv(&mut m), Err(Error::Empty)));
}

#[test]
fn lossy_subscribers_account_for_every_message() {
    // A lossy reader of a Block ring, and any reader of a drop_oldest ring,
    // lapped while idle: received + dropped == published, dropped == gaps.
    for (policy, max_lag) in [
        (Policy::Block, 4),
        (Policy::DropOldest, 0),
        (Policy::DropOldest, 6),
    ] {
        let name = Name::new("lossy");
        let mut publisher = Publisher::<Tick>::create(&name, opts(16, policy, 2)).unwrap();
        let mut sub = Subscriber::<Tick>::attach(&name, lossy(max_lag)).unwrap();
        let mut fast = (policy == Policy::Block)
            .then(|| Subscriber::<Tick>::attach(&name, SubscribeOptions::default()).unwrap());
        let (mut got, mut gaps, mut last) = (0u64, 0u64, None::<u64>);
        let mut m = Tick::default();
        for seq in 0..1000u64 {
            publisher.publish(&Tick::of(seq)).unwrap();
            if let Some(f) = fast.as_mut() {
                f.try_recv(&mut m).unwrap();
            }
            if seq % 37 == 0 {
                publisher.flush();
                while sub.try_recv(&mut m).is_ok() {
                    assert!(m.intact());
                    gaps += last.map_or(m.seq, |l| m.seq - l - 1);
                    last = Some(m.seq);
                    got += 1;
                }
            }
        }
        publisher.close().unwrap();
        loop {
            match sub.recv(&mut m, SEC) {
                Ok(()) => {
                    gaps += last.map_or(m.seq, |l| m.seq - l - 1);
                    last = Some(m.seq);
                    got += 1;
                }
                Err(Error::Closed) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(sub.dropped() > 0, "{policy:?} {max_lag}: never lapped");
        assert_eq!(got + sub.dropped(), 1000, "{policy:?} {max_lag}");
        assert_eq!(sub.dropped(), gaps, "{policy:?} {max_lag}");
        assert_eq!(sub.received(), got);
    }
}

#[test]
fn a_borrow_overwritten_meanwhile_is_reported_and_counted() {
    let name = Name::new("overwritten");
    let mut publisher = Publisher::<Tick>::create(&name, opts(4, Policy::DropOldest, 1)).unwrap();
    let mut sub = Subscriber::<Tick>::attach(&name, SubscribeOptions::default()).unwrap();
    publisher.publish(&Tick::of(0)).unwrap();
    let b = sub.try_borrow().unwrap();
    assert_eq!(b.seq, 0);
    for seq in 1..=4 {
        publisher.publish(&Tick::of(seq)).unwrap();
    }
    assert!(matches!(b.release(), Err(Error::Overwritten)));
    assert_eq!((sub.received(), sub.dropped()), (0, 1));
    // The next one is the oldest still there.
    let mut m = Tick::default();
    sub.try_recv(&mut m).unwrap();
    assert_eq!(m.seq, 1);
    // An intact borrow counts as received; a dropped guard releases.
    drop(sub.try_borrow().unwrap());
    assert_eq!((sub.received(), sub.dropped()), (2, 1));
}

#[test]
fn a_batch_is_a_strided_view_that_stops_at_the_wrap() {
    let name = Name::new("batch");
    let mut publisher = Publisher::<Tick>::create(&name, opts(8, Policy::Block, 1)).unwrap();
    let mut sub = Subscriber::<Tick>::attach(&name, SubscribeOptions::default()).unwrap();
    for seq in 0..6 {
        publisher.publish(&Tick::of(seq)).unwrap();
    }
    let b = sub.borrow_batch(100, SEC).unwrap();
    assert_eq!((b.len(), b.stride()), (6, 128)); // a 64-byte message: a two-line slot
    assert_eq!(b[5].seq, 5);
    assert!(b.get(6).is_none());
    assert_eq!(
        b.iter().rev().map(|m| m.seq).collect::<Vec<_>>(),
        [5, 4, 3, 2, 1, 0]
    );
    b.release().unwrap();
    for seq in 6..12 {
        publisher.publish(&Tick::of(seq)).unwrap();
    }
    // Slots 6 and 7, then the ring's end: the rest come next time.
    let b = sub.borrow_batch(100, SEC).unwrap();
    assert_eq!(b.iter().map(|m| m.seq).collect::<Vec<_>>(), [6, 7]);
    drop(b);
    let b = sub.borrow_batch(3, SEC).unwrap();
    assert_eq!(b.iter().map(|m| m.seq).collect::<Vec<_>>(), [8, 9, 10]);
    drop(b);
    assert_eq!(sub.received(), 11);
}

#[test]
fn close_drains_then_reports_closed_and_the_iterator_ends() {
    let name = Name::new("close");
    let mut publisher = Publisher::<Tick>::create(&name, opts(64, Policy::Block, 16)).unwrap();
    let mut sub = Subscriber::<Tick>::attach(&name, SubscribeOptions::default()).unwrap();
    for seq in 0..10 {
        publisher.publish(&Tick::of(seq)).unwrap(); // held back: batch 16
    }
    drop(publisher); // Drop closes: flushes, closed, unlinks
    let seqs: Vec<u64> = sub.messages(SEC).map(|m| m.unwrap().seq).collect();
    assert_eq!(seqs, (0..10).collect::<Vec<_>>());
    let mut m = Tick::default();
    assert_eq!(sub.recv(&mut m, SEC).unwrap_err().kind(), ErrorKind::Closed);
}

#[test]
fn a_dead_publisher_is_reported_after_its_committed_messages() {
    let name = Name::new("dead");
    let mut publisher = Publisher::<Tick>::create(&name, opts(64, Policy::Block, 16)).unwrap();
    let mut sub = Subscriber::<Tick>::attach(&name, SubscribeOptions::default()).unwrap();
    for seq in 0..5 {
        publisher.publish(&Tick::of(seq)).unwrap(); // committed, never published
    }
    // Die: the kernel drops the liveness lock (here: we do), nothing else.
    let p = publisher.producer();
    sys::unlock(p.seg.fd(), PROD_LOCK_START, PROD_LOCK_LEN);
    let mut m = Tick::default();
    for seq in 0..5 {
        sub.recv(&mut m, SEC).unwrap();
        assert_eq!(m.seq, seq);
    }
    let t0 = Instant::now();
    let err = sub.recv(&mut m, SEC).unwrap_err();
    assert!(matches!(err, Error::PublisherDead { .. }), "{err}");
    assert!(err.to_string().contains("dead") && err.to_string().contains(&*name));
    assert!(t0.elapsed() < 3 * crate::ring::WATCHDOG + Duration::from_secs(1));
    std::mem::forget(publisher); // a dead publisher does not close
    crate::ring::remove(&name).unwrap();
}

#[test]
fn a_stalled_subscriber_is_evicted_after_the_liveness_timeout() {
    let name = Name::new("evict");
    let o = Options {
        liveness_timeout: Duration::from_millis(300),
        ..opts(8, Policy::Block, 1)
    };
    let mut publisher = Publisher::<Tick>::create(&name, o).unwrap();
    let mut sub = Subscriber::<Tick>::attach(&name, SubscribeOptions::default()).unwrap();
    let t0 = Instant::now();
    for seq in 0..20 {
        publisher.publish(&Tick::of(seq)).unwrap();
    }
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(300),
        "evicted early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(2), "evicted late: {waited:?}");
    assert_eq!(publisher.producer().evictions, 1);
    let mut m = Tick::default();
    let err = sub.try_recv(&mut m).unwrap_err();
    assert!(matches!(err, Error::Evicted { entry: 0, .. }), "{err}");
    assert_eq!(inspect(&name).unwrap().subscribers[0].state, "evicted");
    assert_eq!(publisher.subscribers(), 0);
}

#[test]
fn a_block_publish_times_out_when_asked_to() {
    let name = Name::new("timeout");
    let o = Options {
        timeout: Some(Duration::from_millis(50)),
        ..opts(4, Policy::Block, 1)
    };
    let mut publisher = Publisher::<Tick>::create(&name, o).unwrap();
    let _sub = Subscriber::<Tick>::attach(&name, SubscribeOptions::default()).unwrap();
    for seq in 0..4 {
        publisher.publish(&Tick::of(seq)).unwrap();
    }
    let err = publisher.publish(&Tick::of(4)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.to_string().contains("subscriber 0"), "{err}");
}

#[test]
fn named_subscribers_resume_with_their_counters() {
    let name = Name::new("named");
    let mut publisher = Publisher::<Tick>::create(&name, opts(16, Policy::Block, 1)).unwrap();
    let durable = |start| SubscribeOptions {
        name: "audit".into(),
        start,
        ..SubscribeOptions::default()
    };
    let mut sub = Subscriber::<Tick>::attach(&name, durable(Start::Last)).unwrap();
    let mut m = Tick::default();
    for seq in 0..5 {
        publisher.publish(&Tick::of(seq)).unwrap();
    }
    for _ in 0..3 {
        sub.try_recv(&mut m).unwrap();
    }
    drop(sub);
    for seq in 5..8 {
        publisher.publish(&Tick::of(seq)).unwrap();
    }
    // Resumes at its last position (3), everything still in the ring.
    let mut sub = Subscriber::<Tick>::attach(&name, durable(Start::Last)).unwrap();
    assert_eq!((sub.received(), sub.dropped()), (3, 0));
    sub.try_recv(&mut m).unwrap();
    assert_eq!(m.seq, 3);
    drop(sub);
    // Start::Live skips to the tail and counts what it skipped.
    let mut sub = Subscriber::<Tick>::attach(&name, durable(Start::Live)).unwrap();
    assert_eq!((sub.received(), sub.dropped()), (4, 4));
    assert!(matches!(sub.try_recv(&mut m), Err(Error::Empty)));
    let st = inspect(&name).unwrap();
    assert_eq!(st.subscribers[0].key, crate::ring::subscriber_key("audit"));
}

#[test]
fn identity_and_option_errors_name_the_values() {
    let name = Name::new("identity");
    let _publisher = Publisher::<Tick>::create(&name, opts(8, Policy::Block, 1)).unwrap();
    let err = Subscriber::<Small>::attach(&name, SubscribeOptions::default()).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            Error::Mismatch {
                field: "fingerprint",
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains(&*name)
            && text.contains("0x7ac49e0f1d2b3c4d")
            && text.contains("0x5a11000000000003"),
        "{text}"
    );
    let err = Publisher::<Tick>::create(&name, Options::default()).unwrap_err();
    assert!(
        matches!(err, Error::Exists { .. }) && err.to_string().contains("alive"),
        "{err}"
    );
    for (o, want) in [
        (opts(6, Policy::Block, 1), "capacity 6"),
        (opts(8, Policy::Block, 5), "batch 5 outside [1, 4]"),
        (
            Options {
                mode: 0o666,
                ..Options::default()
            },
            "world-writable",
        ),
        (
            Options {
                max_subscribers: 2000,
                ..Options::default()
            },
            "max subscribers 2000",
        ),
    ] {
        let err = Publisher::<Tick>::create(&Name::new("bad"), o).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidOptions, "{err}");
        assert!(err.to_string().contains(want), "{err} lacks {want}");
    }
    let err = Subscriber::<Tick>::attach(&name, lossy(9)).unwrap_err();
    assert!(
        err.to_string().contains("max lag 9 exceeds capacity 8"),
        "{err}"
    );
    let err = Subscriber::<Tick>::attach("../etc/passwd", SubscribeOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidName);
    let err =
        Subscriber::<Tick>::attach(&Name::new("absent"), SubscribeOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn a_full_table_is_refused() {
    let name = Name::new("full");
    let o = Options {
        max_subscribers: 2,
        ..opts(8, Policy::Block, 1)
    };
    let _publisher = Publisher::<Tick>::create(&name, o).unwrap();
    let _a = Subscriber::<Tick>::attach(&name, SubscribeOptions::default()).unwrap();
    let b = Subscriber::<Tick>::attach(&name, SubscribeOptions::default()).unwrap();
    let err = Subscriber::<Tick>::attach(&name, SubscribeOptions::default()).unwrap_err();
    assert!(matches!(err, Error::TableFull { entries: 2, .. }), "{err}");
    drop(b); // its entry is free again
    Subscriber::<Tick>::attach(&name, SubscribeOptions::default()).unwrap();
}

#[test]
fn a_membarrier_less_subscriber_on_an_asymmetric_ring() {
    // Strong-fenced subscriber (as under TACHYON_FENCES=strong) on a ring
    // that is asymmetric in its header: it joins with entry flag STRONG,
    // the producer switches to strong fences at its next scan, and every
    // message arrives. Asymmetric by force when this machine cannot
    // register for membarrier (the producer then never parks here).
    let name = Name::new("asym");
    let asym = sys::membarrier_registered();
    let o = Options {
        fences: if asym {
            Fences::Asymmetric
        } else {
            Fences::Strong
        },
        ..opts(64, Policy::Block, 8)
    };
    let mut publisher = Publisher::<Tick>::create_with(&name, o, !asym).unwrap();
    assert!(inspect(&name).unwrap().asym_fences);
    let strong = SubscribeOptions {
        strong_fences: true,
        ..SubscribeOptions::default()
    };
    let mut sub = Subscriber::<Tick>::attach(&name, strong).unwrap();
    assert!(inspect(&name).unwrap().subscribers[0].strong_fences);
    let reader = thread::spawn(move || drain(&mut sub));
    for seq in 0..20_000 {
        publisher.publish(&Tick::of(seq)).unwrap();
    }
    assert_eq!(
        publisher
            .producer()
            .seg
            .u32(OFF_PROD_FENCES)
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "the producer switched to strong fences"
    );
    assert!(inspect(&name).unwrap().producer.strong_fences);
    publisher.close().unwrap();
    assert_eq!(reader.join().unwrap(), (20_000, 0));
}

#[test]
fn parked_subscribers_are_woken_not_watchdogged() {
    // Spin 0: every wait parks on the futex; each publish must wake it
    // (H1), so no sleep runs into the 200 ms watchdog.
    let name = Name::new("park");
    let mut publisher = Publisher::<Tick>::create(&name, opts(64, Policy::Block, 4)).unwrap();
    let no_spin = SubscribeOptions {
        spin: 0,
        ..SubscribeOptions::default()
    };
    let mut sub = Subscriber::<Tick>::attach(&name, no_spin).unwrap();
    let reader = thread::spawn(move || {
        let r = drain(&mut sub);
        (
            r,
            sub.consumer().watchdog_fires,
            sub.consumer().lost_wakeups,
        )
    });
    for seq in 0..200 {
        publisher.publish(&Tick::of(seq)).unwrap();
        if seq % 10 == 0 {
            thread::sleep(Duration::from_millis(2));
        }
    }
    publisher.close().unwrap();
    let ((n, gaps), _fires, lost) = reader.join().unwrap();
    assert_eq!((n, gaps, lost), (200, 0, 0));
}

#[test]
fn a_protected_subscriber_evicted_while_borrowing_sees_the_overwrite() {
    // An unlimited reader of a Block ring checks one eviction word at
    // release instead of every stamp: a producer that evicted it (and then
    // overwrote the slots it held) must still be reported.
    let name = Name::new("protected");
    let o = Options {
        liveness_timeout: Duration::from_millis(100),
        ..opts(8, Policy::Block, 1)
    };
    let mut publisher = Publisher::<Tick>::create(&name, o).unwrap();
    let mut sub = Subscriber::<Tick>::attach(&name, SubscribeOptions::default()).unwrap();
    for seq in 0..8 {
        publisher.publish(&Tick::of(seq)).unwrap();
    }
    let batch = sub.borrow_batch(8, SEC).unwrap();
    assert_eq!(batch.len(), 8);
    let writer = thread::spawn(move || {
        for seq in 8..16 {
            publisher.publish(&Tick::of(seq)).unwrap(); // evicts, then laps
        }
        publisher
    });
    let publisher = writer.join().unwrap();
    assert!(matches!(batch.release(), Err(Error::Overwritten)));
    assert_eq!((sub.received(), sub.dropped()), (0, 8));
    drop(publisher);
}
