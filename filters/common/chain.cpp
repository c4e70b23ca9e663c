#include "filters/common/chain.hpp"

#include <chrono>

namespace filterd {

namespace json = boost::json;

const route_filter* route::find(std::string_view name) const noexcept {
    for (const auto& f : filters)
        if (f.name == name)
            return &f;
    return nullptr;
}

std::shared_ptr<const filter_set> filter_set::build(const json::value* filters_cfg, const json::value* routes_cfg,
                                                    const registry& reg, const filter_set* previous) {
    auto set = std::make_shared<filter_set>();
    auto& m = metrics_registry::global();

    // Global sections: one instance per named filter.
    auto instance_for = [&](std::string_view name, const std::string& path) -> std::shared_ptr<filter_instance> {
        if (auto it = set->instances_.find(name); it != set->instances_.end())
            return it->second;
        const filter_factory* f = reg.find(name);
        if (f == nullptr) {
            std::string known;
            for (const auto& n : reg.names())
                known += (known.empty() ? "" : ", ") + n;
            throw config_error(path, "unknown filter (known: " + known + ")");
        }
        const json::value* global = nullptr;
        if (filters_cfg != nullptr) {
            if (auto* g = filters_cfg->as_object().if_contains(name); g != nullptr && !g->is_null())
                global = g;
        }
        std::shared_ptr<filter_instance> prev = previous ? previous->instance(name) : nullptr;
        auto inst = f->create(global, "filters." + std::string(name), prev);
        set->instances_.emplace(std::string(name), inst);
        return inst;
    };

    if (filters_cfg != nullptr) {
        if (!filters_cfg->is_object())
            throw config_error("filters", "must be an object");
        for (const auto& kv : filters_cfg->as_object())
            instance_for(kv.key(), "filters." + std::string(kv.key()));
    }

    if (routes_cfg == nullptr)
        throw config_error("routes", "is required");
    if (!routes_cfg->is_object())
        throw config_error("routes", "must be an object");
    if (routes_cfg->as_object().empty())
        throw config_error("routes", "must define at least one route");
    for (const auto& rkv : routes_cfg->as_object()) {
        std::string rid(rkv.key());
        std::string rpath = "routes." + rid;
        if (rid.empty() || rid.size() > 128)
            throw config_error(rpath, "route id must be 1-128 characters");
        if (!rkv.value().is_object())
            throw config_error(rpath, "must be an object whose keys are filter names");
        route r;
        r.id = rid;
        r.allowed = &m.get_counter("filterd_route_requests_total", "Requests by route and verdict.",
                                   {{"route", rid}, {"verdict", "allow"}});
        r.denied = &m.get_counter("filterd_route_requests_total", "Requests by route and verdict.",
                                  {{"route", rid}, {"verdict", "deny"}});
        r.latency = &m.get_histogram("filterd_chain_duration_seconds", "Time spent running a route's filter chain.",
                                     {{"route", rid}});
        for (const auto& fkv : rkv.value().as_object()) {
            std::string fname(fkv.key());
            std::string fpath = rpath + "." + fname;
            auto inst = instance_for(fname, fpath);
            const json::value* rc = fkv.value().is_null() ? nullptr : &fkv.value();
            route_filter rf;
            rf.name = fname;
            rf.impl = inst->for_route(rid, rc, fpath);
            const char* help = "Filter decisions by route, filter and verdict.";
            rf.allowed = &m.get_counter("filterd_filter_requests_total", help,
                                        {{"route", rid}, {"filter", fname}, {"verdict", "allow"}});
            rf.denied = &m.get_counter("filterd_filter_requests_total", help,
                                       {{"route", rid}, {"filter", fname}, {"verdict", "deny"}});
            rf.errored = &m.get_counter("filterd_filter_requests_total", help,
                                        {{"route", rid}, {"filter", fname}, {"verdict", "error"}});
            r.filters.push_back(std::move(rf));
        }
        set->routes_.emplace(rid, std::move(r));
    }
    return set;
}

const route* filter_set::find_route(std::string_view id) const noexcept {
    auto it = routes_.find(id);
    return it == routes_.end() ? nullptr : &it->second;
}

std::shared_ptr<filter_instance> filter_set::instance(std::string_view filter_name) const {
    auto it = instances_.find(filter_name);
    return it == instances_.end() ? nullptr : it->second;
}

namespace {
std::int64_t mono_now_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}
}  // namespace

void run_chain(const filter_set& set, const request_view& req, context& ctx, chain_result& out) noexcept {
    out.status = chain_status::done;
    out.allowed = false;
    out.detail = {};
    out.timings.clear();

    const route* r = set.find_route(req.route());
    if (r == nullptr) {
        out.status = chain_status::unknown_route;
        return;
    }

    // Resolve the whole list first: nothing runs for a request that names an unknown filter.
    const route_filter* resolved[16];
    std::size_t n = 0;
    if (const auto* names = req.raw().filters()) {
        if (names->size() > std::size(resolved)) {
            out.status = chain_status::unknown_filter;
            out.detail = "too many filters";
            return;
        }
        for (const auto* s : *names) {
            std::string_view name = request_view::sv(s);
            const route_filter* f = r->find(name);
            bool dup = false;
            for (std::size_t i = 0; i < n; ++i)
                dup = dup || resolved[i] == f;
            if (f == nullptr || dup) {
                out.status = chain_status::unknown_filter;
                out.detail = name;
                return;
            }
            resolved[n++] = f;
        }
    }
    // The route's filters are all required: a request that names fewer is refused, so a gateway (or
    // anything else on the socket) cannot skip authentication by sending a shorter list.
    if (n != r->filters.size()) {
        out.status = chain_status::filters_mismatch;
        for (const auto& rf : r->filters) {
            bool named = false;
            for (std::size_t i = 0; i < n; ++i)
                named = named || resolved[i] == &rf;
            if (!named) {
                out.detail = rf.name;
                break;
            }
        }
        return;
    }

    std::int64_t chain_start = mono_now_ns();
    bool allowed = true;
    for (std::size_t i = 0; i < n; ++i) {
        const route_filter* f = resolved[i];
        std::int64_t t0 = mono_now_ns();
        outcome o = f->impl->on_request(req, ctx);
        std::int64_t t1 = mono_now_ns();
        out.timings.push_back({f, o, static_cast<std::uint32_t>(std::min<std::int64_t>(t1 - t0, UINT32_MAX))});
        if (o == outcome::allow) {
            f->allowed->inc();
            continue;
        }
        if (o == outcome::error) {
            f->errored->inc();
            if (ctx.deny_status == 0)
                ctx.deny_problem(500, "Internal Server Error", ctx.reason.empty() ? "filter_error" : ctx.reason);
        } else {
            f->denied->inc();
            if (ctx.deny_status == 0)  // a filter that denies without a status still denies
                ctx.deny_problem(403, "Forbidden", ctx.reason.empty() ? "denied" : ctx.reason);
        }
        allowed = false;
        break;
    }
    r->latency->observe(static_cast<std::uint64_t>(mono_now_ns() - chain_start));
    (allowed ? r->allowed : r->denied)->inc();
    out.allowed = allowed;
}

}  // namespace filterd
