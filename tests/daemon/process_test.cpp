// The real filterd binary as a child process: what only a whole process can show. A `kill -9` and a
// restart must not make an accepted request replayable (the nonce journal), and /readyz must turn
// 503 when the socket file is deleted or replaced.
#include "tests/support/client.hpp"
#include "tests/support/filterd_process.hpp"
#include "tests/support/merchant_secret.hpp"
#include "tests/support/spv1.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <netinet/in.h>
#include <regex>
#include <sstream>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace filterd;
using namespace filterd::testing;
using namespace std::chrono_literals;

namespace {

const std::string data_dir = std::string(FILTERD_SOURCE_DIR) + "/tests/data/merchant_auth/";

std::string write_config(const temp_dir& d, bool journal, bool admin) {
    std::string cfg = d.path + "/filterd.json";
    std::ofstream f(cfg);
    f << R"({"listen": {"socket": ")" << d.path << R"(/filterd.sock"},)"
      << (admin ? R"("admin": {"address": "127.0.0.1", "port": 0},)" : R"("admin": {"enabled": false},)")
      << R"("filters": {"merchant-auth": {"skew_seconds": 300,)";
    if (journal)
        f << R"("nonce_journal": {"dir": ")" << d.path << R"(/nonces"},)";
    f << R"("merchants": {"acme": {"status": "active", "keys": [{"id": "k1", "alg": "hmac-sha256",
            "secret": {"file": ")"
      << data_dir << R"(acme-k1.secret"}, "state": "active"}]}}}},
          "routes": {"pay": {"merchant-auth": null}}})";
    return cfg;
}

std::int64_t now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

proto::request_spec signed_payment(std::uint64_t id, const std::string& nonce, std::int64_t ts) {
    proto::request_spec spec;
    spec.id = id;
    spec.budget_us = 2'000'000;
    spec.route = "pay";
    spec.filters = {"merchant-auth"};
    spec.method = "POST";
    spec.path = "/v1/payments";
    spec.body = R"({"amount":"10.00"})";
    spv1_sign_hmac(spec, "acme", "k1", read_secret(), nonce, ts);
    return spec;
}

/// The status of the answer: 200 for an allow, the deny status otherwise, -1 for no answer.
int send(const std::string& socket, const proto::request_spec& spec) {
    client c(socket);
    if (!c.handshake())
        return -1;
    if (!c.send(proto::encode_request(spec)))
        return -1;
    auto r = c.recv();
    if (!r || r->response() == nullptr)
        return -1;
    return r->response()->verdict() == wire::Verdict::Allow ? 200 : r->response()->status();
}

int http_get_status(int port, const std::string& path) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return -1;
    }
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    (void)!::write(fd, req.data(), req.size());
    char buf[256];
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n < 12)
        return -1;
    return std::stoi(std::string(buf + 9, 3));  // "HTTP/1.1 200"
}

}  // namespace

TEST_CASE("a request accepted before kill -9 is still a replay after the restart", "[process][replay]") {
    temp_dir d;
    const std::string sock = d.path + "/filterd.sock";
    const std::string cfg = write_config(d, true, false);
    const auto ts = now_s();
    const auto accepted = signed_payment(1, "kill-nine-nonce-000001", ts);
    {
        filterd_process p(cfg, sock, d.path + "/run1.log");
        REQUIRE(send(sock, accepted) == 200);
        REQUIRE(send(sock, accepted) == 401);  // a replay within one life, as before
        p.kill(SIGKILL);                       // no shutdown path runs
    }
    filterd_process again(cfg, sock, d.path + "/run2.log");
    CHECK(send(sock, accepted) == 401);
    INFO(again.log_text());
    CHECK(again.log_text().find("\"records\":1") != std::string::npos);
    // A fresh request still passes: the restart did not turn into a denial of everything.
    CHECK(send(sock, signed_payment(2, "kill-nine-nonce-000002", ts)) == 200);
}

TEST_CASE("without a nonce journal the replay after kill -9 is accepted (the gap the journal closes)",
          "[process][replay]") {
    temp_dir d;
    const std::string sock = d.path + "/filterd.sock";
    const std::string cfg = write_config(d, false, false);
    const auto accepted = signed_payment(1, "kill-nine-nonce-000003", now_s());
    {
        filterd_process p(cfg, sock, d.path + "/run1.log");
        REQUIRE(send(sock, accepted) == 200);
        p.kill(SIGKILL);
    }
    filterd_process again(cfg, sock, d.path + "/run2.log");
    CHECK(send(sock, accepted) == 200);
    CHECK(again.log_text().find("no nonce_journal configured") != std::string::npos);
}

TEST_CASE("/readyz turns 503 when the socket file is deleted or replaced", "[process][readyz]") {
    temp_dir d;
    const std::string sock = d.path + "/filterd.sock";
    filterd_process p(write_config(d, false, true), sock, d.path + "/run.log");
    int port = p.admin_port();
    REQUIRE(port > 0);
    CHECK(http_get_status(port, "/readyz") == 200);
    SECTION("deleted") {
        REQUIRE(::unlink(sock.c_str()) == 0);
        CHECK(http_get_status(port, "/readyz") == 503);
        CHECK(http_get_status(port, "/healthz") == 200);  // alive, but not ready
    }
    SECTION("replaced by another socket (anyone who can write the directory could bind it)") {
        REQUIRE(::unlink(sock.c_str()) == 0);
        int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, sock.c_str(), sizeof a.sun_path - 1);
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        CHECK(http_get_status(port, "/readyz") == 503);
        ::close(fd);
    }
}

TEST_CASE("every I/O thread runs with io_thread_slice_us as its CPU slice", "[process][sched]") {
    temp_dir d;
    const std::string sock = d.path + "/filterd.sock";
    const std::string cfg = d.path + "/filterd.json";
    std::ofstream(cfg) << R"({"listen": {"socket": ")" << sock << R"("}, "admin": {"enabled": false},
        "io_threads": 3, "io_thread_slice_us": 250, "routes": {"r": {}}})";
    filterd_process p(cfg, sock, d.path + "/run.log");
    CHECK(p.log_text().find(R"("io_thread_slice_us":250)") != std::string::npos);
    int threads = 0, reported = 0, with_slice = 0;
    for (int attempt = 0; attempt < 100 && with_slice < 3; ++attempt) {  // threads set it as they start
        threads = reported = with_slice = 0;
        for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(p.pid()) + "/task")) {
            ++threads;
            std::ifstream in(task.path() / "sched");
            for (std::string line; std::getline(in, line);) {
                if (line.rfind("se.slice", 0) == 0) {
                    ++reported;
                    with_slice += std::stoll(line.substr(line.find(':') + 1)) == 250'000;
                }
            }
        }
        std::this_thread::sleep_for(10ms);
    }
    INFO("threads " << threads << ", reporting a slice " << reported);
    CHECK(threads >= 3);
    if (reported == 0) {
        WARN("this kernel reports no se.slice; the slice cannot be read back");
        return;
    }
    CHECK(with_slice == 3);
    CHECK(p.log_text().find("refused by the kernel") == std::string::npos);
}

// A start commits the nonce table (and says so first, with its size); `filterd --check`, which runs
// beside the live daemon in the same memory limit, validates the same config without committing it.
TEST_CASE("filterd commits the nonce table at start-up, and --check does not", "[process]") {
    temp_dir d;
    const std::string cfg = write_config(d, false, false);
    const std::string out = d.path + "/check.out";
    const std::string cmd = std::string(FILTERD_BINARY) + " --check --config " + cfg + " >" + out + " 2>&1";
    REQUIRE(std::system(cmd.c_str()) == 0);
    std::ifstream f(out);
    const std::string check((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    CHECK(check.find("config OK") != std::string::npos);
    CHECK(check.find("committing the nonce table") == std::string::npos);

    filterd_process p(cfg, d.path + "/filterd.sock", d.path + "/filterd.log");
    const std::string log = p.log_text();
    CHECK(log.find(R"("msg":"merchant-auth: committing the nonce table","nonce_capacity":1000000,"bytes":33554432)") !=
          std::string::npos);
}
