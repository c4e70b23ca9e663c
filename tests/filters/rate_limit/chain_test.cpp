// The whole chain: filter_set::build from inline JSON with registry::builtin(), then run_chain.
// A test-only "test-auth" filter stands in for merchant-auth (establishes ctx.authenticated).
#include "filters/common/chain.hpp"
#include "helpers.hpp"

#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>

using namespace filterd;
using namespace filterd::rate_limit::testing;

namespace {

// Authenticates a request carrying X-Test-Merchant (the value becomes the merchant id); denies 401 otherwise.
class test_auth_filter final : public filter {
public:
    outcome on_request(const request_view& req, context& ctx) const noexcept override {
        auto h = req.header("X-Test-Merchant");
        if (h.count != 1) {
            ctx.deny_problem(401, "Unauthorized", "test_auth_missing");
            return outcome::deny;
        }
        ctx.authenticated = true;
        ctx.merchant_id = std::string(h.first);
        ctx.key_id = "k1";
        return outcome::allow;
    }
};
class test_auth_instance final : public filter_instance {
public:
    std::shared_ptr<const filter> for_route(std::string_view, const boost::json::value*,
                                            const std::string&) const override {
        return std::make_shared<test_auth_filter>();
    }
};
class test_auth_factory final : public filter_factory {
public:
    std::string_view name() const override { return "test-auth"; }
    std::shared_ptr<filter_instance> create(const boost::json::value*, const std::string&,
                                            const std::shared_ptr<filter_instance>&) const override {
        return std::make_shared<test_auth_instance>();
    }
};
const registrar test_auth_reg{std::make_shared<test_auth_factory>()};

struct config_doc {
    boost::json::value filters;
    boost::json::value routes;
};

std::shared_ptr<const filter_set> build(std::string_view filters, std::string_view routes,
                                        const filter_set* previous = nullptr) {
    config_doc d{boost::json::parse(filters), boost::json::parse(routes)};
    return filter_set::build(&d.filters, &d.routes, registry::builtin(), previous);
}

struct chain_run {
    chain_result result;
    context ctx;
    std::optional<std::string> header(std::string_view name) const { return deny_header(ctx, name); }
};

chain_run run_on(const filter_set& set, std::string route, std::vector<std::string> filters, std::int64_t now,
                 std::string merchant = "", std::string ip = "192.0.2.10") {
    proto::request_spec s;
    s.route = std::move(route);
    s.filters = std::move(filters);
    s.client_ip = std::move(ip);
    if (!merchant.empty())
        s.headers.push_back({"X-Test-Merchant", {merchant}});
    auto req = filterd::testing::make_request(s);
    chain_run out;
    out.ctx.mono_ns = now;
    run_chain(set, req.view(), out.ctx, out.result);
    return out;
}

constexpr std::string_view filters_v1 = R"({
  "rate-limit": {
    "replicas": 1,
    "policies": {
      "ch-merchant": {"quota": 5, "window_ms": 1000, "burst": 5, "key": "merchant_id"},
      "ch-ip": {"quota": 100, "window_ms": 60000, "burst": 20, "key": "client_ip"}
    }
  },
  "test-auth": {}
})";
constexpr std::string_view routes_v1 = R"({
  "pay": {"test-auth": null, "rate-limit": {"policies": ["ch-ip", "ch-merchant"]}},
  "open": {"rate-limit": {"policies": ["ch-merchant"]}}
})";

}  // namespace

TEST_CASE("chain: auth then rate-limit, golden sequence per merchant", "[chain]") {
    auto set = build(filters_v1, routes_v1);
    const std::vector<std::string> order{"test-auth", "rate-limit"};
    for (int i = 0; i < 5; ++i) {
        chain_run r = run_on(*set, "pay", order, t0, "m-gold");
        REQUIRE(r.result.status == chain_status::done);
        REQUIRE(r.result.allowed);
        CHECK(r.result.timings.size() == 2);
    }
    chain_run sixth = run_on(*set, "pay", order, t0, "m-gold");
    REQUIRE(sixth.result.status == chain_status::done);
    CHECK_FALSE(sixth.result.allowed);
    CHECK(sixth.ctx.deny_status == 429);
    CHECK(sixth.ctx.reason == "rate_limited");
    CHECK(sixth.header("Retry-After") == "1");
    CHECK(sixth.header("RateLimit-Policy") == R"("ch-merchant";q=5;w=1)");
    CHECK(sixth.header("RateLimit") == R"("ch-merchant";r=0;t=1)");
    CHECK(sixth.header("X-RateLimit-Remaining") == "0");
    // Another merchant from the same IP has its own bucket.
    CHECK(run_on(*set, "pay", order, t0, "m-other").result.allowed);
    // 3 s later the first merchant passes again.
    CHECK(run_on(*set, "pay", order, t0 + 3 * sec, "m-gold").result.allowed);
}

TEST_CASE("chain: a merchant-keyed policy without auth earlier fails closed", "[chain]") {
    auto set = build(filters_v1, routes_v1);
    // Route without test-auth.
    chain_run open = run_on(*set, "open", {"rate-limit"}, t0);
    CHECK_FALSE(open.result.allowed);
    CHECK(open.ctx.deny_status == 500);
    CHECK(open.ctx.reason == "rate_limit_unauthenticated");
    REQUIRE(open.result.timings.size() == 1);
    CHECK(open.result.timings[0].result == outcome::error);
    // Both filters, but rate-limit named first.
    chain_run reversed = run_on(*set, "pay", {"rate-limit", "test-auth"}, t0, "m-rev");
    CHECK_FALSE(reversed.result.allowed);
    CHECK(reversed.ctx.deny_status == 500);
    CHECK(reversed.ctx.reason == "rate_limit_unauthenticated");
}

TEST_CASE("chain: a deny by auth never reaches rate-limit", "[chain]") {
    auto set = build(filters_v1, routes_v1);
    const auto allow0 = decisions("ch-ip", "allow");
    chain_run r = run_on(*set, "pay", {"test-auth", "rate-limit"}, t0);  // no merchant header
    CHECK(r.ctx.deny_status == 401);
    CHECK(r.result.timings.size() == 1);
    CHECK(decisions("ch-ip", "allow") == allow0);
}

TEST_CASE("chain: reload through filter_set::build carries buckets of unchanged policies", "[chain]") {
    auto gen1 = build(filters_v1, routes_v1);
    const std::vector<std::string> order{"test-auth", "rate-limit"};
    for (int i = 0; i < 5; ++i)
        REQUIRE(run_on(*gen1, "pay", order, t0, "m-reload").result.allowed);
    REQUIRE_FALSE(run_on(*gen1, "pay", order, t0, "m-reload").result.allowed);

    // Same policies, a new route added: the exhausted bucket survives.
    auto gen2 = build(filters_v1, R"({
      "pay": {"test-auth": null, "rate-limit": {"policies": ["ch-ip", "ch-merchant"]}},
      "pay2": {"test-auth": null, "rate-limit": {"policies": ["ch-merchant"]}}
    })",
                      gen1.get());
    CHECK_FALSE(run_on(*gen2, "pay", order, t0, "m-reload").result.allowed);
    CHECK_FALSE(run_on(*gen2, "pay2", order, t0, "m-reload").result.allowed);  // same policy, same table

    // The merchant policy's limits change: its table starts empty.
    auto gen3 = build(R"({
      "rate-limit": {"policies": {
        "ch-merchant": {"quota": 10, "window_ms": 1000, "burst": 5, "key": "merchant_id"},
        "ch-ip": {"quota": 100, "window_ms": 60000, "burst": 20, "key": "client_ip"}}},
      "test-auth": {}
    })",
                      routes_v1, gen2.get());
    CHECK(run_on(*gen3, "pay", order, t0, "m-reload").result.allowed);

    // A start-up build (no previous set) never inherits anything.
    auto fresh = build(filters_v1, routes_v1);
    CHECK(run_on(*fresh, "pay", order, t0, "m-reload").result.allowed);
}

TEST_CASE("chain: an invalid rate-limit section stops the build, naming the key", "[chain]") {
    try {
        build(
            R"({"rate-limit": {"policies": {"p": {"quota": 5, "window_ms": 1000, "key": "client_ip", "burst": -1}}}})",
            R"({"r": {"rate-limit": {"policies": ["p"]}}})");
        FAIL("build accepted a negative burst");
    } catch (const config_error& e) {
        CHECK(e.key() == "filters.rate-limit.policies.p.burst");
    }
}
