// Deterministic tests of the protocol races of issue 14 (runtime/ABI.md §13,
// version 2): a test hook (tachyon::detail::test_hook) stops a registrant
// or a parking subscriber at a named step, and the test plays the other
// party there. Each asserts the outcome that v1 got wrong; none depends on
// timing. Also: a membarrier-less subscriber on an asymmetric ring (§8.6).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include <tachyon/ring.hpp>

#include "fixtures.hpp"
#include "harness.hpp"

namespace {

using namespace fixtures;
using harness::check;
using harness::check_contains;
using harness::check_eq;
using harness::Scope;

namespace abi = tachyon::abi;

/// Installs a test hook for a scope; the hook sees `point` and the state.
class Hook {
public:
    using Fn = void (*)(std::string_view point);
    explicit Hook(Fn fn) { tachyon::detail::test_hook = fn; }
    Hook(const Hook&) = delete;
    Hook& operator=(const Hook&) = delete;
    ~Hook() { tachyon::detail::test_hook = nullptr; }
};

/// What a hook acts on (hooks are plain function pointers).
Publisher<Tick>* hooked_pub = nullptr;
std::uint64_t hooked_count = 0;
std::size_t hooked_active = 0;

/// Race 5: a named subscriber resuming at its last position L publishes a
/// provisional head while it registers. If that head were the tail T, a
/// producer rescanning before the final head is stored could overwrite
/// [L, T) (v1). Here the registrant stops right after storing it, and the
/// producer publishes as far as it is allowed: never past L + capacity, and
/// the subscriber then reads everything from L, nothing dropped.
void race5_resume_provisional_head() {
    constexpr std::uint64_t capacity = 32;
    RingName name;
    auto pub = Publisher<Tick>::create(name, {.capacity = capacity, .timeout = 100ms, .liveness_timeout = 3600s});
    const tachyon::SubscribeOptions named{.name = "resumer", .start = tachyon::Start::last};
    {
        auto sub = Subscriber<Tick>::attach(name, named);
        publish_ticks(pub, 0, 20);
        Tick m{};
        for (int i = 0; i < 10; ++i) check_eq(sub.try_recv(m), Errc::ok, "read 0..9");
    }  // closed at L = 10; 10..19 unread
    hooked_pub = &pub;
    hooked_count = 0;
    std::optional<Subscriber<Tick>> sub;
    {
        const Hook hook([](std::string_view point) {
            if (point != "register:joining") return;
            // The producer's turn: publish until the provisional head stops it.
            for (;;) {
                auto m = hooked_pub->claim();
                if (!m) break;  // Errc::timeout after 100 ms
                (*m)->fill(hooked_pub->published());
                if (hooked_pub->commit() != Errc::ok) break;
                ++hooked_count;
            }
        });
        sub.emplace(Subscriber<Tick>::attach(name, named));
    }
    // v1's temporary head was the tail (20): the producer went on to 52,
    // overwriting 10..19. The provisional head (10) stops it at 10 + capacity.
    check_eq(pub.published(), 10 + capacity, "the producer stopped one lap past the provisional head (10)");
    check_eq(hooked_count, capacity - 10, "published while the registrant joined");
    // The start index is ABI.md §8.4's bound: max(L, T2 + 2*batch - capacity)
    // with T2 = 42, whatever the producer actually overwrote.
    const std::uint64_t start = 10 + capacity + 2 - capacity;
    Tick m{};
    for (std::uint64_t s = start; s < 10 + capacity; ++s) {
        check_eq(sub->recv(m, 1s), Errc::ok, "recv");
        check_eq(m.seq, s, "every message from the start index, in order");
        check(m.intact(), "intact");
    }
    check_eq(sub->dropped(), start - 10, "dropped: only the 2*batch the bound gives up");
    check_eq(sub->received() + sub->dropped(), 10 + capacity, "received + dropped == published since it first joined");
}

/// Race 6: a named subscriber that read committed messages ahead of the
/// published tail (batching, §8.5 step 1a) closes; coming back it resumes
/// there with its counters, instead of starting fresh and reading those
/// messages again (v1 required head <= tail to resume).
void race6_resume_read_ahead() {
    RingName name;
    auto pub = Publisher<Tick>::create(name, {.capacity = 64, .batch = 8});
    const tachyon::SubscribeOptions named{.name = "ahead", .start = tachyon::Start::last};
    {
        auto sub = Subscriber<Tick>::attach(name, named);
        publish_ticks(pub, 0, 3);  // held back: batch 8
        check_eq(shared_u64(pub, abi::kOffTail).load(), 0u, "nothing published yet");
        Tick m{};
        for (int i = 0; i < 3; ++i) check_eq(sub.try_recv(m), Errc::ok, "read through the stamps");
    }  // closed at head 3, tail 0
    auto sub = Subscriber<Tick>::attach(name, named);
    check_eq(sub.received(), 3u, "received resumed, not reset");
    check_eq(sub.dropped(), 0u, "dropped");
    publish_ticks(pub, 3, 2);
    pub.flush();
    Tick m{};
    for (std::uint64_t s = 3; s < 5; ++s) {
        check_eq(sub.try_recv(m), Errc::ok, "recv");
        check_eq(m.seq, s, "from where it stopped: nothing delivered twice");
    }
}

/// Race 7: the producer commits a message and holds it back (batching)
/// after the subscriber's last poll and before its sleeper-flag store, so
/// it neither publishes nor wakes. The parking subscriber re-polls the
/// stamp of head after its flag store (§8.5 step 1b) and returns the
/// message at once: no sleep, no lost wake-up (v1: an unlimited subscriber
/// waited for the watchdog, a lossy one until the next publication).
void race7_parked_subscriber_sees_held_back() {
    for (const std::uint64_t max_lag : {std::uint64_t{0}, std::uint64_t{32}}) {
        Scope scope(max_lag == 0 ? "unlimited" : "lossy (max_lag 32)");
        RingName name;
        auto pub = Publisher<Tick>::create(name, {.capacity = 64, .batch = 8});
        auto sub = Subscriber<Tick>::attach(name, {.max_lag = max_lag, .spin = 0});
        hooked_pub = &pub;
        hooked_count = 0;
        Tick m{};
        {
            const Hook hook([](std::string_view point) {
                if (point != "wait:park" || hooked_count++ != 0) return;
                publish_ticks(*hooked_pub, 0, 1);  // committed, held back
            });
            check_eq(sub.recv(m, 2s), Errc::ok, "recv");
        }
        check_eq(m.seq, 0u, "the held-back message");
        check_eq(shared_u64(pub, abi::kOffTail).load(), 0u, "it was never published");
        check_eq(sub.watchdog_fires(), 0u, "the watchdog fired");
        check_eq(sub.lost_wakeups(), 0u, "lost wake-ups");
    }
}

/// A close that lands after the subscriber's last check and just before it
/// enters FUTEX_WAIT is not lost: the close advances the notify eventcount,
/// so the kernel's compare fails and the wait returns at once (v1 woke the
/// tail's futex word without changing it: the subscriber slept until the
/// watchdog).
void close_at_the_brink() {
    RingName name;
    auto pub = Publisher<Tick>::create(name, {.capacity = 8});
    auto sub = Subscriber<Tick>::attach(name, {.spin = 0});
    hooked_pub = &pub;
    hooked_count = 0;
    Tick m{};
    {
        const Hook hook([](std::string_view point) {
            if (point == "wait:futex" && hooked_count++ == 0) hooked_pub->close();
        });
        check_eq(sub.recv(m, 5s), Errc::closed, "recv");
    }
    check_eq(hooked_count, 1u, "the close landed at the brink");
    check_eq(sub.watchdog_fires(), 0u, "woken, not rescued by the watchdog");
}

/// A protected subscriber (unlimited, block ring) skips the per-slot stamp
/// checks of a batch (§8.5 step 4). Evicted while it holds a batch, whose
/// slots the producer then overwrites, its release says so from the
/// eviction word alone, and counts the whole batch as dropped.
void protected_batch_evicted() {
    RingName name;
    auto pub = Publisher<Tick>::create(name, {.capacity = 8, .timeout = 5s, .liveness_timeout = 50ms});
    auto sub = Subscriber<Tick>::attach(name);
    publish_ticks(pub, 0, 8);
    auto batch = sub.borrow_batch(8, 0ns);
    check_eq(batch.error(), Errc::ok, "borrow_batch");
    check_eq(batch->size(), 8u, "the whole ring");
    publish_ticks(pub, 8, 8);  // waits out the liveness timeout, evicts, overwrites the batch
    check_eq(pub.evictions(), 1u, "evictions");
    check_eq(sub.release(), Errc::overwritten, "release");
    check_eq(sub.dropped(), 8u, "dropped");
    check_eq(sub.received(), 0u, "received");
}

/// "Registered" means active (§8.4): a subscriber is not counted while it
/// joins, so a publisher that waits for it cannot start before its start
/// index is fixed; once counted, it receives every message published after.
/// The producer publishes between the registrant's epoch store and its tail
/// load: those messages precede the start index, and were published while
/// nobody was counted.
void registered_means_active() {
    RingName name;
    auto pub = Publisher<Tick>::create(name, {.capacity = 64});
    hooked_pub = &pub;
    hooked_active = 99;
    std::optional<Subscriber<Tick>> sub;
    {
        const Hook hook([](std::string_view point) {
            if (point != "register:epoch") return;
            hooked_active = hooked_pub->active_subscribers();
            publish_ticks(*hooked_pub, 0, 3);
        });
        sub.emplace(Subscriber<Tick>::attach(name));
    }
    check_eq(hooked_active, 0u, "a joining subscriber is not counted");
    check_eq(pub.active_subscribers(), 1u, "counted once active");
    check_eq(pub.wait_subscribers(1, 0ns), Errc::ok, "wait_subscribers");
    publish_ticks(pub, 3, 5);
    Tick m{};
    for (std::uint64_t s = 3; s < 8; ++s) {
        check_eq(sub->recv(m, 1s), Errc::ok, "recv");
        check_eq(m.seq, s, "every message published after it was counted");
    }
}

/// A subscriber that cannot issue membarrier (TACHYON_FENCES=strong in its
/// environment) on an asymmetric ring, in another process: it joins with
/// entry flag STRONG; the producer's scan acknowledges it and switches to
/// strong fences for good (prod_fences = 1); a stream with the subscriber
/// parked between messages arrives whole, without a lost wake-up.
void membarrier_less_subscriber() {
    constexpr std::uint64_t n = 2000;
    RingName name;
    const bool real = tachyon::detail::membarrier_registered();
    tachyon::detail::test_force_asym = !real;  // a machine without membarrier still tests the protocol
    struct Reset {
        ~Reset() { tachyon::detail::test_force_asym = false; }
    } reset;
    auto pub = Publisher<Tick>::create(name, {.capacity = 64});
    const auto g = geometry(pub);
    check((shared_u32(pub, abi::kOffFlags).load() & abi::kFlagAsymFences) != 0, "an asymmetric ring");
    check_eq(shared_u32(pub, abi::kOffProdFences).load(), abi::kProdFencesLight, "a light producer");
    Child reader = Child::spawn([&](Child& link) {
        ScopedEnv strong("TACHYON_FENCES", "strong");
        auto sub = Subscriber<Tick>::attach(name, {.spin = 0});
        check(sub.strong_fences(), "it fences its head stores");
        link.say("joined");
        Seen seen;
        check_eq(drain(sub, seen), Errc::closed, "end");
        check_eq(seen.received, n, "received");
        check_eq(seen.gaps + seen.torn + seen.reordered, 0u, "gap-free, intact, in order");
        check_eq(sub.lost_wakeups(), 0u, "lost wake-ups");
    });
    reader.expect("joined");
    check((shared_u32(pub, g.entry_off(0) + abi::kEntFlags).load() & abi::kEntFlagStrong) != 0, "entry flag STRONG");
    check_eq(pub.wait_subscribers(1, 5s), Errc::ok, "registered");
    check_eq(shared_u32(pub, abi::kOffProdFences).load(), abi::kProdFencesStrong, "the producer switched to strong");
    check(shared_u64(pub, abi::kOffProdScanEpoch).load() >= shared_u64(pub, abi::kOffRegEpoch).load(),
          "its scan acknowledged the registration");
    for (std::uint64_t s = 0; s < n; s += 50) {
        publish_ticks(pub, s, 50);
        std::this_thread::sleep_for(200us);  // let the reader park now and then
    }
    pub.close();
    check_eq(reader.wait(), 0, "reader exit status");
}

const harness::Register registered{
    {"race5_resume_provisional_head", race5_resume_provisional_head},
    {"race6_resume_read_ahead", race6_resume_read_ahead},
    {"race7_parked_subscriber_sees_held_back", race7_parked_subscriber_sees_held_back},
    {"close_at_the_brink", close_at_the_brink},
    {"protected_batch_evicted", protected_batch_evicted},
    {"registered_means_active", registered_means_active},
    {"membarrier_less_subscriber", membarrier_less_subscriber},
};

}  // namespace
