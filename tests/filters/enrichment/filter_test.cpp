// enrichment behaviour, one section per bullet of the issue.
#include "filters/enrichment/filter.hpp"  // first: the header is self-contained

#include "helpers.hpp"

#include <set>

using namespace enr_test;
using hs = std::vector<proto::header_spec>;

// ---- removing headers clients must not set ----------------------------------------------------------------

TEST_CASE("enrichment: removes every internal-prefix header, as spelled, case-insensitively", "[filter]") {
    fixture fx;
    auto r = run(fx, hs{{"X-Gw-Merchant-Id", {"evil"}},
                        {"x-gw-client-ip", {"10.0.0.1"}},
                        {"X-GW-ANYTHING", {"a"}},
                        {"X-Gateway", {"kept"}},
                        {"X-Gwx", {"kept"}},
                        {"Content-Type", {"application/json"}}});
    REQUIRE(r.result == outcome::allow);
    CHECK(r.removed("X-Gw-Merchant-Id"));
    CHECK(r.removed("x-gw-client-ip"));
    CHECK(r.removed("X-GW-ANYTHING"));
    CHECK_FALSE(r.removed("X-Gateway"));
    CHECK_FALSE(r.removed("X-Gwx"));
    CHECK_FALSE(r.removed("Content-Type"));
    // not authenticated: the forged merchant header is removed and not replaced
    CHECK_FALSE(r.set("X-Gw-Merchant-Id"));
    CHECK(fx.count("headers_removed") == 3);
}

TEST_CASE("enrichment: '_' and '-' are the same character in every strip rule", "[filter]") {
    // CGI, WSGI and PHP-style backends read X_Gw_Merchant_Id as X-Gw-Merchant-Id.
    fixture fx(R"({"strip_headers": ["X-Debug"]})", R"({"strip_headers": ["X-Route-Secret"]})");
    auto r = run(fx,
                 hs{{"X_Gw_Merchant_Id", {"evil"}},
                    {"x_gw-key_id", {"evil"}},
                    {"X-Gw_Client-Ip", {"10.0.0.1"}},
                    {"X_Original_URL", {"/admin"}},
                    {"X_HTTP_Method_Override", {"DELETE"}},
                    {"x_debug", {"1"}},
                    {"X_Route_Secret", {"s"}},
                    {"X_Request_Id", {"client-id"}},
                    {"X_Client_Request_Id", {"forged"}},
                    {"X_Gateway", {"kept"}},
                    {"Content_Type", {"kept"}}},
                 "203.0.113.7", [](context& c) {
                     c.authenticated = true;
                     c.merchant_id = "acme";
                     c.key_id = "k1";
                 });
    REQUIRE(r.result == outcome::allow);
    for (const char* n :
         {"X_Gw_Merchant_Id", "x_gw-key_id", "X-Gw_Client-Ip", "X_Original_URL", "X_HTTP_Method_Override", "x_debug",
          "X_Route_Secret", "X_Request_Id", "X_Client_Request_Id"}) {
        INFO(n);
        CHECK(r.removed(n));
    }
    CHECK_FALSE(r.removed("X_Gateway"));
    CHECK_FALSE(r.removed("Content_Type"));
    CHECK(r.set("X-Gw-Merchant-Id") == "acme");
    // the underscore spelling counts as the inbound X-Request-Id
    CHECK(r.set("X-Client-Request-Id") == "client-id");
}

TEST_CASE("enrichment: Connection tokens that name trusted or stripped headers are removed", "[filter]") {
    fixture fx(R"({"strip_headers": ["X-Debug"]})");
    SECTION("trusted headers named in Connection") {
        auto r = run(fx, hs{{"Connection", {"keep-alive, X-Gw-Merchant-Id, X-Gw-Key-Id"}}});
        REQUIRE(r.result == outcome::allow);
        CHECK(r.removed("Connection"));
        CHECK(r.set("Connection") == "keep-alive");
        CHECK(fx.count("connection_tokens_removed") == 2);
    }
    SECTION("every spelling, several values, and headers the filter sets") {
        auto r = run(fx, hs{{"connection", {"x_gw_merchant_id,close", "\tX-Request-Id ,traceparent"}},
                            {"Connection", {"X-Debug,  Upgrade", "tracestate, X-HTTP-Method-Override"}}});
        REQUIRE(r.result == outcome::allow);
        CHECK(r.removed("connection"));
        CHECK(r.set("connection") == "close, Upgrade");
    }
    SECTION("nothing left: the header is removed and not set again") {
        auto r = run(fx, hs{{"Connection", {"X-Gw-Merchant-Id"}}});
        REQUIRE(r.result == outcome::allow);
        CHECK(r.removed("Connection"));
        CHECK_FALSE(r.set("Connection"));
    }
    SECTION("an ordinary Connection header is left alone") {
        auto r = run(fx, hs{{"Connection", {"keep-alive, Upgrade"}}, {"Upgrade", {"h2c"}}});
        REQUIRE(r.result == outcome::allow);
        CHECK_FALSE(r.removed("Connection"));
        CHECK_FALSE(r.set("Connection"));
        CHECK(fx.count("connection_tokens_removed") == 0);
    }
}

TEST_CASE("enrichment: removes the URL and method override headers", "[filter]") {
    fixture fx;
    auto r = run(
        fx, hs{{"X-Original-URL", {"/admin"}}, {"x-rewrite-url", {"/admin"}}, {"X-HTTP-Method-Override", {"DELETE"}}});
    REQUIRE(r.result == outcome::allow);
    CHECK(r.removed("X-Original-URL"));
    CHECK(r.removed("x-rewrite-url"));
    CHECK(r.removed("X-HTTP-Method-Override"));
}

TEST_CASE("enrichment: removes the configured global and route lists, and nothing else", "[filter]") {
    fixture fx(R"({"strip_headers": ["X-Debug"]})", R"({"strip_headers": ["X-Route-Secret"]})");
    auto r = run(fx, hs{{"x-debug", {"1"}}, {"X-Route-Secret", {"s"}}, {"X-Other", {"o"}}, {"Accept", {"*/*"}}});
    REQUIRE(r.result == outcome::allow);
    CHECK(r.removed("x-debug"));
    CHECK(r.removed("X-Route-Secret"));
    CHECK(r.ctx.remove_headers.size() == 2);

    fixture other(R"({"strip_headers": ["X-Debug"]})");  // the route list applies to its route only
    auto r2 = run(other, hs{{"X-Route-Secret", {"s"}}});
    CHECK_FALSE(r2.removed("X-Route-Secret"));
}

TEST_CASE("enrichment: a custom internal prefix is the one removed and used", "[filter]") {
    fixture fx(R"({"internal_prefix": "X-Int-"})");
    auto r = run(fx, hs{{"X-Int-Merchant-Id", {"evil"}}, {"X-Gw-Foo", {"a"}}});
    REQUIRE(r.result == outcome::allow);
    CHECK(r.removed("X-Int-Merchant-Id"));
    CHECK_FALSE(r.removed("X-Gw-Foo"));
    CHECK(r.set("X-Int-Request-Id"));
    CHECK(r.set("X-Int-Received-At"));
    CHECK_FALSE(r.set("X-Gw-Request-Id"));
}

TEST_CASE("enrichment: a name repeated in several spellings or values is removed once per spelling", "[filter]") {
    fixture fx;
    auto r = run(fx, hs{{"X-Gw-A", {"1", "2"}}, {"X-Gw-A", {"3"}}, {"x-gw-a", {"4"}}});
    REQUIRE(r.result == outcome::allow);
    CHECK(r.ctx.remove_headers == std::vector<std::string>{"X-Gw-A"});
}

TEST_CASE("enrichment: appends to what earlier filters produced", "[filter]") {
    fixture fx;
    auto r = run(fx, hs{{"X-Gw-A", {"1"}}}, "203.0.113.7", [](context& c) {
        c.remove_headers.push_back("X-Earlier");
        c.set_headers.push_back({"X-Set-Earlier", "v"});
    });
    REQUIRE(r.result == outcome::allow);
    CHECK(r.ctx.remove_headers.front() == "X-Earlier");
    CHECK(r.removed("X-Gw-A"));
    CHECK(r.ctx.set_headers.front().name == "X-Set-Earlier");
}

TEST_CASE("enrichment: a header name to remove that carries CR, LF or NUL denies 400", "[filter]") {
    fixture fx;
    auto bad = GENERATE(std::string("X-Gw-\r\nEvil"), std::string("X-Gw-A\n"), std::string("X-Gw-\0A", 7));
    auto r = run(fx, hs{{"X-Gw-Fine", {"1"}}, {bad, {"v"}}});
    CHECK(r.result == outcome::deny);
    CHECK(r.ctx.deny_status == 400);
    CHECK(r.ctx.reason == "bad_header_name");
    CHECK(r.ctx.remove_headers.empty());
    CHECK(r.ctx.set_headers.empty());
}

// ---- request ids ------------------------------------------------------------------------------------------

TEST_CASE("enrichment: a valid inbound X-Request-Id is kept as X-Client-Request-Id", "[filter]") {
    fixture fx;
    auto id = GENERATE(as<std::string>{}, "abc-123", "A.b_c-9", std::string(64, 'z'));
    auto r = run(fx, hs{{"x-request-id", {id}}});
    REQUIRE(r.result == outcome::allow);
    CHECK(r.set("X-Client-Request-Id") == id);
    CHECK(r.removed("x-request-id"));  // the inbound spelling goes; the fresh id replaces it
    auto fresh = r.set("X-Request-Id");
    REQUIRE(fresh);
    CHECK(*fresh != id);
    CHECK(is_uuid_v7(*fresh));
    CHECK(fx.count("request_id_kept") == 1);
}

TEST_CASE("enrichment: an invalid inbound X-Request-Id is dropped", "[filter]") {
    fixture fx;
    auto id = GENERATE(as<std::string>{}, "", std::string(65, 'z'), "has space", "a/b", "semi;colon", "caf\xc3\xa9",
                       "id\r\nX-Gw-Merchant-Id: m1", std::string("nul\0id", 6));
    CAPTURE(id);
    auto r = run(fx, hs{{"X-Request-Id", {id}}});
    REQUIRE(r.result == outcome::allow);
    CHECK_FALSE(r.set("X-Client-Request-Id"));
    CHECK(r.removed("X-Request-Id"));
    REQUIRE(r.set("X-Request-Id"));
    CHECK(is_uuid_v7(*r.set("X-Request-Id")));
    CHECK(fx.count("request_id_dropped") == 1);
}

TEST_CASE("enrichment: a repeated X-Request-Id is dropped", "[filter]") {
    fixture fx;
    auto r = run(fx, hs{{"X-Request-Id", {"a1", "a2"}}});
    CHECK_FALSE(r.set("X-Client-Request-Id"));
    auto r2 = run(fx, hs{{"X-Request-Id", {"a1"}}, {"x-request-id", {"a1"}}});
    CHECK_FALSE(r2.set("X-Client-Request-Id"));
}

TEST_CASE("enrichment: an inbound X-Client-Request-Id is never passed through", "[filter]") {
    fixture fx;
    SECTION("without X-Request-Id it is removed and not set") {
        auto r = run(fx, hs{{"x-client-request-id", {"forged"}}});
        CHECK(r.removed("x-client-request-id"));
        CHECK_FALSE(r.set("X-Client-Request-Id"));
    }
    SECTION("with a valid X-Request-Id it is replaced by that id") {
        auto r = run(fx, hs{{"X-Client-Request-Id", {"forged"}}, {"X-Request-Id", {"real-1"}}});
        CHECK(r.removed("X-Client-Request-Id"));
        CHECK(r.set("X-Client-Request-Id") == "real-1");
    }
}

TEST_CASE("enrichment: X-Request-Id is a UUIDv7 carrying ctx.wall_ns in ms, mirrored in X-Gw-Request-Id", "[filter]") {
    fixture fx;
    auto r = run(fx, {});
    REQUIRE(r.result == outcome::allow);
    auto id = r.set("X-Request-Id");
    REQUIRE(id);
    CHECK(is_uuid_v7(*id));
    CHECK(r.set("X-Gw-Request-Id") == id);
    // the first 48 bits are the Unix time in ms
    std::uint64_t ms = static_cast<std::uint64_t>(t0_ns / 1'000'000);
    std::string hex48 = id->substr(0, 8) + id->substr(9, 4);
    CHECK(std::stoull(hex48, nullptr, 16) == ms);
}

TEST_CASE("enrichment: request ids are unique, also within one millisecond", "[filter]") {
    fixture fx;
    std::set<std::string> ids;
    for (int i = 0; i < 5000; ++i) {
        auto r = run(fx, {});
        ids.insert(*r.set("X-Request-Id"));
    }
    CHECK(ids.size() == 5000);
}

// ---- traceparent ------------------------------------------------------------------------------------------

namespace {
const std::string in_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
const std::string in_parent = "00f067aa0ba902b7";
}  // namespace

TEST_CASE("enrichment: a valid traceparent keeps trace id and flags and gets a new parent id", "[filter]") {
    fixture fx;
    auto flags = GENERATE(as<std::string>{}, "01", "00");
    auto r = run(fx, hs{{"Traceparent", {"00-" + in_trace + "-" + in_parent + "-" + flags}},
                        {"tracestate", {"rojo=00f067aa0ba902b7"}}});
    REQUIRE(r.result == outcome::allow);
    auto tp = r.set("traceparent");
    REQUIRE(tp);
    CHECK(is_traceparent_00(*tp));
    CHECK(tp->substr(3, 32) == in_trace);
    CHECK(tp->substr(36, 16) != in_parent);
    CHECK(tp->substr(53, 2) == flags);
    CHECK(r.removed("Traceparent"));
    CHECK_FALSE(r.removed("tracestate"));  // same trace: its vendor state still applies
    CHECK(fx.count("trace_continued") == 1);
}

TEST_CASE("enrichment: an invalid traceparent starts a new trace and drops tracestate", "[filter]") {
    fixture fx;
    auto bad = GENERATE_COPY(std::string(""), std::string("garbage"),
                             "00-" + std::string("4BF92F3577B34DA6A3CE929D0E0E4736") + "-" + in_parent +
                                 "-01",                                               // upper case
                             "00-" + std::string(32, '0') + "-" + in_parent + "-01",  // zero trace id
                             "00-" + in_trace + "-" + std::string(16, '0') + "-01",   // zero parent id
                             "ff-" + in_trace + "-" + in_parent + "-01",              // forbidden version
                             "00-" + in_trace + "-" + in_parent + "-01-extra",        // 00 must be 55 chars
                             "00-" + in_trace + "-" + in_parent + "-1",               // short
                             "00_" + in_trace + "-" + in_parent + "-01",              // separator
                             "00-" + in_trace + "-" + in_parent + "-0g",              // flags not hex
                             "0x-" + in_trace + "-" + in_parent + "-01",              // version not hex
                             "01-" + in_trace + "-" + in_parent + "-01x",             // v>00 needs '-' after 55
                             "00-" + in_trace + "\r\n" + in_parent + "-01");
    CAPTURE(bad);
    auto r = run(fx, hs{{"traceparent", {bad}}, {"TraceState", {"rojo=1"}}});
    REQUIRE(r.result == outcome::allow);
    auto tp = r.set("traceparent");
    REQUIRE(tp);
    CHECK(is_traceparent_00(*tp));
    CHECK(tp->substr(3, 32) != in_trace);
    CHECK(tp->substr(53, 2) == "01");  // sample_new_traces defaults to true
    CHECK(r.removed("traceparent"));
    CHECK(r.removed("TraceState"));
    CHECK(fx.count("trace_started") == 1);
}

TEST_CASE("enrichment: a higher traceparent version is continued and re-emitted as version 00", "[filter]") {
    fixture fx;
    auto r = run(fx, hs{{"traceparent", {"cc-" + in_trace + "-" + in_parent + "-03-what-the-future-holds"}}});
    auto tp = r.set("traceparent");
    REQUIRE(tp);
    CHECK(tp->substr(0, 3) == "00-");
    CHECK(tp->substr(3, 32) == in_trace);
    CHECK(tp->substr(53, 2) == "01");  // only the sampled flag is defined in version 00
    CHECK(tp->size() == 55);
}

TEST_CASE("enrichment: a repeated traceparent header starts a new trace", "[filter]") {
    fixture fx;
    std::string v = "00-" + in_trace + "-" + in_parent + "-01";
    auto r = run(fx, hs{{"traceparent", {v, v}}});
    CHECK(r.set("traceparent")->substr(3, 32) != in_trace);
}

TEST_CASE("enrichment: a missing traceparent starts a new trace with the configured flags", "[filter]") {
    fixture sampled;
    CHECK(run(sampled, {}).set("traceparent")->substr(53, 2) == "01");
    fixture unsampled(R"({"sample_new_traces": false})");
    auto r = run(unsampled, {});
    CHECK(is_traceparent_00(*r.set("traceparent")));
    CHECK(r.set("traceparent")->substr(53, 2) == "00");
}

TEST_CASE("enrichment: new trace ids and parent ids are unique", "[filter]") {
    fixture fx;
    std::set<std::string> traces, parents;
    for (int i = 0; i < 2000; ++i) {
        auto tp = *run(fx, {}).set("traceparent");
        traces.insert(tp.substr(3, 32));
        parents.insert(tp.substr(36, 16));
    }
    CHECK(traces.size() == 2000);
    CHECK(parents.size() == 2000);
}

// ---- headers set for the backends -------------------------------------------------------------------------

TEST_CASE("enrichment: merchant and key ids are set only after merchant-auth", "[filter]") {
    fixture fx;
    auto authed = run(fx, {}, "203.0.113.7", [](context& c) {
        c.authenticated = true;
        c.merchant_id = "m_123";
        c.key_id = "k-2026";
    });
    REQUIRE(authed.result == outcome::allow);
    CHECK(authed.set("X-Gw-Merchant-Id") == "m_123");
    CHECK(authed.set("X-Gw-Key-Id") == "k-2026");

    auto anon = run(fx, {}, "203.0.113.7", [](context& c) { c.merchant_id = "m_123"; });  // not authenticated
    CHECK_FALSE(anon.set("X-Gw-Merchant-Id"));
    CHECK_FALSE(anon.set("X-Gw-Key-Id"));
}

TEST_CASE("enrichment: an authenticated context with unusable ids fails closed", "[filter]") {
    fixture fx;
    auto [mid, kid] = GENERATE(
        table<std::string, std::string>({{"", "k"}, {"m", ""}, {"m\r\nX-Evil: 1", "k"}, {"m", std::string("k\0", 2)}}));
    auto r = run(fx, {}, "203.0.113.7", [&](context& c) {
        c.authenticated = true;
        c.merchant_id = mid;
        c.key_id = kid;
    });
    CHECK(r.result == outcome::error);
    CHECK(r.ctx.reason == "bad_auth_context");
    CHECK(r.ctx.set_headers.empty());
}

TEST_CASE("enrichment: X-Gw-Client-Ip carries a valid client ip", "[filter]") {
    fixture fx;
    auto ip = GENERATE(as<std::string>{}, "203.0.113.7", "2001:db8::1", "::ffff:192.0.2.1");
    CHECK(run(fx, {}, ip).set("X-Gw-Client-Ip") == ip);
}

TEST_CASE("enrichment: an invalid client ip is not emitted", "[filter]") {
    fixture fx;
    auto ip = GENERATE(as<std::string>{}, "", "not-an-ip", "203.0.113.7\r\nX-Gw-Merchant-Id: m1",
                       std::string("203.0.113.7\0", 12), "203.0.113.7 ", "fe80::1%eth0", "999.1.1.1",
                       std::string(100, '1'));
    CAPTURE(ip);
    auto r = run(fx, {}, ip);
    REQUIRE(r.result == outcome::allow);
    CHECK_FALSE(r.set("X-Gw-Client-Ip"));
    CHECK(fx.count("client_ip_invalid") == 1);
}

TEST_CASE("enrichment: X-Gw-Received-At is RFC 3339 UTC with milliseconds from ctx.wall_ns", "[filter]") {
    fixture fx;
    auto [ns, want] = GENERATE(table<std::int64_t, std::string>({
        {t0_ns, "2026-11-26T12:00:00.123Z"},                // truncated, not rounded
        {1709251199999000000, "2024-02-29T23:59:59.999Z"},  // leap day
        {946684800000000000, "2000-01-01T00:00:00.000Z"},
        {1000000, "1970-01-01T00:00:00.001Z"},
    }));
    auto r = run(fx, {}, "203.0.113.7", [ns = ns](context& c) { c.wall_ns = ns; });
    REQUIRE(r.result == outcome::allow);
    CHECK(r.set("X-Gw-Received-At") == want);
}

TEST_CASE("enrichment: an unset clock fails closed", "[filter]") {
    fixture fx;
    auto ns = GENERATE(std::int64_t{0}, std::int64_t{-5});
    auto r = run(fx, hs{{"X-Gw-A", {"1"}}}, "203.0.113.7", [ns](context& c) { c.wall_ns = ns; });
    CHECK(r.result == outcome::error);
    CHECK(r.ctx.reason == "clock_unset");
    CHECK(r.ctx.set_headers.empty());
    CHECK(r.ctx.remove_headers.empty());
    CHECK(fx.count("failed") == 1);
}

TEST_CASE("enrichment: the full set of headers on an ordinary request", "[filter]") {
    fixture fx;
    auto r = run(fx, hs{{"Content-Type", {"application/json"}}});
    REQUIRE(r.result == outcome::allow);
    std::vector<std::string> names;
    for (const auto& h : r.ctx.set_headers)
        names.push_back(h.name);
    CHECK(names == std::vector<std::string>{"X-Request-Id", "X-Gw-Request-Id", "traceparent", "X-Gw-Received-At",
                                            "X-Gw-Client-Ip"});
    CHECK(r.ctx.remove_headers.empty());
}

TEST_CASE("enrichment: no emitted name or value carries CR, LF or NUL, whatever the client sends", "[filter]") {
    fixture fx;
    const std::string crlf = "v\r\nX-Gw-Merchant-Id: evil";
    const std::string nul("v\0w", 3);
    auto r = run(fx,
                 hs{{"X-Request-Id", {crlf}},
                    {"X-Client-Request-Id", {crlf}},
                    {"traceparent", {"00-" + in_trace + "-" + in_parent + "-01\r\n"}},
                    {"tracestate", {crlf}},
                    {"X-Gw-Key-Id", {nul}},
                    {"X-Forwarded-For", {crlf}},
                    {"User-Agent", {nul}}},
                 "10.0.0.1\nX: y", [](context& c) {
                     c.authenticated = true;
                     c.merchant_id = "m1";
                     c.key_id = "k1";
                 });
    REQUIRE(r.result == outcome::allow);
    REQUIRE(r.ctx.set_headers.size() >= 6);
    for (const auto& h : r.ctx.set_headers) {
        CAPTURE(h.name, h.value);
        CHECK_FALSE(has_ctl(h.name));
        CHECK_FALSE(has_ctl(h.value));
        CHECK_FALSE(h.value.empty());
    }
    for (const auto& n : r.ctx.remove_headers)
        CHECK_FALSE(has_ctl(n));
    CHECK(r.removed("tracestate"));  // the traceparent was invalid, so its state goes too
}
