// Included first: proves the header is self-contained.
#include "filters/merchant_auth/canonical.hpp"

#include "filters/merchant_auth/crypto.hpp"
#include "support.hpp"

#include <catch2/catch.hpp>

using namespace filterd;
using namespace filterd::merchant_auth;
using namespace filterd::merchant_auth::testing;

namespace {

std::string canonical_of(const vector_case& v) {
    canonicaliser c;
    c.reset();
    for (const auto& [n, val] : v.spec.query)
        c.add_query(n, val);
    char hex[64];
    REQUIRE(sha256_hex({reinterpret_cast<const std::uint8_t*>(v.spec.body.data()), v.spec.body.size()}, hex));
    std::string out;
    c.build({v.spec.method, v.spec.path, v.header("X-Merchant-Id"), v.header("X-Key-Id"), v.header("X-Timestamp"),
             v.header("X-Nonce"), std::string_view(hex, 64)},
            out);
    return out;
}

parse_status parse(const std::vector<std::pair<std::string, std::string>>& headers, auth_headers& out) {
    auth_header_parser p;
    for (const auto& [n, v] : headers)
        p.add(n, v);
    return p.finish(out);
}

std::vector<std::pair<std::string, std::string>> good_headers() {
    return {{"X-Merchant-Id", "acme"},
            {"X-Key-Id", "k1"},
            {"X-Timestamp", "1764158400"},
            {"X-Nonce", "bm9uY2UtMDAwMDAwMDAx"},
            {"X-Signature", "v1=AAECAw=="}};
}

}  // namespace

TEST_CASE("canonical string equals the independent implementation for every vector", "[canonical]") {
    REQUIRE(vectors().size() >= 10);
    for (const auto& [name, v] : vectors()) {
        INFO(name);
        CHECK(canonical_of(v) == v.canonical);
    }
}

TEST_CASE("canonical path: the decoded path re-encoded, '/' and unreserved kept", "[canonical]") {
    auto [decoded, want] = GENERATE(table<std::string, std::string>({
        {"/v1/payments", "/v1/payments"},
        {"/v1/a b/caf\xC3\xA9", "/v1/a%20b/caf%C3%A9"},
        {"/v1/{id}/x+y", "/v1/%7Bid%7D/x%2By"},
        {"/a%2Fb", "/a%252Fb"},  // a literal '%' in the decoded path (sent as %25) stays distinguishable
        {"/-._~/:@!$&'()*,;=", "/-._~/%3A%40%21%24%26%27%28%29%2A%2C%3B%3D"},
        {"/", "/"},
        {"", ""},
    }));
    std::string out;
    append_path_encoded(out, decoded);
    CHECK(out == want);
}

TEST_CASE("canonical string: exact layout for a known request", "[canonical]") {
    canonicaliser c;
    c.reset();
    c.add_query("b", "2");
    c.add_query("a", "x y");
    c.add_query("a", "");
    std::string out;
    c.build({"get", "/p q", "m", "k", "17", "nnnnnnnnnnnnnnnn",
             "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
            out);
    CHECK(out == "SPV1\nGET\n/p%20q\na=&a=x%20y&b=2\nm\nk\n17\nnnnnnnnnnnnnnnnn\n"
                 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    // Reuse: reset forgets the previous pairs; no query gives an empty line 4.
    c.reset();
    c.build({"POST", "/", "m", "k", "1", "n", "h"}, out);
    CHECK(out == "SPV1\nPOST\n/\n\nm\nk\n1\nn\nh");
}

TEST_CASE("percent-encoding keeps only unreserved bytes", "[canonical]") {
    std::string out;
    append_percent_encoded(out, std::string("AZaz09-._~ /+=&%\x00\xff\xc3\xab", 20));
    CHECK(out == "AZaz09-._~%20%2F%2B%3D%26%25%00%FF%C3%AB");
}

TEST_CASE("query pairs sort by encoded name, then encoded value, in byte order", "[canonical]") {
    canonicaliser c;
    c.reset();
    for (auto [n, v] : {std::pair{"b", "1"}, {"a", "2"}, {"a", "10"}, {"B", "x"}, {"%", ""}, {"a~", ""}})
        c.add_query(n, v);
    std::string q;
    c.build_query(q);
    // "%25" < "B" < "a" < "a~" < "b"; for name "a": "10" < "2".
    CHECK(q == "%25=&B=x&a=10&a=2&a~=&b=1");
}

TEST_CASE("base64 decoding is strict", "[canonical]") {
    std::array<std::uint8_t, 8> buf{};
    std::size_t n = 0;
    CHECK(decode_base64("AAECAw==", buf, n));
    CHECK(n == 4);
    CHECK(buf[3] == 3);
    CHECK(decode_base64("AAEC", buf, n));
    CHECK(n == 3);
    CHECK(decode_base64("AAECAwQ=", buf, n));
    CHECK(n == 5);
    for (const char* bad : {"", "AAECAw", "AAECAw=", "AAECA===", "AA==AAAA", "AAECAx==", "AAECAwR=", "AA-_",
                            "AAE CAw==", "AAECAwQFBgcICQ=="}) {
        INFO(bad);
        CHECK_FALSE(decode_base64(bad, buf, n));
    }
}

TEST_CASE("header parser accepts the documented formats", "[canonical]") {
    auth_headers h;  // holds views into the header list: keep the list alive while h is read
    auto hs = good_headers();
    REQUIRE(parse(hs, h) == parse_status::ok);
    CHECK(h.merchant_id == "acme");
    CHECK(h.key_id == "k1");
    CHECK(h.timestamp_s == 1764158400);
    CHECK(h.signature_len == 4);
    // Names are case-insensitive; other headers are ignored.
    auto lower = good_headers();
    for (auto& [n, v] : lower)
        for (auto& ch : n)
            ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    lower.emplace_back("Content-Type", "application/json");
    CHECK(parse(lower, h) == parse_status::ok);
}

TEST_CASE("header parser: duplicates, control characters, missing and malformed", "[canonical]") {
    auth_headers h;
    SECTION("duplicate wins over everything") {
        auto hs = good_headers();
        hs.emplace_back("x-nonce", "bm9uY2UtMDAwMDAwMDAy");
        hs.emplace_back("X-Merchant-Id", std::string("a\x01", 2));
        CHECK(parse(hs, h) == parse_status::duplicate);
    }
    SECTION("control character") {
        for (std::string bad :
             {std::string("ac\tme"), std::string("acme\r\n"), std::string("a\x7f"), std::string(1, '\0')}) {
            auto hs = good_headers();
            hs[0].second = bad;
            CHECK(parse(hs, h) == parse_status::control_char);
        }
    }
    SECTION("missing") {
        for (std::size_t i = 0; i < 5; ++i) {
            auto hs = good_headers();
            hs.erase(hs.begin() + static_cast<long>(i));
            CHECK(parse(hs, h) == parse_status::missing);
        }
    }
    SECTION("malformed") {
        auto [field, value] = GENERATE(table<std::size_t, std::string>({
            {0, ""},
            {0, "ac me"},
            {0, "acme!"},
            {0, std::string(65, 'a')},
            {0, "acmé"},
            {1, ""},
            {1, "k.1"},
            {1, std::string(65, 'k')},
            {2, ""},
            {2, "-1"},
            {2, "+1"},
            {2, "17a"},
            {2, " 17"},
            {2, "1.5"},
            {2, std::string(19, '1')},
            {2, "001764158400"},
            {2, "01764158400"},
            {2, "00"},
            {2, "0" + std::string(17, '9')},  // leading zeros
            {3, std::string(15, 'n')},
            {3, std::string(129, 'n')},
            {3, "bm9uY2UtMDAwMDAw+/=="},
            {3, "bm9uY2UtMDAwMDAw MDAx"},
            {4, "AAECAw=="},
            {4, "v2=AAECAw=="},
            {4, "v1="},
            {4, "v1=AAECAw"},
            {4, "V1=AAECAw=="},
            {4, "v1=AAEC Aw=="},
            {4, "v1=AAECAw==,v1=AAECAw=="},
            {4, "v1=" + std::string(1368 + 4, 'A')},
        }));
        auto hs = good_headers();
        hs[field].second = value;
        INFO(field << " = " << value);
        CHECK(parse(hs, h) == parse_status::malformed);
    }
    SECTION("boundaries that are valid") {
        auto hs = good_headers();
        hs[0].second = std::string(64, 'A');
        hs[1].second = "_-";
        hs[2].second = "0";
        hs[3].second = std::string(16, '_');
        CHECK(parse(hs, h) == parse_status::ok);
        hs[3].second = std::string(128, '-');
        hs[2].second = std::string(18, '9');
        CHECK(parse(hs, h) == parse_status::ok);
        CHECK(h.timestamp_s == 999'999'999'999'999'999);
    }
}

TEST_CASE("control characters are detected", "[canonical]") {
    CHECK_FALSE(has_control_char("/v1/payments?x=1 ~\x80\xff"));
    CHECK(has_control_char(std::string_view("a\0b", 3)));
    CHECK(has_control_char("a\nb"));
    CHECK(has_control_char("\x7f"));
}
