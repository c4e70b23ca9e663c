// store "redis": the shared GCRA against a real redis-server, side by side with the local GCRA.
#include "filters/rate_limit/redis_store.hpp"  // first: the header is self-contained

#include "tests/filters/rate_limit/helpers.hpp"
#include "tests/support/redis_server.hpp"

#include <catch2/catch.hpp>

#include <future>
#include <random>
#include <thread>

using namespace filterd;
using namespace filterd::rate_limit;
using namespace filterd::rate_limit::testing;
using filterd::testing::redis_server;

namespace {

std::string redis_global(const redis_server& s, std::string_view policies, std::string_view extra = "") {
    return R"({"store":"redis","redis":{"address":")" + s.address() + R"(","timeout_ms":1000},)" + std::string(extra) +
           R"("policies":{)" + std::string(policies) + "}}";
}
std::string local_global(std::string_view policies) { return R"({"policies":{)" + std::string(policies) + "}}"; }

std::int64_t steady_now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

/// Runs the filter's shared-store decision and waits for it. `wall` is the filterd clock the request
/// carries (used with "clock": "filterd").
run_result run_shared(const filter& f, const filterd::testing::built_request& req, std::int64_t wall,
                      const context* base = nullptr) {
    run_result r{outcome::error, base ? *base : context{}};
    r.ctx.wall_ns = wall;
    r.ctx.mono_ns = steady_now_ns();
    r.ctx.deadline_mono_ns = r.ctx.mono_ns + 2 * sec;
    std::promise<outcome> p;
    const request_view view = req.view();  // must outlive the decision
    f.on_request_async(view, r.ctx, [&](outcome o) { p.set_value(o); });
    r.result = p.get_future().get();
    return r;
}

std::int64_t gauge_value(const char* name) { return metrics_registry::global().get_gauge(name, "").value(); }
std::uint64_t fallbacks(const char* action) {
    return metrics_registry::global().counter_value("filterd_rate_limit_store_fallbacks_total", {{"action", action}});
}

const std::int64_t wall0 = 1'790'000'000LL * sec + 123'456'789;  // a wall clock with a ns part

}  // namespace

TEST_CASE("redis store gives the local GCRA's answers, headers and retry times on the same times", "[redis][filter]") {
    redis_server srv;
    // Emission intervals that are not whole ms or µs, a long window, a burst above the quota.
    const char* policies = R"("a":{"quota":3,"window_ms":1000,"burst":2,"key":"client_ip"},)"
                           R"("b":{"quota":7,"window_ms":60000,"burst":10,"key":"route"},)"
                           R"("c":{"quota":1000,"window_ms":3000,"burst":1,"key":"header","header":"X-K"})";
    const char* route = R"({"policies":["a","b","c"]})";
    built local = make_filter(local_global(policies), route);
    built shared = make_filter(redis_global(srv, policies, R"("clock":"filterd",)"), route);
    REQUIRE(shared.impl->is_async());
    REQUIRE_FALSE(local.impl->is_async());

    std::mt19937_64 rng(42);
    std::uniform_int_distribution<std::int64_t> step(0, 400 * ms + 7);
    std::int64_t offset = 0;
    int allows = 0, denies = 0;
    for (int i = 0; i < 300; ++i) {
        offset += (i % 50 == 49) ? 5 * sec : step(rng) / 3;
        auto req = make_req(
            {.client_ip = i % 3 == 0 ? "192.0.2.9" : "192.0.2.1", .headers = {{"X-K", {i % 5 == 0 ? "k1" : "k2"}}}});
        run_result l = run(*local.impl, req, t0 + offset);
        run_result s = run_shared(*shared.impl, req, wall0 + offset);
        INFO("request " << i << " at +" << offset << " ns");
        REQUIRE(s.result == l.result);
        REQUIRE(s.ctx.deny_status == l.ctx.deny_status);
        REQUIRE(s.ctx.deny_headers.size() == l.ctx.deny_headers.size());
        for (std::size_t h = 0; h < l.ctx.deny_headers.size(); ++h) {
            CHECK(s.ctx.deny_headers[h].name == l.ctx.deny_headers[h].name);
            CHECK(s.ctx.deny_headers[h].value == l.ctx.deny_headers[h].value);
        }
        (l.result == outcome::allow ? allows : denies)++;
    }
    CHECK(allows > 10);  // the sequence exercises both answers
    CHECK(denies > 20);
    // Keys expire when their TAT passes: nothing lingers beyond the bucket state.
    auto ttl = srv.cli("PTTL 'filterd:{r:r}:rl:b'");
    CHECK(std::stoll(ttl) > 0);
}

TEST_CASE("redis store: all or none across a request's policies", "[redis][filter]") {
    redis_server srv;
    const char* policies = R"("wide":{"quota":1,"window_ms":60000,"burst":100,"key":"client_ip"},)"
                           R"("narrow":{"quota":2,"window_ms":60000,"key":"route"})";
    built both = make_filter(redis_global(srv, policies), R"({"policies":["wide","narrow"]})");
    auto req = make_req();
    CHECK(run_shared(*both.impl, req, wall0).result == outcome::allow);
    CHECK(run_shared(*both.impl, req, wall0).result == outcome::allow);
    auto before = srv.cli("GET 'filterd:{ip:192.0.2.1}:rl:wide'");
    for (int i = 0; i < 5; ++i) {
        auto r = run_shared(*both.impl, req, wall0);
        REQUIRE(r.result == outcome::deny);
        CHECK(r.header("RateLimit-Policy") == R"("narrow";q=2;w=60)");
    }
    // The denied requests charged nothing to the policy that would have allowed them.
    CHECK(srv.cli("GET 'filterd:{ip:192.0.2.1}:rl:wide'") == before);
}

TEST_CASE("redis store on Redis TIME: replicas with skewed clocks share one exact quota", "[redis][filter]") {
    redis_server srv;
    const char* policies = R"("q":{"quota":5,"window_ms":60000,"burst":5,"key":"client_ip"})";
    built a = make_filter(redis_global(srv, policies), std::string(R"({"policies":["q"]})"));
    built b = make_filter(redis_global(srv, policies), std::string(R"({"policies":["q"]})"));
    auto req = make_req();
    const std::int64_t real = wall0;
    // B's clock is an hour ahead: with one clock (Redis TIME) it changes nothing.
    int allowed = 0;
    for (int i = 0; i < 4; ++i) {
        allowed += run_shared(*a.impl, req, real).result == outcome::allow;
        allowed += run_shared(*b.impl, req, real + 3600 * sec).result == outcome::allow;
    }
    CHECK(allowed == 5);
    auto d = run_shared(*b.impl, req, real + 3600 * sec);
    REQUIRE(d.result == outcome::deny);
    // 60 s / 5 = 12 s per request; retry is at most that, never an hour off.
    auto retry = std::stoll(*d.header("Retry-After"));
    CHECK(retry >= 1);
    CHECK(retry <= 12);
}

TEST_CASE("redis store down: on_redis_error local decides on the pod share, deny answers 503, both recover",
          "[redis][filter]") {
    redis_server srv;
    const char* policies = R"("f":{"quota":4,"window_ms":60000,"burst":4,"key":"client_ip"})";
    built lf = make_filter(redis_global(srv, policies, R"("replicas":2,)"), R"({"policies":["f"]})");
    built df = make_filter(redis_global(srv, policies, R"("replicas":2,"on_redis_error":"deny",)"),
                           R"({"policies":["f"]})");
    auto req = make_req({.client_ip = "198.51.100.7"});
    CHECK(run_shared(*lf.impl, req, wall0).result == outcome::allow);
    CHECK(gauge_value("filterd_rate_limit_store_degraded") == 0);

    srv.kill();
    const auto local0 = fallbacks("local");
    const auto deny0 = fallbacks("deny");
    // Local fallback: this pod's share, quota 4 / 2 replicas = 2 (burst stays 4 per pod as documented).
    int allowed = 0;
    for (int i = 0; i < 6; ++i)
        allowed += run_shared(*lf.impl, req, wall0).result == outcome::allow;
    CHECK(allowed == 4);
    CHECK(fallbacks("local") - local0 == 6);
    CHECK(gauge_value("filterd_rate_limit_store_degraded") == 1);

    auto d = run_shared(*df.impl, req, wall0);
    CHECK(d.result == outcome::deny);
    CHECK(d.ctx.deny_status == 503);
    CHECK(d.ctx.reason == "rate_limit_store_unavailable");
    CHECK(fallbacks("deny") - deny0 == 1);

    srv.start();
    bool back = false;
    for (int i = 0; i < 200 && !back; ++i) {
        back = run_shared(*df.impl, req, wall0).ctx.deny_status != 503;
        if (!back)
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    CHECK(back);
    CHECK(gauge_value("filterd_rate_limit_store_degraded") == 0);
}

TEST_CASE("redis store carries a pending nonce in the same script call", "[redis][filter]") {
    redis_server srv;
    const char* policies = R"("m":{"quota":100,"window_ms":1000,"key":"merchant_id"})";
    built f = make_filter(redis_global(srv, policies), R"({"policies":["m"]})");
    REQUIRE(f.impl->carries_nonce());
    auto req = make_req();
    std::vector<context::pending_nonce::verdict> seen;
    auto with_nonce = [&](const std::string& nonce) {
        context base;
        base.authenticated = true;
        base.merchant_id = "acme";
        base.fused_store = f.impl->shared_store();
        base.nonce.emplace();
        base.nonce->key = redis::merchant_prefix("acme") + "n:" + nonce;
        base.nonce->ttl_ms = 600'000;
        base.nonce->settle = [&](context& ctx, context::pending_nonce::verdict v) {
            seen.push_back(v);
            if (v == context::pending_nonce::verdict::recorded)
                return outcome::allow;
            ctx.deny_problem(v == context::pending_nonce::verdict::replay ? 401 : 503, "x", "test");
            return outcome::deny;
        };
        return run_shared(*f.impl, req, wall0, &base);
    };
    auto calls0 = srv.cli("INFO commandstats");
    CHECK(with_nonce("n-1").result == outcome::allow);
    auto replay = with_nonce("n-1");
    CHECK(replay.result == outcome::deny);
    CHECK(replay.ctx.deny_status == 401);
    CHECK(with_nonce("n-2").result == outcome::allow);
    REQUIRE(seen.size() == 3);
    CHECK(seen[1] == context::pending_nonce::verdict::replay);
    // The replay charged nothing: two requests counted on the merchant's bucket.
    auto pttl = std::stoll(srv.cli("PTTL 'filterd:{m:acme}:n:n-1'"));
    CHECK(pttl > 590'000);
    CHECK(pttl <= 600'000);

    srv.kill();
    auto down = with_nonce("n-3");
    CHECK(down.result == outcome::deny);
    CHECK(down.ctx.deny_status == 503);  // the nonce never goes unchecked, whatever on_redis_error says
    CHECK(seen.back() == context::pending_nonce::verdict::unavailable);
}

TEST_CASE("redis store config rules", "[redis][config]") {
    auto fails = [](const std::string& g, const std::string& route, const std::string& key) {
        try {
            make_filter(g, route);
        } catch (const config_error& e) {
            CHECK(e.key() == key);
            return;
        }
        FAIL("no config_error for " << g);
    };
    const std::string p = R"("policies":{"x":{"quota":1,"window_ms":1000,"key":"client_ip"},)"
                          R"("y":{"quota":1,"window_ms":1000,"key":"route"}})";
    fails(R"({"store":"redis",)" + p + "}", std::string(R"({"policies":["x"]})"), "filters.rate-limit.redis");
    fails(R"({"store":"disk",)" + p + "}", std::string(R"({"policies":["x"]})"), "filters.rate-limit.store");
    fails(R"({"on_redis_error":"deny",)" + p + "}", std::string(R"({"policies":["x"]})"),
          "filters.rate-limit.on_redis_error");
    fails(R"({"store":"redis","redis":{"address":"127.0.0.1:1"},"on_redis_error":"open",)" + p + "}",
          std::string(R"({"policies":["x"]})"), "filters.rate-limit.on_redis_error");
    fails(R"({"store":"redis","redis":{"address":"127.0.0.1:1"},"clock":"pod",)" + p + "}",
          std::string(R"({"policies":["x"]})"), "filters.rate-limit.clock");
    fails(R"({"store":"redis","redis":{"address":"127.0.0.1:1","bogus":1},)" + p + "}",
          std::string(R"({"policies":["x"]})"), "filters.rate-limit.redis.bogus");
    // Redis Cluster: a route's policies must share their key (one slot per script call).
    fails(R"({"store":"redis","redis":{"cluster_seeds":["127.0.0.1:1"]},)" + p + "}", R"({"policies":["x","y"]})",
          "routes.r.rate-limit.policies");
    fails(R"({"store":"redis","redis":{"address":"127.0.0.1:1"},)"
          R"("policies":{"z":{"quota":1,"window_ms":2678400000,"burst":1000000000,"key":"route"}}})",
          R"({"policies":["z"]})", "filters.rate-limit.policies.z.burst");
}
