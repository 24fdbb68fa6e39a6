//! Reading a ring without registering (`tachyon-gen stat`'s view): the
//! header is validated like an attach, the live lines are read once with
//! `pread` (no mapping, so a truncated file is an error, never a `SIGBUS`)
//! and treated as untrusted numbers.

use std::os::fd::AsFd;
use std::time::Duration;

use super::abi::*;
use super::error::{Error, Result};
use super::segment::{open_named, read_header};
use super::sys;

/// A snapshot of a ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    pub name: String,
    pub identity: Identity,
    pub slot_size: u64,
    /// The line slot layout (else packed).
    pub line_slots: bool,
    /// Asymmetric fences (else strong).
    pub asym_fences: bool,
    pub capacity: u64,
    pub policy: Policy,
    pub batch: u32,
    pub max_subscribers: usize,
    pub segment_size: u64,
    pub liveness_timeout: Duration,
    /// `CLOCK_REALTIME` ns at creation.
    pub created_ns: u64,
    pub producer: ProducerStats,
    /// The entries that are not free, in table order.
    pub subscribers: Vec<SubscriberStats>,
}

/// The producer part of [`Stats`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerStats {
    /// `"active"`, `"closed"` or `"none"`.
    pub state: &'static str,
    pub pid: u32,
    /// Its liveness (write) lock is held.
    pub alive: bool,
    /// Its hot side fences.
    pub strong_fences: bool,
    pub published: u64,
    pub dropped_newest: u64,
}

/// One subscriber entry of [`Stats`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriberStats {
    pub index: usize,
    /// `"joining"`, `"active"`, `"evicted"` or `"dead"`.
    pub state: &'static str,
    pub pid: u32,
    pub alive: bool,
    pub strong_fences: bool,
    pub generation: u64,
    pub max_lag: u64,
    pub key: u64,
    pub head: u64,
    pub received: u64,
    pub dropped: u64,
}

/// Reads the named ring's header and tables without registering. Works
/// for any message type; an error (never a crash) for a missing, special,
/// truncated, empty or corrupt segment.
pub fn inspect(name: &str) -> Result<Stats> {
    validate_name(name)?;
    let fd = open_named(name, false)?;
    let hdr = read_header(name, fd.as_fd(), Duration::ZERO, true)?;
    let g = hdr.geo;
    let mut raw = vec![0u8; g.slots_off as usize];
    let n = sys::retry(|| rustix::io::pread(&fd, &mut raw, 0))
        .map_err(|e| Error::io(name, "pread", e))?;
    if n < raw.len() {
        return Err(Error::corrupt(
            name,
            format!("file is {n} bytes, header says {}", g.seg_size),
        ));
    }
    let held = |start: u64, len: u64| sys::held(fd.as_fd(), start, len);
    let producer = ProducerStats {
        state: match le_u32(&raw, OFF_PROD_STATE) {
            PROD_ACTIVE => "active",
            PROD_CLOSED => "closed",
            _ => "none",
        },
        pid: le_u32(&raw, OFF_PROD_PID),
        alive: held(PROD_LOCK_START, PROD_LOCK_LEN),
        strong_fences: le_u32(&raw, OFF_PROD_FENCES) == FENCES_STRONG,
        published: le_u64(&raw, OFF_TAIL),
        dropped_newest: le_u64(&raw, OFF_DROPPED_NEWEST),
    };
    let mut subscribers = Vec::new();
    for i in 0..g.max_subs as usize {
        let e = g.entry_off(i) as usize;
        let st = le_u32(&raw, e + ENT_STATE);
        if st == ENT_FREE {
            continue;
        }
        let gen = le_u64(&raw, e + ENT_GEN);
        let alive = held(g.entry_off(i), ENTRY_SIZE);
        let evicted = le_u64(&raw, g.evict_off as usize + 8 * i) == gen;
        subscribers.push(SubscriberStats {
            index: i,
            state: match (st, evicted, alive) {
                (_, true, _) => "evicted",
                (_, _, false) => "dead",
                (ENT_JOINING, ..) => "joining",
                (ENT_ACTIVE, ..) => "active",
                _ => "corrupt",
            },
            pid: le_u32(&raw, e + ENT_PID),
            alive,
            strong_fences: le_u32(&raw, e + ENT_FLAGS) & ENT_FLAG_STRONG != 0,
            generation: gen,
            max_lag: le_u64(&raw, e + ENT_MAX_LAG),
            key: le_u64(&raw, e + ENT_KEY),
            head: le_u64(&raw, e + ENT_HEAD),
            received: le_u64(&raw, e + ENT_RECEIVED),
            dropped: le_u64(&raw, e + ENT_DROPPED),
        });
    }
    Ok(Stats {
        name: name.to_owned(),
        identity: hdr.identity,
        slot_size: g.slot_size,
        line_slots: g.line_slots,
        asym_fences: hdr.asym_fences,
        capacity: g.capacity,
        policy: hdr.policy,
        batch: hdr.batch,
        max_subscribers: g.max_subs as usize,
        segment_size: g.seg_size,
        liveness_timeout: Duration::from_nanos(hdr.liveness_ns),
        created_ns: hdr.created_ns,
        producer,
        subscribers,
    })
}

/// Who owns an existing segment and whether it is stale, for the error of a
/// create that found the name taken.
pub(crate) fn describe_existing(name: &str) -> String {
    match inspect(name) {
        Err(e) => format!("(not a readable ring: {e})"),
        Ok(st) if st.producer.alive => format!(
            "was created by pid {}, whose publisher is alive: pick another name or stop that publisher",
            st.producer.pid
        ),
        Ok(st) => format!(
            "was created by pid {}, whose publisher is dead: it is stale; remove it with tachyon_ring::ring::remove or `tachyon-gen stat --reap {name}`",
            st.producer.pid
        ),
    }
}
