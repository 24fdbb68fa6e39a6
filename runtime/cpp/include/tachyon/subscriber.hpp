// tachyon::Subscriber<T>: one registered reader of a ring of T, attached by
// name (/dev/shm) or dialed on a sealed ring's socket (sealed.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <string_view>

#include "tachyon/abi.hpp"
#include "tachyon/batch.hpp"
#include "tachyon/consumer.hpp"
#include "tachyon/error.hpp"
#include "tachyon/options.hpp"
#include "tachyon/sealed.hpp"
#include "tachyon/segment.hpp"
#include "tachyon/wait.hpp"

namespace tachyon {

namespace detail {

/// Compares a ring's message identity with the caller's (ABI.md §2 "Attach"
/// step 6). Not a template: one copy serves every message type.
inline void check_identity(std::string_view op, const Segment& s, const abi::Identity& want) {
    if (auto why = abi::identity_mismatch(s.header().identity(), want)) raise(Errc::mismatch, op, s.name(), {*why});
}

}  // namespace detail

/// One registered reader of a ring of T. Not safe for concurrent use.
template <Message T>
class Subscriber {
public:
    /// Opens the ring, validates every header field, compares the message
    /// identity with T (Errc::mismatch names the field and both values) and
    /// registers (ABI.md §8.4). It reads messages published after it
    /// registered. Throws tachyon::Error.
    [[nodiscard]] static Subscriber attach(std::string_view name, SubscribeOptions opts = {}) {
        if (auto why = abi::name_problem(name)) detail::raise(Errc::invalid_name, "attach", name, {*why});
        detail::Segment seg = detail::Segment::open("attach", name, opts.ready_timeout, opts.allow_foreign_owner);
        detail::check_identity("attach", seg, identity_of<T>());
        return Subscriber(std::make_unique<detail::Consumer>(std::move(seg), opts));
    }

    /// Connects to a sealed ring's socket at path (any client's publisher,
    /// ABI.md §14), performs the identity handshake (Errc::mismatch names the
    /// field and both values), refuses a descriptor without the shrink, grow
    /// and seal seals (Errc::insecure), reopens it so that this subscriber's
    /// locks are its own, validates the header and registers like attach.
    /// Throws tachyon::Error naming the path.
    [[nodiscard]] static Subscriber dial(std::string_view path, SubscribeOptions opts = {}) {
        const int fd = detail::dial_sealed(path, identity_of<T>());
        detail::Segment seg = detail::Segment::open_fd("dial", path, fd, opts.ready_timeout, opts.allow_foreign_owner);
        detail::check_identity("dial", seg, identity_of<T>());
        return Subscriber(std::make_unique<detail::Consumer>(std::move(seg), opts));
    }

    Subscriber(Subscriber&&) noexcept = default;
    Subscriber& operator=(Subscriber&&) noexcept = default;
    ~Subscriber() = default;

    [[nodiscard]] const std::string& name() const noexcept { return c_->segment().name(); }

    /// Waits (up to timeout) for the next message and copies it into dst.
    /// A lossy subscriber never returns a torn message: an overwritten copy
    /// is discarded, counted, and the next is read. Returns ok, timeout,
    /// closed / publisher_dead (after everything was delivered), evicted,
    /// corrupt.
    [[nodiscard]] Errc recv(T& dst, std::chrono::nanoseconds timeout = kForever) noexcept {
        const auto deadline = detail::deadline_after(timeout);
        for (;;) {
            const Errc e = try_recv(dst);
            if (e != Errc::empty) return e;
            if (const Errc w = c_->wait(deadline); w != Errc::ok) return w;
        }
    }

    /// recv without waiting: Errc::empty if nothing is ready.
    [[nodiscard]] Errc try_recv(T& dst) noexcept {
        if (c_->closed()) return Errc::closed;
        if (c_->borrowing()) return Errc::claimed;
        for (;;) {
            const auto m = c_->next();
            if (!m) return m.error();
            // Relaxed 8-byte atomic loads: a copy that a lapping producer
            // overwrites is a detected, discarded copy, not a data race.
            detail::load_message(&dst, *m, sizeof(T));
            const auto ok = c_->consume();
            if (!ok) return ok.error();
            if (*ok) return Errc::ok;
        }
    }

    /// Waits for the next message and lends it in place until release().
    /// For a lossy reader the slot may be overwritten meanwhile: release()
    /// then returns Errc::overwritten and what was read must be discarded.
    [[nodiscard]] Result<const T*> borrow(std::chrono::nanoseconds timeout = kForever) noexcept {
        if (c_->closed()) return Errc::closed;
        const auto deadline = detail::deadline_after(timeout);
        for (;;) {
            const auto m = c_->borrow();
            if (m) return std::launder(reinterpret_cast<const T*>(*m));
            if (m.error() != Errc::empty) return m.error();
            if (const Errc w = c_->wait(deadline); w != Errc::ok) return w;
        }
    }

    /// Waits for at least one message and lends up to max_n contiguous
    /// ones (fewer at the ring's wrap point) until release().
    [[nodiscard]] Result<Batch<T>> borrow_batch(std::size_t max_n,
                                                std::chrono::nanoseconds timeout = kForever) noexcept {
        if (c_->closed()) return Errc::closed;
        const auto deadline = detail::deadline_after(timeout);
        for (;;) {
            const auto r = c_->borrow_batch(max_n);
            if (r) return Batch<T>(r->first, r->n, c_->slot_stride());
            if (r.error() != Errc::empty) return r.error();
            if (const Errc w = c_->wait(deadline); w != Errc::ok) return w;
        }
    }

    /// Ends the current borrow. Errc::overwritten: discard all of it (it
    /// was counted as dropped).
    [[nodiscard]] Errc release() noexcept { return c_->closed() ? Errc::closed : c_->release(); }

    /// The message for an error this subscriber returned: `receive "NAME":
    /// CODE[: detail]`; corrupt names the slot, its stamp and the expected
    /// one, evicted the entry and its generation.
    [[nodiscard]] std::string describe(Errc e) const { return c_->describe(e); }
    /// The subscriber table entry this subscriber owns.
    [[nodiscard]] std::uint64_t entry() const noexcept { return c_->entry(); }

    /// Messages received since registration.
    [[nodiscard]] std::uint64_t received() const noexcept { return c_->received(); }
    /// Messages lost (lapped, skipped beyond max_lag, overwritten borrows).
    [[nodiscard]] std::uint64_t dropped() const noexcept { return c_->dropped(); }
    /// Published messages not yet read.
    [[nodiscard]] std::uint64_t lag() const noexcept { return c_->lag(); }
    /// Times a park ended by the watchdog (diagnostic).
    [[nodiscard]] std::uint64_t watchdog_fires() const noexcept { return c_->watchdog_fires(); }
    /// Watchdog ends of a sleep while a message was waiting: wake-ups lost
    /// (diagnostic; the tests require 0).
    [[nodiscard]] std::uint64_t lost_wakeups() const noexcept { return c_->lost_wakeups(); }
    /// Whether this subscriber fences its head stores: a strong ring, or an
    /// asymmetric one it joined without membarrier (ABI.md §8.6).
    [[nodiscard]] bool strong_fences() const noexcept { return c_->strong_fences(); }
    /// Stores received/dropped/heartbeat into the segment now (they are
    /// flushed every 256 head stores, before parking and on close).
    void flush_stats() noexcept { c_->flush_stats(); }

    /// Deregisters and unmaps. Idempotent; the counters stay readable,
    /// every other operation returns Errc::closed.
    void close() noexcept {
        if (c_) c_->close();
    }

private:
    explicit Subscriber(std::unique_ptr<detail::Consumer> c) : c_(std::move(c)) {}
    std::unique_ptr<detail::Consumer> c_;
};

}  // namespace tachyon
