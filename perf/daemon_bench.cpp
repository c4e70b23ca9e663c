// Daemon benchmarks, each against a floor measured in the same binary:
//   BM_floor_socketpair      raw socketpair ping-pong, same byte sizes as a request/response pair
//   BM_decode_verify         frame split + FlatBuffers Verifier + field access
//   BM_chain_dispatch        run_chain over 0 and 3 trivial filters
//   BM_roundtrip_unix        one request, one answer, over a real Unix socket to the in-process server
//   BM_pipelined             one connection, many requests in flight: throughput and server CPU/request
// Latency benchmarks report p50/p99 counters (µs) from per-iteration samples; throughput reports items/s.
#include "daemon/config.hpp"
#include "daemon/server.hpp"
#include "filters/common/chain.hpp"
#include "protocol/framing.hpp"
#include "tools/frame_io.hpp"

#include <benchmark/benchmark.h>
#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <time.h>
#include <unistd.h>

using namespace filterd;

namespace {

proto::request_spec sample_request(std::size_t body, std::vector<std::string> filters = {}) {
    proto::request_spec r;
    r.id = 1;
    r.route = "bench";
    r.filters = std::move(filters);
    r.method = "POST";
    r.path = "/v1/merchants/m-1/payments";
    r.query = {{"currency", "PKR"}, {"amount", "1000"}};
    r.headers = {{"Content-Type", {"application/json"}},
                 {"X-Merchant-Id", {"m-1"}},
                 {"X-Key-Id", {"k1"}},
                 {"X-Timestamp", {"1764158400"}},
                 {"X-Nonce", {"bm9uY2Utbm9uY2Utbm9uY2U"}},
                 {"X-Signature", {"v1=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}},
                 {"User-Agent", {"bench/1.0"}}};
    r.client_ip = "10.0.0.1";
    r.body.assign(body, 'x');
    return r;
}

void set_percentiles(benchmark::State& state, std::vector<double>& us) {
    if (us.empty())
        return;
    std::sort(us.begin(), us.end());
    state.counters["p50_us"] = us[us.size() / 2];
    state.counters["p99_us"] = us[std::min(us.size() - 1, us.size() * 99 / 100)];
}

using fd_io::recv_all;
using fd_io::send_all;

// ---- floor --------------------------------------------------------------------------------------

void BM_floor_socketpair(benchmark::State& state) {
    const std::size_t req_size = static_cast<std::size_t>(state.range(0));
    const std::size_t resp_size = static_cast<std::size_t>(state.range(1));
    int sv[2];
    ::socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    std::thread echo([&] {
        std::vector<std::uint8_t> in(req_size), out(resp_size, 1);
        while (recv_all(sv[1], in.data(), in.size()) && send_all(sv[1], out.data(), out.size())) {
        }
    });
    std::vector<std::uint8_t> out(req_size, 2), in(resp_size);
    std::vector<double> us;
    us.reserve(1 << 16);
    for (auto _ : state) {
        auto t0 = std::chrono::steady_clock::now();
        send_all(sv[0], out.data(), out.size());
        recv_all(sv[0], in.data(), in.size());
        us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
    ::shutdown(sv[0], SHUT_RDWR);
    echo.join();
    ::close(sv[0]);
    ::close(sv[1]);
    set_percentiles(state, us);
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * (req_size + resp_size)));
}

// ---- decode + verify ---------------------------------------------------------------------------

void BM_decode_verify(benchmark::State& state) {
    auto frame = proto::encode_request(sample_request(static_cast<std::size_t>(state.range(0))));
    proto::frame_splitter s(16u << 20);
    for (auto _ : state) {
        auto buf = s.prepare(frame.size());
        std::memcpy(buf.data(), frame.data(), frame.size());
        s.commit(frame.size());
        std::span<const std::uint8_t> body;
        proto::frame_status st{};
        s.next(body, st);
        const wire::Frame* f = proto::verify_frame(body, st);
        request_view v(*f->body_as_FilterRequest());
        benchmark::DoNotOptimize(v.header("x-merchant-id").first.size() + v.body().size());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * frame.size()));
    state.counters["frame_bytes"] = static_cast<double>(frame.size());
}

// ---- chain dispatch ----------------------------------------------------------------------------

struct nop_filter : filter {
    outcome on_request(const request_view&, context&) const noexcept override { return outcome::allow; }
};
struct nop_instance : filter_instance {
    std::shared_ptr<const filter> for_route(std::string_view, const boost::json::value*,
                                            const std::string&) const override {
        return std::make_shared<nop_filter>();
    }
};
struct nop_factory : filter_factory {
    std::string n;
    explicit nop_factory(std::string name) : n(std::move(name)) {}
    std::string_view name() const override { return n; }
    std::shared_ptr<filter_instance> create(const boost::json::value*, const std::string&,
                                            const std::shared_ptr<filter_instance>&) const override {
        return std::make_shared<nop_instance>();
    }
};

const registry& bench_registry() {
    static const registry r = [] {
        registry reg;
        reg.add(std::make_shared<nop_factory>("a"));
        reg.add(std::make_shared<nop_factory>("b"));
        reg.add(std::make_shared<nop_factory>("c"));
        return reg;
    }();
    return r;
}

void BM_chain_dispatch(benchmark::State& state) {
    std::vector<std::string> names;
    for (int i = 0; i < state.range(0); ++i)
        names.push_back(std::string(1, static_cast<char>('a' + i)));
    auto routes = parse_json_text(R"({"bench": {"a": {}, "b": {}, "c": {}}})", "bench");
    auto set = filter_set::build(nullptr, &routes, bench_registry(), nullptr);
    auto frame = proto::encode_request(sample_request(1024, names));
    proto::frame_status st{};
    const wire::Frame* f = proto::verify_frame(std::span<const std::uint8_t>(frame).subspan(4), st);
    request_view v(*f->body_as_FilterRequest());
    context ctx;
    chain_result res;
    for (auto _ : state) {
        ctx.reset();
        run_chain(*set, v, ctx, res);
        benchmark::DoNotOptimize(res.allowed);
    }
}

// ---- in-process server -------------------------------------------------------------------------

/// Server on its own io threads, whose CPU time can be read (pthread CPU clocks).
class bench_server {
public:
    explicit bench_server(unsigned threads) : ioc_(static_cast<int>(threads)) {
        path_ = "/tmp/filterd-bench-" + std::to_string(::getpid()) + ".sock";
        std::string json = R"({"listen": {"socket": ")" + path_ +
                           R"("}, "admin": {"enabled": false}, "limits": {"max_in_flight_per_connection": 4096},
                              "routes": {"bench": {"a": {}, "b": {}, "c": {}}}})";
        srv_ = std::make_unique<server>(ioc_, load_config_text(json, "", bench_registry(), nullptr));
        srv_->start();
        std::atomic<unsigned> started{0};
        clocks_.resize(threads);
        for (unsigned i = 0; i < threads; ++i)
            threads_.emplace_back([this, i, &started] {
                pthread_getcpuclockid(pthread_self(), &clocks_[i]);
                ++started;
                ioc_.run();
            });
        while (started < threads)
            std::this_thread::yield();
    }
    ~bench_server() {
        srv_->close_all();
        ioc_.stop();
        for (auto& t : threads_)
            t.join();
    }
    double cpu_seconds() const {
        double s = 0;
        for (auto c : clocks_) {
            timespec ts{};
            clock_gettime(c, &ts);
            s += static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
        }
        return s;
    }
    /// Connects and completes the handshake; returns the fd.
    int connect_client() const {
        int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
            return -1;
        auto hello = proto::encode_hello(1, 1, 0, 0, "bench");
        send_all(fd, hello.data(), hello.size());
        std::vector<std::uint8_t> buf;
        read_frame(fd, buf);
        return fd;
    }
    static bool read_frame(int fd, std::vector<std::uint8_t>& buf) {
        return tools::read_frame(fd, buf, proto::max_frame_limit);
    }

private:
    std::string path_;
    boost::asio::io_context ioc_;
    std::unique_ptr<server> srv_;
    std::vector<std::thread> threads_;
    std::vector<clockid_t> clocks_;
};

void BM_roundtrip_unix(benchmark::State& state) {
    bench_server srv(static_cast<unsigned>(state.range(1)));
    int fd = srv.connect_client();
    std::vector<std::string> names;
    for (int i = 0; i < state.range(0); ++i)
        names.push_back(std::string(1, static_cast<char>('a' + i)));
    auto spec = sample_request(1024, names);
    std::vector<std::uint8_t> resp;
    std::vector<double> us;
    us.reserve(1 << 16);
    std::uint64_t id = 1;
    std::size_t frame_size = 0, resp_size = 0;
    for (auto _ : state) {
        state.PauseTiming();
        spec.id = id++;
        auto frame = proto::encode_request(spec);
        frame_size = frame.size();
        state.ResumeTiming();
        auto t0 = std::chrono::steady_clock::now();
        send_all(fd, frame.data(), frame.size());
        bench_server::read_frame(fd, resp);
        us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
        resp_size = resp.size() + 4;
    }
    ::close(fd);
    set_percentiles(state, us);
    state.counters["req_bytes"] = static_cast<double>(frame_size);
    state.counters["resp_bytes"] = static_cast<double>(resp_size);
}

void BM_pipelined(benchmark::State& state) {
    const unsigned threads = static_cast<unsigned>(state.range(1));
    bench_server srv(threads);
    int fd = srv.connect_client();
    std::vector<std::string> names;
    for (int i = 0; i < state.range(0); ++i)
        names.push_back(std::string(1, static_cast<char>('a' + i)));
    // Pre-encode a batch of frames with distinct ids; keep 256 in flight.
    constexpr int window = 256;
    std::vector<std::vector<std::uint8_t>> frames;
    auto spec = sample_request(1024, names);
    for (int i = 0; i < window; ++i) {
        spec.id = static_cast<std::uint64_t>(i + 1);
        frames.push_back(proto::encode_request(spec));
    }
    std::int64_t total = 0;
    double cpu0 = srv.cpu_seconds();
    for (auto _ : state) {
        std::thread writer([&] {
            for (auto& f : frames)
                send_all(fd, f.data(), f.size());
        });
        std::vector<std::uint8_t> buf;
        for (int i = 0; i < window; ++i)
            bench_server::read_frame(fd, buf);
        writer.join();
        total += window;
    }
    double cpu = srv.cpu_seconds() - cpu0;
    ::close(fd);
    state.SetItemsProcessed(total);
    state.counters["server_cpu_us_per_req"] = cpu * 1e6 / static_cast<double>(std::max<std::int64_t>(total, 1));
}

}  // namespace

// Floor sizes = the request frame with a 1 KiB body and the allow answer (req_bytes/resp_bytes of
// BM_roundtrip_unix, with 0 and 3 filters).
BENCHMARK(BM_floor_socketpair)->Args({1756, 84})->Args({1796, 84})->UseRealTime();
BENCHMARK(BM_decode_verify)->Arg(0)->Arg(1024)->Arg(16384);
BENCHMARK(BM_chain_dispatch)->Arg(0)->Arg(3);
BENCHMARK(BM_roundtrip_unix)
    ->ArgNames({"filters", "io_threads"})
    ->Args({0, 1})
    ->Args({0, 2})
    ->Args({3, 2})
    ->UseRealTime();
BENCHMARK(BM_pipelined)->ArgNames({"filters", "io_threads"})->Args({0, 1})->Args({0, 2})->Args({3, 2})->UseRealTime();

BENCHMARK_MAIN();
