#include "daemon/errc.hpp"

#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <utility>

using namespace filterd;

TEST_CASE("every errc has a message, a label and a wire code", "[errc]") {
    std::set<std::string> labels;
    for (errc e : all_errc) {
        std::error_code ec = e;
        CHECK(ec);  // no code means success
        CHECK(ec.category().name() == std::string("filterd"));
        CHECK(ec.message() != "unknown filterd error");
        REQUIRE(errc_label(e) != nullptr);
        CHECK(labels.insert(errc_label(e)).second);
        CHECK(std::string(wire::EnumNameErrorCode(to_wire(e))) != "");
    }
    CHECK(std::error_code(static_cast<errc>(999)).message() == "unknown filterd error");
    CHECK(std::error_code(static_cast<errc>(0)).message() == "unknown filterd error");
    CHECK(errc_label(static_cast<errc>(999)) == nullptr);
    CHECK(to_wire(static_cast<errc>(999)) == wire::ErrorCode::Internal);
    CHECK_FALSE(closes_connection(static_cast<errc>(999)));
}

// The values, labels, wire codes and close behaviour clients and dashboards depend on.
TEST_CASE("errc values, labels, wire codes and closes are stable", "[errc]") {
    struct row {
        errc e;
        int value;
        const char* label;
        wire::ErrorCode code;
        bool closes;
    };
    using W = wire::ErrorCode;
    const row r = GENERATE(values<row>({
        {errc::frame_too_large, 1, "frame_too_large", W::FrameTooLarge, true},
        {errc::malformed_frame, 2, "malformed_frame", W::Malformed, true},
        {errc::hello_required, 3, "hello_required", W::HelloRequired, true},
        {errc::version_mismatch, 4, "version_mismatch", W::VersionMismatch, true},
        {errc::unexpected_frame, 5, "unexpected_frame", W::Malformed, true},
        {errc::bad_request_id, 6, "bad_request_id", W::Malformed, true},
        {errc::overloaded, 7, "overloaded", W::Overloaded, false},
        {errc::deadline_exceeded, 8, "deadline_exceeded", W::DeadlineExceeded, false},
        {errc::unknown_route, 9, "unknown_route", W::UnknownRoute, false},
        {errc::unknown_filter, 10, "unknown_filter", W::UnknownFilter, false},
        {errc::shutting_down, 11, "shutting_down", W::ShuttingDown, false},
        {errc::peer_not_allowed, 12, "peer_not_allowed", W::Unspecified, true},
        {errc::stalled, 13, "stalled", W::Malformed, true},
        {errc::too_many_connections, 14, "too_many_connections", W::Overloaded, true},
        {errc::malformed_request, 15, "malformed_request", W::Malformed, false},
        {errc::filters_mismatch, 16, "filters_mismatch", W::UnknownFilter, false},
        {errc::connection_evicted, 17, "connection_evicted", W::Overloaded, true},
    }));
    CAPTURE(r.label);
    CHECK(static_cast<int>(r.e) == r.value);
    CHECK(std::string(errc_label(r.e)) == r.label);
    CHECK(to_wire(r.e) == r.code);
    CHECK(closes_connection(r.e) == r.closes);
}

TEST_CASE("the table lists every errc once", "[errc]") {
    CHECK(std::size(all_errc) == 17);
    for (std::size_t i = 0; i < std::size(all_errc); ++i)
        CHECK(static_cast<std::size_t>(all_errc[i]) == i + 1);
}
