#pragma once
// The checked, read-only configuration of the rate-limit filter (docs/filters/rate-limit.md).
//
// Global section `filters.rate-limit`:
//   {
//     "replicas": 3 | {"env": "FILTERD_REPLICAS"},          // optional, default 1, range 1..1000
//     "store": "local" | "redis",                            // optional, default "local"
//     "redis": { ...redis::parse_options... },               // required with store "redis", refused otherwise
//     "on_redis_error": "local" | "deny",                    // optional (redis store), default "local"
//     "clock": "redis" | "filterd",                          // optional (redis store), default "redis"
//     "policies": {                                          // required, at least one
//       "<name>": {                                          // [A-Za-z0-9_.-]{1,64}
//         "quota": 100,                                      // required, 1..1e9 requests per window
//         "window_ms": 60000,                                // required, whole seconds: 1000..2678400000 (31 d)
//         "burst": 20,                                       // optional, 1..1e9, default = quota
//         "key": "client_ip" | "merchant_id" | "key_id" | "route" | "header",   // required
//         "header": "X-Api-Client",                          // required for key "header", refused otherwise
//         "max_keys": 100000                                 // optional, 1..10,000,000, default 100,000
//       }
//     }
//   }
// Route section `routes.<id>.rate-limit`: {"policies": ["<name>", ...]} (1..8 names, known, no repeats).
//
// Entry points (the same in every filter folder): config::load for the global section, route_config::load
// for a route's section. Every rule throws config_error naming the offending key, at load only. The
// request path reads these structures and never validates anything.

#include "filters/common/config_reader.hpp"
#include "filters/common/redis.hpp"
#include "filters/rate_limit/gcra.hpp"

#include <boost/json/value.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace filterd::rate_limit {

/// What identifies the client a policy counts.
enum class key_kind : std::uint8_t {
    client_ip,    ///< the request's client IP (empty -> the shared "no key" bucket)
    merchant_id,  ///< ctx.merchant_id; requires ctx.authenticated (merchant-auth earlier in the chain)
    key_id,       ///< ctx.merchant_id + ctx.key_id; requires ctx.authenticated
    route,        ///< the route id: one bucket for the whole route
    header,       ///< first value of a named request header (absent -> the shared "no key" bucket)
};

/// True for the kinds that need an authenticated context.
constexpr bool needs_auth(key_kind k) noexcept { return k == key_kind::merchant_id || k == key_kind::key_id; }

inline constexpr std::int64_t default_max_keys = 100'000;
inline constexpr std::int64_t max_max_keys = 10'000'000;
inline constexpr std::int64_t max_replicas = 1000;
inline constexpr std::size_t max_policies_per_route = 8;

/// One validated policy.
struct policy_config {
    std::string name;
    std::int64_t quota = 0;      ///< as configured (the fleet-wide quota)
    std::int64_t pod_quota = 0;  ///< quota / replicas, at least 1: what this pod admits per window
    std::int64_t window_ms = 0;
    std::int64_t burst = 0;
    key_kind key = key_kind::client_ip;
    std::string header;  ///< only for key_kind::header
    std::int64_t max_keys = default_max_keys;
    gcra_params gcra;         ///< T = window / pod_quota, tau = burst * T
    gcra_params shared_gcra;  ///< T = window / quota, tau = burst * T: the fleet-wide bucket (redis store)

    /// Precomputed deny-header fragments (no formatting work per request for the fixed parts).
    std::string policy_item;  ///< `"<name>";q=<quota>;w=<window s>` for RateLimit-Policy
    std::string quota_text;   ///< decimal quota, for X-RateLimit-Limit

    /// Same name and the same effect on limiting: a reload may keep this policy's table.
    bool same_limits(const policy_config& o) const noexcept {
        return name == o.name && gcra == o.gcra && key == o.key && header == o.header && max_keys == o.max_keys;
    }
};

enum class store_kind : std::uint8_t { local, redis };
/// What a request gets when the redis store cannot answer in time.
enum class on_error : std::uint8_t {
    local,  ///< decide on this pod's share (quota / replicas), as the local store does
    deny,   ///< deny 503
};
/// Whose clock the shared GCRA runs on.
enum class clock_kind : std::uint8_t {
    redis,    ///< Redis TIME inside the script: one clock for every replica
    filterd,  ///< the requesting filterd's wall clock (ctx.wall_ns)
};

/// Largest tau + T the redis script computes exactly (Lua numbers are doubles: 2^53 ns, about 104 days).
inline constexpr std::int64_t max_shared_span_ns = std::int64_t{1} << 53;

/// The validated `filters.rate-limit` section.
struct config {
    std::int64_t replicas = 1;
    std::map<std::string, policy_config, std::less<>> policies;
    store_kind store = store_kind::local;
    redis::options redis;  ///< store == redis only
    on_error on_redis_error = on_error::local;
    clock_kind clock = clock_kind::redis;

    /// Validates `filters.rate-limit`. @param section the section, nullptr when absent (no policies, so
    /// any route that uses the filter fails to load). @param path the section's key path. Environment
    /// references ({"env": NAME}) are read here, once. @throws config_error naming the offending key.
    static config load(const boost::json::value* section, const std::string& path);
};

/// The validated `routes.<id>.rate-limit` section.
struct route_config {
    std::vector<const policy_config*> policies;  ///< in route order; point into the global config

    /// Validates the route section against `global`. @param section nullptr (absent or null) is an
    /// error: a route that runs the filter must say which policies apply. @throws config_error, e.g.
    /// naming `routes.<id>.rate-limit.policies[1]` for an unknown policy.
    static route_config load(const config& global, std::string_view route_id, const boost::json::value* section,
                             const std::string& path);
};

}  // namespace filterd::rate_limit
