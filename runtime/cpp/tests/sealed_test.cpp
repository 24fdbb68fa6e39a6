// Tests of the sealed mode (runtime/ABI.md §14): a C++ publisher's memfd ring
// served on a Unix socket, C++ subscribers dialing it, the seals (truncation
// fails with EPERM), the handshake's refusals, and a subscriber refusing an
// unsealed or foreign descriptor. Go <-> C++ in both directions is in
// runtime/cpp/cpp_test.go.
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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

/// A private temporary directory for sockets, removed with what is in it.
class TempDir {
public:
    TempDir() {
        char tmpl[] = "/tmp/tachyon-cpp-test-XXXXXX";
        check(::mkdtemp(tmpl) != nullptr, "mkdtemp");
        path_ = tmpl;
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() {
        if (DIR* d = ::opendir(path_.c_str())) {
            while (const dirent* e = ::readdir(d)) {
                if (std::string_view(e->d_name) != "." && std::string_view(e->d_name) != "..") ::unlink(file(e->d_name).c_str());
            }
            ::closedir(d);
        }
        ::rmdir(path_.c_str());
    }
    [[nodiscard]] std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

private:
    std::string path_;
};

/// A sealed ring served on a socket in a private directory by a thread,
/// stopped at scope exit.
struct Served {
    RingName name;
    TempDir dir;
    std::string path = dir.file("ring.sock");
    Publisher<Tick> pub;
    tachyon::SealedServer server;
    std::thread thread;

    explicit Served(tachyon::Options opts = {.capacity = 64})
        : pub(Publisher<Tick>::create_sealed(name, opts)), server(pub.serve(path)) {}
    Served(const Served&) = delete;
    Served& operator=(const Served&) = delete;
    void start() {
        thread = std::thread([this] { server.run(); });
    }
    ~Served() {
        server.stop();
        if (thread.joinable()) thread.join();
    }
};

/// A subscriber in another process dials the socket and reads a verified
/// stream. While it lives, the producer counts it as registered: its
/// liveness lock is held by its own open file description (the received
/// descriptor was reopened; the publisher's would not count). Nothing of
/// the ring is in /dev/shm, and the socket is created with mode 0600.
void sealed_stream_other_process() {
    constexpr std::uint64_t n = 100'000;
    Served s;
    check(::access(s.name.path().c_str(), F_OK) != 0, "a sealed ring has no name in /dev/shm");
    struct stat st{};
    check(::stat(s.path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode), "the socket exists");
    check_eq(st.st_mode & 0777, 0600u, "socket mode");
    Child reader = Child::spawn([&](Child& link) {
        auto sub = Subscriber<Tick>::dial(s.path);
        link.say("ready");
        Seen seen;
        check_eq(drain(sub, seen), Errc::closed, "end");
        check_eq(seen.received, n, "received");
        check_eq(seen.gaps + seen.torn + seen.reordered, 0u, "gap-free, intact, in order");
    });
    s.start();  // after the fork: the child is a copy of one thread
    reader.expect("ready");
    check_eq(s.pub.active_subscribers(), 1u, "registered, with a liveness lock of its own");
    publish_ticks(s.pub, 0, n);
    s.pub.close();
    check_eq(reader.wait(), 0, "reader exit status");
    check_eq(s.server.served(), 1u, "served");
}

/// Nobody can resize a sealed segment, not even a subscriber holding a
/// writable descriptor: ftruncate fails with EPERM both ways, and the seals
/// themselves are sealed.
void sealed_truncation_eperm() {
    std::optional<Served> s(std::in_place);
    s->start();
    const std::string path = s->path;
    const int fd = tachyon::detail::dial_sealed(path, tachyon::identity_of<Tick>());
    struct stat st{};
    check(::fstat(fd, &st) == 0, "fstat");
    const auto expect_eperm = [](int rc, const char* what) {
        const int err = errno;
        check(rc == -1 && err == EPERM, std::string(what) + ": " + (rc == 0 ? "succeeded" : std::strerror(err)));
    };
    expect_eperm(::ftruncate(fd, 0), "ftruncate to 0");
    expect_eperm(::ftruncate(fd, 2 * st.st_size), "ftruncate to double");
    expect_eperm(::fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), "add a seal");
    ::close(fd);
    auto sub = Subscriber<Tick>::dial(path);
    Tick m{};
    m.fill(7);
    check_eq(s->pub.publish(m), Errc::ok, "publish");
    s->pub.flush();
    check_eq(sub.try_recv(m), Errc::ok, "try_recv");
    check_eq(m.seq, 7u, "seq");
    sub.close();
    s.reset();
    check(::access(path.c_str(), F_OK) != 0, "the server removes its socket");
}

/// The handshake refuses a subscriber of another type with both values (on
/// the subscriber's side; the server counts it and goes on serving), and
/// every subscriber once the publisher closed.
void sealed_refusals() {
    Served s;
    s.start();
    const std::string& path = s.path;
    const TempDir& dir = s.dir;
    std::string what;
    check_eq(attach_error([&] { (void)Subscriber<Book>::dial(path); }, &what), Errc::mismatch, "another type");
    check_contains(what, "dial \"" + path + "\": message type mismatch: fingerprint 0x7ac49e0f1d2b3c4d, want 0xb00c000000000002");
    {
        auto sub = Subscriber<Tick>::dial(path);  // the server goes on
    }
    check_eq(attach_error([&] { (void)Subscriber<Tick>::dial(dir.file("none.sock")); }, &what), Errc::not_found, "no socket");
    check_eq(attach_error([&] { (void)s.pub.serve(path); }, &what), Errc::exists, "serve on a taken path");
    RingName named;
    auto plain = Publisher<Tick>::create(named);
    check_eq(attach_error([&] { (void)plain.serve(dir.file("plain.sock")); }, &what), Errc::invalid_options, "named ring");
    check_contains(what, "not a sealed ring");
    s.pub.close();
    check_eq(attach_error([&] { (void)Subscriber<Tick>::dial(path); }, &what), Errc::closed, "after close");
    check_contains(what, "refused the handshake");
    s.server.stop();
    s.thread.join();
    check_eq(s.server.served(), 1u, "served");
    check_eq(s.server.refused(), 2u, "refused");
    check_eq(s.server.accept_one(1s), Errc::closed, "a stopped server");
}

/// A fake server that answers OKAY with a descriptor of its choosing: one
/// without the seals (whose holder could truncate it), or none, or a reply
/// that is no handshake. The subscriber refuses each, naming why.
void sealed_refuses_unsealed() {
    TempDir dir;
    struct Case {
        const char* what;
        int seals;         // -1: no descriptor
        const char* magic;
        Errc want;
        const char* says;
    };
    const Case cases[] = {
        {"unsealed", 0, "TACHOKAY", Errc::insecure, "seals 0x0, want 0x7 (shrink, grow, seal)"},
        {"shrink only", F_SEAL_SHRINK, "TACHOKAY", Errc::insecure, "seals"},
        {"no descriptor", -1, "TACHOKAY", Errc::corrupt, "expected one descriptor, got 0"},
        {"not a ring socket", -1, "HTTP/1.1", Errc::corrupt, "not a Tachyon ring socket"},
    };
    for (const Case& c : cases) {
        Scope scope(c.what);
        const std::string path = dir.file(std::string(c.what) + ".sock");
        sockaddr_un addr{};
        check(tachyon::detail::unix_address(path, &addr), "address");
        tachyon::detail::Fd ln(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        check(::bind(ln.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0 && ::listen(ln.get(), 1) == 0,
              "listen");
        std::thread fake([&] {
            tachyon::detail::Fd conn(::accept4(ln.get(), nullptr, nullptr, SOCK_CLOEXEC));
            tachyon::detail::HandshakeBytes hello{};
            (void)tachyon::detail::transfer(conn.get(), hello.data(), hello.size(), false,
                                            tachyon::detail::deadline_after(5s));
            tachyon::detail::HandshakeBytes reply =
                tachyon::detail::encode_handshake(c.magic, tachyon::identity_of<Tick>());
            tachyon::detail::Fd mem(::memfd_create("fake", MFD_CLOEXEC | MFD_ALLOW_SEALING));
            (void)!::ftruncate(mem.get(), 4096);
            if (c.seals > 0) (void)::fcntl(mem.get(), F_ADD_SEALS, c.seals);
            (void)tachyon::detail::send_handshake(conn.get(), reply, c.seals >= 0 ? mem.get() : -1);
        });
        std::string what;
        const Errc got = attach_error([&] { (void)Subscriber<Tick>::dial(path); }, &what);
        fake.join();
        check_eq(got, c.want, "dial");
        check_contains(what, c.says);
    }
}

const harness::Register registered{
    {"sealed_stream_other_process", sealed_stream_other_process},
    {"sealed_truncation_eperm", sealed_truncation_eperm},
    {"sealed_refusals", sealed_refusals},
    {"sealed_refuses_unsealed", sealed_refuses_unsealed},
};

}  // namespace
