// The one log scrubber: every masking rule, its boundaries, and the things it must leave alone.
#include "core/scrub.hpp"  // first: the header is self-contained

#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>

#include "tests/support/luhn.hpp"

using filterd::scrub_text;

namespace {

using filterd::testing::luhn_ok;

/// Calls f(run) for every maximal run of ASCII digits in s.
template <class F>
void for_each_digit_run(std::string_view s, F f) {
    std::size_t i = 0;
    while (i < s.size()) {
        if (s[i] < '0' || s[i] > '9') {
            ++i;
            continue;
        }
        std::size_t b = i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9')
            ++i;
        f(s.substr(b, i - b));
    }
}

}  // namespace

static_assert(noexcept(scrub_text(std::string_view{})), "scrub_text must be noexcept");

TEST_CASE("scrub: card numbers that pass Luhn are masked", "[scrub][card]") {
    auto [in, want] = GENERATE(table<std::string, std::string>({
        {"card 4111111111111111 ok", "card [card] ok"},
        {"4111 1111 1111 1111", "[card]"},
        {"4111-1111-1111-1111", "[card]"},
        {"4111 1111-1111 1111", "[card]"},            // mixed single separators
        {"amex 3782 822463 10005.", "amex [card]."},  // 15 digits, 4-6-5
        {"visa13 4222222222222", "visa13 [card]"},    // 13 digits
        {"pan=6304000000000000000;", "pan=[card];"},  // 19 digits
        {"x4111111111111111y", "x[card]y"},           // glued to letters
        {"\"pan\":\"5555555555554444\"", "\"pan\":\"[card]\""},
        {"a 4242424242424242 b 6011111111111117", "a [card] b [card]"},
        {"4111 1111 1111 1111 5", "[card] 5"},  // a trailing short group stays
        {"4111111111111111-", "[card]-"},       // a separator not followed by a digit
        {"-4111111111111111", "-[card]"},
        {"k_4111_1111_1111_1111", "k_[card]"},  // underscores separate groups
        {"key=k_4111111111111111_v2", "key=k_[card]_v2"},
        {"4111.1111.1111.1111", "[card]"},  // dots separate groups
        {"card.4111.1111.1111.1111.json", "card.[card].json"},
        {"4111_1111.1111-1111", "[card]"},  // any mix of single separators
        {"/v1/merchants/4111111111111111/payouts", "/v1/merchants/[card]/payouts"},
    }));
    CAPTURE(in);
    CHECK(scrub_text(in) == want);
}

TEST_CASE("scrub: digit runs that fail Luhn or the length rule stay", "[scrub][card]") {
    auto in = GENERATE(as<std::string>{},
                       "pan 4111111111111112",       // Luhn fails
                       "411111111117",               // 12 digits, Luhn-valid but too short
                       "41111111111111110000",       // 20 contiguous digits: not a card, even though Luhn-valid
                       "0000000004111111111111111",  // a card inside a longer run is not cut out of it
                       "4111  1111 1111 1111",       // a double space is not a separator: 4 + 12 digits
                       "4111/1111/1111/1111",        // slashes are not separators
                       "4111__1111_1111_1111",       // a double separator ends the span: 4 + 12 digits
                       "4111..1111.1111.1111",
                       "ip 192.168.100.200",  // an IPv4 address has at most 12 digits
                       "hash 123456789012345678901234567890");
    CAPTURE(in);
    CHECK(scrub_text(in) == in);
}

TEST_CASE("scrub: Pakistani mobile numbers are masked", "[scrub][phone]") {
    auto [in, want] = GENERATE(table<std::string, std::string>({
        {"call 03001234567 now", "call [phone] now"},
        {"+923001234567", "[phone]"},
        {"923001234567", "[phone]"},
        {"0300-1234567", "[phone]"},
        {"0300_1234567", "[phone]"},
        {"0300.1234567", "[phone]"},
        {"0300 1234567", "[phone]"},
        {"+92 300 1234567", "[phone]"},
        {"+92-300-1234567", "[phone]"},
        {"00923001234567", "[phone]"},
        {"tel:+923451234567.", "tel:[phone]."},
        {"msisdn=03211234567,next", "msisdn=[phone],next"},
    }));
    CAPTURE(in);
    CHECK(scrub_text(in) == want);
}

TEST_CASE("scrub: numbers that are not Pakistani mobiles stay", "[scrub][phone]") {
    auto in = GENERATE(as<std::string>{},
                       "0300123456",              // 10 digits
                       "030012345678",            // 12 digits starting 03 (a longer run is not cut)
                       "04001234567",             // not a mobile prefix
                       "+12025550123",            // not +92
                       "030012345670000000000");  // inside a 21-digit run
    CAPTURE(in);
    CHECK(scrub_text(in) == in);
}

TEST_CASE("scrub: CNIC numbers are masked", "[scrub][cnic]") {
    auto [in, want] = GENERATE(table<std::string, std::string>({
        {"cnic 12345-1234567-1 ok", "cnic [cnic] ok"},
        {"35201-1234567-1", "[cnic]"},
        {"3520112345671", "[cnic]"},  // 13 contiguous digits (fails Luhn, so not a card)
        {"id:1234512345671,", "id:[cnic],"},
    }));
    CAPTURE(in);
    CHECK(scrub_text(in) == want);
}

TEST_CASE("scrub: CNIC look-alikes of the wrong shape stay", "[scrub][cnic]") {
    auto in = GENERATE(as<std::string>{},
                       "12345-123456-1",  // 5-6-1
                       "1234-1234567-1",  // 4-7-1
                       "123456789012");   // 12 digits
    CAPTURE(in);
    CHECK(scrub_text(in) == in);
}

TEST_CASE("scrub: IBANs that pass mod-97 are masked", "[scrub][iban]") {
    auto [in, want] = GENERATE(table<std::string, std::string>({
        {"iban PK36SCBL0000001123456702 ok", "iban [iban] ok"},
        {"GB82 WEST 1234 5698 7654 32", "[iban]"},
        {"GB82 WEST 1234 5698 7654 32 is mine", "[iban] is mine"},
        {"iban=DE89370400440532013000;", "iban=[iban];"},
        {"DE89 3704 0044 0532 0130 00.", "[iban]."},
        {"gb82west12345698765432", "[iban]"},            // lower case
        {"NO9386011117947", "[iban]"},                   // shortest: 11 BBAN characters
        {"LC55HEMM000100010012001200023015", "[iban]"},  // 28 BBAN characters
        {"(MT84MALT011000012345MTLCAST001S)", "([iban])"},
        {"ref1PK36SCBL0000001123456702", "ref1[iban]"},  // after a digit still counts
    }));
    CAPTURE(in);
    CHECK(scrub_text(in) == want);
}

TEST_CASE("scrub: IBAN look-alikes that fail the check stay", "[scrub][iban]") {
    auto in = GENERATE(as<std::string>{},
                       "GB82 WEST 1234 5698 7654 33",             // bad check digits
                       "PK37SCBL0000001123456702",                // bad check digits
                       "PK36SCBL000000112345670200000000000000",  // longer than 34
                       "AB12CDEF",                                // too short
                       "GB82 WESTERN 1234 5698");                 // groups are not of four
    CAPTURE(in);
    std::string out = scrub_text(in);
    CHECK(out.find("[iban]") == std::string::npos);
    CHECK(out == in);  // and none of their digit runs is a card, phone or CNIC either
}

TEST_CASE("scrub: an IBAN glued to a longer word is not an IBAN", "[scrub][iban]") {
    CHECK(scrub_text("xPK36SCBL0000001123456702").find("[iban]") == std::string::npos);
}

TEST_CASE("scrub: ordinary log text is unchanged", "[scrub]") {
    auto in = GENERATE(as<std::string>{}, "", "took 1234 ms", "status=200 route=pay", "id 12345678",
                       "2026-11-26T12:00:00.123Z", "elapsed_ns=987654321", "version 1.2.3",
                       "uuid 0190a3b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b", "port 8080 ip 192.168.1.10", "ipv6 2001:db8::1",
                       "trace 4bf92f3577b34da6a3ce929d0e0e4736", "+1 555 0100", "ünïcödé text stays",
                       std::string("nul\0byte", 8));
    CAPTURE(in);
    CHECK(scrub_text(in) == in);
}

TEST_CASE("scrub: several kinds in one line", "[scrub]") {
    CHECK(scrub_text("pay 4111111111111111 from PK36SCBL0000001123456702 by 03001234567 cnic 12345-1234567-1") ==
          "pay [card] from [iban] by [phone] cnic [cnic]");
}

TEST_CASE("scrub: a huge numeric span is handled and its cards masked", "[scrub]") {
    std::string in;
    for (int i = 0; i < 20000; ++i)
        in += "1 ";
    in += "4111111111111111";
    std::string out = scrub_text(in);
    REQUIRE(out.size() > 20000);
    for_each_digit_run(out, [](std::string_view run) { CHECK(run.size() < 13); });
}

TEST_CASE("scrub: random text never keeps a Luhn-valid 13-19 digit run or a 13-digit run", "[scrub]") {
    std::mt19937 rng(20261126);
    const std::string alphabet = "0123456789012345678901234567890123456789  --__..+AZaz/";
    for (int iter = 0; iter < 20000; ++iter) {
        std::string in;
        std::size_t len = rng() % 80;
        for (std::size_t i = 0; i < len; ++i)
            in += alphabet[rng() % alphabet.size()];
        std::string out = scrub_text(in);
        for_each_digit_run(out, [&](std::string_view run) {
            if (run.size() >= 13 && run.size() <= 19) {
                CAPTURE(in, out, run);
                REQUIRE(run.size() != 13);
                REQUIRE_FALSE(luhn_ok(run));
            }
        });
        CAPTURE(in, out);
        REQUIRE(filterd::testing::find_separated_card(out).empty());
    }
}
