#pragma once
// Shared helpers for the rate-limit tests: build the filter through its registered factory from inline
// JSON, make requests, read metrics.

#include "core/metrics.hpp"
#include "filters/common/chain.hpp"
#include "filters/rate_limit/filter.hpp"
#include "tests/support/request.hpp"

#include <boost/json/parse.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace filterd::rate_limit::testing {

inline constexpr std::int64_t ms = 1'000'000;
inline constexpr std::int64_t sec = 1'000'000'000;
/// An arbitrary non-zero monotonic origin, so no test depends on the clock starting at 0.
inline constexpr std::int64_t t0 = 5'000 * sec;

inline const filter_factory& factory() {
    const filter_factory* f = registry::builtin().find("rate-limit");
    if (f == nullptr)
        throw std::runtime_error("rate-limit is not registered");
    return *f;
}

struct built {
    std::shared_ptr<filter_instance> instance;
    std::shared_ptr<const filter> impl;
    rate_limit_instance& rl() const { return dynamic_cast<rate_limit_instance&>(*instance); }
};

/// Builds the instance from `global` (the filters.rate-limit JSON) and the filter for route "r" from
/// `route` (the routes.r.rate-limit JSON).
inline built make_filter(std::string_view global, std::string_view route,
                         const std::shared_ptr<filter_instance>& previous = nullptr) {
    built b;
    boost::json::value g = boost::json::parse(global);
    boost::json::value r = boost::json::parse(route);
    b.instance = factory().create(&g, "filters.rate-limit", previous);
    b.impl = b.instance->for_route("r", &r, "routes.r.rate-limit");
    return b;
}

struct req_opts {
    std::string client_ip = "192.0.2.1";
    std::string route = "r";
    std::vector<proto::header_spec> headers;
};

inline filterd::testing::built_request make_req(const req_opts& o = {}) {
    proto::request_spec s;
    s.route = o.route;
    s.filters = {"rate-limit"};
    s.client_ip = o.client_ip;
    s.headers = o.headers;
    return filterd::testing::make_request(s);
}

/// The value of deny header `name` (case-insensitive) that `ctx` carries, if any.
inline std::optional<std::string> deny_header(const context& ctx, std::string_view name) {
    for (const auto& h : ctx.deny_headers)
        if (iequals(h.name, name))
            return h.value;
    return std::nullopt;
}

/// Runs the filter once at time `now` on a fresh context; returns the outcome and keeps the context.
struct run_result {
    outcome result;
    context ctx;
    std::optional<std::string> header(std::string_view name) const { return deny_header(ctx, name); }
};

inline run_result run(const filter& f, const filterd::testing::built_request& req, std::int64_t now,
                      const context* base = nullptr) {
    run_result r{outcome::error, base ? *base : context{}};
    r.ctx.mono_ns = now;
    r.result = f.on_request(req.view(), r.ctx);
    return r;
}

inline std::uint64_t decisions(const std::string& policy, const std::string& result) {
    return metrics_registry::global().counter_value("filterd_rate_limit_decisions_total",
                                                    {{"policy", policy}, {"result", result}});
}
inline std::uint64_t overflows(const std::string& policy) {
    return metrics_registry::global().counter_value("filterd_rate_limit_overflow_total", {{"policy", policy}});
}
inline std::int64_t tracked_gauge(const std::string& policy) {
    return metrics_registry::global()
        .get_gauge("filterd_rate_limit_tracked_keys", "Keys currently tracked by a policy's table.",
                   {{"policy", policy}})
        .value();
}

}  // namespace filterd::rate_limit::testing
