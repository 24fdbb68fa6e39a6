// The untyped producer side of the ring protocol (runtime/ABI.md §8.1-8.3,
// §9): claim, commit, publish, the table scan, backpressure, waiting and
// eviction. The producer never writes the subscriber table and never takes a
// lock: what another process does with the segment's locks cannot hold it
// past its bounds.
#pragma once

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include "tachyon/abi.hpp"
#include "tachyon/error.hpp"
#include "tachyon/options.hpp"
#include "tachyon/segment.hpp"
#include "tachyon/wait.hpp"

namespace tachyon {

namespace detail {

/// The untyped producer side of ABI.md §8.1-8.3. Single-threaded.
class Producer {
public:
    Producer(Segment seg, const Options& o) : s_(std::move(seg)) {
        const abi::Geometry& g = s_.geo();
        slots_ = s_.base() + g.slots_off;
        slot_size_ = g.slot_size;
        msg_off_ = g.slot_msg_off;
        mask_ = g.mask;
        capacity_ = g.capacity;
        nsubs_ = g.max_subs;
        policy_ = s_.header().policy;
        batch_ = s_.header().batch;
        timeout_ = o.timeout;
        liveness_ = std::chrono::nanoseconds(static_cast<std::int64_t>(s_.header().liveness_ns));
        spin_ = std::max(o.spin, 0);
        asym_ = s_.header().asym_fences;
        strong_ = !asym_;
        if (policy_ == Policy::drop_oldest) limit_ = kUnbounded;  // never waits; scans when the table changes
    }

    [[nodiscard]] Result<std::byte*> claim() noexcept {
        if (closed_) return Errc::closed;
        const std::uint64_t w = cursor_;
        if (claimed_) return msg(w);
        if (w >= limit_) {
            if (const Errc e = make_room(w); e != Errc::ok) return e;
        }
        // Seqlock open (§8.1 step 1): stamp = 2w+1, then a release fence so
        // the message bytes written next cannot become visible before it.
        // Pairs with the subscriber's read fence + stamp re-check.
        stamp(w).store(2 * w + 1, std::memory_order_relaxed);
        seqlock_write_fence();
        claimed_ = true;
        return msg(w);
    }

    [[nodiscard]] Errc commit() noexcept {
        if (closed_) return Errc::closed;
        if (!claimed_) return Errc::claimed;
        const std::uint64_t w = cursor_;
        // Seqlock close: stamp = 2w+2, a release after the message bytes.
        // Pairs with the subscriber's first stamp load (acquire).
        stamp(w).store(2 * w + 2, std::memory_order_release);
        cursor_ = w + 1;
        claimed_ = false;
        if (cursor_ - published_ >= batch_) {
            publish();
        } else {
            // Held back (batching). H1 with a parking subscriber, which
            // stores its sleeper flag and then looks at this stamp (§8.5
            // step 1b): on a strong ring a full fence between the stamp
            // store and the flag loads; on an asymmetric one the parking
            // subscriber's membarrier stands in for it.
            if (strong_) full_fence();
            if (any_sleeper()) publish();
        }
        if ((++commits_ & 0xffff) == 0) {
            // Informational heartbeat; single writer, no pairing.
            s_.u64(abi::kOffProdHeartbeat).store(mono_now(), std::memory_order_relaxed);
        }
        return Errc::ok;
    }

    /// Stores the tail, wakes sleepers, notices registry changes (§8.1.4).
    void publish() noexcept {
        if (cursor_ != published_) {
            // The tail store: a release of every slot below it (pairs with
            // the subscriber's tail load), and the store side of H1 (then
            // the sleeper flags) and H5 (then reg_epoch). Strong: a full
            // fence before those loads; asymmetric: a compiler barrier, the
            // parking and registering sides issue membarrier.
            s_.u64(abi::kOffTail).store(cursor_, std::memory_order_release);
            if (strong_) full_fence(); else light_fence();
            published_ = cursor_;
            if (any_sleeper()) wake_subscribers();
        }
        // H5 load: either we see a registration here and rescan before the
        // next claim, or the registrant saw our tail (ABI.md §8.4).
        if (const std::uint64_t e = s_.u64(abi::kOffRegEpoch).load(std::memory_order_acquire); e != epoch_) {
            epoch_ = e;
            limit_ = 0;
        }
    }

    void flush() noexcept {
        if (!closed_) publish();
    }

    /// Publishes what is pending, marks the ring closed and wakes every
    /// sleeper (ABI.md §2 "Close", H4); then removes a named ring's name and
    /// releases the segment. Subscribers keep their own references to the
    /// mapping and drain it.
    void close() noexcept {
        if (closed_) return;
        claimed_ = false;  // a claimed slot stays unpublished: readers never see it
        publish();
        // H4: closed after the final tail, then the eventcount: a subscriber
        // that loads the eventcount, then sees closed, reloads the tail.
        s_.u32(abi::kOffProdState).store(abi::kProdClosed, std::memory_order_release);
        wake_subscribers();
        closed_ = true;
        s_.unlink_if_ours();
        s_.release();
    }

    /// Entries that are registered (ABI.md §8.4 "Registered"): active, not
    /// evicted, their owner alive. Scans the table first, which acknowledges
    /// a membarrier-less registrant waiting for the producer.
    [[nodiscard]] std::size_t active_subscribers() noexcept {
        if (closed_) return 0;
        (void)scan(cursor_);
        std::size_t n = 0;
        for (std::uint64_t i = 0, high = table_high(); i < high; ++i) {
            const std::uint64_t e = s_.geo().entry_off(i);
            // Acquire loads; pair with the registrant's state = active store.
            if (s_.u32(e + abi::kEntState).load(std::memory_order_acquire) != abi::kEntActive) continue;
            if (evicted(i, s_.u64(e + abi::kEntGen).load(std::memory_order_acquire))) continue;
            if (s_.entry_alive(i)) ++n;
        }
        return n;
    }

    [[nodiscard]] std::string describe(Errc e) const { return note_.describe(e, "publish", name_); }

    Segment& segment() noexcept { return s_; }
    [[nodiscard]] const Segment& segment() const noexcept { return s_; }
    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] std::uint64_t published() const noexcept { return cursor_; }
    [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_; }
    [[nodiscard]] std::uint64_t watchdog_fires() const noexcept { return watchdog_fires_; }
    [[nodiscard]] std::uint64_t evictions() const noexcept { return evictions_; }
    [[nodiscard]] bool strong_fences() const noexcept { return strong_; }
    [[nodiscard]] bool closed() const noexcept { return closed_; }

private:
    static constexpr std::uint64_t kUnbounded = std::numeric_limits<std::uint64_t>::max();

    [[nodiscard]] std::atomic_ref<std::uint64_t> stamp(std::uint64_t idx) const noexcept {
        return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(slots_ + (idx & mask_) * slot_size_));
    }
    [[nodiscard]] std::byte* msg(std::uint64_t idx) const noexcept {
        return slots_ + (idx & mask_) * slot_size_ + msg_off_;
    }

    /// How many entries were ever registered: the table's high water mark
    /// (ABI.md §5.3), which a registrant raises before it can park or hold
    /// the producer back. Untrusted, so bounded by the table size.
    [[nodiscard]] std::uint64_t table_high() const noexcept {
        return std::min<std::uint64_t>(s_.u32(abi::kOffTableHigh).load(std::memory_order_acquire), nsubs_);
    }

    /// H1 loads, after the tail or stamp store and its fence: pair with each
    /// subscriber's sleeper-flag store before its re-poll. Only the flags
    /// below table_high (loaded first; the fences that order a subscriber's
    /// flag store order its earlier table_high store too).
    [[nodiscard]] bool any_sleeper() const noexcept {
        for (std::uint64_t i = 0, n = table_high(); i < n; ++i) {
            if (s_.u32(s_.geo().sleeper_off(i)).load(std::memory_order_acquire) != 0) return true;
        }
        return false;
    }

    /// Advances the notify eventcount (after every change a parked
    /// subscriber waits for) and wakes every subscriber parked on it.
    void wake_subscribers() noexcept { advance_and_wake(s_.futex_word(abi::kOffNotify), INT_MAX); }

    /// Whether entry i's generation gen was evicted or reclaimed (§5.5).
    [[nodiscard]] bool evicted(std::uint64_t i, std::uint64_t gen) const noexcept {
        // Acquire; we are this word's only writer, the load is for clarity.
        return s_.u64(s_.geo().evict_word_off(i)).load(std::memory_order_acquire) == gen;
    }

    [[nodiscard]] Errc make_room(std::uint64_t w) noexcept {
        (void)scan(w);
        if (w < limit_) return Errc::ok;
        // Never wait or reject while holding unpublished messages.
        flush();
        (void)scan(w);
        if (w < limit_) return Errc::ok;
        if (policy_ == Policy::drop_newest) {
            ++dropped_;
            // Statistic, single writer.
            s_.u64(abi::kOffDroppedNewest).store(dropped_, std::memory_order_release);
            return Errc::full;
        }
        return wait(w);
    }

    struct Blocker {
        std::int64_t entry = -1;
        std::uint64_t head = 0;  // its raw head
    };

    /// Recomputes limit from the table (§8.2) and returns the entry bounding
    /// it. Also becomes strong when a membarrier-less subscriber joined
    /// (§8.6), and acknowledges the registrations it saw (scan_epoch).
    Blocker scan(std::uint64_t w) noexcept {
        // The epoch first: the entries loaded below are at least as new as
        // the registrations it counts, which is what scan_epoch promises.
        // Acquire; pairs with the registrant's epoch store.
        const std::uint64_t epoch = s_.u64(abi::kOffRegEpoch).load(std::memory_order_acquire);
        epoch_ = epoch;
        Blocker b;
        std::uint64_t min_head = 0;
        for (std::uint64_t i = 0, high = table_high(); i < high; ++i) {
            const std::uint64_t e = s_.geo().entry_off(i);
            // State, generation, eviction word, flags, max_lag, head: acquire
            // loads, each once; pair with the registrant's stores of head and
            // max_lag before state, and with the owner's head stores.
            const std::uint32_t st = s_.u32(e + abi::kEntState).load(std::memory_order_acquire);
            if (st != abi::kEntJoining && st != abi::kEntActive) continue;
            const std::uint64_t gen = s_.u64(e + abi::kEntGen).load(std::memory_order_acquire);
            if (evicted(i, gen)) continue;
            if (!strong_ && (s_.u32(e + abi::kEntFlags).load(std::memory_order_acquire) & abi::kEntFlagStrong) != 0)
                become_strong();
            if (policy_ == Policy::drop_oldest || s_.u64(e + abi::kEntMaxLag).load(std::memory_order_acquire) != 0)
                continue;  // lossy subscribers never hold the producer back
            const std::uint64_t h = s_.u64(e + abi::kEntHead).load(std::memory_order_acquire);
            if (h > w) {
                // Beyond the committed count: impossible for an honest reader.
                evict(i, gen);
                continue;
            }
            std::uint64_t eff = h;
            if (w - h > capacity_) eff = w - capacity_;  // a registration in flight: hold at exactly full
            if (b.entry < 0 || eff < min_head) {
                b.entry = static_cast<std::int64_t>(i);
                min_head = eff;
                b.head = h;
            }
        }
        limit_ = b.entry < 0 ? kUnbounded : min_head + capacity_;
        // Release after the table loads: a membarrier-less registrant waits
        // for this acknowledgement (§8.4 step 4).
        s_.u64(abi::kOffProdScanEpoch).store(epoch, std::memory_order_release);
        return b;
    }

    /// Switches the hot side to full fences for the rest of this
    /// producer's life: a subscriber that cannot issue membarrier joined.
    /// prod_fences is stored before the scan's scan_epoch.
    void become_strong() noexcept {
        strong_ = true;
        s_.u32(abi::kOffProdFences).store(abi::kProdFencesStrong, std::memory_order_release);
    }

    /// Waits (block policy) until slot w is free (§8.3 "Producer parks").
    /// Needs no lock, so nothing another process does with the segment's
    /// locks holds it past the liveness timeout (§9).
    [[nodiscard]] Errc wait(std::uint64_t w) noexcept {
        const bool bounded = timeout_ > std::chrono::nanoseconds::zero();
        const auto deadline = bounded ? deadline_after(timeout_) : Clock::time_point::max();
        std::int64_t last_blocker = -1;
        std::uint64_t last_head = 0;
        Clock::time_point since{};
        for (int spins = 0;; ++spins) {
            const Blocker b = scan(w);
            if (w < limit_) return Errc::ok;
            const auto now = Clock::now();
            if (b.entry != last_blocker || b.head != last_head) {
                last_blocker = b.entry;
                last_head = b.head;
                since = now;
            }
            if (bounded && now >= deadline)
                return note_.note(Errc::timeout, "publish", name_,
                                  {"after ", Num(std::chrono::duration_cast<std::chrono::milliseconds>(timeout_).count()),
                                   " ms waiting for subscriber ", Num(b.entry)});
            if (spins < spin_) {
                if (spins >= spin_ - kYieldPolls) yield();
                continue;
            }
            const auto i = static_cast<std::uint64_t>(b.entry);
            const std::uint64_t e = s_.geo().entry_off(i);
            const std::uint64_t gen = s_.u64(e + abi::kEntGen).load(std::memory_order_acquire);
            if (!s_.entry_alive(i)) {
                evict(i, gen);  // dead: the kernel dropped its lock (reclaim)
                continue;
            }
            if (now - since > liveness_) {
                evict(i, gen);  // alive but stalled
                continue;
            }
            auto sleep = std::min<std::chrono::nanoseconds>(kWatchdog, liveness_ - (now - since) + 1ms);
            if (bounded) sleep = std::min<std::chrono::nanoseconds>(sleep, deadline - now + 1ms);
            // Wake once a quarter of the ring is free (at least one slot).
            const std::uint64_t want = w + 1 - capacity_ + (std::max<std::uint64_t>(capacity_ / 4, 1) - 1);
            std::uint32_t* wake = s_.futex_word(e + abi::kEntWake);
            // H2, heavy side: wait_entry, wait_head, then sleeping = 1; a full
            // fence (and on an asymmetric ring a membarrier for the
            // subscribers' fence-free head stores); then the entry's wake
            // eventcount, and its head, state, generation re-checked. The
            // subscriber stores its head (or state), then loads sleeping,
            // then advances the eventcount and wakes us: either we see its
            // change here, or FUTEX_WAIT sees the new count.
            s_.u32(abi::kOffProdWaitEntry).store(static_cast<std::uint32_t>(i), std::memory_order_release);
            s_.u64(abi::kOffProdWaitHead).store(want, std::memory_order_release);
            s_.u32(abi::kOffProdSleeping).store(1, std::memory_order_release);
            full_fence();
            if (asym_) heavy_barrier();
            const std::uint32_t ev = std::atomic_ref<std::uint32_t>(*wake).load(std::memory_order_acquire);
            if (s_.u64(e + abi::kEntHead).load(std::memory_order_acquire) == b.head &&
                s_.u32(e + abi::kEntState).load(std::memory_order_acquire) != abi::kEntFree &&
                s_.u64(e + abi::kEntGen).load(std::memory_order_acquire) == gen) {
                if (futex_wait(wake, ev, sleep)) ++watchdog_fires_;
            }
            // Release; the subscriber's next H2 load sees we are awake.
            s_.u32(abi::kOffProdSleeping).store(0, std::memory_order_release);
            s_.u64(abi::kOffProdHeartbeat).store(mono_now(), std::memory_order_relaxed);  // informational
        }
    }

    /// Takes entry i's generation gen out of the producer's backpressure
    /// (§9): reclaims a dead owner's entry, or evicts a live one that stalled
    /// or published an impossible head. One store to the eviction table,
    /// of which the producer is the only writer: no lock, no cooperation.
    void evict(std::uint64_t i, std::uint64_t gen) noexcept {
        s_.u64(s_.geo().evict_word_off(i)).store(gen, std::memory_order_release);
        ++evictions_;
        limit_ = 0;
        // A parked evictee learns it now, not at its next watchdog.
        wake_subscribers();
    }

    Segment s_;
    std::string name_ = s_.name();
    ErrorNote note_;
    std::byte* slots_ = nullptr;
    std::uint64_t slot_size_ = 0, msg_off_ = 0, mask_ = 0, capacity_ = 0, nsubs_ = 0;
    Policy policy_ = Policy::block;
    std::uint64_t batch_ = 1;
    std::chrono::nanoseconds timeout_{0}, liveness_{0};
    int spin_ = kDefaultSpin;
    bool asym_ = false;    // the ring's header says asymmetric fences
    bool strong_ = true;   // this producer's hot side fences (§8.6)

    std::uint64_t cursor_ = 0;     // next index to write
    std::uint64_t published_ = 0;  // last tail stored
    std::uint64_t limit_ = 0;      // cursor may advance below limit without a scan
    std::uint64_t epoch_ = 0;      // registry epoch seen last
    std::uint64_t dropped_ = 0;
    std::uint64_t commits_ = 0;
    std::uint64_t watchdog_fires_ = 0;
    std::uint64_t evictions_ = 0;
    bool claimed_ = false;
    bool closed_ = false;
};

}  // namespace detail
}  // namespace tachyon
