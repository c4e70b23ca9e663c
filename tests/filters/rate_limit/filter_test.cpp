// Filter behaviour: decisions, deny headers, keys, bounded tables, all-or-nothing, concurrency, reload.
// filter.hpp is included first: it must be self-contained.
#include "filters/rate_limit/filter.hpp"

#include "helpers.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

using namespace filterd;
using namespace filterd::rate_limit;
using namespace filterd::rate_limit::testing;

namespace {
// Each test uses its own policy names: metrics are process-wide.
std::string policy_json(std::string_view name, std::string_view fields) {
    return "\"" + std::string(name) + "\":{" + std::string(fields) + "}";
}
std::string one_policy(std::string_view name, std::string_view fields) {
    return R"({"policies":{)" + policy_json(name, fields) + "}}";
}
std::string route_of(std::string_view name) { return R"({"policies":[")" + std::string(name) + R"("]})"; }
}  // namespace

TEST_CASE("golden: quota 5/s burst 5 through the filter", "[filter]") {
    built b = make_filter(one_policy("gold", R"("quota":5,"window_ms":1000,"burst":5,"key":"client_ip")"),
                          route_of("gold"));
    auto req = make_req();
    const auto allowed0 = decisions("gold", "allow");
    const auto denied0 = decisions("gold", "deny");

    for (int i = 0; i < 5; ++i) {
        run_result r = run(*b.impl, req, t0);
        REQUIRE(r.result == outcome::allow);
        CHECK(r.ctx.deny_headers.empty());  // nothing for the client on allow
        CHECK(r.ctx.set_headers.empty());   // and nothing upstream either
    }
    run_result sixth = run(*b.impl, req, t0);
    REQUIRE(sixth.result == outcome::deny);
    CHECK(sixth.ctx.deny_status == 429);
    CHECK(sixth.ctx.reason == "rate_limited");
    CHECK(sixth.ctx.deny_content_type == "application/problem+json");
    CHECK(sixth.ctx.deny_body == R"({"type":"about:blank","title":"Too Many Requests","status":429})");
    CHECK(sixth.header("Retry-After") == "1");
    CHECK(sixth.header("RateLimit-Policy") == R"("gold";q=5;w=1)");
    CHECK(sixth.header("RateLimit") == R"("gold";r=0;t=1)");
    CHECK(sixth.header("X-RateLimit-Limit") == "5");
    CHECK(sixth.header("X-RateLimit-Remaining") == "0");
    CHECK(sixth.header("X-RateLimit-Reset") == "1");
    CHECK(sixth.ctx.deny_headers.size() == 6);

    // 3 s later the bucket is full again: remaining 4 after one request means exactly 5 pass.
    for (int i = 0; i < 5; ++i)
        REQUIRE(run(*b.impl, req, t0 + 3 * sec).result == outcome::allow);
    CHECK(run(*b.impl, req, t0 + 3 * sec).result == outcome::deny);

    CHECK(decisions("gold", "allow") - allowed0 == 10);
    CHECK(decisions("gold", "deny") - denied0 == 2);
}

TEST_CASE("the emission interval refills one request at a time", "[filter]") {
    built b = make_filter(one_policy("refill", R"("quota":5,"window_ms":1000,"burst":5,"key":"client_ip")"),
                          route_of("refill"));
    auto req = make_req();
    for (int i = 0; i < 5; ++i)
        REQUIRE(run(*b.impl, req, t0).result == outcome::allow);
    CHECK(run(*b.impl, req, t0 + 199 * ms).result == outcome::deny);
    CHECK(run(*b.impl, req, t0 + 200 * ms).result == outcome::allow);
    CHECK(run(*b.impl, req, t0 + 200 * ms).result == outcome::deny);
}

TEST_CASE("deny headers for a long window and a burst above the quota", "[filter]") {
    built b = make_filter(one_policy("slow", R"("quota":1,"window_ms":60000,"burst":3,"key":"client_ip")"),
                          route_of("slow"));
    auto req = make_req();
    for (int i = 0; i < 3; ++i)
        REQUIRE(run(*b.impl, req, t0).result == outcome::allow);
    run_result r = run(*b.impl, req, t0 + 500 * ms);
    REQUIRE(r.result == outcome::deny);
    CHECK(r.header("Retry-After") == "60");  // 59.5 s rounded up
    CHECK(r.header("RateLimit") == R"("slow";r=0;t=60)");
    CHECK(r.header("RateLimit-Policy") == R"("slow";q=1;w=60)");
    CHECK(r.header("X-RateLimit-Reset") == "180");  // 179.5 s until all three are back
}

TEST_CASE("keys: client IPs are counted separately", "[filter]") {
    built b = make_filter(one_policy("by-ip", R"("quota":1,"window_ms":1000,"burst":1,"key":"client_ip")"),
                          route_of("by-ip"));
    auto a = make_req({.client_ip = "192.0.2.1"});
    auto c = make_req({.client_ip = "192.0.2.2"});
    CHECK(run(*b.impl, a, t0).result == outcome::allow);
    CHECK(run(*b.impl, a, t0).result == outcome::deny);
    CHECK(run(*b.impl, c, t0).result == outcome::allow);
}

TEST_CASE("keys: a route policy is one bucket for every client", "[filter]") {
    built b = make_filter(one_policy("by-route", R"("quota":1,"window_ms":1000,"burst":2,"key":"route")"),
                          route_of("by-route"));
    CHECK(run(*b.impl, make_req({.client_ip = "192.0.2.1"}), t0).result == outcome::allow);
    CHECK(run(*b.impl, make_req({.client_ip = "192.0.2.2"}), t0).result == outcome::allow);
    CHECK(run(*b.impl, make_req({.client_ip = "192.0.2.3"}), t0).result == outcome::deny);
}

TEST_CASE("keys: header values are counted separately, case-insensitively by name", "[filter]") {
    built b = make_filter(
        one_policy("by-hdr", R"("quota":1,"window_ms":1000,"burst":1,"key":"header","header":"X-Api-Client")"),
        route_of("by-hdr"));
    auto a = make_req({.client_ip = "192.0.2.1", .headers = {{"x-api-client", {"alpha"}}}});
    auto a2 = make_req({.client_ip = "192.0.2.9", .headers = {{"X-API-CLIENT", {"alpha"}}}});
    auto c = make_req({.client_ip = "192.0.2.1", .headers = {{"X-Api-Client", {"beta"}}}});
    CHECK(run(*b.impl, a, t0).result == outcome::allow);
    CHECK(run(*b.impl, a2, t0).result == outcome::deny);  // same header value from another IP: same bucket
    CHECK(run(*b.impl, c, t0).result == outcome::allow);
}

TEST_CASE("keys: requests without the header share one bucket (stricter, never skipped)", "[filter]") {
    built b = make_filter(
        one_policy("no-hdr", R"("quota":1,"window_ms":1000,"burst":2,"key":"header","header":"X-Api-Client")"),
        route_of("no-hdr"));
    CHECK(run(*b.impl, make_req({.client_ip = "192.0.2.1"}), t0).result == outcome::allow);
    CHECK(run(*b.impl, make_req({.client_ip = "192.0.2.2"}), t0).result == outcome::allow);
    CHECK(run(*b.impl, make_req({.client_ip = "192.0.2.3"}), t0).result == outcome::deny);
    // A client that does send the header is not caught in that bucket.
    CHECK(run(*b.impl, make_req({.headers = {{"X-Api-Client", {"gamma"}}}}), t0).result == outcome::allow);
}

TEST_CASE("keys: merchant_id needs an authenticated context (fail closed)", "[filter]") {
    built b = make_filter(R"({"policies":{
            "m-ip":{"quota":1,"window_ms":1000,"burst":1,"key":"client_ip"},
            "m-merchant":{"quota":1,"window_ms":1000,"burst":1,"key":"merchant_id"}}})",
                          R"({"policies":["m-ip","m-merchant"]})");
    auto req = make_req();
    const auto errors0 = decisions("m-merchant", "error");
    run_result r = run(*b.impl, req, t0);
    CHECK(r.result == outcome::error);
    CHECK(r.ctx.reason == "rate_limit_unauthenticated");
    CHECK(r.ctx.deny_status == 0);  // the chain chooses the status for an error
    CHECK(decisions("m-merchant", "error") - errors0 == 1);

    // Nothing was consumed: the client_ip policy (burst 1) still admits this client once.
    context authed;
    authed.authenticated = true;
    authed.merchant_id = "m1";
    CHECK(run(*b.impl, req, t0, &authed).result == outcome::allow);
    CHECK(run(*b.impl, req, t0, &authed).result == outcome::deny);
}

TEST_CASE("keys: merchant_id and key_id buckets", "[filter]") {
    built b = make_filter(R"({"policies":{
            "k-merchant":{"quota":1,"window_ms":1000,"burst":1,"key":"merchant_id"},
            "k-key":{"quota":1,"window_ms":1000,"burst":1,"key":"key_id"}}})",
                          R"({"policies":["k-key"]})");
    auto req = make_req();
    auto as = [](std::string m, std::string k) {
        context c;
        c.authenticated = true;
        c.merchant_id = std::move(m);
        c.key_id = std::move(k);
        return c;
    };
    const context m1k1 = as("m1", "k1"), m1k2 = as("m1", "k2"), m2k1 = as("m2", "k1");
    CHECK(run(*b.impl, req, t0, &m1k1).result == outcome::allow);
    CHECK(run(*b.impl, req, t0, &m1k1).result == outcome::deny);
    CHECK(run(*b.impl, req, t0, &m1k2).result == outcome::allow);  // another key of the same merchant
    CHECK(run(*b.impl, req, t0, &m2k1).result == outcome::allow);  // the same key id at another merchant
    // Parts are separated: ("ab","c") is not ("a","bc").
    const context abc = as("ab", "c"), a_bc = as("a", "bc");
    CHECK(run(*b.impl, req, t0, &abc).result == outcome::allow);
    CHECK(run(*b.impl, req, t0, &a_bc).result == outcome::allow);
}

TEST_CASE("replicas divide the per-pod quota", "[filter]") {
    built one = make_filter(
        R"({"replicas":1,"policies":{"rep1":{"quota":10,"window_ms":1000,"burst":5,"key":"client_ip"}}})",
        route_of("rep1"));
    built two = make_filter(
        R"({"replicas":2,"policies":{"rep2":{"quota":10,"window_ms":1000,"burst":5,"key":"client_ip"}}})",
        route_of("rep2"));
    auto req = make_req();
    for (int i = 0; i < 5; ++i) {
        REQUIRE(run(*one.impl, req, t0).result == outcome::allow);
        REQUIRE(run(*two.impl, req, t0).result == outcome::allow);
    }
    // T is 100 ms with one replica, 200 ms with two.
    CHECK(run(*one.impl, req, t0 + 100 * ms).result == outcome::allow);
    CHECK(run(*two.impl, req, t0 + 100 * ms).result == outcome::deny);
    run_result r = run(*two.impl, req, t0 + 100 * ms);
    CHECK(r.header("X-RateLimit-Limit") == "10");  // the documented fleet-wide quota
    CHECK(run(*two.impl, req, t0 + 200 * ms).result == outcome::allow);
}

TEST_CASE("all-or-nothing across two policies, observed through a second route", "[filter]") {
    boost::json::value g = boost::json::parse(R"({"policies":{
        "aon-a":{"quota":5,"window_ms":1000,"burst":5,"key":"client_ip"},
        "aon-b":{"quota":1,"window_ms":1000,"burst":1,"key":"client_ip"}}})");
    boost::json::value both_cfg = boost::json::parse(R"({"policies":["aon-a","aon-b"]})");
    boost::json::value a_cfg = boost::json::parse(R"({"policies":["aon-a"]})");
    auto inst = factory().create(&g, "filters.rate-limit", nullptr);
    auto both = inst->for_route("both", &both_cfg, "routes.both.rate-limit");
    auto only_a = inst->for_route("only-a", &a_cfg, "routes.only-a.rate-limit");
    auto req = make_req();
    const auto a_allow0 = decisions("aon-a", "allow");
    const auto b_deny0 = decisions("aon-b", "deny");

    REQUIRE(run(*both, req, t0).result == outcome::allow);  // A: 1 of 5 used, B: 1 of 1 used
    for (int i = 0; i < 3; ++i) {
        run_result r = run(*both, req, t0);  // B denies; A must not be charged
        REQUIRE(r.result == outcome::deny);
        CHECK(r.header("RateLimit-Policy") == R"("aon-b";q=1;w=1)");
    }
    // A still has exactly 4 left.
    for (int i = 0; i < 4; ++i)
        REQUIRE(run(*only_a, req, t0).result == outcome::allow);
    CHECK(run(*only_a, req, t0).result == outcome::deny);

    CHECK(decisions("aon-a", "allow") - a_allow0 == 5);  // 1 via both + 4 via only-a
    CHECK(decisions("aon-b", "deny") - b_deny0 == 3);
}

TEST_CASE("the most constrained denying policy is reported", "[filter]") {
    built b = make_filter(R"({"policies":{
            "mc-sec":{"quota":1,"window_ms":1000,"burst":1,"key":"client_ip"},
            "mc-min":{"quota":1,"window_ms":60000,"burst":1,"key":"client_ip"}}})",
                          R"({"policies":["mc-sec","mc-min"]})");
    auto req = make_req();
    REQUIRE(run(*b.impl, req, t0).result == outcome::allow);
    run_result r = run(*b.impl, req, t0);  // both deny: 1 s vs 60 s
    REQUIRE(r.result == outcome::deny);
    CHECK(r.header("Retry-After") == "60");
    CHECK(r.header("RateLimit-Policy") == R"("mc-min";q=1;w=60)");
    CHECK(r.header("RateLimit") == R"("mc-min";r=0;t=60)");
    // After 1 s only the minute policy refuses, and it is still the one reported.
    run_result later = run(*b.impl, req, t0 + 1 * sec);
    REQUIRE(later.result == outcome::deny);
    CHECK(later.header("Retry-After") == "59");
    CHECK(later.header("RateLimit-Policy") == R"("mc-min";q=1;w=60)");
}

TEST_CASE("bounded table: new keys share the overflow bucket when max_keys is reached", "[filter]") {
    built b = make_filter(one_policy("ovf", R"("quota":1,"window_ms":1000,"burst":1,"key":"client_ip","max_keys":1)"),
                          route_of("ovf"));
    auto table = b.rl().table("ovf");
    REQUIRE(table != nullptr);
    const auto ovf0 = overflows("ovf");

    CHECK(run(*b.impl, make_req({.client_ip = "192.0.2.1"}), t0).result == outcome::allow);  // tracked
    CHECK(table->tracked_keys() == 1);
    CHECK(tracked_gauge("ovf") == 1);
    CHECK(run(*b.impl, make_req({.client_ip = "192.0.2.2"}), t0).result == outcome::allow);  // overflow
    CHECK(run(*b.impl, make_req({.client_ip = "192.0.2.3"}), t0).result == outcome::deny);   // same overflow bucket
    CHECK(overflows("ovf") - ovf0 == 2);
    CHECK(table->tracked_keys() == 1);
    CHECK(tracked_gauge("ovf") == 1);
    // The tracked key keeps its own bucket.
    CHECK(run(*b.impl, make_req({.client_ip = "192.0.2.1"}), t0).result == outcome::deny);
}

TEST_CASE("bounded table: many keys never exceed max_keys", "[filter]") {
    built b = make_filter(one_policy("many", R"("quota":100,"window_ms":1000,"key":"client_ip","max_keys":8)"),
                          route_of("many"));
    auto table = b.rl().table("many");
    const auto ovf0 = overflows("many");
    const int n = 1000;
    for (int i = 0; i < n; ++i)
        run(*b.impl, make_req({.client_ip = "10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256)}), t0);
    const std::size_t tracked = table->tracked_keys();
    CHECK(tracked <= 8);
    CHECK(tracked >= 1);
    CHECK(overflows("many") - ovf0 == n - tracked);
    CHECK(tracked_gauge("many") == static_cast<std::int64_t>(tracked));
}

TEST_CASE("bounded table: entries whose TAT has passed are reclaimed", "[filter]") {
    built b = make_filter(
        one_policy("reclaim", R"("quota":5,"window_ms":1000,"burst":1,"key":"client_ip","max_keys":1)"),
        route_of("reclaim"));
    auto table = b.rl().table("reclaim");
    const auto ovf0 = overflows("reclaim");
    CHECK(run(*b.impl, make_req({.client_ip = "192.0.2.1"}), t0).result == outcome::allow);  // TAT t0+200ms
    CHECK(run(*b.impl, make_req({.client_ip = "192.0.2.2"}), t0).result == outcome::allow);  // overflow
    CHECK(overflows("reclaim") - ovf0 == 1);
    // At t0 + 1 s the first key's TAT has passed: the new key takes its place instead of overflowing.
    CHECK(run(*b.impl, make_req({.client_ip = "192.0.2.3"}), t0 + 1 * sec).result == outcome::allow);
    CHECK(overflows("reclaim") - ovf0 == 1);
    CHECK(table->tracked_keys() == 1);
    CHECK(tracked_gauge("reclaim") == 1);
    // And it is really tracked on its own (burst 1): a second request is denied.
    CHECK(run(*b.impl, make_req({.client_ip = "192.0.2.3"}), t0 + 1 * sec).result == outcome::deny);
}

TEST_CASE("bounded table: a sweep empties expired entries and the gauge follows", "[filter]") {
    built b = make_filter(
        one_policy("sweep", R"("quota":10,"window_ms":1000,"burst":1,"key":"client_ip","max_keys":64)"),
        route_of("sweep"));
    auto table = b.rl().table("sweep");
    int admitted = 0;
    for (int i = 0; i < 200; ++i)
        admitted += run(*b.impl, make_req({.client_ip = "10.1.0." + std::to_string(i)}), t0).result == outcome::allow;
    const std::size_t full = table->tracked_keys();
    CHECK(full <= 64);
    CHECK(full >= 32);  // 32 shards of 2: all but astronomically unlikely to leave more than half empty
    // Much later, new keys find the shards full of expired entries and reclaim them.
    for (int i = 0; i < 200; ++i)
        run(*b.impl, make_req({.client_ip = "10.2.0." + std::to_string(i)}), t0 + 10 * sec);
    CHECK(table->tracked_keys() <= 64);
    CHECK(tracked_gauge("sweep") == static_cast<std::int64_t>(table->tracked_keys()));
    CHECK(admitted >= 1);
}

TEST_CASE("concurrent requests for one key admit exactly the burst", "[filter]") {
    built b = make_filter(one_policy("conc", R"("quota":100,"window_ms":1000,"burst":100,"key":"client_ip")"),
                          route_of("conc"));
    auto req = make_req();
    std::atomic<int> admitted{0};
    auto worker = [&] {
        for (int i = 0; i < 1000; ++i)
            if (run(*b.impl, req, t0).result == outcome::allow)
                admitted.fetch_add(1);
    };
    std::thread a(worker), c(worker);
    a.join();
    c.join();
    CHECK(admitted.load() == 100);
}

TEST_CASE("routes listing the same policies in opposite orders do not deadlock", "[filter]") {
    boost::json::value g = boost::json::parse(R"({"policies":{
        "dl-a":{"quota":1000000,"window_ms":1000,"key":"route"},
        "dl-b":{"quota":1000000,"window_ms":1000,"key":"route"}}})");
    boost::json::value ab = boost::json::parse(R"({"policies":["dl-a","dl-b"]})");
    boost::json::value ba = boost::json::parse(R"({"policies":["dl-b","dl-a"]})");
    auto inst = factory().create(&g, "filters.rate-limit", nullptr);
    auto f1 = inst->for_route("r", &ab, "routes.r.rate-limit");
    auto f2 = inst->for_route("r", &ba, "routes.r.rate-limit");
    auto req = make_req();
    std::atomic<int> admitted{0};
    auto worker = [&](const filter& f, std::int64_t offset) {
        for (int i = 0; i < 20000; ++i)
            if (run(f, req, t0 + offset + i * 2000).result == outcome::allow)
                admitted.fetch_add(1);
    };
    std::thread x(worker, std::cref(*f1), 0), y(worker, std::cref(*f2), 1000);
    x.join();
    y.join();
    CHECK(admitted.load() == 40000);  // both finished (no deadlock) and the roomy policies admitted all
}

TEST_CASE("reload keeps a table whose policy is unchanged and resets one whose limits changed", "[filter]") {
    const std::string v1 = R"({"policies":{
        "rl-same":{"quota":1,"window_ms":1000,"burst":1,"key":"client_ip"},
        "rl-changed":{"quota":1,"window_ms":1000,"burst":1,"key":"client_ip"}}})";
    const std::string v2 = R"({"policies":{
        "rl-same":{"quota":1,"window_ms":1000,"burst":1,"key":"client_ip"},
        "rl-changed":{"quota":1,"window_ms":2000,"burst":1,"key":"client_ip"}}})";
    auto req = make_req();

    built gen1 = make_filter(v1, R"({"policies":["rl-same","rl-changed"]})");
    REQUIRE(run(*gen1.impl, req, t0).result == outcome::allow);  // both buckets used
    REQUIRE(run(*gen1.impl, req, t0).result == outcome::deny);

    built gen2_same = make_filter(v2, R"({"policies":["rl-same"]})", gen1.instance);
    built gen2_changed = make_filter(v2, R"({"policies":["rl-changed"]})", gen1.instance);
    CHECK(gen2_same.rl().table("rl-same") == gen1.rl().table("rl-same"));           // carried over
    CHECK(gen2_changed.rl().table("rl-changed") != gen1.rl().table("rl-changed"));  // new limits, new table
    CHECK(run(*gen2_same.impl, req, t0).result == outcome::deny);      // the used bucket survived the reload
    CHECK(run(*gen2_changed.impl, req, t0).result == outcome::allow);  // a fresh bucket
}
