// Publishes readings on a ring from one thread and receives them on
// another, checking each: usage: app RING COUNT.
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include <tachyon/ring.hpp>

#include "telemetry.tsch.hpp"

using telemetry::Reading;

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: app RING COUNT\n");
        return 2;
    }
    const std::string ring = argv[1];
    const std::uint64_t count = std::strtoull(argv[2], nullptr, 10);
    try {
        auto pub = tachyon::Publisher<Reading>::create(ring, {.capacity = 256, .batch = 16});
        auto sub = tachyon::Subscriber<Reading>::attach(ring);
        std::thread producer([&pub, count] {
            for (std::uint64_t i = 0; i < count; ++i) {
                Reading r{};
                r.seq = i;
                r.value = static_cast<double>(i) / 4;
                r.unit = telemetry::Unit::CELSIUS;
                r.ok = i % 2 == 0;
                r.set_sensor("s" + std::to_string(i % 7));
                if (pub.publish(r) != tachyon::Errc::ok) std::abort();
            }
            pub.flush();
        });
        Reading r{};
        for (std::uint64_t i = 0; i < count; ++i) {
            if (sub.recv(r) != tachyon::Errc::ok || r.seq != i || r.value != static_cast<double>(i) / 4 ||
                r.unit != telemetry::Unit::CELSIUS || r.ok != (i % 2 == 0) ||
                r.sensor_view() != "s" + std::to_string(i % 7)) {
                std::fprintf(stderr, "reading %" PRIu64 ": got seq %" PRIu64 "\n", i, r.seq);
                producer.join();
                return 1;
            }
        }
        producer.join();
        std::printf("received %" PRIu64 " readings in order (type id %" PRIu32 ")\n", count, Reading::kTypeId);
    } catch (const tachyon::Error& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    return 0;
}
