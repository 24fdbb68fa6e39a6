//! The subscriber side: registration (ABI.md §8.4), receiving (§8.5),
//! parking (§8.3), detaching (§8.7), and the typed [`Subscriber`].

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::abi::*;
use super::batch::{Batch, Borrowed};
use super::error::{Error, Result};
use super::segment::Segment;
use super::sys;
use super::wait::{self, DEFAULT_SPIN, WATCHDOG};
use crate::Message;

/// Head stores between flushes of `received`/`dropped`/`heartbeat`.
const STATS_EVERY: u32 = 256;
/// How long the registry lock is waited for.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(1);
/// A membarrier-less registrant proceeds once the tail has not moved for
/// this long (an idle producer), and fails after [`ACK_TIMEOUT`] of a moving
/// tail without an acknowledgement (ABI.md §8.4 step 4).
const IDLE_PROOF: Duration = Duration::from_millis(100);
const ACK_TIMEOUT: Duration = Duration::from_secs(1);
/// A membarrier-less subscriber's sleeps until the producer switched to
/// strong fences for it (ABI.md §8.6).
const STRONG_PENDING_SLEEP: Duration = Duration::from_millis(1);

/// Where a named subscriber that takes over its old entry resumes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Start {
    /// At the live tail; what was published while it was away counts as
    /// dropped.
    #[default]
    Live,
    /// At its last position: everything still in the ring is delivered,
    /// what was overwritten meanwhile counts as dropped.
    Last,
}

/// Options of a subscriber at attach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// 0: an unlimited subscriber (a Block or `drop_newest` producer never
    /// overwrites what it has not read). 1..=capacity: a lossy one, which
    /// the producer never waits for; whenever it falls more than `max_lag`
    /// behind, or is lapped, it skips ahead and counts what it skipped as
    /// dropped.
    pub max_lag: usize,
    /// Bounds the wait for a segment still being initialised (default 1 s).
    pub ready_timeout: Duration,
    /// Accept a segment owned by another uid.
    pub allow_foreign_owner: bool,
    /// A durable subscriber's name: a subscriber of the same name that
    /// closed or died earlier is taken over, its counters kept, resuming as
    /// `start` says. Empty: anonymous, always fresh at the live tail.
    pub name: String,
    /// Where a named subscriber resumes.
    pub start: Start,
    /// Join as a process that cannot issue membarrier would (entry flag
    /// `STRONG`, ABI.md §8.6), as `TACHYON_FENCES=strong` does.
    pub strong_fences: bool,
    /// Polls before a waiting receive parks (0 parks at once).
    pub spin: u32,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            max_lag: 0,
            ready_timeout: Duration::from_secs(1),
            allow_foreign_owner: false,
            name: String::new(),
            start: Start::Live,
            strong_fences: false,
            spin: DEFAULT_SPIN,
        }
    }
}

#[cfg(test)]
type HookFn = Box<dyn FnMut(&str)>;

#[cfg(test)]
thread_local! {
    /// Test hook: called at named protocol points so that a test can
    /// interleave another party's steps deterministically.
    pub(crate) static HOOK: std::cell::RefCell<Option<HookFn>> =
        const { std::cell::RefCell::new(None) };
}

#[inline(always)]
fn hook(_point: &str) {
    #[cfg(test)]
    HOOK.with(|h| {
        if let Some(f) = h.borrow_mut().as_mut() {
            f(_point);
        }
    });
}

/// The untyped subscriber of ABI.md §8.5. Not for concurrent use.
pub(crate) struct Consumer {
    pub seg: Segment,
    idx: usize,
    gen: u64,
    entry: usize,
    slots: *const u8,
    slot_size: usize,
    msg_off: usize,
    mask: u64,
    capacity: u64,
    /// A lag beyond this is skipped and counted as dropped.
    window: u64,
    /// An unlimited subscriber of a block or drop_newest ring: the producer
    /// overwrites a slot it holds only after evicting it (and stores the
    /// eviction word first), so a borrow is checked with one eviction load
    /// instead of a stamp load per slot (ABI.md §8.5 step 4).
    protected: bool,
    spin: u32,
    asym: bool,
    /// This subscriber fences its head stores (a strong ring, or it could
    /// not register for membarrier).
    strong: bool,
    watch: [usize; 4],
    n_watch: usize,

    head: u64,
    /// Committed up to here, as far as we know (monotonic).
    tail: u64,
    /// The last tail loaded from the header (monotonic).
    loaded: u64,
    received: u64,
    dropped: u64,
    /// Slots borrowed from head.
    nb: u64,
    since_stats: u32,
    last_live: Option<Instant>,
    closed: bool,

    /// Diagnostics for tests: futex sleeps that timed out, and of those the
    /// ones after which data was there (a lost wake-up).
    pub watchdog_fires: u64,
    pub lost_wakeups: u64,
}

// SAFETY: `slots` points into `seg`'s mapping, which moves with it.
unsafe impl Send for Consumer {}

struct Resume {
    last_head: u64,
    join: u64,
    dropped: u64,
}

impl Consumer {
    /// Registers a subscriber on `seg` (ABI.md §8.4) under the registry lock.
    pub fn register(seg: Segment, opts: &SubscribeOptions) -> Result<Self> {
        let g = seg.hdr.geo;
        let max_lag = opts.max_lag as u64;
        if max_lag > g.capacity {
            return Err(Error::invalid(
                &seg.name,
                format!("max lag {max_lag} exceeds capacity {}", g.capacity),
            ));
        }
        match seg.lock_registry(REGISTRY_TIMEOUT) {
            Ok(true) => {}
            Ok(false) => {
                return Err(Error::Timeout {
                    ring: seg.name.clone(),
                    detail: format!(
                        "registry lock held by another process for {REGISTRY_TIMEOUT:?}"
                    ),
                })
            }
            Err(e) => return Err(Error::io(&seg.name, "registry lock", e)),
        }
        let key = subscriber_key(&opts.name);
        let picked = pick_entry(&seg, key);
        let (idx, resume) = match picked {
            Ok(p) => p,
            Err(e) => {
                seg.unlock_registry();
                return Err(e);
            }
        };
        let (watch, n_watch) = wait::watch_offsets(g.slot_size);
        let asym = seg.hdr.asym_fences;
        let mut c = Consumer {
            idx,
            gen: 0,
            entry: seg.entry_off(idx),
            slots: seg.ptr(g.slots_off as usize),
            slot_size: g.slot_size as usize,
            msg_off: g.slot_msg_off as usize,
            mask: g.mask,
            capacity: g.capacity,
            window: if max_lag > 0 { max_lag } else { g.capacity },
            protected: max_lag == 0 && seg.hdr.policy != Policy::DropOldest,
            spin: opts.spin,
            asym,
            strong: !asym || opts.strong_fences || !sys::membarrier_registered(),
            watch,
            n_watch,
            head: 0,
            tail: 0,
            loaded: 0,
            received: 0,
            dropped: 0,
            nb: 0,
            since_stats: 0,
            last_live: None,
            closed: false,
            watchdog_fires: 0,
            lost_wakeups: 0,
            seg,
        };
        let r = c.enroll(opts, key, resume);
        c.seg.unlock_registry();
        if let Err(e) = r {
            c.closed = true;
            c.seg.unlock_entry(c.idx);
            return Err(e);
        }
        Ok(c)
    }

    fn ent64(&self, off: usize) -> &AtomicU64 {
        self.seg.u64(self.entry + off)
    }

    fn ent32(&self, off: usize) -> &AtomicU32 {
        self.seg.u32(self.entry + off)
    }

    /// Steps 3-5 of a registration on the locked entry; the caller holds
    /// the registry lock. Every store is a registry or owner write of this
    /// entry.
    fn enroll(&mut self, opts: &SubscribeOptions, key: u64, resume: bool) -> Result<()> {
        let (capacity, k) = (self.capacity, u64::from(self.seg.hdr.batch));
        // A resumed entry's last position and counters: untrusted, read
        // once before the entry is reset (its received count is recomputed
        // from them, step 4).
        let old = resume.then(|| Resume {
            last_head: self.ent64(ENT_HEAD).load(Ordering::Acquire),
            join: self.ent64(ENT_JOIN).load(Ordering::Acquire),
            dropped: self.ent64(ENT_DROPPED).load(Ordering::Acquire),
        });
        // Resumable against tail t: a head at most one batch beyond the
        // published tail (a reader may consume committed slots before tail
        // covers them, §8.5 step 1a), and counters that add up.
        let resumable = |t: u64| {
            old.as_ref().is_some_and(|o| {
                o.join <= o.last_head
                    && o.last_head <= t.saturating_add(k)
                    && o.dropped <= o.last_head - o.join
            })
        };
        // Step 3: join at a provisional head never above the final one.
        self.gen = self.ent64(ENT_GEN).load(Ordering::Acquire).wrapping_add(1);
        self.ent32(ENT_STATE).store(ENT_FREE, Ordering::SeqCst);
        self.ent64(ENT_GEN).store(self.gen, Ordering::SeqCst);
        let t = self.seg.u64(OFF_TAIL).load(Ordering::Acquire);
        let provisional = match &old {
            Some(o) if resumable(t) && opts.start == Start::Last => {
                o.last_head.max(sat(t.wrapping_add(2 * k), capacity))
            }
            _ => t,
        };
        let flags = if self.asym && self.strong {
            ENT_FLAG_STRONG
        } else {
            0
        };
        // The table's high-water mark covers this entry before it can park:
        // the producer looks at entries and sleeper flags below it only.
        let high = self.seg.u32(OFF_TABLE_HIGH);
        if high.load(Ordering::Acquire) <= self.idx as u32 {
            high.store(self.idx as u32 + 1, Ordering::SeqCst);
        }
        // Release stores: the producer's acquire loads of state (below,
        // stored last) make them visible together.
        self.ent64(ENT_HEAD).store(provisional, Ordering::Release);
        self.ent64(ENT_RECEIVED).store(0, Ordering::Release);
        self.ent64(ENT_DROPPED).store(0, Ordering::Release);
        self.ent64(ENT_KEY).store(key, Ordering::Release);
        self.ent64(ENT_HEARTBEAT)
            .store(sys::mono_ns(), Ordering::Release);
        self.ent32(ENT_PID).store(sys::pid(), Ordering::Release);
        self.ent64(ENT_START_TIME)
            .store(sys::process_start_time(), Ordering::Release);
        self.ent64(ENT_MAX_LAG)
            .store(opts.max_lag as u64, Ordering::Release);
        self.ent64(ENT_JOIN).store(provisional, Ordering::Release);
        self.ent32(ENT_FLAGS).store(flags, Ordering::Release);
        self.seg.sleeper(self.idx).store(0, Ordering::Release);
        // Joining, after head and max_lag (release: pairs with the scan's
        // acquire load of state).
        self.ent32(ENT_STATE).store(ENT_JOINING, Ordering::SeqCst);
        hook("register:joining");

        // Step 4, H5 (heavy side): store the epoch, then load the tail; the
        // producer stores the tail, then loads the epoch.
        let epoch_w = self.seg.u64(OFF_REG_EPOCH);
        let epoch = epoch_w.load(Ordering::Acquire).wrapping_add(1);
        // Sequentially consistent (an XCHG): the fence of a strong ring.
        epoch_w.store(epoch, Ordering::SeqCst);
        if self.asym && !self.strong {
            sys::heavy_barrier(); // the producer's hot side has no fence
        } else if self.asym {
            self.await_ack(epoch)?;
        }
        hook("register:epoch");
        let t2 = self.seg.u64(OFF_TAIL).load(Ordering::SeqCst);
        let (from, join, received, dropped) = match &old {
            Some(o) if resumable(t2) => {
                // The head is exact; progress a dead owner had not flushed
                // counts as received.
                let from = if opts.start == Start::Last {
                    o.last_head.max(sat(t2.wrapping_add(2 * k), capacity))
                } else {
                    t2.max(o.last_head)
                };
                let received = o.last_head - o.join - o.dropped;
                (from, o.join, received, o.dropped + (from - o.last_head))
            }
            _ => (t2, t2, 0, 0),
        };
        self.ent64(ENT_HEAD).store(from, Ordering::Release);
        self.ent64(ENT_JOIN).store(join, Ordering::Release);
        self.ent64(ENT_DROPPED).store(dropped, Ordering::Release);
        self.ent64(ENT_RECEIVED).store(received, Ordering::Release);
        self.ent32(ENT_STATE).store(ENT_ACTIVE, Ordering::SeqCst);
        (self.head, self.tail, self.loaded) = (from, t2, t2);
        (self.received, self.dropped) = (received, dropped);
        // Step 5: a producer parked on our provisional head may go on.
        if self.seg.u32(OFF_PROD_SLEEPING).load(Ordering::SeqCst) != 0
            && self.seg.u32(OFF_PROD_WAIT_ENTRY).load(Ordering::Acquire) == self.idx as u32
        {
            self.wake_producer_now();
        }
        Ok(())
    }

    /// Step 4 of a membarrier-less registrant on an asymmetric ring: wait
    /// until the producer scanned since our epoch (it is then strong for
    /// us), or is idle, closed or dead.
    fn await_ack(&self, epoch: u64) -> Result<()> {
        let start = Instant::now();
        let tail = self.seg.u64(OFF_TAIL);
        let (mut last, mut since) = (tail.load(Ordering::Acquire), start);
        loop {
            if self.seg.u64(OFF_PROD_SCAN_EPOCH).load(Ordering::Acquire) >= epoch {
                return Ok(());
            }
            let now = Instant::now();
            let t = tail.load(Ordering::Acquire);
            if t != last {
                (last, since) = (t, now);
            } else if now.duration_since(since) >= IDLE_PROOF
                || self.seg.u32(OFF_PROD_STATE).load(Ordering::Acquire) != PROD_ACTIVE
                || !self.seg.producer_alive()
            {
                return Ok(());
            }
            if now.duration_since(start) > ACK_TIMEOUT {
                return Err(Error::Timeout {
                    ring: self.seg.name.clone(),
                    detail: format!("the publisher kept publishing for {ACK_TIMEOUT:?} without acknowledging a membarrier-less subscriber (ABI.md §8.6)"),
                });
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    #[inline(always)]
    fn slot(&self, idx: u64) -> *const u8 {
        // SAFETY: (idx & mask) < capacity: inside the slots region.
        unsafe { self.slots.add((idx & self.mask) as usize * self.slot_size) }
    }

    #[inline(always)]
    fn stamp(&self, idx: u64) -> &AtomicU64 {
        // SAFETY: an 8-aligned word at the start of a slot, accessed only
        // atomically by this process.
        unsafe { AtomicU64::from_ptr(self.slot(idx).cast_mut().cast()) }
    }

    #[inline(always)]
    pub fn msg(&self, idx: u64) -> *const u8 {
        // SAFETY: msg_off + size <= slot_size.
        unsafe { self.slot(idx).add(self.msg_off) }
    }

    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// Whether the producer evicted us (its eviction word names our
    /// generation), or someone rewrote our generation (only a hostile
    /// process does).
    #[inline]
    fn is_evicted(&self) -> bool {
        self.seg.evicted(self.idx).load(Ordering::Acquire) == self.gen
            || self.ent64(ENT_GEN).load(Ordering::Relaxed) != self.gen
    }

    fn evicted(&self) -> Error {
        Error::Evicted {
            ring: self.seg.name.clone(),
            entry: self.idx,
            generation: self.gen,
        }
    }

    /// How many messages are readable from head without waiting, skipping
    /// (and counting) any beyond the lag window.
    #[inline]
    fn poll(&mut self) -> Result<u64> {
        if self.head >= self.tail {
            let h = self.head;
            // Step 1a: a committed stamp (2h+2, stored after the message
            // bytes; acquire, pairing with the producer's release) proves
            // slot h complete before the tail covers it. Only for a window
            // of the whole ring.
            if self.window == self.capacity && self.stamp(h).load(Ordering::Acquire) == 2 * h + 2 {
                if self.is_evicted() {
                    return Err(self.evicted());
                }
                self.tail = h + 1;
                return Ok(1);
            }
            let t = self.load_tail()?;
            if self.is_evicted() {
                return Err(self.evicted());
            }
            self.tail = self.tail.max(t);
            if self.tail <= h {
                // Step 1b: a lossy subscriber may read a message a batching
                // producer holds back (its lag is then below batch).
                if self.window < self.capacity && self.stamp(h).load(Ordering::Acquire) == 2 * h + 2
                {
                    self.tail = h + 1;
                    return Ok(1);
                }
                return Ok(0);
            }
        }
        let mut n = self.tail - self.head;
        if n > self.window {
            let skip = n - self.window;
            self.head += skip;
            self.dropped += skip;
            n = self.window;
            self.store_head();
        }
        Ok(n)
    }

    /// Loads the tail (acquire, pairing with the producer's tail store:
    /// every slot below it is committed). A tail that moved back is
    /// corruption.
    #[inline]
    fn load_tail(&mut self) -> Result<u64> {
        let t = self.seg.u64(OFF_TAIL).load(Ordering::Acquire);
        if t < self.loaded {
            return Err(Error::corrupt(
                &self.seg.name,
                format!("tail moved back from {} to {t}", self.loaded),
            ));
        }
        self.loaded = t;
        Ok(t)
    }

    /// Whether the slot of head holds its committed message, looking at
    /// that slot only: its stamp, and a prefetch of every other cache line
    /// it spans, so that the lines travel together when the producer writes
    /// them (ABI.md §8.5 step 1a, non-normative). A prefetch, not a load:
    /// it reads nothing, so it cannot race with the producer's writes of
    /// the message, which in one process would be a data race.
    #[inline]
    fn peek(&self) -> bool {
        let h = self.head;
        let ready = self.stamp(h).load(Ordering::Acquire) == 2 * h + 2;
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let p = self.slot(h);
            for &off in &self.watch[..self.n_watch] {
                // SAFETY: a prefetch of an address inside the mapping (off <
                // slot_size); it has no effect on memory.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(p.add(off).cast()) };
            }
        }
        ready
    }

    /// A stamp `s` that is not the one expected for head: lapped (skip,
    /// count) or corrupt.
    fn skip_lapped(&mut self, s: u64) -> Result<()> {
        let want = 2 * self.head + 2;
        if s < want {
            return Err(Error::corrupt(
                &self.seg.name,
                format!(
                    "slot {} stamp {s}, want >= {want} (index {})",
                    self.head & self.mask,
                    self.head
                ),
            ));
        }
        let j = (s - 1) >> 1;
        let mut next = self.head + 1;
        if j >= self.capacity && j + 1 - self.capacity > next {
            next = j + 1 - self.capacity;
        }
        self.dropped += next - self.head;
        self.head = next;
        self.store_head();
        Ok(())
    }

    /// The message at head, its first stamp checked, not consumed.
    #[inline]
    pub fn next(&mut self) -> Result<*const u8> {
        loop {
            if self.poll()? == 0 {
                return Err(Error::Empty);
            }
            // Seqlock read-begin (acquire, pairs with the commit store).
            let s = self.stamp(self.head).load(Ordering::Acquire);
            if s == 2 * self.head + 2 {
                return Ok(self.msg(self.head));
            }
            self.skip_lapped(s)?;
        }
    }

    /// Re-checks head's stamp after a copy and consumes the message if the
    /// copy is intact; false: overwritten meanwhile (counted), discard it.
    #[inline]
    pub fn consume(&mut self) -> Result<bool> {
        // Seqlock read-end: the copy's loads are before this acquire load
        // in program order; on x86-64 loads are not reordered with older
        // loads, and an acquire fence keeps the compiler (and weaker CPUs)
        // from sinking the copy below it.
        std::sync::atomic::fence(Ordering::Acquire);
        let s = self.stamp(self.head).load(Ordering::Acquire);
        if s == 2 * self.head + 2 {
            self.head += 1;
            self.received += 1;
            self.store_head();
            return Ok(true);
        }
        self.skip_lapped(s)?;
        Ok(false)
    }

    /// Copies the next message into `dst`; [`Error::Empty`] if none.
    #[inline]
    pub fn try_recv<T: Message>(&mut self, dst: &mut T) -> Result<()> {
        if self.nb != 0 {
            return Err(self.claimed());
        }
        loop {
            let src = self.next()?;
            // SAFETY: src is the 8-aligned message region of a slot, which
            // spans round_up(SIZE, 8) bytes; dst is a valid &mut T.
            unsafe { wait::copy_from_slot(dst, src) };
            if self.consume()? {
                return Ok(());
            }
        }
    }

    fn claimed(&self) -> Error {
        Error::Claimed {
            ring: self.seg.name.clone(),
            detail: "a borrow is outstanding",
        }
    }

    pub fn borrow(&mut self) -> Result<*const u8> {
        if self.nb != 0 {
            return Err(self.claimed());
        }
        let p = self.next()?;
        self.nb = 1;
        Ok(p)
    }

    /// Up to `max` contiguous committed messages from head.
    pub fn borrow_batch(&mut self, max: u64) -> Result<(*const u8, u64)> {
        if self.nb != 0 {
            return Err(self.claimed());
        }
        let p = self.next()?;
        let t = self.load_tail()?;
        self.tail = self.tail.max(t);
        let n = (self.tail - self.head)
            .min(max.max(1))
            .min(self.capacity - (self.head & self.mask));
        let n = if self.protected {
            n // committed below the tail, and not reused before release
        } else {
            (1..n)
                .find(|&k| {
                    let i = self.head + k;
                    self.stamp(i).load(Ordering::Acquire) != 2 * i + 2
                })
                .unwrap_or(n)
        };
        self.nb = n;
        Ok((p, n))
    }

    /// Ends a borrow. If any borrowed slot's stamp changed meanwhile, the
    /// whole borrow counts as dropped and [`Error::Overwritten`] is
    /// returned.
    pub fn release(&mut self) -> Result<()> {
        let n = self.nb;
        if n == 0 {
            return Ok(());
        }
        // Seqlock read-end, after the reads of the borrowed bytes (an
        // acquire fence keeps them before the loads below).
        std::sync::atomic::fence(Ordering::Acquire);
        let intact = if self.protected {
            // The producer stores our eviction before it overwrites a slot
            // we hold: if we read an overwritten byte, this load sees it.
            !self.is_evicted()
        } else {
            (0..n).all(|k| {
                let i = self.head + k;
                self.stamp(i).load(Ordering::Acquire) == 2 * i + 2
            })
        };
        self.nb = 0;
        self.head += n;
        if intact {
            self.received += n;
        } else {
            self.dropped += n;
        }
        self.store_head();
        if intact {
            Ok(())
        } else {
            Err(Error::Overwritten)
        }
    }

    /// Publishes head to the producer: a release of the slots below it
    /// (pairs with the producer's acquire head load in its scan) and the
    /// light side of H2 (then `prod_sleeping` is loaded). Sequentially
    /// consistent (an XCHG) unless the ring's parked producer issues a
    /// membarrier for us.
    #[inline]
    fn store_head(&mut self) {
        let head = self.ent64(ENT_HEAD);
        if self.strong {
            head.store(self.head, Ordering::SeqCst);
        } else {
            head.store(self.head, Ordering::Release);
            wait::light_fence();
        }
        if self.seg.u32(OFF_PROD_SLEEPING).load(Ordering::SeqCst) != 0 {
            self.wake_producer();
        }
        self.since_stats += 1;
        if self.since_stats >= STATS_EVERY {
            self.flush_stats();
        }
    }

    /// Wakes a parked producer waiting on this entry once head reached its
    /// wake condition (loads after the sleeping flag, which it stored last).
    fn wake_producer(&self) {
        if self.seg.u32(OFF_PROD_WAIT_ENTRY).load(Ordering::Acquire) == self.idx as u32
            && self.head >= self.seg.u64(OFF_PROD_WAIT_HEAD).load(Ordering::Acquire)
        {
            self.wake_producer_now();
        }
    }

    /// Advances this entry's wake eventcount (we are its only writer) and
    /// wakes the producer parked on it.
    fn wake_producer_now(&self) {
        let w = self.ent32(ENT_WAKE);
        w.store(w.load(Ordering::Relaxed).wrapping_add(1), Ordering::SeqCst);
        sys::futex_wake(w, 1);
    }

    /// Stores the statistics (single writer; informational).
    pub fn flush_stats(&mut self) {
        self.since_stats = 0;
        self.ent64(ENT_RECEIVED)
            .store(self.received, Ordering::Relaxed);
        self.ent64(ENT_DROPPED)
            .store(self.dropped, Ordering::Relaxed);
        self.ent64(ENT_HEARTBEAT)
            .store(sys::mono_ns(), Ordering::Relaxed);
    }

    /// Why no message will come, if that is so.
    fn terminal(&self, check_alive: bool) -> Option<Error> {
        if self.is_evicted() {
            return Some(self.evicted());
        }
        let closed = self.seg.u32(OFF_PROD_STATE).load(Ordering::Acquire) == PROD_CLOSED;
        if !closed && (!check_alive || self.seg.producer_alive()) {
            return None;
        }
        // Closed is stored after the final tail (H4), a dead producer's tail
        // is final: reload it and finish delivering first. A dead batching
        // producer may also have committed messages it never published.
        let h = self.head;
        if self.seg.u64(OFF_TAIL).load(Ordering::Acquire) > h
            || self.stamp(h).load(Ordering::Acquire) == 2 * h + 2
        {
            return None;
        }
        Some(if closed {
            Error::Closed
        } else {
            Error::PublisherDead {
                ring: self.seg.name.clone(),
            }
        })
    }

    /// Blocks until a message is readable: spins, then parks on the notify
    /// eventcount, each sleep bounded by the watchdog. `deadline`: give up
    /// with [`Error::Timeout`].
    pub fn wait(&mut self, deadline: Option<Instant>) -> Result<()> {
        let mut spins = 0u32;
        loop {
            // A subscriber allowed the fast path spins on the next slot
            // alone and polls in full every 16th time, so the producer's
            // tail line does not travel on every spin.
            if spins < self.spin && spins & 15 != 0 && self.window == self.capacity {
                // The slot holds its message: the caller's receive takes it
                // (and checks eviction) at once, without a poll on the way.
                if self.peek() {
                    return Ok(());
                }
                wait::spin_pause(spins, self.spin);
                spins += 1;
                continue;
            }
            if self.poll()? > 0 {
                return Ok(());
            }
            if spins < self.spin {
                wait::spin_pause(spins, self.spin);
                spins += 1;
                continue;
            }
            let now = Instant::now();
            let check_alive = self
                .last_live
                .is_none_or(|t| now.duration_since(t) >= WATCHDOG);
            if check_alive {
                self.last_live = Some(now);
            }
            if let Some(e) = self.terminal(check_alive) {
                return Err(e);
            }
            let mut sleep = WATCHDOG;
            if let Some(d) = deadline {
                if now >= d {
                    return Err(Error::Timeout {
                        ring: self.seg.name.clone(),
                        detail: "no message before the deadline".into(),
                    });
                }
                sleep = sleep.min(d - now + Duration::from_millis(1));
            }
            if self.strong
                && self.asym
                && self.seg.u32(OFF_PROD_FENCES).load(Ordering::Acquire) != FENCES_STRONG
            {
                // The producer has not switched to strong fences for us: a
                // wake-up could be lost, so sleep briefly (ABI.md §8.6).
                sleep = sleep.min(STRONG_PENDING_SLEEP);
            }
            self.flush_stats();
            hook("wait:park");
            if self.park(sleep)? {
                return Ok(());
            }
        }
    }

    /// One sleep (H1, heavy side); true when data appeared while it
    /// announced itself.
    fn park(&mut self, sleep: Duration) -> Result<bool> {
        // Store our sleeper flag (sequentially consistent: the fence of a
        // strong ring), then on an asymmetric ring a membarrier; then load
        // the eventcount and re-check for data: the tail and the stamp of
        // head (a held-back message), the producer's state and our
        // eviction. The producer stores the tail or a stamp, then loads the
        // flags, and if it sees ours advances the count and wakes it:
        // either we see its store here, or futex_wait sees the new count.
        let flag = self.seg.sleeper(self.idx);
        flag.store(1, Ordering::SeqCst);
        if self.asym && !self.strong {
            sys::heavy_barrier();
        }
        let ev = self.seg.u32(OFF_NOTIFY).load(Ordering::SeqCst);
        let r = self.park_checked(ev, sleep);
        self.seg.sleeper(self.idx).store(0, Ordering::Release);
        r
    }

    fn park_checked(&mut self, ev: u32, sleep: Duration) -> Result<bool> {
        // poll looks at the tail and at the stamp of head (steps 1a/1b).
        if self.poll()? > 0 {
            return Ok(true);
        }
        if self.seg.u32(OFF_PROD_STATE).load(Ordering::Acquire) == PROD_CLOSED || self.is_evicted()
        {
            return Ok(false); // wait's next turn reports it
        }
        hook("wait:futex");
        if sys::futex_wait(self.seg.u32(OFF_NOTIFY), ev, sleep) {
            self.watchdog_fires += 1;
            let h = self.head;
            if self.seg.u64(OFF_TAIL).load(Ordering::Acquire) > h
                || self.stamp(h).load(Ordering::Acquire) == 2 * h + 2
            {
                self.lost_wakeups += 1;
            }
        }
        Ok(false)
    }

    /// Published messages not read yet.
    pub fn lag(&self) -> u64 {
        sat(self.seg.u64(OFF_TAIL).load(Ordering::Acquire), self.head)
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Detaches (ABI.md §8.7). Without the registry lock (someone else
    /// holds it) only the liveness lock is dropped: the producer reclaims
    /// the entry as dead, so a lock held by another process never makes the
    /// producer wait for us.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.flush_stats();
        self.seg.sleeper(self.idx).store(0, Ordering::Release);
        if let Ok(true) = self.seg.lock_registry(REGISTRY_TIMEOUT) {
            let st = self.ent32(ENT_STATE).load(Ordering::Acquire);
            if self.ent64(ENT_GEN).load(Ordering::Acquire) == self.gen && st != ENT_FREE {
                self.ent64(ENT_GEN)
                    .store(self.gen.wrapping_add(1), Ordering::SeqCst);
                // Sequentially consistent: the store side of H3.
                self.ent32(ENT_STATE).store(ENT_FREE, Ordering::SeqCst);
                let epoch = self.seg.u64(OFF_REG_EPOCH);
                epoch.store(
                    epoch.load(Ordering::Acquire).wrapping_add(1),
                    Ordering::SeqCst,
                );
                // A producer parked on our entry must not wait for a
                // subscriber that left (state store above, then this load).
                if self.seg.u32(OFF_PROD_SLEEPING).load(Ordering::SeqCst) != 0
                    && self.seg.u32(OFF_PROD_WAIT_ENTRY).load(Ordering::Acquire) == self.idx as u32
                {
                    self.wake_producer_now();
                }
            }
            self.seg.unlock_registry();
        }
        self.seg.unlock_entry(self.idx);
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.close();
    }
}

/// Step 2 of a registration: a named subscriber's own entry first, then
/// one no named subscriber may come back to, then any (a departed named
/// subscriber's resume state is then lost). A free entry, or one whose
/// owner died, can be locked; a live owner's cannot.
fn pick_entry(seg: &Segment, key: u64) -> Result<(usize, bool)> {
    let n = seg.hdr.geo.max_subs as usize;
    let key_of = |i: usize| seg.u64(seg.entry_off(i) + ENT_KEY).load(Ordering::Acquire);
    let try_lock = |i: usize| {
        seg.try_lock_entry(i)
            .map_err(|e| Error::io(&seg.name, format!("lock entry {i}"), e))
    };
    if key != 0 {
        for i in (0..n).filter(|&i| key_of(i) == key) {
            if try_lock(i)? {
                return Ok((i, true));
            }
        }
    }
    for pass in 0..2 {
        for i in 0..n {
            if pass == 0 && key_of(i) != 0 {
                continue;
            }
            if try_lock(i)? {
                return Ok((i, false));
            }
        }
    }
    Err(Error::TableFull {
        ring: seg.name.clone(),
        entries: n,
    })
}

/// A registered reader of a ring of `T`. Not for concurrent use (`Send`,
/// not `Sync`); dropping it detaches it.
///
/// ```no_run
/// # use tachyon_ring::Message;
/// # fn f<T: Message + Default>() -> tachyon_ring::ring::Result<()> {
/// use std::time::Duration;
/// use tachyon_ring::ring::{Error, SubscribeOptions, Subscriber};
/// let mut sub = Subscriber::<T>::attach("telemetry", SubscribeOptions::default())?;
/// let mut msg = T::default();
/// match sub.recv(&mut msg, Some(Duration::from_secs(1))) {
///     Ok(()) => { /* msg holds a copy */ }
///     Err(Error::Closed) => { /* every message was delivered */ }
///     Err(e) => return Err(e),
/// }
/// let batch = sub.borrow_batch(64, None)?; // in place, strided
/// for m in batch.iter() { let _ = m; }
/// batch.release()?;
/// # Ok(()) }
/// ```
pub struct Subscriber<T: Message> {
    c: Consumer,
    _t: PhantomData<fn() -> T>,
}

impl<T: Message> Subscriber<T> {
    const LAYOUT: () = assert!(
        T::SIZE == std::mem::size_of::<T>() && T::ALIGN == std::mem::align_of::<T>(),
        "Message::SIZE/ALIGN disagree with the Rust type"
    );

    /// Opens the named ring, checks it against `T` (fingerprint, type id,
    /// size, alignment: [`Error::Mismatch`] names both values) and
    /// registers. It reads messages published after it registered.
    pub fn attach(name: &str, opts: SubscribeOptions) -> Result<Self> {
        validate_name(name)?;
        let seg = Segment::open(name, true, opts.ready_timeout, opts.allow_foreign_owner)?;
        Self::subscribe(seg, &opts)
    }

    pub(crate) fn subscribe(seg: Segment, opts: &SubscribeOptions) -> Result<Self> {
        let () = Self::LAYOUT;
        seg.hdr
            .identity
            .check("attach", &seg.name, &Identity::of::<T>())?;
        Ok(Subscriber {
            c: Consumer::register(seg, opts)?,
            _t: PhantomData,
        })
    }

    /// The ring's name.
    pub fn name(&self) -> &str {
        &self.c.seg.name
    }

    /// Copies the next message into `dst` without waiting: [`Error::Empty`]
    /// if none is ready. Never returns a torn message: a copy overlapped by
    /// an overwrite is discarded, counted as dropped, and the next is read.
    #[inline]
    pub fn try_recv(&mut self, dst: &mut T) -> Result<()> {
        self.c.try_recv(dst)
    }

    /// Waits for the next message (at most `timeout`; `None`: as long as
    /// the publisher lives) and copies it into `dst`. After every published
    /// message was delivered: [`Error::Closed`] or
    /// [`Error::PublisherDead`]; [`Error::Evicted`] if the producer evicted
    /// this subscriber.
    #[inline]
    pub fn recv(&mut self, dst: &mut T, timeout: Option<Duration>) -> Result<()> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            match self.c.try_recv(dst) {
                Err(Error::Empty) => self.c.wait(deadline)?,
                r => return r,
            }
        }
    }

    /// Borrows the next message in place without waiting.
    pub fn try_borrow(&mut self) -> Result<Borrowed<'_, T>> {
        let p = self.c.borrow()?;
        Ok(Borrowed::new(&mut self.c, p))
    }

    /// Waits for the next message and borrows it in place until the guard
    /// is released (or dropped). For a lossy subscriber (`max_lag > 0`, or
    /// a `drop_oldest` ring) the slot may be overwritten meanwhile: the
    /// guard's [`release`](Borrowed::release) then returns
    /// [`Error::Overwritten`] and what was read must be discarded.
    pub fn borrow(&mut self, timeout: Option<Duration>) -> Result<Borrowed<'_, T>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            match self.c.borrow() {
                Ok(p) => return Ok(Borrowed::new(&mut self.c, p)),
                Err(Error::Empty) => self.c.wait(deadline)?,
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits for at least one message and borrows up to `max` contiguous
    /// ones in place (fewer at the ring's wrap point).
    pub fn borrow_batch(&mut self, max: usize, timeout: Option<Duration>) -> Result<Batch<'_, T>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            match self.c.borrow_batch(max as u64) {
                Ok((p, n)) => {
                    let stride = self.c.slot_size();
                    return Ok(Batch::new(&mut self.c, p, n as usize, stride));
                }
                Err(Error::Empty) => self.c.wait(deadline)?,
                Err(e) => return Err(e),
            }
        }
    }

    /// Copies of the received messages, until the publisher closes (the
    /// iterator then ends); any other error (timeout, publisher dead,
    /// evicted) is yielded once, and the iterator ends.
    pub fn messages(&mut self, timeout: Option<Duration>) -> Messages<'_, T> {
        Messages {
            sub: self,
            timeout,
            done: false,
        }
    }

    /// Messages received since registration (a resumed named subscriber:
    /// since its first registration).
    pub fn received(&self) -> u64 {
        self.c.received()
    }

    /// Messages lost: lapped, skipped beyond `max_lag`, or overwritten
    /// while borrowed.
    pub fn dropped(&self) -> u64 {
        self.c.dropped()
    }

    /// Published messages this subscriber has not read.
    pub fn lag(&self) -> u64 {
        self.c.lag()
    }

    /// Detaches (the entry becomes free) and unmaps the segment.
    pub fn close(self) {}

    #[cfg(test)]
    pub(crate) fn consumer(&mut self) -> &mut Consumer {
        &mut self.c
    }
}

impl<T: Message> std::fmt::Debug for Subscriber<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("ring", &self.c.seg.name)
            .field("message", &T::NAME)
            .field("received", &self.c.received)
            .field("dropped", &self.c.dropped)
            .finish_non_exhaustive()
    }
}

/// The iterator of [`Subscriber::messages`].
pub struct Messages<'a, T: Message> {
    sub: &'a mut Subscriber<T>,
    timeout: Option<Duration>,
    done: bool,
}

impl<T: Message> Iterator for Messages<'_, T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        if self.done {
            return None;
        }
        let mut m = T::new_zeroed();
        match self.sub.recv(&mut m, self.timeout) {
            Ok(()) => Some(Ok(m)),
            Err(Error::Closed) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
