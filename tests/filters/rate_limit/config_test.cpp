// Config rules of the rate-limit filter: one test per rule, each checking the key the error names.
// config.hpp is included first: it must be self-contained.
#include "filters/rate_limit/config.hpp"

#include "filters/common/chain.hpp"
#include "helpers.hpp"

#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>

#include <cstdlib>

using namespace filterd;
using namespace filterd::rate_limit;

namespace {

config parse(std::string_view text) {
    boost::json::value v = boost::json::parse(text);
    return config::load(&v, "filters.rate-limit");
}

// The key named by the config_error that parsing `text` throws ("" if it does not throw).
std::string error_key(std::string_view text) {
    try {
        parse(text);
    } catch (const config_error& e) {
        return e.key();
    }
    return "";
}

std::string route_error_key(std::string_view global, std::string_view route) {
    config g = parse(global);
    boost::json::value r = boost::json::parse(route);
    try {
        route_config::load(g, "r", &r, "routes.r.rate-limit");
    } catch (const config_error& e) {
        return e.key();
    }
    return "";
}

// One valid policy, with `extra` spliced into its object.
std::string with_policy(std::string_view fields) {
    return std::string(R"({"policies":{"p":{)") + std::string(fields) + "}}}";
}
constexpr std::string_view base = R"("quota":5,"window_ms":1000,"key":"client_ip")";
std::string field(std::string_view f) { return std::string(base) + "," + std::string(f); }

constexpr std::string_view two_policies =
    R"({"policies":{"a":{"quota":5,"window_ms":1000,"key":"client_ip"},"b":{"quota":5,"window_ms":1000,"key":"route"}}})";

}  // namespace

TEST_CASE("a valid section parses with defaults", "[config]") {
    config g = parse(with_policy(base));
    REQUIRE(g.policies.size() == 1);
    const policy_config& p = g.policies.at("p");
    CHECK(g.replicas == 1);
    CHECK(p.quota == 5);
    CHECK(p.pod_quota == 5);
    CHECK(p.burst == 5);  // default burst = quota
    CHECK(p.max_keys == 100'000);
    CHECK(p.key == key_kind::client_ip);
    CHECK(p.gcra.emission_ns == 200'000'000);
    CHECK(p.gcra.tolerance_ns == 1'000'000'000);
    CHECK(p.policy_item == R"("p";q=5;w=1)");
}

TEST_CASE("an absent section has no policies", "[config]") {
    config g = config::load(nullptr, "filters.rate-limit");
    CHECK(g.policies.empty());
}

TEST_CASE("the section must be an object", "[config]") { CHECK(error_key("[]") == "filters.rate-limit"); }

TEST_CASE("unknown keys in the section are errors", "[config]") {
    CHECK(error_key(R"({"policies":{"p":{"quota":5,"window_ms":1000,"key":"client_ip"}},"limit":3})") ==
          "filters.rate-limit.limit");
}

TEST_CASE("policies is required", "[config]") { CHECK(error_key("{}") == "filters.rate-limit.policies"); }

TEST_CASE("policies must be an object", "[config]") {
    CHECK(error_key(R"({"policies":["p"]})") == "filters.rate-limit.policies");
}

TEST_CASE("policies must not be empty", "[config]") {
    CHECK(error_key(R"({"policies":{}})") == "filters.rate-limit.policies");
}

TEST_CASE("policy names are restricted to [A-Za-z0-9_.-]{1,64}", "[config]") {
    CHECK(error_key(R"({"policies":{"a b":{"quota":5,"window_ms":1000,"key":"client_ip"}}})") ==
          "filters.rate-limit.policies.a b");
    CHECK(error_key(R"({"policies":{"x\"y":{"quota":5,"window_ms":1000,"key":"client_ip"}}})") ==
          "filters.rate-limit.policies.x\"y");
    CHECK(error_key(std::string(R"({"policies":{")") + std::string(65, 'a') +
                    R"(":{"quota":5,"window_ms":1000,"key":"client_ip"}}})") ==
          "filters.rate-limit.policies." + std::string(65, 'a'));
}

TEST_CASE("a policy must be an object", "[config]") {
    CHECK(error_key(R"({"policies":{"p":5}})") == "filters.rate-limit.policies.p");
}

TEST_CASE("quota is required and between 1 and 1e9", "[config]") {
    CHECK(error_key(with_policy(R"("window_ms":1000,"key":"client_ip")")) == "filters.rate-limit.policies.p.quota");
    CHECK(error_key(with_policy(R"("quota":0,"window_ms":1000,"key":"client_ip")")) ==
          "filters.rate-limit.policies.p.quota");
    CHECK(error_key(with_policy(R"("quota":1000000001,"window_ms":1000,"key":"client_ip")")) ==
          "filters.rate-limit.policies.p.quota");
    CHECK(error_key(with_policy(R"("quota":"5","window_ms":1000,"key":"client_ip")")) ==
          "filters.rate-limit.policies.p.quota");
}

TEST_CASE("window_ms is required, whole seconds, from 1 s to 31 days", "[config]") {
    CHECK(error_key(with_policy(R"("quota":5,"key":"client_ip")")) == "filters.rate-limit.policies.p.window_ms");
    CHECK(error_key(with_policy(R"("quota":5,"window_ms":999,"key":"client_ip")")) ==
          "filters.rate-limit.policies.p.window_ms");
    CHECK(error_key(with_policy(R"("quota":5,"window_ms":1500,"key":"client_ip")")) ==
          "filters.rate-limit.policies.p.window_ms");
    CHECK(error_key(with_policy(R"("quota":5,"window_ms":2678401000,"key":"client_ip")")) ==
          "filters.rate-limit.policies.p.window_ms");
    CHECK(error_key(with_policy(R"("quota":5,"window_ms":2678400000,"key":"client_ip")")).empty());
}

TEST_CASE("burst is between 1 and 1e9", "[config]") {
    CHECK(error_key(with_policy(field(R"("burst":0)"))) == "filters.rate-limit.policies.p.burst");
    CHECK(error_key(with_policy(field(R"("burst":1000000001)"))) == "filters.rate-limit.policies.p.burst");
    CHECK(parse(with_policy(field(R"("burst":2)"))).policies.at("p").gcra.tolerance_ns == 400'000'000);
}

TEST_CASE("burst times the emission interval must stay in range", "[config]") {
    // T = 31 days (2.68e15 ns); 1e9 of them overflow the 2^62 ns bound.
    CHECK(error_key(with_policy(R"("quota":1,"window_ms":2678400000,"burst":1000000000,"key":"client_ip")")) ==
          "filters.rate-limit.policies.p.burst");
}

TEST_CASE("key is required and one of the known kinds", "[config]") {
    CHECK(error_key(with_policy(R"("quota":5,"window_ms":1000)")) == "filters.rate-limit.policies.p.key");
    CHECK(error_key(with_policy(R"("quota":5,"window_ms":1000,"key":"user")")) == "filters.rate-limit.policies.p.key");
    for (auto k : {"client_ip", "merchant_id", "key_id", "route"})
        CHECK(error_key(with_policy(std::string(R"("quota":5,"window_ms":1000,"key":")") + k + "\"")).empty());
}

TEST_CASE("header is required for key \"header\"", "[config]") {
    CHECK(error_key(with_policy(R"("quota":5,"window_ms":1000,"key":"header")")) ==
          "filters.rate-limit.policies.p.header");
    config g = parse(with_policy(R"("quota":5,"window_ms":1000,"key":"header","header":"X-Api-Client")"));
    CHECK(g.policies.at("p").header == "X-Api-Client");
    CHECK(g.policies.at("p").key == key_kind::header);
}

TEST_CASE("header must be a header name", "[config]") {
    CHECK(error_key(with_policy(R"("quota":5,"window_ms":1000,"key":"header","header":"X Api")")) ==
          "filters.rate-limit.policies.p.header");
    CHECK(error_key(with_policy(R"("quota":5,"window_ms":1000,"key":"header","header":"")")) ==
          "filters.rate-limit.policies.p.header");
}

TEST_CASE("header is refused for other key kinds", "[config]") {
    CHECK(error_key(with_policy(field(R"("header":"X-Api-Client")"))) == "filters.rate-limit.policies.p.header");
}

TEST_CASE("max_keys is between 1 and 1e7", "[config]") {
    CHECK(error_key(with_policy(field(R"("max_keys":0)"))) == "filters.rate-limit.policies.p.max_keys");
    CHECK(error_key(with_policy(field(R"("max_keys":10000001)"))) == "filters.rate-limit.policies.p.max_keys");
    CHECK(parse(with_policy(field(R"("max_keys":7)"))).policies.at("p").max_keys == 7);
}

TEST_CASE("unknown keys in a policy are errors", "[config]") {
    CHECK(error_key(with_policy(field(R"("rate":5)"))) == "filters.rate-limit.policies.p.rate");
}

TEST_CASE("replicas is an integer between 1 and 1000", "[config]") {
    auto doc = [](std::string_view r) {
        return std::string(R"({"replicas":)") + std::string(r) +
               R"(,"policies":{"p":{"quota":5,"window_ms":1000,"key":"client_ip"}}})";
    };
    CHECK(error_key(doc("0")) == "filters.rate-limit.replicas");
    CHECK(error_key(doc("1001")) == "filters.rate-limit.replicas");
    CHECK(error_key(doc("\"3\"")) == "filters.rate-limit.replicas");
    CHECK(parse(doc("3")).replicas == 3);
}

TEST_CASE("replicas divides the quota per pod, never below 1", "[config]") {
    config g = parse(R"({"replicas":3,"policies":{
        "a":{"quota":100,"window_ms":60000,"burst":10,"key":"client_ip"},
        "b":{"quota":2,"window_ms":1000,"key":"client_ip"}}})");
    const policy_config& a = g.policies.at("a");
    CHECK(a.pod_quota == 33);
    CHECK(a.gcra.emission_ns == 60'000'000'000 / 33);
    CHECK(a.gcra.tolerance_ns == 10 * a.gcra.emission_ns);  // burst is per pod, not divided
    CHECK(a.policy_item == R"("a";q=100;w=60)");            // headers show the fleet-wide quota
    CHECK(g.policies.at("b").pod_quota == 1);
    CHECK(g.policies.at("b").burst == 2);
}

TEST_CASE("replicas from the environment", "[config]") {
    auto doc = [](std::string_view var) {
        return std::string(R"({"replicas":{"env":")") + std::string(var) +
               R"("},"policies":{"p":{"quota":10,"window_ms":1000,"key":"client_ip"}}})";
    };
    ::setenv("RL_TEST_REPLICAS_OK", "2", 1);
    config g = parse(doc("RL_TEST_REPLICAS_OK"));
    CHECK(g.replicas == 2);
    CHECK(g.policies.at("p").pod_quota == 5);

    ::unsetenv("RL_TEST_REPLICAS_UNSET");
    CHECK(error_key(doc("RL_TEST_REPLICAS_UNSET")) == "filters.rate-limit.replicas.env");
    for (const char* bad : {"", "0", "two", "2x", "1001", "-1"}) {
        ::setenv("RL_TEST_REPLICAS_BAD", bad, 1);
        CHECK(error_key(doc("RL_TEST_REPLICAS_BAD")) == "filters.rate-limit.replicas.env");
    }
}

TEST_CASE("a replicas reference takes exactly one env key", "[config]") {
    CHECK(error_key(
              R"({"replicas":{"file":"/etc/replicas"},"policies":{"p":{"quota":5,"window_ms":1000,"key":"route"}}})") ==
          "filters.rate-limit.replicas.file");
}

TEST_CASE("a route must configure the filter with an object", "[config]") {
    config g = parse(two_policies);
    CHECK_THROWS_AS(route_config::load(g, "r", nullptr, "routes.r.rate-limit"), config_error);
    CHECK(route_error_key(two_policies, "[]") == "routes.r.rate-limit");
}

TEST_CASE("route policies is required and non-empty", "[config]") {
    CHECK(route_error_key(two_policies, "{}") == "routes.r.rate-limit.policies");
    CHECK(route_error_key(two_policies, R"({"policies":[]})") == "routes.r.rate-limit.policies");
    CHECK(route_error_key(two_policies, R"({"policies":"a"})") == "routes.r.rate-limit.policies");
}

TEST_CASE("route policies must be known", "[config]") {
    CHECK(route_error_key(two_policies, R"({"policies":["a","c"]})") == "routes.r.rate-limit.policies[1]");
}

TEST_CASE("route policies must be strings", "[config]") {
    CHECK(route_error_key(two_policies, R"({"policies":["a",5]})") == "routes.r.rate-limit.policies[1]");
}

TEST_CASE("a route lists a policy at most once", "[config]") {
    CHECK(route_error_key(two_policies, R"({"policies":["a","b","a"]})") == "routes.r.rate-limit.policies[2]");
}

TEST_CASE("a route lists at most 8 policies", "[config]") {
    std::string g = R"({"policies":{)";
    std::string r = R"({"policies":[)";
    for (int i = 0; i < 9; ++i) {
        g += (i ? "," : "") + std::string("\"p") + std::to_string(i) +
             R"(":{"quota":5,"window_ms":1000,"key":"route"})";
        r += (i ? "," : "") + std::string("\"p") + std::to_string(i) + "\"";
    }
    g += "}}";
    r += "]}";
    CHECK(route_error_key(g, r) == "routes.r.rate-limit.policies");
}

TEST_CASE("unknown keys in a route section are errors", "[config]") {
    CHECK(route_error_key(two_policies, R"({"policies":["a"],"mode":"x"})") == "routes.r.rate-limit.mode");
}

TEST_CASE("route order is kept", "[config]") {
    config g = parse(two_policies);
    boost::json::value r = boost::json::parse(R"({"policies":["b","a"]})");
    auto ps = route_config::load(g, "r", &r, "routes.r.rate-limit").policies;
    REQUIRE(ps.size() == 2);
    CHECK(ps[0]->name == "b");
    CHECK(ps[1]->name == "a");
}

TEST_CASE("filter_set::build names the route key of an unknown policy", "[config]") {
    boost::json::value filters = boost::json::parse(
        R"({"rate-limit":{"policies":{"per-ip":{"quota":5,"window_ms":1000,"key":"client_ip"}}}})");
    boost::json::value routes = boost::json::parse(
        R"({"pay":{"rate-limit":{"policies":["per-ip"]}},"refund":{"rate-limit":{"policies":["per-ip","nope"]}}})");
    try {
        filter_set::build(&filters, &routes, registry::builtin(), nullptr);
        FAIL("build accepted an unknown policy");
    } catch (const config_error& e) {
        CHECK(e.key() == "routes.refund.rate-limit.policies[1]");
    }
}

TEST_CASE("filter_set::build refuses a route that uses rate-limit with no section", "[config]") {
    boost::json::value routes = boost::json::parse(R"({"pay":{"rate-limit":{"policies":["per-ip"]}}})");
    try {
        filter_set::build(nullptr, &routes, registry::builtin(), nullptr);
        FAIL("build accepted a policy that no section defines");
    } catch (const config_error& e) {
        CHECK(e.key() == "routes.pay.rate-limit.policies[0]");
    }
}

TEST_CASE("the example fragment conf/filters/rate-limit.example.json is valid", "[config]") {
    boost::json::value doc = parse_json_file(FILTERD_SOURCE_DIR "/conf/filters/rate-limit.example.json");
    ::setenv("FILTERD_REPLICAS", "2", 1);
    config g = config::load(doc.at("filters").as_object().if_contains("rate-limit"), "filters.rate-limit");
    ::unsetenv("FILTERD_REPLICAS");
    CHECK(g.replicas == 2);
    CHECK(g.policies.at("per-merchant").pod_quota == 50);
    std::size_t routes = 0;
    for (const auto& r : doc.at("routes").as_object()) {
        const std::string path = "routes." + std::string(r.key()) + ".rate-limit";
        CHECK_FALSE(
            route_config::load(g, r.key(), r.value().as_object().if_contains("rate-limit"), path).policies.empty());
        ++routes;
    }
    CHECK(routes == 3);
}
