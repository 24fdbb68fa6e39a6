//! Issue 14's protocol races 5-7 and the wake-ups at the brink, forced with
//! the test hook: one party paused at a named step while the test plays the
//! other. No sleeps, no luck; each interleaving failed on ABI v1.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::*;
use crate::ring::subscriber::HOOK;
use crate::ring::{
    Error, Fences, Options, Publisher, Start, SubscribeOptions, Subscriber, WATCHDOG,
};

/// Installs `f` as this thread's hook until the guard drops.
struct Hook;

impl Hook {
    fn once(point: &'static str, f: impl FnOnce() + 'static) -> Hook {
        let mut f = Some(f);
        HOOK.with(|h| {
            *h.borrow_mut() = Some(Box::new(move |p: &str| {
                if p == point {
                    if let Some(f) = f.take() {
                        f();
                    }
                }
            }))
        });
        Hook
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        HOOK.with(|h| *h.borrow_mut() = None);
    }
}

type Shared<T> = Arc<Mutex<T>>;

fn publish_next(p: &mut Publisher<Tick>, n: u64) {
    for _ in 0..n {
        let seq = p.published();
        p.publish(&Tick::of(seq)).unwrap();
    }
}

/// Publishes until a Block publisher with a short timeout waits; returns
/// the next seq.
fn publish_until_blocked(p: &mut Publisher<Tick>) -> u64 {
    loop {
        let seq = p.published();
        match p.publish(&Tick::of(seq)) {
            Ok(()) => {}
            Err(Error::Timeout { .. }) => return seq,
            Err(e) => panic!("{e}"),
        }
    }
}

fn drain(s: &mut Subscriber<Tick>) {
    let mut m = Tick::default();
    while s.try_recv(&mut m).is_ok() {}
}

#[test]
fn race5_a_resuming_subscribers_provisional_head_protects_its_backlog() {
    const CAPACITY: u64 = 16;
    let name = Name::new("race5");
    let o = Options {
        capacity: CAPACITY as usize,
        max_subscribers: 2,
        timeout: Some(Duration::from_millis(20)),
        liveness_timeout: Duration::from_secs(3600),
        ..Options::default()
    };
    let publisher: Shared<Publisher<Tick>> =
        Arc::new(Mutex::new(Publisher::create(&name, o).unwrap()));
    let other: Shared<Subscriber<Tick>> = Arc::new(Mutex::new(
        Subscriber::attach(&name, SubscribeOptions::default()).unwrap(),
    ));
    let durable = || SubscribeOptions {
        name: "risk".into(),
        start: Start::Last,
        ..SubscribeOptions::default()
    };
    let mut named = Subscriber::<Tick>::attach(&name, durable()).unwrap();
    publish_next(&mut publisher.lock().unwrap(), 10);
    let mut m = Tick::default();
    for _ in 0..10 {
        named.try_recv(&mut m).unwrap();
    }
    drop(named); // its last position: 10
    publish_next(&mut publisher.lock().unwrap(), 4); // the backlog is 10..13
    drain(&mut other.lock().unwrap());

    // While it joins, the producer fills the ring as far as it may: it
    // rescans at its limit and sees the joining entry.
    let stopped = Arc::new(Mutex::new(0));
    let hook = {
        let (p, o, s) = (publisher.clone(), other.clone(), stopped.clone());
        Hook::once("register:joining", move || {
            drain(&mut o.lock().unwrap());
            *s.lock().unwrap() = publish_until_blocked(&mut p.lock().unwrap());
        })
    };
    let mut back = Subscriber::<Tick>::attach(&name, durable()).unwrap();
    drop(hook);
    let stopped = *stopped.lock().unwrap();
    assert_eq!(
        stopped,
        10 + CAPACITY,
        "a lap past the backlog, not a lap past the tail"
    );
    // From its start everything is intact and in order; it lost only the
    // handshake's margin (2*batch).
    let start = 10 + back.dropped();
    assert!(
        start <= 12,
        "start {start}: the backlog 10..13 was overwritten"
    );
    for want in start..stopped {
        back.try_recv(&mut m).unwrap();
        assert_eq!(m.seq, want);
        assert!(m.intact());
    }
    assert_eq!(back.dropped(), start - 10);
}

#[test]
fn race6_a_subscriber_ahead_of_the_published_tail_resumes() {
    let name = Name::new("race6");
    let o = Options {
        capacity: 64,
        batch: 8,
        ..Options::default()
    };
    let mut publisher = Publisher::<Tick>::create(&name, o).unwrap();
    let durable = || SubscribeOptions {
        name: "audit".into(),
        start: Start::Last,
        ..SubscribeOptions::default()
    };
    let mut sub = Subscriber::<Tick>::attach(&name, durable()).unwrap();
    publish_next(&mut publisher, 3); // committed, not published (batch 8)
    assert_eq!(crate::ring::inspect(&name).unwrap().producer.published, 0);
    let mut m = Tick::default();
    for i in 0..3 {
        sub.try_recv(&mut m).unwrap();
        assert_eq!(m.seq, i);
    }
    drop(sub);
    let mut back = Subscriber::<Tick>::attach(&name, durable()).unwrap();
    assert_eq!(back.received(), 3, "counters carried over");
    publish_next(&mut publisher, 1);
    publisher.flush();
    back.try_recv(&mut m).unwrap();
    assert_eq!(
        m.seq, 3,
        "resumed where it stopped, nothing delivered twice"
    );
}

#[test]
fn race7_a_held_back_message_reaches_a_parking_subscriber() {
    for max_lag in [0, 32] {
        for fences in [Fences::Strong, Fences::Auto] {
            let name = Name::new("race7");
            let o = Options {
                capacity: 64,
                batch: 8,
                fences,
                ..Options::default()
            };
            let publisher: Shared<Publisher<Tick>> =
                Arc::new(Mutex::new(Publisher::create(&name, o).unwrap()));
            let so = SubscribeOptions {
                max_lag,
                spin: 0,
                ..SubscribeOptions::default()
            };
            let mut sub = Subscriber::<Tick>::attach(&name, so).unwrap();
            // The subscriber found nothing and is about to park: the
            // producer commits now, sees no sleeper and holds it back.
            let p = publisher.clone();
            let _hook = Hook::once("wait:park", move || publish_next(&mut p.lock().unwrap(), 1));
            let mut m = Tick::default();
            sub.recv(&mut m, Some(Duration::from_secs(5))).unwrap();
            assert_eq!(m.seq, 0);
            let st = crate::ring::inspect(&name).unwrap();
            assert_eq!(st.producer.published, 0, "the message was still held back");
            assert_eq!(
                sub.consumer().watchdog_fires,
                0,
                "max_lag {max_lag} {fences:?}: rescued by the watchdog"
            );
        }
    }
}

#[test]
fn a_close_at_the_brink_of_sleep_is_not_lost() {
    let name = Name::new("brink");
    let publisher = Arc::new(Mutex::new(Some(
        Publisher::<Tick>::create(&name, Options::default()).unwrap(),
    )));
    let so = SubscribeOptions {
        spin: 0,
        ..SubscribeOptions::default()
    };
    let mut sub = Subscriber::<Tick>::attach(&name, so).unwrap();
    let p = publisher.clone();
    let _hook = Hook::once("wait:futex", move || {
        p.lock().unwrap().take().unwrap().close().unwrap();
    });
    let t0 = Instant::now();
    let mut m = Tick::default();
    let err = sub.recv(&mut m, Some(Duration::from_secs(5))).unwrap_err();
    assert!(matches!(err, Error::Closed), "{err}");
    assert_eq!(
        sub.consumer().watchdog_fires,
        0,
        "woken, not rescued by the watchdog"
    );
    assert!(t0.elapsed() < WATCHDOG / 2);
}

#[test]
fn a_joining_subscriber_is_not_counted_until_its_start_is_fixed() {
    let name = Name::new("joining");
    let o = Options {
        capacity: 1024,
        ..Options::default()
    };
    let mut publisher = Publisher::<Tick>::create(&name, o).unwrap();
    let (joining_tx, joining) = mpsc::channel();
    let (proceed, proceed_rx) = mpsc::channel::<()>();
    let ring = name.0.clone();
    let attacher = thread::spawn(move || {
        let _hook = Hook::once("register:epoch", move || {
            joining_tx.send(()).unwrap();
            proceed_rx.recv().unwrap();
        });
        Subscriber::<Tick>::attach(&ring, SubscribeOptions::default()).unwrap()
    });
    joining.recv().unwrap();
    assert_eq!(
        publisher.subscribers(),
        0,
        "a joining entry is not registered yet"
    );
    publish_next(&mut publisher, 5); // published while it joins: not promised to it
    assert!(publisher
        .wait_subscribers(1, Duration::from_millis(30))
        .is_err());
    proceed.send(()).unwrap();
    let mut sub = attacher.join().unwrap();
    publisher
        .wait_subscribers(1, Duration::from_secs(5))
        .unwrap();
    let first = publisher.published();
    publish_next(&mut publisher, 100);
    let mut m = Tick::default();
    for want in first..first + 100 {
        sub.try_recv(&mut m).unwrap();
        assert_eq!(m.seq, want);
    }
}
