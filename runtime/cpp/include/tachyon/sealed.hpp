// The sealed mode (runtime/ABI.md §14): a ring in an anonymous memfd whose
// size is sealed, handed to subscribers over a Unix stream socket with
// SCM_RIGHTS after a handshake that compares message identities. Nobody, not
// even a peer of the same uid, can shrink or grow it under a reader (no
// SIGBUS), and nothing appears in /dev/shm.
//
//   auto pub = tachyon::Publisher<Tick>::create_sealed("ticks", {.capacity = 4096});
//   auto server = pub.serve("/run/app/ticks.sock");      // bound and listening, mode 0600
//   std::jthread serving([&] { server.run(); });           // until server.stop()
//
//   auto sub = tachyon::Subscriber<Tick>::dial("/run/app/ticks.sock");
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "tachyon/abi.hpp"
#include "tachyon/error.hpp"
#include "tachyon/segment.hpp"
#include "tachyon/wait.hpp"

namespace tachyon {

namespace detail {

// Handshake messages (§14): 32 bytes, little-endian: 8 magic bytes, then
// abi_version u32, type_id u32, msg_size u32, msg_align u32, fingerprint u64.
inline constexpr std::size_t kHandshakeSize = 32;
inline constexpr std::string_view kHello = "TACHHELO";
inline constexpr std::string_view kOkay = "TACHOKAY";
inline constexpr std::string_view kNope = "TACHNOPE";
/// How long either side waits for the other's half of the handshake.
inline constexpr std::chrono::seconds kHandshakeTimeout{5};

using HandshakeBytes = std::array<std::byte, kHandshakeSize>;

[[nodiscard]] inline HandshakeBytes encode_handshake(std::string_view magic, const abi::Identity& id) noexcept {
    HandshakeBytes b{};
    const std::span<std::byte> s(b);
    std::memcpy(b.data(), magic.data(), 8);
    abi::detail::store_le<std::uint32_t>(s, 8, abi::kVersion);
    abi::detail::store_le<std::uint32_t>(s, 12, id.type_id);
    abi::detail::store_le<std::uint32_t>(s, 16, static_cast<std::uint32_t>(id.size));
    abi::detail::store_le<std::uint32_t>(s, 20, static_cast<std::uint32_t>(id.align));
    abi::detail::store_le<std::uint64_t>(s, 24, id.fingerprint);
    return b;
}

struct Handshake {
    std::array<char, 8> magic{};
    std::uint32_t abi_version = 0;
    abi::Identity id;

    [[nodiscard]] bool is(std::string_view m) const noexcept { return std::string_view(magic.data(), magic.size()) == m; }
};

[[nodiscard]] inline Handshake decode_handshake(const HandshakeBytes& b) noexcept {
    const std::span<const std::byte> s(b);
    Handshake h;
    std::memcpy(h.magic.data(), b.data(), h.magic.size());
    h.abi_version = abi::detail::load_le<std::uint32_t>(s, 8);
    h.id.type_id = abi::detail::load_le<std::uint32_t>(s, 12);
    h.id.size = abi::detail::load_le<std::uint32_t>(s, 16);
    h.id.align = abi::detail::load_le<std::uint32_t>(s, 20);
    h.id.fingerprint = abi::detail::load_le<std::uint64_t>(s, 24);
    return h;
}

/// A descriptor closed by its destructor unless released.
class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) noexcept : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    Fd& operator=(Fd&& o) noexcept {
        if (this != &o) reset(std::exchange(o.fd_, -1));
        return *this;
    }
    ~Fd() { reset(); }
    [[nodiscard]] int get() const noexcept { return fd_; }
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

/// What a sealed publisher shares with its servers: its own descriptor of
/// the segment (a dup: the same open file description), guarded so that the
/// publisher's close (on its thread) and a server's hand-over (on another)
/// never race over it.
struct SealedShare {
    std::mutex mu;
    Fd fd;  // empty once the publisher closed
    abi::Identity id;
    std::string name;

    void close() {
        const std::lock_guard lock(mu);
        fd.reset();
    }
};

/// Reads or writes exactly n bytes on a socket before the deadline. False
/// on timeout, error or end of stream (*got says how far it came).
inline bool transfer(int fd, std::byte* buf, std::size_t n, bool write, Clock::time_point deadline,
                     std::size_t* got = nullptr) noexcept {
    std::size_t done = 0;
    while (done < n) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        pollfd p{fd, static_cast<short>(write ? POLLOUT : POLLIN), 0};
        if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) != 1) break;
        const ssize_t r = write ? ::send(fd, buf + done, n - done, MSG_NOSIGNAL | MSG_DONTWAIT)
                                : ::recv(fd, buf + done, n - done, MSG_DONTWAIT);
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (r <= 0) break;
        done += static_cast<std::size_t>(r);
    }
    if (got != nullptr) *got = done;
    return done == n;
}

/// Sends a handshake message with, when fd >= 0, the descriptor attached
/// as SCM_RIGHTS. Whether all of it was sent.
inline bool send_handshake(int conn, HandshakeBytes& msg, int fd) noexcept {
    iovec iov{msg.data(), msg.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))]{};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (fd >= 0) {
        mh.msg_control = control;
        mh.msg_controllen = sizeof control;
        cmsghdr* c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    return ::sendmsg(conn, &mh, MSG_NOSIGNAL) == static_cast<ssize_t>(msg.size());
}

/// Fills a sockaddr_un with path, or explains why it cannot hold it.
[[nodiscard]] inline bool unix_address(std::string_view path, sockaddr_un* addr) noexcept {
    *addr = sockaddr_un{};
    addr->sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof addr->sun_path || path.find('\0') != std::string_view::npos) return false;
    std::memcpy(addr->sun_path, path.data(), path.size());
    return true;
}

/// Connects to a sealed ring's socket at path, performs the handshake for
/// `want`, checks the seals of the descriptor it receives and returns a
/// descriptor of the segment opened anew through /proc/self/fd, so that its
/// holder has an open file description (and with it OFD locks) of its own
/// (ABI.md §14 step 3). Throws tachyon::Error naming the path.
[[nodiscard]] inline int dial_sealed(std::string_view path, const abi::Identity& want) {
    constexpr std::string_view op = "dial";
    sockaddr_un addr{};
    if (!unix_address(path, &addr))
        raise(Errc::invalid_options, op, path, {"not a Unix socket path of 1 to ", Num(sizeof addr.sun_path - 1), " bytes"});
    Fd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (sock.get() < 0) raise_errno(Errc::system, op, path, "socket", errno);
    const timeval tv{kHandshakeTimeout.count(), 0};
    (void)::setsockopt(sock.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);  // bounds a connect to a full backlog
    if (retry_eintr([&] { return ::connect(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr); }) != 0) {
        const int err = errno;
        // No socket, or nobody listening on it: no ring there (yet).
        raise(err == ENOENT || err == ECONNREFUSED ? Errc::not_found : Errc::system, op, path,
              {"connect: ", std::strerror(err)});
    }
    const auto deadline = deadline_after(kHandshakeTimeout);
    HandshakeBytes hello = encode_handshake(kHello, want);
    if (!transfer(sock.get(), hello.data(), hello.size(), true, deadline))
        raise(Errc::system, op, path, {"handshake: sending the hello failed"});
    // The reply and its descriptor: room for a few, so that extra ones can
    // be received (and closed) rather than leaked.
    HandshakeBytes reply{};
    alignas(cmsghdr) char control[CMSG_SPACE(4 * sizeof(int))]{};
    iovec iov{reply.data(), reply.size()};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control;
    mh.msg_controllen = sizeof control;
    pollfd p{sock.get(), POLLIN, 0};
    ssize_t n = -1;
    if (::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(kHandshakeTimeout).count())) == 1) {
        do n = ::recvmsg(sock.get(), &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
    }
    std::vector<Fd> fds;
    if (n > 0) {
        for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
            const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (std::size_t i = 0; i < count; ++i) {
                int fd;
                std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                fds.emplace_back(fd);
            }
        }
    }
    if (n < 0) raise(Errc::timeout, op, path, {"handshake: no reply within 5s"});
    if (n == 0) raise(Errc::system, op, path, {"handshake: the publisher closed the connection"});
    if ((mh.msg_flags & MSG_CTRUNC) != 0) raise(Errc::corrupt, op, path, {"handshake: more descriptors than a ring needs"});
    if (static_cast<std::size_t>(n) < reply.size()) {
        const std::size_t have = static_cast<std::size_t>(n);
        if (!transfer(sock.get(), reply.data() + have, reply.size() - have, false, deadline))
            raise(Errc::system, op, path, {"handshake: short reply"});
    }
    const Handshake h = decode_handshake(reply);
    if (!h.is(kOkay) && !h.is(kNope))
        raise(Errc::corrupt, op, path,
              {"not a Tachyon ring socket (reply \"", std::string_view(h.magic.data(), h.magic.size()), "\")"});
    if (h.abi_version != abi::kVersion)
        raise(Errc::version, op, path, {"publisher speaks ABI v", Num(h.abi_version), ", this is v", Num(abi::kVersion)});
    if (auto why = abi::identity_mismatch(h.id, want)) raise(Errc::mismatch, op, path, {*why});
    if (h.is(kNope)) raise(Errc::closed, op, path, {"the publisher refused the handshake (closing)"});
    if (fds.size() != 1) raise(Errc::corrupt, op, path, {"expected one descriptor, got ", Num(fds.size())});
    const int seals = ::fcntl(fds[0].get(), F_GET_SEALS);
    if (seals < 0 || (seals & Segment::kSeals) != Segment::kSeals)
        raise(Errc::insecure, op, path,
              {"descriptor seals ", Num::hex(static_cast<std::uint32_t>(seals)), ", want ",
               Num::hex(static_cast<std::uint32_t>(Segment::kSeals)), " (shrink, grow, seal)"});
    // The received descriptor shares the publisher's open file description;
    // OFD locks tell owners apart by open file description only.
    const std::string proc = cat({"/proc/self/fd/", Num(fds[0].get())});
    const int own = ::open(proc.c_str(), O_RDWR | O_CLOEXEC);
    if (own < 0) raise_errno(Errc::system, op, path, "reopen the segment through /proc/self/fd", errno);
    return own;
}

}  // namespace detail

/// Serves a sealed ring (Publisher<T>::create_sealed) on a Unix stream
/// socket: each connecting subscriber gets the segment's descriptor after
/// the identity handshake of ABI.md §14, or a refusal naming both
/// identities. Made by Publisher<T>::serve. run() serves until stop(); or
/// call accept_one() in your own loop. stop() may be called from any thread;
/// every other member runs on one thread at a time, and the server is
/// destroyed only after run() has returned. It may outlive its publisher:
/// subscribers are then refused.
class SealedServer {
public:
    /// Binds and listens on path (which must not exist), with the socket
    /// file's permissions set to mode before anyone can connect: who may
    /// connect may map the ring. Prefer Publisher<T>::serve.
    SealedServer(std::shared_ptr<detail::SealedShare> share, std::string_view path, mode_t mode)
        : share_(std::move(share)), path_(path) {
        using detail::raise;
        using detail::raise_errno;
        constexpr std::string_view op = "serve";
        sockaddr_un addr{};
        if (!detail::unix_address(path, &addr))
            raise(Errc::invalid_options, op, path,
                  {"not a Unix socket path of 1 to ", detail::Num(sizeof addr.sun_path - 1), " bytes"});
        if ((mode & ~mode_t{0777}) != 0)
            raise(Errc::invalid_options, op, path, {"mode ", detail::Num::oct(mode), " (permission bits only)"});
        listen_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
        if (listen_.get() < 0) raise_errno(Errc::system, op, path, "socket", errno);
        if (::bind(listen_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
            const int err = errno;
            raise(err == EADDRINUSE ? Errc::exists : Errc::system, op, path, {"bind: ", std::strerror(err)});
        }
        struct stat st{};
        if (::stat(path_.c_str(), &st) == 0) {
            dev_ = st.st_dev;
            ino_ = st.st_ino;
        }
        // Nobody can connect before listen(): the mode is exact before then.
        if (::chmod(path_.c_str(), mode) != 0 || ::listen(listen_.get(), 64) != 0) {
            const int err = errno;
            unlink_if_ours();
            raise(Errc::system, op, path, {"chmod/listen: ", std::strerror(err)});
        }
        stop_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        if (stop_.get() < 0) {
            const int err = errno;
            unlink_if_ours();
            raise_errno(Errc::system, op, path, "eventfd", err);
        }
    }

    SealedServer(SealedServer&& o) noexcept
        : share_(std::move(o.share_)),
          path_(std::move(o.path_)),
          listen_(std::move(o.listen_)),
          stop_(std::move(o.stop_)),
          dev_(std::exchange(o.dev_, 0)),
          ino_(std::exchange(o.ino_, 0)),
          served_(o.served()),
          refused_(o.refused()) {}
    SealedServer& operator=(SealedServer&& o) noexcept {
        if (this != &o) {
            unlink_if_ours();
            share_ = std::move(o.share_);
            path_ = std::move(o.path_);
            listen_ = std::move(o.listen_);
            stop_ = std::move(o.stop_);
            dev_ = std::exchange(o.dev_, 0);
            ino_ = std::exchange(o.ino_, 0);
            served_.store(o.served(), std::memory_order_relaxed);
            refused_.store(o.refused(), std::memory_order_relaxed);
        }
        return *this;
    }
    ~SealedServer() { unlink_if_ours(); }

    /// The socket's path.
    [[nodiscard]] const std::string& path() const noexcept { return path_; }

    /// Serves subscribers until stop(). A failed handshake (a peer of
    /// another type, one that hangs up or never says hello) refuses that
    /// peer and goes on.
    void run() noexcept {
        while (accept_one(kForever) != Errc::closed) {
        }
    }

    /// Waits up to timeout for one subscriber and answers it. ok: it got the
    /// ring; mismatch: refused (another type or ABI version, or no hello);
    /// closed: stop() was called, or the publisher closed (refused);
    /// timeout: nobody connected in time; system: accept failed.
    [[nodiscard]] Errc accept_one(std::chrono::nanoseconds timeout) noexcept {
        const auto deadline = detail::deadline_after(timeout);
        for (;;) {
            pollfd p[2] = {{listen_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
            const auto left = deadline - detail::Clock::now();
            int ms = -1;
            if (deadline != detail::Clock::time_point::max())
                ms = static_cast<int>(std::clamp<std::int64_t>(std::chrono::ceil<std::chrono::milliseconds>(left).count(), 0,
                                                               std::numeric_limits<int>::max()));
            const int r = ::poll(p, 2, ms);
            if (r < 0 && errno == EINTR) continue;
            if ((p[1].revents & POLLIN) != 0) return Errc::closed;
            if (r == 0) return Errc::timeout;
            detail::Fd conn(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
            if (conn.get() < 0) {
                if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) continue;
                return Errc::system;
            }
            const Errc e = handshake(conn.get());
            (e == Errc::ok ? served_ : refused_).fetch_add(1, std::memory_order_relaxed);
            return e;
        }
    }

    /// Makes run() return and accept_one() return closed, now and from then
    /// on. Any thread.
    void stop() noexcept {
        const std::uint64_t one = 1;
        if (stop_.get() >= 0) (void)!::write(stop_.get(), &one, sizeof one);
    }

    /// Subscribers that got the ring / were refused (any thread).
    [[nodiscard]] std::uint64_t served() const noexcept { return served_.load(std::memory_order_relaxed); }
    [[nodiscard]] std::uint64_t refused() const noexcept { return refused_.load(std::memory_order_relaxed); }

private:
    /// Answers one subscriber (§14 steps 1-2).
    [[nodiscard]] Errc handshake(int conn) noexcept {
        const auto deadline = detail::deadline_after(detail::kHandshakeTimeout);
        detail::HandshakeBytes buf{};
        const abi::Identity ours = share_->id;
        detail::HandshakeBytes nope = detail::encode_handshake(detail::kNope, ours);
        if (!detail::transfer(conn, buf.data(), buf.size(), false, deadline)) return Errc::mismatch;
        const detail::Handshake h = detail::decode_handshake(buf);
        if (!h.is(detail::kHello) || h.abi_version != abi::kVersion || h.id != ours) {
            (void)detail::transfer(conn, nope.data(), nope.size(), true, deadline);
            return Errc::mismatch;
        }
        const std::lock_guard lock(share_->mu);
        if (share_->fd.get() < 0) {
            (void)detail::transfer(conn, nope.data(), nope.size(), true, deadline);
            return Errc::closed;
        }
        detail::HandshakeBytes okay = detail::encode_handshake(detail::kOkay, ours);
        return detail::send_handshake(conn, okay, share_->fd.get()) ? Errc::ok : Errc::system;
    }

    void unlink_if_ours() noexcept {
        if (ino_ == 0) return;
        struct stat st{};
        if (::lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) ::unlink(path_.c_str());
        ino_ = 0;
    }

    std::shared_ptr<detail::SealedShare> share_;
    std::string path_;
    detail::Fd listen_, stop_;
    dev_t dev_ = 0;
    ino_t ino_ = 0;
    std::atomic<std::uint64_t> served_{0}, refused_{0};
};

}  // namespace tachyon
