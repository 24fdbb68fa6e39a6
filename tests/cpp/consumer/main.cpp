// Uses the generated example headers as an application would, and prints
// their identity so that the test can compare it with the schema model.
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "book.tsch.hpp"
#include "message.tsch.hpp"

static_assert(market::Message::kSize == 64);
static_assert(market::has(market::Caps::SNAPSHOT | market::Caps::LAST, market::Caps::LAST));
static_assert(!market::has(market::Caps::SNAPSHOT, market::Caps::LAST));
static_assert(market::to_string(market::Status::HALTED) == "HALTED");

int main() {
    market::Book book{};
    book.set_venue("XNAS");
    book.caps |= market::Caps::SNAPSHOT;
    book.bids[0] = market::Level{101, 5, market::Side::BID, {}};
    if (book.venue_view() != "XNAS" || book.venue[4] != '\0') {
        std::fprintf(stderr, "venue: got %.*s\n", static_cast<int>(book.venue_view().size()), book.venue_view().data());
        return 1;
    }
    book.set_venue("TOO-LONG-VENUE");
    if (book.venue_view() != "TOO-LONG" || std::memcmp(book.venue, "TOO-LONG", 8) != 0) {
        std::fprintf(stderr, "venue not truncated\n");
        return 1;
    }
    std::printf("Message id=%" PRIu32 " size=%zu fingerprint=0x%016" PRIx64 "\n",
                market::Message::kTypeId, market::Message::kSize, market::Message::kFingerprint);
    std::printf("Book id=%" PRIu32 " size=%zu fingerprint=0x%016" PRIx64 "\n",
                market::Book::kTypeId, market::Book::kSize, market::Book::kFingerprint);
    std::printf("Tape id=%" PRIu32 " size=%zu fingerprint=0x%016" PRIx64 "\n",
                market::Tape::kTypeId, market::Tape::kSize, market::Tape::kFingerprint);
    return 0;
}
