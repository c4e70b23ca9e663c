// filterd-loadgen: drives filterd alone over its Unix socket, and measures the raw socket floor.
//
//   filterd-loadgen floor [--req-bytes N] [--reply-bytes M] [--iterations K] [--rate R] [--pin same|cross|none]
//                         [--json FILE]
//       Two processes (fork) on one AF_UNIX stream socketpair play ping-pong with frames of the
//       bridge's sizes: the parent writes a request frame, the child reads it whole and answers
//       with a reply frame. Reports the round-trip percentiles. This is the floor the bridge's
//       round trip is compared with: no parsing, no filters, no scheduling beyond two blocking
//       processes. By default the sizes are those of a representative encoded request (the load
//       driver's 1 KiB signed POST, made with proto::encode_request) and an allow reply with the
//       enrichment headers.
//
//   filterd-loadgen run --socket PATH --route ROUTE --filters a,b,c [--duration S]
//       [--connections C] [--pipeline P] [--budget-us U] [--merchant ID --key-id ID --secret-env VAR]
//       [--filterd-pid PID] [--json FILE]
//       [--rate R]  paced mode: R requests/s over all connections, one in flight per connection,
//                   round trips recorded (filterd's round trip at a steady rate, as the bridge sees it)
//       Opens C connections, each with a HELLO, keeps P requests in flight on each (never more than
//       the daemon's max_in_flight) and counts verdicts for S seconds. Each request carries a fresh
//       SPV1 hmac-sha256 signature with a unique nonce. With --filterd-pid, filterd's CPU seconds
//       over the run give decisions per CPU-second: decisions per second per core.
//
//   filterd-loadgen stalls [--threshold-us U] [--seconds S] [--json FILE]
//       A stall probe beside a load test: a thread with filterd's CPU slice sleeps 1 ms at a time and
//       counts the wake-ups U µs (default 4500, the bridge's deadline) or more late, until SIGTERM.
//
// Output is one JSON object (the shapes of result.Floor and result.Loadgen in perf/load).

#include "daemon/config.hpp"
#include "daemon/sched.hpp"
#include "protocol/framing.hpp"
#include "tests/support/spv1.hpp"
#include "tools/frame_io.hpp"

#include <openssl/rand.h>

#include <fmt/format.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
namespace proto = filterd::proto;
namespace wire = filterd::wire;

// ---- small helpers ----------------------------------------------------------------------------

[[noreturn]] void die(const std::string& msg) {
    std::fprintf(stderr, "filterd-loadgen: %s\n", msg.c_str());
    std::exit(2);
}

using filterd::fd_io::send_all;
using filterd::tools::read_frame;

double cpu_seconds(int pid) {
    if (pid <= 0)
        return 0;
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    auto close = s.rfind(')');
    if (close == std::string::npos)
        return 0;
    std::istringstream in(s.substr(close + 1));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && in >> field; ++i) {
        if (i == 14)
            utime = std::stoull(field);
        if (i == 15)
            stime = std::stoull(field);
    }
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

struct percentiles {
    double p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0, mean = 0;
};

/// Nearest-rank percentiles, as perf/load/internal/stats computes them.
percentiles summarise(std::vector<double> v) {
    percentiles p;
    if (v.empty())
        return p;
    std::sort(v.begin(), v.end());
    auto at = [&](double q) {
        auto r = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size()) - 1e-9));
        return v[std::clamp<std::size_t>(r == 0 ? 0 : r - 1, 0, v.size() - 1)];
    };
    double sum = 0;
    for (double x : v)
        sum += x;
    p.p50 = at(0.50);
    p.p90 = at(0.90);
    p.p99 = at(0.99);
    p.p999 = at(0.999);
    p.max = v.back();
    p.mean = sum / static_cast<double>(v.size());
    return p;
}

std::string json(const percentiles& p) {
    return fmt::format(R"({{"p50":{:.3f},"p90":{:.3f},"p99":{:.3f},"p99_9":{:.3f},"max":{:.3f},"mean":{:.3f}}})", p.p50,
                       p.p90, p.p99, p.p999, p.max, p.mean);
}

void emit(const std::string& out, const std::string& path) {
    if (path.empty() || path == "-") {
        std::printf("%s\n", out.c_str());
        return;
    }
    std::ofstream f(path);
    f << out << '\n';
    if (!f)
        die("cannot write " + path);
    std::fprintf(stderr, "filterd-loadgen: wrote %s\n", path.c_str());
}

// ---- SPV1 signing (the project's C++ signer, tests/support/spv1.hpp) ------------------------------

/// base64url without padding (the nonce alphabet).
std::string b64url(const unsigned char* p, std::size_t n) {
    std::string s = filterd::testing::spv1_base64(p, n);
    for (char& c : s)
        c = c == '+' ? '-' : c == '/' ? '_' : c;
    while (!s.empty() && s.back() == '=')
        s.pop_back();
    return s;
}

struct signer {
    std::string merchant, key_id, secret;
    std::string body_hash;  // hex SHA-256 of the fixed body, hashed once
    unsigned char prefix[8]{};
    std::atomic<std::uint64_t> counter{0};

    /// Unique per process run: 8 random bytes then a counter, as 22 base64url characters.
    std::string nonce() {
        unsigned char raw[16];
        std::memcpy(raw, prefix, 8);
        std::uint64_t c = counter.fetch_add(1, std::memory_order_relaxed);
        std::memcpy(raw + 8, &c, 8);
        return b64url(raw, sizeof raw);
    }

    /// Sets the SPV1 headers of `r` (body: the fixed one) for a request made now.
    void sign(proto::request_spec& r) {
        filterd::testing::spv1_sign_hmac(r, merchant, key_id, secret, nonce(), std::time(nullptr), body_hash);
    }
};

/// The request the load driver sends through the gateway: a 1 KiB JSON POST with the headers a
/// Go HTTP client and vegeta add, plus the five SPV1 headers.
proto::request_spec representative_request(const std::string& route, std::vector<std::string> filters,
                                           std::size_t body_bytes) {
    proto::request_spec r;
    r.route = route;
    r.filters = std::move(filters);
    r.method = "POST";
    r.path = "/v1/payments";
    std::string head = R"({"amount":12500,"currency":"PKR","pad":")", tail = R"("})";
    r.body = head +
             std::string(body_bytes > head.size() + tail.size() ? body_bytes - head.size() - tail.size() : 0, 'x') +
             tail;
    r.headers = {{"Host", {"127.0.0.1:8080"}},
                 {"User-Agent", {"Go-http-client/1.1"}},
                 {"Content-Length", {std::to_string(r.body.size())}},
                 {"Content-Type", {"application/json"}},
                 {"Accept-Encoding", {"gzip"}},
                 {"X-Request-Id", {"Q2hhbmdlTWVQbGVhc2UwMA"}},
                 {"X-Vegeta-Attack", {"b"}},
                 {"X-Vegeta-Seq", {"123456"}}};
    return r;
}

/// An allow reply shaped like the full chain's: enrichment's headers set, spoofable ones removed,
/// three filter results.
std::vector<std::uint8_t> representative_reply(std::uint64_t id) {
    flatbuffers::FlatBufferBuilder b(1024);
    auto hdr = [&](const char* n, const char* v) {
        std::vector<flatbuffers::Offset<flatbuffers::String>> vs{b.CreateString(v)};
        return wire::CreateHeader(b, b.CreateString(n), b.CreateVector(vs));
    };
    std::vector<flatbuffers::Offset<wire::Header>> set{
        hdr("X-Request-Id", "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
        hdr("X-Client-Request-Id", "Q2hhbmdlTWVQbGVhc2UwMA"),
        hdr("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        hdr("X-Gw-Merchant-Id", "m-perf"),
        hdr("X-Gw-Key-Id", "k-perf"),
        hdr("X-Gw-Client-Ip", "127.0.0.1"),
        hdr("X-Gw-Request-Id", "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
        hdr("X-Gw-Received-At", "2026-11-26T12:00:00.000Z")};
    std::vector<flatbuffers::Offset<flatbuffers::String>> rm{
        b.CreateString("X-Original-URL"), b.CreateString("X-Rewrite-URL"), b.CreateString("X-HTTP-Method-Override")};
    std::vector<flatbuffers::Offset<wire::FilterResult>> fr{
        wire::CreateFilterResult(b, b.CreateString("merchant-auth"), wire::FilterOutcome::Allow, 2100),
        wire::CreateFilterResult(b, b.CreateString("rate-limit"), wire::FilterOutcome::Allow, 150),
        wire::CreateFilterResult(b, b.CreateString("enrichment"), wire::FilterOutcome::Allow, 900)};
    auto setv = b.CreateVector(set);
    auto rmv = b.CreateVector(rm);
    auto frv = b.CreateVector(fr);
    wire::FilterResponseBuilder rb(b);
    rb.add_id(id);
    rb.add_verdict(wire::Verdict::Allow);
    rb.add_set_headers(setv);
    rb.add_remove_headers(rmv);
    rb.add_filters(frv);
    auto resp = rb.Finish();
    b.Finish(wire::CreateFrame(b, wire::Body::FilterResponse, resp.Union()), wire::FrameIdentifier());
    return proto::to_frame(b);
}

// ---- floor --------------------------------------------------------------------------------------

/// Pins the calling process to one CPU (no-op for cpu < 0).
void pin_to(int cpu) {
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (::sched_setaffinity(0, sizeof set, &set) != 0)
        die(std::string("sched_setaffinity: ") + std::strerror(errno));
}

int run_floor(std::size_t req_bytes, std::size_t reply_bytes, int iterations, double rate, const std::string& pin,
              const std::string& json_path) {
    // Where the two processes run changes a round trip more than anything else on a VM: on one CPU
    // the wake-up is a context switch; across CPUs it is an inter-processor interrupt to a CPU that
    // may be idle (halted). "same" and "cross" pin them to CPU 0 / CPUs 0 and 1; "none" leaves it to
    // the scheduler.
    int parent_cpu = -1, child_cpu = -1;
    if (pin == "same")
        parent_cpu = child_cpu = 0;
    else if (pin == "cross")
        parent_cpu = 0, child_cpu = 1;
    else if (pin != "none")
        die("--pin must be same, cross or none");
    pin_to(parent_cpu);
    signer s{"m-perf", "k-perf", "perf-secret", std::string(64, '0'), {}, {}};
    auto req = representative_request("perf", {"merchant-auth", "rate-limit", "enrichment"}, 1024);
    s.sign(req);
    std::vector<std::uint8_t> req_frame = proto::encode_request(req);
    std::vector<std::uint8_t> reply_frame = representative_reply(1);
    // Explicit sizes override the representative frames (the bytes are then just padding: the
    // floor never parses them).
    if (req_bytes > proto::length_bytes)
        req_frame.resize(req_bytes);
    if (reply_bytes > proto::length_bytes)
        reply_frame.resize(reply_bytes);
    proto::write_length(req_frame.data(), static_cast<std::uint32_t>(req_frame.size() - proto::length_bytes));
    proto::write_length(reply_frame.data(), static_cast<std::uint32_t>(reply_frame.size() - proto::length_bytes));

    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        die(std::string("socketpair: ") + std::strerror(errno));
    pid_t child = ::fork();
    if (child < 0)
        die(std::string("fork: ") + std::strerror(errno));
    if (child == 0) {  // the echo side: read a whole frame, answer with the reply frame
        pin_to(child_cpu);
        ::close(sv[0]);
        std::vector<std::uint8_t> body;
        while (read_frame(sv[1], body, proto::max_frame_limit))
            if (!send_all(sv[1], reply_frame.data(), reply_frame.size()))
                break;
        ::_exit(0);
    }
    ::close(sv[1]);
    const int warmup = std::max(1000, iterations / 10);
    std::vector<double> rtt;
    rtt.reserve(static_cast<std::size_t>(iterations));
    std::vector<std::uint8_t> body;
    // Paced (rate > 0): both processes sleep between round trips, as filterd does at a steady
    // request rate, so every round trip pays the wake-ups; the echo side's CPU per round trip is then
    // the kernel's own cost of a socket round trip on this machine.
    auto step = rate > 0 ? std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(1.0 / rate))
                         : clock_type::duration::zero();
    auto next = clock_type::now();
    for (int i = 0; i < warmup + iterations; ++i) {
        if (rate > 0 && i >= warmup) {
            next += step;
            std::this_thread::sleep_until(next);
        } else if (rate > 0) {
            next = clock_type::now();
        }
        auto t0 = clock_type::now();
        if (!send_all(sv[0], req_frame.data(), req_frame.size()) || !read_frame(sv[0], body, proto::max_frame_limit))
            die("floor: echo process went away");
        auto t1 = clock_type::now();
        if (i >= warmup)
            rtt.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
    ::close(sv[0]);
    int status = 0;
    rusage ru{};
    ::wait4(child, &status, 0, &ru);
    double echo_cpu_us = (static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
                          static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec)) /
                         static_cast<double>(warmup + iterations);
    auto p = summarise(std::move(rtt));
    std::fprintf(
        stderr,
        "filterd-loadgen: floor %zu B -> %zu B, %d round trips%s, CPUs %s: P50 %.1f us, P99 %.1f us; echo process "
        "CPU %.1f us per round trip\n",
        req_frame.size(), reply_frame.size(), iterations, rate > 0 ? fmt::format(" at {:.0f}/s", rate).c_str() : "",
        pin.c_str(), p.p50, p.p99, echo_cpu_us);
    emit(
        fmt::format(
            R"({{"source":"filterd-loadgen floor: fork + AF_UNIX socketpair ping-pong{}, CPUs {}","req_bytes":{},)"
            R"("reply_bytes":{},"iterations":{},"rate_per_s":{:.0f},"echo_cpu_us_per_rtt":{:.2f},"pin":"{}","rtt_us":{}}})",
            rate > 0 ? ", paced" : ", back to back", pin, req_frame.size(), reply_frame.size(), iterations, rate,
            echo_cpu_us, pin, json(p)),
        json_path);
    return 0;
}

// ---- run: drive filterd ---------------------------------------------------------------------------

struct counters {
    std::atomic<std::int64_t> decisions{0}, allowed{0}, denied{0}, errors{0};
    std::atomic<std::int64_t> req_bytes{0}, reply_bytes{0};
    std::map<int, std::int64_t> error_codes;  // guarded by being written only after join
};

int connect_unix(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die(std::string("socket: ") + std::strerror(errno));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof a.sun_path)
        die("socket path too long");
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
        die("connect " + path + ": " + std::strerror(errno));
    return fd;
}

struct conn_result {
    std::int64_t decisions = 0, allowed = 0, denied = 0, errors = 0, req_bytes = 0, reply_bytes = 0;
    std::map<int, std::int64_t> error_codes;
    std::map<int, std::int64_t> deny_status;
    std::vector<double> rtt_us;  ///< paced mode only
    std::string failure;
};

void drive(const std::string& socket_path, proto::request_spec base, signer& s, int pipeline, double interval_s,
           clock_type::time_point end, conn_result& out) {
    int fd = connect_unix(socket_path);
    auto hello = proto::encode_hello(proto::protocol_version, proto::protocol_version, 1u << 20,
                                     proto::cap_filter_timings, "filterd-loadgen/1");
    std::vector<std::uint8_t> body;
    if (!send_all(fd, hello.data(), hello.size()) || !read_frame(fd, body, proto::max_frame_limit)) {
        out.failure = "HELLO exchange failed";
        ::close(fd);
        return;
    }
    proto::frame_status st{};
    const wire::Frame* f = proto::verify_frame(body, st);
    const wire::HelloAck* ack = f ? f->body_as_HelloAck() : nullptr;
    if (!ack) {
        out.failure = "no HelloAck";
        ::close(fd);
        return;
    }
    std::uint32_t limit = ack->max_frame_bytes() ? ack->max_frame_bytes() : proto::max_frame_limit;
    if (ack->max_in_flight() > 0 && static_cast<std::uint32_t>(pipeline) > ack->max_in_flight())
        pipeline = static_cast<int>(ack->max_in_flight());

    std::uint64_t next_id = 1;
    auto send_one = [&]() {
        base.id = next_id++;
        s.sign(base);
        auto frame = proto::encode_request(base);
        out.req_bytes += static_cast<std::int64_t>(frame.size());
        return send_all(fd, frame.data(), frame.size());
    };
    auto count_reply = [&](const std::vector<std::uint8_t>& b) {
        out.reply_bytes += static_cast<std::int64_t>(b.size() + proto::length_bytes);
        const wire::Frame* rf = proto::verify_frame(b, st);
        if (!rf) {
            ++out.errors;
            ++out.error_codes[-1];
        } else if (auto* r = rf->body_as_FilterResponse()) {
            ++out.decisions;
            if (r->verdict() == wire::Verdict::Allow)
                ++out.allowed;
            else {
                ++out.denied;
                ++out.deny_status[r->status()];
            }
        } else if (auto* e = rf->body_as_Error()) {
            ++out.errors;
            ++out.error_codes[static_cast<int>(e->code())];
        } else {
            ++out.errors;
            ++out.error_codes[-2];
        }
    };
    if (interval_s > 0) {
        // Paced mode, as the bridge sees it at a steady request rate: one request at a time, sent on a
        // fixed schedule; the round trip of each is recorded.
        auto step = std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(interval_s));
        for (auto next = clock_type::now(); next < end; next += step) {
            std::this_thread::sleep_until(next);
            auto t0 = clock_type::now();
            if (!send_one() || !read_frame(fd, body, limit)) {
                out.failure = "connection closed by filterd";
                break;
            }
            out.rtt_us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
            count_reply(body);
        }
        ::close(fd);
        return;
    }
    int in_flight = 0;
    for (; in_flight < pipeline; ++in_flight)
        if (!send_one()) {
            out.failure = "write failed";
            ::close(fd);
            return;
        }
    while (in_flight > 0) {
        if (!read_frame(fd, body, limit)) {
            out.failure = "connection closed by filterd";
            break;
        }
        --in_flight;
        count_reply(body);
        if (clock_type::now() < end) {
            if (!send_one()) {
                out.failure = "write failed";
                break;
            }
            ++in_flight;
        }
    }
    ::close(fd);
}

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> v;
    std::string cur;
    for (char c : s) {
        if (c == sep) {
            if (!cur.empty())
                v.push_back(cur);
            cur.clear();
        } else
            cur += c;
    }
    if (!cur.empty())
        v.push_back(cur);
    return v;
}

int run_load(const std::map<std::string, std::string>& opt) {
    auto get = [&](const std::string& k, const std::string& d) {
        auto it = opt.find(k);
        return it == opt.end() ? d : it->second;
    };
    std::string socket_path = get("socket", "");
    if (socket_path.empty())
        die("run: --socket is required");
    double seconds = std::stod(get("duration", "10"));
    int conns = std::stoi(get("connections", "2"));
    int pipeline = std::stoi(get("pipeline", "32"));
    int filterd_pid = std::stoi(get("filterd-pid", "0"));
    double rate = std::stod(get("rate", "0"));  // > 0: paced mode, rate requests/s over all connections
    const char* secret = std::getenv(get("secret-env", "SPV1_PERF_SECRET").c_str());
    std::string secret_file = get("secret-file", "");
    std::string secret_value = secret ? secret : "";
    if (!secret_file.empty()) {
        auto from_file = filterd::testing::spv1_read_secret_file(secret_file);
        if (!from_file)
            die("cannot read --secret-file " + secret_file);
        secret_value = *from_file;
    }

    auto base = representative_request(get("route", "perf"),
                                       split(get("filters", "merchant-auth,rate-limit,enrichment"), ','),
                                       static_cast<std::size_t>(std::stoi(get("body-bytes", "1024"))));
    base.path = get("path", base.path);
    // A throughput run queues up to connections x pipeline requests at the daemon; the budget must
    // cover that queue, or the figure would count deadline errors instead of decisions.
    base.budget_us = static_cast<std::uint32_t>(std::stoul(get("budget-us", "1000000")));
    std::string body_hash = filterd::testing::spv1_sha256_hex(base.body);
    signer s{get("merchant", "m-perf"), get("key-id", "k-perf"), secret_value, body_hash, {}, {}};
    if (RAND_bytes(s.prefix, sizeof s.prefix) != 1)
        die("RAND_bytes failed");

    double cpu0 = cpu_seconds(filterd_pid);
    auto start = clock_type::now();
    auto end = start + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
    std::vector<conn_result> results(static_cast<std::size_t>(conns));
    std::vector<std::thread> threads;
    for (int i = 0; i < conns; ++i)
        threads.emplace_back(drive, socket_path, base, std::ref(s), pipeline, rate > 0 ? conns / rate : 0.0, end,
                             std::ref(results[static_cast<std::size_t>(i)]));
    for (auto& t : threads)
        t.join();
    double wall = std::chrono::duration<double>(clock_type::now() - start).count();
    double cpu = cpu_seconds(filterd_pid) - cpu0;

    conn_result sum;
    for (auto& r : results) {
        sum.decisions += r.decisions;
        sum.allowed += r.allowed;
        sum.denied += r.denied;
        sum.errors += r.errors;
        sum.req_bytes += r.req_bytes;
        sum.reply_bytes += r.reply_bytes;
        for (auto [k, v] : r.error_codes)
            sum.error_codes[k] += v;
        for (auto [k, v] : r.deny_status)
            sum.deny_status[k] += v;
        sum.rtt_us.insert(sum.rtt_us.end(), r.rtt_us.begin(), r.rtt_us.end());
        if (!r.failure.empty())
            std::fprintf(stderr, "filterd-loadgen: connection: %s\n", r.failure.c_str());
    }
    std::int64_t answered = sum.decisions + sum.errors;
    for (auto [k, v] : sum.error_codes)
        std::fprintf(stderr, "filterd-loadgen: error code %d x %lld\n", k, static_cast<long long>(v));
    for (auto [k, v] : sum.deny_status)
        std::fprintf(stderr, "filterd-loadgen: deny status %d x %lld\n", k, static_cast<long long>(v));
    double per_core = cpu > 0 ? static_cast<double>(sum.decisions) / cpu : 0;
    std::fprintf(
        stderr,
        "filterd-loadgen: %lld decisions (%lld allow, %lld deny, %lld errors) in %.2f s = %.0f/s; filterd CPU %.2f s "
        "-> %.0f decisions per CPU-second\n",
        static_cast<long long>(sum.decisions), static_cast<long long>(sum.allowed), static_cast<long long>(sum.denied),
        static_cast<long long>(sum.errors), wall, static_cast<double>(sum.decisions) / wall, cpu, per_core);
    std::string paced;
    if (rate > 0) {
        auto p = summarise(sum.rtt_us);
        std::fprintf(
            stderr,
            "filterd-loadgen: paced at %.0f/s: round trip P50 %.1f us, P99 %.1f us; %.1f us filterd CPU per decision\n",
            rate, p.p50, p.p99, sum.decisions ? cpu * 1e6 / static_cast<double>(sum.decisions) : 0.0);
        // Round trips longer than the budget: the bridge, with that deadline, would have denied them.
        auto over = std::count_if(sum.rtt_us.begin(), sum.rtt_us.end(),
                                  [&](double us) { return us > static_cast<double>(base.budget_us); });
        paced = fmt::format(R"(,"rate_per_s":{:.0f},"rtt_us":{},"over_budget":{})", rate, json(p), over);
        pipeline = 1;
    }
    emit(fmt::format(R"({{"decisions":{},"allowed":{},"denied":{},"errors":{},"wall_s":{:.3f},"filterd_cpu_s":{:.2f},)"
                     R"("decisions_per_s":{:.0f},"decisions_per_core_s":{:.0f},"connections":{},"pipeline":{},)"
                     R"("req_bytes":{},"reply_bytes":{}{}}})",
                     sum.decisions, sum.allowed, sum.denied, sum.errors, wall, cpu,
                     static_cast<double>(sum.decisions) / wall, per_core, conns, pipeline,
                     answered ? sum.req_bytes / answered : 0, answered ? sum.reply_bytes / answered : 0, paced),
         get("json", ""));
    return sum.decisions > 0 ? 0 : 1;
}

// ---- stall probe ---------------------------------------------------------------------------------

std::atomic<bool> probe_stop{false};

/// Sleeps 1 ms at a time with filterd's default CPU slice (io_thread_slice_us) and the caller's priority, and counts
/// the wake-ups at least threshold_us late: moments when a thread scheduled like filterd's I/O thread could not run for
/// that long, which no scheduling inside the machine prevents (the hypervisor held the CPUs). Runs until SIGTERM or
/// SIGINT, or for `seconds` when > 0.
int run_stalls(double seconds, double threshold_us, const std::string& json_path) {
    if (int err = filterd::set_thread_slice(filterd::daemon_config{}.io_thread_slice))
        std::fprintf(stderr, "filterd-loadgen: stalls: no short slice (%s); counting anyway\n", std::strerror(err));
    std::signal(SIGTERM, [](int) { probe_stop = true; });
    std::signal(SIGINT, [](int) { probe_stop = true; });
    const auto start = clock_type::now();
    const auto period = std::chrono::milliseconds(1);
    std::int64_t sleeps = 0, stalls = 0;
    double worst_us = 0;
    while (!probe_stop && (seconds <= 0 || clock_type::now() - start < std::chrono::duration<double>(seconds))) {
        auto t0 = clock_type::now();
        std::this_thread::sleep_for(period);
        double late_us = std::chrono::duration<double, std::micro>(clock_type::now() - t0 - period).count();
        ++sleeps;
        worst_us = std::max(worst_us, late_us);
        stalls += late_us >= threshold_us;
    }
    double wall = std::chrono::duration<double>(clock_type::now() - start).count();
    std::fprintf(stderr, "filterd-loadgen: stalls: %lld of %lld 1 ms sleeps woke %.0f us or more late, worst %.0f us\n",
                 static_cast<long long>(stalls), static_cast<long long>(sleeps), threshold_us, worst_us);
    emit(fmt::format(R"({{"sleeps":{},"threshold_us":{:.0f},"stalls":{},"worst_us":{:.0f},"seconds":{:.1f}}})", sleeps,
                     threshold_us, stalls, worst_us, wall),
         json_path);
    return 0;
}

void usage() {
    std::fprintf(stderr,
                 "usage: filterd-loadgen floor [--req-bytes N] [--reply-bytes M] [--iterations K] [--rate R]\n"
                 "                             [--pin same|cross|none] [--json FILE]\n"
                 "       filterd-loadgen run --socket PATH [--route R] [--filters a,b,c] [--path P] [--duration S]\n"
                 "                           [--connections C] [--pipeline P | --rate R] [--budget-us U] [--merchant "
                 "ID] [--key-id ID]\n"
                 "                           [--secret-env VAR | --secret-file F] [--filterd-pid PID] [--json FILE]\n"
                 "       filterd-loadgen stalls [--threshold-us U] [--seconds S] [--json FILE]\n");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        usage();
        return 2;
    }
    std::string mode = argv[1];
    std::map<std::string, std::string> opt;
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        if (a.rfind("--", 0) != 0 || i + 1 >= argc) {
            usage();
            return 2;
        }
        opt[a.substr(2)] = argv[++i];
    }
    auto num = [&](const char* k, const char* d) { return opt.count(k) ? opt[k] : std::string(d); };
    try {
        if (mode == "floor")
            return run_floor(std::stoul(num("req-bytes", "0")), std::stoul(num("reply-bytes", "0")),
                             std::stoi(num("iterations", "20000")), std::stod(num("rate", "0")), num("pin", "none"),
                             num("json", ""));
        if (mode == "run")
            return run_load(opt);
        if (mode == "stalls")
            return run_stalls(std::stod(num("seconds", "0")), std::stod(num("threshold-us", "4500")), num("json", ""));
    } catch (const std::exception& e) {  // bad numeric option: a tool, not the data path
        die(std::string("bad option: ") + e.what());
    }
    usage();
    return 2;
}
