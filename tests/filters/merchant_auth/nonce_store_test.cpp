// Included first: proves the header is self-contained.
#include "filters/merchant_auth/nonce_store.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

using filterd::merchant_auth::nonce_store;
using res = nonce_store::result;

namespace {
constexpr std::int64_t s = 1'000'000'000;
constexpr std::int64_t T = 1'764'158'400;
constexpr std::int64_t skew = 300 * s;
std::string nonce(int i) { return "nonce-" + std::to_string(i) + "-padding-xx"; }
}  // namespace

TEST_CASE("nonce store: records once, then reports a replay while live", "[nonce]") {
    nonce_store st(16);
    CHECK(st.check_and_record("acme", nonce(1), T, T * s, skew) == res::recorded);
    CHECK(st.check_and_record("acme", nonce(1), T, T * s + 1, skew) == res::replay);
    CHECK(st.check_and_record("acme", nonce(1), T, (T + 300) * s, skew) == res::replay);
    // The same nonce under another merchant is a different entry.
    CHECK(st.check_and_record("globex", nonce(1), T, T * s, skew) == res::recorded);
    CHECK(st.size() == 2);
    // Once T + skew has passed the entry is expired and the pair may be recorded again.
    CHECK(st.check_and_record("acme", nonce(1), T + 301, (T + 301) * s, skew) == res::recorded);
    CHECK(st.size() == 2);
}

TEST_CASE("nonce store: the skew of each call decides liveness", "[nonce]") {
    nonce_store st(4);
    CHECK(st.check_and_record("m", nonce(1), T, T * s, skew) == res::recorded);
    // 400 s later: expired under 300 s, live under 600 s (a reload that widened the window).
    CHECK(st.check_and_record("m", nonce(1), T, (T + 400) * s, 600 * s) == res::replay);
}

TEST_CASE("nonce store: full means 503, never forgetting a live entry", "[nonce]") {
    nonce_store st(3);
    for (int i = 0; i < 3; ++i)
        REQUIRE(st.check_and_record("m", nonce(i), T, T * s, skew) == res::recorded);
    CHECK(st.check_and_record("m", nonce(3), T, T * s, skew) == res::full);
    for (int i = 0; i < 3; ++i)
        CHECK(st.check_and_record("m", nonce(i), T, (T + 300) * s, skew) == res::replay);
    // After expiry the purge makes room.
    CHECK(st.check_and_record("m", nonce(3), T + 301, (T + 301) * s, skew) == res::recorded);
    CHECK(st.size() == 1);
}

TEST_CASE("nonce store: purging expired entries keeps every live one findable", "[nonce]") {
    // One shard of 1000 entries filled with alternating old and new timestamps; then a purge deletes
    // the old half in place (backward-shift deletion) and every new one must still be a replay.
    nonce_store st(1000);
    for (int i = 0; i < 1000; ++i)
        REQUIRE(st.check_and_record("m", nonce(i), (i % 2 == 0) ? T : T + 200, (T + 200) * s, skew) == res::recorded);
    std::int64_t later = (T + 301) * s;  // evens expired, odds live until T + 500
    CHECK(st.check_and_record("m", nonce(5000), T + 301, later, skew) == res::recorded);
    CHECK(st.size() == 501);
    for (int i = 1; i < 1000; i += 2)
        REQUIRE(st.check_and_record("m", nonce(i), T + 200, later, skew) == res::replay);
    // Room for 499 more: 500 live odds + nonce(5000) + 499 evens = 1000; the 500th even finds it full.
    for (int i = 0; i < 998; i += 2)
        REQUIRE(st.check_and_record("m", nonce(i), T + 301, later, skew) == res::recorded);
    CHECK(st.check_and_record("m", nonce(998), T + 301, later, skew) == res::full);
    CHECK(st.size() == 1000);
}

TEST_CASE("nonce store: concurrent writers lose nothing", "[nonce]") {
    nonce_store st(100'000);  // 64 shards
    constexpr int per_thread = 20'000;
    std::vector<std::thread> ts;
    std::atomic<int> recorded{0};
    for (int t = 0; t < 2; ++t)
        ts.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i)
                if (st.check_and_record("m", nonce(t * per_thread + i), T, T * s, skew) == res::recorded)
                    recorded.fetch_add(1);
        });
    for (auto& th : ts)
        th.join();
    CHECK(recorded.load() == 2 * per_thread);
    CHECK(st.size() == 2 * per_thread);
    for (int i = 0; i < 2 * per_thread; ++i)
        REQUIRE(st.check_and_record("m", nonce(i), T, T * s, skew) == res::replay);
}
