//! The producer side (ABI.md §8.1-§8.3, §9) and the typed [`Publisher`].

use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::abi::*;
use super::error::{Error, Result};
use super::sealed::SealedShare;
use super::segment::Segment;
use super::sys;
use super::wait::{self, DEFAULT_SPIN, WATCHDOG};
use crate::Message;

/// Slot count of a ring created with `capacity: 0`.
pub const DEFAULT_CAPACITY: usize = 1024;
/// Table size of a ring created with `max_subscribers: 0`.
pub const DEFAULT_MAX_SUBSCRIBERS: usize = 8;
/// How long a Block producer waits on a live subscriber that makes no
/// progress before evicting it, by default.
pub const DEFAULT_LIVENESS_TIMEOUT: Duration = Duration::from_secs(2);

/// How a ring's handshakes are fenced (ABI.md §8.6), chosen at creation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Fences {
    /// Asymmetric where this process can register for
    /// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`, strong otherwise;
    /// `TACHYON_FENCES=strong` in the environment forces strong.
    #[default]
    Auto,
    /// Both sides of every handshake fence.
    Strong,
    /// Fence-free hot paths, membarrier on the rare side; creation fails
    /// where membarrier is unavailable.
    Asymmetric,
}

/// Options of a ring at creation. `Options::default()` is a Block ring of
/// [`DEFAULT_CAPACITY`] slots, [`DEFAULT_MAX_SUBSCRIBERS`] entries, no
/// batching, mode 0600.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Slot count, a power of two in [2, 2^30] (0: the default).
    pub capacity: usize,
    /// Subscriber table size, 1..1024 (0: the default).
    pub max_subscribers: usize,
    /// What the producer does when the ring is full.
    pub policy: Policy,
    /// K: the tail is published every K commits, on flush, before waiting,
    /// and whenever a subscriber sleeps; 0 or 1 publishes every commit; at
    /// most capacity/2.
    pub batch: usize,
    /// Bounds one Block publish ([`Error::Timeout`]); `None` waits as long
    /// as the blocking subscriber is alive and progressing.
    pub timeout: Option<Duration>,
    /// How long a Block producer waits on a live, stalled subscriber
    /// before evicting it. A dead one is reclaimed within one watchdog
    /// period regardless.
    pub liveness_timeout: Duration,
    /// The segment's permission bits, applied with fchmod (the umask does
    /// not filter them); world-writable modes are refused.
    pub mode: u32,
    /// How slots are laid out.
    pub slot_layout: SlotLayout,
    /// How the handshakes are fenced.
    pub fences: Fences,
    /// Polls before a Block producer parks (tests: 0 parks at once).
    pub spin: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            capacity: DEFAULT_CAPACITY,
            max_subscribers: DEFAULT_MAX_SUBSCRIBERS,
            policy: Policy::Block,
            batch: 1,
            timeout: None,
            liveness_timeout: DEFAULT_LIVENESS_TIMEOUT,
            mode: 0o600,
            slot_layout: SlotLayout::Auto,
            fences: Fences::Auto,
            spin: DEFAULT_SPIN,
        }
    }
}

impl Options {
    /// The header of a new ring of `id` with these options.
    pub(crate) fn header(&self, ring: &str, id: Identity, force_asym: bool) -> Result<Header> {
        let bad = |d: String| Err(Error::invalid(ring, d));
        let capacity = if self.capacity == 0 {
            DEFAULT_CAPACITY
        } else {
            self.capacity
        } as u64;
        let max_subs = if self.max_subscribers == 0 {
            DEFAULT_MAX_SUBSCRIBERS
        } else {
            self.max_subscribers
        } as u64;
        let batch = self.batch.max(1) as u64;
        if !capacity.is_power_of_two() || !(2..=MAX_CAPACITY).contains(&capacity) {
            return bad(format!(
                "capacity {capacity} is not a power of two in [2, {MAX_CAPACITY}]"
            ));
        }
        if max_subs > MAX_SUBSCRIBERS {
            return bad(format!(
                "max subscribers {max_subs} outside [1, {MAX_SUBSCRIBERS}]"
            ));
        }
        if batch > capacity / 2 {
            return bad(format!("batch {batch} outside [1, {}]", capacity / 2));
        }
        if self.mode & !0o777 != 0 || self.mode & 0o002 != 0 {
            return bad(format!(
                "mode {:#o} (permission bits only, not world-writable)",
                self.mode
            ));
        }
        let liveness = if self.liveness_timeout.is_zero() {
            DEFAULT_LIVENESS_TIMEOUT
        } else {
            self.liveness_timeout
        };
        let line = self.slot_layout.is_line(id.size, id.align);
        let geo = Geometry::compute(id.size, id.align, capacity, max_subs, line)
            .map_err(|d| Error::invalid(ring, d))?;
        let asym = match self.fences {
            Fences::Strong => force_asym,
            Fences::Auto => force_asym || sys::membarrier_registered(),
            Fences::Asymmetric => {
                if !sys::membarrier_registered() {
                    return Err(Error::Unsupported {
                        ring: ring.to_owned(),
                        detail: format!(
                            "asymmetric fences need membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED), which this process cannot register (kernel, seccomp or {}=strong)",
                            sys::FENCES_ENV
                        ),
                    });
                }
                true
            }
        };
        Ok(Header {
            identity: id,
            policy: self.policy,
            batch: batch as u32,
            asym_fences: asym,
            liveness_ns: u64::try_from(liveness.as_nanos()).unwrap_or(u64::MAX),
            created_ns: sys::realtime_ns(),
            geo,
        })
    }
}

/// The untyped producer of ABI.md §8.1. Not for concurrent use.
pub(crate) struct Producer {
    pub seg: Segment,
    slots: *mut u8,
    slot_size: usize,
    msg_off: usize,
    mask: u64,
    capacity: u64,
    nsubs: usize,
    policy: Policy,
    batch: u64,
    timeout: Option<Duration>,
    liveness: Duration,
    spin: u32,
    /// The ring is asymmetric (and this process registered for membarrier).
    asym: bool,
    /// The hot side fences: a strong ring, or an asymmetric one that a
    /// membarrier-less subscriber joined (ABI.md §8.6).
    strong: bool,

    cursor: u64,
    published: u64,
    claimed: bool,
    limit: u64,
    epoch: u64,
    dropped: u64,
    closed: bool,

    /// Diagnostics for tests: futex sleeps that timed out, evictions.
    pub watchdog_fires: u64,
    pub evictions: u64,
}

// SAFETY: `slots` points into `seg`'s mapping, which moves with it.
unsafe impl Send for Producer {}

impl Producer {
    pub fn new(seg: Segment, opts: &Options) -> Self {
        let h = seg.hdr;
        let g = h.geo;
        Producer {
            slots: seg.ptr(g.slots_off as usize),
            slot_size: g.slot_size as usize,
            msg_off: g.slot_msg_off as usize,
            mask: g.mask,
            capacity: g.capacity,
            nsubs: g.max_subs as usize,
            policy: h.policy,
            batch: u64::from(h.batch),
            timeout: opts.timeout,
            liveness: Duration::from_nanos(h.liveness_ns),
            spin: opts.spin,
            asym: h.asym_fences,
            strong: !h.asym_fences,
            cursor: 0,
            published: 0,
            claimed: false,
            // drop_oldest never waits: it rescans only when the table changes.
            limit: if h.policy == Policy::DropOldest {
                u64::MAX
            } else {
                0
            },
            epoch: 0,
            dropped: 0,
            closed: false,
            watchdog_fires: 0,
            evictions: 0,
            seg,
        }
    }

    #[inline(always)]
    fn slot(&self, idx: u64) -> *mut u8 {
        // SAFETY: (idx & mask) < capacity: inside the slots region.
        unsafe { self.slots.add((idx & self.mask) as usize * self.slot_size) }
    }

    #[inline(always)]
    fn stamp(&self, idx: u64) -> &std::sync::atomic::AtomicU64 {
        // SAFETY: a slot starts with its 8-aligned stamp word, which this
        // process accesses only atomically.
        unsafe { std::sync::atomic::AtomicU64::from_ptr(self.slot(idx).cast()) }
    }

    /// The message bytes of the claimed slot.
    #[inline(always)]
    pub fn msg(&self, idx: u64) -> *mut u8 {
        // SAFETY: msg_off + size <= slot_size.
        unsafe { self.slot(idx).add(self.msg_off) }
    }

    /// Reserves the next slot and returns the index (its message bytes at
    /// `msg(idx)`).
    #[inline]
    pub fn claim(&mut self) -> Result<u64> {
        if self.closed {
            return Err(Error::Closed);
        }
        let w = self.cursor;
        if self.claimed {
            return Ok(w);
        }
        if w >= self.limit {
            self.make_room(w)?;
        }
        // Seqlock open: stamp = 2w+1; pairs with the subscriber's stamp
        // re-check after its copy. The message stores that follow must not
        // become visible before it: on x86-64 TSO keeps stores in order (the
        // store is a plain MOV) and a compiler barrier keeps the compiler
        // from hoisting the caller's writes above it; elsewhere a full
        // barrier (at least the DMB ISHST that ABI.md §8.1 asks of arm64).
        self.stamp(w).store(2 * w + 1, Ordering::Release);
        #[cfg(target_arch = "x86_64")]
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
        #[cfg(not(target_arch = "x86_64"))]
        std::sync::atomic::fence(Ordering::SeqCst);
        self.claimed = true;
        Ok(w)
    }

    /// Seals the claimed slot and publishes per the batch.
    #[inline]
    pub fn commit(&mut self) -> Result<()> {
        if !self.claimed {
            return Err(Error::Claimed {
                ring: self.seg.name.clone(),
                detail: "commit without a claimed slot",
            });
        }
        let w = self.cursor;
        // Seqlock close: stamp = 2w+2, a release after the message bytes;
        // pairs with the subscriber's acquire load of the stamp.
        self.stamp(w).store(2 * w + 2, Ordering::Release);
        self.cursor = w + 1;
        self.claimed = false;
        // Fast path: a held-back message on an asymmetric ring whose only
        // entry ever registered is awake. The two loads are H1's: table_high
        // first, then the one sleeper flag below it (a compiler barrier keeps
        // them after the stamp store; the subscriber's membarrier orders the
        // CPU).
        if self.cursor - self.published < self.batch && !self.strong && self.cursor & 0xffff != 0 {
            wait::light_fence();
            if self.seg.u32(OFF_TABLE_HIGH).load(Ordering::SeqCst) <= 1
                && self.seg.sleeper(0).load(Ordering::SeqCst) == 0
            {
                return Ok(());
            }
        }
        self.after_commit();
        Ok(())
    }

    /// The rest of commit: publish a full batch; for a held-back message,
    /// handshake H1 with a parking subscriber.
    fn after_commit(&mut self) {
        if self.cursor - self.published >= self.batch {
            self.publish();
        } else {
            // Held back (batching): handshake H1 with a parking subscriber,
            // which stores its sleeper flag and then looks at this stamp. A
            // full fence between the stamp store and the flag loads on a
            // strong ring; on an asymmetric one the subscriber's membarrier
            // provides it, and a compiler barrier keeps the order.
            if self.strong {
                wait::full_fence();
            } else {
                wait::light_fence();
            }
            if self.any_sleeper() {
                self.publish();
            }
        }
        if self.cursor & 0xffff == 0 {
            // Informational; no ordering needed.
            self.seg
                .u64(OFF_PROD_HEARTBEAT)
                .store(sys::mono_ns(), Ordering::Relaxed);
        }
    }

    /// Stores the tail, wakes sleepers and notices registry changes.
    pub fn publish(&mut self) {
        if self.cursor != self.published {
            // Tail store: a release for every slot below it (pairs with the
            // subscriber's acquire tail load) and the store side of H1 (then
            // the sleeper flags) and H5 (then reg_epoch). Sequentially
            // consistent (an XCHG) on a strong ring; a release and a
            // compiler barrier on an asymmetric one, whose parking
            // subscribers and registrants issue a membarrier instead.
            let tail = self.seg.u64(OFF_TAIL);
            if self.strong {
                tail.store(self.cursor, Ordering::SeqCst);
            } else {
                tail.store(self.cursor, Ordering::Release);
                wait::light_fence();
            }
            self.published = self.cursor;
            if self.any_sleeper() {
                self.wake_subscribers();
            }
        }
        // H5: tail store above, then the epoch load (acquire; pairs with the
        // registrant's epoch store). Either we see its registration here and
        // rescan before the next claim, or it saw our tail.
        let e = self.seg.u64(OFF_REG_EPOCH).load(Ordering::SeqCst);
        if e != self.epoch {
            self.epoch = e;
            self.limit = 0;
        }
    }

    /// How many entries were ever registered: `table_high`, loaded first
    /// (a registrant raises it before it stores `state = 1`, so before it can
    /// park: ABI.md §5.3); untrusted, so bounded by the table size.
    #[inline]
    fn table_high(&self) -> usize {
        (self.seg.u32(OFF_TABLE_HIGH).load(Ordering::SeqCst) as usize).min(self.nsubs)
    }

    /// Loads the sleeper flags below `table_high`: the load side of H1,
    /// pairing with the subscriber's flag store (sequentially consistent, a
    /// plain MOV on x86-64, so that a strong ring's fence before it is a
    /// Dekker pair in the language's model too).
    #[inline]
    fn any_sleeper(&self) -> bool {
        (0..self.table_high()).any(|i| self.seg.sleeper(i).load(Ordering::SeqCst) != 0)
    }

    /// Advances the notify eventcount (after the change a sleeper waits
    /// for) and wakes every subscriber parked on it. The producer is its
    /// only writer: a load and a store, no read-modify-write.
    fn wake_subscribers(&self) {
        let n = self.seg.u32(OFF_NOTIFY);
        n.store(n.load(Ordering::Relaxed).wrapping_add(1), Ordering::Release);
        sys::futex_wake(n, i32::MAX as u32);
    }

    pub fn flush(&mut self) {
        self.publish();
    }

    fn make_room(&mut self, w: u64) -> Result<()> {
        self.scan(w);
        if w < self.limit {
            return Ok(());
        }
        // Never wait or reject while holding unpublished messages.
        self.flush();
        self.scan(w);
        if w < self.limit {
            return Ok(());
        }
        match self.policy {
            Policy::DropNewest => {
                self.dropped += 1;
                // Statistic; single writer.
                self.seg
                    .u64(OFF_DROPPED_NEWEST)
                    .store(self.dropped, Ordering::Relaxed);
                Err(Error::Full)
            }
            _ => self.wait(w),
        }
    }

    /// Recomputes `limit` from the table (ABI.md §8.2) and returns the entry
    /// that bounds it and its raw head.
    fn scan(&mut self, w: u64) -> (Option<usize>, u64) {
        // The epoch first (acquire): the entries loaded below are at least
        // as new as the registrations it counts.
        let epoch = self.seg.u64(OFF_REG_EPOCH).load(Ordering::Acquire);
        self.epoch = epoch;
        let mut blocker = None;
        let mut min_eff = 0u64;
        let mut head = 0u64;
        for i in 0..self.table_high() {
            let e = self.seg.entry_off(i);
            // State, generation, eviction word, then max_lag and head:
            // acquire loads pairing with the registrant's release stores
            // (head and max_lag before state).
            let st = self.seg.u32(e + ENT_STATE).load(Ordering::Acquire);
            if st != ENT_JOINING && st != ENT_ACTIVE {
                continue;
            }
            let gen = self.seg.u64(e + ENT_GEN).load(Ordering::Acquire);
            if self.seg.evicted(i).load(Ordering::Relaxed) == gen {
                continue; // evicted or reclaimed
            }
            if !self.strong
                && self.seg.u32(e + ENT_FLAGS).load(Ordering::Acquire) & ENT_FLAG_STRONG != 0
            {
                self.become_strong();
            }
            if self.policy == Policy::DropOldest
                || self.seg.u64(e + ENT_MAX_LAG).load(Ordering::Acquire) != 0
            {
                continue; // lossy subscribers never hold the producer back
            }
            let h = self.seg.u64(e + ENT_HEAD).load(Ordering::Acquire);
            if h > w {
                // Beyond every committed index: impossible for an honest
                // subscriber; evict rather than trust it.
                self.evict(i, gen);
                continue;
            }
            // Behind by more than a lap (a registration in flight): hold it
            // at exactly full, so the producer waits instead of overwriting.
            let eff = if w - h > self.capacity {
                w - self.capacity
            } else {
                h
            };
            if blocker.is_none() || eff < min_eff {
                blocker = Some(i);
                min_eff = eff;
                head = h;
            }
        }
        self.limit = match blocker {
            None => u64::MAX,
            Some(_) => min_eff + self.capacity,
        };
        // Acknowledge the registrations this scan saw: a release after the
        // table loads; a membarrier-less registrant waits for it.
        self.seg
            .u64(OFF_PROD_SCAN_EPOCH)
            .store(epoch, Ordering::Release);
        (blocker, head)
    }

    fn become_strong(&mut self) {
        self.strong = true;
        self.seg
            .u32(OFF_PROD_FENCES)
            .store(FENCES_STRONG, Ordering::SeqCst);
    }

    /// Blocks until slot `w` is free, the timeout expires, or the blocking
    /// subscriber is reclaimed or evicted. It needs no lock (ABI.md §9).
    fn wait(&mut self, w: u64) -> Result<()> {
        let deadline = self.timeout.map(|t| Instant::now() + t);
        let mut last: (Option<usize>, u64) = (None, 0);
        let mut since = Instant::now();
        let mut spins = 0u32;
        loop {
            let (blocker, head) = self.scan(w);
            if w < self.limit {
                return Ok(());
            }
            let Some(b) = blocker else { return Ok(()) };
            let now = Instant::now();
            if (blocker, head) != last {
                last = (blocker, head);
                since = now;
            }
            if let Some(d) = deadline {
                if now > d {
                    return Err(Error::Timeout {
                        ring: self.seg.name.clone(),
                        detail: format!(
                            "publish waited {:?} for subscriber {b}",
                            self.timeout.unwrap_or_default()
                        ),
                    });
                }
            }
            if spins < self.spin {
                wait::spin_pause(spins, self.spin);
                spins += 1;
                continue;
            }
            let e = self.seg.entry_off(b);
            let gen = self.seg.u64(e + ENT_GEN).load(Ordering::Acquire);
            if !self.seg.entry_alive(b) {
                self.evict(b, gen); // dead: the kernel dropped its lock
                continue;
            }
            let stalled = now.duration_since(since);
            if stalled > self.liveness {
                self.evict(b, gen); // alive but stalled
                continue;
            }
            let mut sleep = WATCHDOG.min(self.liveness - stalled + Duration::from_millis(1));
            if let Some(d) = deadline {
                sleep = sleep.min(d.saturating_duration_since(now) + Duration::from_millis(1));
            }
            let wake = self.seg.u32(e + ENT_WAKE);
            // Wake once a quarter of the ring is free (at least the slot we
            // need): stored before the flag.
            let want = (w + 1)
                .wrapping_sub(self.capacity)
                .wrapping_add((self.capacity / 4).max(1) - 1);
            self.seg
                .u32(OFF_PROD_WAIT_ENTRY)
                .store(b as u32, Ordering::Relaxed);
            self.seg
                .u64(OFF_PROD_WAIT_HEAD)
                .store(want, Ordering::Relaxed);
            // H2 (heavy side): sleeping = 1 (sequentially consistent), on an
            // asymmetric ring a membarrier for the subscribers' fence-free
            // head stores, then load the entry's wake count and re-check its
            // head, state and generation. The subscriber stores its head,
            // loads sleeping, then advances the count and wakes us: either we
            // see its head here, or futex_wait sees the new count.
            self.seg.u32(OFF_PROD_SLEEPING).store(1, Ordering::SeqCst);
            if self.asym {
                sys::heavy_barrier();
            }
            let ev = wake.load(Ordering::SeqCst);
            let unchanged = self.seg.u64(e + ENT_HEAD).load(Ordering::Acquire) == head
                && self.seg.u32(e + ENT_STATE).load(Ordering::Acquire) != ENT_FREE
                && self.seg.u64(e + ENT_GEN).load(Ordering::Acquire) == gen;
            if unchanged && sys::futex_wait(wake, ev, sleep) {
                self.watchdog_fires += 1;
            }
            self.seg.u32(OFF_PROD_SLEEPING).store(0, Ordering::Relaxed);
            self.seg
                .u64(OFF_PROD_HEARTBEAT)
                .store(sys::mono_ns(), Ordering::Relaxed);
        }
    }

    /// Stops entry `i`'s generation `gen` from holding the producer back:
    /// one store of the producer's own eviction word, no lock (ABI.md §9).
    fn evict(&mut self, i: usize, gen: u64) {
        self.seg.evicted(i).store(gen, Ordering::SeqCst);
        self.evictions += 1;
        self.limit = 0;
        // An evicted subscriber parked on notify learns it now.
        self.wake_subscribers();
    }

    /// Publishes what is pending and marks the ring closed (H4: the final
    /// tail, then `prod_state = 2`, then the eventcount).
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.claimed = false;
        self.flush();
        self.seg
            .u32(OFF_PROD_STATE)
            .store(PROD_CLOSED, Ordering::Release);
        self.wake_subscribers();
        self.closed = true;
    }

    /// Entries that registered completely, alive and not evicted (ABI.md
    /// §8.4 "Registered"). It scans first, which acknowledges membarrier-
    /// less registrants waiting for the producer.
    pub fn active_subscribers(&mut self) -> usize {
        let w = self.cursor;
        self.scan(w);
        (0..self.table_high())
            .filter(|&i| {
                let e = self.seg.entry_off(i);
                self.seg.u32(e + ENT_STATE).load(Ordering::Acquire) == ENT_ACTIVE
                    && self.seg.evicted(i).load(Ordering::Relaxed)
                        != self.seg.u64(e + ENT_GEN).load(Ordering::Acquire)
                    && self.seg.entry_alive(i)
            })
            .count()
    }
}

/// The single producer of a ring of `T`: the segment's creator and owner
/// (closing it unlinks the name). Not for concurrent use (`Send`, not
/// `Sync`); dropping it closes it.
///
/// ```no_run
/// # use tachyon_ring::Message;
/// # fn f<T: Message + Default>() -> tachyon_ring::ring::Result<()> {
/// use tachyon_ring::ring::{Options, Publisher};
/// let mut publisher = Publisher::<T>::create("telemetry", Options::default())?;
/// let slot = publisher.claim()?; // &mut T, in place in the ring
/// *slot = T::default();
/// publisher.commit()?;
/// publisher.publish(&T::default())?; // a copy
/// publisher.close()?;
/// # Ok(()) }
/// ```
pub struct Publisher<T: Message> {
    p: Producer,
    owner: bool,
    sealed: Option<Arc<SealedShare>>,
    _t: PhantomData<fn(T) -> T>,
}

impl<T: Message> Publisher<T> {
    const LAYOUT: () = assert!(
        T::SIZE == std::mem::size_of::<T>() && T::ALIGN == std::mem::align_of::<T>(),
        "Message::SIZE/ALIGN disagree with the Rust type"
    );

    /// Creates the named ring for `T` and returns its publisher. The name
    /// must pass [`validate_name`]; an existing segment of that name is
    /// [`Error::Exists`] (which says whether its publisher is alive).
    pub fn create(name: &str, opts: Options) -> Result<Self> {
        Self::create_with(name, opts, false)
    }

    pub(crate) fn create_with(name: &str, opts: Options, force_asym: bool) -> Result<Self> {
        let () = Self::LAYOUT;
        validate_name(name)?;
        let hdr = opts.header(name, Identity::of::<T>(), force_asym)?;
        let seg = Segment::create(name, &hdr, opts.mode)?;
        Ok(Publisher {
            p: Producer::new(seg, &opts),
            owner: true,
            sealed: None,
            _t: PhantomData,
        })
    }

    pub(crate) fn from_sealed(seg: Segment, opts: &Options, share: Arc<SealedShare>) -> Self {
        let () = Self::LAYOUT;
        Publisher {
            p: Producer::new(seg, opts),
            owner: false,
            sealed: Some(share),
            _t: PhantomData,
        }
    }

    /// The ring's name.
    pub fn name(&self) -> &str {
        &self.p.seg.name
    }

    /// Reserves the next slot and returns it for filling in place;
    /// [`commit`](Self::commit) publishes it. A claim without a commit
    /// returns the same slot again. On a full ring it waits (Block, up to
    /// `Options::timeout`: [`Error::Timeout`]) or returns [`Error::Full`]
    /// (`drop_newest`); `drop_oldest` never waits.
    ///
    /// The slot holds whatever was there before (a previous message).
    #[inline]
    pub fn claim(&mut self) -> Result<&mut T> {
        let w = self.p.claim()?;
        // SAFETY: the slot's message bytes are aligned to T::ALIGN (ABI.md
        // §3: page-aligned mapping, slots_offset and slot_size multiples of
        // the alignment, slot_msg_offset = max(8, align)) and hold SIZE
        // bytes; any bytes are a valid T (FromBytes). The slot is ours until
        // commit: subscribers read it only once its stamp is 2w+2, except a
        // lossy reader of a lapped slot, which re-checks the stamp and
        // discards what it copied (in another process; within one process
        // such a reader and this writer race, as in every seqlock).
        Ok(unsafe { &mut *self.p.msg(w).cast::<T>() })
    }

    /// Publishes the claimed slot (the tail becomes visible per the batch).
    #[inline]
    pub fn commit(&mut self) -> Result<()> {
        self.p.commit()
    }

    /// Copies `msg` into the next slot and commits it.
    #[inline]
    pub fn publish(&mut self, msg: &T) -> Result<()> {
        let w = self.p.claim()?;
        // SAFETY: the slot's message region is 8-aligned and spans
        // round_up(SIZE, 8) bytes (ABI.md §3).
        unsafe { wait::copy_to_slot(self.p.msg(w), msg) };
        self.p.commit()
    }

    /// Makes every committed message visible to subscribers now.
    pub fn flush(&mut self) {
        self.p.flush();
    }

    /// Subscribers registered (every message published from now on reaches
    /// them), alive and not evicted.
    pub fn subscribers(&mut self) -> usize {
        self.p.active_subscribers()
    }

    /// Waits until at least `n` subscribers are registered, scanning the
    /// table meanwhile; [`Error::Timeout`] after `timeout`.
    pub fn wait_subscribers(&mut self, n: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let have = self.p.active_subscribers();
            if have >= n {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    ring: self.name().to_owned(),
                    detail: format!("{have} of {n} subscribers registered after {timeout:?}"),
                });
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Messages committed.
    #[allow(clippy::misnamed_getters)] // committed, not the last tail stored
    pub fn published(&self) -> u64 {
        self.p.cursor
    }

    /// Messages `drop_newest` refused.
    pub fn dropped(&self) -> u64 {
        self.p.dropped
    }

    /// Flushes, marks the ring closed (subscribers drain it, then get
    /// [`Error::Closed`]), releases the segment and, for the owner of a
    /// named ring, unlinks its name.
    pub fn close(mut self) -> Result<()> {
        self.close_inner()
    }

    fn close_inner(&mut self) -> Result<()> {
        if self.p.closed {
            return Ok(());
        }
        self.p.close();
        if let Some(s) = &self.sealed {
            s.close();
        }
        if self.owner {
            self.p.seg.unlink_owned()
        } else {
            Ok(())
        }
    }

    #[cfg(test)]
    pub(crate) fn producer(&mut self) -> &mut Producer {
        &mut self.p
    }

    pub(crate) fn sealed_share(&self) -> Option<&Arc<SealedShare>> {
        self.sealed.as_ref()
    }
}

impl<T: Message> Drop for Publisher<T> {
    fn drop(&mut self) {
        let _ = self.close_inner();
    }
}

impl<T: Message> std::fmt::Debug for Publisher<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("ring", &self.p.seg.name)
            .field("message", &T::NAME)
            .field("published", &self.p.cursor)
            .finish_non_exhaustive()
    }
}
