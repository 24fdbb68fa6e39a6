// attach_fuzz: arbitrary bytes as a ring segment, validated, attached to and
// read from, as three message types (Tick: 64 B align 8; Book: 64 B align
// 64; Small: 16 B align 8, the line slot layout's case). The property is
// ABI.md §11's: an error or a working subscriber, never a crash, a hang or an
// access outside the file (ASan and UBSan watch); and a header that
// validates describes a layout whose every region lies in the segment, in
// order, aligned as ABI.md §3 says.
//
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined \
//       -Iruntime/cpp/include runtime/cpp/fuzz/attach_fuzz.cpp -o attach_fuzz
//   mkdir -p /tmp/corpus && ./attach_fuzz -max_len=8192 /tmp/corpus runtime/cpp/fuzz/corpus
//
// The seeds in corpus/ are the golden vectors (golden/abi/*_v2.hex) as binary
// segments, and tick_block_v2_named: the Tick vector whose entry 0 carries
// the key of the named subscriber "fuzz", so that mutations start on the
// resume path of registration (ABI.md §8.4), which does arithmetic on the
// entry's untrusted head, join and counters. The v2 fields are in the seeds:
// flags (line slots, asymmetric fences), the eviction table and its offset,
// table_high, entry flags (small_line_asym_v2 has a STRONG entry, so
// mutations reach a membarrier-less registrant's wait for the producer).
// runtime/cpp/cpp_test.go checks that the seeds still are what they say,
// and runs this target briefly.
//
// Attach takes a segment name, as real peers do, so each input is written to
// /dev/shm/t-cpp-fuzz-PID (created exclusively, mode 0600, removed before
// the next input) and goes through the whole path: open, fstat checks,
// pread of the header, validation, mapping, registration, reads.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>

#include <fcntl.h>
#include <unistd.h>

#include <tachyon/ring.hpp>

#include "../tests/messages.hpp"

namespace {

using namespace std::chrono_literals;

// The golden vectors' message types (golden/abi/README.md).
using fixtures::Book;
using fixtures::Small;
using fixtures::Tick;

/// Touches every byte of a message, so a read outside the mapping is caught.
template <class T>
std::uint64_t sum(const T& m) {
    std::uint64_t s = 0;
    const auto* p = reinterpret_cast<const unsigned char*>(&m);
    for (std::size_t i = 0; i < sizeof m; ++i) s += p[i];
    return s;
}

std::uint64_t sink;

/// Attaches as T (anonymous, or as the named subscriber "fuzz") and reads
/// every way there is, without waiting (a zero ready timeout: an input
/// whose ready word is 0 must not cost a second).
template <class T>
void attach_and_read(const std::string& name, bool named) {
    try {
        tachyon::SubscribeOptions o{.ready_timeout = 0ns};
        if (named) {
            o.name = "fuzz";
            o.start = tachyon::Start::last;
        }
        auto sub = tachyon::Subscriber<T>::attach(name, o);
        T m{};
        for (int i = 0; i < 4; ++i) {
            if (sub.try_recv(m) == tachyon::Errc::ok) sink += sum(m);
            if (auto b = sub.borrow(0ns)) {
                sink += sum(**b);
                (void)sub.release();
            }
            if (auto b = sub.borrow_batch(8, 0ns)) {
                for (const T& x : *b) sink += sum(x);
                (void)sub.release();
            }
        }
        sink += sub.received() + sub.dropped() + sub.lag();
    } catch (const tachyon::Error& e) {
        // The expected outcome for most inputs; the message must name the ring.
        if (std::string_view(e.what()).find(name) == std::string_view::npos) std::abort();
    }
}

bool write_segment(const std::string& path, const std::uint8_t* data, std::size_t size) {
    ::unlink(path.c_str());
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return false;
    std::size_t off = 0;
    while (off < size) {
        const ssize_t n = ::write(fd, data + off, size - off);
        if (n <= 0) break;
        off += static_cast<std::size_t>(n);
    }
    ::close(fd);
    return off == size;
}

/// A validated geometry's invariants (ABI.md §3): regions in order, each
/// inside the segment, every atomic word aligned, every slot's message
/// aligned, line slots on cache lines.
void check_layout(const tachyon::abi::Geometry& g) {
    namespace abi = tachyon::abi;
    const bool ok = g.sleepers_off == abi::kHeaderSize && g.evict_off >= g.sleepers_off + 4 * g.max_subs &&
                    g.evict_off % abi::kLineSize == 0 && g.table_off >= g.evict_off + 8 * g.max_subs &&
                    g.table_off % abi::kLineSize == 0 && g.slots_off >= g.table_off + abi::kEntrySize * g.max_subs &&
                    g.slots_off % g.msg_align == 0 && g.slots_off % 8 == 0 && g.slot_size % 8 == 0 &&
                    g.slot_msg_off % g.msg_align == 0 && g.slot_msg_off >= 8 &&
                    g.slot_msg_off + g.msg_size <= g.slot_size && g.slot_size % g.msg_align == 0 &&
                    (!g.line_slots || (g.slot_size % abi::kCacheLine == 0 && g.slots_off % abi::kCacheLine == 0)) &&
                    g.seg_size == g.slots_off + g.capacity * g.slot_size && g.seg_size <= abi::kMaxSegmentSize &&
                    g.mask == g.capacity - 1;
    if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // Validation alone, over the bytes as given (any length).
    const auto d = tachyon::abi::decode_header(std::span(reinterpret_cast<const std::byte*>(data), size));
    if (d.error == tachyon::Errc::ok) {
        check_layout(d.header.geo);
        // Re-encoding what validated gives the same identity line back.
        std::byte line[tachyon::abi::kHeaderSize]{};
        tachyon::abi::encode_identity(line, d.header);
        if (std::memcmp(line, data, tachyon::abi::kOffReady) != 0 ||
            std::memcmp(line + 0x10, data + 0x10, tachyon::abi::kLineSize - 0x10) != 0)
            std::abort();
    }

    static const std::string name = "t-cpp-fuzz-" + std::to_string(::getpid());
    static const std::string path = "/dev/shm/" + name;
    if (!write_segment(path, data, size)) {
        ::unlink(path.c_str());
        return 0;
    }
    attach_and_read<Tick>(name, false);
    attach_and_read<Tick>(name, true);
    attach_and_read<Book>(name, false);
    attach_and_read<Small>(name, false);
    ::unlink(path.c_str());
    return 0;
}
