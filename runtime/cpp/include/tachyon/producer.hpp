// The untyped producer side of the ring protocol (runtime/ABI.md §8.1-8.3):
// claim, commit, publish, the table scan, backpressure and eviction.
#pragma once

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <limits>

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
        if (policy_ == Policy::drop_oldest) limit_ = kUnbounded;  // never waits, never scans
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
        if (cursor_ - published_ >= batch_ || any_sleeper()) publish();
        if ((++commits_ & 0xffff) == 0) {
            // Informational heartbeat; single writer, no pairing.
            s_.u64(abi::kOffProdHeartbeat).store(mono_now(), std::memory_order_relaxed);
        }
        return Errc::ok;
    }

    /// Stores the tail, wakes sleepers, notices registry changes (§8.1.4).
    void publish() noexcept {
        if (cursor_ != published_) {
            // H1/H5 store: seq_cst (release for every slot below it, pairing
            // with the subscriber's tail load; then the StoreLoad before the
            // sleeper-flag loads and the epoch load below).
            s_.u64(abi::kOffTail).store(cursor_, std::memory_order_seq_cst);
            published_ = cursor_;
            if (any_sleeper()) futex_wake(s_.futex_word(abi::kOffTail), INT_MAX);
        }
        // H5 load: pairs with the registrant's epoch store (seq_cst) before
        // its tail load: either we see the registration, or it saw our tail.
        if (const std::uint64_t e = s_.u64(abi::kOffRegEpoch).load(std::memory_order_seq_cst);
            e != epoch_ && policy_ != Policy::drop_oldest) {
            epoch_ = e;
            limit_ = 0;
        }
    }

    void flush() noexcept {
        if (!closed_) publish();
    }

    /// Publishes what is pending, marks the ring closed, removes its name
    /// and releases the segment (ABI.md §2 "Close"). Subscribers keep their
    /// own references to the mapping and drain it.
    void close() noexcept {
        if (closed_) return;
        claimed_ = false;  // a claimed slot stays unpublished: readers never see it
        publish();
        // H4: closed is stored after the final tail (both seq_cst); pairs
        // with the subscriber's prod_state load, then tail reload.
        s_.u32(abi::kOffProdState).store(abi::kProdClosed, std::memory_order_seq_cst);
        futex_wake(s_.futex_word(abi::kOffTail), INT_MAX);
        closed_ = true;
        s_.unlink_if_ours();
        s_.release();
    }

    [[nodiscard]] std::size_t active_subscribers() const noexcept {
        if (closed_) return 0;
        std::size_t n = 0;
        for (std::uint64_t i = 0; i < nsubs_; ++i) {
            // Acquire; pairs with the registrant's state = active store.
            if (s_.u32(s_.geo().entry_off(i) + abi::kEntState).load(std::memory_order_acquire) == abi::kEntActive) ++n;
        }
        return n;
    }

    Segment& segment() noexcept { return s_; }
    [[nodiscard]] const Segment& segment() const noexcept { return s_; }
    [[nodiscard]] std::uint64_t published() const noexcept { return cursor_; }
    [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_; }
    [[nodiscard]] std::uint64_t watchdog_fires() const noexcept { return watchdog_fires_; }
    [[nodiscard]] std::uint64_t evictions() const noexcept { return evictions_; }
    [[nodiscard]] bool closed() const noexcept { return closed_; }

private:
    static constexpr std::uint64_t kUnbounded = std::numeric_limits<std::uint64_t>::max();

    [[nodiscard]] std::atomic_ref<std::uint64_t> stamp(std::uint64_t idx) const noexcept {
        return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(slots_ + (idx & mask_) * slot_size_));
    }
    [[nodiscard]] std::byte* msg(std::uint64_t idx) const noexcept {
        return slots_ + (idx & mask_) * slot_size_ + msg_off_;
    }

    /// H1 loads (seq_cst, after the tail store): pair with each
    /// subscriber's sleeper-flag store before its tail load.
    [[nodiscard]] bool any_sleeper() const noexcept {
        const std::uint64_t base = s_.geo().sleepers_off;
        for (std::uint64_t i = 0; i < nsubs_; ++i) {
            if (s_.u32(base + 4 * i).load(std::memory_order_seq_cst) != 0) return true;
        }
        return false;
    }

    [[nodiscard]] Errc make_room(std::uint64_t w) noexcept {
        scan(w);
        if (w < limit_) return Errc::ok;
        // Never wait or reject while holding unpublished messages.
        flush();
        scan(w);
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
        std::uint64_t head = 0;
    };

    /// Recomputes limit from the table (§8.2); returns the bounding entry.
    Blocker scan(std::uint64_t w) noexcept {
        Blocker b;
        std::uint64_t min_head = 0;
        for (std::uint64_t i = 0; i < nsubs_; ++i) {
            const std::uint64_t e = s_.geo().entry_off(i);
            // State, then max_lag, then head (acquire loads, each once);
            // pair with the registrant's stores of head and max_lag before
            // state = active, and with the owner's head stores (release).
            if (s_.u32(e + abi::kEntState).load(std::memory_order_acquire) != abi::kEntActive) continue;
            if (s_.u64(e + abi::kEntMaxLag).load(std::memory_order_acquire) != 0) continue;  // lossy
            const std::uint64_t h = s_.u64(e + abi::kEntHead).load(std::memory_order_seq_cst);
            if (h > w) {
                // Beyond the committed count: impossible for an honest reader.
                remove(i, s_.u64(e + abi::kEntGen).load(std::memory_order_acquire), abi::kEntEvicted);
                continue;
            }
            std::uint64_t eff = h;
            if (w - h > capacity_) eff = w - capacity_;  // registration in flight
            if (b.entry < 0 || eff < min_head) {
                b.entry = static_cast<std::int64_t>(i);
                min_head = eff;
                b.head = h;
            }
        }
        limit_ = b.entry < 0 ? kUnbounded : min_head + capacity_;
        return b;
    }

    /// Waits (block policy) until slot w is free (§8.3 "Producer parks").
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
            if (bounded && now >= deadline) return Errc::timeout;
            if (spins < spin_) {
                if (spins >= spin_ - kYieldPolls) yield();
                continue;
            }
            const auto i = static_cast<std::uint64_t>(b.entry);
            const std::uint64_t e = s_.geo().entry_off(i);
            const std::uint64_t gen = s_.u64(e + abi::kEntGen).load(std::memory_order_acquire);
            if (!s_.entry_alive(i)) {
                remove(i, gen, abi::kEntFree);  // dead: the kernel dropped its lock
                continue;
            }
            if (now - since > liveness_) {
                remove(i, gen, abi::kEntEvicted);  // alive but stalled
                continue;
            }
            auto sleep = std::min<std::chrono::nanoseconds>(kWatchdog, liveness_ - (now - since) + 1ms);
            if (bounded) sleep = std::min<std::chrono::nanoseconds>(sleep, deadline - now + 1ms);
            // Wake once a quarter of the ring is free (at least one slot).
            const std::uint64_t want = w + 1 - capacity_ + (std::max<std::uint64_t>(capacity_ / 4, 1) - 1);
            // H2 stores (seq_cst): wait_entry, wait_head, then sleeping = 1;
            // pair with the subscriber's head store, then prod_sleeping load
            // (then wait_entry, wait_head).
            s_.u32(abi::kOffProdWaitEntry).store(static_cast<std::uint32_t>(i), std::memory_order_seq_cst);
            s_.u64(abi::kOffProdWaitHead).store(want, std::memory_order_seq_cst);
            s_.u32(abi::kOffProdSleeping).store(1, std::memory_order_seq_cst);
            // H2 loads (seq_cst): the blocker's head, state, generation.
            const std::uint64_t h = s_.u64(e + abi::kEntHead).load(std::memory_order_seq_cst);
            if (h == b.head && s_.u32(e + abi::kEntState).load(std::memory_order_seq_cst) == abi::kEntActive &&
                s_.u64(e + abi::kEntGen).load(std::memory_order_seq_cst) == gen) {
                if (futex_wait(s_.futex_word(e + abi::kEntHead), static_cast<std::uint32_t>(h), sleep))
                    ++watchdog_fires_;
            }
            // Release; the subscriber's next H2 load sees we are awake.
            s_.u32(abi::kOffProdSleeping).store(0, std::memory_order_release);
            s_.u64(abi::kOffProdHeartbeat).store(mono_now(), std::memory_order_relaxed);  // informational
        }
    }

    /// Reclaims (kEntFree: owner dead) or evicts (kEntEvicted: owner alive)
    /// entry i if it still holds generation gen, under the registry lock
    /// (§9). If the lock cannot be had quickly, it is retried later.
    void remove(std::uint64_t i, std::uint64_t gen, std::uint32_t new_state) noexcept {
        if (!s_.lock_registry(50ms)) return;
        const std::uint64_t e = s_.geo().entry_off(i);
        bool locked_entry = false;
        if (s_.u32(e + abi::kEntState).load(std::memory_order_acquire) == abi::kEntActive &&
            s_.u64(e + abi::kEntGen).load(std::memory_order_acquire) == gen &&
            (new_state != abi::kEntFree || (locked_entry = s_.try_lock_entry(i)))) {
            // Registry writes under flock (we are their only writer):
            // generation, then state, then epoch (seq_cst; readers load
            // state, then generation).
            s_.u64(e + abi::kEntGen).store(gen + 1, std::memory_order_seq_cst);
            s_.u32(e + abi::kEntState).store(new_state, std::memory_order_seq_cst);
            auto epoch = s_.u64(abi::kOffRegEpoch);
            epoch.store(epoch.load(std::memory_order_acquire) + 1, std::memory_order_seq_cst);  // no RMW: flock holder
            ++evictions_;
            limit_ = 0;
        }
        if (locked_entry) s_.unlock_entry(i);
        s_.unlock_registry();
    }

    Segment s_;
    std::byte* slots_ = nullptr;
    std::uint64_t slot_size_ = 0, msg_off_ = 0, mask_ = 0, capacity_ = 0, nsubs_ = 0;
    Policy policy_ = Policy::block;
    std::uint64_t batch_ = 1;
    std::chrono::nanoseconds timeout_{0}, liveness_{0};
    int spin_ = kDefaultSpin;

    std::uint64_t cursor_ = 0;     // next index to write
    std::uint64_t published_ = 0;  // last tail stored
    std::uint64_t limit_ = 0;      // cursor may advance below limit without a scan
    std::uint64_t epoch_ = 0;      // registry epoch seen at the last scan
    std::uint64_t dropped_ = 0;
    std::uint64_t commits_ = 0;
    std::uint64_t watchdog_fires_ = 0;
    std::uint64_t evictions_ = 0;
    bool claimed_ = false;
    bool closed_ = false;
};

}  // namespace detail
}  // namespace tachyon
