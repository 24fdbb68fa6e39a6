// A minimal test harness for the C++ ring client: self-registering test
// functions, checks that report file:line and both values, and a runner
// whose output reads like `go test -v` (runtime/cpp/cpp_test.go drives it).
//
// A failed check throws Failure, which ends the current test only; in a
// forked child, run_child() turns it into exit status 1. Checks take a
// plain description; the case or iteration they are about goes in a Scope,
// so that passing checks build no strings.
#pragma once

#include <chrono>
#include <concepts>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <unistd.h>

#include <tachyon/error.hpp>

namespace harness {

/// Thrown by a failed check; caught by the runner.
struct Failure {
    std::string message;
};

/// The caller's file and line: std::source_location, which clang 14 with
/// libstdc++ 12 lacks (it needs __builtin_source_location).
struct Where {
    const char* file;
    unsigned line;
    static Where here(const char* file = __builtin_FILE(), unsigned line = __builtin_LINE()) { return {file, line}; }
};

/// The open scopes of this thread, outermost first.
inline thread_local std::vector<std::string> scopes;

/// Names what the checks in a block are about: a table case, an iteration.
class Scope {
public:
    explicit Scope(std::string what) { scopes.push_back(std::move(what)); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
    ~Scope() { scopes.pop_back(); }
};

[[noreturn]] inline void fail(std::string_view what, Where loc = Where::here()) {
    std::string msg = std::string(loc.file) + ":" + std::to_string(loc.line) + ": ";
    for (const std::string& s : scopes) msg += "[" + s + "] ";
    throw Failure{msg.append(what)};
}

inline void check(bool ok, std::string_view what, Where loc = Where::here()) {
    if (!ok) fail(what, loc);
}

// describe() renders a checked value for a failure message.
inline std::string describe(tachyon::Errc e) { return "Errc::" + std::string(tachyon::to_string(e)); }
inline std::string describe(bool b) { return b ? "true" : "false"; }
inline std::string describe(std::string_view s) { return "\"" + std::string(s) + "\""; }
inline std::string describe(const std::string& s) { return describe(std::string_view(s)); }
inline std::string describe(const char* s) { return describe(std::string_view(s)); }
template <std::integral I>
    requires(!std::same_as<I, bool>)
std::string describe(I v) {
    return std::to_string(v);
}
template <class E>
    requires std::is_enum_v<E>
std::string describe(E v) {
    return describe(static_cast<std::underlying_type_t<E>>(v));
}

/// Checks got == want; the message shows both.
template <class A, class B>
[[gnu::noinline, gnu::cold]] void fail_eq(const A& got, const B& want, std::string_view what, Where loc) {
    fail(std::string(what) + (what.empty() ? "" : ": ") + "got " + describe(got) + ", want " + describe(want), loc);
}
template <class A, class B>
void check_eq(const A& got, const B& want, std::string_view what = {}, Where loc = Where::here()) {
    bool equal;
    if constexpr (std::integral<A> && std::integral<B> && !std::same_as<A, bool> && !std::same_as<B, bool>)
        equal = std::cmp_equal(got, want);
    else
        equal = got == want;
    if (!equal) fail_eq(got, want, what, loc);
}

/// Checks lo <= d < hi for a measured duration.
template <class Rep, class Period>
void check_between(std::chrono::duration<Rep, Period> d, std::chrono::nanoseconds lo, std::chrono::nanoseconds hi,
                   std::string_view what, Where loc = Where::here()) {
    if (d >= lo && d < hi) return;
    const auto us = [](auto x) { return std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(x).count()); };
    fail(std::string(what) + ": " + us(d) + " us, want [" + us(lo) + ", " + us(hi) + ") us", loc);
}

/// Checks that haystack contains needle.
inline void check_contains(std::string_view haystack, std::string_view needle,
                           Where loc = Where::here()) {
    if (haystack.find(needle) == std::string_view::npos)
        fail("\"" + std::string(haystack) + "\" does not contain \"" + std::string(needle) + "\"", loc);
}

/// Runs f in a forked child's stead: a failed check or an exception becomes
/// a message on stderr and exit status 1; a normal return, status 0. The
/// child never returns into the caller (it must not run the parent's tests
/// or destructors twice).
template <class F>
[[noreturn]] void run_child(F&& f) noexcept {
    int status = 0;
    try {
        f();
    } catch (const Failure& e) {
        std::fprintf(stderr, "    child %d: %s\n", static_cast<int>(::getpid()), e.message.c_str());
        status = 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "    child %d: exception: %s\n", static_cast<int>(::getpid()), e.what());
        status = 1;
    }
    std::fflush(stderr);
    ::_exit(status);
}

struct Test {
    std::string_view name;
    void (*fn)();
};

/// Every registered test, in registration order (per source file).
inline std::vector<Test>& registry() {
    static std::vector<Test> tests;
    return tests;
}

/// Registers tests at static initialisation:
///   const harness::Register registered{{"name", fn}, ...};
struct Register {
    Register(std::initializer_list<Test> tests) { registry().insert(registry().end(), tests); }
};

/// Runs the registered tests whose names contain any of the arguments (all
/// without arguments; `--list` prints the names). Returns the exit status.
inline int run(std::span<char*> args) {
    const std::vector<Test>& tests = registry();
    if (!args.empty() && std::string_view(args[0]) == "--list") {
        for (const Test& t : tests) std::printf("%.*s\n", static_cast<int>(t.name.size()), t.name.data());
        return 0;
    }
    const auto selected = [&](std::string_view name) {
        if (args.empty()) return true;
        for (const char* a : args) {
            if (name.find(a) != std::string_view::npos) return true;
        }
        return false;
    };
    int failed = 0, ran = 0;
    const auto start = std::chrono::steady_clock::now();
    for (const Test& t : tests) {
        if (!selected(t.name)) continue;
        ++ran;
        std::printf("=== RUN   %.*s\n", static_cast<int>(t.name.size()), t.name.data());
        std::fflush(stdout);
        const auto t0 = std::chrono::steady_clock::now();
        std::string error;
        try {
            t.fn();
        } catch (const Failure& e) {
            error = e.message;
        } catch (const std::exception& e) {
            error = std::string("unexpected exception: ") + e.what();
        }
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (error.empty()) {
            std::printf("--- PASS: %.*s (%.2fs)\n", static_cast<int>(t.name.size()), t.name.data(), secs);
        } else {
            ++failed;
            std::printf("    %s\n--- FAIL: %.*s (%.2fs)\n", error.c_str(), static_cast<int>(t.name.size()),
                        t.name.data(), secs);
        }
        std::fflush(stdout);
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (ran == 0) {
        std::printf("no test matches the arguments\nFAIL\n");
        return 1;
    }
    std::printf("%s\t%d tests, %d failed (%.2fs)\n", failed == 0 ? "PASS" : "FAIL", ran, failed, secs);
    return failed == 0 ? 0 : 1;
}

}  // namespace harness
