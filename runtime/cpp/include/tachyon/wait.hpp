// Waiting, waking and fencing in the Tachyon C++ ring client: the watchdog
// bound, clocks and deadlines, shared futexes, the seqlock fences and message
// copies, and the strong / asymmetric (membarrier) fences of the handshakes
// (runtime/ABI.md §8, §8.3, §8.6).
#pragma once

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "tachyon/abi.hpp"

namespace tachyon {

using namespace std::chrono_literals;

/// Every futex sleep is bounded by this watchdog (ABI.md §8.3), so a dead or
/// closed peer is noticed even if a wake-up is lost.
inline constexpr std::chrono::nanoseconds kWatchdog = 200ms;
/// A timeout that never expires.
inline constexpr std::chrono::nanoseconds kForever = std::chrono::nanoseconds::max();

// ABI.md §1: every shared atomic is accessed with one single-copy-atomic
// access of its full width; std::atomic_ref must not fall back to a lock.
static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic_ref<std::uint32_t>::is_always_lock_free);
static_assert(std::atomic_ref<std::uint64_t>::required_alignment == 8);

namespace detail {

#if defined(__SANITIZE_THREAD__)
inline constexpr bool kThreadSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr bool kThreadSanitizer = true;
#else
inline constexpr bool kThreadSanitizer = false;
#endif
#else
inline constexpr bool kThreadSanitizer = false;
#endif

// ---------------------------------------------------------------------------
// Seqlock fences and message copies (ABI.md §8.1 steps 1-3, §8.5 step 3).
//
// The reader copies a slot that a lapping producer may be rewriting; the
// stamp re-check after the copy tells it to discard such a copy. For that
// copy not to be a data race in the C++ memory model, both sides access the
// message bytes atomically (relaxed 8-byte atomic_ref loads and stores, which
// are plain MOVs on x86-64), ordered by fences against the stamps: H.-J.
// Boehm's seqlock, "Can seqlocks get along with programming language memory
// models?" (MSPC 2012). Slot messages start 8-aligned and their slot holds
// round_up(size, 8) bytes (ABI.md §3), so whole words never leave the slot.

/// Seqlock write-side fence: stores after it (the message bytes) become
/// visible after the odd stamp stored before it. On x86 a compiler barrier.
inline void seqlock_write_fence() noexcept {
    if constexpr (kThreadSanitizer) {
        // TSan does not model thread fences (and GCC warns about them). It
        // checks the message copies themselves, which are atomic.
        std::atomic_signal_fence(std::memory_order_seq_cst);
    } else {
        std::atomic_thread_fence(std::memory_order_release);
    }
}

/// Seqlock read-side fence: the message copy before it completes before the
/// stamp re-check after it. On x86 a compiler barrier.
inline void seqlock_read_fence() noexcept {
    if constexpr (kThreadSanitizer) {
        std::atomic_signal_fence(std::memory_order_seq_cst);
    } else {
        std::atomic_thread_fence(std::memory_order_acquire);
    }
}

[[nodiscard]] inline std::atomic_ref<std::uint64_t> word_at(const std::byte* p) noexcept {
    return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(const_cast<std::byte*>(p)));
}

/// Copies `size` message bytes out of a slot with relaxed 8-byte atomic
/// loads (the last word may end in the slot's padding; only `size` bytes
/// reach dst). Inlined with a constant size, the loop unrolls into plain
/// 8-byte moves.
inline void load_message(void* dst, const std::byte* slot_msg, std::size_t size) noexcept {
    auto* d = static_cast<unsigned char*>(dst);
    std::size_t off = 0;
#pragma GCC unroll 8
    for (; off + 8 <= size; off += 8) {
        const std::uint64_t w = word_at(slot_msg + off).load(std::memory_order_relaxed);
        std::memcpy(d + off, &w, 8);
    }
    if (off < size) {
        const std::uint64_t w = word_at(slot_msg + off).load(std::memory_order_relaxed);
        std::memcpy(d + off, &w, size - off);
    }
}

/// Copies `size` message bytes into a slot with relaxed 8-byte atomic
/// stores (a last partial word is zero-padded: the slot's padding).
inline void store_message(std::byte* slot_msg, const void* src, std::size_t size) noexcept {
    const auto* s = static_cast<const unsigned char*>(src);
    std::size_t off = 0;
#pragma GCC unroll 8
    for (; off + 8 <= size; off += 8) {
        std::uint64_t w;
        std::memcpy(&w, s + off, 8);
        word_at(slot_msg + off).store(w, std::memory_order_relaxed);
    }
    if (off < size) {
        std::uint64_t w = 0;
        std::memcpy(&w, s + off, size - off);
        word_at(slot_msg + off).store(w, std::memory_order_relaxed);
    }
}

// ---------------------------------------------------------------------------
// Handshake fences (ABI.md §8 "Memory-ordering rule", §8.6).
//
// Each handshake H1, H2, H5 is a store followed by a load of a word the
// other side stored. The strong and heavy sides separate them with a
// sequentially consistent fence (a LOCK-prefixed instruction with GCC,
// MFENCE with clang); the light side of an asymmetric ring with a compiler
// barrier only, paired with a membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) on
// the heavy side. membarrier is outside the C++ memory model: the kernel runs
// a full barrier on every CPU running a registered thread (a CPU that is not
// passed one at its context switch), which is what makes the pairing hold.

/// A StoreLoad fence on the strong side of a handshake.
inline void full_fence() noexcept {
    if constexpr (kThreadSanitizer) {
        // TSan does not model fences (GCC warns about them); a locked
        // read-modify-write is the same barrier to the CPU.
        static std::atomic<std::uint32_t> word{0};
        (void)word.exchange(0, std::memory_order_seq_cst);
    } else {
        std::atomic_thread_fence(std::memory_order_seq_cst);
    }
}

/// The light side's separator: no instruction, but the compiler may not
/// move the load above the store.
inline void light_fence() noexcept { std::atomic_signal_fence(std::memory_order_seq_cst); }

/// TACHYON_FENCES=strong makes this process create strong rings and join
/// asymmetric ones as a membarrier-less subscriber (ABI.md §8.6). Read at
/// every create and attach, never on a hot path.
[[nodiscard]] inline bool fences_forced_strong() noexcept {
    const char* v = std::getenv("TACHYON_FENCES");
    return v != nullptr && std::string_view(v) == "strong";
}

/// Whether this process is registered for MEMBARRIER_CMD_GLOBAL_EXPEDITED
/// and can issue it (it registers on the first call): what taking part in
/// asymmetric fences needs. False under TACHYON_FENCES=strong.
[[nodiscard]] inline bool membarrier_registered() noexcept {
    static const bool registered = [] {
        const long q = ::syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
        constexpr long need = MEMBARRIER_CMD_GLOBAL_EXPEDITED | MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED;
        if (q < 0 || (q & need) != need) return false;
        return ::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0;
    }();
    return registered && !fences_forced_strong();
}

/// The heavy side of an asymmetric fence: a full barrier on every running
/// thread of every registered process.
inline void heavy_barrier() noexcept { ::syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0); }

// ---------------------------------------------------------------------------
// Clocks and deadlines.

using Clock = std::chrono::steady_clock;

/// now + d, saturating (kForever never overflows).
[[nodiscard]] inline Clock::time_point deadline_after(std::chrono::nanoseconds d) noexcept {
    const auto now = Clock::now();
    if (d >= kForever / 2 || d > Clock::time_point::max() - now) return Clock::time_point::max();
    return now + std::chrono::duration_cast<Clock::duration>(d);
}

/// CLOCK_MONOTONIC in ns: the clock of every heartbeat (system-wide).
[[nodiscard]] inline std::uint64_t mono_now() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

[[nodiscard]] inline std::uint64_t realtime_now() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

// ---------------------------------------------------------------------------
// Futexes (ABI.md §8.3): eventcount words shared between processes, so never
// FUTEX_PRIVATE_FLAG.

/// FUTEX_WAIT on a shared word while it holds val, at most d. True if the
/// sleep ended by timeout (the watchdog fired).
inline bool futex_wait(std::uint32_t* addr, std::uint32_t val, std::chrono::nanoseconds d) noexcept {
    if (d <= 0ns) return false;
    // duration_cast to timespec's own field types: exact on every ABI, and
    // no cast that -Wuseless-cast or -Wconversion would flag.
    timespec ts{};
    const auto sec = std::chrono::duration_cast<std::chrono::duration<decltype(ts.tv_sec)>>(d);
    ts.tv_sec = sec.count();
    ts.tv_nsec = std::chrono::duration_cast<std::chrono::duration<decltype(ts.tv_nsec), std::nano>>(d - sec).count();
    const long r = ::syscall(SYS_futex, addr, FUTEX_WAIT, val, &ts, nullptr, 0);
    return r != 0 && errno == ETIMEDOUT;
}

/// FUTEX_WAKE of at most n waiters on a shared word.
inline void futex_wake(std::uint32_t* addr, int n) noexcept {
    ::syscall(SYS_futex, addr, FUTEX_WAKE, n, nullptr, nullptr, 0);
}

/// Advances an eventcount of which the caller is the only writer (a load
/// and a store: no read-modify-write, ABI.md §1), then wakes up to n of its
/// waiters. The caller changed the condition they wait for before this.
inline void advance_and_wake(std::uint32_t* count, int n) noexcept {
    std::atomic_ref<std::uint32_t> c(*count);
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    futex_wake(count, n);
}

inline void yield() noexcept { ::sched_yield(); }

// ---------------------------------------------------------------------------
// Test seam: when a test sets it, called at named steps of the protocol
// ("register:joining", "register:epoch", "wait:park", "wait:futex") so that the test can
// interleave another party's steps there deterministically. Never set
// otherwise; a null check on paths that already make system calls.
inline void (*test_hook)(std::string_view point) = nullptr;

inline void hook(std::string_view point) {
    if (test_hook != nullptr) test_hook(point);
}

}  // namespace detail

}  // namespace tachyon
