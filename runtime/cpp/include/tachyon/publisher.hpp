// tachyon::Publisher<T>: the single producer and owner of a ring of T, named
// (/dev/shm) or sealed (a memfd served on a Unix socket, sealed.hpp).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <thread>

#include <fcntl.h>
#include <sys/stat.h>

#include "tachyon/abi.hpp"
#include "tachyon/error.hpp"
#include "tachyon/options.hpp"
#include "tachyon/producer.hpp"
#include "tachyon/sealed.hpp"
#include "tachyon/segment.hpp"
#include "tachyon/wait.hpp"

namespace tachyon {

namespace detail {
/// Test seam (the golden vectors): marks rings created with
/// Fences::automatic asymmetric without registering for membarrier, so that
/// the bytes do not depend on the machine. Never set otherwise.
inline bool test_force_asym = false;
}  // namespace detail

/// The single producer of a ring of T: the segment's owner (its destructor
/// or close() unlinks a named ring's name). Not safe for concurrent use.
template <Message T>
class Publisher {
public:
    /// Creates the named ring /dev/shm/NAME (ABI.md §2). Throws
    /// tachyon::Error: invalid_name, invalid_options, exists (naming who owns
    /// the ring there and whether its publisher is alive, or what else
    /// squats on the name), no_space, unsupported (Fences::asymmetric
    /// without membarrier), system.
    [[nodiscard]] static Publisher create(std::string_view name, Options opts = {}) {
        const abi::Header h = header("create", name, opts);
        return Publisher(std::make_unique<detail::Producer>(detail::Segment::create(name, h, opts.mode), opts), nullptr);
    }

    /// Creates a sealed ring (ABI.md §14): an anonymous memfd whose size
    /// nobody can change, so that no reader can be killed by SIGBUS. `name`
    /// labels it in errors and in /proc/PID/fd ("memfd:tachyon:NAME");
    /// nothing is created in /dev/shm. Subscribers reach it through serve()
    /// and Subscriber<T>::dial.
    [[nodiscard]] static Publisher create_sealed(std::string_view name, Options opts = {}) {
        const abi::Header h = header("create sealed", name, opts);
        auto p = std::make_unique<detail::Producer>(detail::Segment::create_sealed(name, h, opts.mode), opts);
        auto share = std::make_shared<detail::SealedShare>();
        share->id = h.identity();
        share->name = std::string(name);
        share->fd.reset(::fcntl(p->segment().fd(), F_DUPFD_CLOEXEC, 0));
        if (share->fd.get() < 0) detail::raise_errno(Errc::system, "create sealed", name, "dup", errno);
        return Publisher(std::move(p), std::move(share));
    }

    Publisher(Publisher&&) noexcept = default;
    Publisher& operator=(Publisher&& o) noexcept {
        if (this != &o) {
            close();
            p_ = std::move(o.p_);
            sealed_ = std::move(o.sealed_);
        }
        return *this;
    }
    ~Publisher() { close(); }

    [[nodiscard]] const std::string& name() const noexcept { return p_->name(); }

    /// Serves this sealed ring on a new Unix socket at path (which must not
    /// exist), its file's permissions exactly `mode`: whoever may connect
    /// may map the ring. Run the returned server's run() on a thread, or call
    /// its accept_one(). Throws tachyon::Error: invalid_options (not a
    /// sealed ring, or a bad path), exists, system.
    [[nodiscard]] SealedServer serve(std::string_view path, mode_t mode = 0600) const {
        if (!sealed_) detail::raise(Errc::invalid_options, "serve", name(), {"not a sealed ring (use create_sealed)"});
        return SealedServer(sealed_, path, mode);
    }

    /// Reserves the next slot for in-place filling; commit() publishes it.
    /// A second claim before commit returns the same slot. Full ring: waits
    /// (block: Errc::timeout after Options::timeout) or Errc::full
    /// (drop_newest). The reference is valid until commit.
    ///
    /// The writes through it are plain stores: on a ring with lossy readers
    /// a reader lapped mid-copy races with them (it detects and discards
    /// such a copy); publish() writes atomically (docs/DECISIONS.md).
    [[nodiscard]] Result<T*> claim() noexcept {
        const auto m = p_->claim();
        if (!m) return m.error();
        return std::launder(reinterpret_cast<T*>(*m));
    }
    /// Seals the claimed slot (visible per Options::batch, or on flush).
    [[nodiscard]] Errc commit() noexcept { return p_->commit(); }
    /// Copies msg into the next slot (relaxed 8-byte atomic stores: no data
    /// race with a lapped reader) and commits it.
    [[nodiscard]] Errc publish(const T& msg) noexcept {
        const auto m = p_->claim();
        if (!m) return m.error();
        detail::store_message(*m, &msg, sizeof(T));
        return p_->commit();
    }
    /// Makes every committed message visible now.
    void flush() noexcept { p_->flush(); }

    /// Messages committed so far.
    [[nodiscard]] std::uint64_t published() const noexcept { return p_->published(); }
    /// Messages drop_newest refused.
    [[nodiscard]] std::uint64_t dropped() const noexcept { return p_->dropped(); }
    /// Registered subscribers (ABI.md §8.4): active, not evicted, alive.
    /// Every message published after it counted one reaches that one.
    [[nodiscard]] std::size_t active_subscribers() const noexcept { return p_->active_subscribers(); }
    /// Polls until at least n subscribers are registered: ok, timeout, or
    /// closed.
    [[nodiscard]] Errc wait_subscribers(std::size_t n, std::chrono::nanoseconds timeout = kForever) const noexcept {
        const auto deadline = detail::deadline_after(timeout);
        while (p_->active_subscribers() < n) {
            if (p_->closed()) return Errc::closed;
            if (detail::Clock::now() >= deadline) return Errc::timeout;
            std::this_thread::sleep_for(200us);
        }
        return Errc::ok;
    }
    /// Times a park ended by the watchdog (diagnostic).
    [[nodiscard]] std::uint64_t watchdog_fires() const noexcept { return p_->watchdog_fires(); }
    /// Subscribers evicted (stalled, hostile) or reclaimed (dead) so far.
    [[nodiscard]] std::uint64_t evictions() const noexcept { return p_->evictions(); }
    /// The message for an error this publisher returned: `publish "NAME":
    /// CODE[: detail]` (a timeout names the subscriber waited for).
    [[nodiscard]] std::string describe(Errc e) const { return p_->describe(e); }
    /// The whole mapped segment (diagnostics and the golden-vector test);
    /// empty after close().
    [[nodiscard]] std::span<const std::byte> segment_bytes() const noexcept { return p_->segment().bytes(); }

    /// Flushes, marks the ring closed (subscribers drain, then see
    /// Errc::closed), unlinks a named ring's name and unmaps; servers of a
    /// sealed ring refuse new subscribers from then on. Idempotent; the
    /// counters stay readable, every other operation returns Errc::closed.
    void close() noexcept {
        if (p_) p_->close();
        if (sealed_) sealed_->close();
    }

private:
    Publisher(std::unique_ptr<detail::Producer> p, std::shared_ptr<detail::SealedShare> sealed)
        : p_(std::move(p)), sealed_(std::move(sealed)) {}

    /// Validates the options and builds the identity line's contents.
    [[nodiscard]] static abi::Header header(std::string_view op, std::string_view name, Options& opts) {
        using detail::Num;
        if (auto why = abi::name_problem(name)) detail::raise(Errc::invalid_name, op, name, {*why});
        const auto bad = [&](std::initializer_list<std::string_view> why) {
            detail::raise(Errc::invalid_options, op, name, why);
        };
        if (static_cast<unsigned>(opts.slot_layout) > static_cast<unsigned>(SlotLayout::line))
            bad({"slot layout ", Num(static_cast<unsigned>(opts.slot_layout))});
        if (static_cast<unsigned>(opts.fences) > static_cast<unsigned>(Fences::asymmetric))
            bad({"fences ", Num(static_cast<unsigned>(opts.fences))});
        std::string why;
        const auto g = abi::compute_geometry(T::kSize, T::kAlign, opts.capacity, opts.max_subscribers,
                                             line_slots(opts.slot_layout, T::kSize, T::kAlign), &why);
        if (!g) bad({why});
        if (opts.batch == 0) opts.batch = 1;
        if (opts.batch > opts.capacity / 2)
            bad({"batch ", Num(opts.batch), " outside [1, ", Num(opts.capacity / 2), "]"});
        if (static_cast<std::uint32_t>(opts.policy) > 2) bad({"policy ", Num(static_cast<std::uint32_t>(opts.policy))});
        if (opts.timeout.count() < 0 || opts.liveness_timeout.count() <= 0)
            bad({"timeout must be >= 0 and liveness timeout > 0"});
        if ((opts.mode & ~mode_t{0777}) != 0 || (opts.mode & S_IWOTH) != 0)
            bad({"mode ", Num::oct(opts.mode), " (permission bits only, not world-writable)"});
        abi::Header h;
        switch (opts.fences) {
            case Fences::automatic: h.asym_fences = detail::test_force_asym || detail::membarrier_registered(); break;
            case Fences::strong: h.asym_fences = false; break;
            case Fences::asymmetric:
                if (!detail::membarrier_registered())
                    detail::raise(Errc::unsupported, op, name,
                                  {"asymmetric fences need membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED), which this process "
                                   "cannot register (kernel, seccomp or TACHYON_FENCES=strong)"});
                h.asym_fences = true;
                break;
        }
        h.fingerprint = T::kFingerprint;
        h.type_id = T::kTypeId;
        h.policy = opts.policy;
        h.batch = opts.batch;
        h.liveness_ns = static_cast<std::uint64_t>(opts.liveness_timeout.count());
        h.created_ns = detail::realtime_now();
        h.geo = *g;
        return h;
    }

    std::unique_ptr<detail::Producer> p_;
    std::shared_ptr<detail::SealedShare> sealed_;  // a sealed ring's hand-over state
};

}  // namespace tachyon
