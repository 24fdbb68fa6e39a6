// cpppeer is the C++ interop peer of examples/pipeline/PEERS.md: it
// publishes, subscribes, echoes or pings the seed message (market::Message)
// on named rings, or on a sealed ring served on a Unix socket (--sealed
// PATH, pub and sub), and prints a one-line JSON summary on stdout.
//
// Build (the generated header comes from the tachyon-gen CLI):
//   go run ./cmd/tachyon-gen generate --cpp-out build/gen/cpp examples/Message.tsch
//   g++ -std=c++20 -O2 -Iruntime/cpp/include -Ibuild/gen/cpp examples/pipeline/cpppeer.cpp -o build/cpppeer
#include <algorithm>
#include <cerrno>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <sched.h>
#include <unistd.h>

#include <tachyon/ring.hpp>

#include "message.tsch.hpp"

namespace {

using market::Message;
using Clock = std::chrono::steady_clock;

struct Args {
    std::string role;
    std::string ring;
    std::int64_t count = 0;
    std::uint64_t capacity = 4096;
    std::string policy = "block";
    std::uint32_t max_subscribers = 8;
    std::size_t wait_subscribers = 1;
    std::uint32_t batch = 64;
    std::uint64_t max_lag = 0;
    std::int64_t slow_us = 0;
    bool latency = false;
    double timeout_s = 30;
    std::string ping, pong;  // echo, ping
    std::int64_t warmup = 0;  // ping
    int pin = -1;
    std::string sealed;  // pub, sub: the sealed ring's socket
};

[[noreturn]] void usage(const std::string& why) {
    std::fprintf(stderr,
                 "cpppeer: %s\nusage: cpppeer pub|sub --ring NAME [--sealed PATH] [flags] | cpppeer echo|ping --ping "
                 "NAME --pong NAME [flags] (see examples/pipeline/PEERS.md)\n",
                 why.c_str());
    std::exit(2);
}

std::uint64_t to_u64(std::string_view flag, const std::string& v) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long x = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || errno != 0 || v[0] == '-') usage("bad value for " + std::string(flag) + ": " + v);
    return x;
}

Args parse(int argc, char** argv) {
    const std::string_view role = argc < 2 ? "" : argv[1];
    if (role != "pub" && role != "sub" && role != "echo" && role != "ping")
        usage("first argument must be pub, sub, echo or ping");
    Args a;
    a.role = argv[1];
    for (int i = 2; i < argc; ++i) {
        std::string flag = argv[i];
        std::string value;
        if (flag.rfind("--", 0) == 0)
            flag.erase(0, 2);
        else if (flag.rfind("-", 0) == 0)
            flag.erase(0, 1);
        else
            usage("unexpected argument " + flag);
        if (const auto eq = flag.find('='); eq != std::string::npos) {
            value = flag.substr(eq + 1);
            flag.resize(eq);
        } else if (flag == "latency") {  // a boolean: no value unless --latency=...
            value = "true";
        } else {
            if (i + 1 >= argc) usage("flag --" + flag + " needs a value");
            value = argv[++i];
        }
        if (flag == "ring") a.ring = value;
        else if (flag == "count") a.count = static_cast<std::int64_t>(to_u64(flag, value));
        else if (flag == "capacity") a.capacity = to_u64(flag, value);
        else if (flag == "policy") a.policy = value;
        else if (flag == "max-subscribers") a.max_subscribers = static_cast<std::uint32_t>(to_u64(flag, value));
        else if (flag == "wait-subscribers") a.wait_subscribers = to_u64(flag, value);
        else if (flag == "batch") a.batch = static_cast<std::uint32_t>(to_u64(flag, value));
        else if (flag == "max-lag") a.max_lag = to_u64(flag, value);
        else if (flag == "slow-us") a.slow_us = static_cast<std::int64_t>(to_u64(flag, value));
        else if (flag == "latency") {
            if (value != "true" && value != "false") usage("bad value for --latency: " + value);
            a.latency = value == "true";
        } else if (flag == "ping") a.ping = value;
        else if (flag == "pong") a.pong = value;
        else if (flag == "pin") a.pin = static_cast<int>(to_u64(flag, value));
        else if (flag == "warmup") a.warmup = static_cast<std::int64_t>(to_u64(flag, value));
        else if (flag == "sealed") a.sealed = value;
        else if (flag == "timeout-s") {
            char* end = nullptr;
            a.timeout_s = std::strtod(value.c_str(), &end);
            if (*end != '\0' || !(a.timeout_s > 0)) usage("bad value for --timeout-s: " + value);
        } else usage("unknown flag --" + flag);
    }
    if (a.role == "echo" || a.role == "ping") {
        if (a.ping.empty() || a.pong.empty()) usage(a.role + " needs --ping and --pong");
        if (a.role == "ping" && a.count == 0) usage("ping needs --count");
    } else if (a.ring.empty()) {
        usage("--ring is required");
    }
    return a;
}

std::uint64_t realtime_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

/// patterns[b] is the payload of every message whose seq*131 mod 256 is b:
/// payload[i] = (seq*131 + i*7) mod 256 depends on seq only through that
/// byte, so filling and checking a payload is one 48-byte copy or compare.
using Payload = std::array<std::uint8_t, sizeof(Message::payload)>;
const std::array<Payload, 256> patterns = [] {
    std::array<Payload, 256> p{};
    for (std::size_t b = 0; b < p.size(); ++b)
        for (std::size_t i = 0; i < p[b].size(); ++i) p[b][i] = static_cast<std::uint8_t>(b + i * 7);
    return p;
}();

const Payload& pattern(std::uint64_t seq) { return patterns[static_cast<std::uint8_t>(seq * 131)]; }

/// How often the publisher reads the clock (as the Go peer): a timestamp up
/// to 15 messages old only makes a measured latency larger.
constexpr std::uint64_t kClockEvery = 16;

/// Writes message seq as PEERS.md defines it.
void fill(Message& m, std::uint64_t seq, std::uint64_t& now) {
    if (seq % kClockEvery == 0) now = realtime_ns();
    m.seq = seq;
    m.timestamp_ns = now;
    std::memcpy(m.payload, pattern(seq).data(), sizeof m.payload);
}

bool intact(const Message& m) { return std::memcmp(m.payload, pattern(m.seq).data(), sizeof m.payload) == 0; }

std::string json_string(std::string_view s) {
    std::string out = "\"";
    for (const char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + '"';
}

std::chrono::nanoseconds seconds(double s) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(s));
}

/// Pins the process to CPU cpu (modulo the CPU count), where there are two
/// or more (--pin): a measured side should not migrate.
void pin_to(int cpu) {
    const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 2) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(static_cast<std::size_t>(cpu % n), &set);
    if (::sched_setaffinity(0, sizeof set, &set) != 0)
        std::fprintf(stderr, "cpppeer: pin to CPU %ld: %s\n", cpu % n, std::strerror(errno));
}

int publish(const Args& a) {
    tachyon::Options o;
    o.capacity = a.capacity;
    o.max_subscribers = a.max_subscribers;
    o.batch = a.batch;
    o.timeout = seconds(a.timeout_s);
    if (a.policy == "block") o.policy = tachyon::Policy::block;
    else if (a.policy == "drop_newest") o.policy = tachyon::Policy::drop_newest;
    else if (a.policy == "drop_oldest") o.policy = tachyon::Policy::drop_oldest;
    else usage("unknown policy " + a.policy);

    auto pub = a.sealed.empty() ? tachyon::Publisher<Message>::create(a.ring, o)
                                : tachyon::Publisher<Message>::create_sealed(a.ring, o);
    // A sealed ring is served on its socket by a thread until we are done.
    std::optional<tachyon::SealedServer> server;
    std::thread serving;
    if (!a.sealed.empty()) {
        server.emplace(pub.serve(a.sealed));
        serving = std::thread([&] { server->run(); });
    }
    struct StopServing {
        std::optional<tachyon::SealedServer>& server;
        std::thread& serving;
        ~StopServing() {
            if (server) server->stop();
            if (serving.joinable()) serving.join();
        }
    } stop_serving{server, serving};
    // Registered subscribers receive every message published from now on
    // (ABI.md §8.4, "Registered").
    if (pub.wait_subscribers(a.wait_subscribers, seconds(a.timeout_s)) != tachyon::Errc::ok) {
        std::fprintf(stderr, "cpppeer: ring \"%s\": %zu of %zu subscribers registered after %gs\n", a.ring.c_str(),
                     pub.active_subscribers(), a.wait_subscribers, a.timeout_s);
        return 1;
    }
    if (a.pin >= 0) pin_to(a.pin);
    const auto start = Clock::now();
    std::uint64_t now = 0;
    for (std::uint64_t seq = 0; seq < static_cast<std::uint64_t>(a.count); ++seq) {
        const auto m = pub.claim();
        if (m.error() == tachyon::Errc::full) continue;  // drop_newest: refused and counted by the ring
        if (!m) {
            std::fprintf(stderr, "cpppeer: %llu: %s\n", static_cast<unsigned long long>(seq),
                         pub.describe(m.error()).c_str());
            return 1;
        }
        fill(**m, seq, now);
        if (const auto e = pub.commit(); e != tachyon::Errc::ok) {
            std::fprintf(stderr, "cpppeer: commit %llu: %s\n", static_cast<unsigned long long>(seq),
                         std::string(tachyon::to_string(e)).c_str());
            return 1;
        }
    }
    pub.flush();
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("{\"lang\": \"cpp\", \"role\": \"pub\", \"ring\": %s, \"published\": %llu, \"dropped\": %llu, "
                "\"seconds\": %.6f, \"msgs_per_s\": %.0f}\n",
                json_string(a.ring).c_str(), static_cast<unsigned long long>(pub.published()),
                static_cast<unsigned long long>(pub.dropped()), secs,
                secs > 0 ? static_cast<double>(a.count) / secs : 0.0);
    std::fflush(stdout);
    pub.close();
    return 0;
}

/// Attaches (or dials a sealed ring's socket), retrying until the ring
/// exists and is ready, up to the deadline.
tachyon::Subscriber<Message> attach(const std::string& ring, const std::string& sealed,
                                    const tachyon::SubscribeOptions& so, Clock::time_point deadline) {
    for (;;) {
        try {
            if (!sealed.empty()) return tachyon::Subscriber<Message>::dial(sealed, so);
            return tachyon::Subscriber<Message>::attach(ring, so);
        } catch (const tachyon::Error& e) {
            const bool retry = e.code() == tachyon::Errc::not_found || e.code() == tachyon::Errc::not_ready;
            if (!retry || Clock::now() > deadline) throw;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
}

/// What a subscriber has seen of the stream (PEERS.md "sub").
struct Tally {
    std::int64_t received = 0, gaps = 0, torn = 0, reordered = 0, first = -1, last = -1, max_latency = 0;

    void see(const Message& m, bool latency) {
        const auto seq = static_cast<std::int64_t>(m.seq);
        if (received == 0) first = seq;
        if (last >= 0 && seq <= last) ++reordered;
        else if (last >= 0 && seq > last + 1) gaps += seq - last - 1;
        else if (last < 0 && seq > 0) gaps += seq;
        if (!intact(m)) ++torn;
        if (latency) {
            // timestamp_ns is the publisher's CLOCK_REALTIME at claim time.
            max_latency = std::max(max_latency, static_cast<std::int64_t>(realtime_ns() - m.timestamp_ns));
        }
        last = std::max(last, seq);
        ++received;
    }
};

int subscribe(const Args& a) {
    const auto limit = seconds(a.timeout_s);
    const auto deadline = Clock::now() + limit;
    tachyon::SubscribeOptions so;
    so.max_lag = a.max_lag;
    auto sub = attach(a.ring, a.sealed, so, deadline);
    if (a.pin >= 0) pin_to(a.pin);
    // As the Go peer: the receive deadline is the attach deadline + the limit.
    const auto recv_deadline = deadline + limit;
    Tally t;
    Clock::time_point start{};
    bool started = false;
    const auto enough = [&](const Tally& x) { return a.count > 0 && x.received >= a.count; };
    // The clock costs as much as a receive: recompute the time left only
    // every 1024 waits (the deadline is a safety net of tens of seconds).
    std::chrono::nanoseconds left{};
    const auto time_left = [&](std::uint64_t polls) {
        if (polls % 1024 == 0) {
            const auto now = Clock::now();
            left = std::chrono::duration_cast<std::chrono::nanoseconds>(
                recv_deadline > now ? recv_deadline - now : Clock::duration::zero());
        }
        return left;
    };
    const auto failed = [&](tachyon::Errc e) {
        std::fprintf(stderr, "cpppeer: receive %s: %s\n", json_string(a.ring).c_str(),
                     std::string(tachyon::to_string(e)).c_str());
        return 1;
    };
    if (a.slow_us > 0) {
        // A deliberately slow reader: copies, one at a time.
        Message m{};
        for (std::uint64_t polls = 0; !enough(t); ++polls) {
            const tachyon::Errc e = sub.recv(m, time_left(polls));
            if (e == tachyon::Errc::closed) break;
            if (e != tachyon::Errc::ok) return failed(e);
            if (!started) start = Clock::now(), started = true;
            t.see(m, a.latency);
            std::this_thread::sleep_for(std::chrono::microseconds(a.slow_us));
        }
    } else {
        // Zero copy: check the messages in place, a batch at a time. A batch
        // overwritten meanwhile (lossy readers) is discarded whole: the ring
        // counted it as dropped, so its messages count as gaps, not seen.
        for (std::uint64_t polls = 0; !enough(t); ++polls) {
            auto b = sub.borrow_batch(64, time_left(polls));
            if (!b && b.error() == tachyon::Errc::closed) break;
            if (!b) return failed(b.error());
            if (!started) start = Clock::now(), started = true;
            Tally seen = t;
            for (const Message& m : *b) {
                if (enough(seen)) break;
                seen.see(m, a.latency);
            }
            const tachyon::Errc r = sub.release();
            if (r == tachyon::Errc::ok) t = seen;
            else if (r != tachyon::Errc::overwritten) return failed(r);
        }
    }
    const std::int64_t received = t.received, gaps = t.gaps, torn = t.torn, reordered = t.reordered, first = t.first,
                       last = t.last, max_latency = t.max_latency;
    const double secs = received > 0 ? std::chrono::duration<double>(Clock::now() - start).count() : 0.0;
    std::printf("{\"lang\": \"cpp\", \"role\": \"sub\", \"ring\": %s, \"received\": %lld, \"dropped\": %llu, "
                "\"gaps\": %lld, \"torn\": %lld, \"reordered\": %lld, \"first\": %lld, \"last\": %lld, "
                "\"seconds\": %.6f, \"msgs_per_s\": %.0f",
                json_string(a.ring).c_str(), static_cast<long long>(received),
                static_cast<unsigned long long>(sub.dropped()), static_cast<long long>(gaps),
                static_cast<long long>(torn), static_cast<long long>(reordered), static_cast<long long>(first),
                static_cast<long long>(last), secs, secs > 0 ? static_cast<double>(received) / secs : 0.0);
    if (a.latency) std::printf(", \"max_latency_ns\": %lld", static_cast<long long>(max_latency));
    std::printf("}\n");
    std::fflush(stdout);
    return 0;
}

/// The far end of a round-trip measurement (PEERS.md "echo"): republishes
/// every message of --ping on --pong, one at a time, until --ping closes.
int echo(const Args& a) {
    if (a.pin >= 0) pin_to(a.pin);
    auto out = tachyon::Publisher<Message>::create(
        a.pong, {.capacity = 64, .policy = tachyon::Policy::block, .batch = 1, .timeout = seconds(a.timeout_s)});
    auto in = attach(a.ping, "", {}, Clock::now() + seconds(a.timeout_s));
    const auto start = Clock::now();
    std::int64_t echoed = 0;
    Message m{};
    for (;;) {
        // No deadline, as the Go peer: a ping-pong may idle between rounds.
        const tachyon::Errc e = in.recv(m);
        if (e == tachyon::Errc::closed) break;
        if (e != tachyon::Errc::ok) {
            std::fprintf(stderr, "cpppeer: echo %lld: %s\n", static_cast<long long>(echoed), in.describe(e).c_str());
            return 1;
        }
        if (const tachyon::Errc p = out.publish(m); p != tachyon::Errc::ok) {
            std::fprintf(stderr, "cpppeer: echo %lld: %s\n", static_cast<long long>(echoed), out.describe(p).c_str());
            return 1;
        }
        ++echoed;
    }
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    in.close();
    out.close();
    std::printf("{\"lang\": \"cpp\", \"role\": \"echo\", \"ring\": %s, \"echoed\": %lld, \"seconds\": %.6f}\n",
                json_string(a.ping).c_str(), static_cast<long long>(echoed), secs);
    std::fflush(stdout);
    return 0;
}

/// The near end of a round-trip measurement (PEERS.md "ping"): publishes
/// seq = i on --ping, receives the echo's copy on --pong and times each of
/// --warmup + --count round trips with the steady clock (CLOCK_MONOTONIC),
/// then closes --ping (the echo stops) and prints the percentiles of the
/// last --count.
int ping(const Args& a) {
    const auto deadline = Clock::now() + seconds(a.timeout_s);
    auto out = tachyon::Publisher<Message>::create(
        a.ping, {.capacity = 64, .policy = tachyon::Policy::block, .batch = 1, .timeout = seconds(a.timeout_s)});
    auto in = attach(a.pong, "", {}, deadline);
    if (out.wait_subscribers(1, seconds(a.timeout_s)) != tachyon::Errc::ok) {
        std::fprintf(stderr, "cpppeer: ping: no echo subscribed to %s after %gs\n", json_string(a.ping).c_str(),
                     a.timeout_s);
        return 1;
    }
    if (a.pin >= 0) pin_to(a.pin);
    const auto total = static_cast<std::uint64_t>(a.warmup + a.count);
    std::vector<std::int64_t> rtts(static_cast<std::size_t>(a.count));
    Message back{};
    for (std::uint64_t i = 0; i < total; ++i) {
        const auto t0 = Clock::now();
        const auto m = out.claim();
        if (!m) {
            std::fprintf(stderr, "cpppeer: ping %llu: %s\n", static_cast<unsigned long long>(i),
                         std::string(tachyon::to_string(m.error())).c_str());
            return 1;
        }
        (**m).seq = i;
        if (const auto e = out.commit(); e != tachyon::Errc::ok) {
            std::fprintf(stderr, "cpppeer: ping %llu: commit: %s\n", static_cast<unsigned long long>(i),
                         std::string(tachyon::to_string(e)).c_str());
            return 1;
        }
        if (const auto e = in.recv(back); e != tachyon::Errc::ok || back.seq != i) {
            std::fprintf(stderr, "cpppeer: ping %llu: receive: %s (seq %llu)\n", static_cast<unsigned long long>(i),
                         std::string(tachyon::to_string(e)).c_str(), static_cast<unsigned long long>(back.seq));
            return 1;
        }
        if (i >= static_cast<std::uint64_t>(a.warmup))
            rtts[i - static_cast<std::uint64_t>(a.warmup)] =
                std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
    }
    out.close();
    in.close();
    std::sort(rtts.begin(), rtts.end());
    // Indexed as the Go benchmarks index them: sorted[min(n-1, floor(q*n))].
    const auto q = [&](double p) {
        return static_cast<long long>(rtts[std::min(rtts.size() - 1, static_cast<std::size_t>(p * static_cast<double>(rtts.size())))]);
    };
    std::printf("{\"lang\": \"cpp\", \"role\": \"ping\", \"ring\": %s, \"round_trips\": %zu, \"rtt_p50_ns\": %lld, "
                "\"rtt_p90_ns\": %lld, \"rtt_p99_ns\": %lld, \"rtt_p999_ns\": %lld, \"rtt_max_ns\": %lld}\n",
                json_string(a.ping).c_str(), rtts.size(), q(0.50), q(0.90), q(0.99), q(0.999),
                static_cast<long long>(rtts.back()));
    std::fflush(stdout);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const Args a = parse(argc, argv);
    try {
        if (a.role == "echo") return echo(a);
        if (a.role == "ping") return ping(a);
        return a.role == "pub" ? publish(a) : subscribe(a);
    } catch (const tachyon::Error& e) {
        std::fprintf(stderr, "cpppeer: %s\n", e.what());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "cpppeer: %s\n", e.what());
    }
    return 1;
}
