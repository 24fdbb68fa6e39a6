// The untyped subscriber side of the ring protocol (runtime/ABI.md §8.3-8.7):
// registration, the seqlock read, borrows, parking and detach.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <thread>
#include <utility>

#include "tachyon/abi.hpp"
#include "tachyon/error.hpp"
#include "tachyon/options.hpp"
#include "tachyon/segment.hpp"
#include "tachyon/wait.hpp"

namespace tachyon {

namespace detail {

/// x - y, or 0 when y > x.
[[nodiscard]] constexpr std::uint64_t sat_sub(std::uint64_t x, std::uint64_t y) noexcept { return x > y ? x - y : 0; }

/// The untyped subscriber side of ABI.md §8.3-8.7. Single-threaded.
class Consumer {
public:
    static constexpr std::uint64_t kStatsEvery = 256;
    /// How long a Block producer must stay idle before a membarrier-less
    /// registrant takes its next epoch load as certain to see the new epoch,
    /// and how long a moving tail may go without an acknowledgement (§8.4
    /// step 4).
    static constexpr std::chrono::milliseconds kIdleProof{100};
    static constexpr std::chrono::seconds kAckTimeout{1};
    /// A membarrier-less subscriber's longest sleep until the producer has
    /// switched to strong fences for it (§8.6).
    static constexpr std::chrono::milliseconds kStrongPendingSleep{1};

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
        protected_ = o.max_lag == 0 && s_.header().policy != Policy::drop_oldest;
        spin_ = std::max(o.spin, 0);
        asym_ = s_.header().asym_fences;
        strong_ = !asym_ || !membarrier_registered();
        // The words peek() loads beside the stamp: one in each further cache
        // line the slot may span, up to kWatchLines, and the slot's last
        // word. None under TSan, where those loads would race (by design:
        // their values are unused) with the producer's message writes.
        if constexpr (!kThreadSanitizer) {
            for (std::uint64_t off = 64; off < slot_size_ && n_watch_ < kWatchLines - 1; off += 64) watch_[n_watch_++] = off;
            if (n_watch_ == 0 || watch_[n_watch_ - 1] != slot_size_ - 8) watch_[n_watch_++] = slot_size_ - 8;
        }
        if (!s_.lock_registry(1s))
            raise(Errc::timeout, "attach", s_.name(), {"registry lock held by another process for 1s"});
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
        sleep_off_ = g.sleeper_off(idx_);
        enroll(o, key, resume);
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
        if (t < loaded_) return tail_moved_back(t);
        loaded_ = t;
        tail_ = std::max(tail_, t);
        std::uint64_t n = std::min({tail_ - head_, std::max<std::uint64_t>(max_n, 1), capacity_ - (head_ & mask_)});
        if (!protected_) {
            for (std::uint64_t k = 1; k < n; ++k) {
                // Seqlock read-begin of each slot (acquire; pairs with commit).
                if (stamp(head_ + k).load(std::memory_order_acquire) != 2 * (head_ + k) + 2) {
                    n = k;
                    break;
                }
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
        if (protected_) {
            // The producer stores our eviction before it overwrites a slot we
            // hold back: if we read an overwritten byte, this load sees it
            // (ABI.md §8.5 step 4, protected subscribers).
            intact = !is_evicted();
        } else {
            for (std::uint64_t k = 0; k < n; ++k) {
                // Seqlock read-end for each borrowed slot (after the fence).
                if (stamp(head_ + k).load(std::memory_order_relaxed) != 2 * (head_ + k) + 2) {
                    intact = false;
                    break;
                }
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
            if (spins < spin_ && (spins & 15) != 0 && window_ == capacity_) {
                // The slot holds its message: the caller's receive takes it
                // (and checks eviction) at once, without a poll on the way.
                if (peek()) return Errc::ok;
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
            if (strong_ && asym_ &&
                s_.u32(abi::kOffProdFences).load(std::memory_order_acquire) != abi::kProdFencesStrong) {
                // The producer has not switched to strong fences for us yet:
                // a wake-up could be lost, so sleep briefly (§8.6).
                sleep = std::min<std::chrono::nanoseconds>(sleep, kStrongPendingSleep);
            }
            flush_stats();
            hook("wait:park");
            const Result<bool> ready = park(sleep);
            if (!ready) return ready.error();
            if (*ready) return Errc::ok;
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

    /// Detaches (§8.7). If the registry lock cannot be had (another process
    /// holds it), the entry is left as it is and only its liveness lock is
    /// dropped: the producer reclaims it as dead, so a lock held by someone
    /// else never makes the producer wait for us. Idempotent.
    void close() noexcept {
        if (closed_) return;
        flush_stats();
        closed_ = true;
        s_.u32(sleep_off_).store(0, std::memory_order_release);
        if (s_.lock_registry(1s)) {
            const std::uint64_t e = s_.geo().entry_off(idx_);
            // Ours while our generation is there: nobody else could take the
            // entry while we held its liveness lock.
            if (s_.u64(e + abi::kEntGen).load(std::memory_order_acquire) == gen_ &&
                s_.u32(e + abi::kEntState).load(std::memory_order_acquire) != abi::kEntFree) {
                s_.u64(e + abi::kEntGen).store(gen_ + 1, std::memory_order_release);
                // H3: state = free, a full fence, then prod_sleeping: a
                // producer parked on this entry must not wait for us.
                s_.u32(e + abi::kEntState).store(abi::kEntFree, std::memory_order_release);
                full_fence();
                auto epoch = s_.u64(abi::kOffRegEpoch);
                epoch.store(epoch.load(std::memory_order_acquire) + 1, std::memory_order_release);  // flock holder
                if (s_.u32(abi::kOffProdSleeping).load(std::memory_order_acquire) != 0 &&
                    s_.u32(abi::kOffProdWaitEntry).load(std::memory_order_acquire) == idx_)
                    wake_producer_now();
            }
            s_.unlock_registry();
        }
        s_.unlock_entry(idx_);
        s_.release();
    }

    [[nodiscard]] std::string describe(Errc e) const { return note_.describe(e, "receive", name_); }
    [[nodiscard]] std::uint64_t received() const noexcept { return received_; }
    [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_; }
    [[nodiscard]] std::uint64_t head() const noexcept { return head_; }
    [[nodiscard]] std::uint64_t entry() const noexcept { return idx_; }
    [[nodiscard]] std::uint64_t slot_stride() const noexcept { return slot_size_; }
    [[nodiscard]] std::uint64_t watchdog_fires() const noexcept { return watchdog_fires_; }
    [[nodiscard]] std::uint64_t lost_wakeups() const noexcept { return lost_wakeups_; }
    [[nodiscard]] bool strong_fences() const noexcept { return strong_; }
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

    /// Steps 3 to 5 of a registration (§8.4) on the locked entry: join at a
    /// provisional head, the epoch handshake with the producer, then the
    /// final head and state. The registry lock is held; every store here is
    /// a registry or owner write of this entry (release stores).
    void enroll(const SubscribeOptions& o, std::uint64_t key, bool resume) {
        const std::uint64_t e = s_.geo().entry_off(idx_);
        const std::uint64_t k = s_.header().batch;
        const bool at_last = o.start == Start::last;
        // A resumed entry's last position and counters: untrusted numbers,
        // each loaded once, before the entry is reset.
        std::uint64_t last = 0, join = 0, received = 0, dropped = 0;
        if (resume) {
            last = s_.u64(head_off_).load(std::memory_order_acquire);
            join = s_.u64(e + abi::kEntJoin).load(std::memory_order_acquire);
            received = s_.u64(e + abi::kEntReceived).load(std::memory_order_acquire);
            dropped = s_.u64(e + abi::kEntDropped).load(std::memory_order_acquire);
        }
        // Whether the entry's numbers add up against a tail t: a head at most
        // one batch beyond the published tail (a reader may consume
        // committed slots before the tail covers them, §8.5 step 1a).
        const auto resumable = [&](std::uint64_t t) {
            return resume && join <= last && (last <= t || last - t <= k) && dropped <= last - join;
        };
        // The oldest index still intact when the producer had published t:
        // sat(t + 2k - capacity), without overflow (2k <= capacity).
        const auto intact_from = [&](std::uint64_t t) {
            return t >= capacity_ ? t - capacity_ + 2 * k : sat_sub(t + 2 * k, capacity_);
        };
        // Step 3: join at a provisional head never above the final one, so a
        // producer that rescans between the two stores never overwrites what
        // the final head keeps (race 5).
        gen_ = s_.u64(e + abi::kEntGen).load(std::memory_order_acquire) + 1;
        s_.u32(e + abi::kEntState).store(abi::kEntFree, std::memory_order_release);
        s_.u64(e + abi::kEntGen).store(gen_, std::memory_order_release);
        const std::uint64_t t = s_.u64(abi::kOffTail).load(std::memory_order_acquire);
        const std::uint64_t provisional = resumable(t) && at_last ? std::max(last, intact_from(t)) : t;
        s_.u64(head_off_).store(provisional, std::memory_order_release);
        s_.u64(e + abi::kEntReceived).store(0, std::memory_order_release);
        s_.u64(e + abi::kEntDropped).store(0, std::memory_order_release);
        s_.u64(e + abi::kEntKey).store(key, std::memory_order_release);
        s_.u64(e + abi::kEntHeartbeat).store(mono_now(), std::memory_order_release);
        s_.u32(e + abi::kEntPid).store(static_cast<std::uint32_t>(::getpid()), std::memory_order_release);
        s_.u64(e + abi::kEntStartTime).store(process_start_time(), std::memory_order_release);
        s_.u64(e + abi::kEntMaxLag).store(o.max_lag, std::memory_order_release);
        s_.u64(e + abi::kEntJoin).store(provisional, std::memory_order_release);
        s_.u32(e + abi::kEntFlags).store(asym_ && strong_ ? abi::kEntFlagStrong : 0, std::memory_order_release);
        s_.u32(sleep_off_).store(0, std::memory_order_release);
        // The table's high water mark covers this entry before it can hold
        // the producer back or park: the producer looks below it only.
        if (auto high = s_.u32(abi::kOffTableHigh); high.load(std::memory_order_acquire) <= idx_)
            high.store(static_cast<std::uint32_t>(idx_ + 1), std::memory_order_release);  // flock holder
        // After head, max_lag and table_high (release; pairs with the
        // producer's scan loading table_high, then state, then max_lag, head).
        s_.u32(e + abi::kEntState).store(abi::kEntJoining, std::memory_order_release);
        hook("register:joining");
        // Step 4, H5: store the epoch, then load the tail. The producer stores
        // the tail, then loads the epoch: either it sees our epoch at its next
        // publication and rescans (seeing the provisional head) before it
        // claims again, or it had published at most t2 and committed at most
        // t2+k-1, and writes at most k more before that rescan.
        auto epoch_ref = s_.u64(abi::kOffRegEpoch);
        const std::uint64_t epoch = epoch_ref.load(std::memory_order_acquire) + 1;
        epoch_ref.store(epoch, std::memory_order_release);  // flock holder: no RMW needed
        full_fence();
        if (asym_ && !strong_) {
            heavy_barrier();  // the producer's tail store and epoch load have no fence
        } else if (asym_) {
            await_ack(epoch);
        }
        hook("register:epoch");
        const std::uint64_t t2 = s_.u64(abi::kOffTail).load(std::memory_order_acquire);
        std::uint64_t from = t2;
        if (resumable(t2)) {
            // Resume. Progress a dead owner had not flushed counts as
            // received, so that received + dropped == head - join holds.
            received = last - join - dropped;
            from = at_last ? std::max(last, intact_from(t2)) : std::max(t2, last);
            dropped += from - last;
        } else {
            // Fresh, or an entry whose numbers do not add up: start over.
            join = t2;
            received = dropped = 0;
        }
        s_.u64(head_off_).store(from, std::memory_order_release);
        s_.u64(e + abi::kEntJoin).store(join, std::memory_order_release);
        s_.u64(e + abi::kEntDropped).store(dropped, std::memory_order_release);
        s_.u64(e + abi::kEntReceived).store(received, std::memory_order_release);
        s_.u32(e + abi::kEntState).store(abi::kEntActive, std::memory_order_release);
        head_ = from;
        // t2 is a loaded tail like any other: a later one below it is
        // corruption (§8.5).
        tail_ = loaded_ = t2;
        join_ = join;
        received_ = received;
        dropped_ = dropped;
        // Step 5: a producer parked on our provisional head may go on now.
        full_fence();
        if (s_.u32(abi::kOffProdSleeping).load(std::memory_order_acquire) != 0 &&
            s_.u32(abi::kOffProdWaitEntry).load(std::memory_order_acquire) == idx_)
            wake_producer_now();
    }

    /// Step 4 of a membarrier-less registrant on an asymmetric ring (§8.6):
    /// the producer's hot side has no fence, so before the tail it loads can
    /// bound what was overwritten, the producer must have scanned the table
    /// since our epoch (it is strong from then on), or be idle long enough
    /// that its next epoch load cannot miss ours, or be gone.
    void await_ack(std::uint64_t epoch) {
        const auto start = Clock::now();
        std::uint64_t last = s_.u64(abi::kOffTail).load(std::memory_order_acquire);
        auto since = start;
        for (;;) {
            // Acquire; pairs with the producer's release of scan_epoch after
            // its table loads.
            if (s_.u64(abi::kOffProdScanEpoch).load(std::memory_order_acquire) >= epoch) return;
            const auto now = Clock::now();
            if (const std::uint64_t t = s_.u64(abi::kOffTail).load(std::memory_order_acquire); t != last) {
                last = t;
                since = now;
            } else if (now - since >= kIdleProof ||
                       s_.u32(abi::kOffProdState).load(std::memory_order_acquire) != abi::kProdActive ||
                       !s_.producer_alive()) {
                return;
            }
            if (now - start > kAckTimeout)
                raise(Errc::timeout, "attach", s_.name(),
                      {"the publisher kept publishing for 1s without acknowledging a membarrier-less subscriber "
                       "(ABI.md §8.6)"});
            std::this_thread::sleep_for(100us);
        }
    }

    [[nodiscard]] std::atomic_ref<std::uint64_t> stamp(std::uint64_t idx) const noexcept {
        return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(slots_ + (idx & mask_) * slot_size_));
    }
    [[nodiscard]] const std::byte* msg(std::uint64_t idx) const noexcept {
        return slots_ + (idx & mask_) * slot_size_ + msg_off_;
    }

    /// Whether the producer evicted or reclaimed this subscriber: its
    /// eviction word names our generation (or someone rewrote our
    /// generation, which only a hostile process does). Acquire loads; pair
    /// with the producer's eviction store.
    [[nodiscard]] bool is_evicted() const noexcept {
        return s_.u64(s_.geo().evict_word_off(idx_)).load(std::memory_order_acquire) == gen_ ||
               s_.u64(s_.geo().entry_off(idx_) + abi::kEntGen).load(std::memory_order_acquire) != gen_;
    }

    [[gnu::cold]] Errc evicted() noexcept {
        return note_.note(Errc::evicted, "receive", name_, {"entry ", Num(idx_), ", generation ", Num(gen_)});
    }
    [[gnu::cold]] Errc tail_moved_back(std::uint64_t t) noexcept {
        return note_.note(Errc::corrupt, "receive", name_, {"tail moved back from ", Num(loaded_), " to ", Num(t)});
    }

    /// Whether head's slot holds its committed message, loading that slot
    /// only: its stamp, then one word of every other cache line it spans.
    /// A reader waiting this way holds all the slot's lines, so they move to
    /// its core together as the producer writes them, instead of the
    /// message's second line being fetched after the stamp flips (the Go
    /// client's consumer.peek). The later loads are acquires too: they
    /// cannot see older data than the stamp load did.
    [[nodiscard]] bool peek() const noexcept {
        std::byte* p = slots_ + (head_ & mask_) * slot_size_;
        const bool ready = word_at(p).load(std::memory_order_acquire) == 2 * head_ + 2;
        for (std::size_t i = 0; i < n_watch_; ++i) (void)word_at(p + watch_[i]).load(std::memory_order_acquire);
        return ready;
    }

    /// How many messages are readable from head (§8.5 steps 1-2).
    [[nodiscard]] Result<std::uint64_t> poll() noexcept {
        if (head_ >= tail_) {
            // Step 1a, for a window of the whole ring (unlimited, or
            // max_lag == capacity, whose step 2 cannot trigger before a
            // lap): index head's committed stamp (acquire; pairs with the
            // commit store) proves it complete before tail covers it.
            if (window_ == capacity_ && stamp(head_).load(std::memory_order_acquire) == 2 * head_ + 2) {
                if (is_evicted()) return evicted();
                tail_ = head_ + 1;
                return std::uint64_t{1};
            }
            // Tail load (acquire): every slot below it is committed. Pairs
            // with the producer's tail store.
            const std::uint64_t t = s_.u64(abi::kOffTail).load(std::memory_order_acquire);
            if (t < loaded_) return tail_moved_back(t);
            loaded_ = t;
            if (is_evicted()) return evicted();
            tail_ = std::max(tail_, t);
            if (tail_ <= head_) {
                // Step 1b: caught up with the published tail, a lossy
                // subscriber may still read a message a batching producer
                // committed and holds back (its lag is then below batch).
                if (window_ < capacity_ && stamp(head_).load(std::memory_order_acquire) == 2 * head_ + 2) {
                    tail_ = head_ + 1;
                    return std::uint64_t{1};
                }
                return std::uint64_t{0};
            }
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
        const std::uint64_t want = 2 * head_ + 2;
        if (st < want)
            return note_.note(Errc::corrupt, "receive", name_,
                              {"slot ", Num(head_ & mask_), " stamp ", Num(st), ", want >= ", Num(want), " (index ",
                               Num(head_), ")"});
        const std::uint64_t j = (st - 1) >> 1;
        std::uint64_t next = head_ + 1;
        if (j >= capacity_ && j + 1 - capacity_ > next) next = j + 1 - capacity_;
        dropped_ += next - head_;
        head_ = next;
        store_head();
        return Errc::ok;
    }

    void store_head() noexcept {
        // H2, light or strong side: the head store (a release of every slot
        // below head; pairs with the producer's head load in scan), then
        // prod_sleeping. Strong: a full fence between them; on an asymmetric
        // ring the parking producer's membarrier stands in for it.
        s_.u64(head_off_).store(head_, std::memory_order_release);
        if (strong_) full_fence(); else light_fence();
        if (s_.u32(abi::kOffProdSleeping).load(std::memory_order_acquire) != 0) wake_producer();
        if (++since_stats_ >= kStatsEvery) flush_stats();
    }

    /// Wakes a parked producer that waits on this entry once head reached
    /// its wake condition (loads after prod_sleeping, acquire; the producer
    /// stored them before its flag).
    void wake_producer() noexcept {
        if (s_.u32(abi::kOffProdWaitEntry).load(std::memory_order_acquire) == idx_ &&
            head_ >= s_.u64(abi::kOffProdWaitHead).load(std::memory_order_acquire)) {
            wake_producer_now();
        }
    }

    /// Advances this entry's wake eventcount (we are its only writer) and
    /// wakes the producer parked on it.
    void wake_producer_now() noexcept { advance_and_wake(s_.futex_word(s_.geo().entry_off(idx_) + abi::kEntWake), 1); }

    /// Why no message will come (closed, publisher_dead, evicted), or ok.
    [[nodiscard]] Errc terminal(bool check_alive) noexcept {
        if (is_evicted()) return evicted();
        Errc cause = Errc::ok;
        // H4: prod_state, then reload the tail (acquire loads).
        if (s_.u32(abi::kOffProdState).load(std::memory_order_acquire) == abi::kProdClosed) {
            cause = Errc::closed;
        } else if (check_alive && !s_.producer_alive()) {
            cause = Errc::publisher_dead;
        }
        if (cause == Errc::ok) return Errc::ok;
        // Closed is stored after the final tail, and a dead producer's tail
        // is final: deliver everything first. A dead batching producer may
        // also have committed messages it never published: the stamp of
        // head tells.
        if (s_.u64(abi::kOffTail).load(std::memory_order_acquire) > head_ ||
            stamp(head_).load(std::memory_order_acquire) == 2 * head_ + 2)
            return Errc::ok;
        if (cause == Errc::publisher_dead)
            return note_.note(cause, "receive", name_, {"its liveness lock is free and everything it published was delivered"});
        return cause;
    }

    /// One sleep of wait (H1, heavy side): ready when a message appeared
    /// while it announced itself, an error if the re-poll found one.
    [[nodiscard]] Result<bool> park(std::chrono::nanoseconds sleep) noexcept {
        // Store our sleeper flag; a full fence (and, on an asymmetric ring
        // whose producer stores tail and stamps without one, a membarrier);
        // then load the eventcount and re-poll: the tail, and the stamp of
        // head (a message a batching producer holds back, step 1b). The
        // producer stores tail or a stamp, then loads the flags, and if it
        // sees ours advances the eventcount and wakes it: either we see its
        // store here, or FUTEX_WAIT sees the new count.
        auto flag = s_.u32(sleep_off_);
        flag.store(1, std::memory_order_release);
        full_fence();
        if (asym_ && !strong_) heavy_barrier();
        std::uint32_t* notify = s_.futex_word(abi::kOffNotify);
        const std::uint32_t n = std::atomic_ref<std::uint32_t>(*notify).load(std::memory_order_acquire);
        struct Lower {
            std::atomic_ref<std::uint32_t>& flag;
            ~Lower() { flag.store(0, std::memory_order_release); }  // read by the producer's H1 loads
        } lower{flag};
        const Result<std::uint64_t> r = poll();
        if (!r) return r.error();
        if (*r > 0) return true;
        if (s_.u32(abi::kOffProdState).load(std::memory_order_acquire) == abi::kProdClosed || is_evicted())
            return false;  // wait's next turn reports it
        hook("wait:futex");
        if (futex_wait(notify, n, sleep)) {
            ++watchdog_fires_;
            if (s_.u64(abi::kOffTail).load(std::memory_order_acquire) > head_ ||
                stamp(head_).load(std::memory_order_acquire) == 2 * head_ + 2)
                ++lost_wakeups_;
        }
        return false;
    }

    Segment s_;
    std::string name_ = s_.name();
    ErrorNote note_;
    std::byte* slots_ = nullptr;
    std::uint64_t slot_size_ = 0, msg_off_ = 0, mask_ = 0, capacity_ = 0, window_ = 0;
    std::uint64_t idx_ = 0, gen_ = 0, head_off_ = 0, sleep_off_ = 0;
    int spin_ = kDefaultSpin;
    // An unlimited subscriber of a block or drop_newest ring: the producer
    // overwrites its slots only after evicting it, so a borrow needs one
    // eviction check instead of a stamp check per slot (§8.5 step 4).
    bool protected_ = false;
    bool asym_ = false;   // the ring uses asymmetric fences
    bool strong_ = true;  // this subscriber fences its head stores (cannot issue membarrier, §8.6)
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
    std::uint64_t lost_wakeups_ = 0;  // watchdog ends of a sleep that had data waiting
    Clock::time_point last_live_{};
    bool closed_ = false;
};

}  // namespace detail
}  // namespace tachyon
