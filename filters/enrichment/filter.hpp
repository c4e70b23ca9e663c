#pragma once
// enrichment: trusted context for the backends (docs/filters/enrichment.md).
//
// On every request the filter
//  1. asks the bridge to remove (ctx.remove_headers) every inbound header a client must not set: names that
//     start with the internal prefix, the fixed list (X-Original-URL, X-Rewrite-URL, X-HTTP-Method-Override),
//     the configured global and route lists, and the inbound spellings of every header it sets itself
//     (X-Request-Id, X-Client-Request-Id, traceparent) plus tracestate when it starts a new trace.
//     Every name rule matches with header_name_equal: ASCII case-insensitive and '_' equal to '-', so
//     "X_Gw_Merchant_Id", which CGI-style backends read as X-Gw-Merchant-Id, is removed as well.
//     Names are emitted exactly as spelled in the request, once each (duplicates compared ASCII
//     case-insensitively). Because the bridge applies removes before sets, and the inbound spellings are
//     removed as well, a client's "x-gw-merchant-id" can never survive next to the filter's own value even if
//     the bridge compared names case-sensitively;
//     Connection: tokens that name any header of the list above, or one the filter sets, are removed
//     (a proxy between gateway and backend would otherwise drop the trusted headers as hop-by-hop);
//     the Connection header is then removed and, when other tokens remain, set again to those tokens
//     joined by ", ". The request is not denied for it;
//  2. sets (ctx.set_headers; the bridge replaces):
//     X-Request-Id            a fresh UUIDv7 (48-bit Unix ms from ctx.wall_ns, 74 CSPRNG bits);
//     <prefix>Request-Id      the same value;
//     X-Client-Request-Id     the inbound X-Request-Id when it is exactly one value matching
//                             [A-Za-z0-9._-]{1,64}; otherwise not set (an inbound X-Client-Request-Id is
//                             always removed, never passed through);
//     traceparent             a valid inbound one keeps trace id and flags with a new random parent id; an
//                             invalid, missing or repeated one is replaced by a new trace (random trace id
//                             and parent id, flags 01 or 00 per `sample_new_traces`), and tracestate is
//                             removed with it, because it describes a trace that no longer exists;
//     <prefix>Received-At     RFC 3339 UTC with milliseconds from ctx.wall_ns;
//     <prefix>Client-Ip       request_view::client_ip() when it is a valid IPv4/IPv6 literal (else not set);
//     <prefix>Merchant-Id     ctx.merchant_id, only when ctx.authenticated (merchant-auth ran before);
//     <prefix>Key-Id          ctx.key_id, likewise.
//
// No emitted name or value contains CR, LF or NUL. Outcomes (never throws):
//  * allow: the normal case;
//  * deny 400 "bad_header_name": an inbound header the filter must remove has CR, LF or NUL in its name;
//  * error "clock_unset": ctx.wall_ns <= 0 (the caller must fill it); "rng_failed": RAND_bytes failed;
//    "bad_auth_context": ctx.authenticated with an empty or CR/LF/NUL-carrying merchant or key id;
//    "out_of_memory". The chain turns an error into a 500: the request never reaches a backend without its
//    trusted headers.
// Time comes only from ctx.wall_ns; the filter never reads a clock.
//
// Metrics: counter filterd_enrichment_events_total{route, event} with the events listed in `events` below.

#include "core/metrics.hpp"
#include "filters/common/filter.hpp"
#include "filters/enrichment/config.hpp"

#include <memory>
#include <string>
#include <vector>

namespace filterd::enrichment {

/// The counters of one route, declared in one place.
#define FILTERD_ENRICHMENT_EVENTS(X)                                                                  \
    X(headers_removed)           /* inbound header names removed */                                   \
    X(request_id_kept)           /* valid inbound X-Request-Id kept as X-Client-Request-Id */         \
    X(request_id_dropped)        /* inbound X-Request-Id invalid or repeated, dropped */              \
    X(trace_continued)           /* valid traceparent kept its trace id */                            \
    X(trace_started)             /* traceparent missing or invalid: new trace */                      \
    X(client_ip_invalid)         /* client ip was not an IP literal: X-Gw-Client-Ip not set */        \
    X(connection_tokens_removed) /* Connection tokens naming a stripped or trusted header, removed */ \
    X(failed)                    /* outcome error or deny */

struct events {
#define FILTERD_ENRICHMENT_MEMBER(name) counter* name = nullptr;
    FILTERD_ENRICHMENT_EVENTS(FILTERD_ENRICHMENT_MEMBER)
#undef FILTERD_ENRICHMENT_MEMBER

    /// Gets or creates the route's series in the global metrics registry (config load only).
    static events for_route(std::string_view route_id);
};

class enrichment_filter final : public filter {
public:
    enrichment_filter(std::shared_ptr<const config> cfg, route_config route, events ev);

    outcome on_request(const request_view& req, context& ctx) const noexcept override;

private:
    outcome do_request(const request_view& req, context& ctx) const;
    bool must_strip(std::string_view name) const noexcept;
    /// must_strip, or a header the filter sets itself (request id, trace context).
    bool is_managed(std::string_view name) const noexcept;

    std::shared_ptr<const config> cfg_;
    route_config route_;
    events events_;
};

/// One config generation: the validated global section, shared by every route's filter.
class enrichment_instance final : public filter_instance {
public:
    explicit enrichment_instance(std::shared_ptr<const config> cfg) : cfg_(std::move(cfg)) {}

    /// @throws config_error (see route_config::load).
    std::shared_ptr<const filter> for_route(std::string_view route_id, const boost::json::value* route_cfg,
                                            const std::string& path) const override;

    const std::shared_ptr<const config>& cfg() const noexcept { return cfg_; }

private:
    std::shared_ptr<const config> cfg_;
};

}  // namespace filterd::enrichment
