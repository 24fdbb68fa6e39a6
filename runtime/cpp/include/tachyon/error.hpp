// Error vocabulary of the Tachyon C++ ring client.
//
// Setup (Publisher::create, Subscriber::attach) throws tachyon::Error, whose
// what() names the ring and the values involved. The hot path never throws:
// it returns an Errc or a Result<T>, both [[nodiscard]].
#pragma once

#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace tachyon {

/// Why an operation did not complete. The names follow runtime/ring's
/// sentinel errors (errors.go).
enum class [[nodiscard]] Errc {
    ok = 0,
    empty,            ///< non-blocking receive found no message
    full,             ///< drop_newest ring had no free slot (counted)
    timeout,          ///< a wait exceeded its bound
    closed,           ///< publisher closed; everything was delivered
    publisher_dead,   ///< publisher died; everything it published was delivered
    evicted,          ///< the producer evicted this subscriber
    overwritten,      ///< a borrowed slot was overwritten: discard what was read
    mismatch,         ///< message identity differs (fingerprint, id, size, align)
    corrupt,          ///< invalid header or indices
    version,          ///< unsupported ABI version
    not_ready,        ///< segment still initialising
    not_found,        ///< no segment of that name
    exists,           ///< a segment of that name already exists
    in_use,           ///< remove: the segment's publisher is alive (or it is being created)
    no_space,         ///< /dev/shm cannot hold the segment
    no_entry,         ///< subscriber table full
    invalid_name,     ///< not a safe segment name
    invalid_options,  ///< options cannot describe a ring
    insecure,         ///< owner or mode not trusted
    claimed,          ///< claim/borrow outstanding, or commit/release without one
    unsupported,      ///< platform without the needed primitives
    system,           ///< an unexpected system call failure (errno in the message)
};

/// The lower-case spelling of an Errc, as in the Go errors ("publisher closed").
[[nodiscard]] constexpr std::string_view to_string(Errc e) noexcept {
    switch (e) {
        case Errc::ok: return "ok";
        case Errc::empty: return "empty";
        case Errc::full: return "full";
        case Errc::timeout: return "timeout";
        case Errc::closed: return "publisher closed";
        case Errc::publisher_dead: return "publisher dead";
        case Errc::evicted: return "subscriber evicted";
        case Errc::overwritten: return "borrowed slot overwritten";
        case Errc::mismatch: return "message type mismatch";
        case Errc::corrupt: return "corrupt segment";
        case Errc::version: return "unsupported ABI version";
        case Errc::not_ready: return "segment not ready";
        case Errc::not_found: return "segment not found";
        case Errc::exists: return "segment exists";
        case Errc::in_use: return "segment in use";
        case Errc::no_space: return "no space for segment";
        case Errc::no_entry: return "subscriber table full";
        case Errc::invalid_name: return "invalid name";
        case Errc::invalid_options: return "invalid options";
        case Errc::insecure: return "insecure segment";
        case Errc::claimed: return "claim or borrow outstanding";
        case Errc::unsupported: return "unsupported platform";
        case Errc::system: return "system error";
    }
    return "unknown error";
}

namespace detail {

/// An integer rendered into a small buffer, a piece of cat(): decimal, or
/// as Go's %#x and %#o print it (0x1f, 0644).
class Num {
public:
    Num(unsigned long long v) noexcept { render(v, 10, {}); }             // NOLINT: implicit by design
    Num(unsigned long v) noexcept { render(v, 10, {}); }                  // NOLINT
    Num(unsigned v) noexcept { render(v, 10, {}); }                       // NOLINT
    Num(long long v) noexcept { render(v, 10, {}); }                      // NOLINT
    Num(long v) noexcept { render(v, 10, {}); }                           // NOLINT
    Num(int v) noexcept { render(v, 10, {}); }                            // NOLINT
    [[nodiscard]] static Num hex(std::uint64_t v) noexcept { return Num(v, 16, "0x"); }
    [[nodiscard]] static Num oct(std::uint64_t v) noexcept { return Num(v, 8, "0"); }
    operator std::string_view() const noexcept { return {buf_, len_}; }  // NOLINT: a piece of text

private:
    Num(std::uint64_t v, int base, std::string_view prefix) noexcept { render(v, base, prefix); }
    template <class I>
    void render(I v, int base, std::string_view prefix) noexcept {
        prefix.copy(buf_, prefix.size());
        len_ = static_cast<std::size_t>(std::to_chars(buf_ + prefix.size(), buf_ + sizeof buf_, v, base).ptr - buf_);
    }
    char buf_[32];
    std::size_t len_ = 0;
};

/// Concatenates the pieces of a message. Setup errors are built by this one
/// out-of-line call: chains of std::string operator+ at every throw site
/// would cost each program that includes the client code size and compile
/// time (most of it, with sanitizers) for paths that run once if ever.
[[nodiscard, gnu::cold, gnu::noinline]] inline std::string cat(std::initializer_list<std::string_view> pieces) {
    std::size_t n = 0;
    for (const std::string_view p : pieces) n += p.size();
    std::string out;
    out.reserve(n);
    for (const std::string_view p : pieces) out.append(p);
    return out;
}

}  // namespace detail

/// A setup failure: code() for branching, what() for humans, e.g.
/// `attach "ticks": message type mismatch: fingerprint 0x1, want 0x2`.
class Error : public std::runtime_error {
public:
    Error(Errc code, const std::string& what) : std::runtime_error(what), code_(code) {}
    [[nodiscard]] Errc code() const noexcept { return code_; }

private:
    Errc code_;
};

namespace detail {

/// Throws the Error of a failed setup step, in the one shape they all have:
/// `OP "NAME": CODE: DETAIL...` (without CODE for Errc::system, whose
/// detail ends with strerror).
[[noreturn, gnu::cold, gnu::noinline]] inline void raise(Errc code, std::string_view op, std::string_view name,
                                                        std::initializer_list<std::string_view> detail) {
    std::string msg = cat({op, " \"", name, "\": "});
    if (code != Errc::system) {
        msg.append(to_string(code));
        msg.append(": ");
    }
    msg.append(cat(detail));
    throw Error(code, msg);
}

/// The message of the last rare error a hot-path call returned (corrupt,
/// evicted, publisher dead, timeout): formatted only when that error
/// happens, so that the success path never allocates, and handed out by
/// Publisher::describe / Subscriber::describe.
class ErrorNote {
public:
    /// Records `OP "NAME": CODE: DETAIL...` for code and returns code.
    [[gnu::cold, gnu::noinline]] Errc note(Errc code, std::string_view op, std::string_view name,
                                           std::initializer_list<std::string_view> detail) {
        code_ = code;
        text_ = cat({op, " \"", name, "\": ", to_string(code)});
        if (detail.size() != 0) {
            text_.append(": ");
            text_.append(cat(detail));
        }
        return code;
    }

    /// The recorded message if it is about `code`, else `OP "NAME": CODE`.
    [[nodiscard]] std::string describe(Errc code, std::string_view op, std::string_view name) const {
        if (code == code_ && !text_.empty()) return text_;
        return cat({op, " \"", name, "\": ", to_string(code)});
    }

private:
    Errc code_ = Errc::ok;
    std::string text_;
};

}  // namespace detail

/// A hot-path value or the reason there is none (a minimal std::expected).
template <class V>
class [[nodiscard]] Result {
public:
    Result(V value) noexcept : value_(std::move(value)), error_(Errc::ok) {}  // NOLINT: implicit by design
    Result(Errc error) noexcept : value_{}, error_(error) {}                   // NOLINT: implicit by design

    [[nodiscard]] bool has_value() const noexcept { return error_ == Errc::ok; }
    explicit operator bool() const noexcept { return has_value(); }
    [[nodiscard]] Errc error() const noexcept { return error_; }
    [[nodiscard]] const V& value() const& {
        if (!has_value()) throw Error(error_, std::string(to_string(error_)));
        return value_;
    }
    [[nodiscard]] const V& operator*() const& noexcept { return value_; }
    [[nodiscard]] const V* operator->() const noexcept { return &value_; }

private:
    V value_;
    Errc error_;
};

}  // namespace tachyon
