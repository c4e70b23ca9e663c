#pragma once
// Routes and the filter chain for one config generation.
//
// Config shape (inside the daemon config):
//   "filters": { "<filter-name>": { ...global section... }, ... }
//   "routes":  { "<route-id>": { "<filter-name>": { ...route section... }, ... }, ... }
// A route may run exactly the filters that appear as keys of its object. A request names the
// filters to run and their order; naming one the route does not configure is an error reply, and
// the whole list is checked before any filter runs, so no filter commits state for a rejected request.

#include "filters/common/filter.hpp"
#include "filters/common/metrics.hpp"

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace filterd {

struct route_filter {
    std::string name;
    std::shared_ptr<const filter> impl;
    counter* allowed = nullptr;
    counter* denied = nullptr;
    counter* errored = nullptr;
};

struct route {
    std::string id;
    std::vector<route_filter> filters;
    counter* allowed = nullptr;   ///< requests allowed on this route
    counter* denied = nullptr;    ///< requests denied on this route
    histogram* latency = nullptr; ///< chain time on this route

    const route_filter* find(std::string_view name) const noexcept;
};

/// Everything built from the "filters" and "routes" sections. Immutable once built; shared by
/// in-flight requests through shared_ptr, so a reload never changes a request that already started.
class filter_set {
public:
    /// @param filters_cfg  the "filters" section (nullptr when absent)
    /// @param routes_cfg   the "routes" section (required)
    /// @param previous     the set being replaced, for state carry-over (nullptr at start-up)
    /// @throws config_error naming the offending key.
    static std::shared_ptr<const filter_set> build(const boost::json::value* filters_cfg,
                                                   const boost::json::value* routes_cfg, const registry& reg,
                                                   const filter_set* previous);

    const route* find_route(std::string_view id) const noexcept;
    std::size_t route_count() const noexcept { return routes_.size(); }
    std::shared_ptr<filter_instance> instance(std::string_view filter_name) const;

private:
    std::map<std::string, std::shared_ptr<filter_instance>, std::less<>> instances_;
    std::map<std::string, route, std::less<>> routes_;
};

enum class chain_status : std::uint8_t {
    done,            ///< the chain ran; ctx and the results say allow or deny
    unknown_route,
    unknown_filter,  ///< a name is not configured for the route, or appears twice
};

struct filter_timing {
    const route_filter* filter;
    outcome result;
    std::uint32_t elapsed_ns;
};

struct chain_result {
    chain_status status = chain_status::done;
    bool allowed = false;
    std::string_view detail;               ///< for unknown_filter: the offending name (points into the request)
    std::vector<filter_timing> timings;    ///< cleared and refilled by run_chain
};

/// Runs the filters named in `req` in order and stops at the first deny or error. A filter error
/// becomes a deny with 500 unless the filter chose a status. An empty list allows. Never throws.
void run_chain(const filter_set& set, const request_view& req, context& ctx, chain_result& out) noexcept;

}  // namespace filterd
