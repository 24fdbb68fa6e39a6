// Fixtures shared by the C++ ring tests: the golden vectors' message
// types, fresh ring names, a forked helper process, and the reader-side
// bookkeeping of PEERS.md (gaps, torn, reordered).
#pragma once

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tachyon/ring.hpp>

#include "harness.hpp"
#include "messages.hpp"

namespace fixtures {

using namespace std::chrono_literals;
using harness::check;
using harness::check_eq;
using tachyon::Errc;
using tachyon::Policy;
using tachyon::Publisher;
using tachyon::Subscriber;
using Clock = std::chrono::steady_clock;

/// Where the golden ABI vectors are (main() takes --golden DIR).
inline std::string golden_dir = "golden/abi";

// ---------------------------------------------------------------------------
// Message types (messages.hpp) and impostors.

/// A type that claims another identity: what a peer built from a different
/// schema looks like.
template <std::uint64_t Fp, std::uint32_t Id, std::size_t Size, std::size_t Align>
struct alignas(Align) Impostor {
    static constexpr std::uint64_t kFingerprint = Fp;
    static constexpr std::uint32_t kTypeId = Id;
    static constexpr std::size_t kSize = Size;
    static constexpr std::size_t kAlign = Align;
    std::byte bytes[Size];
};

// ---------------------------------------------------------------------------
// Fixtures.

/// A fresh segment name under this process's prefix; the destructor removes
/// a leftover (a killed owner's, or a test's hand-made file).
class RingName {
public:
    RingName() : name_("t-cpp-" + std::to_string(::getpid()) + "-" + std::to_string(++counter_)) {}
    RingName(const RingName&) = delete;
    RingName& operator=(const RingName&) = delete;
    ~RingName() { ::unlink(path().c_str()); }
    [[nodiscard]] const std::string& str() const { return name_; }
    [[nodiscard]] std::string path() const { return "/dev/shm/" + name_; }
    operator std::string_view() const { return name_; }  // NOLINT: a name is a name

private:
    static inline int counter_ = 0;
    std::string name_;
};

/// Writes bytes as the segment file `name` with the given mode.
inline void write_segment(const RingName& name, std::span<const std::byte> bytes, mode_t mode = 0600) {
    ::unlink(name.path().c_str());
    const int fd = ::open(name.path().c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    check(fd >= 0, "create " + name.path() + ": " + std::strerror(errno));
    check(::fchmod(fd, mode) == 0, "fchmod");
    std::size_t off = 0;
    while (off < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
        check(n > 0, "write segment");
        off += static_cast<std::size_t>(n);
    }
    ::close(fd);
}

/// A shared u64 of a live segment, seen through a publisher's mapping: how
/// tests read counters and play a hostile peer.
template <class T>
std::atomic_ref<std::uint64_t> shared_u64(const Publisher<T>& pub, std::uint64_t off) {
    auto* p = const_cast<std::byte*>(pub.segment_bytes().data()) + off;
    return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(p));
}
template <class T>
std::atomic_ref<std::uint32_t> shared_u32(const Publisher<T>& pub, std::uint64_t off) {
    auto* p = const_cast<std::byte*>(pub.segment_bytes().data()) + off;
    return std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(p));
}

inline std::uint64_t entry_off(std::uint64_t table_off, std::uint64_t i, std::uint64_t field) {
    return table_off + i * tachyon::abi::kEntrySize + field;
}

/// The geometry of a publisher's own ring, decoded from its header.
template <class T>
tachyon::abi::Geometry geometry(const Publisher<T>& pub) {
    const auto d = tachyon::abi::decode_header(pub.segment_bytes().first(tachyon::abi::kHeaderSize));
    check_eq(d.error, Errc::ok, "own header");
    return d.header.geo;
}

template <class T>
std::uint64_t table_off(const Publisher<T>& pub) {
    return geometry(pub).table_off;
}

/// Whether entry i of a publisher's ring is evicted (ABI.md §5.5): its
/// eviction word holds its generation.
template <class T>
bool entry_evicted(const Publisher<T>& pub, std::uint64_t i) {
    namespace abi = tachyon::abi;
    const auto g = geometry(pub);
    return shared_u64(pub, g.evict_word_off(i)).load() == shared_u64(pub, g.entry_off(i) + abi::kEntGen).load();
}

/// Sets an environment variable for a scope (single-threaded tests only).
class ScopedEnv {
public:
    ScopedEnv(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) old_ = old;
        ::setenv(name, value, 1);
    }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;
    ~ScopedEnv() {
        if (old_) ::setenv(name_, old_->c_str(), 1);
        else ::unsetenv(name_);
    }

private:
    const char* name_;
    std::optional<std::string> old_;
};

/// The uid and gid of `nobody`, whom tests switch a forked child to.
inline constexpr uid_t kNobody = 65534;

/// In a forked child: becomes `nobody` (needs root), keeping the group.
inline void become_nobody() {
    const bool ok = ::setgroups(0, nullptr) == 0 && ::setgid(kNobody) == 0 && ::setuid(kNobody) == 0;
    const int err = errno;
    check(ok, std::string("switch to uid 65534: ") + std::strerror(err));
}

template <class T>
void publish_ticks(Publisher<T>& pub, std::uint64_t first, std::uint64_t n) {
    for (std::uint64_t s = first; s < first + n; ++s) {
        auto m = pub.claim();
        check_eq(m.error(), Errc::ok, "claim");
        (*m)->fill(s);
        check_eq(pub.commit(), Errc::ok, "commit");
    }
}

/// What a reader saw: the PEERS.md checks.
struct Seen {
    std::uint64_t received = 0, gaps = 0, torn = 0, reordered = 0;
    std::int64_t last = -1;

    /// Messages never seen, of indices 0..n-1: the drops, for a reader that
    /// joined at 0.
    [[nodiscard]] std::uint64_t missing(std::uint64_t n) const {
        return gaps + static_cast<std::uint64_t>(static_cast<std::int64_t>(n) - 1 - last);
    }

    template <class T>
    void add(const T& m) {
        if (!m.intact()) {
            ++torn;
            return;
        }
        const auto s = static_cast<std::int64_t>(m.seq);
        if (s <= last)
            ++reordered;
        else
            gaps += static_cast<std::uint64_t>(s - last - 1);
        last = std::max(last, s);
        ++received;
    }
};

/// Receives until the publisher closes; every message goes through `seen`.
template <class T>
Errc drain(Subscriber<T>& sub, Seen& seen, std::chrono::nanoseconds slow = 0ns) {
    T m{};
    for (;;) {
        const Errc e = sub.recv(m, 20s);
        if (e != Errc::ok) return e;
        seen.add(m);
        if (slow > 0ns) std::this_thread::sleep_for(slow);
    }
}

/// A forked helper process, spoken to in one-word lines over two pipes.
class Child {
public:
    /// Forks; the child runs body(link) and exits (status 1 on a failed
    /// check). The parent gets the handle.
    template <class F>
    static Child spawn(F&& body) {
        int down[2], up[2];
        check(::pipe2(down, O_CLOEXEC) == 0 && ::pipe2(up, O_CLOEXEC) == 0, "pipe");
        std::fflush(nullptr);
        const pid_t pid = ::fork();
        check(pid >= 0, "fork");
        if (pid == 0) {
            ::close(down[1]);
            ::close(up[0]);
            Child link(0, down[0], up[1]);
            harness::run_child([&] { body(link); });
        }
        ::close(down[0]);
        ::close(up[1]);
        return Child(pid, up[0], down[1]);
    }

    Child(Child&& o) noexcept
        : pid_(std::exchange(o.pid_, 0)), in_(std::exchange(o.in_, -1)), out_(std::exchange(o.out_, -1)) {}
    Child& operator=(Child&&) = delete;
    ~Child() {
        if (pid_ > 0) kill();
        if (in_ >= 0) ::close(in_);
        if (out_ >= 0) ::close(out_);
    }

    void say(std::string_view word) {
        const std::string line = std::string(word) + "\n";
        check(::write(out_, line.data(), line.size()) == static_cast<ssize_t>(line.size()), "pipe write");
    }
    /// Reads the next line and checks it is `word`.
    void expect(std::string_view word, std::chrono::milliseconds timeout = 10s) {
        std::string line;
        const auto deadline = Clock::now() + timeout;
        for (char c = 0; c != '\n';) {
            pollfd p{in_, POLLIN, 0};
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            check(left.count() > 0 && ::poll(&p, 1, static_cast<int>(left.count())) == 1,
                  "waiting for \"" + std::string(word) + "\": timeout");
            check(::read(in_, &c, 1) == 1, "waiting for \"" + std::string(word) + "\": peer exited");
            if (c != '\n') line += c;
        }
        check_eq(line, std::string(word), "peer said");
    }
    /// SIGKILL, then reap (once: pid 0 would be the whole process group).
    void kill() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        int st = 0;
        ::waitpid(pid_, &st, 0);
        pid_ = 0;
    }
    /// Waits for a normal exit and returns its status.
    int wait() {
        if (pid_ <= 0) return -1;
        int st = 0;
        ::waitpid(pid_, &st, 0);
        pid_ = 0;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }

private:
    Child(pid_t pid, int in, int out) : pid_(pid), in_(in), out_(out) {}
    pid_t pid_;
    int in_, out_;
};

/// Threads of a test. A failed check in one is carried to join(), which
/// rethrows it in the test's thread; and if the test ends early (a check
/// failed in it), the destructor runs `stop` (say, closing the publisher,
/// which ends every reader) and joins, instead of std::terminate.
class Threads {
public:
    explicit Threads(std::function<void()> stop) : stop_(std::move(stop)) {}
    Threads(const Threads&) = delete;
    Threads& operator=(const Threads&) = delete;
    ~Threads() {
        if (std::any_of(threads_.begin(), threads_.end(), [](const std::thread& t) { return t.joinable(); })) {
            stop_();
            for (std::thread& t : threads_)
                if (t.joinable()) t.join();
        }
    }

    template <class F>
    void go(F&& f) {
        threads_.emplace_back([this, f = std::forward<F>(f)]() mutable {
            try {
                f();
            } catch (const harness::Failure& e) {
                const std::lock_guard lock(mu_);
                if (!failure_) failure_ = e;
                stop_();
            }
        });
    }

    /// Joins every thread, then rethrows the first failure among them.
    void join() {
        for (std::thread& t : threads_)
            if (t.joinable()) t.join();
        if (failure_) throw *failure_;
    }

private:
    std::function<void()> stop_;
    std::vector<std::thread> threads_;
    std::mutex mu_;
    std::optional<harness::Failure> failure_;
};

/// CPU time of the calling thread.
inline std::chrono::nanoseconds thread_cpu() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

template <class F>
Errc attach_error(F&& attach, std::string* what = nullptr) {
    try {
        attach();
    } catch (const tachyon::Error& e) {
        if (what != nullptr) *what = e.what();
        return e.code();
    }
    return Errc::ok;
}

}  // namespace fixtures
