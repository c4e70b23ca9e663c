// The Redis client against real redis-server processes on loopback.
#include "filters/common/redis.hpp"  // first: the header is self-contained

#include "core/metrics.hpp"
#include "tests/support/redis_server.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>

#include <atomic>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <stdlib.h>
#include <thread>

using namespace filterd;
using namespace filterd::testing;
using namespace std::chrono_literals;
namespace net = boost::asio;

namespace {

/// An io_context with one thread, for the client under test.
struct io_thread {
    net::io_context ioc{1};
    net::executor_work_guard<net::io_context::executor_type> work{net::make_work_guard(ioc)};
    std::thread t{[this] { ioc.run(); }};
    ~io_thread() {
        work.reset();
        ioc.stop();
        t.join();
    }
};

/// One seed, standalone or cluster, with a request wait long enough for a loaded test machine.
redis::options seed_opts(std::string host, std::uint16_t port, bool cluster = false) {
    redis::options o;
    o.cluster = cluster;
    o.seeds.push_back({std::move(host), port});
    o.command_timeout = 2000ms;
    return o;
}

redis::options opts_for(const redis_server& s) {
    redis::options o = seed_opts("127.0.0.1", s.port());
    o.connect_timeout = 2000ms;
    return o;
}

struct outcome_copy {
    redis::errc error = redis::errc::ok;
    std::string text;
    long long integer = 0;
    bool nil = false;
};

/// Runs one command and waits for its callback.
outcome_copy run(redis::client& c, std::vector<std::string> argv, std::chrono::milliseconds budget = 1000ms) {
    std::promise<outcome_copy> p;
    c.command(std::move(argv), redis::clock::now() + budget, [&](redis::result&& r) {
        outcome_copy o;
        o.error = r.error;
        auto v = r.value.view();
        o.text = std::string(v.str());
        o.integer = v.integer();
        o.nil = v.is_nil();
        p.set_value(o);
    });
    return p.get_future().get();
}

/// Retries a command until it succeeds (after a restart the client reconnects after its backoff).
outcome_copy run_until_ok(redis::client& c, std::vector<std::string> argv) {
    for (int i = 0; i < 200; ++i) {
        auto o = run(c, argv);
        if (o.error == redis::errc::ok)
            return o;
        std::this_thread::sleep_for(20ms);
    }
    return run(c, argv);
}

}  // namespace

TEST_CASE("redis: a command gets its reply", "[redis]") {
    redis_server srv;
    io_thread io;
    redis::client c(io.ioc.get_executor(), opts_for(srv));
    CHECK(run(c, {"SET", "k", "v"}).text == "OK");
    auto g = run(c, {"GET", "k"});
    CHECK(g.error == redis::errc::ok);
    CHECK(g.text == "v");
    CHECK(run(c, {"GET", "missing"}).nil);
    auto e = run(c, {"NOSUCHCOMMAND"});
    CHECK(e.error == redis::errc::server_error);
    CHECK(e.text.find("unknown command") != std::string::npos);
}

TEST_CASE("redis: concurrent requests are pipelined and each gets its own reply", "[redis]") {
    redis_server srv;
    io_thread io;
    redis::client c(io.ioc.get_executor(), opts_for(srv));
    constexpr int n = 2000;
    std::atomic<int> ok{0}, mismatched{0}, done{0};
    std::promise<void> all;
    // Each request sets then reads back its own key through one shared connection: a reply handed to
    // the wrong request shows as a mismatch.
    for (int i = 0; i < n; ++i) {
        std::string key = "p" + std::to_string(i);
        c.command({"SET", key, std::to_string(i * 7)}, redis::clock::now() + 5s, [](redis::result&&) {});
        c.command({"GET", key}, redis::clock::now() + 5s, [&, i](redis::result&& r) {
            if (r.error == redis::errc::ok && r.value.view().str() == std::to_string(i * 7))
                ++ok;
            else
                ++mismatched;
            if (++done == n)
                all.set_value();
        });
    }
    REQUIRE(all.get_future().wait_for(20s) == std::future_status::ready);
    CHECK(ok == n);
    CHECK(mismatched == 0);
    // Pipelined: far fewer socket reads on the server than requests would need one by one.
    auto info = srv.cli("INFO stats");
    CHECK(info.find("total_commands_processed") != std::string::npos);
}

TEST_CASE("redis: eval runs a script by SHA and reloads it after SCRIPT FLUSH", "[redis]") {
    redis_server srv;
    io_thread io;
    redis::client c(io.ioc.get_executor(), opts_for(srv));
    auto s = std::make_shared<const redis::script>("return redis.call('INCRBY', KEYS[1], ARGV[1])");
    auto eval = [&](std::string inc) {
        std::promise<outcome_copy> p;
        c.eval(s, {"counter"}, {inc}, redis::clock::now() + 1s, [&](redis::result&& r) {
            p.set_value({r.error, std::string(r.value.view().str()), r.value.view().integer(), false});
        });
        return p.get_future().get();
    };
    CHECK(eval("2").integer == 2);  // NOSCRIPT on first use, then EVAL
    CHECK(eval("3").integer == 5);  // EVALSHA
    srv.cli("SCRIPT FLUSH");
    CHECK(eval("4").integer == 9);
    CHECK(srv.cli("SCRIPT EXISTS " + s->sha1()).find("1") != std::string::npos);
}

TEST_CASE("redis: AUTH with an ACL user whose password is a secret reference", "[redis]") {
    redis_server srv({"--user", "default", "off", "--user", "filterd", "on", ">s3cret-pw", "~*", "+@all"});
    io_thread io;
    ::setenv("FILTERD_TEST_REDIS_PW", "s3cret-pw", 1);
    auto cfg = boost::json::parse(R"({"address": "127.0.0.1:)" + std::to_string(srv.port()) +
                                  R"(", "user": "filterd", "password": {"env": "FILTERD_TEST_REDIS_PW"}})");
    config_object o(cfg, "filters.x.redis");
    auto opts = redis::parse_options(o);
    o.finish();
    redis::client good(io.ioc.get_executor(), opts);
    CHECK(run(good, {"SET", "a", "1"}).text == "OK");

    ::setenv("FILTERD_TEST_REDIS_PW", "wrong", 1);
    config_object o2(cfg, "filters.x.redis");
    auto bad_opts = redis::parse_options(o2);
    redis::client bad(io.ioc.get_executor(), bad_opts);
    CHECK(run(bad, {"GET", "a"}).error == redis::errc::disconnected);
}

TEST_CASE("redis: a filter's store is local by default, and the redis object goes with store redis only",
          "[redis][config]") {
    auto store_of = [](const std::string& text) {
        auto v = boost::json::parse(text);
        config_object o(v, "f");
        return redis::parse_store(o);
    };
    auto fails = [&](const std::string& text, const std::string& key) {
        try {
            store_of(text);
        } catch (const config_error& e) {
            CHECK(e.key() == key);
            return;
        }
        FAIL("no config_error for " << text);
    };
    CHECK_FALSE(store_of(R"({})").has_value());
    CHECK_FALSE(store_of(R"({"store": "local"})").has_value());
    auto r = store_of(R"({"store": "redis", "redis": {"address": "127.0.0.1:6390"}})");
    REQUIRE(r.has_value());
    CHECK(r->seeds.at(0).port == 6390);
    fails(R"({"store": "redis"})", "f.redis");
    fails(R"({"redis": {"address": "127.0.0.1:6390"}})", "f.redis");
    fails(R"({"store": "memcached"})", "f.store");
    fails(R"({"store": "redis", "redis": {"address": "h:1", "colour": "red"}})", "f.redis.colour");
}

TEST_CASE("redis: config errors name the key", "[redis][config]") {
    auto fails = [](const std::string& text, const std::string& key) {
        auto v = boost::json::parse(text);
        config_object o(v, "r");
        try {
            redis::parse_options(o);
            o.finish();
        } catch (const config_error& e) {
            CHECK(e.key() == key);
            return;
        }
        FAIL("no config_error for " << text);
    };
    fails(R"({})", "r.address");
    fails(R"({"address": "nohost"})", "r.address");
    fails(R"({"address": "h:0"})", "r.address");
    fails(R"({"address": "h:1", "cluster_seeds": ["a:1"]})", "r.cluster_seeds");
    fails(R"({"cluster_seeds": []})", "r.cluster_seeds");
    fails(R"({"cluster_seeds": ["a"]})", "r.cluster_seeds[0]");
    fails(R"({"address": "h:1", "user": "u"})", "r.password");
    fails(R"({"address": "h:1", "password": "inline"})", "r.password");
    fails(R"({"address": "h:1", "timeout_ms": 0})", "r.timeout_ms");
    fails(R"({"address": "h:1", "pool_size": 65})", "r.pool_size");
    fails(R"({"address": "h:1", "tls": {}})", "r.tls.ca_file");
    fails(R"({"address": "h:1", "tls": {"ca_file": "/nonexistent"}})", "r.tls");
    fails(R"({"address": "h:1", "bogus": 1})", "r.bogus");
}

TEST_CASE("redis: a paused server times requests out at their deadline, a late reply reaches nobody", "[redis]") {
    redis_server srv;
    io_thread io;
    auto o = opts_for(srv);
    o.command_timeout = 5000ms;  // the request deadline, not the stall detector, ends the wait here
    redis::client c(io.ioc.get_executor(), o);
    CHECK(run(c, {"SET", "x", "before"}).text == "OK");
    srv.pause();
    auto t0 = std::chrono::steady_clock::now();
    auto r = run(c, {"GET", "x"}, 50ms);
    auto waited = std::chrono::steady_clock::now() - t0;
    CHECK(r.error == redis::errc::timeout);
    CHECK(waited < 2s);  // bounded by the deadline (generous slack for a busy machine)
    srv.resume();
    // The GET's reply arrives now and must be dropped: the next request gets its own answer.
    CHECK(run(c, {"SET", "x", "after"}).text == "OK");
    CHECK(run(c, {"GET", "x"}).text == "after");
}

TEST_CASE("redis: a server that stops answering is dropped after timeout_ms and reconnected", "[redis]") {
    redis_server srv;
    io_thread io;
    auto o = opts_for(srv);
    o.command_timeout = 100ms;
    o.connect_timeout = 100ms;
    redis::client c(io.ioc.get_executor(), o);
    CHECK(run(c, {"PING"}).text == "PONG");
    srv.pause();
    auto r = run(c, {"PING"}, 1000ms);
    CHECK((r.error == redis::errc::timeout || r.error == redis::errc::disconnected));
    srv.resume();
    CHECK(run_until_ok(c, {"PING"}).text == "PONG");
}

TEST_CASE("redis: killed server fails requests at once, restarted server is used again", "[redis]") {
    redis_server srv;
    io_thread io;
    auto before = metrics_registry::global().counter_value("filterd_redis_requests_total",
                                                           {{"result", "disconnected"}});
    redis::client c(io.ioc.get_executor(), opts_for(srv));
    CHECK(run(c, {"SET", "k", "1"}).text == "OK");
    srv.kill();
    auto r = run(c, {"GET", "k"}, 1000ms);
    CHECK(r.error == redis::errc::disconnected);
    // While down: fast failures, no queue.
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 20; ++i)
        CHECK(run(c, {"GET", "k"}, 1000ms).error != redis::errc::ok);
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);
    srv.start();
    CHECK(run_until_ok(c, {"SET", "k", "2"}).text == "OK");
    CHECK(run(c, {"GET", "k"}).text == "2");
    CHECK(metrics_registry::global().counter_value("filterd_redis_requests_total", {{"result", "disconnected"}}) >
          before);
}

TEST_CASE("redis: requests past max_pending are refused, not queued", "[redis]") {
    redis_server srv;
    io_thread io;
    auto o = opts_for(srv);
    o.max_pending = 4;
    redis::client c(io.ioc.get_executor(), o);
    CHECK(run(c, {"PING"}).text == "PONG");
    srv.pause();
    std::atomic<int> overloaded{0}, done{0};
    std::promise<void> all;
    for (int i = 0; i < 10; ++i)
        c.command({"PING"}, redis::clock::now() + 300ms, [&](redis::result&& r) {
            if (r.error == redis::errc::overloaded)
                ++overloaded;
            if (++done == 10)
                all.set_value();
        });
    REQUIRE(all.get_future().wait_for(10s) == std::future_status::ready);
    srv.resume();
    CHECK(overloaded == 6);
}

TEST_CASE("redis: key slots follow the cluster spec, hash tags included", "[redis]") {
    CHECK(redis::key_slot("foo") == 12182);
    CHECK(redis::key_slot("123456789") == 12739);
    CHECK(redis::key_slot("{user1000}.following") == redis::key_slot("{user1000}.followers"));
    CHECK(redis::key_slot("{user1000}.following") == redis::key_slot("user1000"));
    CHECK(redis::key_slot("foo{}{bar}") == redis::key_slot("foo{}{bar}"));
    CHECK(redis::key_slot("foo{{bar}}zap") == redis::key_slot("{bar"));
}

namespace {

/// Index of the cluster node that owns `key` (the others answer MOVED).
std::size_t owner_of(filterd::testing::redis_cluster& cl, const std::string& key) {
    for (std::size_t i = 0; i < cl.size(); ++i)
        if (cl.node(i).cli("GET '" + key + "'").find("MOVED") == std::string::npos)
            return i;
    return cl.size();
}

}  // namespace

TEST_CASE("redis cluster: requests follow the slot map from one seed", "[redis][cluster]") {
    filterd::testing::redis_cluster cl;
    io_thread io;
    redis::options o = seed_opts("127.0.0.1", cl.node(1).port(), true);
    redis::client c(io.ioc.get_executor(), o);
    for (int i = 0; i < 60; ++i) {
        std::string k = "key-" + std::to_string(i);
        REQUIRE(run(c, {"SET", k, std::to_string(i)}).text == "OK");
    }
    for (int i = 0; i < 60; ++i)
        CHECK(run(c, {"GET", "key-" + std::to_string(i)}).text == std::to_string(i));
    // The keys really are spread over the three masters.
    for (std::size_t n = 0; n < cl.size(); ++n)
        CHECK(std::stoi(cl.node(n).cli("DBSIZE")) > 0);
}

TEST_CASE("redis cluster: a slot migrated during load loses and double-counts nothing", "[redis][cluster]") {
    filterd::testing::redis_cluster cl;
    io_thread io;
    redis::options o;
    o.cluster = true;
    for (std::size_t n = 0; n < cl.size(); ++n)
        o.seeds.push_back({"127.0.0.1", cl.node(n).port()});
    o.command_timeout = 2000ms;
    redis::client c(io.ioc.get_executor(), o);
    const std::string key = "filterd:{m:acme}:counter";
    REQUIRE(run(c, {"SET", key, "0"}).text == "OK");
    const std::size_t from = owner_of(cl, key);
    REQUIRE(from < cl.size());
    const std::size_t to = (from + 1) % cl.size();
    const int slot = redis::key_slot(key);

    std::atomic<int> ok{0}, failed{0}, done{0};
    std::atomic<bool> stop{false};
    std::thread load([&] {
        int sent = 0;
        while (!stop || sent < 500) {
            std::promise<void> batch;
            std::atomic<int> left{20};
            for (int i = 0; i < 20; ++i, ++sent)
                c.command(
                    {"INCR", key}, redis::clock::now() + 2s,
                    [&](redis::result&& r) {
                        (r.error == redis::errc::ok ? ok : failed)++;
                        ++done;
                        if (--left == 0)
                            batch.set_value();
                    },
                    1);
            batch.get_future().wait();
        }
    });
    std::this_thread::sleep_for(100ms);
    cl.migrate_slot(slot, from, to);
    std::this_thread::sleep_for(200ms);
    stop = true;
    load.join();
    CHECK(owner_of(cl, key) == to);
    // Every INCR that was answered OK is in the value exactly once, on the new owner.
    CHECK(std::stoll(cl.node(to).cli("GET '" + key + "'")) == ok.load());
    CHECK(failed.load() == 0);
    CHECK(ok.load() >= 500);
    CHECK(metrics_registry::global().counter_value("filterd_redis_redirects_total", {{"kind", "moved"}}) > 0);
}

namespace {

/// A throwaway CA and a server certificate for "localhost" / 127.0.0.1, made with the openssl CLI.
struct test_pki {
    std::string dir;
    test_pki() {
        char tmpl[] = "/tmp/filterd-pki-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir = tmpl;
        auto sh = [&](const std::string& cmd) { run_capture("cd " + dir + " && " + cmd + " >/dev/null 2>&1"); };
        for (const char* ca : {"ca", "other-ca"})
            sh(std::string("openssl req -x509 -newkey rsa:2048 -nodes -keyout ") + ca + ".key -out " + ca +
               ".crt -days 1 -subj /CN=" + ca);
        sh("openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=localhost");
        sh("printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext");
        sh("openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out srv.crt -days 1 -extfile ext");
        REQUIRE(std::filesystem::exists(dir + "/srv.crt"));
    }
    ~test_pki() {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
};

}  // namespace

TEST_CASE("redis: TLS with certificate and host name verification", "[redis][tls]") {
    test_pki pki;
    const auto tls_port = free_port();
    redis_server srv({"--port", "0", "--tls-port", std::to_string(tls_port), "--tls-cert-file", pki.dir + "/srv.crt",
                      "--tls-key-file", pki.dir + "/srv.key", "--tls-ca-cert-file", pki.dir + "/ca.crt",
                      "--tls-auth-clients", "no"},
                     false, "-p " + std::to_string(tls_port) + " --tls --cacert " + pki.dir + "/ca.crt");
    io_thread io;
    auto opts = [&](const std::string& ca, const std::string& name) {
        redis::options o;
        o.seeds.push_back({"127.0.0.1", tls_port});
        o.command_timeout = 2000ms;
        o.connect_timeout = 2000ms;
        o.tls.enabled = true;
        o.tls.ca_file = pki.dir + "/" + ca;
        o.tls.server_name = name;
        return o;
    };
    redis::client good(io.ioc.get_executor(), opts("ca.crt", "localhost"));
    CHECK(run(good, {"SET", "t", "over-tls"}).text == "OK");
    CHECK(run(good, {"GET", "t"}).text == "over-tls");
    redis::client wrong_ca(io.ioc.get_executor(), opts("other-ca.crt", "localhost"));
    CHECK(run(wrong_ca, {"GET", "t"}).error == redis::errc::disconnected);
    redis::client wrong_name(io.ioc.get_executor(), opts("ca.crt", "redis.example"));
    CHECK(run(wrong_name, {"GET", "t"}).error == redis::errc::disconnected);
}

namespace {

/// The clients connected to `srv` other than the redis-cli asking, from CLIENT LIST.
std::vector<std::string> client_lines(const redis_server& srv) {
    std::vector<std::string> out;
    std::string text = srv.cli("CLIENT LIST");
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
        if (line.find("id=") != std::string::npos && line.find("cmd=client|list") == std::string::npos)
            out.push_back(line);
        if (nl == std::string::npos)
            break;
        pos = nl + 1;
    }
    return out;
}

}  // namespace

TEST_CASE("redis: pool_size N opens N connections to the node, spreads requests over them, and every reply "
          "reaches its own request",
          "[redis][pool]") {
    redis_server srv;
    io_thread io;
    auto o = opts_for(srv);
    o.pool_size = 4;
    redis::client c(io.ioc.get_executor(), o);

    // Requests on different connections are not ordered with each other, so the keys are written
    // first; then 1000 concurrent GETs from 4 threads, interleaved with 1000 ECHOs, each checking that
    // its reply is its own. A reply handed to another request shows as a wrong value.
    constexpr int threads = 4, per_thread = 250;
    auto key_of = [](int t, int i) { return "pool:" + std::to_string(t) + ":" + std::to_string(i); };
    auto value_of = [](int t, int i) { return "v" + std::to_string(t * 100'000 + i * 13); };
    std::atomic<int> ok{0}, wrong{0}, done{0};
    {
        std::promise<void> written;
        for (int t = 0; t < threads; ++t)
            for (int i = 0; i < per_thread; ++i)
                c.command({"SET", key_of(t, i), value_of(t, i)}, redis::clock::now() + 10s, [&](redis::result&& r) {
                    (r.error == redis::errc::ok && r.value.view().str() == "OK" ? ok : wrong)++;
                    if (++done == threads * per_thread)
                        written.set_value();
                });
        REQUIRE(written.get_future().wait_for(30s) == std::future_status::ready);
        REQUIRE(ok == threads * per_thread);
    }
    ok = 0;
    done = 0;
    std::promise<void> all;
    std::vector<std::thread> senders;
    for (int t = 0; t < threads; ++t)
        senders.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i) {
                const std::string value = value_of(t, i);
                const std::string token = "echo-" + std::to_string(t) + "-" + std::to_string(i);
                auto check = [&](std::string expected) {
                    return [&, expected = std::move(expected)](redis::result&& r) {
                        (r.error == redis::errc::ok && r.value.view().str() == expected ? ok : wrong)++;
                        if (++done == 2 * threads * per_thread)
                            all.set_value();
                    };
                };
                c.command({"GET", key_of(t, i)}, redis::clock::now() + 10s, check(value));
                c.command({"ECHO", token}, redis::clock::now() + 10s, check(token));
            }
        });
    for (auto& s : senders)
        s.join();
    REQUIRE(all.get_future().wait_for(30s) == std::future_status::ready);
    CHECK(ok == 2 * threads * per_thread);
    CHECK(wrong == 0);

    // Exactly pool_size connections on the server.
    CHECK(client_lines(srv).size() == 4);

    // Spread: CLIENT ID answers with the id of the connection that carried it. 400 of them land on all
    // four connections, a fair share each (round robin: 100 each while none reconnects).
    std::mutex mu;
    std::map<long long, int> per_connection;
    std::atomic<int> ids{0};
    std::promise<void> ids_done;
    for (int i = 0; i < 400; ++i)
        c.command({"CLIENT", "ID"}, redis::clock::now() + 10s, [&](redis::result&& r) {
            {
                std::lock_guard lock(mu);
                if (r.error == redis::errc::ok && r.value.view().is_integer())
                    ++per_connection[r.value.view().integer()];
            }
            if (++ids == 400)
                ids_done.set_value();
        });
    REQUIRE(ids_done.get_future().wait_for(30s) == std::future_status::ready);
    CHECK(per_connection.size() == 4);
    for (const auto& [id, n] : per_connection) {
        INFO("connection " << id);
        CHECK(n >= 50);
    }
    // Still the same four: the pool did not grow under load.
    CHECK(client_lines(srv).size() == 4);
}

TEST_CASE("redis cluster: pool_size 2 opens two connections to each master", "[redis][pool][cluster]") {
    filterd::testing::redis_cluster cl;
    io_thread io;
    redis::options o = seed_opts("127.0.0.1", cl.node(0).port(), true);
    o.pool_size = 2;
    redis::client c(io.ioc.get_executor(), o);
    for (int i = 0; i < 60; ++i)
        REQUIRE(run(c, {"SET", "pk-" + std::to_string(i), "1"}).text == "OK");
    // Every master holds some of these keys, and has exactly pool_size connections from the client
    // (the seed also answered CLUSTER SLOTS on one of its two).
    for (std::size_t n = 0; n < cl.size(); ++n) {
        INFO("node " << n);
        CHECK(client_lines(cl.node(n)).size() == 2);
    }
}

TEST_CASE("redis: seeds given as host names are resolved without blocking and used", "[redis][resolve]") {
    redis_server srv;
    io_thread io;
    auto cfg = boost::json::parse(R"({"address": "localhost:)" + std::to_string(srv.port()) + R"("})");
    config_object obj(cfg, "filters.x.redis");
    auto o = redis::parse_options(obj);
    obj.finish();
    REQUIRE(o.seeds.at(0).host == "localhost");
    o.command_timeout = 2000ms;
    o.connect_timeout = 2000ms;
    redis::client c(io.ioc.get_executor(), o);
    CHECK(run(c, {"SET", "by-name", "yes"}).text == "OK");
    CHECK(run(c, {"GET", "by-name"}).text == "yes");

    SECTION("a cluster seed by host name") {
        filterd::testing::redis_cluster cl;
        redis::options co = seed_opts("localhost", cl.node(2).port(), true);
        co.connect_timeout = 2000ms;
        redis::client cc(io.ioc.get_executor(), co);
        for (int i = 0; i < 30; ++i)
            REQUIRE(run(cc, {"SET", "n-" + std::to_string(i), "1"}).text == "OK");
        for (std::size_t n = 0; n < cl.size(); ++n)
            CHECK(std::stoi(cl.node(n).cli("DBSIZE")) > 0);
    }
}

TEST_CASE("redis: a name that does not resolve fails requests at their deadline, and the I/O thread keeps serving",
          "[redis][resolve]") {
    redis_server srv;
    io_thread io;  // one thread shared by both clients: a blocking lookup would stall the good one
    redis::options bad_o = seed_opts("no-such-host.invalid", 6379);
    bad_o.connect_timeout = 2000ms;
    redis::client bad(io.ioc.get_executor(), bad_o);
    redis::client good(io.ioc.get_executor(), opts_for(srv));
    for (int i = 0; i < 5; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        auto r = run(bad, {"GET", "k"}, 300ms);
        CHECK((r.error == redis::errc::disconnected || r.error == redis::errc::timeout));
        CHECK(std::chrono::steady_clock::now() - t0 < 3s);  // the 300 ms deadline, with slack
        CHECK(run(good, {"PING"}).text == "PONG");
    }
}
