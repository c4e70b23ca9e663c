// enrichment in a filter_set built from inline JSON config and run through run_chain.
#include "filters/common/chain.hpp"

#include "helpers.hpp"

using namespace enr_test;
namespace json = boost::json;

namespace {

/// Test-only stand-in for merchant-auth: establishes the merchant in the context.
class fake_auth final : public filter {
public:
    outcome on_request(const request_view&, context& ctx) const noexcept override {
        ctx.authenticated = true;
        ctx.merchant_id = "m_42";
        ctx.key_id = "k_1";
        return outcome::allow;
    }
};
class fake_auth_instance final : public filter_instance {
public:
    std::shared_ptr<const filter> for_route(std::string_view, const json::value*, const std::string&) const override {
        return std::make_shared<fake_auth>();
    }
};
class fake_auth_factory final : public filter_factory {
public:
    std::string_view name() const override { return "test-auth"; }
    std::shared_ptr<filter_instance> create(const json::value*, const std::string&,
                                            const std::shared_ptr<filter_instance>&) const override {
        return std::make_shared<fake_auth_instance>();
    }
};
const registrar fake_auth_registrar{std::make_shared<fake_auth_factory>()};

std::shared_ptr<const filter_set> build(const std::string& text) {
    json::value v = parse_json_text(text, "test");
    return filter_set::build(v.as_object().if_contains("filters"), v.as_object().if_contains("routes"),
                             registry::builtin(), nullptr);
}

const char* config_text = R"({
  "filters": {"enrichment": {"strip_headers": ["X-Debug"], "sample_new_traces": false}},
  "routes": {
    "chain-pay":    {"test-auth": null, "enrichment": {"strip_headers": ["X-Route-Secret"]}},
    "chain-public": {"enrichment": null}
  }
})";

}  // namespace

TEST_CASE("enrichment chain: after merchant-auth, the backends get the trusted context", "[chain]") {
    auto set = build(config_text);
    proto::request_spec spec;
    spec.route = "chain-pay";
    spec.filters = {"test-auth", "enrichment"};
    spec.headers = {{"X-Gw-Merchant-Id", {"forged"}},
                    {"X-Debug", {"1"}},
                    {"X-Route-Secret", {"s"}},
                    {"X-Request-Id", {"client-7"}}};
    spec.client_ip = "198.51.100.4";
    auto built = testing::make_request(spec);
    context ctx;
    ctx.wall_ns = t0_ns;
    chain_result res;
    run_chain(*set, built.view(), ctx, res);
    REQUIRE(res.status == chain_status::done);
    REQUIRE(res.allowed);
    REQUIRE(res.timings.size() == 2);
    CHECK(res.timings[1].result == outcome::allow);

    run_result r{outcome::allow, std::move(ctx)};
    CHECK(r.removed("X-Gw-Merchant-Id"));
    CHECK(r.removed("X-Debug"));
    CHECK(r.removed("X-Route-Secret"));
    CHECK(r.set("X-Gw-Merchant-Id") == "m_42");
    CHECK(r.set("X-Gw-Key-Id") == "k_1");
    CHECK(r.set("X-Client-Request-Id") == "client-7");
    CHECK(r.set("X-Gw-Client-Ip") == "198.51.100.4");
    CHECK(r.set("X-Gw-Received-At") == "2026-11-26T12:00:00.123Z");
    CHECK(is_uuid_v7(*r.set("X-Request-Id")));
    CHECK(r.set("traceparent")->substr(53, 2) == "00");  // global sample_new_traces: false
    CHECK(metrics_registry::global().counter_value("filterd_enrichment_events_total",
                                                   {{"route", "chain-pay"}, {"event", "request_id_kept"}}) == 1);
}

TEST_CASE("enrichment chain: without merchant-auth no merchant headers, route lists stay per route", "[chain]") {
    auto set = build(config_text);
    proto::request_spec spec;
    spec.route = "chain-public";
    spec.filters = {"enrichment"};
    spec.headers = {{"X-Route-Secret", {"s"}}, {"x-gw-key-id", {"forged"}}};
    auto built = testing::make_request(spec);
    context ctx;
    ctx.wall_ns = t0_ns;
    chain_result res;
    run_chain(*set, built.view(), ctx, res);
    REQUIRE(res.allowed);
    run_result r{outcome::allow, std::move(ctx)};
    CHECK(r.removed("x-gw-key-id"));
    CHECK_FALSE(r.removed("X-Route-Secret"));
    CHECK_FALSE(r.set("X-Gw-Merchant-Id"));
    CHECK_FALSE(r.set("X-Gw-Key-Id"));
}

TEST_CASE("enrichment chain: a filter error becomes a 500 deny", "[chain]") {
    auto set = build(config_text);
    proto::request_spec spec;
    spec.route = "chain-public";
    spec.filters = {"enrichment"};
    auto built = testing::make_request(spec);
    context ctx;  // wall_ns left at 0: the caller forgot the clock
    chain_result res;
    run_chain(*set, built.view(), ctx, res);
    CHECK_FALSE(res.allowed);
    CHECK(ctx.deny_status == 500);
    CHECK(ctx.reason == "clock_unset");
}

TEST_CASE("enrichment chain: config errors name the key", "[chain][config]") {
    auto [text, key] = GENERATE(table<std::string, std::string>({
        {R"({"filters": {"enrichment": {"internal_prefix": "X"}}, "routes": {"r": {"enrichment": null}}})",
         "filters.enrichment.internal_prefix"},
        {R"({"routes": {"r": {"enrichment": {"strip_headers": ["a b"]}}}})", "routes.r.enrichment.strip_headers[0]"},
        {R"({"routes": {"r": {"enrichment": {"extra": 1}}}})", "routes.r.enrichment.extra"},
    }));
    CAPTURE(text);
    try {
        build(text);
        FAIL("accepted a bad config");
    } catch (const config_error& e) {
        CHECK(e.key() == key);
    }
}

TEST_CASE("enrichment chain: the example config fragment builds", "[chain][config]") {
    json::value v = parse_json_file(std::string(FILTERD_SOURCE_DIR) + "/conf/filters/enrichment.example.json");
    auto set = filter_set::build(v.as_object().if_contains("filters"), v.as_object().if_contains("routes"),
                                 registry::builtin(), nullptr);
    REQUIRE(set->find_route("payments.create") != nullptr);
    REQUIRE(set->find_route("payments.create")->find("enrichment") != nullptr);
    REQUIRE(set->find_route("public.rates")->find("enrichment") != nullptr);
}
