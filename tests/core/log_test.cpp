// The JSON logger writes only scrubbed text: every message and field value passes scrub_text, and the line
// stays valid JSON.
#include "core/log.hpp"  // first: the header is self-contained

#include <catch2/catch.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <string>
#include <unistd.h>

namespace flog = filterd::log;
namespace json = boost::json;

namespace {

json::object parse_line(const std::string& line) {
    REQUIRE(!line.empty());
    REQUIRE(line.back() == '\n');
    boost::system::error_code ec;
    json::value v = json::parse(line, ec);
    REQUIRE_FALSE(ec);
    REQUIRE(v.is_object());
    return v.as_object();
}

}  // namespace

TEST_CASE("log: format_line masks the message", "[log][scrub]") {
    std::string line = flog::format_line(flog::level::warn, "charge 4111 1111 1111 1111 failed for 03001234567", {});
    CHECK(line.find("4111") == std::string::npos);
    CHECK(line.find("1234567") == std::string::npos);
    auto o = parse_line(line);
    CHECK(o.at("msg").as_string() == "charge [card] failed for [phone]");
    CHECK(o.at("level").as_string() == "warn");
}

TEST_CASE("log: format_line masks every string field", "[log][scrub]") {
    std::string line = flog::format_line(flog::level::info, "payout",
                                         {{"iban", "GB82 WEST 1234 5698 7654 32"},
                                          {"cnic", std::string("35201-1234567-1")},
                                          {"note", "to +92 300 1234567 / PK36SCBL0000001123456702"},
                                          {"route", "pay"}});
    for (const char* leak : {"5698", "1234567", "SCBL", "35201"})
        CHECK(line.find(leak) == std::string::npos);
    auto o = parse_line(line);
    CHECK(o.at("iban").as_string() == "[iban]");
    CHECK(o.at("cnic").as_string() == "[cnic]");
    CHECK(o.at("note").as_string() == "to [phone] / [iban]");
    CHECK(o.at("route").as_string() == "pay");
}

TEST_CASE("log: numeric fields are scrubbed too, and stay JSON", "[log][scrub]") {
    std::string line = flog::format_line(flog::level::info, "n",
                                         {{"pan", 4111111111111111ULL}, {"status", 200}, {"elapsed_ns", 1234567}});
    CHECK(line.find("4111111111111111") == std::string::npos);
    auto o = parse_line(line);
    CHECK(o.at("pan").as_string() == "[card]");  // a masked number becomes a string
    CHECK(o.at("status").to_number<int>() == 200);
    CHECK(o.at("elapsed_ns").to_number<int>() == 1234567);
}

TEST_CASE("log: control characters are escaped after scrubbing", "[log][scrub]") {
    std::string line = flog::format_line(flog::level::error, "a\nb 4111111111111111\r", {});
    CHECK(line.find('\r') == std::string::npos);
    CHECK(line.find('\n') == line.size() - 1);  // the only newline ends the line
    CHECK(parse_line(line).at("msg").as_string() == "a\nb [card]\r");
}

TEST_CASE("log: write() emits the scrubbed line on the configured fd", "[log][scrub]") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    flog::set_fd(fds[1]);
    flog::set_level(flog::level::debug);
    flog::info("refund 5555-5555-5555-4444", {{"iban", "DE89 3704 0044 0532 0130 00"}});
    flog::set_fd(1);
    flog::set_level(flog::level::info);
    ::close(fds[1]);
    std::string got;
    char buf[512];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0)
        got.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
    CHECK(got.find("5555") == std::string::npos);
    CHECK(got.find("3704") == std::string::npos);
    auto o = parse_line(got);
    CHECK(o.at("msg").as_string() == "refund [card]");
    CHECK(o.at("iban").as_string() == "[iban]");
}

TEST_CASE("log: a throttle lets one line through per interval and counts the rest", "[log]") {
    flog::throttle::set_interval_ns(1'000'000'000);
    flog::throttle t;
    std::uint64_t held = 99;
    REQUIRE(t.admit(5'000'000'000, held));
    CHECK(held == 0);
    for (int i = 0; i < 1000; ++i) {
        std::uint64_t h = 0;
        REQUIRE_FALSE(t.admit(5'000'000'000 + i * 900'000, h));  // a flood within the second
    }
    REQUIRE(t.admit(6'000'000'000, held));
    CHECK(held == 1000);
    std::uint64_t h = 0;
    CHECK_FALSE(t.admit(6'500'000'000, h));
    REQUIRE(t.admit(7'000'000'001, held));
    CHECK(held == 1);
}

TEST_CASE("log: a throttle with interval 0 lets every line through", "[log]") {
    flog::throttle::set_interval_ns(0);
    flog::throttle t;
    for (int i = 0; i < 10; ++i) {
        std::uint64_t held = 7;
        REQUIRE(t.admit(1'000, held));
        CHECK(held == 0);
    }
    flog::throttle::set_interval_ns(1'000'000'000);
}
