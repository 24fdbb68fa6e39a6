// tachyon::Publisher<T>: the single producer and owner of a ring of T.
#pragma once

#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <string_view>

#include "tachyon/abi.hpp"
#include "tachyon/error.hpp"
#include "tachyon/options.hpp"
#include "tachyon/producer.hpp"
#include "tachyon/segment.hpp"

namespace tachyon {

/// The single producer of a ring of T: the segment's owner (its destructor
/// or close() unlinks the name). Not safe for concurrent use.
template <Message T>
class Publisher {
public:
    /// Creates the ring (ABI.md §2). Throws tachyon::Error: invalid_name,
    /// invalid_options, exists, no_space, system.
    [[nodiscard]] static Publisher create(std::string_view name, Options opts = {}) {
        using detail::Num;
        if (auto why = abi::name_problem(name)) detail::raise(Errc::invalid_name, "create", name, {*why});
        const auto bad = [&](std::initializer_list<std::string_view> why) {
            detail::raise(Errc::invalid_options, "create", name, why);
        };
        std::string why;
        const auto g = abi::compute_geometry(T::kSize, T::kAlign, opts.capacity, opts.max_subscribers, &why);
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
        h.fingerprint = T::kFingerprint;
        h.type_id = T::kTypeId;
        h.policy = opts.policy;
        h.batch = opts.batch;
        h.liveness_ns = static_cast<std::uint64_t>(opts.liveness_timeout.count());
        h.created_ns = detail::realtime_now();
        h.geo = *g;
        return Publisher(std::make_unique<detail::Producer>(detail::Segment::create(name, h, opts.mode), opts));
    }

    Publisher(Publisher&&) noexcept = default;
    Publisher& operator=(Publisher&& o) noexcept {
        if (this != &o) {
            close();
            p_ = std::move(o.p_);
        }
        return *this;
    }
    ~Publisher() { close(); }

    [[nodiscard]] const std::string& name() const noexcept { return p_->segment().name(); }

    /// Reserves the next slot for in-place filling; commit() publishes it.
    /// A second claim before commit returns the same slot. Full ring: waits
    /// (block: Errc::timeout after Options::timeout) or Errc::full
    /// (drop_newest). The reference is valid until commit.
    [[nodiscard]] Result<T*> claim() noexcept {
        const auto m = p_->claim();
        if (!m) return m.error();
        return std::launder(reinterpret_cast<T*>(*m));
    }
    /// Seals the claimed slot (visible per Options::batch, or on flush).
    [[nodiscard]] Errc commit() noexcept { return p_->commit(); }
    /// Copies msg into the next slot and commits it.
    [[nodiscard]] Errc publish(const T& msg) noexcept {
        const auto m = p_->claim();
        if (!m) return m.error();
        std::memcpy(*m, &msg, sizeof(T));
        return p_->commit();
    }
    /// Makes every committed message visible now.
    void flush() noexcept { p_->flush(); }

    /// Messages committed so far.
    [[nodiscard]] std::uint64_t published() const noexcept { return p_->published(); }
    /// Messages drop_newest refused.
    [[nodiscard]] std::uint64_t dropped() const noexcept { return p_->dropped(); }
    /// Active entries of the subscriber table (a live read).
    [[nodiscard]] std::size_t active_subscribers() const noexcept { return p_->active_subscribers(); }
    /// Times a park ended by the watchdog (diagnostic).
    [[nodiscard]] std::uint64_t watchdog_fires() const noexcept { return p_->watchdog_fires(); }
    /// The whole mapped segment (diagnostics and the golden-vector test);
    /// empty after close().
    [[nodiscard]] std::span<const std::byte> segment_bytes() const noexcept { return p_->segment().bytes(); }

    /// Flushes, marks the ring closed (subscribers drain, then see
    /// Errc::closed), unlinks the name and unmaps. Idempotent; the counters
    /// stay readable, every other operation returns Errc::closed.
    void close() noexcept {
        if (p_) p_->close();
    }

private:
    explicit Publisher(std::unique_ptr<detail::Producer> p) : p_(std::move(p)) {}
    std::unique_ptr<detail::Producer> p_;
};

}  // namespace tachyon
