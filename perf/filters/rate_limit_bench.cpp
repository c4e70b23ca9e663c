// rate-limit decision cost (targets: 1 thread <= 300 ns; 2 threads: no collapse).
//
// Run: build-rl/rate_limit_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// Floors in the same binary: an uncontended std::mutex lock/unlock around an unordered_map lookup
// (what any sharded table must pay), and SipHash-2-4 of a client IP (the key hash).
// The filter is built through its registered factory from inline JSON, and requests are real verified
// FlatBuffers FilterRequests, exactly as the chain hands them over. Time is injected (ctx.mono_ns).
#include "filters/common/filter.hpp"
#include "filters/rate_limit/keyed_hash.hpp"
#include "tests/support/request.hpp"

#include <benchmark/benchmark.h>
#include <boost/json/parse.hpp>

#include <atomic>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

using namespace filterd;

namespace {

constexpr std::int64_t t0 = 1'000'000'000'000;

std::shared_ptr<const filter> make(std::string_view global, std::string_view route) {
    boost::json::value g = boost::json::parse(global);
    boost::json::value r = boost::json::parse(route);
    auto inst = registry::builtin().find("rate-limit")->create(&g, "filters.rate-limit", nullptr);
    return inst->for_route("bench", &r, "routes.bench.rate-limit");
}

filterd::testing::built_request request(std::string ip) {
    proto::request_spec s;
    s.route = "bench";
    s.filters = {"rate-limit"};
    s.client_ip = std::move(ip);
    s.headers = {{"Content-Type", {"application/json"}}, {"X-Api-Client", {"client-42"}}};
    return filterd::testing::make_request(s);
}

// 1e9 per second (T = 1 ns), burst 1e9 (tau = 1 s): with each thread's clock advancing 10 ns per request
// every decision is an allow (the common case), even when two threads whose clocks drift apart share a key.
constexpr std::string_view roomy = R"({"policies":{
    "ip":{"quota":1000000000,"window_ms":1000,"burst":1000000000,"key":"client_ip","max_keys":200000},
    "hdr":{"quota":1000000000,"window_ms":1000,"burst":1000000000,"key":"header","header":"X-Api-Client"}}})";

const filter& one_policy() {
    static auto f = make(roomy, R"({"policies":["ip"]})");
    return *f;
}
const filter& two_policies() {
    static auto f = make(roomy, R"({"policies":["ip","hdr"]})");
    return *f;
}

// The filters are static (built once, shared by threads and by the benchmark's repeated runs), so the
// injected clock must keep moving forward across runs: each run starts 1 s after the latest time any
// earlier run reached plus 10 s, when every bucket is full again (tau is 1 s).
std::atomic<std::int64_t> clock_high{t0};

void run_allow(benchmark::State& state, const filter& f, const std::vector<filterd::testing::built_request>& reqs) {
    context ctx;
    // Each thread has its own clock that starts at the same point: with one shared key the two threads
    // hit the same slot (the worst case for the shard lock).
    std::int64_t now = clock_high.load() + 10'000'000'000;
    std::size_t i = 0;
    std::int64_t denied = 0;
    for (auto _ : state) {
        now += 10;
        ctx.mono_ns = now;
        outcome o = f.on_request(reqs[i].view(), ctx);
        denied += o != outcome::allow;
        if (++i == reqs.size())
            i = 0;
        benchmark::DoNotOptimize(o);
    }
    state.counters["denied"] = static_cast<double>(denied);
    state.SetItemsProcessed(state.iterations());  // summed over threads: decisions per second, all threads
    for (std::int64_t seen = clock_high.load(); seen < now && !clock_high.compare_exchange_weak(seen, now);) {
    }
}

}  // namespace

// Floor 1: uncontended mutex + hash-map lookup and store.
static void BM_floor_mutex_map_lookup(benchmark::State& state) {
    std::mutex mu;
    std::unordered_map<std::uint64_t, std::int64_t> m;
    m.reserve(1024);
    for (std::uint64_t k = 0; k < 512; ++k)
        m[k * 0x9e3779b97f4a7c15ULL] = 1;
    std::uint64_t k = 0;
    for (auto _ : state) {
        std::lock_guard lock(mu);
        auto it = m.find((k++ & 511) * 0x9e3779b97f4a7c15ULL);
        it->second += 1;
        benchmark::DoNotOptimize(it->second);
    }
}
BENCHMARK(BM_floor_mutex_map_lookup);

// Floor 2: the keyed hash of a typical key.
static void BM_floor_siphash_ip(benchmark::State& state) {
    const std::string ip = "203.0.113.77";
    for (auto _ : state) {
        rate_limit::siphash24 h(0x0123456789abcdefULL, 0xfedcba9876543210ULL);
        h.update(ip);
        benchmark::DoNotOptimize(h.finish());
    }
}
BENCHMARK(BM_floor_siphash_ip);

// One policy, one key. Threads(2): both threads on the same key and shard.
static void BM_decision_one_key(benchmark::State& state) {
    std::vector<filterd::testing::built_request> reqs;
    reqs.push_back(request("203.0.113.77"));
    run_allow(state, one_policy(), reqs);
}
BENCHMARK(BM_decision_one_key)->Threads(1)->Threads(2)->UseRealTime();

// One policy, a key per thread (different shards, almost surely).
static void BM_decision_own_key(benchmark::State& state) {
    std::vector<filterd::testing::built_request> reqs;
    reqs.push_back(request("198.51.100." + std::to_string(state.thread_index())));
    run_allow(state, one_policy(), reqs);
}
BENCHMARK(BM_decision_own_key)->Threads(1)->Threads(2)->UseRealTime();

// Many distinct keys, round-robin: table misses caches; range(0) keys per thread.
static void BM_decision_many_keys(benchmark::State& state) {
    std::vector<filterd::testing::built_request> reqs;
    const auto n = static_cast<int>(state.range(0));
    reqs.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i)
        reqs.push_back(request("10." + std::to_string(state.thread_index()) + "." + std::to_string(i / 256) + "." +
                               std::to_string(i % 256)));
    run_allow(state, one_policy(), reqs);
}
BENCHMARK(BM_decision_many_keys)->ArgName("keys")->Arg(1'000)->Arg(50'000)->Threads(1)->Threads(2)->UseRealTime();

// Two policies on one request (client IP and header): two shard locks, all-or-nothing commit.
static void BM_decision_two_policies(benchmark::State& state) {
    std::vector<filterd::testing::built_request> reqs;
    reqs.push_back(request("198.51.100." + std::to_string(state.thread_index())));
    run_allow(state, two_policies(), reqs);
}
BENCHMARK(BM_decision_two_policies)->Threads(1)->Threads(2)->UseRealTime();

// The deny path: an exhausted bucket, problem+json body and six headers built per request.
static void BM_decision_deny(benchmark::State& state) {
    static auto f = make(R"({"policies":{"tight":{"quota":1,"window_ms":60000,"burst":1,"key":"client_ip"}}})",
                         R"({"policies":["tight"]})");
    auto req = request("203.0.113.99");
    context ctx;
    ctx.mono_ns = t0;
    f->on_request(req.view(), ctx);  // use the single token
    for (auto _ : state) {
        ctx.reset();
        ctx.mono_ns = t0;
        outcome o = f->on_request(req.view(), ctx);
        benchmark::DoNotOptimize(o);
    }
}
BENCHMARK(BM_decision_deny);

BENCHMARK_MAIN();
