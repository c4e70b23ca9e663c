#pragma once
// Test support for merchant-auth: the committed vectors (tests/data/merchant_auth/vectors.json, made by
// gen_vectors.py, an independent Python implementation), a base config that references the committed
// test-only keys, and small helpers to build and run the filter.

#include "core/metrics.hpp"
#include "filters/common/config_reader.hpp"
#include "filters/common/filter.hpp"
#include "tests/support/request.hpp"

#include <boost/json.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

namespace filterd::merchant_auth::testing {

namespace json = boost::json;

inline std::string data_dir() { return std::string(FILTERD_SOURCE_DIR) + "/tests/data/merchant_auth/"; }

inline constexpr std::int64_t vector_ts = 1764158400;  // X-Timestamp of every vector
inline constexpr std::int64_t ns = 1'000'000'000;

inline std::string from_hex(std::string_view h) {
    auto nib = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
    std::string out;
    for (std::size_t i = 0; i + 1 < h.size(); i += 2)
        out += static_cast<char>(nib(h[i]) * 16 + nib(h[i + 1]));
    return out;
}

struct vector_case {
    std::string name;
    std::string alg;
    std::string canonical;
    proto::request_spec spec;  // route "pay", filters {"merchant-auth"}, client 10.1.2.3
    std::string raw_path;      // the path as the merchant sent it (spec.path is the decoded one)
    std::string expect;        // "allow", or the deny reason the vector must get

    std::string header(std::string_view n) const {
        for (const auto& h : spec.headers)
            if (iequals(h.name, n))
                return h.values.at(0);
        throw std::runtime_error("no header " + std::string(n));
    }
    void set_header(std::string_view n, std::string v) {
        for (auto& h : spec.headers)
            if (iequals(h.name, n)) {
                h.values = {std::move(v)};
                return;
            }
        throw std::runtime_error("no header " + std::string(n));
    }
    void remove_header(std::string_view n) {
        std::erase_if(spec.headers, [&](const proto::header_spec& h) { return iequals(h.name, n); });
    }
};

inline const std::map<std::string, vector_case>& vectors() {
    static const std::map<std::string, vector_case> all = [] {
        std::map<std::string, vector_case> m;
        json::value doc = parse_json_file(data_dir() + "vectors.json");
        for (const auto& v : doc.at("vectors").as_array()) {
            vector_case c;
            c.name = json::value_to<std::string>(v.at("name"));
            c.alg = json::value_to<std::string>(v.at("alg"));
            c.canonical = from_hex(json::value_to<std::string>(v.at("canonical_hex")));
            c.spec.route = "pay";
            c.spec.filters = {"merchant-auth"};
            c.spec.client_ip = "10.1.2.3";
            c.spec.method = json::value_to<std::string>(v.at("method"));
            // The path as the gateway hands it to filterd (decoded); "path" is the raw path the merchant sent.
            c.spec.path = v.as_object().contains("wire_path_hex")
                              ? from_hex(json::value_to<std::string>(v.at("wire_path_hex")))
                              : json::value_to<std::string>(v.at("path"));
            c.raw_path = json::value_to<std::string>(v.at("path"));
            c.expect = v.as_object().contains("expect") ? json::value_to<std::string>(v.at("expect")) : "allow";
            for (const auto& q : v.at("query_hex").as_array())
                c.spec.query.emplace_back(from_hex(json::value_to<std::string>(q.as_array()[0])),
                                          from_hex(json::value_to<std::string>(q.as_array()[1])));
            c.spec.body = from_hex(json::value_to<std::string>(v.at("body_hex")));
            for (const auto& h : v.at("headers").as_object())
                c.spec.headers.push_back({std::string(h.key()), {json::value_to<std::string>(h.value())}});
            m.emplace(c.name, std::move(c));
        }
        return m;
    }();
    return all;
}

inline vector_case vec(const std::string& name) { return vectors().at(name); }

/// The `filters.merchant-auth` section every test starts from: merchants acme (k1, k2 hmac; r1 rsa;
/// e1 ed25519), globex (g1 hmac) and acme2 (k1 with acme's k1 secret, for "flip the merchant id").
inline json::value base_config() {
    std::string d = data_dir();
    auto key = [&](const char* id, const char* alg, const char* ref, const std::string& file) {
        return json::object{{"id", id}, {"alg", alg}, {ref, json::object{{"file", d + file}}}, {"state", "active"}};
    };
    return json::object{
        {"skew_seconds", 300},
        {"nonce_capacity", 1000},
        {"max_body_bytes", 4096},
        {"merchants",
         json::object{
             {"acme", json::object{{"status", "active"},
                                   {"keys", json::array{key("k1", "hmac-sha256", "secret", "acme-k1.secret"),
                                                        key("k2", "hmac-sha256", "secret", "acme-k2.secret"),
                                                        key("r1", "rsa-sha256", "public_key", "acme-rsa.pub.pem"),
                                                        key("e1", "ed25519", "public_key", "acme-ed.pub.pem")}}}},
             {"globex", json::object{{"status", "active"},
                                     {"keys", json::array{key("g1", "hmac-sha256", "secret", "globex-g1.secret")}}}},
             {"acme2", json::object{{"status", "active"},
                                    {"keys", json::array{key("k1", "hmac-sha256", "secret", "acme-k1.secret")}}}},
         }},
    };
}

/// The key object `merchants.<m>.keys[i]` of a config, for edits.
inline json::object& key_of(json::value& cfg, const char* merchant, std::size_t i) {
    return cfg.at("merchants").at(merchant).at("keys").as_array().at(i).as_object();
}

inline const filter_factory& factory() {
    const filter_factory* f = registry::builtin().find("merchant-auth");
    if (f == nullptr)
        throw std::runtime_error("merchant-auth is not registered");
    return *f;
}

struct built_filter {
    std::shared_ptr<filter_instance> instance;
    std::shared_ptr<const filter> impl;
};

inline built_filter build(const json::value& global, const json::value* route_cfg = nullptr,
                          const std::string& route = "pay", std::shared_ptr<filter_instance> previous = nullptr) {
    built_filter b;
    b.instance = factory().create(&global, "filters.merchant-auth", previous);
    b.impl = b.instance->for_route(route, route_cfg, "routes." + route + ".merchant-auth");
    return b;
}

struct run_result {
    outcome result;
    context ctx;
};

inline run_result run(const built_filter& f, const proto::request_spec& spec, std::int64_t wall_s = vector_ts) {
    auto req = filterd::testing::make_request(spec);
    run_result r{outcome::error, {}};
    r.ctx.wall_ns = wall_s * ns;
    r.result = f.impl->on_request(req.view(), r.ctx);
    return r;
}

inline std::uint64_t denied_count(std::string_view reason) {
    return metrics_registry::global().counter_value("filterd_merchant_auth_denied_total",
                                                    {{"reason", std::string(reason)}});
}

/// Expects `config_error` whose key() is exactly `key`.
template <class F>
std::string config_error_key(F&& f) {
    try {
        f();
    } catch (const config_error& e) {
        return e.key();
    }
    return "<no error>";
}

}  // namespace filterd::merchant_auth::testing
