//! golden/abi/*.hex, reproduced byte for byte (ABI.md §12): the same rings,
//! driven to the same state, volatile bytes zeroed.

use std::time::Duration;

use super::*;
use crate::ring::abi::*;
use crate::ring::{Fences, Options, Policy, Publisher, SlotLayout, SubscribeOptions, Subscriber};

fn golden(file: &str) -> Vec<u8> {
    let path = format!("{}/../../golden/abi/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (off, bytes) = line.split_once(':').expect("OFFSET: bytes");
        assert_eq!(
            usize::from_str_radix(off, 16).unwrap(),
            out.len(),
            "{path}: {line}"
        );
        out.extend(
            bytes
                .split_whitespace()
                .map(|b| u8::from_str_radix(b, 16).unwrap()),
        );
    }
    out
}

/// Zeroes the volatile bytes (golden/abi/README.md).
fn zero_volatile(seg: &mut [u8]) {
    let hdr = Header::decode("golden", &seg[..HEADER_SIZE as usize]).unwrap();
    let mut ranges = vec![
        (OFF_CREATED_NS, 8),
        (OFF_PROD_PID, 4),
        (OFF_PROD_START_TIME, 8),
        (OFF_PROD_HEARTBEAT, 8),
    ];
    for i in 0..hdr.geo.max_subs as usize {
        let e = hdr.geo.entry_off(i) as usize;
        ranges.extend([
            (e + ENT_HEARTBEAT, 8),
            (e + ENT_PID, 4),
            (e + ENT_START_TIME, 8),
        ]);
    }
    for (off, n) in ranges {
        seg[off..off + n].fill(0);
    }
}

fn check(file: &str, mut seg: Vec<u8>) {
    zero_volatile(&mut seg);
    let want = golden(file);
    assert_eq!(seg.len(), want.len(), "{file}: segment size");
    if let Some(i) = (0..want.len()).find(|&i| seg[i] != want[i]) {
        panic!(
            "{file}: first difference at byte {i:#06x}: got {:#04x}, want {:#04x}",
            seg[i], want[i]
        );
    }
}

#[test]
fn tick_block() {
    let name = Name::new("golden-tick");
    let opts = Options {
        capacity: 8,
        max_subscribers: 2,
        batch: 2,
        liveness_timeout: Duration::from_secs(2),
        slot_layout: SlotLayout::Packed,
        fences: Fences::Strong,
        ..Options::default()
    };
    let mut publisher = Publisher::<Tick>::create(&name, opts).unwrap();
    let mut sub = Subscriber::<Tick>::attach(&name, SubscribeOptions::default()).unwrap();
    for seq in 0..3 {
        publisher.claim().unwrap().fill(seq);
        publisher.commit().unwrap();
    }
    publisher.flush();
    let mut m = Tick::default();
    sub.recv(&mut m, Some(Duration::from_secs(1))).unwrap();
    assert_eq!(m, Tick::of(0));
    sub.consumer().flush_stats();
    check("tick_block_v2.hex", publisher.producer().seg.bytes());
}

#[test]
fn book_drop_oldest() {
    let name = Name::new("golden-book");
    let opts = Options {
        capacity: 4,
        max_subscribers: 1,
        policy: Policy::DropOldest,
        liveness_timeout: Duration::from_secs(1),
        slot_layout: SlotLayout::Line,
        fences: Fences::Strong,
        ..Options::default()
    };
    let mut publisher = Publisher::<Book>::create(&name, opts).unwrap();
    let sub_opts = SubscribeOptions {
        max_lag: 2,
        ..SubscribeOptions::default()
    };
    let mut sub = Subscriber::<Book>::attach(&name, sub_opts).unwrap();
    for i in 0..6u64 {
        let b = publisher.claim().unwrap();
        (b.seq, b.check) = (i, !i);
        publisher.commit().unwrap();
    }
    let mut b = Book::default();
    sub.try_recv(&mut b).unwrap();
    assert_eq!(b.seq, 4);
    sub.consumer().flush_stats();
    check("book_drop_oldest_v2.hex", publisher.producer().seg.bytes());
}

#[test]
fn small_line_asym() {
    let name = Name::new("golden-small");
    let opts = Options {
        capacity: 4,
        max_subscribers: 1,
        liveness_timeout: Duration::from_secs(1),
        fences: Fences::Strong,
        ..Options::default()
    };
    // Asymmetric in the header whatever this machine's membarrier support:
    // the vector must not depend on it.
    let mut publisher = Publisher::<Small>::create_with(&name, opts, true).unwrap();
    let sub_opts = SubscribeOptions {
        strong_fences: true,
        ..SubscribeOptions::default()
    };
    let mut sub = Subscriber::<Small>::attach(&name, sub_opts).unwrap();
    for i in 0..3u64 {
        publisher
            .publish(&Small {
                seq: i,
                value: i * i,
            })
            .unwrap();
    }
    let mut m = Small::default();
    for i in 0..2u64 {
        sub.try_recv(&mut m).unwrap();
        assert_eq!(
            m,
            Small {
                seq: i,
                value: i * i
            }
        );
    }
    sub.consumer().flush_stats();
    check("small_line_asym_v2.hex", publisher.producer().seg.bytes());
}
