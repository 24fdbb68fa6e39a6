// Tests of what no local user can do to a ring (runtime/ABI.md §2, §9-§11;
// issue 14): squatters at the ring's name, locks held by a stalled
// subscriber or by a read-only process of another uid, a fake read lock on a
// dead publisher's range, and the removal of stale rings. Each asserts an
// outcome (an error naming what is there, a publish that does not time out,
// a verdict) that the v1 protocol could not give.
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <tachyon/ring.hpp>

#include "fixtures.hpp"
#include "harness.hpp"

namespace {

using namespace fixtures;
using harness::check;
using harness::check_contains;
using harness::check_eq;
using harness::Scope;

namespace abi = tachyon::abi;

/// In a forked child: a descriptor of the ring opened read-only, as another
/// user allowed to read it would (as `nobody` when we are root, which this
/// project's test machines and CI are; else as ourselves, read-only).
int open_read_only(const RingName& name) {
    if (::geteuid() == 0) become_nobody();
    const int fd = ::open(name.path().c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    const int err = errno;
    check(fd >= 0, "open read-only: " + std::string(std::strerror(err)));
    return fd;
}

/// Tries a read lock on [start, start+len), what any reader may take where
/// nobody holds a write lock: false if a write lock is in the way.
bool read_lock(int fd, std::uint64_t start, std::uint64_t len) {
    struct flock lk{};
    lk.l_type = F_RDLCK;
    lk.l_whence = SEEK_SET;
    lk.l_start = static_cast<off_t>(start);
    lk.l_len = static_cast<off_t>(len);
    if (::fcntl(fd, F_OFD_SETLK, &lk) == 0) return true;
    const int err = errno;
    check(err == EAGAIN || err == EACCES, "read lock: " + std::string(std::strerror(err)));
    return false;
}

/// A FIFO, a Unix socket, a character device, a directory or a symbolic
/// link at the ring's name: create, attach and remove refuse it at once
/// (never waiting on it: a plain open of a FIFO blocks), naming what it is,
/// and leave it where it is.
void squatters_refused() {
    struct Squatter {
        const char* kind;
        int (*make)(const char* path);  // returns an fd to keep open, or -1
    };
    const Squatter squatters[] = {
        {"a FIFO (named pipe)", [](const char* p) { return ::mkfifo(p, 0600) == 0 ? -1 : -2; }},
        {"a Unix socket",
         [](const char* p) {
             const int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
             sockaddr_un a{};
             a.sun_family = AF_UNIX;
             std::strncpy(a.sun_path, p, sizeof a.sun_path - 1);
             return ::bind(s, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0 ? s : -2;
         }},
        {"a character device", [](const char* p) { return ::mknod(p, S_IFCHR | 0600, ::makedev(1, 3)) == 0 ? -1 : -2; }},
        {"a directory", [](const char* p) { return ::mkdir(p, 0700) == 0 ? -1 : -2; }},
        {"a symbolic link", [](const char* p) { return ::symlink("/dev/null", p) == 0 ? -1 : -2; }},
    };
    for (const Squatter& sq : squatters) {
        Scope scope(sq.kind);
        RingName name;
        const int keep = sq.make(name.path().c_str());
        check(keep != -2, "make the squatter: " + std::string(std::strerror(errno)));
        const std::string says = name.path() + " is " + sq.kind + ", not a ring segment";
        std::string what;
        check_eq(attach_error([&] { (void)Publisher<Tick>::create(name); }, &what), Errc::exists, "create");
        check_contains(what, says);
        check_eq(attach_error([&] { (void)Subscriber<Tick>::attach(name, {.ready_timeout = 0ns}); }, &what),
                 Errc::insecure, "attach");
        check_contains(what, "attach \"" + name.str() + "\": insecure segment: " + says);
        check_eq(attach_error([&] { tachyon::remove(name); }, &what), Errc::insecure, "remove");
        check_contains(what, says);
        struct stat st{};
        check(::lstat(name.path().c_str(), &st) == 0, "the squatter is left alone");
        if (keep >= 0) ::close(keep);
        if (S_ISDIR(st.st_mode)) ::rmdir(name.path().c_str());
    }
}

/// A subscriber of our uid stalls while it holds the registry lock: the
/// Block publisher evicts it within its liveness timeout anyway (v1 needed
/// that lock to evict, and waited until its own timeout). Registrations
/// time out meanwhile, naming the ring; the producer is unaffected.
void stall_holding_registry_lock() {
    RingName name;
    // The publish timeout is the bound: liveness + 2 s of margin.
    auto pub = Publisher<Tick>::create(name, {.capacity = 8, .timeout = 2300ms, .liveness_timeout = 300ms});
    Child staller = Child::spawn([&](Child& link) {
        auto sub = Subscriber<Tick>::attach(name);
        const int fd = ::open(name.path().c_str(), O_RDWR | O_CLOEXEC);
        check(fd >= 0 && ::flock(fd, LOCK_EX) == 0, "flock");
        link.say("holding");
        link.expect("never");
    });
    staller.expect("holding");
    check_eq(pub.active_subscribers(), 1u, "registered");
    publish_ticks(pub, 0, 20);  // fails on a timeout
    check(entry_evicted(pub, 0), "the stalled subscriber is evicted");
    check_eq(pub.evictions(), 1u, "evictions");
    std::string what;
    check_eq(attach_error([&] { (void)Subscriber<Tick>::attach(name); }, &what), Errc::timeout, "attach meanwhile");
    check_contains(what, "attach \"" + name.str() + "\": timeout: registry lock held by another process");
}

/// A process of another uid that may only read the ring (mode 0644) takes
/// the registry lock and a read lock on every entry no live owner
/// write-locks. A dead subscriber's entry is still reclaimed at once (v1
/// took the read lock for a live owner and waited out its liveness
/// timeout), and a stalled live one is still evicted within the liveness
/// timeout (v1 needed the registry lock for that).
void locks_of_a_read_only_user() {
    for (const bool stalled_case : {false, true}) {
        Scope scope(stalled_case ? "stalled subscriber" : "dead subscriber");
        RingName name;
        // Dead case: liveness 1 h, so only a reclaim can free the entry
        // within the 2 s publish timeout.
        auto pub = Publisher<Tick>::create(name, {.capacity = 8,
                                                  .timeout = stalled_case ? 2300ms : 2000ms,
                                                  .liveness_timeout = stalled_case ? 300ms : 3600s,
                                                  .mode = 0644});
        const auto g = geometry(pub);
        std::optional<Subscriber<Tick>> stalled;
        std::optional<Child> victim;
        if (stalled_case) {
            stalled.emplace(Subscriber<Tick>::attach(name));  // never reads
        } else {
            victim.emplace(Child::spawn([&](Child& link) {
                auto sub = Subscriber<Tick>::attach(name);
                link.say("ready");
                link.expect("never");
            }));
            victim->expect("ready");
        }
        if (victim) victim->kill();  // its write lock goes; the holder's read lock will take its place
        Child holder = Child::spawn([&](Child& link) {
            const int fd = open_read_only(name);
            check(::flock(fd, LOCK_EX) == 0, "flock on a read-only descriptor");
            std::uint64_t locked = 0;
            for (std::uint64_t i = 0; i < g.max_subs; ++i) if (read_lock(fd, g.entry_off(i), abi::kEntrySize)) ++locked;
            // All but a live stalled owner's entry.
            check_eq(locked, g.max_subs - (stalled_case ? 1 : 0), "entries read-locked");
            link.say("holding");
            link.expect("never");
        });
        holder.expect("holding");
        publish_ticks(pub, 0, 20);  // fails on a timeout
        check(entry_evicted(pub, 0), "entry 0 evicted or reclaimed");
        check_eq(pub.evictions(), 1u, "evictions");
        if (stalled) {
            // The publisher's write lock, not the holder's read lock, is
            // what a subscriber sees: it stays alive, and says "evicted".
            Tick m{};
            Errc e;
            while ((e = stalled->try_recv(m)) == Errc::ok) {
            }
            check_eq(e, Errc::evicted, "the stalled subscriber learns it");
        }
    }
}

/// A dead publisher whose liveness range another user read-locks once its
/// write lock is gone: its subscriber drains what was published and
/// reports "publisher dead" within the watchdog bound (v1 took the read
/// lock for a live publisher and waited forever), and remove() deletes the
/// ring, taking no lock, while that read lock and the registry lock are
/// still held.
void fake_read_lock_on_dead_publisher() {
    constexpr std::uint64_t n = 10;
    RingName name;
    Child publisher = Child::spawn([&](Child& link) {
        auto p = Publisher<Tick>::create(name, {.capacity = 64, .mode = 0644});
        link.say("ready");
        link.expect("go");
        publish_ticks(p, 0, n);
        p.flush();
        link.say("published");
        link.expect("never");
    });
    publisher.expect("ready");
    auto sub = Subscriber<Tick>::attach(name);
    publisher.say("go");
    publisher.expect("published");
    check_eq(attach_error([&] { tachyon::remove(name); }), Errc::in_use, "remove while the publisher lives");
    publisher.kill();
    Child holder = Child::spawn([&](Child& link) {
        const int fd = open_read_only(name);
        check(read_lock(fd, abi::kProdLockStart, abi::kProdLockLen), "read lock on the dead publisher's range");
        check(::flock(fd, LOCK_EX) == 0, "flock");
        link.say("holding");
        link.expect("never");
    });
    holder.expect("holding");
    Tick m{};
    std::uint64_t received = 0;
    Errc end;
    while ((end = sub.recv(m, 3s)) == Errc::ok) ++received;
    check_eq(received, n, "everything published is delivered first");
    check_eq(end, Errc::publisher_dead, "then the verdict (not a timeout)");
    tachyon::remove(name);
    check(::access(name.path().c_str(), F_OK) != 0, "remove deleted the read-locked stale ring");
}

/// remove() and remove_stale() delete only dead publishers' rings: never a
/// live ring, a ring being created, or a file that is not a ring.
void remove_stale_rings() {
    RingName live, dead, garbage, young;
    auto pub = Publisher<Tick>::create(live);
    {
        Child d = Child::spawn([&](Child& link) {
            auto p = Publisher<Tick>::create(dead);
            link.say("ready");
            link.expect("never");
        });
        d.expect("ready");
        d.kill();
    }
    std::vector<std::byte> junk(1600, std::byte{0x5a});
    write_segment(garbage, junk);
    write_segment(young, std::vector<std::byte>(1600));  // all zero, just created
    std::string what;
    check_eq(attach_error([&] { tachyon::remove(live); }, &what), Errc::in_use, "live");
    check_contains(what, "remove \"" + live.str() + "\": segment in use: its publisher is alive");
    check_eq(attach_error([&] { tachyon::remove(garbage); }, &what), Errc::corrupt, "garbage");
    check_contains(what, "not a ring segment; not removed");
    check_eq(attach_error([&] { tachyon::remove(young); }, &what), Errc::in_use, "young zero file");
    {
        // An all-zero header older than 5 s is a creator that died before
        // writing it: removed. A zero magic over other bytes is no ring.
        RingName old_zero, zero_magic;
        write_segment(old_zero, std::vector<std::byte>(1600));
        std::vector<std::byte> odd(1600);
        odd[100] = std::byte{1};
        write_segment(zero_magic, odd);
        for (const RingName* n : {&old_zero, &zero_magic}) {
            const timespec past[2] = {{::time(nullptr) - 60, 0}, {::time(nullptr) - 60, 0}};
            check(::utimensat(AT_FDCWD, n->path().c_str(), past, 0) == 0, "age the file");
        }
        tachyon::remove(old_zero);
        check(::access(old_zero.path().c_str(), F_OK) != 0, "the old all-zero file is removed");
        check_eq(attach_error([&] { tachyon::remove(zero_magic); }), Errc::corrupt, "zero magic, not an empty header");
    }
    check_eq(attach_error([&] { tachyon::remove("no-such-ring-" + live.str()); }), Errc::not_found, "missing");
    check_eq(attach_error([&] { tachyon::remove("../etc"); }), Errc::invalid_name, "name");
    // The sweep over this process's prefix removes exactly the dead one.
    const std::string prefix = "t-cpp-" + std::to_string(::getpid()) + "-";
    const std::vector<std::string> removed = tachyon::remove_stale(prefix);
    check_eq(removed.size(), 1u, "removed");
    check_eq(removed[0], dead.str(), "the dead publisher's ring");
    for (const RingName* kept : {&live, &garbage, &young})
        check(::access(kept->path().c_str(), F_OK) == 0, kept->str() + " is kept");
    (void)Subscriber<Tick>::attach(live);  // untouched
}

const harness::Register registered{
    {"squatters_refused", squatters_refused},
    {"stall_holding_registry_lock", stall_holding_registry_lock},
    {"locks_of_a_read_only_user", locks_of_a_read_only_user},
    {"fake_read_lock_on_dead_publisher", fake_read_lock_on_dead_publisher},
    {"remove_stale_rings", remove_stale_rings},
};

}  // namespace
