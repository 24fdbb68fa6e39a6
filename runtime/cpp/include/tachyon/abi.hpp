// The byte-level contract of a Tachyon ring segment, ABI v2
// (runtime/ABI.md is the normative text; golden/abi/ pins the bytes).
//
// Everything here is pure computation on private memory: geometry, header
// encoding and validation, name validation. No shared-memory access.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "tachyon/error.hpp"

// The generated message headers are C++17; the ring client needs C++20
// (std::span, std::atomic_ref, concepts).
#if __cplusplus < 202002L
#error "the Tachyon ring client (tachyon/*.hpp) needs C++20: compile with -std=c++20 or later"
#endif

namespace tachyon::abi {

// ABI.md §1: the protocol is written for x86-64 TSO; a client on a weakly
// ordered CPU must add the barriers of §8.1 and §8.5 first.
#if !defined(__x86_64__) || !defined(__linux__)
#error "the Tachyon ABI v2 C++ client supports Linux x86-64 only"
#endif

inline constexpr std::uint64_t kMagic = 0x474E495248434154ULL;  // "TACHRING"
inline constexpr std::uint32_t kVersion = 2;
inline constexpr std::uint64_t kHeaderSize = 512;
inline constexpr std::uint64_t kLineSize = 128;  // independently written regions
inline constexpr std::uint64_t kCacheLine = 64;  // the line slot layout's granularity
inline constexpr std::uint64_t kEntrySize = 128;
inline constexpr std::uint64_t kMaxMessageSize = 1u << 20;
inline constexpr std::uint64_t kMaxAlign = 4096;
inline constexpr std::uint64_t kMaxCapacity = 1u << 30;
inline constexpr std::uint64_t kMaxSubscribers = 1024;
inline constexpr std::uint64_t kMaxSegmentSize = 1ULL << 40;
inline constexpr std::size_t kMaxNameLen = 255;

// Identity line (0x000-0x07F), immutable after ready.
inline constexpr std::size_t kOffMagic = 0x00;
inline constexpr std::size_t kOffVersion = 0x08;
inline constexpr std::size_t kOffReady = 0x0C;
inline constexpr std::size_t kOffFingerprint = 0x10;
inline constexpr std::size_t kOffTypeId = 0x18;
inline constexpr std::size_t kOffMsgSize = 0x1C;
inline constexpr std::size_t kOffMsgAlign = 0x20;
inline constexpr std::size_t kOffSlotSize = 0x24;
inline constexpr std::size_t kOffSlotMsgOff = 0x28;
inline constexpr std::size_t kOffPolicy = 0x2C;
inline constexpr std::size_t kOffCapacity = 0x30;
inline constexpr std::size_t kOffMaxSubs = 0x38;
inline constexpr std::size_t kOffHeaderSize = 0x3C;
inline constexpr std::size_t kOffSleepersOff = 0x40;
inline constexpr std::size_t kOffTableOff = 0x48;
inline constexpr std::size_t kOffSlotsOff = 0x50;
inline constexpr std::size_t kOffSegSize = 0x58;
inline constexpr std::size_t kOffLivenessNs = 0x60;
inline constexpr std::size_t kOffCreatedNs = 0x68;  // volatile
inline constexpr std::size_t kOffBatch = 0x70;
inline constexpr std::size_t kOffFlags = 0x74;
inline constexpr std::size_t kOffEvictOff = 0x78;

// Bits of the flags word.
inline constexpr std::uint32_t kFlagLineSlots = 1u << 0;   // every slot starts on a cache line (§3)
inline constexpr std::uint32_t kFlagAsymFences = 1u << 1;  // asymmetric fences (§8.6)
inline constexpr std::uint32_t kKnownFlags = kFlagLineSlots | kFlagAsymFences;

// Producer hot line (0x080-0x0FF), writer: producer.
inline constexpr std::size_t kOffTail = 0x80;
inline constexpr std::size_t kOffDroppedNewest = 0x88;
inline constexpr std::size_t kOffNotify = 0x90;  // u32: the subscribers' futex eventcount

// Producer control line (0x100-0x17F), writer: producer; = its liveness lock range.
inline constexpr std::size_t kOffProdState = 0x100;
inline constexpr std::size_t kOffProdSleeping = 0x104;
inline constexpr std::size_t kOffProdPid = 0x108;        // volatile
inline constexpr std::size_t kOffProdWaitEntry = 0x10C;
inline constexpr std::size_t kOffProdStartTime = 0x110;  // volatile
inline constexpr std::size_t kOffProdHeartbeat = 0x118;  // volatile
inline constexpr std::size_t kOffProdWaitHead = 0x120;
inline constexpr std::size_t kOffProdScanEpoch = 0x128;  // reg_epoch its latest scan saw
inline constexpr std::size_t kOffProdFences = 0x130;     // u32: 0 light, 1 strong
inline constexpr std::size_t kProdLockStart = 0x100;
inline constexpr std::size_t kProdLockLen = kLineSize;

// Registry line (0x180-0x1FF), writer: registry-lock (flock) holder.
inline constexpr std::size_t kOffRegEpoch = 0x180;
inline constexpr std::size_t kOffTableHigh = 0x188;  // u32: 1 + the highest entry index ever registered

// Subscriber entry fields, relative to the entry.
inline constexpr std::size_t kEntHead = 0x00;
inline constexpr std::size_t kEntReceived = 0x08;
inline constexpr std::size_t kEntDropped = 0x10;
inline constexpr std::size_t kEntHeartbeat = 0x18;  // volatile
inline constexpr std::size_t kEntState = 0x20;
inline constexpr std::size_t kEntPid = 0x24;  // volatile
inline constexpr std::size_t kEntGen = 0x28;
inline constexpr std::size_t kEntMaxLag = 0x30;
inline constexpr std::size_t kEntStartTime = 0x38;  // volatile
inline constexpr std::size_t kEntJoin = 0x40;
inline constexpr std::size_t kEntKey = 0x48;    // a named subscriber's key, 0 if anonymous
inline constexpr std::size_t kEntWake = 0x50;   // u32, owner: the parked producer's futex eventcount
inline constexpr std::size_t kEntFlags = 0x54;  // u32, registry: kEntFlagStrong

inline constexpr std::uint32_t kEntFlagStrong = 1u << 0;  // the owner cannot issue membarrier (§8.6)

inline constexpr std::uint32_t kReadyInit = 0;
inline constexpr std::uint32_t kReadyReady = 1;
inline constexpr std::uint32_t kProdActive = 1;
inline constexpr std::uint32_t kProdClosed = 2;
inline constexpr std::uint32_t kProdFencesLight = 0;
inline constexpr std::uint32_t kProdFencesStrong = 1;
// Entry states. An entry is evicted when its eviction word (§5.5) equals its
// generation; the producer never writes the state.
inline constexpr std::uint32_t kEntFree = 0;
inline constexpr std::uint32_t kEntJoining = 1;  // registering: holds the producer back, not yet counted
inline constexpr std::uint32_t kEntActive = 2;

}  // namespace tachyon::abi

namespace tachyon {

/// The producer's behaviour on a full ring (stored in the header).
enum class Policy : std::uint32_t { block = 0, drop_newest = 1, drop_oldest = 2 };

[[nodiscard]] constexpr std::string_view to_string(Policy p) noexcept {
    switch (p) {
        case Policy::block: return "block";
        case Policy::drop_newest: return "drop_newest";
        case Policy::drop_oldest: return "drop_oldest";
    }
    return "policy(?)";
}

}  // namespace tachyon

namespace tachyon::abi {

[[nodiscard]] constexpr bool is_pow2(std::uint64_t x) noexcept { return x != 0 && (x & (x - 1)) == 0; }
[[nodiscard]] constexpr std::uint64_t round_up(std::uint64_t x, std::uint64_t a) noexcept {
    return (x + a - 1) & ~(a - 1);
}

/// Every offset and size of a segment, derived from four primary values and
/// the slot layout (ABI.md §3). Readers recompute it and compare it with the
/// stored copy.
struct Geometry {
    std::uint64_t msg_size = 0;
    std::uint64_t msg_align = 0;
    bool line_slots = false;
    std::uint64_t slot_msg_off = 0;
    std::uint64_t slot_size = 0;
    std::uint64_t capacity = 0;
    std::uint64_t mask = 0;
    std::uint64_t max_subs = 0;
    std::uint64_t sleepers_off = 0;
    std::uint64_t evict_off = 0;
    std::uint64_t table_off = 0;
    std::uint64_t slots_off = 0;
    std::uint64_t seg_size = 0;

    [[nodiscard]] constexpr std::uint64_t entry_off(std::uint64_t i) const noexcept {
        return table_off + i * kEntrySize;
    }
    [[nodiscard]] constexpr std::uint64_t evict_word_off(std::uint64_t i) const noexcept { return evict_off + 8 * i; }
    [[nodiscard]] constexpr std::uint64_t sleeper_off(std::uint64_t i) const noexcept { return sleepers_off + 4 * i; }
};

/// Derives the layout, or explains (in `why`) why the primary values
/// cannot describe a segment.
[[nodiscard]] inline std::optional<Geometry> compute_geometry(std::uint64_t msg_size, std::uint64_t msg_align,
                                                              std::uint64_t capacity, std::uint64_t max_subs,
                                                              bool line_slots, std::string* why = nullptr) {
    using tachyon::detail::Num;
    auto fail = [&](std::initializer_list<std::string_view> s) -> std::optional<Geometry> {
        if (why != nullptr) *why = tachyon::detail::cat(s);
        return std::nullopt;
    };
    if (msg_size == 0 || msg_size > kMaxMessageSize)
        return fail({"message size ", Num(msg_size), " outside [1, 1048576]"});
    if (!is_pow2(msg_align) || msg_align > kMaxAlign)
        return fail({"message alignment ", Num(msg_align), " is not a power of two <= 4096"});
    if (msg_size % msg_align != 0)
        return fail({"message size ", Num(msg_size), " is not a multiple of its alignment ", Num(msg_align)});
    if (!is_pow2(capacity) || capacity < 2 || capacity > kMaxCapacity)
        return fail({"capacity ", Num(capacity), " is not a power of two in [2, 1073741824]"});
    if (max_subs == 0 || max_subs > kMaxSubscribers)
        return fail({"subscriber table size ", Num(max_subs), " outside [1, 1024]"});
    Geometry g;
    g.msg_size = msg_size;
    g.msg_align = msg_align;
    g.line_slots = line_slots;
    g.capacity = capacity;
    g.mask = capacity - 1;
    g.max_subs = max_subs;
    g.slot_msg_off = msg_align > 8 ? msg_align : 8;
    const std::uint64_t slot_align = line_slots ? (msg_align > kCacheLine ? msg_align : kCacheLine) : g.slot_msg_off;
    g.slot_size = round_up(g.slot_msg_off + msg_size, slot_align);
    g.sleepers_off = kHeaderSize;
    g.evict_off = g.sleepers_off + round_up(4 * max_subs, kLineSize);
    g.table_off = g.evict_off + round_up(8 * max_subs, kLineSize);
    g.slots_off = round_up(g.table_off + kEntrySize * max_subs, msg_align > kLineSize ? msg_align : kLineSize);
    // slot_size <= 2^20 + 4096 and capacity <= 2^30: the product fits in u64.
    const std::uint64_t slots = g.slot_size * capacity;
    if (slots > kMaxSegmentSize || g.slots_off + slots > kMaxSegmentSize)
        return fail({"segment of ", Num(capacity), " slots of ", Num(g.slot_size), " bytes exceeds 1 TiB"});
    g.seg_size = g.slots_off + slots;
    return g;
}

/// A message type's wire identity: what attach and the sealed handshake
/// compare (ABI.md §2 "Attach" step 6, §14).
struct Identity {
    std::uint64_t fingerprint = 0;
    std::uint32_t type_id = 0;
    std::uint64_t size = 0;
    std::uint64_t align = 0;

    friend constexpr bool operator==(const Identity&, const Identity&) = default;
};

/// Why `got` (a ring's identity) differs from `want` (the caller's): the
/// first differing field with both values, or nullopt if they are equal.
[[nodiscard]] inline std::optional<std::string> identity_mismatch(const Identity& got, const Identity& want) {
    using tachyon::detail::Num;
    const auto say = [](std::string_view field, std::uint64_t g, std::uint64_t w) {
        return tachyon::detail::cat({field, " ", Num::hex(g), ", want ", Num::hex(w)});
    };
    if (got.fingerprint != want.fingerprint) return say("fingerprint", got.fingerprint, want.fingerprint);
    if (got.type_id != want.type_id) return say("type id", got.type_id, want.type_id);
    if (got.size != want.size) return say("message size", got.size, want.size);
    if (got.align != want.align) return say("message alignment", got.align, want.align);
    return std::nullopt;
}

/// The decoded, validated identity line (a private copy).
struct Header {
    std::uint64_t fingerprint = 0;
    std::uint32_t type_id = 0;
    Policy policy = Policy::block;
    std::uint32_t batch = 1;
    bool asym_fences = false;  ///< flags bit 1: the hot sides do not fence (§8.6)
    std::uint64_t liveness_ns = 0;
    std::uint64_t created_ns = 0;
    Geometry geo;

    [[nodiscard]] constexpr Identity identity() const noexcept {
        return {fingerprint, type_id, geo.msg_size, geo.msg_align};
    }
    [[nodiscard]] constexpr std::uint32_t flags() const noexcept {
        return (geo.line_slots ? kFlagLineSlots : 0) | (asym_fences ? kFlagAsymFences : 0);
    }
};

namespace detail {
template <class U>
[[nodiscard]] inline U load_le(std::span<const std::byte> b, std::size_t off) noexcept {
    U v;
    std::memcpy(&v, b.data() + off, sizeof v);  // x86-64: little-endian
    return v;
}
template <class U>
inline void store_le(std::span<std::byte> b, std::size_t off, U v) noexcept {
    std::memcpy(b.data() + off, &v, sizeof v);
}
}  // namespace detail

/// Writes the identity line (all of it but the ready word) into b.
inline void encode_identity(std::span<std::byte> b, const Header& h) noexcept {
    using detail::store_le;
    const Geometry& g = h.geo;
    store_le<std::uint64_t>(b, kOffMagic, kMagic);
    store_le<std::uint32_t>(b, kOffVersion, kVersion);
    store_le<std::uint64_t>(b, kOffFingerprint, h.fingerprint);
    store_le<std::uint32_t>(b, kOffTypeId, h.type_id);
    store_le<std::uint32_t>(b, kOffMsgSize, static_cast<std::uint32_t>(g.msg_size));
    store_le<std::uint32_t>(b, kOffMsgAlign, static_cast<std::uint32_t>(g.msg_align));
    store_le<std::uint32_t>(b, kOffSlotSize, static_cast<std::uint32_t>(g.slot_size));
    store_le<std::uint32_t>(b, kOffSlotMsgOff, static_cast<std::uint32_t>(g.slot_msg_off));
    store_le<std::uint32_t>(b, kOffPolicy, static_cast<std::uint32_t>(h.policy));
    store_le<std::uint64_t>(b, kOffCapacity, g.capacity);
    store_le<std::uint32_t>(b, kOffMaxSubs, static_cast<std::uint32_t>(g.max_subs));
    store_le<std::uint32_t>(b, kOffHeaderSize, static_cast<std::uint32_t>(kHeaderSize));
    store_le<std::uint64_t>(b, kOffSleepersOff, g.sleepers_off);
    store_le<std::uint64_t>(b, kOffTableOff, g.table_off);
    store_le<std::uint64_t>(b, kOffSlotsOff, g.slots_off);
    store_le<std::uint64_t>(b, kOffSegSize, g.seg_size);
    store_le<std::uint64_t>(b, kOffLivenessNs, h.liveness_ns);
    store_le<std::uint64_t>(b, kOffCreatedNs, h.created_ns);
    store_le<std::uint32_t>(b, kOffBatch, h.batch);
    store_le<std::uint32_t>(b, kOffFlags, h.flags());
    store_le<std::uint64_t>(b, kOffEvictOff, g.evict_off);
}

/// Outcome of decode_header: a header, or an error code and its explanation.
struct Decoded {
    Header header;
    Errc error = Errc::ok;
    std::string why;
};

/// Validates a private copy of the first 512 bytes of a segment (ABI.md §6).
/// Each field is read once from `b`; every derived value is recomputed.
[[nodiscard]] inline Decoded decode_header(std::span<const std::byte> b) {
    using detail::load_le;
    using tachyon::detail::Num;
    Decoded d;
    auto fail = [&](Errc e, std::initializer_list<std::string_view> why) {
        d.error = e;
        d.why = tachyon::detail::cat(why);
        return d;
    };
    if (b.size() < kHeaderSize) return fail(Errc::corrupt, {"header is ", Num(b.size()), " bytes"});
    if (const auto m = load_le<std::uint64_t>(b, kOffMagic); m != kMagic)
        return fail(Errc::corrupt, {"magic ", Num::hex(m), ", want ", Num::hex(kMagic)});
    if (const auto v = load_le<std::uint32_t>(b, kOffVersion); v != kVersion)
        return fail(Errc::version, {"the segment is ABI version ", Num(v), ", this client speaks version 2"});
    if (const auto r = load_le<std::uint32_t>(b, kOffReady); r != kReadyReady) {
        if (r == kReadyInit) return fail(Errc::not_ready, {"ready word 0"});
        return fail(Errc::corrupt, {"ready word ", Num(r), ", want 1"});
    }
    const auto flags = load_le<std::uint32_t>(b, kOffFlags);
    if ((flags & ~kKnownFlags) != 0)
        return fail(Errc::corrupt, {"flags ", Num::hex(flags), ", want only bits of ", Num::hex(kKnownFlags)});
    Header& h = d.header;
    h.asym_fences = (flags & kFlagAsymFences) != 0;
    h.fingerprint = load_le<std::uint64_t>(b, kOffFingerprint);
    h.type_id = load_le<std::uint32_t>(b, kOffTypeId);
    const auto policy = load_le<std::uint32_t>(b, kOffPolicy);
    h.batch = load_le<std::uint32_t>(b, kOffBatch);
    h.liveness_ns = load_le<std::uint64_t>(b, kOffLivenessNs);
    h.created_ns = load_le<std::uint64_t>(b, kOffCreatedNs);
    if (policy > 2) return fail(Errc::corrupt, {"policy ", Num(policy), ", want 0, 1 or 2"});
    h.policy = static_cast<Policy>(policy);
    std::string why;
    const auto g = compute_geometry(load_le<std::uint32_t>(b, kOffMsgSize), load_le<std::uint32_t>(b, kOffMsgAlign),
                                    load_le<std::uint64_t>(b, kOffCapacity), load_le<std::uint32_t>(b, kOffMaxSubs),
                                    (flags & kFlagLineSlots) != 0, &why);
    if (!g) return fail(Errc::corrupt, {why});
    if (h.batch == 0 || h.batch > g->capacity / 2)
        return fail(Errc::corrupt, {"batch ", Num(h.batch), " outside [1, ", Num(g->capacity / 2), "]"});
    if (h.liveness_ns == 0) return fail(Errc::corrupt, {"liveness timeout is 0"});
    const struct {
        const char* name;
        std::uint64_t got, want;
    } checks[] = {
        {"slot size", load_le<std::uint32_t>(b, kOffSlotSize), g->slot_size},
        {"slot message offset", load_le<std::uint32_t>(b, kOffSlotMsgOff), g->slot_msg_off},
        {"header size", load_le<std::uint32_t>(b, kOffHeaderSize), kHeaderSize},
        {"sleepers offset", load_le<std::uint64_t>(b, kOffSleepersOff), g->sleepers_off},
        {"eviction table offset", load_le<std::uint64_t>(b, kOffEvictOff), g->evict_off},
        {"table offset", load_le<std::uint64_t>(b, kOffTableOff), g->table_off},
        {"slots offset", load_le<std::uint64_t>(b, kOffSlotsOff), g->slots_off},
        {"segment size", load_le<std::uint64_t>(b, kOffSegSize), g->seg_size},
    };
    for (const auto& c : checks) {
        if (c.got != c.want) return fail(Errc::corrupt, {c.name, " ", Num(c.got), ", want ", Num(c.want)});
    }
    h.geo = *g;
    return d;
}

/// Why `name` cannot name a ring segment, or nullopt if it can (ABI.md §2).
[[nodiscard]] inline std::optional<std::string> name_problem(std::string_view name) {
    using tachyon::detail::Num;
    if (name.empty()) return "empty";
    if (name.size() > kMaxNameLen) return tachyon::detail::cat({Num(name.size()), " bytes, longer than 255"});
    if (name.find('/') != std::string_view::npos) return "contains '/'";
    if (name == "." || name.find("..") != std::string_view::npos) return "contains '..' or is '.'";
    for (std::size_t i = 0; i < name.size(); ++i) {
        const char c = name[i];
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                        c == '_' || c == '-';
        if (!ok) return tachyon::detail::cat({"byte ", Num::hex(static_cast<unsigned char>(c)), " at ", Num(i)});
    }
    return std::nullopt;
}

}  // namespace tachyon::abi
