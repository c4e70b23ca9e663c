// The keyed hash. keyed_hash.hpp is included first: it must be self-contained.
#include "filters/rate_limit/keyed_hash.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace filterd::rate_limit;

TEST_CASE("siphash24 matches the reference vector", "[filter][hash]") {
    // Reference implementation's vectors: key 00..0f, message 00..(n-1).
    std::string msg;
    for (int i = 0; i < 15; ++i)
        msg.push_back(static_cast<char>(i));
    const std::uint64_t k0 = 0x0706050403020100ULL, k1 = 0x0f0e0d0c0b0a0908ULL;
    siphash24 whole(k0, k1);
    whole.update(msg);
    CHECK(whole.finish() == 0xa129ca6149be45e5ULL);

    siphash24 empty(k0, k1);
    CHECK(empty.finish() == 0x726fdb47dd0e0e31ULL);

    // Streaming in pieces gives the same value as one update.
    siphash24 pieces(k0, k1);
    pieces.update(msg.substr(0, 3));
    pieces.update(msg.substr(3, 9));
    pieces.update(msg.substr(12));
    CHECK(pieces.finish() == 0xa129ca6149be45e5ULL);
}
