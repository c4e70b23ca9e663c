#include "filters/enrichment/filter.hpp"

#include "filters/enrichment/ids.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <new>

namespace filterd::enrichment {
namespace {

constexpr std::string_view h_request_id = "X-Request-Id";
constexpr std::string_view h_client_request_id = "X-Client-Request-Id";
constexpr std::string_view h_traceparent = "traceparent";
constexpr std::string_view h_tracestate = "tracestate";
constexpr std::string_view h_connection = "Connection";

bool has_ctl(std::string_view s) noexcept {
    for (char c : s)
        if (c == '\r' || c == '\n' || c == '\0')
            return true;
    return false;
}

bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

/// A textual IPv4 or IPv6 address (an IPv6 zone id "%eth0" is not accepted). inet_pton needs a NUL-terminated
/// string, so the value is copied to the stack first.
bool valid_ip(std::string_view s) noexcept {
    char buf[INET6_ADDRSTRLEN + 1];
    if (s.empty() || s.size() >= sizeof buf)
        return false;
    for (char c : s)  // inet_pton alone is lenient about trailing bytes on some libcs
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '.' || c == ':'))
            return false;
    std::memcpy(buf, s.data(), s.size());
    buf[s.size()] = '\0';
    unsigned char addr[sizeof(in6_addr)];
    return inet_pton(AF_INET, buf, addr) == 1 || inet_pton(AF_INET6, buf, addr) == 1;
}

}  // namespace

events events::for_route(std::string_view route_id) {
    auto& m = metrics_registry::global();
    const std::string help = "enrichment filter events by route.";
    events e;
#define FILTERD_ENRICHMENT_GET(name)                                 \
    e.name = &m.get_counter("filterd_enrichment_events_total", help, \
                            {{"route", std::string(route_id)}, {"event", #name}});
    FILTERD_ENRICHMENT_EVENTS(FILTERD_ENRICHMENT_GET)
#undef FILTERD_ENRICHMENT_GET
    return e;
}

enrichment_filter::enrichment_filter(std::shared_ptr<const config> cfg, route_config route, events ev)
    : cfg_(std::move(cfg)),
      route_(std::move(route)),
      events_(ev) {}

bool enrichment_filter::must_strip(std::string_view name) const noexcept {
    if (header_name_starts_with(name, cfg_->internal_prefix))
        return true;
    for (const auto& s : cfg_->strip_headers)
        if (header_name_equal(name, s))
            return true;
    for (const auto& s : route_.strip_headers)
        if (header_name_equal(name, s))
            return true;
    return false;
}

bool enrichment_filter::is_managed(std::string_view name) const noexcept {
    return must_strip(name) || header_name_equal(name, h_request_id) || header_name_equal(name, h_client_request_id) ||
           header_name_equal(name, h_traceparent) || header_name_equal(name, h_tracestate);
}

outcome enrichment_filter::on_request(const request_view& req, context& ctx) const noexcept {
    const std::size_t removes_before = ctx.remove_headers.size();
    const std::size_t sets_before = ctx.set_headers.size();
    try {
        outcome o = do_request(req, ctx);
        if (o != outcome::allow)
            events_.failed->inc();
        return o;
    } catch (...) {  // only std::bad_alloc can get here; fail closed and take back what was added
        ctx.remove_headers.resize(removes_before);
        ctx.set_headers.resize(sets_before);
        events_.failed->inc();
        ctx.reason = "out_of_memory";
        return outcome::error;
    }
}

outcome enrichment_filter::do_request(const request_view& req, context& ctx) const {
    // Checks that need no work first, so a failing request leaves ctx outputs untouched.
    char received_at[rfc3339_ms_size];
    if (!format_rfc3339_ms(ctx.wall_ns, received_at)) {
        ctx.reason = "clock_unset";
        return outcome::error;
    }
    if (ctx.authenticated &&
        (ctx.merchant_id.empty() || ctx.key_id.empty() || has_ctl(ctx.merchant_id) || has_ctl(ctx.key_id))) {
        ctx.reason = "bad_auth_context";
        return outcome::error;
    }

    // One pass over the inbound headers: what to remove, and the values we look at.
    const std::size_t remove_begin = ctx.remove_headers.size();
    std::size_t removed = 0;
    bool bad_name = false;
    std::size_t request_id_count = 0, traceparent_count = 0;
    std::string_view inbound_request_id, inbound_traceparent, tracestate_name;
    auto remove = [&](std::string_view name) {
        if (has_ctl(name)) {
            bad_name = true;
            return;
        }
        for (std::size_t i = remove_begin; i < ctx.remove_headers.size(); ++i)
            if (iequals(ctx.remove_headers[i], name))
                return;
        ctx.remove_headers.emplace_back(name);
        ++removed;
    };
    std::string_view connection_name;
    req.for_each_header([&](std::string_view name, std::string_view value) {
        if (header_name_equal(name, h_request_id)) {
            if (request_id_count++ == 0)
                inbound_request_id = value;
            remove(name);
        } else if (header_name_equal(name, h_traceparent)) {
            if (traceparent_count++ == 0)
                inbound_traceparent = value;
            remove(name);
        } else if (header_name_equal(name, h_tracestate)) {
            if (tracestate_name.empty())
                tracestate_name = name;
        } else if (header_name_equal(name, h_client_request_id) || must_strip(name)) {
            remove(name);
        } else if (iequals(name, h_connection) && connection_name.empty()) {
            connection_name = name;
        }
    });
    // Connection names hop-by-hop headers that any RFC 9110 proxy on the way to the backend drops. A client
    // must not be able to name the headers this filter strips or sets there, so those tokens go; the
    // rest of the list (keep-alive, close, ...) is kept, joined into one value.
    std::string connection_kept;
    bool connection_changed = false;
    if (!connection_name.empty()) {
        req.for_each_header([&](std::string_view name, std::string_view value) {
            if (!iequals(name, h_connection))
                return;
            std::size_t i = 0;
            while (i <= value.size()) {
                std::size_t end = value.find(',', i);
                if (end == std::string_view::npos)
                    end = value.size();
                std::string_view tok = value.substr(i, end - i);
                while (!tok.empty() && is_ows(tok.front()))
                    tok.remove_prefix(1);
                while (!tok.empty() && is_ows(tok.back()))
                    tok.remove_suffix(1);
                if (!tok.empty()) {
                    if (is_managed(tok)) {
                        connection_changed = true;
                        events_.connection_tokens_removed->inc();
                    } else {
                        if (!connection_kept.empty())
                            connection_kept += ", ";
                        connection_kept += tok;
                    }
                }
                i = end + 1;
            }
        });
        if (connection_changed)
            remove(connection_name);
    }
    if (bad_name) {
        ctx.remove_headers.resize(remove_begin);
        ctx.deny_problem(400, "Bad Request", "bad_header_name");
        return outcome::deny;
    }

    // Randomness for the request id (10 bytes), the parent id (8) and possibly a new trace id (16).
    std::uint8_t rnd[34];
    if (!random_bytes(rnd, sizeof rnd)) {
        ctx.remove_headers.resize(remove_begin);
        ctx.reason = "rng_failed";
        return outcome::error;
    }
    std::uint8_t uuid_rnd[10];
    std::memcpy(uuid_rnd, rnd, sizeof uuid_rnd);
    const uuid_text request_id = format_uuid_v7(static_cast<std::uint64_t>(ctx.wall_ns / 1'000'000), uuid_rnd);

    trace_parent tp;
    const bool continued = traceparent_count == 1 && parse_traceparent(inbound_traceparent, tp);
    if (continued) {
        // A version other than 00 is re-emitted as 00: only the sampled flag is defined there.
        if (inbound_traceparent.substr(0, 2) != "00")
            tp.flags &= 0x01;
        events_.trace_continued->inc();
    } else {
        std::uint8_t* trace = rnd + 18;
        if (std::all_of(trace, trace + 16, [](std::uint8_t b) { return b == 0; }))
            trace[15] = 1;  // all-zero is invalid (probability 2^-128, but cheap to rule out)
        to_hex(trace, 16, tp.trace_id.data());
        tp.flags = cfg_->sample_new_traces ? 0x01 : 0x00;
        if (!tracestate_name.empty())
            remove(tracestate_name);
        events_.trace_started->inc();
    }
    std::uint8_t* parent = rnd + 10;
    if (std::all_of(parent, parent + 8, [](std::uint8_t b) { return b == 0; }))
        parent[7] = 1;
    to_hex(parent, 8, tp.parent_id.data());
    char traceparent[traceparent_size];
    format_traceparent(tp.trace_id, tp.parent_id, tp.flags, traceparent);

    // Sets. Every value below is either generated here (hex, digits, fixed punctuation) or validated.
    auto& sets = ctx.set_headers;
    sets.reserve(sets.size() + 8);
    const std::string_view rid(request_id.data(), request_id.size());
    sets.push_back({std::string(h_request_id), std::string(rid)});
    sets.push_back({cfg_->request_id_header, std::string(rid)});
    if (request_id_count == 1 && valid_request_id(inbound_request_id)) {
        sets.push_back({std::string(h_client_request_id), std::string(inbound_request_id)});
        events_.request_id_kept->inc();
    } else if (request_id_count > 0) {
        events_.request_id_dropped->inc();
    }
    sets.push_back({std::string(h_traceparent), std::string(traceparent, traceparent_size)});
    sets.push_back({cfg_->received_at_header, std::string(received_at, rfc3339_ms_size)});
    if (const std::string_view ip = req.client_ip(); valid_ip(ip))
        sets.push_back({cfg_->client_ip_header, std::string(ip)});
    else
        events_.client_ip_invalid->inc();
    if (ctx.authenticated) {
        sets.push_back({cfg_->merchant_id_header, ctx.merchant_id});
        sets.push_back({cfg_->key_id_header, ctx.key_id});
    }
    if (connection_changed && !connection_kept.empty() && !has_ctl(connection_kept))
        sets.push_back({std::string(connection_name), std::move(connection_kept)});
    if (removed != 0)
        events_.headers_removed->inc(removed);
    return outcome::allow;
}

std::shared_ptr<const filter> enrichment_instance::for_route(std::string_view route_id,
                                                             const boost::json::value* route_cfg,
                                                             const std::string& path) const {
    return std::make_shared<enrichment_filter>(cfg_, route_config::load(*cfg_, route_id, route_cfg, path),
                                               events::for_route(route_id));
}

}  // namespace filterd::enrichment
