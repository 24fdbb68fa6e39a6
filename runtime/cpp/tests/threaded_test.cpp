// Multi-threaded tests of the C++ ring client: a publisher thread and
// subscriber threads on one mapping of one ring. Built into the ASan test
// binary with the rest, and alone into the TSan one. Lossy readers appear
// only with publish() and copying receives, whose message accesses are
// atomic: a claim()'s plain stores or a borrow's plain loads would race with
// a lapping overwrite by design (the stamp re-check detects it; TSan would
// report it).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <tachyon/ring.hpp>

#include "fixtures.hpp"
#include "harness.hpp"

namespace {

using namespace fixtures;
using harness::check;
using harness::check_between;
using harness::check_contains;
using harness::check_eq;
using harness::fail;
using harness::Scope;

/// A publisher thread, three unlimited subscriber threads reading by copy,
/// by borrow and by batch, and a thread whose subscribers come and go: all
/// on one mapping, every message verified.
void threaded_block_fanout() {
    const std::uint64_t n = tachyon::detail::kThreadSanitizer ? 30'000 : 100'000;
    RingName name;
    auto pub = Publisher<Tick>::create(name, {.capacity = 64, .max_subscribers = 8, .batch = 8});
    auto by_copy = Subscriber<Tick>::attach(name);
    auto by_borrow = Subscriber<Tick>::attach(name);
    auto by_batch = Subscriber<Tick>::attach(name);
    Seen copy_seen, borrow_seen, batch_seen;
    Errc copy_end = Errc::ok, borrow_end = Errc::ok, batch_end = Errc::ok;
    std::atomic<bool> done{false};
    // Only the publisher thread checks (in publish_ticks); its failure
    // closes the ring from that thread, which ends every reader.
    Threads threads([&] { pub.close(); });
    threads.go([&] { copy_end = drain(by_copy, copy_seen); });
    threads.go([&] {
        for (;;) {
            auto m = by_borrow.borrow(20s);
            if (!m) {
                borrow_end = m.error();
                return;
            }
            borrow_seen.add(**m);
            if (by_borrow.release() != Errc::ok) borrow_seen.torn++;
        }
    });
    threads.go([&] {
        for (;;) {
            auto b = by_batch.borrow_batch(16, 20s);
            if (!b) {
                batch_end = b.error();
                return;
            }
            for (const Tick& m : *b) batch_seen.add(m);
            if (by_batch.release() != Errc::ok) batch_seen.torn++;
        }
    });
    std::uint64_t churned = 0;
    std::string churn_error;
    threads.go([&] {
        // Each visitor registers mid-stream, checks a gap-free run from its
        // first message, and detaches.
        while (!done.load(std::memory_order_relaxed)) {
            std::optional<Subscriber<Tick>> attached;
            try {
                attached.emplace(Subscriber<Tick>::attach(name));
            } catch (const tachyon::Error& e) {
                if (!done) churn_error = e.what();  // else: the ring closed under us
                return;
            }
            Subscriber<Tick>& v = *attached;
            Seen seen;
            Tick m{};
            for (int i = 0; i < 200; ++i) {
                const Errc e = v.recv(m, 20s);
                if (e == Errc::closed) break;
                if (e != Errc::ok) {
                    churn_error = "visitor recv: " + harness::describe(e);
                    return;
                }
                if (seen.last >= 0 && m.seq != static_cast<std::uint64_t>(seen.last) + 1) {
                    churn_error = "visitor gap after " + std::to_string(seen.last) + ": " + std::to_string(m.seq);
                    return;
                }
                seen.add(m);
            }
            if (seen.torn != 0) churn_error = "visitor saw a torn message";
            ++churned;
        }
    });
    threads.go([&] {
        publish_ticks(pub, 0, n);
        done = true;
        pub.close();
    });
    threads.join();
    check_eq(churn_error, std::string(), "visitors");
    check(churned > 0, "some visitors came and went");
    for (auto [what, seen, end] : {std::tuple{"copy", &copy_seen, copy_end}, std::tuple{"borrow", &borrow_seen, borrow_end},
                                   std::tuple{"batch", &batch_seen, batch_end}}) {
        Scope reader(what);
        check_eq(end, Errc::closed, "end");
        check_eq(seen->received, n, "received");
        check_eq(seen->gaps + seen->torn + seen->reordered, 0u, "gap-free, intact, in order");
    }
}

/// A reader parked on the futex is woken by the publication, never by the
/// watchdog (no lost wake-up, H1).
void threaded_parked_wakeups() {
    constexpr int n = 40;
    RingName name;
    auto pub = Publisher<Tick>::create(name, {.capacity = 8});
    auto sub = Subscriber<Tick>::attach(name, {.spin = 0});
    std::atomic<int> got{0};
    Threads threads([&] { pub.close(); });
    threads.go([&] {
        Tick m{};
        while (sub.recv(m, 5s) == Errc::ok) got.fetch_add(1);
    });
    for (int i = 0; i < n; ++i) {
        std::this_thread::sleep_for(3ms);  // long enough for the reader to park
        publish_ticks(pub, static_cast<std::uint64_t>(i), 1);
    }
    for (const auto deadline = Clock::now() + 10s; got.load() < n && Clock::now() < deadline;)
        std::this_thread::sleep_for(1ms);
    check_eq(got.load(), n, "received");
    pub.close();
    threads.join();
    check_eq(sub.watchdog_fires(), 0u, "wake-ups that only the watchdog delivered");
}

/// The close publishes the last batch, then stores closed (H4); a reader
/// that sees closed reloads the tail and drains before it reports closed.
/// The reader polls without parking, so that its load of the tail and its
/// load of the state straddle the close as often as possible; its window is
/// smaller than the ring, so that it cannot learn of the message from its
/// stamp (§8.5 1a) and must trust the tail. Without the reload this fails within a few hundred
/// trials (it was checked so).
void threaded_close_race_drains_first() {
    constexpr int trials = 300;
    int lost = 0;
    for (int trial = 0; trial < trials; ++trial) {
        RingName name;
        auto pub = Publisher<Tick>::create(name, {.capacity = 8, .batch = 4});
        auto sub = Subscriber<Tick>::attach(name, {.max_lag = 4, .spin = 0});  // a window below the ring
        std::atomic<bool> go{false};
        Threads threads([&] {});
        threads.go([&] {
            while (!go.load()) {
            }
            publish_ticks(pub, 0, 1);  // committed, not yet published: batch 4
            pub.close();               // publishes it, then stores closed
        });
        go = true;
        int received = 0;
        Tick m{};
        for (Errc e; (e = sub.recv(m, 0ns)) != Errc::closed;) {
            if (e == Errc::ok) ++received;
            else check_eq(e, Errc::timeout, "recv");
        }
        threads.join();
        lost += 1 - received;
    }
    check_eq(lost, 0, "messages lost to a close (of 300)");
}

/// A drop_oldest publisher thread laps a copying reader thread on a 4-slot
/// ring. publish() stores the message with relaxed atomics and the
/// reader copies it out with relaxed atomic loads (Boehm's seqlock), so the
/// copy that a lap overlaps is a detected, discarded copy and not a data
/// race: the TSan build of this test reports none (a memcpy on either side
/// would be one). Every message is received or counted dropped; none torn.
void threaded_lossy_copies_are_atomic() {
    const std::uint64_t n = tachyon::detail::kThreadSanitizer ? 50'000 : 400'000;
    RingName name;
    auto pub = Publisher<Wide>::create(name, {.capacity = 4, .policy = Policy::drop_oldest});
    auto lossy = Subscriber<Wide>::attach(name);  // lapped whenever it falls a ring behind
    Seen seen;
    Errc end = Errc::ok;
    Threads threads([&] { pub.close(); });
    threads.go([&] { end = drain(lossy, seen); });
    Wide m{};
    for (std::uint64_t s = 0; s < n; ++s) {
        m.fill(s);
        check_eq(pub.publish(m), Errc::ok, "publish");
    }
    pub.close();
    threads.join();
    check_eq(end, Errc::closed, "end");
    check_eq(seen.torn + seen.reordered, 0u, "torn or reordered");
    check_eq(lossy.received() + lossy.dropped(), n, "received + dropped");
    check_eq(seen.missing(n), lossy.dropped(), "the gaps are the drops");
}

const harness::Register registered{
    {"threaded_block_fanout", threaded_block_fanout},
    {"threaded_parked_wakeups", threaded_parked_wakeups},
    {"threaded_close_race_drains_first", threaded_close_race_drains_first},
    {"threaded_lossy_copies_are_atomic", threaded_lossy_copies_are_atomic},
};

}  // namespace
