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

#include <atomic>
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

/// The shared store of one config generation (store "redis"): the client, the failure policy and the
/// store's health, which is logged once per change and exported as
///   filterd_rate_limit_store_degraded                    gauge: 1 while the store fails
///   filterd_rate_limit_store_fallbacks_total{action}     requests decided without the store:
///                                                        action="local" (pod share) or "deny" (503)
struct redis_link {
    std::shared_ptr<redis::client> client;
    on_error policy = on_error::local;
    clock_kind clock = clock_kind::redis;
    std::atomic<bool> degraded{false};
    counter* fallback_local = nullptr;
    counter* fallback_deny = nullptr;
    gauge* degraded_gauge = nullptr;

    /// Records the store's answer state; logs only when it changes.
    void note(bool ok, redis::errc why) noexcept;
};

class rate_limit_filter final : public filter {
public:
    /// @param policies  1..max_policies_per_route distinct policies, in route order.
    /// @param store     the shared store (nullptr: store "local")
    /// @param nonce_slot_safe  the route's keys share the merchant's hash tag, so a nonce can ride
    ///                         along in Redis Cluster too (always true for a standalone Redis)
    explicit rate_limit_filter(std::vector<bound_policy> policies, std::shared_ptr<redis_link> store = nullptr,
                               bool nonce_slot_safe = false)
        : policies_(std::move(policies)),
          store_(std::move(store)),
          nonce_slot_safe_(nonce_slot_safe) {}

    /// The local decision (store "local", and the fallback of store "redis" with on_redis_error
    /// "local"). See the file comment. Never throws (bar allocation failure building a deny), never
    /// blocks beyond the short shard critical sections.
    outcome on_request(const request_view& req, context& ctx) const noexcept override;

    /// Store "redis": one script call decides every policy of the request (all or none) on the fleet-
    /// wide bucket, carrying the request's pending nonce when ctx.fused_store is this store. Same
    /// answers and deny headers as the local decision on the same times. When the store fails (error,
    /// disconnected, past the request's deadline): a carried nonce makes the request fail closed
    /// (merchant-auth's 503); otherwise on_redis_error applies.
    void on_request_async(const request_view& req, context& ctx, resume_fn done) const noexcept override;
    bool is_async() const noexcept override { return store_ != nullptr; }
    const void* shared_store() const noexcept override { return store_ ? store_->client.get() : nullptr; }
    bool carries_nonce() const noexcept override { return store_ != nullptr && nonce_slot_safe_; }

    /// The Redis key of policy `i` for this request ("" when it needs an authenticated context that
    /// is missing).
    std::string redis_key(std::size_t i, const request_view& req, const context& ctx) const;

private:
    outcome store_failed(const request_view& req, context& ctx, bool with_nonce, redis::errc why) const noexcept;

    std::vector<bound_policy> policies_;
    std::shared_ptr<redis_link> store_;
    bool nonce_slot_safe_ = false;
};

/// One config generation of the filter: the validated global section and the policy tables.
class rate_limit_instance final : public filter_instance {
public:
    /// Builds the tables, reusing from `previous` (may be nullptr) every table whose policy keeps the
    /// same name and the same limits (policy_config::same_limits): a reload does not reset buckets.
    /// A policy whose limits changed starts with an empty table.
    rate_limit_instance(config cfg, const rate_limit_instance* previous);

    /// @throws config_error (see route_config::load).
    std::shared_ptr<const filter> for_route(std::string_view route_id, const boost::json::value* route_cfg,
                                            const std::string& path) const override;

    /// The table of policy `name`, or nullptr. For tests and diagnostics.
    std::shared_ptr<policy_table> table(std::string_view name) const;
    const config& cfg() const noexcept { return cfg_; }

private:
    config cfg_;
    std::map<std::string, bound_policy, std::less<>> policies_;
    std::shared_ptr<redis_link> store_;
};

}  // namespace filterd::rate_limit
