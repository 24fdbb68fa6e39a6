// Waiting and waking in the Tachyon C++ ring client: the watchdog bound,
// clocks and deadlines, shared futexes, and the seqlock fences
// (runtime/ABI.md §8, §8.3).
#pragma once

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>

#include <linux/futex.h>
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

/// Seqlock write-side fence: stores after it (the message bytes) become
/// visible after the stamp store before it. On x86 a compiler barrier only.
inline void seqlock_write_fence() noexcept {
    if constexpr (kThreadSanitizer) {
        // TSan does not model thread fences (and GCC warns about them); the
        // TSan tests run lossless streams whose message bytes are ordered by
        // the head/stamp release-acquire pairs instead.
        std::atomic_signal_fence(std::memory_order_seq_cst);
    } else {
        std::atomic_thread_fence(std::memory_order_release);
    }
}

/// Seqlock read-side fence: the message copy before it completes before the
/// stamp re-check after it (ABI.md §8.5 step 3).
inline void seqlock_read_fence() noexcept {
    if constexpr (kThreadSanitizer) {
        std::atomic_signal_fence(std::memory_order_seq_cst);
    } else {
        std::atomic_thread_fence(std::memory_order_acquire);
    }
}

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

/// FUTEX_WAIT on a shared (not PRIVATE) word, at most d. True if the sleep
/// ended by timeout (the watchdog fired).
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

inline void yield() noexcept { ::sched_yield(); }

}  // namespace detail

}  // namespace tachyon
