#pragma once
// enrichment: the checked, read-only configuration (docs/filters/enrichment.md).
//
// Global section `filters.enrichment` (every key optional; absent section = all defaults):
//   "internal_prefix":   string, default "X-Gw-". Header-name token of 2-32 characters ending in '-'.
//                        Every inbound header whose name starts with it (header_name_equal: case and
//                        '_' / '-' do not matter) is removed,
//                        and the headers this filter sets for the backends use it (X-Gw-Merchant-Id, ...).
//   "strip_headers":     array of header names removed from every request, in addition to the fixed list
//                        (X-Original-URL, X-Rewrite-URL, X-HTTP-Method-Override), which cannot be turned off.
//                        Each a header-name token of 1-128 characters; no duplicates (header_name_equal);
//                        at most 64 entries.
//   "sample_new_traces": bool, default true. Trace flags of a trace this filter starts: true = "01"
//                        (sampled), false = "00".
// Route section `routes.<id>.enrichment` (null or an object):
//   "strip_headers":     extra names removed on this route only; same rules as above.
// Entry points (the same in every filter folder): config::load for the global section, route_config::load
// for a route's section. Unknown keys are errors. Every rule throws config_error naming the offending key;
// nothing here runs on the request path.

#include "filters/common/config_reader.hpp"

#include <boost/json/value.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace filterd::enrichment {

inline constexpr std::string_view default_internal_prefix = "X-Gw-";
inline constexpr std::size_t max_strip_headers = 64;
inline constexpr std::size_t max_header_name = 128;
inline constexpr std::size_t max_prefix = 32;

/// Headers removed on every request whatever the config says (URL / method override headers).
inline constexpr std::string_view fixed_strip_headers[] = {"X-Original-URL", "X-Rewrite-URL", "X-HTTP-Method-Override"};

/// Header-name equality as backends see it: ASCII case-insensitive, and '_' equal to '-'. CGI, WSGI
/// and PHP-style servers expose both `X-Gw-Merchant-Id` and `X_Gw_Merchant_Id` as HTTP_X_GW_MERCHANT_ID,
/// so every strip rule matches under this equality.
bool header_name_equal(std::string_view a, std::string_view b) noexcept;
/// True when `name` starts with `prefix` under header_name_equal.
bool header_name_starts_with(std::string_view name, std::string_view prefix) noexcept;

/// The validated global section. Immutable after load; shared by every route's filter.
struct config {
    std::string internal_prefix{default_internal_prefix};
    /// The fixed list followed by the configured names.
    std::vector<std::string> strip_headers;
    bool sample_new_traces = true;

    // Names of the headers set for the backends, precomputed from the prefix.
    std::string merchant_id_header;  ///< <prefix>Merchant-Id
    std::string key_id_header;       ///< <prefix>Key-Id
    std::string client_ip_header;    ///< <prefix>Client-Ip
    std::string request_id_header;   ///< <prefix>Request-Id
    std::string received_at_header;  ///< <prefix>Received-At

    /// Validates `filters.enrichment`. @param section the section, nullptr when absent (all defaults).
    /// @param path "filters.enrichment", for errors. @throws config_error naming the offending key.
    static config load(const boost::json::value* section, const std::string& path);
};

/// The validated route section.
struct route_config {
    std::vector<std::string> strip_headers;

    /// Validates `routes.<id>.enrichment` (the route's names are checked against the fixed list only).
    /// @param section nullptr when absent or null (no extra names). @throws config_error.
    static route_config load(const config& global, std::string_view route_id, const boost::json::value* section,
                             const std::string& path);
};

}  // namespace filterd::enrichment
