// The whole chain: a filter_set built from an inline daemon-style config through registry::builtin(),
// run with run_chain, as the daemon does.
#include "filters/common/chain.hpp"

#include "support.hpp"

#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

using namespace filterd;
using namespace filterd::merchant_auth::testing;

namespace {

// Inline config in the daemon's shape; {d} is the test data directory, {cap} the nonce capacity.
std::string chain_config(std::size_t cap = 1000) {
    return fmt::format(R"({{
      "filters": {{
        "merchant-auth": {{
          "skew_seconds": 300,
          "nonce_capacity": {cap},
          "merchants": {{
            "acme": {{ "status": "active", "keys": [
              {{ "id": "k1", "alg": "hmac-sha256", "secret": {{"file": "{d}acme-k1.secret"}}, "state": "active",
                 "routes": ["pay", "payouts"] }},
              {{ "id": "r1", "alg": "rsa-sha256", "public_key": {{"file": "{d}acme-rsa.pub.pem"}}, "state": "active",
                 "cidrs": ["10.0.0.0/8"] }} ] }},
            "globex": {{ "status": "suspended", "keys": [
              {{ "id": "g1", "alg": "hmac-sha256", "secret": {{"file": "{d}globex-g1.secret"}}, "state": "active" }} ] }}
          }}
        }}
      }},
      "routes": {{
        "pay": {{ "merchant-auth": null }},
        "payouts": {{ "merchant-auth": {{ "merchant_path_param": "merchant" }} }},
        "refunds": {{ "merchant-auth": {{}} }}
      }}
    }})",
                       fmt::arg("d", data_dir()), fmt::arg("cap", cap));
}

struct chain {
    json::value doc;
    std::shared_ptr<const filter_set> set;
    explicit chain(const std::string& text, const filter_set* previous = nullptr) : doc(parse_json_text(text, "test")) {
        set = filter_set::build(doc.as_object().if_contains("filters"), doc.as_object().if_contains("routes"),
                                registry::builtin(), previous);
    }
};

struct chain_run {
    chain_result result;
    context ctx;
};

chain_run run_on(const chain& c, proto::request_spec spec, const std::string& route, std::int64_t wall_s = vector_ts) {
    spec.route = route;
    spec.filters = {"merchant-auth"};
    auto req = filterd::testing::make_request(spec);
    chain_run r;
    r.ctx.wall_ns = wall_s * ns;
    run_chain(*c.set, req.view(), r.ctx, r.result);
    return r;
}

}  // namespace

TEST_CASE("chain: a signed request is allowed and the context carries merchant and key", "[chain]") {
    chain c(chain_config());
    auto r = run_on(c, vec("hmac_post_json").spec, "pay");
    REQUIRE(r.result.status == chain_status::done);
    CHECK(r.result.allowed);
    CHECK(r.ctx.authenticated);
    CHECK(r.ctx.merchant_id == "acme");
    CHECK(r.ctx.key_id == "k1");
    REQUIRE(r.result.timings.size() == 1);
    CHECK(r.result.timings[0].result == outcome::allow);
}

TEST_CASE("chain: denials come back as problem+json with the right status", "[chain]") {
    chain c(chain_config());
    SECTION("bad signature: 401 with WWW-Authenticate") {
        auto spec = vec("hmac_post_json").spec;
        spec.body = "{}";
        auto r = run_on(c, spec, "pay");
        CHECK_FALSE(r.result.allowed);
        CHECK(r.ctx.deny_status == 401);
        CHECK(r.ctx.reason == "bad_signature");
        CHECK(r.ctx.deny_body == R"({"type":"about:blank","title":"Unauthorized","status":401})");
        REQUIRE(r.ctx.deny_headers.size() == 1);
        CHECK(r.ctx.deny_headers[0].name == "WWW-Authenticate");
        CHECK(r.ctx.deny_headers[0].value == "SPV1");
    }
    SECTION("route not allowed for the key: 403") {
        auto r = run_on(c, vec("hmac_post_json").spec, "refunds");
        CHECK_FALSE(r.result.allowed);
        CHECK(r.ctx.deny_status == 403);
        CHECK(r.ctx.reason == "route_not_allowed");
        CHECK(r.ctx.deny_headers.empty());
    }
    SECTION("suspended merchant: 403") {
        auto r = run_on(c, vec("globex_own_key").spec, "pay");
        CHECK(r.ctx.deny_status == 403);
        CHECK(r.ctx.reason == "merchant_suspended");
    }
    SECTION("path parameter names another merchant: 403") {
        auto spec = vec("hmac_path_param").spec;
        spec.path_params = {{"merchant", "globex"}};
        auto r = run_on(c, spec, "payouts");
        CHECK(r.ctx.deny_status == 403);
        CHECK(r.ctx.reason == "merchant_mismatch");
    }
    SECTION("client outside the key's CIDRs: 403") {
        auto spec = vec("rsa_post").spec;
        spec.client_ip = "192.0.2.1";
        auto r = run_on(c, spec, "pay");
        CHECK(r.ctx.deny_status == 403);
        CHECK(r.ctx.reason == "ip_not_allowed");
    }
}

TEST_CASE("chain: a route parameter match passes", "[chain]") {
    chain c(chain_config());
    auto spec = vec("hmac_path_param").spec;
    spec.path_params = {{"merchant", "acme"}};
    CHECK(run_on(c, spec, "payouts").result.allowed);
}

TEST_CASE("chain: a reload keeps the nonces, a replay after SIGHUP is still a replay", "[chain]") {
    chain first(chain_config());
    auto spec = vec("rsa_post").spec;
    CHECK(run_on(first, spec, "pay").result.allowed);
    chain second(chain_config(), first.set.get());
    auto r = run_on(second, spec, "pay", vector_ts + 60);
    CHECK_FALSE(r.result.allowed);
    CHECK(r.ctx.reason == "replay");
    // A reload without `previous` (a fresh start) would not know the nonce: the carry-over matters.
    chain fresh(chain_config());
    CHECK(run_on(fresh, spec, "pay", vector_ts + 60).result.allowed);
}

TEST_CASE("chain: config errors name the key", "[chain]") {
    std::string bad = chain_config();
    auto pos = bad.find("\"state\": \"active\"");
    bad.replace(pos, 17, "\"state\": \"on\"");
    CHECK(config_error_key([&] { chain c(bad); }) == "filters.merchant-auth.merchants.acme.keys[0].state");

    std::string bad_route = chain_config();
    bad_route.replace(bad_route.find("\"merchant_path_param\""), 21, "\"merchant_param\"");
    CHECK(config_error_key([&] { chain c(bad_route); }) == "routes.payouts.merchant-auth.merchant_param");

    std::string changed_cap = chain_config(5);
    chain first(chain_config());
    CHECK(config_error_key([&] { chain c(changed_cap, first.set.get()); }) == "filters.merchant-auth.nonce_capacity");
}

TEST_CASE("chain: the example config fragment in conf/ loads", "[chain]") {
    // Paths in the example are relative to the repository root, where filterd is started from.
    std::string cwd = std::filesystem::current_path().string();
    std::filesystem::current_path(FILTERD_SOURCE_DIR);
    ::setenv("FILTERD_DEMO_HMAC_SECRET", "demo-only-secret-at-least-32-bytes-long!", 1);
    std::string text;
    {
        std::ifstream in("conf/filters/merchant-auth.example.json");
        std::stringstream ss;
        ss << in.rdbuf();
        text = ss.str();
    }
    std::string err = config_error_key([&] { chain c(text); });
    std::filesystem::current_path(cwd);
    ::unsetenv("FILTERD_DEMO_HMAC_SECRET");
    CHECK(err == "<no error>");
}
