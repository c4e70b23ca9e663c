// The shared syntax rules: header-name tokens and ids.
#include "filters/common/syntax.hpp"  // first: the header is self-contained

#include <catch2/catch.hpp>

#include <string>

using namespace filterd::syntax;

TEST_CASE("is_token accepts exactly the RFC 9110 tchar set, 1..max characters", "[syntax]") {
    CHECK(is_token("X-Api-Client"));
    CHECK(is_token("!#$%&'*+-.^_`|~09azAZ"));
    CHECK_FALSE(is_token(""));
    for (char c : std::string(" \t\"(),/:;<=>?@[\\]{}\x7f\r\n") + '\0')
        CHECK_FALSE(is_token(std::string("X") + c));
    CHECK(is_token(std::string(128, 'a'), 128));
    CHECK_FALSE(is_token(std::string(129, 'a'), 128));
}

TEST_CASE("is_identifier accepts letters, digits and the given extras, 1..max characters", "[syntax]") {
    CHECK(is_identifier("acme_pay-1", 64, "_-"));
    CHECK_FALSE(is_identifier("acme.pay", 64, "_-"));
    CHECK(is_identifier("acme.pay", 64, "._-"));
    CHECK_FALSE(is_identifier("", 64, "_-"));
    CHECK(is_identifier(std::string(64, 'a'), 64, ""));
    CHECK_FALSE(is_identifier(std::string(65, 'a'), 64, ""));
    CHECK_FALSE(is_identifier("a+b", 64, "._-"));
    CHECK_FALSE(is_identifier("a\xc3\xa9", 64, "._-"));  // non-ASCII
}
