// Included first: proves the header is self-contained.
#include "filters/merchant_auth/nonce_store.hpp"

#include "filters/merchant_auth/nonce_journal.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sys/resource.h>
#include <sys/stat.h>

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
/// Same length for every i >= 0 (journal size arithmetic).
std::string fixed_nonce(long i) {
    char b[32];
    std::snprintf(b, sizeof b, "nonce-%010ld-pad", i);
    return b;
}
}  // namespace

// The table is committed when the store is built: recording nonces all over it takes no page fault
// (left lazy, 100 000 random inserts into a 1M-entry store fault on most of its 8 192 pages).
// ThreadSanitizer maps its shadow memory lazily, so there the count says nothing about the store.
TEST_CASE("nonce store: the table is committed at construction, not on a request", "[nonce]") {
#if defined(__SANITIZE_THREAD__)
    SUCCEED("not measured under ThreadSanitizer");
    return;
#endif
    auto faults = [] {
        rusage u{};
        ::getrusage(RUSAGE_THREAD, &u);
        return u.ru_minflt + u.ru_majflt;
    };
    CHECK(nonce_store::table_bytes(1'000'000) == std::size_t{32} << 20);  // 64 shards of 32 768 slots
    CHECK(nonce_store::table_bytes(10) == 32 * 16);                       // one shard
    nonce_store st(1'000'000);
    std::vector<std::string> nonces;
    for (int i = 0; i < 100'000; ++i)
        nonces.push_back(nonce(i));
    const long before = faults();
    int recorded = 0;
    for (const auto& n : nonces)
        recorded += st.check_and_record("acme", n, T, T * s, skew) == res::recorded ? 1 : 0;
    const long during = faults() - before;
    CHECK(recorded == 100'000);
    CHECK(during < 100);
}

TEST_CASE("nonce store: records once, then reports a replay while live", "[nonce]") {
    nonce_store st(16);
    CHECK(st.check_and_record("acme", nonce(1), T, T * s, skew) == res::recorded);
    CHECK(st.check_and_record("acme", nonce(1), T, T * s + 1, skew) == res::replay);
    CHECK(st.check_and_record("acme", nonce(1), T, (T + 300) * s, skew) == res::replay);
    // The same nonce under another merchant is a different entry.
    CHECK(st.check_and_record("globex", nonce(1), T, T * s, skew) == res::recorded);
    CHECK(st.size() == 2);
    // Once T + skew has passed the entry is expired and the pair may be recorded again; the expired
    // globex entry is swept out on the way (the whole 32-slot shard fits in one insert's sweep).
    CHECK(st.check_and_record("acme", nonce(1), T + 301, (T + 301) * s, skew) == res::recorded);
    CHECK(st.size() == 1);
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
    // After expiry the whole-shard sweep of a full shard makes room.
    CHECK(st.check_and_record("m", nonce(3), T + 301, (T + 301) * s, skew) == res::recorded);
    CHECK(st.size() == 1);
}

TEST_CASE("nonce store: purging expired entries keeps every live one findable", "[nonce]") {
    // One shard of 1000 entries (2048 slots) filled with alternating old and new timestamps; then the
    // sweep deletes the old half in place (backward-shift deletion), 1024 slots per insert, and every
    // new one must still be a replay.
    nonce_store st(1000);
    for (int i = 0; i < 1000; ++i)
        REQUIRE(st.check_and_record("m", nonce(i), (i % 2 == 0) ? T : T + 200, (T + 200) * s, skew) == res::recorded);
    std::int64_t later = (T + 301) * s;  // evens expired, odds live until T + 500
    CHECK(st.check_and_record("m", nonce(5000), T + 301, later, skew) == res::recorded);
    CHECK(st.size() > 501);  // half the shard swept
    CHECK(st.check_and_record("m", nonce(5001), T + 301, later, skew) == res::recorded);
    CHECK(st.size() == 502);  // the sweep ended on the second insert
    for (int i = 1; i < 1000; i += 2)
        REQUIRE(st.check_and_record("m", nonce(i), T + 200, later, skew) == res::replay);
    // Room for 498 more: 500 live odds + 2 + 498 evens = 1000; the 499th even finds it full.
    for (int i = 0; i < 996; i += 2)
        REQUIRE(st.check_and_record("m", nonce(i), T + 301, later, skew) == res::recorded);
    CHECK(st.check_and_record("m", nonce(996), T + 301, later, skew) == res::full);
    CHECK(st.size() == 1000);
}

TEST_CASE("nonce store: expired entries go a bounded sweep per insert, all of them within one sweep", "[nonce]") {
    // 64 shards of 32 768 slots, 200 000 entries: a whole-shard scan would erase about 3 000 at once.
    nonce_store st(1'000'000);
    for (int i = 0; i < 200'000; ++i)
        REQUIRE(st.check_and_record("m", nonce(i), T, T * s, skew) == res::recorded);
    std::int64_t later = (T + 301) * s;  // every entry expired
    REQUIRE(st.check_and_record("m", nonce(1'000'000), T + 301, later, skew) == res::recorded);
    CHECK(st.size() < 200'001);                              // the sweep started
    CHECK(st.size() >= 200'001 - nonce_store::sweep_slots);  // and examined one chunk only
    // 20 000 more inserts give every shard far more than the 32 it needs to finish its sweep.
    for (int i = 0; i < 20'000; ++i)
        REQUIRE(st.check_and_record("m", nonce(2'000'000 + i), T + 301, later, skew) == res::recorded);
    CHECK(st.size() == 20'001);
    for (int i = 0; i < 20'000; i += 97)
        REQUIRE(st.check_and_record("m", nonce(2'000'000 + i), T + 301, later, skew) == res::replay);
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

// ---- per-merchant share --------------------------------------------------------------------------

TEST_CASE("nonce store: one merchant cannot take more than its share, the others still record", "[nonce]") {
    nonce_store st(100, 10);
    auto flood = st.owner_index("flooder");
    auto other = st.owner_index("other");
    CHECK(st.owner_index("flooder") == flood);  // stable
    CHECK(flood != other);
    for (int i = 0; i < 10; ++i)
        REQUIRE(st.check_and_record("flooder", flood, nonce(i), T, T * s, skew) == res::recorded);
    CHECK(st.check_and_record("flooder", flood, nonce(10), T, T * s, skew) == res::merchant_full);
    CHECK(st.owner_count(flood) == 10);
    // A replay is still reported as a replay, not as the quota.
    CHECK(st.check_and_record("flooder", flood, nonce(3), T, T * s, skew) == res::replay);
    for (int i = 0; i < 10; ++i)
        CHECK(st.check_and_record("other", other, nonce(i), T, T * s, skew) == res::recorded);
    // Expiry gives the share back (the sweep of this 256-slot shard runs whole on the next insert).
    CHECK(st.check_and_record("flooder", flood, nonce(11), T + 301, (T + 301) * s, skew) == res::recorded);
    CHECK(st.owner_count(flood) == 1);
    // The limit changes on reload.
    st.set_per_merchant_limit(1);
    CHECK(st.check_and_record("flooder", flood, nonce(12), T + 301, (T + 301) * s, skew) == res::merchant_full);
}

TEST_CASE("nonce store: a fence refuses older timestamps as unavailable", "[nonce]") {
    nonce_store st(16);
    st.set_fence(T + 10);
    CHECK(st.check_and_record("m", nonce(1), T + 9, (T + 9) * s, skew) == res::unavailable);
    CHECK(st.check_and_record("m", nonce(1), T + 10, (T + 10) * s, skew) == res::recorded);
}

// ---- journal ---------------------------------------------------------------------------------------

namespace {
struct temp_dir {
    std::string path;
    temp_dir() {
        char tmpl[] = "/tmp/filterd-journal-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~temp_dir() { std::filesystem::remove_all(path); }
};

std::vector<std::string> segments(const std::string& dir) {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir))
        out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
    return out;
}
}  // namespace

TEST_CASE("nonce journal: a new store replays what the old one recorded, and rejects those replays",
          "[nonce][journal]") {
    temp_dir d;
    {
        nonce_store st(1000);
        auto j = std::make_shared<filterd::merchant_auth::nonce_journal>(
            filterd::merchant_auth::journal_options{d.path, 1 << 20, false});
        CHECK(j->replay([](auto, auto, auto) { FAIL("empty journal"); }, T).records == 0);
        st.attach_journal(j);
        for (int i = 0; i < 50; ++i)
            REQUIRE(st.check_and_record("acme", fixed_nonce(i), T, T * s, skew) == res::recorded);
        CHECK(st.check_and_record("acme", fixed_nonce(1), T, T * s, skew) == res::replay);  // journalled once
        CHECK(j->bytes() == 50 * filterd::merchant_auth::nonce_journal::encode("acme", fixed_nonce(0), T).size());
    }
    // "Restart": a fresh store and journal over the same directory.
    nonce_store st(1000);
    auto j = std::make_shared<filterd::merchant_auth::nonce_journal>(
        filterd::merchant_auth::journal_options{d.path, 1 << 20, false});
    std::int64_t now = (T + 100) * s;
    auto stats = j->replay(
        [&](std::string_view m, std::string_view n, std::int64_t ts) { st.restore(m, n, ts, now, skew); }, T + 100);
    CHECK(stats.records == 50);
    CHECK(stats.damaged_segments == 0);
    st.attach_journal(j);
    for (int i = 0; i < 50; ++i)
        CHECK(st.check_and_record("acme", fixed_nonce(i), T, now, skew) == res::replay);
    CHECK(st.check_and_record("acme", fixed_nonce(50), T + 100, now, skew) == res::recorded);
}

TEST_CASE("nonce journal: a damaged record is reported with its segment's time", "[nonce][journal]") {
    temp_dir d;
    {
        filterd::merchant_auth::nonce_journal j({d.path, 1 << 20, false});
        j.replay([](auto, auto, auto) {}, T);
        for (int i = 0; i < 3; ++i)
            REQUIRE(j.append("acme", nonce(i), T, T * s, skew));
    }
    auto files = segments(d.path);
    REQUIRE(files.size() == 1);
    {
        std::fstream f(files[0], std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(20);  // inside the first record's merchant/nonce bytes: the CRC no longer matches
        f.put('Z');
    }
    filterd::merchant_auth::nonce_journal j({d.path, 1 << 20, false});
    int seen = 0;
    auto stats = j.replay([&](auto, auto, auto) { ++seen; }, T);
    CHECK(seen == 0);  // reading stops at the damage
    CHECK(stats.damaged_segments == 1);
    CHECK(stats.damaged_mtime_s > 0);
    // A truncated tail is damage too.
    temp_dir d2;
    {
        filterd::merchant_auth::nonce_journal w({d2.path, 1 << 20, false});
        w.replay([](auto, auto, auto) {}, T);
        REQUIRE(w.append("acme", nonce(1), T, T * s, skew));
        REQUIRE(w.append("acme", nonce(2), T, T * s, skew));
    }
    auto f2 = segments(d2.path);
    std::filesystem::resize_file(f2[0], std::filesystem::file_size(f2[0]) - 3);
    filterd::merchant_auth::nonce_journal r({d2.path, 1 << 20, false});
    seen = 0;
    stats = r.replay([&](auto, auto, auto) { ++seen; }, T);
    CHECK(seen == 1);
    CHECK(stats.damaged_segments == 1);
}

TEST_CASE("nonce journal: segments rotate and expired ones are deleted, the size bound holds", "[nonce][journal]") {
    temp_dir d;
    const std::size_t rec = filterd::merchant_auth::nonce_journal::encode("acme", fixed_nonce(0), T).size();
    filterd::merchant_auth::nonce_journal j({d.path, 1 << 20, false});
    j.replay([](auto, auto, auto) {}, T);
    REQUIRE(j.append("acme", fixed_nonce(0), T, T * s, skew));
    REQUIRE(j.append("acme", fixed_nonce(1), T + 300, (T + 300) * s, skew));  // a new segment after `skew`
    CHECK(j.segment_count() == 2);
    // 2 * skew after the first segment's last record, it is deleted.
    REQUIRE(j.append("acme", fixed_nonce(2), T + 601, (T + 601) * s, skew));
    CHECK(segments(d.path).size() == 2);
    CHECK(j.bytes() == 2 * rec);

    temp_dir small;
    filterd::merchant_auth::nonce_journal b({small.path, 1 << 20, false});
    b.replay([](auto, auto, auto) {}, T);
    std::size_t fit = (1u << 20) / rec;
    for (std::size_t i = 0; i < fit; ++i)
        REQUIRE(b.append("acme", fixed_nonce(static_cast<long>(i)), T, T * s, skew));
    CHECK_FALSE(b.append("acme", fixed_nonce(999999), T, T * s, skew));  // would pass max_bytes: refused
    CHECK(b.bytes() <= (1u << 20));
}

TEST_CASE("nonce journal: the directory must belong to filterd and not be writable by others", "[nonce][journal]") {
    temp_dir d;
    REQUIRE(::chmod(d.path.c_str(), 0777) == 0);
    CHECK_THROWS_WITH(filterd::merchant_auth::nonce_journal({d.path, 1 << 20, false}),
                      Catch::Contains("writable by group or others"));
    REQUIRE(::chmod(d.path.c_str(), 0700) == 0);
    std::string file = d.path + "/f";
    std::ofstream(file) << "x";
    CHECK_THROWS_WITH(filterd::merchant_auth::nonce_journal({file, 1 << 20, false}),
                      Catch::Contains("not a directory"));
}
