#pragma once
// Shared helpers for the enrichment tests.
#include <catch2/catch.hpp>

#include "core/metrics.hpp"
#include "filters/common/config_reader.hpp"
#include "filters/common/filter.hpp"
#include "filters/enrichment/config.hpp"
#include "filters/enrichment/filter.hpp"
#include "tests/support/request.hpp"

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

namespace enr_test {

using namespace filterd;
using namespace filterd::enrichment;

/// 2026-11-26T12:00:00.123999999Z
inline constexpr std::int64_t t0_ns = 1795694400123999999;

inline std::string unique_route(const char* base) {
    static std::atomic<int> n{0};
    return std::string(base) + "-" + std::to_string(n++);
}

inline config parse_config(const std::string& text) {
    auto v = parse_json_text(text, "test");
    return config::load(&v, "filters.enrichment");
}

/// A filter built like the factory builds it; `route_json` is the route section or "" for none.
struct fixture {
    std::string route = unique_route("enr");
    std::shared_ptr<enrichment_filter> f;

    explicit fixture(const std::string& global_json = "", const std::string& route_json = "") {
        std::shared_ptr<const config> cfg;
        if (global_json.empty()) {
            cfg = std::make_shared<const config>(config::load(nullptr, "filters.enrichment"));
        } else {
            cfg = std::make_shared<const config>(parse_config(global_json));
        }
        route_config rc;
        if (!route_json.empty()) {
            auto v = parse_json_text(route_json, "test");
            rc = route_config::load(*cfg, route, &v, "routes." + route + ".enrichment");
        }
        f = std::make_shared<enrichment_filter>(cfg, rc, events::for_route(route));
    }

    std::uint64_t count(const char* event) const {
        return metrics_registry::global().counter_value("filterd_enrichment_events_total",
                                                        {{"route", route}, {"event", event}});
    }
};

/// Runs the filter on a request with the given headers; ctx.wall_ns defaults to t0_ns.
struct run_result {
    outcome result;
    context ctx;

    /// Value of the set header `name` (exact spelling), if set; the number of times it was set must be <= 1.
    std::optional<std::string> set(const std::string& name) const {
        std::optional<std::string> v;
        int n = 0;
        for (const auto& h : ctx.set_headers)
            if (h.name == name) {
                v = h.value;
                ++n;
            }
        REQUIRE(n <= 1);
        return v;
    }
    bool removed(const std::string& name) const {
        for (const auto& r : ctx.remove_headers)
            if (r == name)
                return true;
        return false;
    }
};

inline run_result run(const fixture& fx, std::vector<proto::header_spec> headers, std::string client_ip = "203.0.113.7",
                      std::function<void(context&)> prepare = {}) {
    proto::request_spec spec;
    spec.route = fx.route;
    spec.filters = {"enrichment"};
    spec.headers = std::move(headers);
    spec.client_ip = std::move(client_ip);
    auto built = testing::make_request(spec);
    run_result r{outcome::error, {}};
    r.ctx.wall_ns = t0_ns;
    if (prepare)
        prepare(r.ctx);
    r.result = fx.f->on_request(built.view(), r.ctx);
    return r;
}

inline bool is_uuid_v7(const std::string& s) {
    static const std::regex re("^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
    return std::regex_match(s, re);
}

inline bool is_traceparent_00(const std::string& s) {
    static const std::regex re("^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$");
    return std::regex_match(s, re) && s.substr(3, 32) != std::string(32, '0') &&
           s.substr(36, 16) != std::string(16, '0');
}

inline bool has_ctl(const std::string& s) { return s.find_first_of(std::string("\r\n\0", 3)) != std::string::npos; }

}  // namespace enr_test
