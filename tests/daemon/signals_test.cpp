// SIGHUP reload and SIGTERM drain, on the real daemon entry point (run_daemon) in this process.
#include "core/metrics.hpp"
#include "daemon/app.hpp"
#include "tests/support/client.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <fstream>
#include <future>
#include <unistd.h>

using namespace filterd;
using namespace filterd::testing;
using namespace std::chrono_literals;

namespace {

struct running_daemon {
    std::string config_path;
    std::string socket_path;
    std::future<int> exit_code;

    running_daemon(const std::string& tag, const std::string& routes_json) {
        socket_path = temp_socket_path(tag);
        config_path = socket_path + ".json";
        write(routes_json);
        options opt;
        opt.config_path = config_path;
        exit_code = std::async(std::launch::async, [opt] { return run_daemon(opt, test_registry()); });
        for (int i = 0; i < 400; ++i) {  // until the socket accepts
            client c(socket_path);
            if (c.connected())
                return;
            std::this_thread::sleep_for(5ms);
        }
        FAIL("daemon did not start");
    }
    void write(const std::string& routes_json) const {
        std::ofstream(config_path) << R"({"listen": {"socket": ")" << socket_path
                                   << R"("}, "admin": {"enabled": false}, "limits": {"drain_timeout_ms": 2000}, )"
                                   << routes_json << "}";
    }
    ~running_daemon() {
        if (exit_code.valid()) {
            ::kill(::getpid(), SIGTERM);
            exit_code.wait_for(5s);
        }
        ::unlink(config_path.c_str());
    }
};

bool route_answers(client& c, std::uint64_t id, const std::string& route) {
    if (!c.send(proto::encode_request(req(id, route))))
        return false;
    auto r = c.recv();
    return r && r->response() != nullptr;
}

std::uint64_t reloads(const char* result) {
    return metrics_registry::global().counter_value("filterd_config_reloads_total", {{"result", result}});
}

}  // namespace

TEST_CASE("SIGHUP reloads a good config and keeps the old one on a bad config", "[signals][reload]") {
    running_daemon d("hup", R"("routes": {"one": {}, "slow": {"test-delay": {}}})");
    client c(d.socket_path);
    REQUIRE(c.handshake());
    CHECK(route_answers(c, 1, "one"));
    CHECK_FALSE(route_answers(c, 2, "two"));

    // A request in flight keeps the config it started with, even though the new one drops its route.
    auto slow = req(50, "slow", {"test-delay"});
    slow.headers = {{"X-Test-Delay-Ms", {"300"}}};
    REQUIRE(c.send(proto::encode_request(slow)));
    std::this_thread::sleep_for(50ms);

    auto ok_before = reloads("ok");
    d.write(R"("routes": {"one": {}, "two": {}})");
    ::kill(::getpid(), SIGHUP);
    auto r = c.recv();
    REQUIRE(r);
    REQUIRE(r->response() != nullptr);
    CHECK(r->response()->id() == 50);
    CHECK(r->response()->verdict() == wire::Verdict::Allow);
    for (int i = 0; i < 200 && reloads("ok") == ok_before; ++i)
        std::this_thread::sleep_for(5ms);
    CHECK(reloads("ok") == ok_before + 1);
    CHECK(route_answers(c, 3, "two"));
    CHECK_FALSE(route_answers(c, 4, "slow"));

    auto err_before = reloads("error");
    d.write(R"("routes": {"three": {}}, "unknown_key": true)");
    ::kill(::getpid(), SIGHUP);
    for (int i = 0; i < 200 && reloads("error") == err_before; ++i)
        std::this_thread::sleep_for(5ms);
    CHECK(reloads("error") == err_before + 1);
    CHECK(route_answers(c, 5, "two"));  // old config still in force
    CHECK_FALSE(route_answers(c, 6, "three"));

    ::kill(::getpid(), SIGTERM);
    REQUIRE(d.exit_code.wait_for(5s) == std::future_status::ready);
    CHECK(d.exit_code.get() == 0);
}

TEST_CASE("SIGTERM drains: in-flight work is answered, then the daemon exits 0", "[signals][drain]") {
    running_daemon d("term", R"("routes": {"slow": {"test-delay": {}}})");
    client c(d.socket_path);
    REQUIRE(c.handshake());
    auto slow = req(9, "slow", {"test-delay"});
    slow.headers = {{"X-Test-Delay-Ms", {"300"}}};
    REQUIRE(c.send(proto::encode_request(slow)));
    std::this_thread::sleep_for(50ms);
    auto t0 = std::chrono::steady_clock::now();
    ::kill(::getpid(), SIGTERM);

    auto r = c.recv();
    REQUIRE(r);
    REQUIRE(r->response() != nullptr);
    CHECK(r->response()->id() == 9);
    CHECK(r->response()->verdict() == wire::Verdict::Allow);
    CHECK(c.wait_closed(2s));
    REQUIRE(d.exit_code.wait_for(5s) == std::future_status::ready);
    CHECK(d.exit_code.get() == 0);
    CHECK(std::chrono::steady_clock::now() - t0 < 2s);  // well inside drain_timeout_ms
    client late(d.socket_path);
    CHECK_FALSE(late.connected());
}

TEST_CASE("SIGTERM with a stuck request closes it after the drain timeout and still exits 0", "[signals][drain]") {
    running_daemon d("term2", R"("routes": {"slow": {"test-delay": {}}})");
    d.write(R"("routes": {"slow": {"test-delay": {}}})");
    client c(d.socket_path);
    REQUIRE(c.handshake());
    auto stuck = req(1, "slow", {"test-delay"});
    stuck.headers = {{"X-Test-Delay-Ms", {"3000"}}};  // longer than drain_timeout_ms (2000)
    REQUIRE(c.send(proto::encode_request(stuck)));
    std::this_thread::sleep_for(50ms);
    ::kill(::getpid(), SIGTERM);
    CHECK(c.wait_closed(4s));
    REQUIRE(d.exit_code.wait_for(6s) == std::future_status::ready);
    CHECK(d.exit_code.get() == 0);
}

TEST_CASE("a bad config at start-up exits 2 and names the key", "[signals][config]") {
    std::string path = temp_socket_path("bad") + ".json";
    std::ofstream(path) << R"({"listen": {"socket": "/tmp/x.sock"}, "routes": {"r": {}}, "limits": {"stall": 1}})";
    options opt;
    opt.config_path = path;
    CHECK(run_daemon(opt, test_registry()) == 2);
    ::unlink(path.c_str());
}
