// The whole chain with the three real filters (merchant-auth -> rate-limit -> enrichment), built from
// config by the builtin registry, as filterd runs it. Signatures are made by the test signer
// (tests/support/spv1.hpp: OpenSSL directly, from the SPV1 spec), not with the filter's code.
#include "filters/common/chain.hpp"
#include "tests/support/request.hpp"
#include "tests/support/spv1.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>

using namespace filterd;

namespace {

constexpr const char* secret = "chain-test-secret-0123456789abcdef0123";
constexpr std::int64_t now_s = 1764158400;

/// A POST /v1/payments signed by acme's k1 (the test signer); `tamper` changes one bit-group of the
/// signature, so the request carries a well-formed but wrong X-Signature.
proto::request_spec signed_request(const std::string& nonce, const std::string& body, bool tamper = false) {
    proto::request_spec r;
    r.id = 1;
    r.route = "payments";
    r.filters = {"merchant-auth", "rate-limit", "enrichment"};
    r.method = "POST";
    r.path = "/v1/payments";
    r.client_ip = "10.1.2.3";
    r.body = body;
    r.headers = {{"X-Gw-Merchant-Id", {"spoofed"}}, {"Content-Type", {"application/json"}}};
    testing::spv1_sign_hmac(r, "acme", "k1", secret, nonce, now_s);
    if (tamper)
        for (auto& h : r.headers)
            if (h.name == "X-Signature") {
                char& first = h.values.at(0).at(3);  // after "v1="
                first = first == 'A' ? 'B' : 'A';
            }
    return r;
}

std::shared_ptr<const filter_set> build_set() {
    ::setenv("FILTERD_CHAIN_TEST_SECRET", secret, 1);
    auto doc = parse_json_text(R"({
      "filters": {
        "merchant-auth": {"merchants": {"acme": {"status": "active", "keys": [
            {"id": "k1", "alg": "hmac-sha256", "secret": {"env": "FILTERD_CHAIN_TEST_SECRET"}, "state": "active"}]}}},
        "rate-limit": {"policies": {"per-merchant": {"quota": 2, "window_ms": 1000, "burst": 2, "key": "merchant_id"}}},
        "enrichment": {}
      },
      "routes": {"payments": {"merchant-auth": {}, "rate-limit": {"policies": ["per-merchant"]}, "enrichment": {}}}
    })",
                               "chain");
    const auto& o = doc.as_object();
    return filter_set::build(o.if_contains("filters"), o.if_contains("routes"), registry::builtin(), nullptr);
}

std::string find(const std::vector<header_kv>& hs, std::string_view name) {
    for (const auto& h : hs)
        if (iequals(h.name, name))
            return h.value;
    return "<absent>";
}

struct run_result {
    bool allowed;
    context ctx;
    chain_result res;
};

run_result run(const filter_set& set, const proto::request_spec& spec, std::int64_t mono_ns) {
    auto b = testing::make_request(spec);
    run_result out{};
    out.ctx.wall_ns = now_s * 1'000'000'000;
    out.ctx.mono_ns = mono_ns;
    run_chain(set, b.view(), out.ctx, out.res);
    out.allowed = out.res.allowed;
    return out;
}

}  // namespace

TEST_CASE("signed request passes all three filters and reaches the backend enriched", "[integration][chain]") {
    auto set = build_set();
    auto r = run(*set, signed_request("bm9uY2UtY2hhaW4tMDAwMQ", R"({"amount":"1.00"})"), 1'000'000'000);
    REQUIRE(r.res.status == chain_status::done);
    CHECK(r.allowed);
    REQUIRE(r.res.timings.size() == 3);
    CHECK(r.ctx.merchant_id == "acme");
    CHECK(r.ctx.key_id == "k1");
    CHECK(find(r.ctx.set_headers, "X-Gw-Merchant-Id") == "acme");  // trusted value, not the spoofed one
    CHECK(find(r.ctx.set_headers, "X-Gw-Key-Id") == "k1");
    CHECK(find(r.ctx.set_headers, "X-Gw-Client-Ip") == "10.1.2.3");
    CHECK(find(r.ctx.set_headers, "X-Request-Id") != "<absent>");
    bool strips_spoofed = false;
    for (const auto& h : r.ctx.remove_headers)
        strips_spoofed = strips_spoofed || iequals(h, "X-Gw-Merchant-Id");
    CHECK(strips_spoofed);
}

TEST_CASE("a bad signature stops the chain before rate-limit spends quota", "[integration][chain]") {
    auto set = build_set();
    for (int i = 0; i < 5; ++i) {
        auto bad = run(*set, signed_request("bm9uY2UtYmFkLTAwMDA" + std::to_string(i), "{}", true), 1'000'000'000);
        CHECK_FALSE(bad.allowed);
        CHECK(bad.ctx.deny_status == 401);
        CHECK(find(bad.ctx.deny_headers, "WWW-Authenticate") == "SPV1");
        CHECK(bad.res.timings.size() == 1);  // rate-limit and enrichment never ran
    }
    // The quota (burst 2) is intact for the real merchant.
    CHECK(run(*set, signed_request("bm9uY2UtZ29vZC0wMDAx", "{}"), 1'000'000'000).allowed);
    CHECK(run(*set, signed_request("bm9uY2UtZ29vZC0wMDAy", "{}"), 1'000'000'000).allowed);
    auto limited = run(*set, signed_request("bm9uY2UtZ29vZC0wMDAz", "{}"), 1'000'000'000);
    CHECK_FALSE(limited.allowed);
    CHECK(limited.ctx.deny_status == 429);
    CHECK(find(limited.ctx.deny_headers, "Retry-After") == "1");
    CHECK(limited.res.timings.size() == 2);  // enrichment never ran
}

TEST_CASE("a replayed request is denied even when quota remains", "[integration][chain]") {
    auto set = build_set();
    auto req = signed_request("bm9uY2UtcmVwbGF5LTE", "{}");
    CHECK(run(*set, req, 1'000'000'000).allowed);
    auto replay = run(*set, req, 5'000'000'000);
    CHECK_FALSE(replay.allowed);
    CHECK(replay.ctx.deny_status == 401);
}
