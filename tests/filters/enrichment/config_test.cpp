// enrichment config: one test per rule (docs/filters/enrichment.md, filters/enrichment/config.hpp).
#include "filters/enrichment/config.hpp"  // first: the header is self-contained

#include "helpers.hpp"

using namespace enr_test;

namespace {

/// Expects `text` as `filters.enrichment` to fail with a config_error whose key is `key`.
void expect_global_error(const std::string& text, const std::string& key) {
    CAPTURE(text);
    auto v = parse_json_text(text, "test");
    try {
        config::load(&v, "filters.enrichment");
        FAIL("accepted a bad config");
    } catch (const config_error& e) {
        CHECK(e.key() == key);
    }
}

void expect_route_error(const std::string& text, const std::string& key) {
    CAPTURE(text);
    auto v = parse_json_text(text, "test");
    try {
        route_config::load(config{}, "r", &v, "routes.pay.enrichment");
        FAIL("accepted a bad route config");
    } catch (const config_error& e) {
        CHECK(e.key() == key);
    }
}

}  // namespace

TEST_CASE("enrichment config: an absent section means the safe defaults", "[config]") {
    config c = config::load(nullptr, "filters.enrichment");
    CHECK(c.internal_prefix == "X-Gw-");
    CHECK(c.strip_headers == std::vector<std::string>{"X-Original-URL", "X-Rewrite-URL", "X-HTTP-Method-Override"});
    CHECK(c.sample_new_traces);
    CHECK(c.merchant_id_header == "X-Gw-Merchant-Id");
    CHECK(c.key_id_header == "X-Gw-Key-Id");
    CHECK(c.client_ip_header == "X-Gw-Client-Ip");
    CHECK(c.request_id_header == "X-Gw-Request-Id");
    CHECK(c.received_at_header == "X-Gw-Received-At");
}

TEST_CASE("enrichment config: an empty object is the defaults", "[config]") {
    config c = parse_config("{}");
    CHECK(c.internal_prefix == "X-Gw-");
    CHECK(c.strip_headers.size() == 3);
    CHECK(c.sample_new_traces);
}

TEST_CASE("enrichment config: the section must be an object", "[config]") {
    expect_global_error("[]", "filters.enrichment");
    expect_global_error("\"X-Gw-\"", "filters.enrichment");
}

TEST_CASE("enrichment config: unknown keys are errors", "[config]") {
    expect_global_error(R"({"strip_header": ["X-A"]})", "filters.enrichment.strip_header");
}

TEST_CASE("enrichment config: internal_prefix must be a string", "[config]") {
    expect_global_error(R"({"internal_prefix": 5})", "filters.enrichment.internal_prefix");
}

TEST_CASE("enrichment config: internal_prefix must be a 2-32 character token ending in '-'", "[config]") {
    auto bad = GENERATE(as<std::string>{}, "", "-", "X-Gw", "X Gw-", "X-Gw:-", "X-\\u00e9-",
                        "X-Very-Long-Internal-Prefix-Name-", "X-Gw-\\r\\n-");
    expect_global_error(R"({"internal_prefix": ")" + bad + R"("})", "filters.enrichment.internal_prefix");
}

TEST_CASE("enrichment config: internal_prefix names the headers the filter sets", "[config]") {
    config c = parse_config(R"({"internal_prefix": "X-Int-"})");
    CHECK(c.internal_prefix == "X-Int-");
    CHECK(c.merchant_id_header == "X-Int-Merchant-Id");
    CHECK(c.received_at_header == "X-Int-Received-At");
}

TEST_CASE("enrichment config: strip_headers must be an array of strings", "[config]") {
    expect_global_error(R"({"strip_headers": "X-Debug"})", "filters.enrichment.strip_headers");
    expect_global_error(R"({"strip_headers": ["X-Debug", 3]})", "filters.enrichment.strip_headers[1]");
}

TEST_CASE("enrichment config: strip_headers entries must be header-name tokens of 1-128 characters", "[config]") {
    auto bad = GENERATE(as<std::string>{}, "", "X Debug", "X-Debug:", "X-\\r\\nEvil", std::string(129, 'a'));
    expect_global_error(R"({"strip_headers": [")" + bad + R"("]})", "filters.enrichment.strip_headers[0]");
}

TEST_CASE("enrichment config: strip_headers has no duplicates (case-insensitive)", "[config]") {
    expect_global_error(R"({"strip_headers": ["X-Debug", "x-debug"]})", "filters.enrichment.strip_headers[1]");
    // '_' and '-' are the same character to backends, so to the duplicate rule too
    expect_global_error(R"({"strip_headers": ["X-Debug", "X_Debug"]})", "filters.enrichment.strip_headers[1]");
    expect_global_error(R"({"strip_headers": ["X_Original_URL"]})", "filters.enrichment.strip_headers[0]");
}

TEST_CASE("enrichment config: header_name_equal folds case and '_' to '-'", "[config]") {
    CHECK(header_name_equal("X-Gw-Merchant-Id", "x_gw_merchant_id"));
    CHECK(header_name_equal("X_GW-Key_Id", "x-gw-key-id"));
    CHECK_FALSE(header_name_equal("X-Gw-Merchant-Id", "X-Gw-Merchant-Ix"));
    CHECK_FALSE(header_name_equal("X-Gw", "X-Gw-"));
    CHECK(header_name_starts_with("X_Gw_Anything", "X-Gw-"));
    CHECK_FALSE(header_name_starts_with("X-Gwx", "X-Gw-"));
}

TEST_CASE("enrichment config: strip_headers may not repeat a fixed name", "[config]") {
    expect_global_error(R"({"strip_headers": ["x-original-url"]})", "filters.enrichment.strip_headers[0]");
}

TEST_CASE("enrichment config: strip_headers holds at most 64 names", "[config]") {
    std::string list;
    for (int i = 0; i < 65; ++i)
        list += (i ? ",\"X-H" : "\"X-H") + std::to_string(i) + "\"";
    expect_global_error(R"({"strip_headers": [)" + list + "]}", "filters.enrichment.strip_headers");
    // 64 is accepted
    list = list.substr(0, list.rfind(','));
    CHECK(parse_config(R"({"strip_headers": [)" + list + "]}").strip_headers.size() == 3 + 64);
}

TEST_CASE("enrichment config: strip_headers adds to the fixed list", "[config]") {
    config c = parse_config(R"({"strip_headers": ["X-Debug", "X-Forwarded-Host"]})");
    CHECK(c.strip_headers == std::vector<std::string>{"X-Original-URL", "X-Rewrite-URL", "X-HTTP-Method-Override",
                                                      "X-Debug", "X-Forwarded-Host"});
}

TEST_CASE("enrichment config: sample_new_traces must be a bool", "[config]") {
    expect_global_error(R"({"sample_new_traces": "yes"})", "filters.enrichment.sample_new_traces");
    CHECK_FALSE(parse_config(R"({"sample_new_traces": false})").sample_new_traces);
}

TEST_CASE("enrichment route config: absent or null is allowed", "[config]") {
    CHECK(route_config::load(config{}, "r", nullptr, "routes.pay.enrichment").strip_headers.empty());
}

TEST_CASE("enrichment route config: must be an object", "[config]") {
    expect_route_error("[]", "routes.pay.enrichment");
}

TEST_CASE("enrichment route config: unknown keys are errors", "[config]") {
    expect_route_error(R"({"internal_prefix": "X-A-"})", "routes.pay.enrichment.internal_prefix");
}

TEST_CASE("enrichment route config: strip_headers follows the same rules", "[config]") {
    expect_route_error(R"({"strip_headers": ["ok", "bad name"]})", "routes.pay.enrichment.strip_headers[1]");
    expect_route_error(R"({"strip_headers": ["X-A", "x-a"]})", "routes.pay.enrichment.strip_headers[1]");
    CHECK(route_config::load(config{}, "r", nullptr, "r").strip_headers.empty());
    auto v = parse_json_text(R"({"strip_headers": ["X-Route-Only"]})", "t");
    CHECK(route_config::load(config{}, "r", &v, "r").strip_headers == std::vector<std::string>{"X-Route-Only"});
}

TEST_CASE("enrichment config: the factory is registered as \"enrichment\" and reports errors by key", "[config]") {
    const filter_factory* f = registry::builtin().find("enrichment");
    REQUIRE(f != nullptr);
    auto bad = parse_json_text(R"({"internal_prefix": "nope"})", "t");
    try {
        f->create(&bad, "filters.enrichment", nullptr);
        FAIL("accepted a bad config");
    } catch (const config_error& e) {
        CHECK(e.key() == "filters.enrichment.internal_prefix");
    }
    auto inst = f->create(nullptr, "filters.enrichment", nullptr);
    REQUIRE(inst != nullptr);
    auto bad_route = parse_json_text(R"({"strip": []})", "t");
    try {
        inst->for_route("pay", &bad_route, "routes.pay.enrichment");
        FAIL("accepted a bad route config");
    } catch (const config_error& e) {
        CHECK(e.key() == "routes.pay.enrichment.strip");
    }
    CHECK(inst->for_route("pay", nullptr, "routes.pay.enrichment") != nullptr);
}
