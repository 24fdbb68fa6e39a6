// A mapped ring segment and the Linux primitives around it: creation and
// attach exactly as runtime/ABI.md §2 says, the registry lock (flock), the
// liveness locks (OFD byte-range locks), futexes and clocks.
#pragma once

#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "tachyon/abi.hpp"
#include "tachyon/error.hpp"

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

/// Field 22 of /proc/self/stat (start time in clock ticks), 0 if unknown.
/// Recorded for diagnostics only; liveness is the OFD lock. Read afresh on
/// every call (create and attach only): a cached value would be the
/// parent's in a child forked after the first call.
[[nodiscard]] inline std::uint64_t process_start_time() noexcept {
    char buf[1024];
    const int fd = ::open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    const ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    // The command name may hold spaces and ')': count after the last ')'.
    const char* p = std::strrchr(buf, ')');
    if (p == nullptr) return 0;
    int field = 2;
    for (++p; *p != '\0';) {
        while (*p == ' ') ++p;
        if (*p == '\0') break;
        if (++field == 22) return static_cast<std::uint64_t>(std::strtoull(p, nullptr, 10));
        while (*p != ' ' && *p != '\0') ++p;
    }
    return 0;
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

/// raise() for a failed system call: `OP "NAME": CALL: strerror`.
[[noreturn, gnu::cold]] inline void raise_errno(Errc code, std::string_view op, std::string_view name,
                                                std::string_view call, int err) {
    raise(code, op, name, {call, ": ", std::strerror(err)});
}

/// The mappings of ring segments in this process. Every handle (publisher
/// or subscriber) opens the segment itself, so it has its own open file
/// description and with it its own flock and OFD-lock identity (ABI.md
/// §8.4, §9). The memory, though, is mapped once per file and size: N
/// subscribers of one ring cost one mapping, and ThreadSanitizer, which
/// tracks memory by virtual address, sees a publisher thread and its
/// subscriber threads touch each shared word at one address.
///
/// A file is named by (device, inode): while a mapping holds the file open
/// its inode cannot be reused, so the pair cannot name another file. The
/// size is part of the key so that a header rewritten under us (hostile)
/// can never make a handle use more bytes than were validated for it.
class SharedMappings {
public:
    /// Maps `size` bytes of fd, or takes a reference on the existing
    /// mapping of the same file and size. MAP_FAILED's errno in *err.
    [[nodiscard]] static std::byte* map(int fd, const struct stat& st, std::uint64_t size, int* err) {
        Table& t = table();
        const std::lock_guard lock(t.mu);
        for (Entry& e : t.entries) {
            if (e.dev == st.st_dev && e.ino == st.st_ino && e.size == size) {
                ++e.refs;
                return e.base;
            }
        }
        t.entries.reserve(t.entries.size() + 1);  // may throw; before mmap, so nothing leaks
        void* m = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED) {
            *err = errno;
            return nullptr;
        }
        t.entries.push_back(Entry{st.st_dev, st.st_ino, size, static_cast<std::byte*>(m), 1});
        return static_cast<std::byte*>(m);
    }

    /// Drops a reference; the last one unmaps.
    static void unmap(std::byte* base) noexcept {
        Table& t = table();
        const std::lock_guard lock(t.mu);
        for (std::size_t i = 0; i < t.entries.size(); ++i) {
            if (t.entries[i].base != base) continue;
            if (--t.entries[i].refs == 0) {
                ::munmap(base, t.entries[i].size);
                t.entries[i] = t.entries.back();
                t.entries.pop_back();
            }
            return;
        }
    }

private:
    struct Entry {
        dev_t dev;
        ino_t ino;
        std::uint64_t size;
        std::byte* base;
        std::size_t refs;
    };
    struct Table {
        std::mutex mu;
        std::vector<Entry> entries;
    };
    // Never destroyed: a handle with static storage duration may be closed
    // after function-local statics are gone.
    static Table& table() {
        static Table* t = new Table;
        return *t;
    }
};

/// One handle's view of a segment: its own open file description (so its
/// own flock and OFD-lock owner), the validated geometry (local copies,
/// never re-read from shared memory) and the mapping. Move-only RAII.
class Segment {
public:
    Segment() = default;
    Segment(const Segment&) = delete;
    Segment& operator=(const Segment&) = delete;
    Segment(Segment&& o) noexcept { *this = std::move(o); }
    Segment& operator=(Segment&& o) noexcept {
        if (this != &o) {
            release();
            fd_ = std::exchange(o.fd_, -1);
            base_ = std::exchange(o.base_, nullptr);
            size_ = std::exchange(o.size_, 0);
            dev_ = o.dev_;
            ino_ = o.ino_;
            name_ = std::move(o.name_);
            hdr_ = o.hdr_;
        }
        return *this;
    }
    ~Segment() { release(); }

    [[nodiscard]] static std::string path_of(std::string_view name) { return "/dev/shm/" + std::string(name); }

    /// Creates, sizes, maps and initialises a segment (ABI.md §2
    /// "Creation"), returning it with the producer's liveness lock held and
    /// the registry lock released.
    [[nodiscard]] static Segment create(std::string_view name, const abi::Header& hdr, mode_t mode) {
        const std::string path = path_of(name);
        Segment s;
        s.name_ = std::string(name);
        s.hdr_ = hdr;
        s.fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (s.fd_ < 0) {
            const int err = errno;
            if (err == EEXIST)
                raise(Errc::exists, "create", name,
                      {path, " (a stale one is removed by `tachyon-gen stat --reap ", name, "` or ring.Remove)"});
            raise(Errc::system, "create", name, {"open ", path, ": ", std::strerror(err)});
        }
        // Until the segment is complete, a failure removes the half-built
        // file (ours: O_EXCL created it) and releases what was taken.
        struct Unlinker {
            Segment& s;
            const std::string& path;
            bool armed = true;
            ~Unlinker() {
                if (armed) {
                    ::unlink(path.c_str());
                    s.release();
                }
            }
        } guard{s, path};
        // The umask filtered the mode given to open: set it exactly.
        if (::fchmod(s.fd_, mode) != 0) raise_errno(Errc::system, "create", name, "fchmod", errno);
        struct stat st{};
        if (::fstat(s.fd_, &st) != 0) raise_errno(Errc::system, "create", name, "fstat", errno);
        s.dev_ = st.st_dev;
        s.ino_ = st.st_ino;
        // Registry lock held during initialisation: a stale-segment sweep
        // leaves the half-built file alone.
        if (!s.lock_registry(1s)) raise(Errc::timeout, "create", name, {"registry lock held for 1s"});
        const std::uint64_t size = hdr.geo.seg_size;
        struct statfs sfs{};
        if (::fstatfs(s.fd_, &sfs) == 0 && sfs.f_blocks != 0) {
            const std::uint64_t avail = sfs.f_bavail;  // unsigned: widens without a cast
            const std::uint64_t free_bytes = avail * static_cast<std::uint64_t>(sfs.f_bsize);
            if (size > free_bytes)
                raise(Errc::no_space, "create", name,
                      {"needs ", Num(size), " bytes, /dev/shm has ", Num(free_bytes), " free"});
        }
        // Reserve the tmpfs pages now: ENOSPC here, not SIGBUS on first touch.
        int rc;
        do rc = ::fallocate(s.fd_, 0, 0, static_cast<off_t>(size));
        while (rc != 0 && errno == EINTR);
        if (rc != 0) {
            const int err = errno;
            if (err == ENOSPC) raise_errno(Errc::no_space, "create", name, "fallocate", err);
            if (err != EOPNOTSUPP) raise_errno(Errc::system, "create", name, "fallocate", err);
            if (::ftruncate(s.fd_, static_cast<off_t>(size)) != 0)
                raise_errno(Errc::system, "create", name, "ftruncate", errno);
        }
        int err = 0;
        s.base_ = SharedMappings::map(s.fd_, st, size, &err);
        if (s.base_ == nullptr) raise_errno(Errc::system, "create", name, "mmap", err);
        s.size_ = size;
        if (!s.try_lock(abi::kProdLockStart, abi::kProdLockLen))
            raise_errno(Errc::system, "create", name, "producer liveness lock", errno);
        // The identity line: private to us until ready is stored.
        abi::encode_identity(std::span<std::byte>(s.base_, abi::kHeaderSize), hdr);
        // Producer control line, before ready: an attacher that sees ready
        // also sees an active producer. Release stores (single writer).
        s.u32(abi::kOffProdPid).store(static_cast<std::uint32_t>(::getpid()), std::memory_order_release);
        s.u64(abi::kOffProdStartTime).store(process_start_time(), std::memory_order_release);
        s.u64(abi::kOffProdHeartbeat).store(mono_now(), std::memory_order_release);
        s.u32(abi::kOffProdState).store(abi::kProdActive, std::memory_order_release);
        // H6: ready is stored last, a release; pairs with the attacher's
        // load of ready before it copies the identity line.
        s.u32(abi::kOffReady).store(abi::kReadyReady, std::memory_order_release);
        s.unlock_registry();
        guard.armed = false;
        return s;
    }

    /// Opens and validates an existing segment (ABI.md §2 "Attach", §6).
    /// A segment still being created yields not_found or not_ready, never
    /// corrupt. The header is read with pread into private memory, once (a
    /// truncated file is a short read, not SIGBUS), validated there, and
    /// the mapping is made only after fstat shows the file holds all of it.
    [[nodiscard]] static Segment open(std::string_view op, std::string_view name, std::chrono::nanoseconds ready_timeout,
                                      bool allow_foreign_owner) {
        const std::string path = path_of(name);
        Segment s;
        s.name_ = std::string(name);
        s.fd_ = ::open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        if (s.fd_ < 0) {
            const int err = errno;
            if (err == ENOENT) raise(Errc::not_found, op, name, {path});
            raise(Errc::system, op, name, {"open ", path, ": ", std::strerror(err)});
        }
        const auto fail = [&](Errc e, std::initializer_list<std::string_view> why) { raise(e, op, name, why); };
        struct stat st{};
        if (::fstat(s.fd_, &st) != 0) raise_errno(Errc::system, op, name, "fstat", errno);
        if (!S_ISREG(st.st_mode)) fail(Errc::insecure, {"not a regular file"});
        if (!allow_foreign_owner && st.st_uid != ::geteuid())
            fail(Errc::insecure, {"owner uid ", Num(st.st_uid), ", want ", Num(::geteuid())});
        if ((st.st_mode & S_IWOTH) != 0) fail(Errc::insecure, {"mode ", Num::oct(st.st_mode & 07777), " is world-writable"});
        s.dev_ = st.st_dev;
        s.ino_ = st.st_ino;
        const auto deadline = deadline_after(ready_timeout);
        while (st.st_size < static_cast<off_t>(abi::kHeaderSize)) {
            // An empty file is a segment being created (sized right after
            // open), not a corrupt one: wait for it like for ready.
            if (st.st_size != 0)
                fail(Errc::corrupt, {"file is ", Num(st.st_size), " bytes, smaller than the 512-byte header"});
            if (Clock::now() >= deadline)
                fail(Errc::not_ready, {"the file is still empty (being created, or its creator died first)"});
            std::this_thread::sleep_for(1ms);
            if (::fstat(s.fd_, &st) != 0) raise_errno(Errc::system, op, name, "fstat", errno);
        }
        std::byte raw[abi::kHeaderSize];
        for (;;) {
            // H6: load ready first, then copy the identity line. pread is a
            // kernel copy (a load; x86 keeps loads in order and the syscall
            // boundary is a compiler barrier), pairing with the creator's
            // release store of ready.
            std::uint32_t ready = 0;
            if (::pread(s.fd_, &ready, sizeof ready, abi::kOffReady) != static_cast<ssize_t>(sizeof ready))
                fail(Errc::corrupt, {"short read of the ready word (truncated)"});
            if (ready == abi::kReadyReady) {
                if (::pread(s.fd_, raw, sizeof raw, 0) != static_cast<ssize_t>(sizeof raw))
                    fail(Errc::corrupt, {"short read of the header (truncated)"});
                // The copy is what gets validated; its ready word is the one
                // loaded before it, so no field is taken from two reads.
                std::memcpy(raw + abi::kOffReady, &ready, sizeof ready);
                break;
            }
            if (ready != abi::kReadyInit) fail(Errc::corrupt, {"ready word ", Num(ready), ", want 1"});
            if (Clock::now() >= deadline) fail(Errc::not_ready, {"ready word still 0"});
            std::this_thread::sleep_for(1ms);
        }
        abi::Decoded d = abi::decode_header(std::span<const std::byte>(raw, sizeof raw));
        if (d.error != Errc::ok) fail(d.error, {d.why});
        s.hdr_ = d.header;
        // Size from fstat, again, never from the header alone: the mapping
        // must lie inside the file.
        if (::fstat(s.fd_, &st) != 0) raise_errno(Errc::system, op, name, "fstat", errno);
        if (st.st_size < 0 || static_cast<std::uint64_t>(st.st_size) < s.hdr_.geo.seg_size)
            fail(Errc::corrupt, {"file is ", Num(st.st_size), " bytes, header says ", Num(s.hdr_.geo.seg_size)});
        int err = 0;
        s.base_ = SharedMappings::map(s.fd_, st, s.hdr_.geo.seg_size, &err);
        if (s.base_ == nullptr) raise_errno(Errc::system, op, name, "mmap", err);
        s.size_ = s.hdr_.geo.seg_size;
        return s;
    }

    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] const abi::Header& header() const noexcept { return hdr_; }
    [[nodiscard]] const abi::Geometry& geo() const noexcept { return hdr_.geo; }
    [[nodiscard]] std::byte* base() const noexcept { return base_; }
    [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return {base_, size_}; }

    // Offsets come from the validated local geometry: in bounds and
    // naturally aligned by construction.
    [[nodiscard]] std::atomic_ref<std::uint64_t> u64(std::uint64_t off) const noexcept {
        return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(base_ + off));
    }
    [[nodiscard]] std::atomic_ref<std::uint32_t> u32(std::uint64_t off) const noexcept {
        return std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(base_ + off));
    }
    /// The futex word aliasing the low half of a little-endian u64 index.
    [[nodiscard]] std::uint32_t* futex_word(std::uint64_t off) const noexcept {
        return reinterpret_cast<std::uint32_t*>(base_ + off);
    }

    /// The registry lock (BSD flock on the file), bounded: LOCK_NB retries.
    [[nodiscard]] bool lock_registry(std::chrono::nanoseconds timeout) const noexcept {
        const auto deadline = deadline_after(timeout);
        for (;;) {
            if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) return true;
            if (errno == EINTR) continue;
            if (errno != EWOULDBLOCK || Clock::now() >= deadline) return false;
            std::this_thread::sleep_for(100us);
        }
    }
    void unlock_registry() const noexcept { ::flock(fd_, LOCK_UN); }

    /// Takes an OFD write lock on [start, start+len) without waiting.
    [[nodiscard]] bool try_lock(std::uint64_t start, std::uint64_t len) const noexcept {
        return ofd(F_OFD_SETLK, F_WRLCK, start, len) == 0;
    }
    void unlock(std::uint64_t start, std::uint64_t len) const noexcept { (void)ofd(F_OFD_SETLK, F_UNLCK, start, len); }
    /// Whether another open file description holds a lock on the range. An
    /// error counts as held: never declare a peer dead on a guess.
    [[nodiscard]] bool held(std::uint64_t start, std::uint64_t len) const noexcept {
        struct flock lk{};
        lk.l_type = F_WRLCK;
        lk.l_whence = SEEK_SET;
        lk.l_start = static_cast<off_t>(start);
        lk.l_len = static_cast<off_t>(len);
        int rc;
        do rc = ::fcntl(fd_, F_OFD_GETLK, &lk);
        while (rc != 0 && errno == EINTR);
        return rc != 0 || lk.l_type != F_UNLCK;
    }
    [[nodiscard]] bool try_lock_entry(std::uint64_t i) const noexcept {
        return try_lock(hdr_.geo.entry_off(i), abi::kEntrySize);
    }
    void unlock_entry(std::uint64_t i) const noexcept { unlock(hdr_.geo.entry_off(i), abi::kEntrySize); }
    [[nodiscard]] bool entry_alive(std::uint64_t i) const noexcept {
        return held(hdr_.geo.entry_off(i), abi::kEntrySize);
    }
    [[nodiscard]] bool producer_alive() const noexcept { return held(abi::kProdLockStart, abi::kProdLockLen); }

    /// Removes the segment's name if it still names this handle's file.
    /// Unlinking by name alone could remove a ring created under the same
    /// name after ours was removed (by `stat --reap` or by hand).
    void unlink_if_ours() const noexcept {
        const std::string path = path_of(name_);
        struct stat st{};
        if (::lstat(path.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) ::unlink(path.c_str());
    }

    /// Unmaps and closes (which drops every lock of this handle).
    void release() noexcept {
        if (base_ != nullptr) SharedMappings::unmap(base_);
        if (fd_ >= 0) ::close(fd_);
        base_ = nullptr;
        size_ = 0;
        fd_ = -1;
    }

private:
    [[nodiscard]] int ofd(int cmd, short type, std::uint64_t start, std::uint64_t len) const noexcept {
        struct flock lk{};
        lk.l_type = type;
        lk.l_whence = SEEK_SET;
        lk.l_start = static_cast<off_t>(start);
        lk.l_len = static_cast<off_t>(len);
        int rc;
        do rc = ::fcntl(fd_, cmd, &lk);
        while (rc != 0 && errno == EINTR);
        return rc;
    }

    int fd_ = -1;
    std::byte* base_ = nullptr;
    std::size_t size_ = 0;
    dev_t dev_ = 0;
    ino_t ino_ = 0;
    std::string name_;
    abi::Header hdr_{};
};

}  // namespace detail
}  // namespace tachyon
