#pragma once
// merchant-auth configuration: the `filters.merchant-auth` section, checked once at load.
//
// Shape (docs/filters/merchant-auth.md has the full reference and examples):
//   {
//     "skew_seconds": 300,            // 1..3600, default 300: allowed |now - X-Timestamp|
//     "nonce_capacity": 1000000,      // 1..100000000, default 1000000; fixed for the process (see below)
//     "nonce_merchant_share_percent": 25, // 1..100, default 25: live nonces one merchant may hold, as a
//                                     // share of nonce_capacity (past it: 429 for that merchant only)
//     "nonce_journal": {              // optional; absent = nonces are forgotten on restart (warned at start)
//       "dir": "/run/filterd/nonces", // required: a directory owned by filterd, not group/other-writable
//       "max_bytes": 268435456,       // 1 MiB..16 GiB, default 256 MiB: past it appends fail (503)
//       "fsync": false                // fdatasync each record (for a persistent volume)
//     },                              // fixed for the process: a reload that changes it is refused
//     "store": "local" | "redis",     // default "local": where nonces are recorded. "redis" shares them
//                                     // between replicas (SET NX PX 2 x skew); nonce_capacity,
//                                     // nonce_merchant_share_percent and nonce_journal are then refused
//     "redis": { ... },               // with store "redis" only: redis::parse_options
//     "max_body_bytes": 1048576,      // 0..16777216, default 1 MiB: larger bodies are denied 413
//     "max_query_params": 256,        // 0..10000, default 256: more pairs are denied 400
//     "merchants": {                  // required, at least one
//       "<merchant-id>": {            // [A-Za-z0-9_-]{1,64}
//         "status": "active" | "suspended",                         // required
//         "keys": [ {                                               // required, at least one
//           "id": "k1",                                             // [A-Za-z0-9_-]{1,64}, unique per merchant
//           "alg": "hmac-sha256" | "rsa-sha256" | "ed25519",        // required
//           "secret": {"env": NAME} | {"file": PATH},               // hmac-sha256 only; >= 32 bytes
//           "public_key": {"env": NAME} | {"file": PATH},           // rsa-sha256 (>= 2048 bits) / ed25519; PEM
//           "state": "active" | "retiring" | "revoked",             // required
//           "not_before": <unix s>, "not_after": <unix s>,          // optional, 0..9e9; not_before < not_after
//           "routes": ["pay", ...],                                 // optional, non-empty; absent = all routes
//           "cidrs": ["10.0.0.0/8", "2001:db8::/32"]                // optional, non-empty; absent = any IP
//         } ]
//       }
//     }
//   }
// A "retiring" key must have not_after. Per route, `routes.<id>.merchant-auth` may be null/absent or
//   { "merchant_path_param": "<name>" }   // the gateway path parameter that must equal the merchant id
//
// Entry points (the same in every filter folder): config::load for the global section, route_config::load
// for a route's section. Every rule failure throws config_error naming the key path, e.g.
// "filters.merchant-auth.merchants.acme.keys[1].public_key". Unknown keys are errors.

#include "core/metrics.hpp"
#include "filters/common/config_reader.hpp"
#include "filters/common/redis.hpp"
#include "filters/merchant_auth/crypto.hpp"
#include "filters/merchant_auth/nonce_journal.hpp"

#include <boost/json/value.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace filterd::merchant_auth {

// Every deny reason: X(token, HTTP status, client title). The token is ctx.reason and the `reason`
// label of filterd_merchant_auth_denied_total; the title is the only thing the client sees.
#define FILTERD_MERCHANT_AUTH_REASONS(X)                     \
    X(duplicate_header, 400, "Bad Request")                  \
    X(control_char, 400, "Bad Request")                      \
    X(too_many_query_params, 400, "Bad Request")             \
    X(body_too_large, 413, "Content Too Large")              \
    X(malformed_body_digest, 400, "Bad Request")             \
    X(missing_header, 401, "Unauthorized")                   \
    X(malformed_header, 401, "Unauthorized")                 \
    X(timestamp_skew, 401, "Unauthorized")                   \
    X(unknown_key, 401, "Unauthorized")                      \
    X(bad_signature, 401, "Unauthorized")                    \
    X(key_revoked, 401, "Unauthorized")                      \
    X(key_expired, 401, "Unauthorized")                      \
    X(key_not_yet_valid, 401, "Unauthorized")                \
    X(replay, 401, "Unauthorized")                           \
    X(nonce_store_full, 503, "Service Unavailable")          \
    X(nonce_quota_exceeded, 429, "Too Many Requests")        \
    X(nonce_journal_unavailable, 503, "Service Unavailable") \
    X(nonce_store_unavailable, 503, "Service Unavailable")   \
    X(merchant_suspended, 403, "Forbidden")                  \
    X(route_not_allowed, 403, "Forbidden")                   \
    X(ip_not_allowed, 403, "Forbidden")                      \
    X(merchant_mismatch, 403, "Forbidden")                   \
    X(internal_error, 500, "Internal Server Error")

enum class reason : std::uint8_t {
#define FILTERD_X(name, status, title) name,
    FILTERD_MERCHANT_AUTH_REASONS(FILTERD_X)
#undef FILTERD_X
};
inline constexpr std::size_t reason_count = 0
#define FILTERD_X(name, status, title) +1
    FILTERD_MERCHANT_AUTH_REASONS(FILTERD_X)
#undef FILTERD_X
    ;

std::string_view reason_token(reason r) noexcept;  ///< static storage
std::uint16_t reason_status(reason r) noexcept;
std::string_view reason_title(reason r) noexcept;  ///< static storage

enum class key_state : std::uint8_t { active, retiring, revoked };

/// An IPv4 or IPv6 network. IPv4 is held as an IPv4-mapped IPv6 address (::ffff:a.b.c.d, prefix + 96),
/// so one comparison serves both families and a client at ::ffff:10.1.2.3 matches 10.0.0.0/8.
struct cidr {
    std::array<std::uint8_t, 16> addr{};
    std::uint8_t prefix = 0;

    bool contains(const std::array<std::uint8_t, 16>& ip) const noexcept;
    /// Parses "a.b.c.d/n" or "x:y::z/n"; host bits must be zero. Returns an error text or "".
    static std::string parse(std::string_view s, cidr& out);
};

/// Parses a textual IPv4 or IPv6 address into the mapped 16-byte form. Never throws.
bool parse_ip(std::string_view s, std::array<std::uint8_t, 16>& out) noexcept;

struct key_record {
    std::string id;
    verify_key key;
    key_state state = key_state::active;
    std::optional<std::int64_t> not_before_s;
    std::optional<std::int64_t> not_after_s;
    std::vector<std::string> routes;   ///< empty: every route
    std::vector<cidr> cidrs;           ///< empty: every client IP
    counter* retiring_uses = nullptr;  ///< filterd_merchant_auth_retiring_key_total{merchant,key}
    mutable std::atomic<std::int64_t> last_retiring_log_s{INT64_MIN};  ///< rate-limits the warning

    bool route_allowed(std::string_view route) const noexcept;
};

struct merchant_record {
    std::string id;
    bool active = true;
    std::vector<std::unique_ptr<key_record>> keys;
    std::uint32_t nonce_owner = 0;  ///< nonce_store::owner_index(id), set when the store is attached

    const key_record* find_key(std::string_view id) const noexcept;
};

/// The checked, read-only configuration of one config generation.
struct config {
    std::int64_t skew_s = 300;
    std::size_t nonce_capacity = 1'000'000;
    unsigned nonce_merchant_share_percent = 25;
    std::optional<journal_options> nonce_journal;
    bool redis_store = false;  ///< store "redis"
    redis::options redis;      ///< redis_store only
    std::size_t max_body_bytes = 1u << 20;
    std::size_t max_query_params = 256;
    std::map<std::string, merchant_record, std::less<>> merchants;
    /// Spends the work of a verification when the merchant is unknown: a throwaway key of the
    /// algorithm of the first configured key.
    const verify_key* unknown_merchant_key = nullptr;

    std::array<counter*, reason_count> denied{};  ///< filterd_merchant_auth_denied_total{reason}
    counter* allowed = nullptr;                   ///< filterd_merchant_auth_allowed_total

    const merchant_record* find_merchant(std::string_view id) const noexcept;

    /// Validates `section` (the `filters.merchant-auth` value, nullptr when absent) and reads the
    /// referenced secrets and public keys. @throws config_error naming the offending key.
    /// The factory attaches the nonce store's owner indexes to the result before sharing it.
    static config load(const boost::json::value* section, const std::string& path);
};

/// The checked `routes.<id>.merchant-auth` section.
struct route_config {
    std::string route_id;
    std::string merchant_path_param;  ///< empty: no path parameter check

    /// @param section nullptr when absent or null (no path parameter check).
    /// @throws config_error naming the offending key.
    static route_config load(const config& global, std::string_view route_id, const boost::json::value* section,
                             const std::string& path);
};

}  // namespace filterd::merchant_auth
