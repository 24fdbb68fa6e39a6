// The untyped subscriber side of the ring protocol (runtime/ABI.md §8.3-8.7):
// registration, the seqlock read, borrows, parking and detach.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <utility>

#include "tachyon/abi.hpp"
#include "tachyon/error.hpp"
#include "tachyon/options.hpp"
#include "tachyon/segment.hpp"
#include "tachyon/wait.hpp"

namespace tachyon {

namespace detail {

/// The untyped subscriber side of ABI.md §8.4-8.6. Single-threaded.
class Consumer {
public:
    static constexpr std::uint64_t kStatsEvery = 256;

    /// Registers (§8.4) on an opened segment; throws on failure.
    Consumer(Segment seg, const SubscribeOptions& o) : s_(std::move(seg)) {
        const abi::Geometry& g = s_.geo();
        if (o.max_lag > g.capacity)
            raise(Errc::invalid_options, "attach", s_.name(),
                  {"max lag ", Num(o.max_lag), " exceeds capacity ", Num(g.capacity)});
        slots_ = s_.base() + g.slots_off;
        slot_size_ = g.slot_size;
        msg_off_ = g.slot_msg_off;
        mask_ = g.mask;
        capacity_ = g.capacity;
        window_ = o.max_lag == 0 ? g.capacity : o.max_lag;
        spin_ = std::max(o.spin, 0);
        // The words peek() loads beside the stamp: one in each further cache
        // line the slot may span, up to kWatchLines, and the slot's last
        // word. None under TSan, where those loads would race (by design:
        // their values are unused) with the producer's message writes.
        if constexpr (!kThreadSanitizer) {
            for (std::uint64_t off = 64; off < slot_size_ && n_watch_ < kWatchLines - 1; off += 64) watch_[n_watch_++] = off;
            if (n_watch_ == 0 || watch_[n_watch_ - 1] != slot_size_ - 8) watch_[n_watch_++] = slot_size_ - 8;
        }
        if (!s_.lock_registry(1s))
            raise(Errc::timeout, "attach", s_.name(), {"registry lock held for 1s"});
        struct Unlock {
            const Segment& s;
            ~Unlock() { s.unlock_registry(); }
        } unlock{s_};
        const std::uint64_t key = subscriber_key(o.name);
        const auto [idx, resume] = pick_entry(key);
        if (idx < 0)
            raise(Errc::no_entry, "attach", s_.name(), {"all ", Num(g.max_subs), " entries have live owners"});
        idx_ = static_cast<std::uint64_t>(idx);
        const std::uint64_t e = g.entry_off(idx_);
        head_off_ = e + abi::kEntHead;
        sleep_off_ = g.sleepers_off + 4 * idx_;
        // A resumed entry's last position and counters (§8.4 step 3):
        // untrusted numbers, each loaded once, before the entry is reset.
        std::uint64_t last = 0, join = 0, received = 0, dropped = 0;
        if (resume) {
            last = s_.u64(head_off_).load(std::memory_order_acquire);
            join = s_.u64(e + abi::kEntJoin).load(std::memory_order_acquire);
            received = s_.u64(e + abi::kEntReceived).load(std::memory_order_acquire);
            dropped = s_.u64(e + abi::kEntDropped).load(std::memory_order_acquire);
        }
        // Registry writes (we hold the flock; seq_cst stores). A reclaimed
        // entry is first made non-active so the producer stops reading it.
        gen_ = s_.u64(e + abi::kEntGen).load(std::memory_order_acquire) + 1;
        s_.u32(e + abi::kEntState).store(abi::kEntFree, std::memory_order_seq_cst);
        s_.u64(e + abi::kEntGen).store(gen_, std::memory_order_seq_cst);
        const std::uint64_t t = s_.u64(abi::kOffTail).load(std::memory_order_acquire);  // pairs with the tail store
        s_.u64(head_off_).store(t, std::memory_order_seq_cst);
        s_.u64(e + abi::kEntReceived).store(received, std::memory_order_release);
        s_.u64(e + abi::kEntDropped).store(dropped, std::memory_order_release);
        s_.u64(e + abi::kEntKey).store(key, std::memory_order_release);
        s_.u64(e + abi::kEntHeartbeat).store(mono_now(), std::memory_order_release);
        s_.u32(e + abi::kEntPid).store(static_cast<std::uint32_t>(::getpid()), std::memory_order_release);
        s_.u64(e + abi::kEntStartTime).store(process_start_time(), std::memory_order_release);
        s_.u64(e + abi::kEntMaxLag).store(o.max_lag, std::memory_order_seq_cst);
        s_.u64(e + abi::kEntJoin).store(t, std::memory_order_release);
        s_.u32(sleep_off_).store(0, std::memory_order_release);
        // After head and max_lag (release; pairs with the producer's scan
        // loading state before max_lag and head).
        s_.u32(e + abi::kEntState).store(abi::kEntActive, std::memory_order_seq_cst);
        // H5: store the epoch, then load the tail (seq_cst); pairs with the
        // producer's tail store, then epoch load.
        auto epoch = s_.u64(abi::kOffRegEpoch);
        epoch.store(epoch.load(std::memory_order_acquire) + 1, std::memory_order_seq_cst);
        const std::uint64_t t2 = s_.u64(abi::kOffTail).load(std::memory_order_seq_cst);
        std::uint64_t from = t2;
        if (resume && join <= last && last <= t2 && dropped <= last - join) {
            // Resume (§8.4 step 4). Progress a dead owner had not flushed
            // counts as received. The producer may have committed a batch
            // beyond T2 and writes at most one more before it sees us, so
            // indices from T2 + 2*batch - capacity on are intact; older
            // ones may have been overwritten while the entry was idle.
            received = last - join - dropped;
            if (o.start == Start::last) {
                const std::uint64_t intact = t2 + 2 * std::uint64_t{s_.header().batch};
                from = std::max(last, intact > capacity_ ? intact - capacity_ : 0);
            }
            dropped += from - last;
        } else {
            // Fresh, or an entry whose numbers do not add up: start over.
            join = t2;
            received = dropped = 0;
        }
        s_.u64(head_off_).store(from, std::memory_order_seq_cst);
        s_.u64(e + abi::kEntJoin).store(join, std::memory_order_release);
        s_.u64(e + abi::kEntReceived).store(received, std::memory_order_release);
        s_.u64(e + abi::kEntDropped).store(dropped, std::memory_order_release);
        head_ = from;
        // T2 is a loaded tail like any other: a later one below it is
        // corruption (§8.5).
        tail_ = loaded_ = t2;
        join_ = join;
        received_ = received;
        dropped_ = dropped;
        // H2: head stored above, then prod_sleeping (seq_cst).
        if (s_.u32(abi::kOffProdSleeping).load(std::memory_order_seq_cst) != 0) wake_producer();
    }

    Consumer(const Consumer&) = delete;
    Consumer& operator=(const Consumer&) = delete;
    ~Consumer() { close(); }

    [[nodiscard]] const Segment& segment() const noexcept { return s_; }

    /// Returns the message at head (stamp checked), without consuming it.
    [[nodiscard]] Result<const std::byte*> next() noexcept {
        for (;;) {
            const Result<std::uint64_t> n = poll();
            if (!n) return n.error();
            if (*n == 0) return Errc::empty;
            // Seqlock read-begin (acquire); pairs with the producer's
            // commit store of 2h+2.
            const std::uint64_t st = stamp(head_).load(std::memory_order_acquire);
            if (st == 2 * head_ + 2) return msg(head_);
            if (const Errc e = skip_lapped(st); e != Errc::ok) return e;
        }
    }

    /// After a copy of next()'s message: true if intact (consumed), false
    /// if overwritten meanwhile (discard the copy; counted, head moved on).
    [[nodiscard]] Result<bool> consume() noexcept {
        seqlock_read_fence();
        // Seqlock read-end: an atomic load after the copy (the fence above
        // orders the copy before it). Pairs with the producer's 2w+1
        // store + write fence.
        const std::uint64_t st = stamp(head_).load(std::memory_order_relaxed);
        if (st == 2 * head_ + 2) {
            ++head_;
            ++received_;
            store_head();
            return true;
        }
        if (const Errc e = skip_lapped(st); e != Errc::ok) return e;
        return false;
    }

    [[nodiscard]] Result<const std::byte*> borrow() noexcept {
        if (nb_ != 0) return Errc::claimed;
        const auto p = next();
        if (p) nb_ = 1;
        return p;
    }

    struct Run {
        const std::byte* first = nullptr;
        std::uint64_t n = 0;
    };

    [[nodiscard]] Result<Run> borrow_batch(std::uint64_t max_n) noexcept {
        if (nb_ != 0) return Errc::claimed;
        const auto p = next();
        if (!p) return p.error();
        // Take all that is published (acquire; pairs with the tail store).
        // An untrusted value like any: a tail that moved back is corrupt.
        const std::uint64_t t = s_.u64(abi::kOffTail).load(std::memory_order_acquire);
        if (t < loaded_) return Errc::corrupt;
        loaded_ = t;
        tail_ = std::max(tail_, t);
        std::uint64_t n = std::min({tail_ - head_, std::max<std::uint64_t>(max_n, 1), capacity_ - (head_ & mask_)});
        for (std::uint64_t k = 1; k < n; ++k) {
            // Seqlock read-begin of each slot (acquire; pairs with commit).
            if (stamp(head_ + k).load(std::memory_order_acquire) != 2 * (head_ + k) + 2) {
                n = k;
                break;
            }
        }
        nb_ = n;
        return Run{*p, n};
    }

    /// Ends a borrow (§8.5 step 4): overwritten if any stamp changed.
    [[nodiscard]] Errc release() noexcept {
        const std::uint64_t n = nb_;
        if (n == 0) return Errc::claimed;
        seqlock_read_fence();
        bool intact = true;
        for (std::uint64_t k = 0; k < n; ++k) {
            // Seqlock read-end for each borrowed slot (after the fence).
            if (stamp(head_ + k).load(std::memory_order_relaxed) != 2 * (head_ + k) + 2) {
                intact = false;
                break;
            }
        }
        nb_ = 0;
        head_ += n;
        (intact ? received_ : dropped_) += n;
        store_head();
        return intact ? Errc::ok : Errc::overwritten;
    }

    /// Blocks until a message is readable (§8.3 "Subscriber parks"), until
    /// the deadline (timeout), or a terminal state.
    [[nodiscard]] Errc wait(Clock::time_point deadline) noexcept {
        for (int spins = 0;; ++spins) {
            // A subscriber allowed step 1a spins on the next slot alone and
            // polls in full every 16th time only, so the producer's tail
            // line does not travel on every spin.
            if (spins < spin_ && (spins & 15) != 0 && window_ == capacity_ && !peek()) {
                if (spins >= spin_ - kYieldPolls) yield();
                continue;
            }
            const Result<std::uint64_t> n = poll();
            if (!n) return n.error();
            if (*n > 0) return Errc::ok;
            if (spins < spin_) {
                if (spins >= spin_ - kYieldPolls) yield();
                if ((spins & 63) == 0 && Clock::now() >= deadline) return Errc::timeout;
                continue;
            }
            const auto now = Clock::now();
            const bool check_alive = now - last_live_ >= kWatchdog;
            if (check_alive) last_live_ = now;
            if (const Errc e = terminal(check_alive); e != Errc::ok) return e;
            if (now >= deadline) return Errc::timeout;
            std::chrono::nanoseconds sleep = kWatchdog;
            if (deadline != Clock::time_point::max()) sleep = std::min<std::chrono::nanoseconds>(sleep, deadline - now + 1ms);
            flush_stats();
            // H1 (seq_cst): store our sleeper flag, then load the tail;
            // pairs with the producer's tail store, then flag loads.
            s_.u32(sleep_off_).store(1, std::memory_order_seq_cst);
            const std::uint64_t t = s_.u64(abi::kOffTail).load(std::memory_order_seq_cst);
            if (t <= head_) {
                if (futex_wait(s_.futex_word(abi::kOffTail), static_cast<std::uint32_t>(t), sleep)) {
                    ++watchdog_fires_;
                }
            }
            s_.u32(sleep_off_).store(0, std::memory_order_release);  // read by the producer's H1 loads
        }
    }

    /// Stores received/dropped/heartbeat (single writer; statistics).
    void flush_stats() noexcept {
        if (closed_) return;
        since_stats_ = 0;
        const std::uint64_t e = s_.geo().entry_off(idx_);
        s_.u64(e + abi::kEntReceived).store(received_, std::memory_order_release);
        s_.u64(e + abi::kEntDropped).store(dropped_, std::memory_order_release);
        s_.u64(e + abi::kEntHeartbeat).store(mono_now(), std::memory_order_release);
    }

    /// Detaches (§8.6). Idempotent.
    void close() noexcept {
        if (closed_) return;
        flush_stats();
        closed_ = true;
        s_.u32(sleep_off_).store(0, std::memory_order_release);
        if (s_.lock_registry(1s)) {
            const std::uint64_t e = s_.geo().entry_off(idx_);
            const std::uint64_t gen = s_.u64(e + abi::kEntGen).load(std::memory_order_acquire);
            const std::uint32_t st = s_.u32(e + abi::kEntState).load(std::memory_order_acquire);
            if ((gen == gen_ && st == abi::kEntActive) || (gen == gen_ + 1 && st == abi::kEntEvicted)) {
                s_.u64(e + abi::kEntGen).store(gen + 1, std::memory_order_seq_cst);
                // H3: state = free, then prod_sleeping (seq_cst).
                s_.u32(e + abi::kEntState).store(abi::kEntFree, std::memory_order_seq_cst);
                auto epoch = s_.u64(abi::kOffRegEpoch);
                epoch.store(epoch.load(std::memory_order_acquire) + 1, std::memory_order_seq_cst);
                if (s_.u32(abi::kOffProdSleeping).load(std::memory_order_seq_cst) != 0 &&
                    s_.u32(abi::kOffProdWaitEntry).load(std::memory_order_acquire) == idx_) {
                    futex_wake(s_.futex_word(head_off_), 1);
                }
            }
            s_.unlock_registry();
        }
        s_.unlock_entry(idx_);
        s_.release();
    }

    [[nodiscard]] std::uint64_t received() const noexcept { return received_; }
    [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_; }
    [[nodiscard]] std::uint64_t head() const noexcept { return head_; }
    [[nodiscard]] std::uint64_t slot_stride() const noexcept { return slot_size_; }
    [[nodiscard]] std::uint64_t watchdog_fires() const noexcept { return watchdog_fires_; }
    [[nodiscard]] std::uint64_t lag() const noexcept {
        if (closed_) return 0;
        const std::uint64_t t = s_.u64(abi::kOffTail).load(std::memory_order_acquire);
        return t > head_ ? t - head_ : 0;
    }
    [[nodiscard]] bool borrowing() const noexcept { return nb_ != 0; }
    [[nodiscard]] bool closed() const noexcept { return closed_; }

private:
    struct Pick {
        std::int64_t entry;  // -1: table full
        bool resume;
    };

    /// Takes the liveness lock of the entry to register in (§8.4 step 2),
    /// under the registry lock: a named subscriber first the entry its name
    /// left; then anyone the entries no named subscriber may come back to;
    /// and only when none is left, a departed named subscriber's (its
    /// resume state is then lost). A free entry, or one whose owner died,
    /// can be locked; a live owner's cannot.
    [[nodiscard]] Pick pick_entry(std::uint64_t key) noexcept {
        const abi::Geometry& g = s_.geo();
        const auto key_of = [&](std::uint64_t i) {
            return s_.u64(g.entry_off(i) + abi::kEntKey).load(std::memory_order_acquire);
        };
        if (key != 0) {
            for (std::uint64_t i = 0; i < g.max_subs; ++i) {
                if (key_of(i) == key && s_.try_lock_entry(i)) return {static_cast<std::int64_t>(i), true};
            }
        }
        for (const bool any : {false, true}) {
            for (std::uint64_t i = 0; i < g.max_subs; ++i) {
                if ((any || key_of(i) == 0) && s_.try_lock_entry(i)) return {static_cast<std::int64_t>(i), false};
            }
        }
        return {-1, false};
    }

    [[nodiscard]] std::atomic_ref<std::uint64_t> stamp(std::uint64_t idx) const noexcept {
        return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(slots_ + (idx & mask_) * slot_size_));
    }
    [[nodiscard]] const std::byte* msg(std::uint64_t idx) const noexcept {
        return slots_ + (idx & mask_) * slot_size_ + msg_off_;
    }

    [[nodiscard]] bool evicted() const noexcept {
        // Our own generation (acquire; pairs with the evictor's store).
        return s_.u64(s_.geo().entry_off(idx_) + abi::kEntGen).load(std::memory_order_acquire) != gen_;
    }

    /// How many messages are readable from head (§8.5 steps 1-2).
    /// Whether head's slot holds its committed message, loading that slot
    /// only: its stamp, then one word of every other cache line it spans.
    /// A reader waiting this way holds all the slot's lines, so they move to
    /// its core together as the producer writes them, instead of the
    /// message's second line being fetched after the stamp flips (the Go
    /// client's consumer.peek). The later loads are acquires too: they
    /// cannot see older data than the stamp load did.
    [[nodiscard]] bool peek() const noexcept {
        std::byte* p = slots_ + (head_ & mask_) * slot_size_;
        const auto word = [p](std::uint64_t off) {
            return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(p + off)).load(std::memory_order_acquire);
        };
        const bool ready = word(0) == 2 * head_ + 2;
        for (std::size_t i = 0; i < n_watch_; ++i) (void)word(watch_[i]);
        return ready;
    }

    [[nodiscard]] Result<std::uint64_t> poll() noexcept {
        if (head_ >= tail_) {
            // Step 1a, for a window of the whole ring (unlimited, or
            // max_lag == capacity, whose step 2 cannot trigger before a
            // lap): index head's committed stamp (acquire; pairs with the
            // commit store) proves it complete before tail covers it.
            if (window_ == capacity_ && stamp(head_).load(std::memory_order_acquire) == 2 * head_ + 2) {
                if (evicted()) return Errc::evicted;
                tail_ = head_ + 1;
                return std::uint64_t{1};
            }
            // Tail load (acquire): every slot below it is committed. Pairs
            // with the producer's tail store.
            const std::uint64_t t = s_.u64(abi::kOffTail).load(std::memory_order_acquire);
            if (t < loaded_) return Errc::corrupt;  // the tail moved back
            loaded_ = t;
            if (evicted()) return Errc::evicted;
            tail_ = std::max(tail_, t);
            if (tail_ <= head_) return std::uint64_t{0};
        }
        std::uint64_t n = tail_ - head_;
        if (n > window_) {
            const std::uint64_t skip = n - window_;
            head_ += skip;
            dropped_ += skip;
            n = window_;
            store_head();
        }
        return n;
    }

    /// A slot whose stamp is not 2h+2: lapped (counted) or corrupt.
    [[nodiscard]] Errc skip_lapped(std::uint64_t st) noexcept {
        if (st < 2 * head_ + 2) return Errc::corrupt;
        const std::uint64_t j = (st - 1) >> 1;
        std::uint64_t next = head_ + 1;
        if (j >= capacity_ && j + 1 - capacity_ > next) next = j + 1 - capacity_;
        dropped_ += next - head_;
        head_ = next;
        store_head();
        return Errc::ok;
    }

    void store_head() noexcept {
        // H2 store (seq_cst): a release of every slot below head (pairs
        // with the producer's head load in scan), then the StoreLoad before
        // the prod_sleeping load.
        s_.u64(head_off_).store(head_, std::memory_order_seq_cst);
        if (s_.u32(abi::kOffProdSleeping).load(std::memory_order_seq_cst) != 0) wake_producer();
        if (++since_stats_ >= kStatsEvery) flush_stats();
    }

    void wake_producer() noexcept {
        // Loads after prod_sleeping (acquire; the producer stored them
        // before its flag).
        if (s_.u32(abi::kOffProdWaitEntry).load(std::memory_order_acquire) == idx_ &&
            head_ >= s_.u64(abi::kOffProdWaitHead).load(std::memory_order_acquire)) {
            futex_wake(s_.futex_word(head_off_), 1);
        }
    }

    /// Why no message will come (closed, publisher_dead, evicted), or ok.
    [[nodiscard]] Errc terminal(bool check_alive) noexcept {
        const std::uint64_t e = s_.geo().entry_off(idx_);
        if (s_.u64(e + abi::kEntGen).load(std::memory_order_acquire) != gen_ ||
            s_.u32(e + abi::kEntState).load(std::memory_order_acquire) != abi::kEntActive) {
            return Errc::evicted;
        }
        Errc cause = Errc::ok;
        // H4: prod_state (seq_cst), then reload the tail.
        if (s_.u32(abi::kOffProdState).load(std::memory_order_seq_cst) == abi::kProdClosed) {
            cause = Errc::closed;
        } else if (check_alive && !s_.producer_alive()) {
            cause = Errc::publisher_dead;
        }
        if (cause == Errc::ok) return Errc::ok;
        if (s_.u64(abi::kOffTail).load(std::memory_order_seq_cst) > head_) return Errc::ok;  // drain first
        return cause;
    }

    Segment s_;
    std::byte* slots_ = nullptr;
    std::uint64_t slot_size_ = 0, msg_off_ = 0, mask_ = 0, capacity_ = 0, window_ = 0;
    std::uint64_t idx_ = 0, gen_ = 0, head_off_ = 0, sleep_off_ = 0;
    int spin_ = kDefaultSpin;
    static constexpr std::size_t kWatchLines = 4;
    std::array<std::uint64_t, kWatchLines> watch_{};  // offsets from the stamp, see peek()
    std::size_t n_watch_ = 0;

    std::uint64_t head_ = 0;    // next index to read
    std::uint64_t tail_ = 0;    // committed up to here, as far as we know
    std::uint64_t loaded_ = 0;  // last tail loaded (monotonic)
    std::uint64_t join_ = 0;
    std::uint64_t received_ = 0, dropped_ = 0;
    std::uint64_t nb_ = 0;  // slots borrowed from head
    std::uint64_t since_stats_ = 0;
    std::uint64_t watchdog_fires_ = 0;
    Clock::time_point last_live_{};
    bool closed_ = false;
};

}  // namespace detail
}  // namespace tachyon
