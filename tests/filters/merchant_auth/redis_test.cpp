// merchant-auth with store "redis": nonces shared between replicas, against a real redis-server.
#include "filters/merchant_auth/filter.hpp"  // first: the header is self-contained

#include "tests/filters/merchant_auth/support.hpp"
#include "tests/support/redis_server.hpp"

#include <catch2/catch.hpp>

#include <future>

using namespace filterd;
using namespace filterd::merchant_auth::testing;
using filterd::testing::redis_server;

namespace {

json::value redis_config(const redis_server& s) {
    json::value cfg = base_config();
    cfg.as_object().erase("nonce_capacity");
    cfg.as_object()["store"] = "redis";
    cfg.as_object()["redis"] = json::object{{"address", s.address()}, {"timeout_ms", 500}};
    return cfg;
}

std::int64_t steady_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

run_result run_async(const built_filter& f, const proto::request_spec& spec, std::int64_t wall_s = vector_ts) {
    auto req = filterd::testing::make_request(spec);
    run_result r{outcome::error, {}};
    r.ctx.wall_ns = wall_s * ns;
    r.ctx.mono_ns = steady_ns();
    r.ctx.deadline_mono_ns = r.ctx.mono_ns + 2 * ns;
    std::promise<outcome> p;
    const request_view view = req.view();  // must outlive the decision
    f.impl->on_request_async(view, r.ctx, [&](outcome o) { p.set_value(o); });
    r.result = p.get_future().get();
    return r;
}

}  // namespace

TEST_CASE("redis nonces: a request accepted by one replica is a replay on another", "[redis][filter]") {
    redis_server srv;
    auto a = build(redis_config(srv));
    auto b = build(redis_config(srv));  // a second filterd: its own instance, the same Redis
    REQUIRE(a.impl->is_async());
    auto v = vec("hmac_post_json");
    auto first = run_async(a, v.spec);
    CHECK(first.result == outcome::allow);
    CHECK(first.ctx.authenticated);
    CHECK(first.ctx.merchant_id == "acme");
    const auto replays0 = denied_count("replay");
    auto second = run_async(b, v.spec);
    CHECK(second.result == outcome::deny);
    CHECK(second.ctx.deny_status == 401);
    CHECK(second.ctx.reason == "replay");
    CHECK(denied_count("replay") - replays0 == 1);
    // Namespaced per merchant with a hash tag, remembered for 2 x skew.
    auto keys = srv.cli("KEYS '*'");
    CHECK(keys.find("filterd:{m:acme}:n:") == 0);
    auto pttl = std::stoll(srv.cli("PTTL '" + filterd::testing::redis_cluster::trim(keys) + "'"));
    CHECK(pttl > 590'000);
    CHECK(pttl <= 600'000);
}

TEST_CASE("redis nonces: the nonce is recorded only after the signature passed", "[redis][filter]") {
    redis_server srv;
    auto f = build(redis_config(srv));
    auto v = vec("hmac_post_json");
    auto forged = v;
    std::string sig = v.header("X-Signature");
    sig.replace(3, 4, sig.substr(3, 4) == "AAAA" ? "BBBB" : "AAAA");
    forged.set_header("X-Signature", sig);
    CHECK(run_async(f, forged.spec).ctx.reason == "bad_signature");
    CHECK(filterd::testing::redis_cluster::trim(srv.cli("DBSIZE")) == "0");
    CHECK(run_async(f, v.spec).result == outcome::allow);  // the forgery did not burn the nonce
}

TEST_CASE("redis nonces: Redis down, paused or erroring denies 503, never skips the check", "[redis][filter]") {
    redis_server srv;
    auto f = build(redis_config(srv));
    const auto unavailable0 = denied_count("nonce_store_unavailable");
    auto v1 = vec("hmac_post_json");
    auto v2 = vec("hmac_get_query");
    auto v3 = vec("rsa_post");

    SECTION("killed, then restarted") {
        srv.kill();
        auto r = run_async(f, v1.spec);
        CHECK(r.result == outcome::deny);
        CHECK(r.ctx.deny_status == 503);
        CHECK(r.ctx.reason == "nonce_store_unavailable");
        CHECK_FALSE(r.ctx.authenticated);
        srv.start();
        outcome o = outcome::deny;
        for (int i = 0; i < 200 && o != outcome::allow; ++i) {
            o = run_async(f, v2.spec).result;
            if (o != outcome::allow)
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        CHECK(o == outcome::allow);
    }
    SECTION("paused: the request ends by its deadline") {
        srv.pause();
        auto req = filterd::testing::make_request(v1.spec);
        context ctx;
        ctx.wall_ns = vector_ts * ns;
        ctx.mono_ns = steady_ns();
        ctx.deadline_mono_ns = ctx.mono_ns + 50'000'000;  // 50 ms budget
        std::promise<outcome> p;
        const request_view view = req.view();
        f.impl->on_request_async(view, ctx, [&](outcome o) { p.set_value(o); });
        auto fut = p.get_future();
        REQUIRE(fut.wait_for(std::chrono::seconds(3)) == std::future_status::ready);
        CHECK(fut.get() == outcome::deny);
        CHECK(ctx.deny_status == 503);
        srv.resume();
    }
    SECTION("answering errors (out of memory with noeviction)") {
        srv.cli("CONFIG SET maxmemory 1");
        srv.cli("CONFIG SET maxmemory-policy noeviction");
        auto r = run_async(f, v3.spec);
        CHECK(r.ctx.deny_status == 503);
        CHECK(r.ctx.reason == "nonce_store_unavailable");
    }
    CHECK(denied_count("nonce_store_unavailable") > unavailable0);
}

TEST_CASE("redis nonces: config rules", "[redis][config]") {
    json::value cfg = base_config();
    cfg.as_object()["store"] = "redis";
    CHECK(config_error_key([&] { build(cfg); }) == "filters.merchant-auth.redis");
    cfg.as_object()["redis"] = json::object{{"address", "127.0.0.1:1"}};
    CHECK(config_error_key([&] { build(cfg); }) == "filters.merchant-auth.nonce_capacity");
    cfg.as_object().erase("nonce_capacity");
    CHECK(config_error_key([&] { build(cfg); }) == "<no error>");
    json::value local = base_config();
    local.as_object()["redis"] = json::object{{"address", "127.0.0.1:1"}};
    CHECK(config_error_key([&] { build(local); }) == "filters.merchant-auth.redis");
    // The store cannot change on reload.
    auto running = build(base_config());
    CHECK(config_error_key([&] { build(cfg, nullptr, "pay", running.instance); }) == "filters.merchant-auth.store");
}
