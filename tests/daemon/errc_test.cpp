#include "daemon/errc.hpp"

#include <catch2/catch.hpp>

using namespace filterd;

TEST_CASE("every errc has a message, a label and a wire code", "[errc]") {
    for (errc e : all_errc) {
        std::error_code ec = e;
        CHECK(ec.category().name() == std::string("filterd"));
        CHECK(ec.message() != "unknown filterd error");
        CHECK(errc_label(e) != nullptr);
        CHECK(std::string(wire::EnumNameErrorCode(to_wire(e))) != "");
    }
    CHECK(std::error_code(static_cast<errc>(999)).message() == "unknown filterd error");
    CHECK(closes_connection(errc::frame_too_large));
    CHECK_FALSE(closes_connection(errc::overloaded));
}
