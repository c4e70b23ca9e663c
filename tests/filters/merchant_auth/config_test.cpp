// Included first: proves the header is self-contained.
#include "filters/merchant_auth/config.hpp"

#include "filters/merchant_auth/filter.hpp"
#include "support.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <stdlib.h>

#include <cstdlib>
#include <fstream>

using namespace filterd;
using namespace filterd::merchant_auth;
using namespace filterd::merchant_auth::testing;

namespace {

// Loads `cfg` as the filters.merchant-auth section; returns the config_error key or "<no error>".
std::string load_error(const json::value& cfg) {
    return config_error_key([&] { build(cfg); });
}

const std::string P = "filters.merchant-auth";
const std::string K0 = P + ".merchants.acme.keys[0]";

}  // namespace

TEST_CASE("the base config loads and applies its values", "[config]") {
    auto b = build(base_config());
    REQUIRE(b.impl != nullptr);
    json::value cfg = base_config();
    const config c = config::load(&cfg, P);
    CHECK(c.skew_s == 300);
    CHECK(c.max_body_bytes == 4096);
    CHECK(c.merchants.size() == 3);
    CHECK(c.find_merchant("acme")->keys.size() == 4);
    CHECK(c.find_merchant("acme")->find_key("r1")->key.alg() == algorithm::rsa_sha256);
}

TEST_CASE("defaults are the documented safe values", "[config]") {
    json::value cfg = base_config();
    cfg.as_object().erase("skew_seconds");
    cfg.as_object().erase("nonce_capacity");
    cfg.as_object().erase("max_body_bytes");
    const config c = config::load(&cfg, P);
    CHECK(c.skew_s == 300);
    CHECK(c.nonce_capacity == 1'000'000);
    CHECK(c.max_body_bytes == 1u << 20);
    CHECK(c.max_query_params == 256);
}

TEST_CASE("config rule: the section is required", "[config]") {
    CHECK(config_error_key([] { factory().create(nullptr, P, nullptr); }) == P);
}

TEST_CASE("config rule: unknown keys are errors", "[config]") {
    json::value cfg = base_config();
    cfg.as_object()["skew"] = 10;
    CHECK(load_error(cfg) == P + ".skew");
    cfg = base_config();
    cfg.at("merchants").at("acme").as_object()["colour"] = "red";
    CHECK(load_error(cfg) == P + ".merchants.acme.colour");
    cfg = base_config();
    key_of(cfg, "acme", 0)["secert"] = 1;
    CHECK(load_error(cfg) == K0 + ".secert");
}

TEST_CASE("config rule: limits are range-checked", "[config]") {
    auto [key, value] = GENERATE(table<std::string, std::int64_t>({{"skew_seconds", 0},
                                                                   {"skew_seconds", 3601},
                                                                   {"nonce_capacity", 0},
                                                                   {"max_body_bytes", -1},
                                                                   {"max_body_bytes", (16 << 20) + 1},
                                                                   {"max_query_params", 10001}}));
    json::value cfg = base_config();
    cfg.as_object()[key] = value;
    CHECK(load_error(cfg) == P + "." + key);
}

TEST_CASE("config rule: merchants is required and not empty", "[config]") {
    json::value cfg = base_config();
    cfg.as_object().erase("merchants");
    CHECK(load_error(cfg) == P + ".merchants");
    cfg.as_object()["merchants"] = json::object{};
    CHECK(load_error(cfg) == P + ".merchants");
}

TEST_CASE("config rule: merchant ids follow the header format", "[config]") {
    json::value cfg = base_config();
    json::value globex = cfg.at("merchants").at("globex");  // copy: inserting may move the original
    cfg.at("merchants").as_object()["bad id"] = globex;
    CHECK(load_error(cfg) == P + ".merchants.bad id");
}

TEST_CASE("config rule: merchant status is required and active or suspended", "[config]") {
    json::value cfg = base_config();
    cfg.at("merchants").at("acme").as_object().erase("status");
    CHECK(load_error(cfg) == P + ".merchants.acme.status");
    cfg.at("merchants").at("acme").as_object()["status"] = "paused";
    CHECK(load_error(cfg) == P + ".merchants.acme.status");
}

TEST_CASE("config rule: a merchant has at least one key", "[config]") {
    json::value cfg = base_config();
    cfg.at("merchants").at("acme").as_object().erase("keys");
    CHECK(load_error(cfg) == P + ".merchants.acme.keys");
    cfg.at("merchants").at("acme").as_object()["keys"] = json::array{};
    CHECK(load_error(cfg) == P + ".merchants.acme.keys");
}

TEST_CASE("config rule: key ids follow the header format", "[config]") {
    json::value cfg = base_config();
    key_of(cfg, "acme", 0)["id"] = "k/1";
    CHECK(load_error(cfg) == K0 + ".id");
}

TEST_CASE("config rule: key ids are unique per merchant", "[config]") {
    json::value cfg = base_config();
    key_of(cfg, "acme", 1)["id"] = "k1";
    CHECK(load_error(cfg) == P + ".merchants.acme.keys[1].id");
    // ...but the same id under two merchants is fine (acme and acme2 both have k1).
    CHECK(load_error(base_config()) == "<no error>");
}

TEST_CASE("config rule: alg is one of the three", "[config]") {
    json::value cfg = base_config();
    key_of(cfg, "acme", 0)["alg"] = "hmac-sha1";
    CHECK(load_error(cfg) == K0 + ".alg");
    key_of(cfg, "acme", 0).erase("alg");
    CHECK(load_error(cfg) == K0 + ".alg");
}

TEST_CASE("config rule: hmac takes a secret, public-key algs take a public_key", "[config]") {
    json::value cfg = base_config();
    json::value pub = key_of(cfg, "acme", 2)["public_key"];
    key_of(cfg, "acme", 0)["public_key"] = pub;
    CHECK(load_error(cfg) == K0 + ".public_key");
    cfg = base_config();
    json::value sec = key_of(cfg, "acme", 0)["secret"];
    key_of(cfg, "acme", 2)["secret"] = sec;
    CHECK(load_error(cfg) == P + ".merchants.acme.keys[2].secret");
    cfg = base_config();
    key_of(cfg, "acme", 3).erase("public_key");
    CHECK(load_error(cfg) == P + ".merchants.acme.keys[3].public_key");
}

TEST_CASE("config rule: secrets are references, never inline", "[config]") {
    json::value cfg = base_config();
    key_of(cfg, "acme", 0)["secret"] = "test-only-acme-k1-secret-0123456789abcdef";
    CHECK(load_error(cfg) == K0 + ".secret");
}

TEST_CASE("config rule: an env secret must be set, it is used when set", "[config]") {
    json::value cfg = base_config();
    key_of(cfg, "acme", 0)["secret"] = json::object{{"env", "FILTERD_TEST_MA_SECRET"}};
    ::unsetenv("FILTERD_TEST_MA_SECRET");
    CHECK(load_error(cfg) == K0 + ".secret.env");
    ::setenv("FILTERD_TEST_MA_SECRET", "test-only-acme-k1-secret-0123456789abcdef", 1);
    auto b = build(cfg);
    auto r = run(b, vec("hmac_post_json").spec);  // same bytes as acme-k1.secret: the vector verifies
    CHECK(r.result == outcome::allow);
    ::unsetenv("FILTERD_TEST_MA_SECRET");
}

TEST_CASE("config rule: an HMAC secret has at least 32 bytes", "[config]") {
    json::value cfg = base_config();
    ::setenv("FILTERD_TEST_MA_SHORT", std::string(31, 's').c_str(), 1);
    key_of(cfg, "acme", 0)["secret"] = json::object{{"env", "FILTERD_TEST_MA_SHORT"}};
    CHECK(load_error(cfg) == K0 + ".secret");
    ::setenv("FILTERD_TEST_MA_SHORT", std::string(32, 's').c_str(), 1);
    CHECK(load_error(cfg) == "<no error>");
    ::unsetenv("FILTERD_TEST_MA_SHORT");
}

TEST_CASE("config rule: a missing secret or key file is an error", "[config]") {
    json::value cfg = base_config();
    key_of(cfg, "acme", 2)["public_key"] = json::object{{"file", data_dir() + "no-such.pem"}};
    CHECK(load_error(cfg) == P + ".merchants.acme.keys[2].public_key.file");
}

TEST_CASE("config rule: the public key must be PEM", "[config]") {
    json::value cfg = base_config();
    key_of(cfg, "acme", 2)["public_key"] = json::object{{"file", data_dir() + "acme-k1.secret"}};
    CHECK(load_error(cfg) == P + ".merchants.acme.keys[2].public_key");
}

TEST_CASE("config rule: the key type must match alg", "[config]") {
    json::value cfg = base_config();
    key_of(cfg, "acme", 2)["public_key"] = json::object{{"file", data_dir() + "acme-ed.pub.pem"}};
    CHECK(load_error(cfg) == P + ".merchants.acme.keys[2].public_key");
    cfg = base_config();
    key_of(cfg, "acme", 3)["public_key"] = json::object{{"file", data_dir() + "acme-rsa.pub.pem"}};
    CHECK(load_error(cfg) == P + ".merchants.acme.keys[3].public_key");
}

TEST_CASE("config rule: RSA keys have at least 2048 bits", "[config]") {
    json::value cfg = base_config();
    key_of(cfg, "acme", 2)["public_key"] = json::object{{"file", data_dir() + "small-rsa.pub.pem"}};
    CHECK(load_error(cfg) == P + ".merchants.acme.keys[2].public_key");
}

TEST_CASE("config rule: key state is required and one of three", "[config]") {
    json::value cfg = base_config();
    key_of(cfg, "acme", 0)["state"] = "disabled";
    CHECK(load_error(cfg) == K0 + ".state");
    key_of(cfg, "acme", 0).erase("state");
    CHECK(load_error(cfg) == K0 + ".state");
}

TEST_CASE("config rule: not_before is earlier than not_after", "[config]") {
    json::value cfg = base_config();
    key_of(cfg, "acme", 0)["not_before"] = 2000;
    key_of(cfg, "acme", 0)["not_after"] = 2000;
    CHECK(load_error(cfg) == K0 + ".not_after");
    key_of(cfg, "acme", 0)["not_after"] = 2001;
    CHECK(load_error(cfg) == "<no error>");
    key_of(cfg, "acme", 0)["not_before"] = -1;
    CHECK(load_error(cfg) == K0 + ".not_before");
    key_of(cfg, "acme", 0)["not_before"] = 2000;
    key_of(cfg, "acme", 0)["not_after"] = 9'000'000'001;  // past year 2255: would overflow ns arithmetic
    CHECK(load_error(cfg) == K0 + ".not_after");
}

TEST_CASE("config rule: a retiring key needs not_after", "[config]") {
    json::value cfg = base_config();
    key_of(cfg, "acme", 0)["state"] = "retiring";
    CHECK(load_error(cfg) == K0 + ".not_after");
    key_of(cfg, "acme", 0)["not_after"] = vector_ts + 3600;
    CHECK(load_error(cfg) == "<no error>");
}

TEST_CASE("config rule: routes, when present, is a non-empty list of non-empty strings", "[config]") {
    json::value cfg = base_config();
    key_of(cfg, "acme", 0)["routes"] = json::array{};
    CHECK(load_error(cfg) == K0 + ".routes");
    key_of(cfg, "acme", 0)["routes"] = json::array{"pay", ""};
    CHECK(load_error(cfg) == K0 + ".routes[1]");
    key_of(cfg, "acme", 0)["routes"] = json::array{"pay", 3};
    CHECK(load_error(cfg) == K0 + ".routes[1]");
}

TEST_CASE("config rule: cidrs parse, with no host bits", "[config]") {
    auto bad = GENERATE(as<std::string>{}, "10.0.0.0", "10.0.0.0/33", "10.0.0.1/8", "zzz/8", "::1/129", "10.0.0.0/",
                        "10.0.0.0/-1", "fe80::1%eth0/64", "2001:db8::1/32");
    json::value cfg = base_config();
    key_of(cfg, "acme", 0)["cidrs"] = json::array{"192.168.0.0/16", json::string(bad)};
    INFO(bad);
    CHECK(load_error(cfg) == K0 + ".cidrs[1]");
}

TEST_CASE("config rule: cidrs, when present, is not empty", "[config]") {
    json::value cfg = base_config();
    key_of(cfg, "acme", 0)["cidrs"] = json::array{};
    CHECK(load_error(cfg) == K0 + ".cidrs");
    key_of(cfg, "acme", 0)["cidrs"] = json::array{"10.0.0.0/8", "::1/128", "2001:db8::/32", "0.0.0.0/0"};
    CHECK(load_error(cfg) == "<no error>");
}

TEST_CASE("config rule: the route section has only merchant_path_param", "[config]") {
    json::value route = json::object{{"merchant_path_param", "merchant"}, {"other", 1}};
    CHECK(config_error_key([&] { build(base_config(), &route); }) == "routes.pay.merchant-auth.other");
    route = json::object{{"merchant_path_param", ""}};
    CHECK(config_error_key([&] { build(base_config(), &route); }) == "routes.pay.merchant-auth.merchant_path_param");
    route = json::array{};
    CHECK(config_error_key([&] { build(base_config(), &route); }) == "routes.pay.merchant-auth");
}

TEST_CASE("config rule: nonce_capacity cannot change on reload", "[config]") {
    auto first = build(base_config());
    json::value cfg = base_config();
    cfg.as_object()["nonce_capacity"] = 2000;
    CHECK(config_error_key([&] { build(cfg, nullptr, "pay", first.instance); }) == P + ".nonce_capacity");
    CHECK(config_error_key([&] { build(base_config(), nullptr, "pay", first.instance); }) == "<no error>");
}

TEST_CASE("config rule: nonce_journal cannot change on reload, the merchant share can", "[config]") {
    char tmpl[] = "/tmp/filterd-reload-journal-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    json::value with_journal = base_config();
    with_journal.as_object()["nonce_journal"] = json::object{{"dir", std::string(tmpl)}};
    auto first = build(with_journal);
    auto* inst = dynamic_cast<merchant_auth_instance*>(first.instance.get());
    REQUIRE(inst != nullptr);
    REQUIRE(inst->nonces()->journal() != nullptr);
    CHECK(config_error_key([&] { build(base_config(), nullptr, "pay", first.instance); }) == P + ".nonce_journal");
    json::value other = with_journal;
    other.as_object()["nonce_journal"].as_object()["fsync"] = true;
    CHECK(config_error_key([&] { build(other, nullptr, "pay", first.instance); }) == P + ".nonce_journal");
    json::value share = with_journal;
    share.as_object()["nonce_merchant_share_percent"] = 50;
    CHECK(config_error_key([&] { build(share, nullptr, "pay", first.instance); }) == "<no error>");
    CHECK(inst->nonces()->per_merchant_limit() == 500);  // 50 % of nonce_capacity 1000, shared store
    std::filesystem::remove_all(tmpl);
}

TEST_CASE("cidr matching covers IPv4, IPv6 and IPv4-mapped clients", "[config]") {
    cidr net;
    REQUIRE(cidr::parse("10.0.0.0/8", net).empty());
    std::array<std::uint8_t, 16> ip{};
    REQUIRE(parse_ip("10.200.3.4", ip));
    CHECK(net.contains(ip));
    REQUIRE(parse_ip("::ffff:10.1.1.1", ip));
    CHECK(net.contains(ip));
    REQUIRE(parse_ip("11.0.0.1", ip));
    CHECK_FALSE(net.contains(ip));
    REQUIRE(cidr::parse("2001:db8::/32", net).empty());
    REQUIRE(parse_ip("2001:db8:ffff::1", ip));
    CHECK(net.contains(ip));
    REQUIRE(parse_ip("2001:db9::1", ip));
    CHECK_FALSE(net.contains(ip));
    CHECK_FALSE(parse_ip("", ip));
    CHECK_FALSE(parse_ip("10.0.0.256", ip));
    CHECK_FALSE(parse_ip("not-an-ip", ip));
}

TEST_CASE("every deny reason has a token, a status and a counter", "[config]") {
    json::value cfg = base_config();
    const config c = config::load(&cfg, P);
    for (std::size_t i = 0; i < reason_count; ++i) {
        auto r = static_cast<reason>(i);
        CHECK_FALSE(reason_token(r).empty());
        CHECK(reason_status(r) >= 400);
        CHECK_FALSE(reason_title(r).empty());
        CHECK(c.denied[i] != nullptr);
    }
}
