// merchant-auth cost (target: hmac-sha256 with a 1 KiB body <= 5 µs; rsa-sha256 2048 and
// ed25519 verification reported).
//
// Run: build-auth/merchant_auth_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// The filter is built through its registered factory, requests are real verified FlatBuffers
// FilterRequests signed in setup (distinct nonces, so every timed request is a fresh allow), and the
// clock is injected (ctx.wall_ns). Floors in the same binary: the bare OpenSSL work the filter cannot
// avoid (SHA-256 of the body + HMAC of the canonical string; a raw RSA / Ed25519 verify). Counters:
// cxx_allocs = operator new calls per request (our code), ssl_allocs = OpenSSL allocations per request
// (OpenSSL 3.0 re-creates digest contexts inside EVP_DigestInit_ex2 / EVP_MAC_init; not ours to avoid
// without the deprecated SHA256_* / HMAC_* APIs).
#include "core/log.hpp"
#include "filters/common/filter.hpp"
#include "filters/merchant_auth/canonical.hpp"
#include "filters/merchant_auth/crypto.hpp"
#include "filters/merchant_auth/nonce_journal.hpp"
#include "filters/merchant_auth/nonce_store.hpp"
#include "perf/support/alloc_counter.hpp"
#include "tests/support/request.hpp"

#include <benchmark/benchmark.h>
#include <boost/json/parse.hpp>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <new>
#include <string>
#include <vector>

// ---- allocation counting: C++ operator new and OpenSSL's allocator (CRYPTO_set_mem_functions) --------
namespace {
std::atomic<std::uint64_t> g_ssl_allocs{0};  // OpenSSL's allocator (C++ operator new: alloc_counter)
void* count_malloc(std::size_t n, const char*, int) {
    g_ssl_allocs.fetch_add(1, std::memory_order_relaxed);
    return std::malloc(n);
}
void* count_realloc(void* p, std::size_t n, const char*, int) {
    g_ssl_allocs.fetch_add(1, std::memory_order_relaxed);
    return std::realloc(p, n);
}
void count_free(void* p, const char*, int) { std::free(p); }
}  // namespace

using namespace filterd;
using namespace filterd::merchant_auth;

namespace {

constexpr std::int64_t ts = 1'764'158'400;
const std::string hmac_secret = "bench-only-hmac-secret-0123456789abcdef";

struct keys_t {
    EVP_PKEY* rsa = nullptr;
    EVP_PKEY* ed = nullptr;
    std::string rsa_pub_file, ed_pub_file;
};

std::string write_pub(EVP_PKEY* k, const char* stem) {
    std::string path = "/tmp/merchant_auth_bench_" + std::string(stem) + "_" + std::to_string(::getpid()) + ".pem";
    FILE* f = std::fopen(path.c_str(), "w");
    PEM_write_PUBKEY(f, k);
    std::fclose(f);
    return path;
}

const keys_t& keys() {
    static keys_t k = [] {
        keys_t out;
        out.rsa = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{2048});
        out.ed = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
        out.rsa_pub_file = write_pub(out.rsa, "rsa");
        out.ed_pub_file = write_pub(out.ed, "ed");
        ::setenv("FILTERD_BENCH_HMAC_SECRET", hmac_secret.c_str(), 1);
        int devnull = ::open("/dev/null", O_WRONLY);
        log::set_fd(devnull);  // deny benchmarks log; keep the terminal clean, keep the cost
        return out;
    }();
    return k;
}

std::string config_json(std::size_t nonce_capacity) {
    const auto& k = keys();
    // One merchant sends every request: it may hold the whole store (the default share, 25%, would
    // refuse it 429 past a quarter of the pool).
    return R"({"nonce_capacity":)" + std::to_string(nonce_capacity) +
           R"(,"nonce_merchant_share_percent":100,"merchants":{"acme":{"status":"active","keys":[
        {"id":"h1","alg":"hmac-sha256","secret":{"env":"FILTERD_BENCH_HMAC_SECRET"},"state":"active",
         "routes":["pay"],"cidrs":["10.0.0.0/8"]},
        {"id":"r1","alg":"rsa-sha256","public_key":{"file":")" +
           k.rsa_pub_file + R"("},"state":"active"},
        {"id":"e1","alg":"ed25519","public_key":{"file":")" +
           k.ed_pub_file + R"("},"state":"active"}]}}})";
}

std::shared_ptr<const filter> make_filter(std::size_t nonce_capacity) {
    boost::json::value g = boost::json::parse(config_json(nonce_capacity));
    auto inst = registry::builtin().find("merchant-auth")->create(&g, "filters.merchant-auth", nullptr);
    return inst->for_route("pay", nullptr, "routes.pay.merchant-auth");
}

std::string b64(const unsigned char* p, std::size_t n) {
    std::string out(4 * ((n + 2) / 3), '\0');
    EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), p, static_cast<int>(n));
    return out;
}

// Bench-side signer (setup only; correctness of the wire format is the tests' job, against vectors).
std::string sign(const std::string& key_id, const std::string& canonical) {
    std::vector<unsigned char> sig(512);
    std::size_t len = sig.size();
    if (key_id == "h1") {
        EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, hmac_secret.data(), hmac_secret.size(),
                  reinterpret_cast<const unsigned char*>(canonical.data()), canonical.size(), sig.data(), sig.size(),
                  &len);
    } else {
        EVP_PKEY* k = key_id == "r1" ? keys().rsa : keys().ed;
        EVP_MD_CTX* c = EVP_MD_CTX_new();
        EVP_DigestSignInit_ex(c, nullptr, key_id == "r1" ? "SHA256" : nullptr, nullptr, nullptr, k, nullptr);
        EVP_DigestSign(c, sig.data(), &len, reinterpret_cast<const unsigned char*>(canonical.data()), canonical.size());
        EVP_MD_CTX_free(c);
    }
    return "v1=" + b64(sig.data(), len);
}

proto::request_spec signed_spec(const std::string& key_id, std::size_t body_bytes, int n) {
    proto::request_spec s;
    s.route = "pay";
    s.filters = {"merchant-auth"};
    s.method = "POST";
    s.path = "/v1/payments";
    s.query = {{"currency", "PKR"}, {"order", "A-1001"}, {"note", "first order"}};
    s.client_ip = "10.1.2.3";
    s.body.assign(body_bytes, 'x');
    char nonce[48];
    std::snprintf(nonce, sizeof(nonce), "bench-nonce-%012d", n);
    char hex[64];
    sha256_hex({reinterpret_cast<const std::uint8_t*>(s.body.data()), s.body.size()}, hex);
    canonicaliser c;
    c.reset();
    for (const auto& [qn, qv] : s.query)
        c.add_query(qn, qv);
    std::string canonical;
    c.build({s.method, s.path, "acme", key_id, std::to_string(ts), nonce, std::string_view(hex, 64)}, canonical);
    s.headers = {
        {"Content-Type", {"application/json"}}, {"X-Merchant-Id", {"acme"}}, {"X-Key-Id", {key_id}},
        {"X-Timestamp", {std::to_string(ts)}},  {"X-Nonce", {nonce}},        {"X-Signature", {sign(key_id, canonical)}},
        {"User-Agent", {"bench/1.0"}}};
    return s;
}

// Full filter, fresh nonce per request: a pool of signed requests; when it runs out, a fresh filter
// (fresh nonce store) is built with the timer paused, so every timed request is a first-time allow.
void run_allow(benchmark::State& state, const std::string& key_id, std::size_t body_bytes, int pool_size) {
    std::vector<filterd::testing::built_request> pool;
    pool.reserve(static_cast<std::size_t>(pool_size));
    for (int i = 0; i < pool_size; ++i)
        pool.push_back(filterd::testing::make_request(signed_spec(key_id, body_bytes, i)));
    auto f = make_filter(static_cast<std::size_t>(pool_size) * 2);
    context ctx;
    std::size_t next = 0;
    std::uint64_t allocs = 0, ssl_allocs = 0, denied = 0;
    std::string_view deny_reason;
    for (auto _ : state) {
        if (next == pool.size()) {
            state.PauseTiming();
            f = make_filter(static_cast<std::size_t>(pool_size) * 2);
            next = 0;
            state.ResumeTiming();
        }
        ctx.reset();
        ctx.wall_ns = ts * 1'000'000'000;
        auto view = pool[next++].view();
        std::uint64_t a0 = alloc_counter::now();
        std::uint64_t s0 = g_ssl_allocs.load(std::memory_order_relaxed);
        outcome o = f->on_request(view, ctx);
        allocs += alloc_counter::now() - a0;
        ssl_allocs += g_ssl_allocs.load(std::memory_order_relaxed) - s0;
        if (o != outcome::allow && denied++ == 0)
            deny_reason = ctx.reason;
        benchmark::DoNotOptimize(o);
    }
    if (denied != 0) {
        const std::string msg = "a request was denied (" + std::string(deny_reason) +
                                "): the benchmark is not measuring the allow path";
        state.SkipWithError(msg.c_str());
    }
    state.counters["cxx_allocs"] = benchmark::Counter(static_cast<double>(allocs) / state.iterations());
    state.counters["ssl_allocs"] = benchmark::Counter(static_cast<double>(ssl_allocs) / state.iterations());
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * body_bytes));
}

void BM_filter_hmac_sha256(benchmark::State& state) {
    run_allow(state, "h1", static_cast<std::size_t>(state.range(0)), state.range(0) > 4096 ? 1024 : 8192);
}
BENCHMARK(BM_filter_hmac_sha256)->ArgName("body_bytes")->Arg(0)->Arg(1024)->Arg(16384);

void BM_filter_rsa_sha256_2048(benchmark::State& state) { run_allow(state, "r1", 1024, 2048); }
BENCHMARK(BM_filter_rsa_sha256_2048);

void BM_filter_ed25519(benchmark::State& state) { run_allow(state, "e1", 1024, 2048); }
BENCHMARK(BM_filter_ed25519);

// Deny paths need no fresh nonces: a bad signature and an unknown key (which does the same work).
void run_deny(benchmark::State& state, proto::request_spec spec, std::string_view want) {
    auto req = filterd::testing::make_request(spec);
    auto f = make_filter(1024);
    context ctx;
    for (auto _ : state) {
        ctx.reset();
        ctx.wall_ns = ts * 1'000'000'000;
        benchmark::DoNotOptimize(f->on_request(req.view(), ctx));
    }
    if (ctx.reason != want)
        state.SkipWithError("unexpected deny reason");
}

void BM_deny_bad_signature_hmac(benchmark::State& state) {
    auto s = signed_spec("h1", 1024, 1);
    s.body[0] = 'y';
    run_deny(state, s, "bad_signature");
}
BENCHMARK(BM_deny_bad_signature_hmac);

void BM_deny_unknown_key_hmac(benchmark::State& state) {
    auto s = signed_spec("h1", 1024, 1);
    for (auto& h : s.headers)
        if (h.name == "X-Key-Id")
            h.values = {"h9"};
    run_deny(state, s, "unknown_key");
}
BENCHMARK(BM_deny_unknown_key_hmac);

// ---- floors and parts -----------------------------------------------------------------------------
void BM_floor_sha256_plus_hmac(benchmark::State& state) {
    // What any implementation must pay: hash the body, HMAC ~200 bytes, with pre-fetched algorithms.
    std::string body(static_cast<std::size_t>(state.range(0)), 'x');
    std::string msg(200, 'c');
    EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    EVP_MD_CTX* dctx = EVP_MD_CTX_new();
    EVP_MAC_CTX* mctx = EVP_MAC_CTX_new(mac);
    char name[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, name, 0),
                           OSSL_PARAM_construct_end()};
    EVP_MAC_CTX_set_params(mctx, params);
    unsigned char out[32];
    unsigned int dlen = 0;
    std::size_t mlen = 0;
    for (auto _ : state) {
        EVP_DigestInit_ex2(dctx, md, nullptr);
        EVP_DigestUpdate(dctx, body.data(), body.size());
        EVP_DigestFinal_ex(dctx, out, &dlen);
        EVP_MAC_init(mctx, reinterpret_cast<const unsigned char*>(hmac_secret.data()), hmac_secret.size(), nullptr);
        EVP_MAC_update(mctx, reinterpret_cast<const unsigned char*>(msg.data()), msg.size());
        EVP_MAC_final(mctx, out, &mlen, sizeof(out));
        benchmark::DoNotOptimize(out);
    }
    EVP_MAC_CTX_free(mctx);
    EVP_MD_CTX_free(dctx);
    EVP_MAC_free(mac);
    EVP_MD_free(md);
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_floor_sha256_plus_hmac)->ArgName("body_bytes")->Arg(0)->Arg(1024)->Arg(16384);

void verify_floor(benchmark::State& state, EVP_PKEY* k, const char* md) {
    std::string msg(200, 'c');
    std::vector<unsigned char> sig(512);
    std::size_t len = sig.size();
    EVP_MD_CTX* c = EVP_MD_CTX_new();
    EVP_DigestSignInit_ex(c, nullptr, md, nullptr, nullptr, k, nullptr);
    EVP_DigestSign(c, sig.data(), &len, reinterpret_cast<const unsigned char*>(msg.data()), msg.size());
    EVP_MD_CTX_free(c);
    verify_key vk = verify_key::public_key(md != nullptr ? algorithm::rsa_sha256 : algorithm::ed25519,
                                           std::shared_ptr<EVP_PKEY>(EVP_PKEY_dup(k), EVP_PKEY_free));
    bool ok = true;
    for (auto _ : state)
        ok = vk.verify(msg, {sig.data(), len}) && ok;
    if (!ok)
        state.SkipWithError("verification failed");
}
void BM_verify_rsa_sha256_2048(benchmark::State& state) { verify_floor(state, keys().rsa, "SHA256"); }
BENCHMARK(BM_verify_rsa_sha256_2048);
void BM_verify_ed25519(benchmark::State& state) { verify_floor(state, keys().ed, nullptr); }
BENCHMARK(BM_verify_ed25519);

void BM_canonical_build(benchmark::State& state) {
    auto s = signed_spec("h1", 0, 1);
    canonicaliser c;
    std::string out;
    for (auto _ : state) {
        c.reset();
        for (const auto& [n, v] : s.query)
            c.add_query(n, v);
        c.build({s.method, s.path, "acme", "h1", "1764158400", "bench-nonce-000000000001",
                 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
                out);
        benchmark::DoNotOptimize(out.data());
    }
}
BENCHMARK(BM_canonical_build);

void BM_nonce_store_record(benchmark::State& state) {
    std::size_t cap = 1 << 20;
    auto store = std::make_unique<nonce_store>(cap);
    std::vector<std::string> nonces;
    for (int i = 0; i < 100'000; ++i)
        nonces.push_back("bench-nonce-" + std::to_string(i) + "-xxxxxxxx");
    std::size_t i = 0;
    for (auto _ : state) {
        if (i == nonces.size()) {
            state.PauseTiming();
            store = std::make_unique<nonce_store>(cap);
            i = 0;
            state.ResumeTiming();
        }
        benchmark::DoNotOptimize(store->check_and_record("acme", nonces[i++], ts, ts * 1'000'000'000, 300'000'000'000));
    }
}
BENCHMARK(BM_nonce_store_record)->ThreadRange(1, 1);

// Steady state, where the mean hides the cost: 1000 inserts per simulated second (a shared clock,
// nonces never repeat) for 2 × skew of 300 s, so that entries expire as fast as they arrive; each
// insert of the second half is timed alone. Counters: its P50, P99, P99.9 and largest time in µs, and
// stored_per_live, the largest ratio of stored entries (expired but not yet swept included) to live ones.
void BM_nonce_store_steady_state(benchmark::State& state) {
    const auto cap = static_cast<std::size_t>(state.range(0));
    constexpr std::int64_t rate = 1000, skew_s = 300, seconds = 2 * skew_s, live = rate * skew_s;
    std::vector<double> us;
    double stored_per_live = 0;
    for (auto _ : state) {
        nonce_store store(cap, 0, true);
        us.clear();
        std::string n;
        for (std::int64_t k = 0; k < rate * seconds; ++k) {
            const std::int64_t now_ns = ts * 1'000'000'000 + k * (1'000'000'000 / rate);
            n = "steady-nonce-" + std::to_string(k);
            const auto t0 = std::chrono::steady_clock::now();
            auto r = store.check_and_record("acme", n, now_ns / 1'000'000'000, now_ns, skew_s * 1'000'000'000);
            const auto t1 = std::chrono::steady_clock::now();
            if (r != nonce_store::result::recorded) {
                state.SkipWithError("an insert was refused");
                return;
            }
            if (k >= rate * (skew_s + 10)) {
                us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
                if (k % rate == 0)
                    stored_per_live = std::max(stored_per_live, double(store.size()) / double(live));
            }
        }
    }
    std::sort(us.begin(), us.end());
    auto at = [&](double q) { return us[static_cast<std::size_t>(q * double(us.size() - 1))]; };
    state.counters["p50_us"] = at(0.5);
    state.counters["p99_us"] = at(0.99);
    state.counters["p999_us"] = at(0.999);
    state.counters["max_us"] = us.back();
    state.counters["stored_per_live"] = stored_per_live;
}
BENCHMARK(BM_nonce_store_steady_state)
    ->ArgName("capacity")
    ->Arg(1'000'000)
    ->Arg(4'000'000)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

// The same insert with the nonce journal attached: one write(2) of a ~60-byte record per recorded nonce
// (fsync off, the default; Arg(1) = fsync on), into a fresh directory under /tmp.
void BM_nonce_store_record_journalled(benchmark::State& state) {
    char tmpl[] = "/tmp/filterd-bench-journal-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
        state.SkipWithError("mkdtemp failed");
        return;
    }
    std::string dir = tmpl;
    std::size_t cap = 1 << 20;
    std::vector<std::string> nonces;
    for (int i = 0; i < 100'000; ++i)
        nonces.push_back("bench-nonce-" + std::to_string(i) + "-xxxxxxxx");
    auto fresh = [&] {
        auto st = std::make_unique<nonce_store>(cap);
        std::filesystem::remove_all(dir);
        auto j = std::make_shared<filterd::merchant_auth::nonce_journal>(
            filterd::merchant_auth::journal_options{dir, 4ull << 30, state.range(0) != 0});
        j->replay([](auto, auto, auto) {}, ts);
        st->attach_journal(std::move(j));
        return st;
    };
    auto store = fresh();
    std::size_t i = 0;
    for (auto _ : state) {
        if (i == nonces.size()) {
            state.PauseTiming();
            store = fresh();
            i = 0;
            state.ResumeTiming();
        }
        benchmark::DoNotOptimize(store->check_and_record("acme", nonces[i++], ts, ts * 1'000'000'000, 300'000'000'000));
    }
    store.reset();
    std::filesystem::remove_all(dir);
}
BENCHMARK(BM_nonce_store_record_journalled)->ArgName("fsync")->Arg(0)->Arg(1);

}  // namespace

int main(int argc, char** argv) {
    // Must run before OpenSSL allocates anything, so that OpenSSL's allocations are counted too.
    CRYPTO_set_mem_functions(count_malloc, count_realloc, count_free);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
