#pragma once
// The rate-limit filter: GCRA policies per route, all-or-nothing across a request's policies.
//
// Request path (rate_limit_filter::on_request), for the route's policies in order:
//   1. Derive each policy's key. A policy keyed by merchant_id or key_id needs ctx.authenticated (set by
//      merchant-auth, which must run earlier in the chain); without it the filter returns outcome::error
//      with ctx.reason "rate_limit_unauthenticated" (fail closed: the chain turns it into a 500 deny) and
//      touches no state. A missing client IP or header value is the empty key: all such requests share
//      one bucket per policy (stricter, never skipped).
//   2. Lock the shards of all keys (global address order), locate the keys, lock any overflow buckets.
//   3. Decide every policy on ctx.mono_ns (the injectable clock; the filter never reads a clock).
//   4. If all allow, commit every new TAT and return allow; otherwise commit nothing and deny.
// On allow nothing is emitted: the filter may only set upstream request headers, never client response
// headers. On deny: ctx.deny_problem(429, "Too Many Requests", "rate_limited") and, for the most
// constrained denying policy (largest retry-after; the first in route order on a tie):
//   Retry-After: <s>                     whole seconds, rounded up
//   RateLimit-Policy: "<name>";q=<quota>;w=<window s>        (draft-ietf-httpapi-ratelimit-headers-11)
//   RateLimit: "<name>";r=0;t=<s>        t equals Retry-After, as the draft recommends
//   X-RateLimit-Limit: <quota>           the configured (fleet-wide) quota per window
//   X-RateLimit-Remaining: 0
//   X-RateLimit-Reset: <s>               seconds until this pod's bucket for the key is full again
//
// Metrics (one list; series created at load, the request path only touches atomics):
//   filterd_rate_limit_decisions_total{policy,result="allow"|"deny"|"error"}
//       allow: counted for every policy of a committed request; deny: for each policy that refused;
//       error: the policy's key needed an authenticated context that was missing.
//   filterd_rate_limit_overflow_total{policy}   decisions charged to the shared overflow bucket
//   filterd_rate_limit_tracked_keys{policy}     gauge: keys in the policy's table

#include "filters/common/filter.hpp"
#include "filters/rate_limit/config.hpp"
#include "filters/rate_limit/table.hpp"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace filterd::rate_limit {

/// A policy as a route uses it: its current config (header texts) and its table (state).
struct bound_policy {
    std::shared_ptr<const policy_config> cfg;
    std::shared_ptr<policy_table> table;
};

class rate_limit_filter final : public filter {
public:
    /// @param policies  1..max_policies_per_route distinct policies, in route order.
    explicit rate_limit_filter(std::vector<bound_policy> policies) : policies_(std::move(policies)) {}

    /// See the file comment. Never throws (bar allocation failure building a deny), never blocks beyond
    /// the short shard critical sections.
    outcome on_request(const request_view& req, context& ctx) const noexcept override;

private:
    std::vector<bound_policy> policies_;
};

/// One config generation of the filter: the validated global section and the policy tables.
class rate_limit_instance final : public filter_instance {
public:
    /// Builds the tables, reusing from `previous` (may be nullptr) every table whose policy keeps the
    /// same name and the same limits (policy_config::same_limits): a reload does not reset buckets.
    /// A policy whose limits changed starts with an empty table.
    rate_limit_instance(global_config cfg, const rate_limit_instance* previous);

    /// @throws config_error (see parse_route).
    std::shared_ptr<const filter> for_route(std::string_view route_id, const boost::json::value* route_cfg,
                                            const std::string& path) const override;

    /// The table of policy `name`, or nullptr. For tests and diagnostics.
    std::shared_ptr<policy_table> table(std::string_view name) const;
    const global_config& config() const noexcept { return cfg_; }

private:
    global_config cfg_;
    std::map<std::string, bound_policy, std::less<>> policies_;
};

}  // namespace filterd::rate_limit
