// Tests of the C++ ring client (runtime/cpp/include/tachyon) against
// runtime/ABI.md: the golden vectors, every policy, the hostile and broken
// segments of the threat model (§11), and liveness across processes (fork +
// SIGKILL). The multi-threaded tests are in threaded_test.cpp.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

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

// ---------------------------------------------------------------------------
// Golden vectors (ABI.md §12).

std::vector<std::byte> read_hex(const std::string& file) {
    const std::string path = golden_dir + "/" + file;
    std::ifstream in(path);
    check(in.good(), "open " + path + " (run from the repository root or pass --golden DIR)");
    std::vector<std::byte> out;
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream ls(line);
        std::string offset;
        ls >> offset;
        check_eq(std::stoul(offset, nullptr, 16), out.size(), path + ": offset of \"" + line + "\"");
        for (std::string b; ls >> b;) out.push_back(static_cast<std::byte>(std::stoul(b, nullptr, 16)));
    }
    return out;
}

/// Zeroes the bytes that depend on the process or the clock (README.md).
void zero_volatile(std::vector<std::byte>& seg, const tachyon::abi::Geometry& g) {
    namespace abi = tachyon::abi;
    const auto zero = [&](std::uint64_t off, std::size_t n) { std::memset(seg.data() + off, 0, n); };
    zero(abi::kOffCreatedNs, 8);
    zero(abi::kOffProdPid, 4);
    zero(abi::kOffProdStartTime, 8);
    zero(abi::kOffProdHeartbeat, 8);
    for (std::uint64_t i = 0; i < g.max_subs; ++i) {
        zero(g.entry_off(i) + abi::kEntHeartbeat, 8);
        zero(g.entry_off(i) + abi::kEntPid, 4);
        zero(g.entry_off(i) + abi::kEntStartTime, 8);
    }
}

void check_same_bytes(const std::vector<std::byte>& got, const std::vector<std::byte>& want, std::string_view what) {
    check_eq(got.size(), want.size(), std::string(what) + ": size");
    for (std::size_t i = 0; i < got.size(); ++i) {
        if (got[i] != want[i]) {
            char buf[128];
            std::snprintf(buf, sizeof buf, "%.*s: byte 0x%04zx is 0x%02x, the vector has 0x%02x",
                          static_cast<int>(what.size()), what.data(), i, static_cast<unsigned>(got[i]),
                          static_cast<unsigned>(want[i]));
            fail(buf);
        }
    }
}

void golden_decode() {
    namespace abi = tachyon::abi;
    struct Case {
        const char* file;
        std::uint64_t fingerprint;
        std::uint32_t type_id;
        Policy policy;
        std::uint32_t batch;
        std::uint64_t liveness_ns;
        bool asym_fences;
        abi::Geometry geo;
    };
    // Every derived number written out: the vectors pin ABI.md §3's
    // formulas, which compute_geometry must reproduce.
    const Case cases[] = {
        {"tick_block_v2.hex", Tick::kFingerprint, 1, Policy::block, 2, 2'000'000'000, false,
         {.msg_size = 64, .msg_align = 8, .line_slots = false, .slot_msg_off = 8, .slot_size = 72, .capacity = 8,
          .mask = 7, .max_subs = 2, .sleepers_off = 0x200, .evict_off = 0x280, .table_off = 0x300, .slots_off = 0x400,
          .seg_size = 0x640}},
        {"book_drop_oldest_v2.hex", Book::kFingerprint, 2, Policy::drop_oldest, 1, 1'000'000'000, false,
         {.msg_size = 64, .msg_align = 64, .line_slots = true, .slot_msg_off = 64, .slot_size = 128, .capacity = 4,
          .mask = 3, .max_subs = 1, .sleepers_off = 0x200, .evict_off = 0x280, .table_off = 0x300, .slots_off = 0x380,
          .seg_size = 0x580}},
        {"small_line_asym_v2.hex", Small::kFingerprint, 3, Policy::block, 1, 1'000'000'000, true,
         {.msg_size = 16, .msg_align = 8, .line_slots = true, .slot_msg_off = 8, .slot_size = 64, .capacity = 4,
          .mask = 3, .max_subs = 1, .sleepers_off = 0x200, .evict_off = 0x280, .table_off = 0x300, .slots_off = 0x380,
          .seg_size = 0x480}},
    };
    for (const Case& c : cases) {
        const std::vector<std::byte> seg = read_hex(c.file);
        const abi::Decoded d = abi::decode_header(seg);
        Scope file(c.file);
        check_eq(d.error, Errc::ok, d.why);
        const abi::Header& h = d.header;
        check_eq(h.fingerprint, c.fingerprint, "fingerprint");
        check_eq(h.type_id, c.type_id, "type id");
        check_eq(h.policy, c.policy, "policy");
        check_eq(h.batch, c.batch, "batch");
        check_eq(h.liveness_ns, c.liveness_ns, "liveness");
        check_eq(h.asym_fences, c.asym_fences, "asymmetric fences");
        const auto& g = h.geo;
        const auto& w = c.geo;
        check_eq(g.msg_size, w.msg_size, "msg_size");
        check_eq(g.msg_align, w.msg_align, "msg_align");
        check_eq(g.line_slots, w.line_slots, "line slots");
        check_eq(g.slot_msg_off, w.slot_msg_off, "slot_msg_offset");
        check_eq(g.slot_size, w.slot_size, "slot_size");
        check_eq(g.capacity, w.capacity, "capacity");
        check_eq(g.mask, w.mask, "mask");
        check_eq(g.max_subs, w.max_subs, "max_subs");
        check_eq(g.sleepers_off, w.sleepers_off, "sleepers_offset");
        check_eq(g.evict_off, w.evict_off, "evict_offset");
        check_eq(g.table_off, w.table_off, "table_offset");
        check_eq(g.slots_off, w.slots_off, "slots_offset");
        check_eq(g.seg_size, w.seg_size, "segment_size");
        check_eq(seg.size(), g.seg_size, "vector length");
        // Re-encoding the decoded header gives the vector's identity line
        // (created_ns and ready aside: volatile and not encoded).
        std::vector<std::byte> line(abi::kHeaderSize);
        abi::encode_identity(line, h);
        std::memcpy(line.data() + abi::kOffReady, seg.data() + abi::kOffReady, 4);
        check(std::equal(line.begin(), line.begin() + abi::kLineSize, seg.begin()), "re-encoded identity line");
    }
    // The automatic layout (every client's rule, DECISIONS.md): line slots
    // when a stamp and the message fit in two cache lines, packed beyond.
    const struct {
        std::uint64_t size, align;
        bool line;
    } rule[] = {{8, 1, true},     {16, 8, true},    {56, 8, true},   {64, 8, true},  {120, 8, true},
                {128, 8, false},  {120, 4, true},   {124, 4, false}, {64, 64, true}, {128, 64, false},
                {1024, 8, false}};
    for (const auto& r : rule)
        check_eq(tachyon::line_slots(tachyon::SlotLayout::automatic, r.size, r.align), r.line, "automatic layout");
}

/// Builds the vectors' rings with this client, drives them to the same
/// state, and compares every byte (ABI.md §12, golden/abi/README.md).
void golden_rebuild() {
    namespace abi = tachyon::abi;
    const auto compare = [](const auto& pub, const char* file) {
        std::vector<std::byte> got(pub.segment_bytes().begin(), pub.segment_bytes().end());
        const std::vector<std::byte> want = read_hex(file);
        zero_volatile(got, abi::decode_header(want).header.geo);
        check_same_bytes(got, want, file);
    };
    {
        RingName name;
        auto pub = Publisher<Tick>::create(name, {.capacity = 8,
                                                  .max_subscribers = 2,
                                                  .policy = Policy::block,
                                                  .batch = 2,
                                                  .liveness_timeout = 2s,
                                                  .slot_layout = tachyon::SlotLayout::packed,
                                                  .fences = tachyon::Fences::strong});
        auto sub = Subscriber<Tick>::attach(name);
        publish_ticks(pub, 0, 3);
        pub.flush();
        Tick m{};
        check_eq(sub.recv(m, 1s), Errc::ok, "recv");
        check_eq(m.seq, 0u, "first message");
        sub.flush_stats();
        compare(pub, "tick_block_v2.hex");
    }
    {
        RingName name;
        auto pub = Publisher<Book>::create(name, {.capacity = 4,
                                                  .max_subscribers = 1,
                                                  .policy = Policy::drop_oldest,
                                                  .batch = 1,
                                                  .liveness_timeout = 1s,
                                                  .slot_layout = tachyon::SlotLayout::line,
                                                  .fences = tachyon::Fences::strong});
        auto sub = Subscriber<Book>::attach(name, {.max_lag = 2});
        for (std::uint64_t i = 0; i < 6; ++i) {
            auto b = pub.claim();
            check_eq(b.error(), Errc::ok, "claim");
            (*b)->seq = i;
            (*b)->check = ~i;
            check_eq(pub.commit(), Errc::ok, "commit");
        }
        Book b{};
        check_eq(sub.try_recv(b), Errc::ok, "try_recv");
        check_eq(b.seq, 4u, "the lag window skips 0..3");
        sub.flush_stats();
        compare(pub, "book_drop_oldest_v2.hex");
    }
    {
        // Asymmetric fences without registering for membarrier (the bytes
        // must not depend on the machine), and a subscriber that joins as a
        // membarrier-less process: the producer's first scan acknowledges it
        // and switches to strong fences.
        RingName name;
        tachyon::detail::test_force_asym = true;
        struct Reset {
            ~Reset() { tachyon::detail::test_force_asym = false; }
        } reset;
        auto pub = Publisher<Small>::create(name, {.capacity = 4, .max_subscribers = 1, .liveness_timeout = 1s});
        std::optional<Subscriber<Small>> sub;
        {
            ScopedEnv strong("TACHYON_FENCES", "strong");
            sub.emplace(Subscriber<Small>::attach(name));
        }
        check(sub->strong_fences(), "a TACHYON_FENCES=strong subscriber fences");
        for (std::uint64_t i = 0; i < 3; ++i) check_eq(pub.publish(Small{i, i * i}), Errc::ok, "publish");
        Small m{};
        for (std::uint64_t i = 0; i < 2; ++i) {
            check_eq(sub->try_recv(m), Errc::ok, "try_recv");
            check_eq(m.value, i * i, "value");
        }
        sub->flush_stats();
        compare(pub, "small_line_asym_v2.hex");
    }
}

/// A vector is a stale segment (its producer is gone): attach works, reclaims
/// the dead subscriber's entry, and reports the publisher dead.
void golden_attach_stale() {
    namespace abi = tachyon::abi;
    RingName name;
    write_segment(name, read_hex("tick_block_v2.hex"));
    auto sub = Subscriber<Tick>::attach(name);
    check_eq(sub.entry(), 0u, "the dead owner's entry");
    Tick m{};
    check_eq(sub.try_recv(m), Errc::empty, "nothing after the join point");
    check_eq(sub.recv(m, 2s), Errc::publisher_dead, "recv");
    check_contains(sub.describe(Errc::publisher_dead), "receive \"" + name.str() + "\": publisher dead");
    sub.close();
    // Entry 0 (state active in the vector, its owner gone) was reclaimed:
    // generation 1 -> 2 at registration, 3 at detach.
    std::ifstream in(name.path(), std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::uint64_t gen;
    std::memcpy(&gen, bytes.data() + entry_off(0x300, 0, abi::kEntGen), 8);
    check_eq(gen, 3u, "entry 0 generation");
}

// ---------------------------------------------------------------------------
// Broken, hostile and foreign segments (ABI.md §2 "Attach", §6, §11).

void header_corruption() {
    namespace abi = tachyon::abi;
    const std::vector<std::byte> good = read_hex("tick_block_v2.hex");
    struct Case {
        const char* what;
        std::size_t off;
        int width;  // 4 or 8
        std::uint64_t value;
        Errc want;
        const char* says;
    };
    const Case cases[] = {
        {"magic", abi::kOffMagic, 8, 0x474E495248434155ULL, Errc::corrupt, "magic"},
        {"version 1", abi::kOffVersion, 4, 1, Errc::version, "the segment is ABI version 1, this client speaks version 2"},
        {"version 3", abi::kOffVersion, 4, 3, Errc::version, "ABI version 3"},
        {"ready 0", abi::kOffReady, 4, 0, Errc::not_ready, "ready word still 0"},
        {"ready 7", abi::kOffReady, 4, 7, Errc::corrupt, "ready word 7"},
        {"fingerprint", abi::kOffFingerprint, 8, 0x1234, Errc::mismatch, "fingerprint 0x1234, want 0x7ac49e0f1d2b3c4d"},
        {"type id", abi::kOffTypeId, 4, 9, Errc::mismatch, "type id 0x9, want 0x1"},
        {"msg size not a multiple", abi::kOffMsgSize, 4, 65, Errc::corrupt, "multiple"},
        {"msg size 0", abi::kOffMsgSize, 4, 0, Errc::corrupt, "message size 0"},
        {"msg size 2 MiB", abi::kOffMsgSize, 4, 2u << 20, Errc::corrupt, "message size"},
        {"align 3", abi::kOffMsgAlign, 4, 3, Errc::corrupt, "alignment 3"},
        {"align 8192", abi::kOffMsgAlign, 4, 8192, Errc::corrupt, "alignment 8192"},
        {"slot size", abi::kOffSlotSize, 4, 80, Errc::corrupt, "slot size 80, want 72"},
        {"slot msg offset", abi::kOffSlotMsgOff, 4, 16, Errc::corrupt, "slot message offset"},
        {"policy 3", abi::kOffPolicy, 4, 3, Errc::corrupt, "policy 3"},
        {"capacity 6", abi::kOffCapacity, 8, 6, Errc::corrupt, "capacity 6"},
        {"capacity 1", abi::kOffCapacity, 8, 1, Errc::corrupt, "capacity 1"},
        {"capacity 2^31", abi::kOffCapacity, 8, 1ULL << 31, Errc::corrupt, "capacity"},
        {"capacity 2^63", abi::kOffCapacity, 8, 1ULL << 63, Errc::corrupt, "capacity"},
        {"max subs 0", abi::kOffMaxSubs, 4, 0, Errc::corrupt, "subscriber table size 0"},
        {"max subs 1025", abi::kOffMaxSubs, 4, 1025, Errc::corrupt, "subscriber table size 1025"},
        {"header size", abi::kOffHeaderSize, 4, 256, Errc::corrupt, "header size 256"},
        {"sleepers offset", abi::kOffSleepersOff, 8, 0x208, Errc::corrupt, "sleepers offset"},
        {"eviction table offset", abi::kOffEvictOff, 8, 0x200, Errc::corrupt, "eviction table offset 512, want 640"},
        {"table offset", abi::kOffTableOff, 8, 0x288, Errc::corrupt, "table offset"},
        {"slots offset", abi::kOffSlotsOff, 8, 0, Errc::corrupt, "slots offset 0"},
        {"segment size", abi::kOffSegSize, 8, 1ULL << 40, Errc::corrupt, "segment size"},
        {"liveness 0", abi::kOffLivenessNs, 8, 0, Errc::corrupt, "liveness timeout is 0"},
        {"batch 0", abi::kOffBatch, 4, 0, Errc::corrupt, "batch 0"},
        {"batch > capacity/2", abi::kOffBatch, 4, 5, Errc::corrupt, "batch 5 outside [1, 4]"},
        {"unknown flag", abi::kOffFlags, 4, 4, Errc::corrupt, "flags 0x4, want only bits of 0x3"},
        {"line slots over packed offsets", abi::kOffFlags, 4, 1, Errc::corrupt, "slot size 72, want 128"},
    };
    for (const Case& c : cases) {
        std::vector<std::byte> seg = good;
        std::memcpy(seg.data() + c.off, &c.value, static_cast<std::size_t>(c.width));
        RingName name;
        write_segment(name, seg);
        std::string what;
        const Errc got = attach_error([&] { (void)Subscriber<Tick>::attach(name, {.ready_timeout = 5ms}); }, &what);
        check_eq(got, c.want, c.what);
        check_contains(what, "attach \"" + name.str() + "\"");
        check_contains(what, c.says);
    }
    // A consistent header for a bigger ring than the file holds: the fstat
    // check refuses it before anything is mapped.
    {
        std::vector<std::byte> seg = good;
        auto g = *abi::compute_geometry(64, 8, 64, 2, false);
        abi::Header h = abi::decode_header(good).header;
        h.geo = g;
        abi::encode_identity(std::span<std::byte>(seg).first(abi::kHeaderSize), h);
        RingName name;
        write_segment(name, seg);
        std::string what;
        check_eq(attach_error([&] { (void)Subscriber<Tick>::attach(name); }, &what), Errc::corrupt, "bigger ring");
        check_contains(what, "file is 1600 bytes, header says " + std::to_string(g.seg_size));
    }
    // Every single-byte change of the header and the control lines: an
    // error or a working subscriber, never a crash (ASan watches).
    RingName name;
    for (std::size_t off = 0; off < abi::kHeaderSize; ++off) {
        for (const unsigned flip : {0x01u, 0x80u, 0xffu}) {
            std::vector<std::byte> seg = good;
            seg[off] ^= static_cast<std::byte>(flip);
            write_segment(name, seg);
            try {
                auto sub = Subscriber<Tick>::attach(name, {.ready_timeout = 0ns});
                Tick m{};
                for (int i = 0; i < 4; ++i) (void)sub.try_recv(m);
            } catch (const tachyon::Error& e) {
                check_contains(e.what(), name.str());
            }
        }
    }
}

void truncated_segments() {
    const std::vector<std::byte> good = read_hex("tick_block_v2.hex");
    struct Case {
        std::size_t size;
        Errc want;
        const char* says;
    };
    const Case cases[] = {
        {0, Errc::not_ready, "still empty"},
        {1, Errc::corrupt, "file is 1 bytes, smaller than the 512-byte header"},
        {100, Errc::corrupt, "file is 100 bytes"},
        {511, Errc::corrupt, "file is 511 bytes"},
        {512, Errc::corrupt, "file is 512 bytes, header says 1600"},
        {1599, Errc::corrupt, "file is 1599 bytes, header says 1600"},
    };
    for (const Case& c : cases) {
        RingName name;
        write_segment(name, std::span(good).first(c.size));
        std::string what;
        const auto t0 = Clock::now();
        check_eq(attach_error([&] { (void)Subscriber<Tick>::attach(name, {.ready_timeout = 20ms}); }, &what), c.want,
                 "size " + std::to_string(c.size));
        check(Clock::now() - t0 < 1s, "the ready wait is bounded");
        check_contains(what, c.says);
    }
    RingName name;
    write_segment(name, good);
    (void)Subscriber<Tick>::attach(name);  // the whole file is fine
}

void insecure_segments() {
    const std::vector<std::byte> good = read_hex("tick_block_v2.hex");
    std::string what;
    {
        RingName name;
        write_segment(name, good, 0666);
        check_eq(attach_error([&] { (void)Subscriber<Tick>::attach(name); }, &what), Errc::insecure, "0666");
        check_contains(what, "world-writable");
    }
    {
        RingName target, link;
        write_segment(target, good);
        check(::symlink(target.path().c_str(), link.path().c_str()) == 0, "symlink");
        check_eq(attach_error([&] { (void)Subscriber<Tick>::attach(link); }, &what), Errc::insecure, "symlink");
        check_contains(what, link.path() + " is a symbolic link, not a ring segment");
    }
    // Creation never reuses or follows an existing name, and sets the mode
    // exactly, whatever the umask.
    {
        RingName name;
        write_segment(name, good, 0600);
        check_eq(attach_error([&] { (void)Publisher<Tick>::create(name); }, &what), Errc::exists, "existing name");
        check_contains(what, "stat --reap");
    }
    {
        RingName name;
        const mode_t old = ::umask(077);  // would filter 0640 down to 0600
        auto pub = Publisher<Tick>::create(name, {.mode = 0640});
        ::umask(old);
        struct stat st{};
        check(::stat(name.path().c_str(), &st) == 0, "stat");
        check_eq(st.st_mode & 0777, 0640u, "mode");
    }
}

void names_and_options() {
    const std::string long_name(256, 'a');
    for (const std::string bad : {"", ".", "..", "a/b", "a..b", "x y", "caf\xc3\xa9", long_name.c_str()}) {
        std::string what;
        Scope scope("name \"" + bad + "\"");
        check_eq(attach_error([&] { (void)Publisher<Tick>::create(bad); }, &what), Errc::invalid_name, "create");
        check_eq(attach_error([&] { (void)Subscriber<Tick>::attach(bad); }, &what), Errc::invalid_name, "attach");
    }
    RingName name;
    const tachyon::Options bad[] = {
        {.capacity = 3},         {.capacity = 1},         {.capacity = 1ULL << 31}, {.max_subscribers = 0},
        {.max_subscribers = 1025}, {.capacity = 8, .batch = 5}, {.timeout = -1ms},   {.liveness_timeout = 0ns},
        {.mode = 0666},          {.mode = 01600},
    };
    for (const auto& o : bad) {
        std::string what;
        check_eq(attach_error([&] { (void)Publisher<Tick>::create(name, o); }, &what), Errc::invalid_options,
                 "options");
        check_contains(what, "create \"" + name.str() + "\": invalid options");
        check(::access(name.path().c_str(), F_OK) != 0, "nothing created");
    }
    check_eq(attach_error([&] { (void)Subscriber<Tick>::attach(name); }), Errc::not_found, "missing ring");
    auto pub = Publisher<Tick>::create(name, {.capacity = 8});
    check_eq(attach_error([&] { (void)Subscriber<Tick>::attach(name, {.max_lag = 9}); }), Errc::invalid_options,
             "max_lag > capacity");
}

void identity_mismatch() {
    RingName name;
    auto pub = Publisher<Tick>::create(name);
    struct Case {
        Errc (*attach)(std::string_view, std::string*);
        const char* says;
    };
    const Case cases[] = {
        {[](std::string_view n, std::string* w) {
             return attach_error([&] { (void)Subscriber<Impostor<0x7ac49e0f1d2bffffULL, 1, 64, 8>>::attach(n); }, w);
         },
         "message type mismatch: fingerprint 0x7ac49e0f1d2b3c4d, want 0x7ac49e0f1d2bffff"},
        {[](std::string_view n, std::string* w) {
             return attach_error([&] { (void)Subscriber<Impostor<Tick::kFingerprint, 7, 64, 8>>::attach(n); }, w);
         },
         "message type mismatch: type id 0x1, want 0x7"},
        {[](std::string_view n, std::string* w) {
             return attach_error([&] { (void)Subscriber<Impostor<Tick::kFingerprint, 1, 128, 8>>::attach(n); }, w);
         },
         "message type mismatch: message size 0x40, want 0x80"},
        {[](std::string_view n, std::string* w) {
             return attach_error([&] { (void)Subscriber<Impostor<Tick::kFingerprint, 1, 64, 16>>::attach(n); }, w);
         },
         "message type mismatch: message alignment 0x8, want 0x10"},
    };
    for (const Case& c : cases) {
        std::string what;
        check_eq(c.attach(name, &what), Errc::mismatch, c.says);
        check_contains(what, "attach \"" + name.str() + "\": ");
        check_contains(what, c.says);
    }
    check_eq(pub.active_subscribers(), 0u, "a refused subscriber never registers");
}

// ---------------------------------------------------------------------------
// The data path.

void claim_commit_publish() {
    RingName name;
    auto pub = Publisher<Tick>::create(name, {.capacity = 8});
    auto sub = Subscriber<Tick>::attach(name);
    check_eq(pub.commit(), Errc::claimed, "commit without a claim");
    auto a = pub.claim();
    check_eq(a.error(), Errc::ok, "claim");
    auto again = pub.claim();
    check(*again == *a, "a second claim before commit returns the same slot");
    (*a)->fill(0);
    check_eq(pub.commit(), Errc::ok, "commit");
    Tick m{};
    m.fill(1);
    check_eq(pub.publish(m), Errc::ok, "publish");
    check_eq(pub.published(), 2u, "published");
    for (std::uint64_t want = 0; want < 2; ++want) {
        Tick got{};
        check_eq(sub.recv(got, 1s), Errc::ok, "recv");
        check_eq(got.seq, want, "seq");
        check(got.intact(), "intact");
    }
    check_eq(sub.received(), 2u, "received");
    check_eq(sub.try_recv(m), Errc::empty, "then empty");
}

/// Messages are published every `batch` commits or on flush (§8.1). A
/// subscriber reads committed ones earlier through their stamps: an
/// unlimited one whenever (§8.5 1a), a lossy one with a window smaller than
/// the ring once it has caught up with the published tail (1b: its lag is
/// then below batch). lag() counts published messages only.
void batch_visibility() {
    RingName name;
    auto pub = Publisher<Tick>::create(name, {.capacity = 16, .batch = 4});
    auto unlimited = Subscriber<Tick>::attach(name);
    auto lossy = Subscriber<Tick>::attach(name, {.max_lag = 8});
    publish_ticks(pub, 0, 3);
    check_eq(shared_u64(pub, tachyon::abi::kOffTail).load(), 0u, "nothing published");
    check_eq(lossy.lag(), 0u, "lag counts published messages");
    Tick m{};
    for (std::uint64_t s = 0; s < 3; ++s) {
        check_eq(unlimited.try_recv(m), Errc::ok, "unlimited reads committed stamps");
        check_eq(m.seq, s, "seq");
        check_eq(lossy.try_recv(m), Errc::ok, "lossy, caught up, reads them too");
        check_eq(m.seq, s, "seq");
    }
    check_eq(unlimited.try_recv(m), Errc::empty, "nothing uncommitted");
    check_eq(lossy.try_recv(m), Errc::empty, "nothing uncommitted (lossy)");
    publish_ticks(pub, 3, 4);  // the 4th commit since the last publication publishes
    check_eq(shared_u64(pub, tachyon::abi::kOffTail).load(), 4u, "a full batch publishes itself");
    check_eq(lossy.lag(), 1u, "lag after the batch: 4 published, 3 read");
    pub.flush();
    check_eq(lossy.lag(), 4u, "lag after flush");
    for (std::uint64_t s = 3; s < 7; ++s) {
        check_eq(lossy.try_recv(m), Errc::ok, "lossy after flush");
        check_eq(m.seq, s, "seq");
    }
}

void recv_timeout() {
    RingName name;
    auto pub = Publisher<Tick>::create(name);
    auto sub = Subscriber<Tick>::attach(name);
    Tick m{};
    check_eq(sub.try_recv(m), Errc::empty, "try_recv");
    auto t0 = Clock::now();
    check_eq(sub.recv(m, 30ms), Errc::timeout, "recv");
    const auto took = Clock::now() - t0;
    check_between(took, 30ms, 530ms, "recv with a 30 ms timeout waited");
    check_eq(sub.recv(m, 0ns), Errc::timeout, "zero timeout");
    check_eq(sub.borrow(5ms).error(), Errc::timeout, "borrow");
    check_eq(sub.borrow_batch(8, 5ms).error(), Errc::timeout, "borrow_batch");
    publish_ticks(pub, 0, 1);
    check_eq(sub.recv(m, 0ns), Errc::ok, "a ready message needs no wait");
}

/// An idle subscriber parks on the futex (about no CPU), and every sleep is
/// cut by the 200 ms watchdog (§8.3).
void idle_subscriber_parks() {
    RingName name;
    auto pub = Publisher<Tick>::create(name);
    auto sub = Subscriber<Tick>::attach(name);
    Tick m{};
    const auto cpu0 = thread_cpu();
    check_eq(sub.recv(m, 450ms), Errc::timeout, "recv");
    const auto cpu = thread_cpu() - cpu0;
    check_between(cpu, 0ns, 50ms, "CPU burnt by an idle wait of 450 ms");
    check(sub.watchdog_fires() >= 2, "sleeps of at most 200 ms: the watchdog fired at least twice");
}

void borrow_release() {
    RingName name;
    auto pub = Publisher<Tick>::create(name, {.capacity = 8});
    auto sub = Subscriber<Tick>::attach(name);
    check_eq(sub.release(), Errc::claimed, "release without a borrow");
    publish_ticks(pub, 0, 3);
    auto b = sub.borrow(1s);
    check_eq(b.error(), Errc::ok, "borrow");
    check_eq((*b)->seq, 0u, "borrowed seq");
    check((*b)->intact(), "borrowed in place, intact");
    check_eq(sub.borrow(0ns).error(), Errc::claimed, "second borrow");
    check_eq(sub.borrow_batch(4, 0ns).error(), Errc::claimed, "batch while borrowing");
    Tick m{};
    check_eq(sub.try_recv(m), Errc::claimed, "recv while borrowing");
    check_eq(sub.release(), Errc::ok, "release");
    check_eq(sub.received(), 1u, "a released borrow is received");
    check_eq(sub.recv(m, 1s), Errc::ok, "recv after release");
    check_eq(m.seq, 1u, "seq");
    auto batch = sub.borrow_batch(100, 1s);
    check_eq(batch.error(), Errc::ok, "borrow_batch");
    check_eq(batch->size(), 1u, "what is left");
    check_eq((*batch)[0].seq, 2u, "seq");
    check_eq(sub.release(), Errc::ok, "release batch");
}

/// Both slot layouts carry a stream the same way (ABI.md §3): the automatic
/// choice (line for a message of at most 56 bytes, packed above), and line
/// forced for a 64-byte one, whose slots then span two whole cache lines.
/// Read by copy and by batch borrow, whose stride is the slot size.
void slot_layouts() {
    namespace abi = tachyon::abi;
    {
        RingName name;
        auto pub = Publisher<Small>::create(name, {.capacity = 16});
        const auto g = geometry(pub);
        check(g.line_slots, "automatic: line for 16 bytes");
        check_eq(g.slot_size, 64u, "one line per slot");
        check_eq(shared_u32(pub, abi::kOffFlags).load() & abi::kFlagLineSlots, abi::kFlagLineSlots, "flag");
        auto sub = Subscriber<Small>::attach(name);
        for (std::uint64_t i = 0; i < 40; ++i) {
            check_eq(pub.publish(Small{i, i * 3}), Errc::ok, "publish");
            Small m{};
            check_eq(sub.recv(m, 1s), Errc::ok, "recv");
            check(m.seq == i && m.value == i * 3, "the message");
        }
    }
    for (const auto layout : {tachyon::SlotLayout::automatic, tachyon::SlotLayout::packed, tachyon::SlotLayout::line}) {
        Scope scope(std::string("Tick, ") + std::string(tachyon::to_string(layout)));
        RingName name;
        auto pub = Publisher<Tick>::create(name, {.capacity = 16, .slot_layout = layout});
        const auto g = geometry(pub);
        const bool line = layout != tachyon::SlotLayout::packed;  // automatic: 64 B fit in two lines
        check_eq(g.line_slots, line, "line slots");
        check_eq(g.slot_size, line ? 128u : 72u, "slot size");
        check_eq(g.slots_off % 64, 0u, "slots start on a cache line");
        auto sub = Subscriber<Tick>::attach(name);
        std::uint64_t next = 0;
        for (std::uint64_t round = 0; round < 5; ++round) {
            publish_ticks(pub, round * 10, 10);
            while (next < round * 10 + 10) {
                auto b = sub.borrow_batch(16, 1s);
                check_eq(b.error(), Errc::ok, "borrow_batch");
                for (const Tick& t : *b) {
                    check_eq(t.seq, next++, "in order");
                    check(t.intact(), "intact");
                }
                check_eq(sub.release(), Errc::ok, "release");
            }
        }
    }
}

void borrow_batch_wrap() {
    RingName name;
    auto pub = Publisher<Tick>::create(name, {.capacity = 8, .batch = 2});
    auto sub = Subscriber<Tick>::attach(name);
    publish_ticks(pub, 0, 6);
    pub.flush();
    auto first = sub.borrow_batch(4, 1s);
    check_eq(first.error(), Errc::ok, "batch");
    check_eq(first->size(), 4u, "at most max_n");
    check_eq(sub.release(), Errc::ok, "release");
    auto second = sub.borrow_batch(100, 1s);
    check_eq(second->size(), 2u, "the rest");
    check_eq(sub.release(), Errc::ok, "release");
    publish_ticks(pub, 6, 6);  // indices 6..11: slots 6, 7, then 0..3
    pub.flush();
    auto wrap = sub.borrow_batch(100, 1s);
    check_eq(wrap.error(), Errc::ok, "batch");
    check_eq(wrap->size(), 2u, "contiguous slots only: stops at the ring's end");
    std::uint64_t want = 6;
    for (const Tick& t : *wrap) {
        check_eq(t.seq, want++, "in order");
        check(t.intact(), "intact");
    }
    check_eq(sub.release(), Errc::ok, "release");
    auto rest = sub.borrow_batch(100, 1s);
    check_eq(rest->size(), 4u, "after the wrap");
    check_eq((*rest)[3].seq, 11u, "last");
    check_eq(sub.release(), Errc::ok, "release");
    check_eq(sub.received(), 12u, "received");
}

// ---------------------------------------------------------------------------
// Policies (§8.2).

void block_timeout() {
    RingName name;
    auto pub = Publisher<Tick>::create(name, {.capacity = 4, .timeout = 450ms, .liveness_timeout = 30s});
    auto sub = Subscriber<Tick>::attach(name);
    publish_ticks(pub, 0, 4);
    const auto t0 = Clock::now();
    auto m = pub.claim();
    const auto took = Clock::now() - t0;
    check_eq(m.error(), Errc::timeout, "claim on a full block ring");
    check_between(took, 450ms, 1200ms, "claim with a 450 ms timeout waited");
    check(pub.watchdog_fires() >= 2, "parks of at most 200 ms: the watchdog fired at least twice");
    check_eq(pub.describe(Errc::timeout),
             "publish \"" + name.str() + "\": timeout: after 450 ms waiting for subscriber 0", "describe");
    check_eq(pub.published(), 4u, "nothing published by the failed claim");
    Tick got{};
    check_eq(sub.recv(got, 1s), Errc::ok, "the reader makes room");
    publish_ticks(pub, 4, 1);
    for (std::uint64_t s = 1; s <= 4; ++s) {
        check_eq(sub.recv(got, 1s), Errc::ok, "recv");
        check_eq(got.seq, s, "nothing lost under block");
    }
}

void drop_newest_counts_refusals() {
    namespace abi = tachyon::abi;
    RingName name;
    auto pub = Publisher<Tick>::create(name, {.capacity = 8, .policy = Policy::drop_newest});
    auto sub = Subscriber<Tick>::attach(name);
    int accepted = 0, refused = 0;
    for (std::uint64_t s = 0; s < 20; ++s) {
        auto m = pub.claim();
        if (m.error() == Errc::full) {
            ++refused;
            continue;
        }
        check_eq(m.error(), Errc::ok, "claim");
        (*m)->fill(static_cast<std::uint64_t>(accepted++));
        check_eq(pub.commit(), Errc::ok, "commit");
    }
    check_eq(accepted, 8, "accepted");
    check_eq(refused, 12, "refused");
    check_eq(pub.dropped(), 12u, "publisher's count");
    check_eq(shared_u64(pub, abi::kOffDroppedNewest).load(), 12u, "dropped_newest in the segment");
    Tick m{};
    for (std::uint64_t s = 0; s < 8; ++s) {
        check_eq(sub.recv(m, 1s), Errc::ok, "recv");
        check_eq(m.seq, s, "the oldest are kept");
    }
    check_eq(sub.try_recv(m), Errc::empty, "then empty");
    check_eq(sub.dropped(), 0u, "an unlimited reader of drop_newest never drops");
    publish_ticks(pub, 8, 1);
    check_eq(sub.recv(m, 1s), Errc::ok, "room again");
}

void drop_oldest_lapped() {
    namespace abi = tachyon::abi;
    RingName name;
    auto pub = Publisher<Tick>::create(name, {.capacity = 8, .policy = Policy::drop_oldest});
    auto unlimited = Subscriber<Tick>::attach(name);
    auto lossy = Subscriber<Tick>::attach(name, {.max_lag = 3});
    publish_ticks(pub, 0, 100);  // never waits: 92 overwritten
    Tick m{};
    for (std::uint64_t s = 92; s < 100; ++s) {
        check_eq(unlimited.recv(m, 1s), Errc::ok, "recv");
        check_eq(m.seq, s, "the newest capacity survive");
    }
    check_eq(unlimited.dropped(), 92u, "dropped exactly");
    check_eq(unlimited.received(), 8u, "received");
    for (std::uint64_t s = 97; s < 100; ++s) {
        check_eq(lossy.recv(m, 1s), Errc::ok, "lossy recv");
        check_eq(m.seq, s, "within max_lag of the tail");
    }
    check_eq(lossy.dropped(), 97u, "lossy dropped");
    // A borrow overwritten before release: all of it is dropped, reported.
    publish_ticks(pub, 100, 1);
    auto b = unlimited.borrow(1s);
    check_eq(b.error(), Errc::ok, "borrow");
    check_eq((*b)->seq, 100u, "borrowed");
    publish_ticks(pub, 101, 8);  // laps the borrowed slot
    check_eq(unlimited.release(), Errc::overwritten, "release of an overwritten slot");
    for (std::uint64_t s = 101; s < 109; ++s) {  // 101..108: the ring's 8 slots
        check_eq(unlimited.recv(m, 1s), Errc::ok, "after the lap");
        check_eq(m.seq, s, "seq");
    }
    // Every index since the join point is counted once (§8.5), in the
    // handle and, once flushed, in the segment.
    check_eq(unlimited.received() + unlimited.dropped(), 109u, "received + dropped");
    check_eq(unlimited.dropped(), 93u, "92 lapped and the overwritten borrow");
    unlimited.flush_stats();
    const auto t = table_off(pub);
    check_eq(shared_u64(pub, entry_off(t, 0, abi::kEntReceived)).load(), unlimited.received(), "received flushed");
    check_eq(shared_u64(pub, entry_off(t, 0, abi::kEntDropped)).load(), unlimited.dropped(), "dropped flushed");
    check_eq(shared_u64(pub, entry_off(t, 0, abi::kEntHead)).load(), 109u, "head");
}

/// A drop_oldest publisher in another process laps two readers of a
/// 4-slot ring of 512-byte messages hundreds of thousands of times: a
/// copying reader and one that reads in place. No torn message is ever
/// accepted; every message is received or counted as dropped, exactly.
///
/// First, deterministically, the overwrite of a borrow: the borrower holds
/// index 0 while the publisher provably laps it (it publishes capacity + 1
/// more and says so), and release() must report Errc::overwritten. Then the
/// paced stream (0 to about 1 us between messages): flat out it laps a
/// 4-slot ring before a reader even loads a stamp, and a reader that never
/// copies is never overwritten mid-copy. Paced, most messages are read, and
/// many copies overlap the rewrite of their slot: with the stamp re-check
/// after the copy removed, this test accepts torn messages (it was checked
/// so). How often that overlap happens depends on the machine, so it is
/// not asserted on.
void drop_oldest_never_torn() {
    constexpr std::uint64_t n = 400'000;
    constexpr std::uint64_t capacity = 4;
    RingName name;
    Child pub = Child::spawn([&](Child& link) {
        auto p = Publisher<Wide>::create(name, {.capacity = capacity, .policy = Policy::drop_oldest});
        link.say("ready");
        link.expect("one");
        publish_ticks(p, 0, 1);
        link.say("published");
        link.expect("lap");
        publish_ticks(p, 1, capacity + 1);  // index capacity overwrote index 0's slot
        link.say("lapped");
        link.expect("go");
        for (std::uint64_t s = capacity + 2; s < n; ++s) {
            publish_ticks(p, s, 1);
            // 0..1023 steps of a countdown the compiler must keep: many
            // short gaps (bursts that lap a slot being copied), some long.
            std::atomic<std::uint64_t> pause{mix(s) >> 54};
            while (pause.load(std::memory_order_relaxed) > 0)
                pause.store(pause.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
        }
        p.close();
    });
    pub.expect("ready");
    auto copier = Subscriber<Wide>::attach(name);
    auto borrower = Subscriber<Wide>::attach(name);
    pub.say("one");
    pub.expect("published");
    {
        auto held = borrower.borrow(5s);
        check_eq(held.error(), Errc::ok, "borrow index 0");
        check_eq((*held)->seq, 0u, "borrowed seq");
        pub.say("lap");
        pub.expect("lapped");
        check_eq(borrower.release(), Errc::overwritten, "release of a borrow the publisher lapped");
        check_eq(borrower.dropped(), 1u, "the overwritten borrow counts as dropped");
        check_eq(borrower.received(), 0u, "and never as received");
    }
    pub.say("go");
    Seen copied, borrowed;
    Errc copier_end = Errc::ok, borrower_end = Errc::ok;
    Threads threads([&] { pub.kill(); });  // a dead publisher ends the copier's drain
    threads.go([&] { copier_end = drain(copier, copied); });
    for (;;) {
        auto b = borrower.borrow(20s);
        if (!b) {
            borrower_end = b.error();
            break;
        }
        // Read in place, then copy: what a zero-copy reader does before it
        // trusts the data (release() says whether it may).
        const Wide seen_in_place = **b;
        if (borrower.release() == Errc::overwritten) continue;
        borrowed.add(seen_in_place);
    }
    threads.join();
    check_eq(pub.wait(), 0, "publisher exit status");
    check_eq(copier_end, Errc::closed, "copier ends with the close");
    check_eq(borrower_end, Errc::closed, "borrower ends with the close");
    for (auto [what, seen, sub] : {std::tuple{"copier", &copied, &copier}, std::tuple{"borrower", &borrowed, &borrower}}) {
        Scope reader(what);
        check_eq(seen->torn, 0u, "torn messages accepted");
        check_eq(seen->reordered, 0u, "reordered");
        check_eq(seen->received, sub->received(), "received");
        check_eq(sub->received() + sub->dropped(), n, "received + dropped");
        check_eq(seen->missing(n), sub->dropped(), "the gaps are the drops");
    }
    check(copier.dropped() > 0 && borrower.dropped() > 0, "the ring was lapped");
}

/// One unlimited reader and one slow lossy reader (max_lag 16) on a block
/// ring: the producer waits only for the unlimited one, which gets
/// everything; the lossy one's losses are exactly its gaps.
void fanout_lossy_slow_reader() {
    constexpr std::uint64_t n = 20'000;
    RingName name;
    auto pub = Publisher<Tick>::create(name, {.capacity = 64, .batch = 8});
    auto fast = Subscriber<Tick>::attach(name);
    auto slow = Subscriber<Tick>::attach(name, {.max_lag = 16});
    Seen fast_seen, slow_seen;
    Errc fast_end = Errc::ok, slow_end = Errc::ok;
    Threads threads([&] { pub.close(); });
    threads.go([&] { fast_end = drain(fast, fast_seen); });
    threads.go([&] { slow_end = drain(slow, slow_seen, 20us); });
    publish_ticks(pub, 0, n);
    pub.close();
    threads.join();
    check_eq(fast_end, Errc::closed, "fast reader end");
    check_eq(slow_end, Errc::closed, "slow reader end");
    check_eq(fast_seen.received, n, "the unlimited reader gets everything");
    check_eq(fast_seen.gaps + fast_seen.torn + fast_seen.reordered, 0u, "gap-free");
    check_eq(slow.received() + slow.dropped(), n, "lossy: received + dropped");
    check_eq(slow_seen.missing(n), slow.dropped(), "lossy: the gaps are the drops");
    check_eq(slow_seen.torn + slow_seen.reordered, 0u, "lossy: never torn");
    // Lost messages are the proof that the producer did not wait for it.
    check(slow.dropped() > 0, "the slow reader fell behind");
}

// ---------------------------------------------------------------------------
// Liveness (§9).

void evict_stalled_subscriber() {
    namespace abi = tachyon::abi;
    RingName name;
    auto pub = Publisher<Tick>::create(name, {.capacity = 16, .liveness_timeout = 150ms});
    auto stalled = Subscriber<Tick>::attach(name);
    auto good = Subscriber<Tick>::attach(name);
    Seen seen;
    Threads threads([&] { pub.close(); });
    threads.go([&] { (void)drain(good, seen); });
    const auto t0 = Clock::now();
    publish_ticks(pub, 0, 200);
    const auto took = Clock::now() - t0;
    // Evicted by one store to the eviction table; the entry itself is the
    // subscriber's, untouched (ABI.md §5.5).
    check(entry_evicted(pub, 0), "entry 0 evicted");
    check_eq(shared_u32(pub, entry_off(table_off(pub), 0, abi::kEntState)).load(), abi::kEntActive, "entry 0 state");
    check_eq(pub.evictions(), 1u, "evictions");
    pub.close();
    threads.join();
    check_eq(seen.received, 200u, "the live reader loses nothing");
    // At least the liveness timeout; at most that and a watchdog period,
    // with room for a loaded machine.
    check_between(took, 150ms, 150ms + tachyon::kWatchdog + 1s, "time blocked by a stalled reader (liveness 150 ms)");
    Tick m{};
    Errc e;
    while ((e = stalled.try_recv(m)) == Errc::ok) {
    }
    check_eq(e, Errc::evicted, "the stalled reader learns it");
    check_contains(stalled.describe(e), "receive \"" + name.str() + "\": subscriber evicted: entry 0, generation 1");
}

/// A subscriber that writes head = tail + 2^40 is evicted (§8.2: beyond
/// the committed count); the others lose nothing. The liveness timeout is an
/// hour, so that only the head check can evict it within the publish
/// timeout (without it, the entry would count as stalled, and be evicted
/// later for that).
void hostile_head_evicted() {
    namespace abi = tachyon::abi;
    RingName name;
    auto pub = Publisher<Tick>::create(name, {.capacity = 16, .timeout = 2s, .liveness_timeout = 3600s});
    auto bad = Subscriber<Tick>::attach(name);
    auto good = Subscriber<Tick>::attach(name);
    Seen seen;
    Threads threads([&] { pub.close(); });
    threads.go([&] { (void)drain(good, seen); });
    shared_u64(pub, entry_off(table_off(pub), 0, abi::kEntHead)).store(1ULL << 40);
    publish_ticks(pub, 0, 1000);
    pub.close();
    threads.join();
    check_eq(seen.received, 1000u, "good reader");
    check_eq(seen.gaps + seen.torn, 0u, "gap-free");
    Tick m{};
    check_eq(bad.try_recv(m), Errc::evicted, "hostile reader");
}

/// Hostile live values on the reader's side: a tail that moves back, a
/// stamp below its index, a tail far beyond anything written. Errors,
/// never a crash or a read outside the ring.
void hostile_tail_and_stamps() {
    namespace abi = tachyon::abi;
    RingName name;
    auto pub = Publisher<Tick>::create(name, {.capacity = 8});
    const auto d = abi::decode_header(pub.segment_bytes().first(abi::kHeaderSize));
    const auto& g = d.header.geo;
    {
        auto sub = Subscriber<Tick>::attach(name);
        publish_ticks(pub, 0, 5);
        Tick m{};
        for (int i = 0; i < 5; ++i) check_eq(sub.try_recv(m), Errc::ok, "recv");
        // Read through the stamps, the five needed no tail load; a published
        // tail below head is legitimate then (batching). Corrupt is a tail
        // below one this reader has loaded: the empty poll loads 5.
        check_eq(sub.try_recv(m), Errc::empty, "caught up");
        shared_u64(pub, abi::kOffTail).store(2);
        check_eq(sub.try_recv(m), Errc::corrupt, "tail moved back");
        check_contains(sub.describe(Errc::corrupt),
                       "receive \"" + name.str() + "\": corrupt segment: tail moved back from 5 to 2");
        check_eq(sub.borrow_batch(4, 0ns).error(), Errc::corrupt, "tail moved back (batch)");
        shared_u64(pub, abi::kOffTail).store(5);
    }
    {
        auto sub = Subscriber<Tick>::attach(name);  // joins at 5
        publish_ticks(pub, 5, 1);
        shared_u64(pub, g.slots_off + (5 & g.mask) * g.slot_size).store(2);  // stamp of index 0
        Tick m{};
        check_eq(sub.try_recv(m), Errc::corrupt, "a stamp below its index");
        // The error names the ring, the slot, its stamp and the expected one.
        check_eq(sub.describe(Errc::corrupt),
                 "receive \"" + name.str() + "\": corrupt segment: slot 5 stamp 2, want >= 12 (index 5)", "describe");
    }
    {
        auto sub = Subscriber<Tick>::attach(name);  // joins at 6
        shared_u64(pub, abi::kOffTail).store(1ULL << 62);
        Tick m{};
        const Errc e = sub.try_recv(m);
        check(e == Errc::corrupt, "a tail of 2^62 over stamps that never held it: " + harness::describe(e));
        check(sub.borrow(0ns).error() != Errc::ok, "borrow");
    }
    {
        // A stamp naming a newer index j < capacity - 1 in head's slot (no
        // honest producer writes it): lapped, skipping to max(h+1,
        // sat(j+1-capacity)) = h+1, never to a wrapped u64 difference.
        RingName small;
        auto p = Publisher<Tick>::create(small, {.capacity = 8});
        auto sub = Subscriber<Tick>::attach(small);
        publish_ticks(p, 0, 1);
        const auto gs = geometry(p);
        shared_u64(p, gs.slots_off).store(2 * 1 + 2);  // index 1's stamp in index 0's slot
        Tick m{};
        check_eq(sub.try_recv(m), Errc::empty, "skipped, then nothing");
        check_eq(sub.dropped(), 1u, "one index dropped, not 2^64 - 6");
    }
}

/// A subscriber process SIGKILLed while the producer waits on it: its entry
/// is reclaimed within a watchdog period (§9) and reused.
void reclaim_dead_subscriber() {
    namespace abi = tachyon::abi;
    RingName name;
    auto pub = Publisher<Tick>::create(name, {.capacity = 8, .liveness_timeout = 3600s});
    Child victim = Child::spawn([&](Child& link) {
        auto sub = Subscriber<Tick>::attach(name);
        link.say("ready");
        link.expect("never");
    });
    victim.expect("ready");
    check_eq(pub.active_subscribers(), 1u, "registered");
    victim.kill();
    const auto t0 = Clock::now();
    publish_ticks(pub, 0, 100);
    const auto took = Clock::now() - t0;
    check_between(took, 0ns, tachyon::kWatchdog + 800ms, "time blocked by a dead reader");
    const auto tab = table_off(pub);
    // Reclaimed by the producer's one store to the eviction table, without
    // a lock and without touching the entry.
    check(entry_evicted(pub, 0), "reclaimed");
    check_eq(shared_u64(pub, entry_off(tab, 0, abi::kEntGen)).load(), 1u, "generation untouched by the producer");
    check_eq(pub.active_subscribers(), 0u, "a reclaimed entry is not registered");
    auto next = Subscriber<Tick>::attach(name);
    check_eq(next.entry(), 0u, "the entry is reused");
    check_eq(shared_u64(pub, entry_off(tab, 0, abi::kEntGen)).load(), 2u, "its next generation");
    check(!entry_evicted(pub, 0), "not evicted: the old eviction word names the old generation");
    check_eq(pub.active_subscribers(), 1u, "registered");
}

/// A named subscriber that closes or dies and comes back takes over its
/// entry with its counters (ABI.md §8.4), resuming at its last position
/// (Start::last) or at the live tail (Start::live); either way received +
/// dropped == published since it first joined. Anonymous subscribers leave
/// a named one's entry alone while others are free.
void named_subscriber_resume() {
    namespace abi = tachyon::abi;
    RingName name;
    auto pub = Publisher<Tick>::create(name, {.capacity = 64, .max_subscribers = 3});
    const auto tab = table_off(pub);
    std::uint64_t seq = 0;
    const auto publish = [&](std::uint64_t n) {
        publish_ticks(pub, seq, n);
        seq += n;
        pub.flush();
    };
    const auto drain_now = [](Subscriber<Tick>& sub, std::uint64_t& first) {
        std::uint64_t n = 0;
        first = ~std::uint64_t{0};
        for (Tick m{}; sub.try_recv(m) == Errc::ok; ++n) {
            check(m.intact(), "intact");
            first = std::min(first, m.seq);
        }
        return n;
    };
    const auto counters = [&](Subscriber<Tick>& sub, std::uint64_t entry) {
        sub.flush_stats();
        return std::pair{shared_u64(pub, entry_off(tab, entry, abi::kEntReceived)).load(),
                         shared_u64(pub, entry_off(tab, entry, abi::kEntDropped)).load()};
    };
    const tachyon::SubscribeOptions named{.name = "risk-engine", .start = tachyon::Start::last};
    std::uint64_t first = 0;
    {
        auto sub = Subscriber<Tick>::attach(name, named);
        check_eq(shared_u64(pub, entry_off(tab, 0, abi::kEntKey)).load(), tachyon::subscriber_key("risk-engine"),
                 "key in entry 0");
        publish(20);
        Tick m{};
        for (int i = 0; i < 10; ++i) check_eq(sub.try_recv(m), Errc::ok, "read 0..9");
    }  // closed: 10..19 unread
    publish(10);
    {
        Scope scope("back at its last position");
        auto sub = Subscriber<Tick>::attach(name, named);
        check_eq(drain_now(sub, first), 20u, "every unread message");
        check_eq(first, 10u, "from where it stopped");
        check(counters(sub, 0) == std::pair<std::uint64_t, std::uint64_t>{30, 0}, "counters 30 received, 0 dropped");
    }
    publish(100);  // 30..129: the ring keeps the last 64
    {
        Scope scope("away while the ring wrapped");
        auto sub = Subscriber<Tick>::attach(name, named);
        const std::uint64_t n = drain_now(sub, first);
        check(first > 30, "the overwritten are gone");
        check_eq(n, seq - first, "every message still in the ring");
        const auto [received, dropped] = counters(sub, 0);
        check_eq(received + dropped, seq, "received + dropped == published since it joined");
        check_eq(dropped, first - 30, "the overwritten count as dropped");
    }
    // It comes back in another process and dies there, holding its entry.
    Child victim = Child::spawn([&](Child& link) {
        auto sub = Subscriber<Tick>::attach(name, named);
        link.say("ready");
        link.expect("never");
    });
    victim.expect("ready");
    victim.kill();
    auto anon = Subscriber<Tick>::attach(name);
    check_eq(shared_u64(pub, entry_off(tab, 1, abi::kEntKey)).load(), 0u, "the anonymous one took entry 1");
    check_eq(shared_u32(pub, entry_off(tab, 0, abi::kEntState)).load(), abi::kEntActive,
             "entry 0 left to its dead named owner");
    publish(5);
    {
        Scope scope("Start::live after a death");
        auto sub = Subscriber<Tick>::attach(name, {.name = "risk-engine", .start = tachyon::Start::live});
        check_eq(shared_u64(pub, entry_off(tab, 0, abi::kEntKey)).load(), tachyon::subscriber_key("risk-engine"),
                 "its own entry again");
        check_eq(drain_now(sub, first), 0u, "what it missed is skipped");
        publish(1);
        check_eq(drain_now(sub, first), 1u, "then the live stream");
        check_eq(first, seq - 1, "seq");
        const auto [received, dropped] = counters(sub, 0);
        check_eq(received + dropped, seq, "received + dropped == published since it joined");
    }
    check_eq(drain_now(anon, first), 6u, "the anonymous subscriber's own stream");
    check(counters(anon, 1) == std::pair<std::uint64_t, std::uint64_t>{6, 0}, "its own counters");
    // A full table: an anonymous registrant takes a departed named entry
    // rather than fail (the named one's resume state is then lost).
    auto a2 = Subscriber<Tick>::attach(name);
    auto a3 = Subscriber<Tick>::attach(name);
    check_eq(shared_u64(pub, entry_off(tab, 0, abi::kEntKey)).load(), 0u, "entry 0 taken, its key cleared");
    static_assert(tachyon::subscriber_key("") == 0);
    static_assert(tachyon::subscriber_key("a") == 0xaf63dc4c8601ec8cULL);  // FNV-1a 64 of "a"
}

void subscriber_table_full() {
    RingName name;
    auto pub = Publisher<Tick>::create(name, {.max_subscribers = 2});
    auto a = Subscriber<Tick>::attach(name);
    std::optional<Subscriber<Tick>> b(Subscriber<Tick>::attach(name));
    std::string what;
    check_eq(attach_error([&] { (void)Subscriber<Tick>::attach(name); }, &what), Errc::no_entry, "third");
    check_contains(what, "attach \"" + name.str() + "\": subscriber table full");
    b.reset();
    (void)Subscriber<Tick>::attach(name);  // the detached entry is free again
    check_eq(pub.active_subscribers(), 1u, "one left after both temporary ones detached");
}

void publisher_close_drains() {
    RingName name;
    auto pub = Publisher<Tick>::create(name, {.capacity = 16, .batch = 4});
    auto sub = Subscriber<Tick>::attach(name, {.max_lag = 8});  // a window below the ring: it sees only the tail
    publish_ticks(pub, 0, 5);  // one unpublished: close publishes it
    pub.close();
    check(::access(name.path().c_str(), F_OK) != 0, "close unlinks the name");
    check_eq(pub.claim().error(), Errc::closed, "claim after close");
    check_eq(pub.commit(), Errc::closed, "commit after close");
    check_eq(pub.published(), 5u, "counters survive close");
    Tick m{};
    for (std::uint64_t s = 0; s < 5; ++s) {
        check_eq(sub.recv(m, 1s), Errc::ok, "drain before closed");
        check_eq(m.seq, s, "seq");
    }
    check_eq(sub.recv(m, 1s), Errc::closed, "then closed");
    check_eq(sub.try_recv(m), Errc::empty, "try_recv never waits for the verdict");
    sub.close();
    check_eq(sub.recv(m, 1s), Errc::closed, "recv after the subscriber closed");
    check_eq(sub.borrow(0ns).error(), Errc::closed, "borrow after close");
    check_eq(sub.received(), 5u, "counters survive close");
}

/// The owner leaves the name to a ring created under it after its own was
/// removed: close unlinks only its own file.
void close_unlinks_only_its_own_file() {
    RingName name;
    auto first = Publisher<Tick>::create(name);
    check(::unlink(name.path().c_str()) == 0, "remove by hand");
    auto second = Publisher<Tick>::create(name);
    first.close();
    check(::access(name.path().c_str(), F_OK) == 0, "the second ring's name survives the first's close");
    (void)Subscriber<Tick>::attach(name);
}

void publisher_dead(bool mid_claim) {
    constexpr std::uint64_t n = 1000;
    RingName name;  // the owner dies: the name stays, the destructor removes it
    Child pub = Child::spawn([&](Child& link) {
        auto p = Publisher<Tick>::create(name, {.capacity = 4096});
        link.say("ready");
        link.expect("go");
        publish_ticks(p, 0, n);
        p.flush();
        if (mid_claim) {
            auto m = p.claim();
            check_eq(m.error(), Errc::ok, "claim");
            std::memset(static_cast<void*>(*m), 0xab, sizeof(Tick) / 2);
        }
        link.say("published");
        link.expect("never");
    });
    pub.expect("ready");
    auto sub = Subscriber<Tick>::attach(name);
    pub.say("go");
    pub.expect("published");
    pub.kill();
    const auto t0 = Clock::now();
    Seen seen;
    const Errc end = drain(sub, seen);
    const auto took = Clock::now() - t0;
    check_eq(end, Errc::publisher_dead, "verdict");
    check_eq(seen.received, n, "everything published, never the claimed slot");
    check_eq(seen.gaps + seen.torn + seen.reordered, 0u, "in order, intact");
    check_between(took, 0ns, 2 * tachyon::kWatchdog + 800ms, "time to notice the death");
}
void publisher_dead_after_publish() { publisher_dead(false); }
void publisher_dead_mid_claim() { publisher_dead(true); }

/// Handles on one ring in one process share one mapping (what lets TSan
/// see the protocol, and saves address space).
void one_mapping_per_process() {
    RingName name;
    auto pub = Publisher<Tick>::create(name);
    auto a = Subscriber<Tick>::attach(name);
    auto b = Subscriber<Tick>::attach(name);
    std::ifstream maps("/proc/self/maps");
    int n = 0;
    for (std::string line; std::getline(maps, line);) {
        if (line.ends_with(name.path())) ++n;
    }
    check_eq(n, 1, "mappings of " + name.path());
}

const harness::Register registered{
    {"golden_decode", golden_decode},
    {"golden_rebuild", golden_rebuild},
    {"golden_attach_stale", golden_attach_stale},
    {"header_corruption", header_corruption},
    {"truncated_segments", truncated_segments},
    {"insecure_segments", insecure_segments},
    {"names_and_options", names_and_options},
    {"identity_mismatch", identity_mismatch},
    {"claim_commit_publish", claim_commit_publish},
    {"batch_visibility", batch_visibility},
    {"recv_timeout", recv_timeout},
    {"idle_subscriber_parks", idle_subscriber_parks},
    {"borrow_release", borrow_release},
    {"slot_layouts", slot_layouts},
    {"borrow_batch_wrap", borrow_batch_wrap},
    {"block_timeout", block_timeout},
    {"drop_newest_counts_refusals", drop_newest_counts_refusals},
    {"drop_oldest_lapped", drop_oldest_lapped},
    {"drop_oldest_never_torn", drop_oldest_never_torn},
    {"fanout_lossy_slow_reader", fanout_lossy_slow_reader},
    {"evict_stalled_subscriber", evict_stalled_subscriber},
    {"hostile_head_evicted", hostile_head_evicted},
    {"hostile_tail_and_stamps", hostile_tail_and_stamps},
    {"reclaim_dead_subscriber", reclaim_dead_subscriber},
    {"named_subscriber_resume", named_subscriber_resume},
    {"subscriber_table_full", subscriber_table_full},
    {"publisher_close_drains", publisher_close_drains},
    {"close_unlinks_only_its_own_file", close_unlinks_only_its_own_file},
    {"publisher_dead_after_publish", publisher_dead_after_publish},
    {"publisher_dead_mid_claim", publisher_dead_mid_claim},
    {"one_mapping_per_process", one_mapping_per_process},
};

}  // namespace
