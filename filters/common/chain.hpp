#pragma once
// Routes and the filter chain for one config generation.
//
// Config shape (inside the daemon config):
//   "filters": { "<filter-name>": { ...global section... }, ... }
//   "routes":  { "<route-id>": { "<filter-name>": { ...route section... }, ... }, ... }
// The filters that appear as keys of a route's object are the filters that route REQUIRES. A request
// names the filters to run and their order; it must name every one of them, each once, and no other
// (naming an unconfigured one is unknown_filter, leaving one out is filters_mismatch: both are error
// replies, so fail closed). The whole list is checked before any filter runs, so no filter commits
// state for a rejected request. The order stays the request's: filters that depend on an earlier one
// (rate-limit or enrichment keyed on the merchant) fail closed when merchant-auth has not run first.

#include "core/metrics.hpp"
#include "filters/common/filter.hpp"

#include <array>
#include <cstddef>
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

/// The most filters one route may run. The bridge refuses longer lists in its settings, and a route
/// config with more is refused at load; the wire allows any length, the chain refuses more.
inline constexpr std::size_t max_filters_per_route = 16;

struct route {
    std::string id;
    std::vector<route_filter> filters;
    counter* allowed = nullptr;    ///< requests allowed on this route
    counter* denied = nullptr;     ///< requests denied on this route
    histogram* latency = nullptr;  ///< chain time on this route
    bool may_suspend = false;      ///< a filter of the route waits on a shared store (filter::is_async)

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
    /// True when some route has route::may_suspend.
    bool may_suspend() const noexcept { return may_suspend_; }
    std::shared_ptr<filter_instance> instance(std::string_view filter_name) const;

private:
    bool may_suspend_ = false;
    std::map<std::string, std::shared_ptr<filter_instance>, std::less<>> instances_;
    std::map<std::string, route, std::less<>> routes_;
};

enum class chain_status : std::uint8_t {
    done,  ///< the chain ran; ctx and the results say allow or deny
    unknown_route,
    unknown_filter,    ///< a name is not configured for the route, or appears twice
    filters_mismatch,  ///< the request leaves out a filter the route requires
};

struct filter_timing {
    const route_filter* filter;
    outcome result;
    std::uint32_t elapsed_ns;
};

/// The timings of one chain run, one per filter that ran: at most max_filters_per_route, held inline so
/// that recording them never allocates.
class filter_timings {
public:
    void clear() noexcept { n_ = 0; }
    /// Ignored past max_filters_per_route (the chain never runs more).
    void push_back(const filter_timing& t) noexcept {
        if (n_ < items_.size())
            items_[n_++] = t;
    }
    std::size_t size() const noexcept { return n_; }
    bool empty() const noexcept { return n_ == 0; }
    const filter_timing& operator[](std::size_t i) const noexcept { return items_[i]; }
    const filter_timing* begin() const noexcept { return items_.data(); }
    const filter_timing* end() const noexcept { return items_.data() + n_; }

private:
    std::array<filter_timing, max_filters_per_route> items_{};
    std::size_t n_ = 0;
};

struct chain_result {
    chain_status status = chain_status::done;
    bool allowed = false;
    std::string_view detail;  ///< unknown_filter: the offending name (points into the request);
                              ///< filters_mismatch: a required filter left out (points into the set)
    filter_timings timings;   ///< cleared and refilled by run_chain
};

/// Runs the filters named in `req` in order and stops at the first deny or error. A filter error
/// becomes a deny with 500 unless the filter chose a status. An empty list allows only on a route that
/// requires no filter. Never throws, and allocates nothing itself: the only allocation is the deny body
/// it writes when a filter denied without one (context::deny_problem); if that fails, the request is
/// still denied, with the status and reason and no body.
void run_chain(const filter_set& set, const request_view& req, context& ctx, chain_result& out) noexcept;

/// The same chain for routes where route::may_suspend: a filter may suspend the request while it waits
/// on its store (filter::on_request_async); the chain resumes with the next filter when it answers.
/// `done` is called exactly once when the chain has ended (before returning, or later on the thread
/// that resumed it); `set`, `req`, `ctx` and `out` must stay valid until then. Same verdicts, metrics
/// and timings as run_chain. Before the first filter it sets ctx.fused_store when an earlier filter
/// can hand its nonce to a later one on the same store (one round trip for the request). It allocates
/// the suspended run's state once per request and a resume callback per suspending filter; when one
/// of them cannot be allocated, the request is denied 500 "out_of_memory" and the filters after that
/// point never run.
void run_chain_async(const filter_set& set, const request_view& req, context& ctx, chain_result& out,
                     std::function<void()> done) noexcept;

}  // namespace filterd
