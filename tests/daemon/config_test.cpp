// Daemon config validation: one test per rule. Each bad config names the offending key.
#include "daemon/config.hpp"
#include "filters/common/secret.hpp"
#include "tests/support/client.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <unistd.h>

using namespace filterd;
using namespace filterd::testing;

namespace {
std::string with(const std::string& body) { return R"({"listen": {"socket": "/tmp/x.sock"}, )" + body + "}"; }
const std::string routes = R"("routes": {"r": {}})";

void expect_error(const std::string& json, const std::string& key) {
    try {
        load_config_text(json, "", test_registry(), nullptr);
        FAIL("config was accepted: " << json);
    } catch (const config_error& e) {
        CHECK(e.key() == key);
        INFO(e.what());
    }
}
}  // namespace

TEST_CASE("a minimal config loads with safe defaults", "[config]") {
    auto c = load_config_text(with(routes), "", test_registry(), nullptr);
    CHECK(c->listen.socket_path == "/tmp/x.sock");
    CHECK(c->listen.mode == 0660);
    CHECK(c->listen.allowed_uids == std::vector<std::uint32_t>{static_cast<std::uint32_t>(::geteuid())});
    CHECK(c->admin.address == "127.0.0.1");
    CHECK(c->io_threads == 2);
    CHECK(c->io_thread_slice == std::chrono::microseconds(100));
    CHECK(c->limits.max_frame_bytes == 1u << 20);
    CHECK(c->limits.max_in_flight_per_connection == 256);
    CHECK(c->limits.stall_timeout.count() == 2000);
    CHECK(c->filters->find_route("r") != nullptr);
}

TEST_CASE("io_thread_slice_us 0 leaves the kernel's slice; 100..100000 are taken", "[config]") {
    for (int us : {0, 100, 100000}) {
        auto c = load_config_text(with(R"("io_thread_slice_us": )" + std::to_string(us) + ", " + routes), "",
                                  test_registry(), nullptr);
        CHECK(c->io_thread_slice == std::chrono::microseconds(us));
    }
}

TEST_CASE("the --socket flag overrides listen.socket", "[config]") {
    auto c = load_config_text(with(routes), "/tmp/other.sock", test_registry(), nullptr);
    CHECK(c->listen.socket_path == "/tmp/other.sock");
}

TEST_CASE("config rules, one failing config each", "[config]") {
    SECTION("invalid JSON") { expect_error("{", "<config>"); }
    SECTION("root must be an object") { expect_error("[]", "<root>"); }
    SECTION("unknown top-level key") { expect_error(with(routes + R"(, "extra": 1)"), "extra"); }
    SECTION("listen is required") { expect_error(R"({"routes": {"r": {}}})", "listen"); }
    SECTION("listen.socket is required") { expect_error(R"({"listen": {}, "routes": {"r": {}}})", "listen.socket"); }
    SECTION("listen.socket too long") {
        expect_error(R"({"listen": {"socket": "/)" + std::string(120, 'a') + R"("}, "routes": {"r": {}}})",
                     "listen.socket");
    }
    SECTION("unknown key in listen") {
        expect_error(R"({"listen": {"socket": "/tmp/x", "sock": 1}, "routes": {"r": {}}})", "listen.sock");
    }
    SECTION("listen.mode must be octal") {
        expect_error(R"({"listen": {"socket": "/tmp/x", "mode": "rw"}, "routes": {"r": {}}})", "listen.mode");
    }
    SECTION("listen.mode must not open the socket to others") {
        expect_error(R"({"listen": {"socket": "/tmp/x", "mode": "0666"}, "routes": {"r": {}}})", "listen.mode");
    }
    SECTION("listen.allowed_uids, when given, must list at least one uid") {
        expect_error(R"({"listen": {"socket": "/tmp/x", "allowed_uids": []}, "routes": {"r": {}}})",
                     "listen.allowed_uids");
    }
    SECTION("listen.allowed_uids must be uids") {
        expect_error(R"({"listen": {"socket": "/tmp/x", "allowed_uids": [-1]}, "routes": {"r": {}}})",
                     "listen.allowed_uids[0]");
    }
    SECTION("admin.address must be loopback") {
        expect_error(with(R"("admin": {"address": "0.0.0.0"}, )" + routes), "admin.address");
    }
    SECTION("admin.address must be an address") {
        expect_error(with(R"("admin": {"address": "localhost"}, )" + routes), "admin.address");
    }
    SECTION("admin.port range") { expect_error(with(R"("admin": {"port": 70000}, )" + routes), "admin.port"); }
    SECTION("io_threads range") { expect_error(with(R"("io_threads": 0, )" + routes), "io_threads"); }
    SECTION("a route with more filters than the chain runs") {
        std::string filters;
        for (int i = 0; i <= 16; ++i)
            filters += (i ? ", " : "") + std::string("\"f") + std::to_string(i) + "\": null";
        expect_error(with(R"("routes": {"long": {)" + filters + "}}"), "routes.long");
    }
    SECTION("io_thread_slice_us below the kernel's least slice") {
        expect_error(with(R"("io_thread_slice_us": 50, )" + routes), "io_thread_slice_us");
    }
    SECTION("io_thread_slice_us above the kernel's largest slice") {
        expect_error(with(R"("io_thread_slice_us": 100001, )" + routes), "io_thread_slice_us");
    }
    SECTION("io_threads type") { expect_error(with(R"("io_threads": "2", )" + routes), "io_threads"); }
    SECTION("limits.max_frame_bytes range") {
        expect_error(with(R"("limits": {"max_frame_bytes": 100}, )" + routes), "limits.max_frame_bytes");
    }
    SECTION("limits.max_in_flight_per_connection range") {
        expect_error(with(R"("limits": {"max_in_flight_per_connection": 0}, )" + routes),
                     "limits.max_in_flight_per_connection");
    }
    SECTION("limits.stall_timeout_ms range") {
        expect_error(with(R"("limits": {"stall_timeout_ms": 1}, )" + routes), "limits.stall_timeout_ms");
    }
    SECTION("unknown key in limits") {
        expect_error(with(R"("limits": {"max_frames": 1}, )" + routes), "limits.max_frames");
    }
    SECTION("log.level") { expect_error(with(R"("log": {"level": "loud"}, )" + routes), "log.level"); }
    SECTION("log.per_request_interval_ms") {
        expect_error(with(R"("log": {"per_request_interval_ms": -1}, )" + routes), "log.per_request_interval_ms");
    }
    SECTION("routes is required") { expect_error(with(R"("io_threads": 1)"), "routes"); }
    SECTION("routes must not be empty") { expect_error(with(R"("routes": {})"), "routes"); }
    SECTION("a route must be an object") { expect_error(with(R"("routes": {"r": []})"), "routes.r"); }
    SECTION("unknown filter in a route") { expect_error(with(R"("routes": {"r": {"nope": {}}})"), "routes.r.nope"); }
    SECTION("unknown filter in filters") {
        expect_error(with(R"("filters": {"nope": {}}, )" + routes), "filters.nope");
    }
    SECTION("a filter's global rule names its key") {
        expect_error(
            with(R"("filters": {"test-config": {"level": 11}}, "routes": {"r": {"test-config": {"tag": "a"}}})"),
            "filters.test-config.level");
    }
    SECTION("a filter's route rule names its key") {
        expect_error(with(R"("filters": {"test-config": {"level": 1}}, "routes": {"r": {"test-config": {}}})"),
                     "routes.r.test-config.tag");
    }
    SECTION("unknown key inside a filter's route section") {
        expect_error(with(R"("routes": {"r": {"test-allow": {"x": 1}}})"), "routes.r.test-allow.x");
    }
}

TEST_CASE("secrets are references, never inline", "[config][secret]") {
    std::string path = "/tmp/filterd-secret-" + std::to_string(::getpid());
    { std::ofstream(path) << "s3cret\n"; }
    ::setenv("FILTERD_TEST_SECRET", "from-env", 1);
    auto load = [](const std::string& json) {
        auto v = parse_json_text(json, "t");
        config_object o(v, "k");
        auto s = load_secret(o, "secret");
        o.finish();
        return std::string(s.reveal());
    };
    CHECK(load(R"({"secret": {"env": "FILTERD_TEST_SECRET"}})") == "from-env");
    CHECK(load(R"({"secret": {"file": ")" + path + R"("}})") == "s3cret");
    CHECK_THROWS_WITH(load(R"({"secret": "inline"})"), Catch::Contains("k.secret") && Catch::Contains("inline"));
    CHECK_THROWS_WITH(load(R"({"secret": {"env": "FILTERD_TEST_UNSET_VAR"}})"), Catch::Contains("k.secret.env"));
    CHECK_THROWS_WITH(load(R"({"secret": {"file": "/nonexistent/x"}})"), Catch::Contains("k.secret.file"));
    CHECK_THROWS_WITH(load(R"({"secret": {"env": "A", "file": "/b"}})"), Catch::Contains("exactly one"));
    CHECK_THROWS_WITH(load(R"({})"), Catch::Contains("k.secret"));
    ::unlink(path.c_str());
}

TEST_CASE("the example config in conf/ is valid", "[config]") {
    ::setenv("FILTERD_DEMO_HMAC_SECRET", "demo-secret-for-tests-only-0123456789", 1);
    ::setenv("FILTERD_REPLICAS", "1", 1);
    auto c = load_config(std::string(FILTERD_SOURCE_DIR) + "/conf/filterd.example.json", "/tmp/example.sock",
                         registry::builtin(), nullptr);
    CHECK(c->filters->route_count() == 4);
    CHECK(c->filters->find_route("gateway.probe") != nullptr);  // the gateway readiness probe: no filters
    const route* pay = c->filters->find_route("payments.create");
    REQUIRE(pay != nullptr);
    CHECK(pay->find("merchant-auth") != nullptr);
    CHECK(pay->find("rate-limit") != nullptr);
    CHECK(pay->find("enrichment") != nullptr);
}
