// Included first: proves the header is self-contained.
#include "filters/merchant_auth/filter.hpp"

#include "core/log.hpp"
#include "support.hpp"
#include "tests/support/spv1.hpp"

#include <catch2/catch.hpp>
#include <openssl/sha.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>
#include <unistd.h>

using namespace filterd;
using namespace filterd::merchant_auth;
using namespace filterd::merchant_auth::testing;

namespace {

bool has_header(const context& ctx, std::string_view name, std::string_view value) {
    for (const auto& h : ctx.deny_headers)
        if (iequals(h.name, name) && h.value == value)
            return true;
    return false;
}

void require_allowed(const run_result& r, std::string_view merchant, std::string_view key) {
    INFO("reason: " << r.ctx.reason);
    REQUIRE(r.result == outcome::allow);
    CHECK(r.ctx.authenticated);
    CHECK(r.ctx.merchant_id == merchant);
    CHECK(r.ctx.key_id == key);
    CHECK(r.ctx.deny_status == 0);
}

// Checks a deny: status, reason, generic body, WWW-Authenticate for 401, and the reason counter moved.
struct deny_check {
    std::string_view reason;
    std::uint64_t before;
    explicit deny_check(std::string_view r) : reason(r), before(denied_count(r)) {}
    void operator()(const run_result& r, std::uint16_t status) const {
        INFO("expected " << reason << ", got " << r.ctx.reason);
        CHECK(r.result == outcome::deny);
        CHECK(r.ctx.reason == reason);
        CHECK(r.ctx.deny_status == status);
        CHECK_FALSE(r.ctx.authenticated);
        CHECK(r.ctx.merchant_id.empty());
        CHECK(r.ctx.deny_content_type == "application/problem+json");
        CHECK(r.ctx.deny_body.find(reason) == std::string::npos);  // the precise reason never reaches the client
        CHECK(r.ctx.deny_body.find(std::to_string(status)) != std::string::npos);
        CHECK(has_header(r.ctx, "WWW-Authenticate", "SPV1") == (status == 401));
        CHECK(denied_count(reason) == before + 1);
    }
};

run_result deny_case(const json::value& cfg, const proto::request_spec& spec, std::string_view reason,
                     std::uint16_t status, std::int64_t wall_s = vector_ts, const json::value* route = nullptr) {
    deny_check check(reason);
    auto b = build(cfg, route);
    auto r = run(b, spec, wall_s);
    check(r, status);
    return r;
}

}  // namespace

TEST_CASE("every committed vector verifies", "[filter]") {
    auto b = build(base_config());
    std::map<std::string, std::pair<std::string, std::string>> expect{
        {"hmac_post_json", {"acme", "k1"}},        {"hmac_get_query", {"acme", "k1"}},
        {"hmac_lowercase_method", {"acme", "k1"}}, {"hmac_binary_body", {"acme", "k2"}},
        {"hmac_path_param", {"acme", "k1"}},       {"rsa_post", {"acme", "r1"}},
        {"ed25519_post", {"acme", "e1"}},          {"globex_own_key", {"globex", "g1"}},
        {"hmac_nonce_max_len", {"acme", "k1"}},    {"hmac_encoded_path", {"acme", "k1"}},
    };
    auto allowed_before = metrics_registry::global().counter_value("filterd_merchant_auth_allowed_total");
    for (const auto& [name, who] : expect) {
        INFO(name);
        require_allowed(run(b, vec(name).spec), who.first, who.second);
    }
    CHECK(metrics_registry::global().counter_value("filterd_merchant_auth_allowed_total") ==
          allowed_before + expect.size());
}

TEST_CASE("committed vectors that must be refused are refused with their reason", "[filter]") {
    int refused = 0;
    for (const auto& [name, v] : vectors()) {
        if (v.expect == "allow")
            continue;
        INFO(name);
        deny_check check(v.expect);
        check(run(build(base_config()), v.spec), 401);
        ++refused;
    }
    CHECK(refused >= 1);  // hmac_timestamp_leading_zeros
}

TEST_CASE("an encoded path verifies: the merchant signs the raw path, filterd sees it decoded", "[filter]") {
    auto v = vec("hmac_encoded_path");
    CHECK(v.raw_path == "/v1/%70ayments/caf%C3%A9%20x+y/a%2Fb");
    CHECK(v.spec.path == "/v1/payments/caf\xC3\xA9 x+y/a/b");  // Go's URL.Path
    require_allowed(run(build(base_config()), v.spec), "acme", "k1");
}

TEST_CASE("the method is upper-cased before signing", "[filter]") {
    auto v = vec("hmac_get_query");
    v.spec.method = "get";
    require_allowed(run(build(base_config()), v.spec), "acme", "k1");
}

TEST_CASE("flipping any canonical component breaks the signature", "[filter]") {
    auto v = vec("hmac_get_query");
    auto component = GENERATE(as<std::string>{}, "method", "path", "query_value", "query_name", "query_added",
                              "query_removed", "merchant", "key", "timestamp", "nonce", "body", "signature");
    INFO(component);
    auto& s = v.spec;
    if (component == "method")
        s.method = "HEAD";
    else if (component == "path")
        s.path = "/v1/payments/";
    else if (component == "query_value")
        s.query[0].second = "capturee";
    else if (component == "query_name")
        s.query[0].first = "Status";
    else if (component == "query_added")
        s.query.emplace_back("extra", "");
    else if (component == "query_removed")
        s.query.pop_back();
    else if (component == "merchant")
        v.set_header("X-Merchant-Id", "acme2");  // acme2 has a k1 too
    else if (component == "key")
        v.set_header("X-Key-Id", "k2");
    else if (component == "timestamp")
        v.set_header("X-Timestamp", std::to_string(vector_ts + 1));
    else if (component == "nonce")
        v.set_header("X-Nonce", "bm9uY2UtMDAwMDAwMDAz");
    else if (component == "body")
        s.body = "x";
    else if (component == "signature") {
        std::string sig = v.header("X-Signature");
        sig[5] = sig[5] == 'A' ? 'B' : 'A';
        v.set_header("X-Signature", sig);
    }
    deny_case(base_config(), s, "bad_signature", 401);
}

TEST_CASE("flipping a component breaks RSA and Ed25519 signatures too", "[filter]") {
    for (const char* name : {"rsa_post", "ed25519_post"}) {
        INFO(name);
        auto v = vec(name);
        v.spec.body += " ";
        deny_case(base_config(), v.spec, "bad_signature", 401);
    }
}

TEST_CASE("timestamps at the skew edge: 300 s passes, 301 s fails", "[filter]") {
    auto [offset, ok] = GENERATE(table<std::int64_t, bool>({{300, true}, {-300, true}, {301, false}, {-301, false}}));
    INFO(offset);
    auto spec = vec("hmac_post_json").spec;
    if (ok)
        require_allowed(run(build(base_config()), spec, vector_ts + offset), "acme", "k1");
    else
        deny_case(base_config(), spec, "timestamp_skew", 401, vector_ts + offset);
}

TEST_CASE("skew is configurable and checked to the nanosecond", "[filter]") {
    json::value cfg = base_config();
    cfg.as_object()["skew_seconds"] = 5;
    auto spec = vec("hmac_post_json").spec;
    deny_case(cfg, spec, "timestamp_skew", 401, vector_ts + 6);
    auto b = build(cfg);
    auto req = filterd::testing::make_request(spec);
    context ctx;
    ctx.wall_ns = (vector_ts + 5) * ns + 1;  // 5 s and 1 ns late
    CHECK(b.impl->on_request(req.view(), ctx) == outcome::deny);
    CHECK(ctx.reason == "timestamp_skew");
}

TEST_CASE("a replayed request is denied, the first one passes", "[filter]") {
    auto b = build(base_config());
    auto spec = vec("rsa_post").spec;
    require_allowed(run(b, spec), "acme", "r1");
    deny_check check("replay");
    check(run(b, spec, vector_ts + 10), 401);
    // Still a replay at the far edge of the window, for every route of the same merchant.
    auto other_route = build(base_config(), nullptr, "refunds", b.instance);
    deny_check check2("replay");
    check2(run(other_route, spec, vector_ts + 300), 401);
}

TEST_CASE("the nonce is recorded only after the signature passed", "[filter]") {
    auto b = build(base_config());
    auto v = vec("hmac_post_json");
    auto forged = v;
    forged.set_header("X-Signature", "v1=" + std::string(43, 'A') + "=");
    deny_check bad("bad_signature");
    bad(run(b, forged.spec), 401);
    require_allowed(run(b, v.spec), "acme", "k1");  // the forged request did not burn the nonce
}

TEST_CASE("replay protection survives a config reload", "[filter]") {
    auto first = build(base_config());
    auto spec = vec("ed25519_post").spec;
    require_allowed(run(first, spec), "acme", "e1");
    json::value cfg = base_config();
    cfg.as_object()["skew_seconds"] = 600;  // a changed config, same nonce store
    auto second = build(cfg, nullptr, "pay", first.instance);
    deny_check check("replay");
    check(run(second, spec, vector_ts + 450), 401);  // live under the new 600 s window
}

TEST_CASE("a full nonce store denies 503 rather than forgetting", "[filter]") {
    json::value cfg = base_config();
    cfg.as_object()["nonce_capacity"] = 1;
    auto b = build(cfg);
    require_allowed(run(b, vec("hmac_post_json").spec), "acme", "k1");
    deny_check check("nonce_store_full");
    auto r = run(b, vec("globex_own_key").spec);  // another merchant, within its own share
    check(r, 503);
    // The remembered nonce is still a replay.
    deny_check replay("replay");
    replay(run(b, vec("hmac_post_json").spec), 401);
}

TEST_CASE("one merchant's flood cannot fill the nonce store for the others", "[filter]") {
    json::value cfg = base_config();
    cfg.as_object()["nonce_capacity"] = 40;
    cfg.as_object()["nonce_merchant_share_percent"] = 25;  // 10 live nonces per merchant
    auto b = build(cfg);
    auto secret = [](const char* file) {
        std::ifstream f(data_dir() + file);
        std::string v;
        std::getline(f, v);
        return v;
    };
    const std::string acme = secret("acme-k1.secret"), globex = secret("globex-g1.secret");
    auto signed_req = [&](const std::string& m, const std::string& k, const std::string& sec, int i) {
        proto::request_spec spec;
        spec.route = "pay";
        spec.filters = {"merchant-auth"};
        spec.method = "POST";
        spec.path = "/v1/payments";
        spec.body = "{}";
        filterd::testing::spv1_sign_hmac(spec, m, k, sec, "flood-nonce-" + std::to_string(i) + "-xxxxxxxx", vector_ts);
        return spec;
    };
    for (int i = 0; i < 10; ++i)
        require_allowed(run(b, signed_req("acme", "k1", acme, i)), "acme", "k1");
    deny_check quota("nonce_quota_exceeded");
    quota(run(b, signed_req("acme", "k1", acme, 10)), 429);
    // The other merchants are unaffected.
    for (int i = 0; i < 10; ++i)
        require_allowed(run(b, signed_req("globex", "g1", globex, i)), "globex", "g1");
    // A replay of an accepted request is still a replay, not the quota.
    deny_check replay("replay");
    replay(run(b, signed_req("acme", "k1", acme, 3)), 401);
}

TEST_CASE("nonce_merchant_share_percent and nonce_journal are checked", "[config]") {
    auto key = [](json::value v) { return config_error_key([&] { build(v); }); };
    json::value c = base_config();
    c.as_object()["nonce_merchant_share_percent"] = 0;
    CHECK(key(c) == "filters.merchant-auth.nonce_merchant_share_percent");
    c = base_config();
    c.as_object()["nonce_journal"] = json::object{{"dir", "relative/dir"}};
    CHECK(key(c) == "filters.merchant-auth.nonce_journal.dir");
    c = base_config();
    c.as_object()["nonce_journal"] = json::object{{"dir", "/tmp/x"}, {"max_bytes", 10}};
    CHECK(key(c) == "filters.merchant-auth.nonce_journal.max_bytes");
    c = base_config();
    c.as_object()["nonce_journal"] = json::object{{"dir", "/proc/no-such-dir/x"}};
    CHECK(key(c) == "filters.merchant-auth.nonce_journal.dir");
    c = base_config();
    c.as_object()["nonce_journal"] = json::object{{"dir", "/tmp/x"}, {"sync", true}};
    CHECK(key(c) == "filters.merchant-auth.nonce_journal.sync");
}

TEST_CASE("another merchant's key is an unknown key", "[filter]") {
    // Correctly signed with globex's g1 secret, but presented as acme: acme has no key g1.
    deny_case(base_config(), vec("cross_merchant_key").spec, "unknown_key", 401);
    // An unknown merchant and an unknown key id of a known merchant, likewise.
    auto v = vec("hmac_post_json");
    v.set_header("X-Merchant-Id", "initech");
    deny_case(base_config(), v.spec, "unknown_key", 401);
    v = vec("hmac_post_json");
    v.set_header("X-Key-Id", "k9");
    deny_case(base_config(), v.spec, "unknown_key", 401);
}

TEST_CASE("an unknown key is denied even when its signature would verify with the stand-in key", "[filter]") {
    // The stand-in for an unknown key of acme is acme's first key (k1): re-labelling a k1-signed request
    // with a key id acme does not have must still be denied.
    json::value cfg = base_config();
    key_of(cfg, "acme", 0)["id"] = "k0";  // k1's secret now sits under id k0, first in the list
    deny_case(cfg, vec("hmac_post_json").spec, "unknown_key", 401);
}

TEST_CASE("key states: revoked, expired, not yet valid", "[filter]") {
    auto spec = vec("hmac_post_json").spec;
    SECTION("revoked") {
        json::value cfg = base_config();
        key_of(cfg, "acme", 0)["state"] = "revoked";
        deny_case(cfg, spec, "key_revoked", 401);
    }
    SECTION("revoked with a bad signature is a bad signature") {
        json::value cfg = base_config();
        key_of(cfg, "acme", 0)["state"] = "revoked";
        auto s = spec;
        s.body = "tampered";
        deny_case(cfg, s, "bad_signature", 401);
    }
    SECTION("expired: now at not_after") {
        json::value cfg = base_config();
        key_of(cfg, "acme", 0)["not_after"] = vector_ts;
        deny_case(cfg, spec, "key_expired", 401);
    }
    SECTION("valid one second before not_after") {
        json::value cfg = base_config();
        key_of(cfg, "acme", 0)["not_after"] = vector_ts + 1;
        require_allowed(run(build(cfg), spec), "acme", "k1");
    }
    SECTION("not yet valid") {
        json::value cfg = base_config();
        key_of(cfg, "acme", 0)["not_before"] = vector_ts + 1;
        deny_case(cfg, spec, "key_not_yet_valid", 401);
    }
    SECTION("valid from not_before") {
        json::value cfg = base_config();
        key_of(cfg, "acme", 0)["not_before"] = vector_ts;
        require_allowed(run(build(cfg), spec), "acme", "k1");
    }
}

TEST_CASE("a retiring key still authenticates, is counted, and stops at not_after", "[filter]") {
    json::value cfg = base_config();
    key_of(cfg, "acme", 0)["state"] = "retiring";
    key_of(cfg, "acme", 0)["not_after"] = vector_ts + 100;
    auto& m = metrics_registry::global();
    labels l{{"merchant", "acme"}, {"key", "k1"}};
    auto before = m.counter_value("filterd_merchant_auth_retiring_key_total", l);
    require_allowed(run(build(cfg), vec("hmac_post_json").spec), "acme", "k1");
    CHECK(m.counter_value("filterd_merchant_auth_retiring_key_total", l) == before + 1);
    // Past its not_after the retiring key is expired (the request itself is still within skew).
    deny_case(cfg, vec("hmac_post_json").spec, "key_expired", 401, vector_ts + 100);
    CHECK(m.counter_value("filterd_merchant_auth_retiring_key_total", l) == before + 1);
}

TEST_CASE("rotation: two active keys of one merchant both work, each by its own id", "[filter]") {
    auto b = build(base_config());
    require_allowed(run(b, vec("hmac_post_json").spec), "acme", "k1");
    require_allowed(run(b, vec("hmac_binary_body").spec), "acme", "k2");
}

TEST_CASE("a suspended merchant is authenticated but forbidden", "[filter]") {
    json::value cfg = base_config();
    cfg.at("merchants").at("acme").as_object()["status"] = "suspended";
    deny_case(cfg, vec("hmac_post_json").spec, "merchant_suspended", 403);
}

TEST_CASE("routes allowed for a key", "[filter]") {
    json::value cfg = base_config();
    key_of(cfg, "acme", 0)["routes"] = json::array{"refunds", "payouts"};
    deny_case(cfg, vec("hmac_post_json").spec, "route_not_allowed", 403);  // the request's route is "pay"
    key_of(cfg, "acme", 0)["routes"] = json::array{"refunds", "pay"};
    require_allowed(run(build(cfg), vec("hmac_post_json").spec), "acme", "k1");
}

TEST_CASE("client IPs allowed for a key", "[filter]") {
    json::value cfg = base_config();
    key_of(cfg, "acme", 0)["cidrs"] = json::array{"192.168.0.0/16", "2001:db8::/32"};
    auto spec = vec("hmac_post_json").spec;  // client 10.1.2.3
    deny_case(cfg, spec, "ip_not_allowed", 403);
    for (const char* ip : {"192.168.7.9", "2001:db8::42", "::ffff:192.168.0.1"}) {
        INFO(ip);
        spec.client_ip = ip;
        require_allowed(run(build(cfg), spec), "acme", "k1");
    }
    for (const char* ip : {"", "garbage", "192.169.0.1"}) {
        INFO(ip);
        spec.client_ip = ip;
        deny_case(cfg, spec, "ip_not_allowed", 403);
    }
}

TEST_CASE("the route's merchant path parameter must name the authenticated merchant", "[filter]") {
    json::value route = json::object{{"merchant_path_param", "merchant"}};
    auto spec = vec("hmac_path_param").spec;
    spec.path_params = {{"merchant", "acme"}};
    require_allowed(run(build(base_config(), &route), spec), "acme", "k1");
    spec.path_params = {{"merchant", "globex"}};
    deny_case(base_config(), spec, "merchant_mismatch", 403, vector_ts, &route);
    spec.path_params = {};
    deny_case(base_config(), spec, "merchant_mismatch", 403, vector_ts, &route);
}

TEST_CASE("the merchant path parameter name is matched case-insensitively, as lura capitalises it", "[filter]") {
    // The documented config says "merchant"; lura gives the plugin the parameter as "Merchant".
    json::value route = json::object{{"merchant_path_param", "merchant"}};
    auto spec = vec("hmac_path_param").spec;
    spec.path_params = {{"Merchant", "acme"}};
    require_allowed(run(build(base_config(), &route), spec), "acme", "k1");
    spec.path_params = {{"Merchant", "globex"}};
    deny_case(base_config(), spec, "merchant_mismatch", 403, vector_ts, &route);
    // Two parameters that differ only in case are ambiguous: a mismatch, whatever their values.
    spec.path_params = {{"Merchant", "acme"}, {"merchant", "acme"}};
    deny_case(base_config(), spec, "merchant_mismatch", 403, vector_ts, &route);
}

TEST_CASE("a body digest (body_sha256) stands for the body it hashes", "[filter]") {
    for (const char* name : {"hmac_post_json", "hmac_binary_body", "rsa_post", "ed25519_post"}) {
        INFO(name);
        auto v = vec(name);
        unsigned char d[SHA256_DIGEST_LENGTH];
        SHA256(reinterpret_cast<const unsigned char*>(v.spec.body.data()), v.spec.body.size(), d);
        auto spec = v.spec;
        spec.body.clear();
        spec.body_sha256 = std::string(reinterpret_cast<const char*>(d), sizeof d);
        require_allowed(run(build(base_config()), spec), v.header("X-Merchant-Id"), v.header("X-Key-Id"));
        spec.body_sha256->at(0) ^= 1;  // a digest of another body: the signature does not match
        deny_case(base_config(), spec, "bad_signature", 401);
    }
}

TEST_CASE("body_sha256 together with a body, or not 32 bytes, is a bad request", "[filter]") {
    auto v = vec("hmac_post_json");
    auto both = v.spec;
    both.body_sha256 = std::string(32, 'x');
    deny_case(base_config(), both, "malformed_body_digest", 400);
    auto short_digest = v.spec;
    short_digest.body.clear();
    short_digest.body_sha256 = std::string(31, 'x');
    deny_case(base_config(), short_digest, "malformed_body_digest", 400);
}

TEST_CASE("duplicate auth headers are a bad request", "[filter]") {
    SECTION("two header entries") {
        auto v = vec("hmac_post_json");
        v.spec.headers.push_back({"x-signature", {v.header("X-Signature")}});
        deny_case(base_config(), v.spec, "duplicate_header", 400);
    }
    SECTION("two values of one header") {
        auto v = vec("hmac_post_json");
        for (auto& h : v.spec.headers)
            if (h.name == "X-Nonce")
                h.values.push_back(h.values[0]);
        deny_case(base_config(), v.spec, "duplicate_header", 400);
    }
}

TEST_CASE("control characters in auth headers, method or path are a bad request", "[filter]") {
    auto where = GENERATE(as<std::string>{}, "header", "method", "path");
    auto v = vec("hmac_post_json");
    if (where == "header")
        v.set_header("X-Key-Id", "k1\r\nX-Evil: 1");
    else if (where == "method")
        v.spec.method = "PO\x01ST";
    else
        v.spec.path = "/v1/pay\nments";
    deny_case(base_config(), v.spec, "control_char", 400);
}

TEST_CASE("missing or malformed auth headers are unauthorised", "[filter]") {
    auto v = vec("hmac_post_json");
    v.remove_header("X-Timestamp");
    deny_case(base_config(), v.spec, "missing_header", 401);
    deny_case(base_config(), proto::request_spec{}, "missing_header", 401);
    v = vec("hmac_post_json");
    v.set_header("X-Timestamp", "1764158400.0");
    deny_case(base_config(), v.spec, "malformed_header", 401);
    v = vec("hmac_post_json");
    v.set_header("X-Timestamp", "999999999999999999");  // 18 digits: well-formed, far outside the window
    deny_case(base_config(), v.spec, "timestamp_skew", 401);
}

TEST_CASE("an oversized body is denied 413", "[filter]") {
    json::value cfg = base_config();
    auto spec = vec("hmac_post_json").spec;  // 37-byte body
    cfg.as_object()["max_body_bytes"] = 36;
    deny_case(cfg, spec, "body_too_large", 413);
    cfg.as_object()["max_body_bytes"] = 37;
    require_allowed(run(build(cfg), spec), "acme", "k1");
}

TEST_CASE("too many query parameters are a bad request", "[filter]") {
    json::value cfg = base_config();
    auto spec = vec("hmac_get_query").spec;  // 10 pairs
    cfg.as_object()["max_query_params"] = 9;
    deny_case(cfg, spec, "too_many_query_params", 400);
    cfg.as_object()["max_query_params"] = 10;
    require_allowed(run(build(cfg), spec), "acme", "k1");
}

TEST_CASE("log lines carry neither signature, nonce, secret nor body", "[filter]") {
    char path[] = "/tmp/merchant_auth_log_XXXXXX";
    int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    log::set_fd(fd);
    json::value cfg = base_config();
    key_of(cfg, "acme", 0)["state"] = "retiring";
    key_of(cfg, "acme", 0)["not_after"] = vector_ts + 100;
    auto b = build(cfg);
    auto v = vec("hmac_post_json");
    CHECK(run(b, v.spec).result == outcome::allow);  // retiring: logs a warning
    CHECK(run(b, v.spec).result == outcome::deny);   // replay: logs the deny
    auto forged = vec("hmac_get_query");
    forged.spec.body = "card 4111 1111 1111 1111";
    CHECK(run(b, forged.spec).result == outcome::deny);  // bad signature
    log::set_fd(1);
    ::close(fd);
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    ::unlink(path);
    CHECK(text.find("merchant-auth") != std::string::npos);  // something was logged
    for (std::string secret_bit :
         {v.header("X-Signature").substr(3, 20), forged.header("X-Signature").substr(3, 20), v.header("X-Nonce"),
          std::string("test-only-acme-k1"), std::string("4111"), std::string("amount")}) {
        INFO(secret_bit);
        CHECK(text.find(secret_bit) == std::string::npos);
    }
}

TEST_CASE("the same signed request raced from several threads is allowed exactly once", "[filter]") {
    for (const char* name : {"hmac_post_json", "ed25519_post"}) {
        INFO(name);
        auto b = build(base_config());
        auto req = filterd::testing::make_request(vec(name).spec);
        std::atomic<int> allowed{0}, replays{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t)
            threads.emplace_back([&] {
                for (int i = 0; i < 25; ++i) {
                    context ctx;
                    ctx.wall_ns = vector_ts * ns;
                    if (b.impl->on_request(req.view(), ctx) == outcome::allow)
                        allowed.fetch_add(1);
                    else if (ctx.reason == "replay")
                        replays.fetch_add(1);
                }
            });
        for (auto& t : threads)
            t.join();
        CHECK(allowed.load() == 1);
        CHECK(replays.load() == 99);
    }
}
