// The bounded table on its own: limits, reclamation, and that deleting expired entries (backward-shift
// deletion in linear probing) never loses a live key. table.hpp is included first: it must be
// self-contained.
#include "filters/rate_limit/table.hpp"

#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>

#include <map>
#include <string>

using namespace filterd::rate_limit;

namespace {
constexpr std::int64_t ms = 1'000'000;
constexpr std::int64_t sec = 1'000'000'000;

policy_config policy(std::string_view name, std::int64_t max_keys) {
    boost::json::value v = boost::json::parse(R"({"policies":{")" + std::string(name) +
                                              R"(":{"quota":10,"window_ms":1000,"key":"client_ip","max_keys":)" +
                                              std::to_string(max_keys) + "}}}");
    return config::load(&v, "filters.rate-limit").policies.at(std::string(name));
}

// Locates and commits one key at `now` with `tat`, as the filter does (shard lock held). Returns false
// when the key went to the overflow bucket.
bool put(policy_table& t, std::uint64_t h, std::int64_t now, std::int64_t tat) {
    shard& s = t.shard_for(h);
    std::lock_guard lock(s.mu);
    placement pl = t.locate(s, h, now);
    if (pl.entry == nullptr)
        return false;
    t.commit(pl, h, tat);
    return true;
}

// The stored TAT of a tracked key, or -1 when it is not tracked.
std::int64_t find(policy_table& t, std::uint64_t h, std::int64_t now) {
    shard& s = t.shard_for(h);
    std::lock_guard lock(s.mu);
    placement pl = t.locate(s, h, now);
    if (pl.entry == nullptr || pl.is_new)
        return -1;
    return pl.entry->tat;
}
}  // namespace

TEST_CASE("table: shard limits add up to max_keys exactly", "[filter][table]") {
    for (std::int64_t max_keys : {1, 2, 3, 31, 33, 1000}) {
        policy_table t(policy("tbl-limits", max_keys));
        std::size_t limit_sum = 0;
        // Fill far past the limit: never more than max_keys are tracked.
        for (int i = 0; i < 4 * max_keys + 64; ++i)
            put(t, t.hash("key-" + std::to_string(i)), 100 * sec, 200 * sec);
        limit_sum = t.tracked_keys();
        CHECK(limit_sum <= static_cast<std::size_t>(max_keys));
        CHECK(limit_sum >= 1);
    }
}

TEST_CASE("table: sweeping expired entries keeps every live key findable", "[filter][table]") {
    policy_table t(policy("tbl-sweep", 1000));
    const std::int64_t now0 = 1000 * sec;
    std::map<std::uint64_t, std::int64_t> live;  // keys that must survive, with their TAT
    for (int i = 0; i < 5000; ++i) {
        const std::uint64_t h = t.hash("a-" + std::to_string(i));
        const std::int64_t tat = (i % 2) ? now0 + 1 * sec : now0 + 10 * ms;
        if (put(t, h, now0, tat) && (i % 2))
            live[h] = tat;
    }
    REQUIRE(t.tracked_keys() == 1000);  // 5000 keys over 32 shards of ~31: every shard is full
    REQUIRE(live.size() > 300);

    // 20 ms later the even keys have expired. New keys find full shards, sweep them (backward-shift
    // deletion moves entries around) and take the freed room.
    const std::int64_t now1 = now0 + 20 * ms;
    int admitted = 0;
    for (int i = 0; i < 5000; ++i)
        admitted += put(t, t.hash("b-" + std::to_string(i)), now1, now1 + 1 * sec);
    CHECK(admitted > 300);
    CHECK(t.tracked_keys() <= 1000);

    std::size_t lost = 0;
    for (const auto& [h, tat] : live)
        lost += find(t, h, now1) != tat;
    CHECK(lost == 0);
    CHECK(t.tracked().value() == static_cast<std::int64_t>(t.tracked_keys()));
}

TEST_CASE("table: a full shard is swept at most once per sweep interval", "[filter][table]") {
    policy_table t(policy("tbl-interval", 1));  // one shard of two slots, limit one key
    const std::int64_t now = 50 * sec;
    const std::uint64_t first = t.hash("first");
    REQUIRE(put(t, first, now, now + 5 * ms));
    CHECK_FALSE(put(t, t.hash("second"), now, now + 5 * ms));  // full: the sweep finds nothing to drop

    // A key whose probe starts at the empty slot (white-box: slot = (hash >> 8) & mask, mask 1) does not
    // meet the expired entry on its way, so only a sweep could make room for it.
    std::uint64_t other = 0;
    for (int i = 0; other == 0; ++i)
        if (const std::uint64_t h = t.hash("third-" + std::to_string(i)); ((h >> 8) & 1) != ((first >> 8) & 1))
            other = h;
    CHECK_FALSE(put(t, other, now + 6 * ms, now + 7 * ms));  // "first" expired, but the last sweep was 6 ms ago
    CHECK(put(t, other, now + sweep_interval_ns, now + sweep_interval_ns + 1));  // now a sweep may run
    CHECK(t.tracked_keys() == 1);
    CHECK(find(t, first, now + sweep_interval_ns) == -1);
}
