// Pure GCRA arithmetic. gcra.hpp is included first: it must be self-contained.
#include "filters/rate_limit/gcra.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace filterd::rate_limit;

namespace {
constexpr std::int64_t ms = 1'000'000;
constexpr std::int64_t sec = 1'000'000'000;

gcra_params params(std::int64_t quota, std::int64_t window_ns, std::int64_t burst) {
    gcra_params p;
    p.emission_ns = window_ns / quota;
    p.tolerance_ns = burst * p.emission_ns;
    return p;
}
}  // namespace

TEST_CASE("gcra golden: quota 5/s burst 5", "[filter][gcra]") {
    const gcra_params p = params(5, sec, 5);
    REQUIRE(p.emission_ns == 200 * ms);
    const std::int64_t now = 42 * sec;
    std::int64_t tat = now;  // no entry yet
    for (std::int64_t expected : {4, 3, 2, 1, 0}) {
        gcra_decision d = gcra_decide(tat, now, p);
        REQUIRE(d.allowed);
        CHECK(d.remaining == expected);
        tat = d.new_tat;
    }
    gcra_decision sixth = gcra_decide(tat, now, p);
    CHECK_FALSE(sixth.allowed);
    CHECK(sixth.remaining == 0);
    CHECK(sixth.retry_after_ns == 200 * ms);
    CHECK(ceil_seconds(sixth.retry_after_ns) == 1);
    CHECK(sixth.reset_ns == 1 * sec);
    CHECK(sixth.new_tat == tat);  // a deny carries the unchanged TAT

    gcra_decision later = gcra_decide(tat, now + 3 * sec, p);
    CHECK(later.allowed);
    CHECK(later.remaining == 4);
}

TEST_CASE("gcra: a request becomes possible exactly at retry_after", "[filter][gcra]") {
    const gcra_params p = params(5, sec, 5);
    const std::int64_t now = 10 * sec;
    std::int64_t tat = now + 1 * sec;  // bucket exhausted
    gcra_decision d = gcra_decide(tat, now, p);
    REQUIRE_FALSE(d.allowed);
    CHECK_FALSE(gcra_decide(tat, now + d.retry_after_ns - 1, p).allowed);
    gcra_decision at = gcra_decide(tat, now + d.retry_after_ns, p);
    CHECK(at.allowed);
    CHECK(at.remaining == 0);
}

TEST_CASE("gcra: window and burst variants", "[filter][gcra]") {
    struct row {
        std::int64_t quota, window_ns, burst;
        int passes;                   // immediate requests that pass
        std::int64_t retry_after_ns;  // for the first denied one
        std::int64_t retry_after_s;
    };
    auto r = GENERATE(row{60, 60 * sec, 1, 1, 1 * sec, 1},      // 1/s, no burst
                      row{10, 1 * sec, 1, 1, 100 * ms, 1},      // sub-second spacing rounds up to 1 s
                      row{1, 60 * sec, 3, 3, 60 * sec, 60},     // burst above quota
                      row{100, 60 * sec, 20, 20, 600 * ms, 1},  // 100/min with burst 20
                      row{3, 10 * sec, 2, 2, 3333333333, 4});   // T = 3.333 s: 3.33 s rounds up to 4
    const gcra_params p = params(r.quota, r.window_ns, r.burst);
    const std::int64_t now = 7 * sec;
    std::int64_t tat = now;
    for (int i = 0; i < r.passes; ++i) {
        gcra_decision d = gcra_decide(tat, now, p);
        REQUIRE(d.allowed);
        CHECK(d.remaining == r.passes - 1 - i);
        tat = d.new_tat;
    }
    gcra_decision d = gcra_decide(tat, now, p);
    CHECK_FALSE(d.allowed);
    CHECK(d.retry_after_ns == r.retry_after_ns);
    CHECK(ceil_seconds(d.retry_after_ns) == r.retry_after_s);
}

TEST_CASE("gcra: a stale TAT is the same as no entry", "[filter][gcra]") {
    const gcra_params p = params(5, sec, 5);
    const std::int64_t now = 100 * sec;
    gcra_decision fresh = gcra_decide(now, now, p);
    gcra_decision stale = gcra_decide(now - 50 * sec, now, p);
    CHECK(fresh.allowed == stale.allowed);
    CHECK(fresh.new_tat == stale.new_tat);
    CHECK(fresh.remaining == stale.remaining);
}

TEST_CASE("ceil_seconds rounds up and never returns a negative", "[filter][gcra]") {
    CHECK(ceil_seconds(0) == 0);
    CHECK(ceil_seconds(-5) == 0);
    CHECK(ceil_seconds(1) == 1);
    CHECK(ceil_seconds(sec) == 1);
    CHECK(ceil_seconds(sec + 1) == 2);
}
