// enrichment id helpers: UUIDv7 layout, CSPRNG buffer, traceparent and request-id syntax.
#include "filters/enrichment/ids.hpp"  // first: the header is self-contained

#include <catch2/catch.hpp>

#include <set>
#include <string>

using namespace filterd::enrichment;

TEST_CASE("enrichment ids: UUIDv7 layout matches RFC 9562 appendix A.6", "[filter]") {
    const std::uint8_t rnd[10] = {0x0c, 0xc3, 0x18, 0xc4, 0xdc, 0x0c, 0x0c, 0x07, 0x39, 0x8f};
    auto t = format_uuid_v7(0x017F22E279B0, rnd);
    CHECK(std::string(t.data(), t.size()) == "017f22e2-79b0-7cc3-98c4-dc0c0c07398f");
    // version and variant bits are forced whatever the random bytes
    const std::uint8_t ones[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    auto u = format_uuid_v7(0, ones);
    CHECK(std::string(u.data(), u.size()) == "00000000-0000-7fff-bfff-ffffffffffff");
}

TEST_CASE("enrichment ids: random_bytes hands out distinct bytes across buffer refills", "[filter]") {
    std::set<std::string> seen;
    std::uint8_t b[24];
    for (int i = 0; i < 2000; ++i) {  // 48 KB: crosses many 4 KiB refills
        REQUIRE(random_bytes(b, sizeof b));
        seen.insert(std::string(reinterpret_cast<char*>(b), sizeof b));
    }
    CHECK(seen.size() == 2000);
    std::uint8_t big[5000];  // larger than the buffer: served directly
    CHECK(random_bytes(big, sizeof big));
}

TEST_CASE("enrichment ids: traceparent parsing and formatting round-trip", "[filter]") {
    trace_parent tp;
    const std::string v = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03";
    REQUIRE(parse_traceparent(v, tp));
    CHECK(tp.flags == 0x03);
    char out[traceparent_size];
    format_traceparent(tp.trace_id, tp.parent_id, tp.flags, out);
    CHECK(std::string(out, sizeof out) == v);
}

TEST_CASE("enrichment ids: request id syntax", "[filter]") {
    CHECK(valid_request_id("a"));
    CHECK(valid_request_id(std::string(64, '.')));
    CHECK_FALSE(valid_request_id(""));
    CHECK_FALSE(valid_request_id(std::string(65, 'a')));
    CHECK_FALSE(valid_request_id("a+b"));
}
