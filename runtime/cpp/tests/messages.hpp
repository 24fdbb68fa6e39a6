// The C++ ring tests' message types: the golden vectors' Tick, Small and
// Book (golden/abi/README.md), and Wide, written by hand as tachyon-gen would
// emit them; their fingerprints are fixed test constants, not schema hashes.
// Shared by the tests (fixtures.hpp) and the fuzz target (attach_fuzz.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace fixtures {

/// splitmix64's finaliser: every payload word depends on the sequence, so a
/// torn message (words of two messages) cannot pass intact().
constexpr std::uint64_t mix(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

struct alignas(8) Tick {
    static constexpr std::uint64_t kFingerprint = 0x7ac49e0f1d2b3c4dULL;
    static constexpr std::uint32_t kTypeId = 1;
    static constexpr std::size_t kSize = 64;
    static constexpr std::size_t kAlign = 8;

    std::uint64_t seq;
    std::uint64_t timestamp_ns;  // XOR of the payload words (a checksum)
    std::uint8_t payload[48];

    void fill(std::uint64_t s) {
        seq = s;
        std::uint64_t sum = 0;
        for (int k = 0; k < 6; ++k) {
            const std::uint64_t w = mix(s * 8 + static_cast<std::uint64_t>(k));
            sum ^= w;
            std::memcpy(payload + 8 * k, &w, 8);
        }
        timestamp_ns = sum;
    }
    [[nodiscard]] bool intact() const {
        std::uint64_t sum = 0;
        for (int k = 0; k < 6; ++k) {
            const std::uint64_t w = mix(seq * 8 + static_cast<std::uint64_t>(k));
            std::uint64_t got;
            std::memcpy(&got, payload + 8 * k, 8);
            if (got != w) return false;
            sum ^= w;
        }
        return timestamp_ns == sum;
    }
};
static_assert(sizeof(Tick) == 64 && alignof(Tick) == 8);

/// A 512-byte message whose every word depends on the sequence: a copy of
/// it takes long enough for an overwrite to land in the middle, which is
/// what the torn-read tests need.
struct alignas(8) Wide {
    static constexpr std::uint64_t kFingerprint = 0x31de000000000005ULL;
    static constexpr std::uint32_t kTypeId = 5;
    static constexpr std::size_t kSize = 512;
    static constexpr std::size_t kAlign = 8;

    std::uint64_t seq;
    std::uint64_t words[63];

    void fill(std::uint64_t s) {
        seq = s;
        for (std::uint64_t k = 0; k < 63; ++k) words[k] = mix(s * 64 + k);
    }
    [[nodiscard]] bool intact() const {
        for (std::uint64_t k = 0; k < 63; ++k) {
            if (words[k] != mix(seq * 64 + k)) return false;
        }
        return true;
    }
};
static_assert(sizeof(Wide) == 512);

/// The third golden type: a message that fits one cache line with its stamp
/// (the line slot layout's case).
struct alignas(8) Small {
    static constexpr std::uint64_t kFingerprint = 0x5a11000000000003ULL;
    static constexpr std::uint32_t kTypeId = 3;
    static constexpr std::size_t kSize = 16;
    static constexpr std::size_t kAlign = 8;

    std::uint64_t seq;
    std::uint64_t value;
};
static_assert(sizeof(Small) == 16);

struct alignas(64) Book {
    static constexpr std::uint64_t kFingerprint = 0xb00c000000000002ULL;
    static constexpr std::uint32_t kTypeId = 2;
    static constexpr std::size_t kSize = 64;
    static constexpr std::size_t kAlign = 64;

    std::uint64_t seq;
    std::uint64_t levels[6];
    std::uint64_t check;
};
static_assert(sizeof(Book) == 64 && alignof(Book) == 64);

}  // namespace fixtures
