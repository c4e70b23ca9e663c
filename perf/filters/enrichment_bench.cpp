// enrichment and the log scrubber, with floors in the same binary.
//
//   ninja -C build-enr enrichment_bench
//   build-enr/enrichment_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Target: enrichment <= 2 us per request. The floor BM_floor_header_kv builds the same header_kv
// strings into the same context without any logic: the difference is the cost of the filter's decisions
// (header scan, UUIDv7, traceparent, timestamp, ip check). "allocs" is heap allocations per iteration.
#include "core/scrub.hpp"
#include "filters/common/filter.hpp"
#include "filters/enrichment/config.hpp"
#include "filters/enrichment/filter.hpp"
#include "perf/support/alloc_counter.hpp"
#include "protocol/framing.hpp"
#include "tests/support/request.hpp"

#include <benchmark/benchmark.h>

#include <stdexcept>

namespace {

using namespace filterd;

constexpr std::int64_t wall_ns = 1795694400123000000;  // 2026-11-26T12:00:00.123Z

/// A realistic signed payment request as the gateway forwards it: 17 headers, one forged internal header.
proto::request_spec realistic_request() {
    proto::request_spec r;
    r.route = "pay";
    r.filters = {"enrichment"};
    r.method = "POST";
    r.path = "/v1/merchants/m_42/payments";
    r.client_ip = "203.0.113.7";
    r.headers = {
        {"Host", {"api.pay.example"}},
        {"User-Agent", {"merchant-sdk/3.2.1 (linux; go1.22)"}},
        {"Accept", {"application/json"}},
        {"Accept-Encoding", {"gzip"}},
        {"Content-Type", {"application/json"}},
        {"Content-Length", {"1024"}},
        {"X-Merchant-Id", {"m_42"}},
        {"X-Key-Id", {"k_2026_11"}},
        {"X-Timestamp", {"1795694400"}},
        {"X-Nonce", {"q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6"}},
        {"X-Signature", {"v1=Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmE="}},
        {"X-Request-Id", {"merchant-req-000123"}},
        {"traceparent", {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
        {"tracestate", {"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"}},
        {"X-Forwarded-For", {"203.0.113.7"}},
        {"X-Forwarded-Proto", {"https"}},
        {"X-Gw-Merchant-Id", {"forged"}},
    };
    return r;
}

std::shared_ptr<const filter> make_filter() {
    const filter_factory* f = registry::builtin().find("enrichment");
    if (f == nullptr)
        throw std::runtime_error("enrichment not registered");
    return f->create(nullptr, "filters.enrichment", nullptr)->for_route("bench", nullptr, "routes.bench.enrichment");
}

void authenticate(context& ctx) {
    ctx.wall_ns = wall_ns;
    ctx.authenticated = true;
    ctx.merchant_id = "m_42";
    ctx.key_id = "k_2026_11";
}

/// Runs `one()` once per iteration and reports "allocs", heap allocations per iteration.
template <class F>
void count_allocs(benchmark::State& state, F&& one) {
    const std::uint64_t a0 = alloc_counter::now();
    for (auto _ : state)
        one();
    state.counters["allocs"] = benchmark::Counter(static_cast<double>(alloc_counter::now() - a0),
                                                  benchmark::Counter::kAvgIterations);
}

/// One authenticated request through the filter on `ctx`.
void filter_once(const filter& f, const request_view& view, context& ctx) {
    authenticate(ctx);
    outcome o = f.on_request(view, ctx);
    benchmark::DoNotOptimize(o);
    benchmark::DoNotOptimize(ctx.set_headers.data());
}

/// The filter on a context reused across requests (reset() keeps vector capacity), as a daemon worker would.
void BM_enrichment(benchmark::State& state) {
    const auto req = filterd::testing::make_request(realistic_request());
    const request_view view = req.view();
    auto f = make_filter();
    context ctx;
    count_allocs(state, [&] {
        ctx.reset();
        filter_once(*f, view, ctx);
    });
}
BENCHMARK(BM_enrichment);

/// The same with a fresh context per request (vector growth included).
void BM_enrichment_fresh_context(benchmark::State& state) {
    const auto req = filterd::testing::make_request(realistic_request());
    const request_view view = req.view();
    auto f = make_filter();
    count_allocs(state, [&] {
        context ctx;
        filter_once(*f, view, ctx);
    });
}
BENCHMARK(BM_enrichment_fresh_context);

/// Floor: the same 8 header_kv sets and 3 removes, with values of the same sizes, and no logic.
void BM_floor_header_kv(benchmark::State& state) {
    const auto req = filterd::testing::make_request(realistic_request());
    const request_view view = req.view();
    context ctx;
    count_allocs(state, [&] {
        ctx.reset();
        authenticate(ctx);
        ctx.remove_headers.emplace_back("X-Request-Id");
        ctx.remove_headers.emplace_back("traceparent");
        ctx.remove_headers.emplace_back("X-Gw-Merchant-Id");
        auto& s = ctx.set_headers;
        s.reserve(8);
        s.push_back({"X-Request-Id", "0190a3b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b"});
        s.push_back({"X-Gw-Request-Id", "0190a3b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b"});
        s.push_back({"X-Client-Request-Id", "merchant-req-000123"});
        s.push_back({"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"});
        s.push_back({"X-Gw-Received-At", "2026-11-26T12:00:00.123Z"});
        s.push_back({"X-Gw-Client-Ip", std::string(view.client_ip())});
        s.push_back({"X-Gw-Merchant-Id", ctx.merchant_id});
        s.push_back({"X-Gw-Key-Id", ctx.key_id});
        benchmark::DoNotOptimize(ctx.set_headers.data());
    });
}
BENCHMARK(BM_floor_header_kv);

// ---- the scrubber on log lines -------------------------------------------------------------------------------

void run_scrub(benchmark::State& state, const std::string& line) {
    for (auto _ : state) {
        std::string out = scrub_text(line);
        benchmark::DoNotOptimize(out.data());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(line.size()));
}

/// A typical line: route, ids, durations, an ip; nothing to mask.
void BM_scrub_clean_line(benchmark::State& state) {
    run_scrub(state, "request denied route=pay filter=merchant-auth reason=bad_signature merchant=m_42 key=k_2026_11 "
                     "request_id=0190a3b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b client_ip=203.0.113.7 elapsed_ns=48213 "
                     "status=401 attempt=3");
}
BENCHMARK(BM_scrub_clean_line);

/// A line with one of each thing to mask.
void BM_scrub_sensitive_line(benchmark::State& state) {
    run_scrub(state, "payout failed pan=4111 1111 1111 1111 iban=PK36SCBL0000001123456702 msisdn=+92 300 1234567 "
                     "cnic=35201-1234567-1 route=payout elapsed_ns=48213 status=502");
}
BENCHMARK(BM_scrub_sensitive_line);

/// Floor: copying the same clean line.
void BM_floor_copy_line(benchmark::State& state) {
    const std::string line =
        "request denied route=pay filter=merchant-auth reason=bad_signature merchant=m_42 key=k_2026_11 "
        "request_id=0190a3b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b client_ip=203.0.113.7 elapsed_ns=48213 status=401 attempt=3";
    for (auto _ : state) {
        std::string out(line);
        benchmark::DoNotOptimize(out.data());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(line.size()));
}
BENCHMARK(BM_floor_copy_line);

/// Worst shapes at growing sizes: bytes/s must stay flat (linear time).
void BM_scrub_digit_soup(benchmark::State& state) {
    std::string line;
    const std::string unit = "1 2-3 4 5-6 7 8 9 0 ";
    while (line.size() < static_cast<std::size_t>(state.range(0)))
        line += unit;
    run_scrub(state, line);
}
BENCHMARK(BM_scrub_digit_soup)->ArgName("bytes")->Arg(1 << 10)->Arg(1 << 14)->Arg(1 << 18);

void BM_scrub_iban_soup(benchmark::State& state) {
    std::string line;
    const std::string unit = "GB82 WEST 1234 5698 7654 33 AB12CDEF ";
    while (line.size() < static_cast<std::size_t>(state.range(0)))
        line += unit;
    run_scrub(state, line);
}
BENCHMARK(BM_scrub_iban_soup)->ArgName("bytes")->Arg(1 << 10)->Arg(1 << 14)->Arg(1 << 18);

}  // namespace

BENCHMARK_MAIN();
