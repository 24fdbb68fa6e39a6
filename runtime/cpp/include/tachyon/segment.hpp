// A mapped ring segment and the Linux primitives around it (runtime/ABI.md
// §2, §9, §10, §14): creation, named and sealed; opening a name without ever
// waiting on what squats on it; attach's validation; the registry lock
// (flock) and the liveness locks (OFD byte-range write locks, probed with a
// read lock); and the removal of stale rings, which takes no lock.
#pragma once

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "tachyon/abi.hpp"
#include "tachyon/error.hpp"
#include "tachyon/wait.hpp"

namespace tachyon {

using namespace std::chrono_literals;

namespace detail {

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

/// raise() for a failed system call: `OP "NAME": CALL: strerror`.
[[noreturn, gnu::cold]] inline void raise_errno(Errc code, std::string_view op, std::string_view name,
                                                std::string_view call, int err) {
    raise(code, op, name, {call, ": ", std::strerror(err)});
}

inline constexpr const char* kShmDir = "/dev/shm";

[[nodiscard]] inline std::string shm_path(std::string_view name) { return cat({kShmDir, "/", name}); }

/// What a file that is not a regular file is, as the errors name it.
[[nodiscard]] inline std::string file_kind(mode_t mode) {
    switch (mode & S_IFMT) {
        case S_IFREG: return "a regular file";
        case S_IFIFO: return "a FIFO (named pipe)";
        case S_IFSOCK: return "a Unix socket";
        case S_IFCHR: return "a character device";
        case S_IFBLK: return "a block device";
        case S_IFDIR: return "a directory";
        case S_IFLNK: return "a symbolic link";
    }
    return cat({"a file of type ", Num::oct(mode & S_IFMT)});
}

/// Refuses anything but a regular file, naming what it is (ABI.md §2).
inline void require_regular(std::string_view op, std::string_view name, std::string_view path, const struct stat& st) {
    if (!S_ISREG(st.st_mode))
        raise(Errc::insecure, op, name, {path, " is ", file_kind(st.st_mode), ", not a ring segment"});
}

/// Retries a system call that failed with EINTR.
template <class F>
[[nodiscard]] int retry_eintr(F&& call) noexcept {
    int rc;
    do rc = call();
    while (rc < 0 && errno == EINTR);
    return rc;
}

/// Opens /dev/shm/NAME without ever waiting on what is there (ABI.md §2):
/// lstat first, refusing anything but a regular file (a FIFO would block a
/// plain open until a writer came); then an open that neither follows a
/// link nor blocks; then fstat again, since the name may have changed in
/// between. Returns the descriptor (the caller owns it) or throws.
[[nodiscard]] inline int open_regular(std::string_view op, std::string_view name, int flags) {
    const std::string path = shm_path(name);
    struct stat st{};
    if (::lstat(path.c_str(), &st) != 0) {
        const int err = errno;
        if (err == ENOENT) raise(Errc::not_found, op, name, {path});
        raise(Errc::system, op, name, {"lstat ", path, ": ", std::strerror(err)});
    }
    require_regular(op, name, path, st);
    const int fd = retry_eintr([&] { return ::open(path.c_str(), flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY); });
    if (fd < 0) {
        const int err = errno;
        if (err == ENOENT) raise(Errc::not_found, op, name, {path});
        raise(Errc::system, op, name, {"open ", path, ": ", std::strerror(err)});
    }
    struct Closer {
        int fd;
        bool armed = true;
        ~Closer() {
            if (armed) ::close(fd);
        }
    } closer{fd};
    if (::fstat(fd, &st) != 0) raise_errno(Errc::system, op, name, "fstat", errno);
    require_regular(op, name, path, st);
    closer.armed = false;
    return fd;
}

/// An OFD byte-range lock operation on fd (ABI.md §9).
[[nodiscard]] inline int ofd_lock(int fd, int cmd, short type, std::uint64_t start, std::uint64_t len,
                                  struct flock* out = nullptr) noexcept {
    struct flock lk{};
    lk.l_type = type;
    lk.l_whence = SEEK_SET;
    lk.l_start = static_cast<off_t>(start);
    lk.l_len = static_cast<off_t>(len);
    const int rc = retry_eintr([&] { return ::fcntl(fd, cmd, &lk); });
    if (out != nullptr) *out = lk;
    return rc;
}

/// Whether another open file description holds a write lock on the range.
/// The probe asks about a read lock, which only a write lock conflicts with:
/// a read lock, which anyone who can open the file read-only may take,
/// never makes a dead peer look alive. An error counts as held: never
/// declare a peer dead on a guess.
[[nodiscard]] inline bool write_locked(int fd, std::uint64_t start, std::uint64_t len) noexcept {
    struct flock lk{};
    return ofd_lock(fd, F_OFD_GETLK, F_RDLCK, start, len, &lk) != 0 || lk.l_type != F_UNLCK;
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
            named_ = o.named_;
            name_ = std::move(o.name_);
            hdr_ = o.hdr_;
        }
        return *this;
    }
    ~Segment() { release(); }

    /// Creates /dev/shm/NAME (ABI.md §2 "Creation"): opened 0600 with
    /// O_EXCL, so that nobody else can open it (and lock a range of it)
    /// before the producer's liveness lock is taken; then initialised.
    /// Returns it with that lock held.
    [[nodiscard]] static Segment create(std::string_view name, const abi::Header& hdr, mode_t mode) {
        const std::string path = shm_path(name);
        const int fd = retry_eintr([&] {
            return ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
        });
        if (fd < 0) {
            const int err = errno;
            if (err == EEXIST) raise(Errc::exists, "create", name, {path, " ", describe_existing(name)});
            raise(Errc::system, "create", name, {"open ", path, ": ", std::strerror(err)});
        }
        // Until the segment is complete, a failure removes the half-built
        // file (ours: O_EXCL created it).
        struct Unlinker {
            const std::string& path;
            bool armed = true;
            ~Unlinker() {
                if (armed) ::unlink(path.c_str());
            }
        } guard{path};
        Segment s = init("create", name, fd, hdr, mode);
        s.named_ = true;
        guard.armed = false;
        return s;
    }

    /// Creates a ring in an anonymous memfd ("memfd:tachyon:NAME" in
    /// /proc/PID/fd) and seals its size (ABI.md §14): nobody can shrink or
    /// grow it, so no reader can be killed by SIGBUS. Nothing appears in
    /// /dev/shm; subscribers receive the descriptor over a Unix socket.
    [[nodiscard]] static Segment create_sealed(std::string_view name, const abi::Header& hdr, mode_t mode) {
        const std::string label = cat({"tachyon:", name});
        const int fd = ::memfd_create(label.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0) raise_errno(Errc::system, "create sealed", name, "memfd_create", errno);
        Segment s = init("create sealed", name, fd, hdr, mode);
        if (::fcntl(s.fd_, F_ADD_SEALS, kSeals) != 0) raise_errno(Errc::system, "create sealed", name, "seal", errno);
        return s;
    }

    /// The seals of a sealed segment; a subscriber refuses a descriptor
    /// without all of them.
    static constexpr int kSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

    /// Opens and validates an existing named segment (ABI.md §2 "Attach",
    /// §6), read-write.
    [[nodiscard]] static Segment open(std::string_view op, std::string_view name, std::chrono::nanoseconds ready_timeout,
                                      bool allow_foreign_owner) {
        return open_fd(op, name, open_regular(op, name, O_RDWR), ready_timeout, allow_foreign_owner);
    }

    /// Validates and maps the segment open on fd, which it takes over
    /// (closed on error): attach steps 2 to 7. A segment still being created
    /// yields not_ready, never corrupt. The header is read with pread into
    /// private memory, once (a truncated file is a short read, not SIGBUS),
    /// validated there, and the mapping is made only after fstat shows the
    /// file holds all of it.
    [[nodiscard]] static Segment open_fd(std::string_view op, std::string_view name, int fd,
                                         std::chrono::nanoseconds ready_timeout, bool allow_foreign_owner) {
        Segment s;
        s.name_ = std::string(name);
        s.fd_ = fd;
        const auto fail = [&](Errc e, std::initializer_list<std::string_view> why) { raise(e, op, name, why); };
        struct stat st{};
        if (::fstat(s.fd_, &st) != 0) raise_errno(Errc::system, op, name, "fstat", errno);
        if (!S_ISREG(st.st_mode)) fail(Errc::insecure, {"the segment is ", file_kind(st.st_mode)});
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
    [[nodiscard]] int fd() const noexcept { return fd_; }

    // Offsets come from the validated local geometry: in bounds and
    // naturally aligned by construction.
    [[nodiscard]] std::atomic_ref<std::uint64_t> u64(std::uint64_t off) const noexcept {
        return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(base_ + off));
    }
    [[nodiscard]] std::atomic_ref<std::uint32_t> u32(std::uint64_t off) const noexcept {
        return std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(base_ + off));
    }
    /// A futex word (an eventcount, ABI.md §8.3).
    [[nodiscard]] std::uint32_t* futex_word(std::uint64_t off) const noexcept {
        return reinterpret_cast<std::uint32_t*>(base_ + off);
    }

    /// The registry lock (BSD flock on the file), bounded: LOCK_NB retries.
    /// Only registrants and detaching subscribers take it (ABI.md §8.4).
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
        return ofd_lock(fd_, F_OFD_SETLK, F_WRLCK, start, len) == 0;
    }
    void unlock(std::uint64_t start, std::uint64_t len) const noexcept {
        (void)ofd_lock(fd_, F_OFD_SETLK, F_UNLCK, start, len);
    }
    [[nodiscard]] bool try_lock_entry(std::uint64_t i) const noexcept {
        return try_lock(hdr_.geo.entry_off(i), abi::kEntrySize);
    }
    void unlock_entry(std::uint64_t i) const noexcept { unlock(hdr_.geo.entry_off(i), abi::kEntrySize); }
    /// Whether entry i's owner is alive: another open file description holds
    /// its write lock (ABI.md §9).
    [[nodiscard]] bool entry_alive(std::uint64_t i) const noexcept {
        return write_locked(fd_, hdr_.geo.entry_off(i), abi::kEntrySize);
    }
    [[nodiscard]] bool producer_alive() const noexcept {
        return write_locked(fd_, abi::kProdLockStart, abi::kProdLockLen);
    }

    /// Removes the segment's name if it is a named ring and the name still
    /// names this handle's file: unlinking by name alone could remove a ring
    /// created under the same name after ours was removed.
    void unlink_if_ours() const noexcept {
        if (!named_) return;
        const std::string path = shm_path(name_);
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
    /// Creation steps 2 to 7 (ABI.md §2) on a new, empty file that fd (taken
    /// over: closed on error) holds open.
    [[nodiscard]] static Segment init(std::string_view op, std::string_view name, int fd, const abi::Header& hdr,
                                      mode_t mode) {
        Segment s;
        s.fd_ = fd;
        s.name_ = std::string(name);
        s.hdr_ = hdr;
        // The producer's liveness lock first: from now on every peer, and
        // remove(), sees a live creator whatever state the file is in.
        if (!s.try_lock(abi::kProdLockStart, abi::kProdLockLen))
            raise_errno(Errc::system, op, name, "producer liveness lock", errno);
        // The umask filtered the mode given to open: set it exactly.
        if (::fchmod(s.fd_, mode) != 0) raise_errno(Errc::system, op, name, "fchmod", errno);
        const std::uint64_t size = hdr.geo.seg_size;
        struct statfs sfs{};
        if (::fstatfs(s.fd_, &sfs) == 0 && sfs.f_blocks != 0) {
            const std::uint64_t avail = sfs.f_bavail;  // unsigned: widens without a cast
            const std::uint64_t free_bytes = avail * static_cast<std::uint64_t>(sfs.f_bsize);
            if (size > free_bytes)
                raise(Errc::no_space, op, name, {"needs ", Num(size), " bytes, ", kShmDir, " has ", Num(free_bytes), " free"});
        }
        // Reserve the tmpfs pages now: ENOSPC here, not SIGBUS on first touch.
        if (retry_eintr([&] { return ::fallocate(s.fd_, 0, 0, static_cast<off_t>(size)); }) != 0) {
            const int err = errno;
            if (err == ENOSPC) raise_errno(Errc::no_space, op, name, "fallocate", err);
            if (err != EOPNOTSUPP) raise_errno(Errc::system, op, name, "fallocate", err);
            if (::ftruncate(s.fd_, static_cast<off_t>(size)) != 0) raise_errno(Errc::system, op, name, "ftruncate", errno);
        }
        struct stat st{};
        if (::fstat(s.fd_, &st) != 0) raise_errno(Errc::system, op, name, "fstat", errno);
        s.dev_ = st.st_dev;
        s.ino_ = st.st_ino;
        int err = 0;
        s.base_ = SharedMappings::map(s.fd_, st, size, &err);
        if (s.base_ == nullptr) raise_errno(Errc::system, op, name, "mmap", err);
        s.size_ = size;
        // The identity line: private to us until ready is stored.
        abi::encode_identity(std::span<std::byte>(s.base_, abi::kHeaderSize), hdr);
        // Producer control line, before ready: an attacher that sees ready
        // also sees an active producer. Release stores (single writer).
        s.u32(abi::kOffProdPid).store(static_cast<std::uint32_t>(::getpid()), std::memory_order_release);
        s.u64(abi::kOffProdStartTime).store(process_start_time(), std::memory_order_release);
        s.u64(abi::kOffProdHeartbeat).store(mono_now(), std::memory_order_release);
        if (!hdr.asym_fences) s.u32(abi::kOffProdFences).store(abi::kProdFencesStrong, std::memory_order_release);
        s.u32(abi::kOffProdState).store(abi::kProdActive, std::memory_order_release);
        // H6: ready is stored last, a release; pairs with the attacher's
        // load of ready before it copies the identity line.
        s.u32(abi::kOffReady).store(abi::kReadyReady, std::memory_order_release);
        return s;
    }

    /// Who owns the ring at an existing name and whether its publisher is
    /// alive, for the error of a create that found the name taken; what
    /// squats on it if it is no ring.
    [[nodiscard]] static std::string describe_existing(std::string_view name) {
        int fd = -1;
        try {
            fd = open_regular("inspect", name, O_RDONLY);
        } catch (const Error& e) {
            return cat({"(not a readable ring: ", e.what(), ")"});
        }
        std::byte raw[abi::kHeaderSize]{};
        const ssize_t n = ::pread(fd, raw, sizeof raw, 0);
        const bool alive = write_locked(fd, abi::kProdLockStart, abi::kProdLockLen);
        ::close(fd);
        const std::span<const std::byte> b(raw);
        if (n < static_cast<ssize_t>(abi::kHeaderSize) || abi::detail::load_le<std::uint64_t>(b, abi::kOffMagic) != abi::kMagic)
            return alive ? "(being created by a live publisher)" : "(not a ring segment: no TACHRING header)";
        const auto pid = abi::detail::load_le<std::uint32_t>(b, abi::kOffProdPid);
        const auto created = abi::detail::load_le<std::uint64_t>(b, abi::kOffCreatedNs);
        const std::uint64_t now = realtime_now();
        const std::uint64_t age = now > created ? (now - created) / 1'000'000'000ULL : 0;
        const std::string who = cat({"was created ", Num(age), "s ago by pid ", Num(pid)});
        if (alive) return cat({who, ", whose publisher is alive: pick another name or stop that publisher"});
        return cat({who, ", whose publisher is dead: it is stale; remove it with tachyon::remove(\"", name,
                    "\") or `tachyon-gen stat --reap ", name, "`"});
    }

    int fd_ = -1;
    std::byte* base_ = nullptr;
    std::size_t size_ = 0;
    dev_t dev_ = 0;
    ino_t ino_ = 0;
    bool named_ = false;  // a /dev/shm name the owner unlinks on close
    std::string name_;
    abi::Header hdr_{};
};

/// How old a segment that never became ready must be before remove() takes
/// its creator for dead rather than still initialising (ABI.md §10).
inline constexpr std::chrono::seconds kStaleInitAge{5};

}  // namespace detail

/// Removes a ring whose publisher is dead (ABI.md §10): the way to clean up
/// after a crashed owner. It takes no lock, so nothing another process holds
/// keeps a dead ring from being removed. Throws tachyon::Error: in_use (its
/// publisher holds its liveness lock, or it is being created), corrupt (a
/// file that is not a ring), insecure (a FIFO, socket, device, directory
/// or link at the name), not_found, invalid_name.
inline void remove(std::string_view name) {
    using detail::Num;
    if (auto why = abi::name_problem(name)) detail::raise(Errc::invalid_name, "remove", name, {*why});
    const int fd = detail::open_regular("remove", name, O_RDONLY);
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    if (detail::write_locked(fd, abi::kProdLockStart, abi::kProdLockLen))
        detail::raise(Errc::in_use, "remove", name, {"its publisher is alive"});
    struct stat st{};
    if (::fstat(fd, &st) != 0) detail::raise_errno(Errc::system, "remove", name, "fstat", errno);
    std::byte raw[abi::kHeaderSize]{};
    const ssize_t n = ::pread(fd, raw, sizeof raw, 0);
    const auto magic = abi::detail::load_le<std::uint64_t>(std::span<const std::byte>(raw), 0);
    const bool all_zero = n >= 0 && std::all_of(raw, raw + n, [](std::byte b) { return b == std::byte{0}; });
    if (n >= 8 && magic == abi::kMagic) {
        // A ring of any ABI version whose publisher is gone.
    } else if (all_zero) {
        // A creator that died before writing the header, or one still
        // initialising: only the former is stale.
        timespec now{};
        ::clock_gettime(CLOCK_REALTIME, &now);
        if (now.tv_sec - st.st_mtim.tv_sec < detail::kStaleInitAge.count())
            detail::raise(Errc::in_use, "remove", name, {"not initialised yet"});
    } else {
        detail::raise(Errc::corrupt, "remove", name, {"magic ", Num::hex(magic), ", not a ring segment; not removed"});
    }
    if (::unlink(detail::shm_path(name).c_str()) != 0 && errno != ENOENT)
        detail::raise_errno(Errc::system, "remove", name, "unlink", errno);
}

/// Removes every ring whose name starts with prefix and whose publisher is
/// dead, and returns their names. Live rings, rings being created and files
/// that are not rings are left alone.
inline std::vector<std::string> remove_stale(std::string_view prefix) {
    std::vector<std::string> removed;
    DIR* dir = ::opendir(detail::kShmDir);
    if (dir == nullptr) detail::raise_errno(Errc::system, "remove stale", prefix, "opendir /dev/shm", errno);
    std::vector<std::string> names;
    while (const dirent* e = ::readdir(dir)) {
        const std::string_view n(e->d_name);
        if (n.starts_with(prefix) && e->d_type == DT_REG && !abi::name_problem(n)) names.emplace_back(n);
    }
    ::closedir(dir);
    for (const std::string& n : names) {
        try {
            tachyon::remove(n);
            removed.push_back(n);
        } catch (const Error& e) {
            const Errc c = e.code();
            if (c != Errc::in_use && c != Errc::not_found && c != Errc::corrupt && c != Errc::insecure) throw;
        }
    }
    return removed;
}

}  // namespace tachyon
