// ring_pingpong: round trips of the seed message (market::Message) from a C++
// publisher through any peer's echo (examples/pipeline/PEERS.md) and back:
// claim + commit on "ping", the echo republishes on "pong", recv. With the
// C++ peer as the echo it is the C++<->C++ figure; with the Go peer, C++<->Go.
//
//   ring_pingpong [--iterations N] [--warmup W] [--key K] -- ECHO-PEER-COMMAND...
//
// prints one JSON line: {"K_rtt_p50_ns": ..., "K_rtt_p90_ns", "K_rtt_p99_ns",
// "K_rtt_p999_ns", "K_rtt_max_ns"} (K defaults to "cpp_cpp"). The pinger runs
// on the first usable CPU, the echo is asked to pin itself to the second
// (--pin 1). Uses only calls every version of the C++ client has, so that a
// baseline built from an older checkout measures the same thing.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tachyon/ring.hpp>

#include "message.tsch.hpp"

extern char** environ;

namespace {

using market::Message;
using Clock = std::chrono::steady_clock;

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr, "ring_pingpong: %s\nusage: ring_pingpong [--iterations N] [--warmup W] [--key K] -- ECHO...\n", why);
    std::exit(2);
}

long count_flag(const char* flag, const char* v) {
    char* end = nullptr;
    const long x = std::strtol(v, &end, 10);
    if (end == v || *end != '\0' || x < 1) {
        std::fprintf(stderr, "ring_pingpong: bad value for %s: %s\n", flag, v);
        std::exit(2);
    }
    return x;
}

/// Pins the calling thread to the k-th usable CPU (when there are two).
void pin(int k) {
    cpu_set_t allowed;
    if (::sched_getaffinity(0, sizeof allowed, &allowed) != 0 || CPU_COUNT(&allowed) < 2) return;
    int seen = 0;
    for (std::size_t cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (CPU_ISSET(cpu, &allowed) && seen++ == k) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            (void)::sched_setaffinity(0, sizeof one, &one);
            return;
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    long iterations = 100'000, warmup = 10'000;
    std::string key = "cpp_cpp";
    int i = 1;
    for (; i < argc && std::strcmp(argv[i], "--") != 0; ++i) {
        if (i + 1 >= argc) usage("a flag needs a value");
        if (std::strcmp(argv[i], "--iterations") == 0) iterations = count_flag(argv[i], argv[i + 1]);
        else if (std::strcmp(argv[i], "--warmup") == 0) warmup = count_flag(argv[i], argv[i + 1]);
        else if (std::strcmp(argv[i], "--key") == 0) key = argv[i + 1];
        else usage("unknown flag");
        ++i;
    }
    if (i + 1 >= argc) usage("the echo peer's command follows --");
    const std::string base = "tachyon-bench-cpp-" + std::to_string(::getpid());
    const std::string ping = base + "-ping", pong = base + "-pong";
    try {
        auto pub = tachyon::Publisher<Message>::create(ping, {.capacity = 64, .batch = 1});
        std::vector<std::string> args(argv + i + 1, argv + argc);
        for (const char* a : {"echo", "--ping", ping.c_str(), "--pong", pong.c_str(), "--pin", "1", "--timeout-s", "20"})
            args.emplace_back(a);
        std::vector<char*> cargv;
        for (std::string& a : args) cargv.push_back(a.data());
        cargv.push_back(nullptr);
        // The echo's own summary line would mix with ours: to /dev/null.
        posix_spawn_file_actions_t io;
        ::posix_spawn_file_actions_init(&io);
        ::posix_spawn_file_actions_addopen(&io, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
        pid_t echo = 0;
        const int spawned = ::posix_spawnp(&echo, cargv[0], &io, nullptr, cargv.data(), environ);
        ::posix_spawn_file_actions_destroy(&io);
        if (spawned != 0) {
            std::fprintf(stderr, "ring_pingpong: cannot start %s\n", cargv[0]);
            return 1;
        }
        const auto deadline = Clock::now() + std::chrono::seconds(20);
        std::optional<tachyon::Subscriber<Message>> sub;
        while (!sub) {
            try {
                sub.emplace(tachyon::Subscriber<Message>::attach(pong));
            } catch (const tachyon::Error& e) {
                if ((e.code() != tachyon::Errc::not_found && e.code() != tachyon::Errc::not_ready) || Clock::now() > deadline)
                    throw;
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
        }
        while (pub.active_subscribers() < 1) {
            if (Clock::now() > deadline) throw std::runtime_error("the echo never subscribed to " + ping);
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        pin(0);
        std::vector<std::int64_t> rtts;
        rtts.reserve(static_cast<std::size_t>(iterations));
        Message in{};
        for (long k = 0; k < iterations + warmup; ++k) {
            const auto t0 = Clock::now();
            auto m = pub.claim();
            if (!m) throw std::runtime_error("claim: " + std::string(tachyon::to_string(m.error())));
            (*m)->seq = static_cast<std::uint64_t>(k);
            if (pub.commit() != tachyon::Errc::ok) throw std::runtime_error("commit");
            const tachyon::Errc e = sub->recv(in, std::chrono::seconds(5));
            if (e != tachyon::Errc::ok || in.seq != static_cast<std::uint64_t>(k))
                throw std::runtime_error("echo " + std::to_string(k) + ": " + std::string(tachyon::to_string(e)));
            if (k >= warmup) rtts.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
        }
        pub.close();
        int status = 0;
        ::waitpid(echo, &status, 0);
        std::sort(rtts.begin(), rtts.end());
        const auto q = [&](double p) {
            return rtts[std::min(rtts.size() - 1, static_cast<std::size_t>(p * static_cast<double>(rtts.size())))];
        };
        std::printf("{\"%s_rtt_p50_ns\": %lld, \"%s_rtt_p90_ns\": %lld, \"%s_rtt_p99_ns\": %lld, \"%s_rtt_p999_ns\": %lld, "
                    "\"%s_rtt_max_ns\": %lld}\n",
                    key.c_str(), static_cast<long long>(q(0.5)), key.c_str(), static_cast<long long>(q(0.9)), key.c_str(),
                    static_cast<long long>(q(0.99)), key.c_str(), static_cast<long long>(q(0.999)), key.c_str(),
                    static_cast<long long>(rtts.back()));
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ring_pingpong: %s\n", e.what());
        return 1;
    }
}
