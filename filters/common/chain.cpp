#include "filters/common/chain.hpp"

#include <algorithm>
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
        if (rkv.value().as_object().size() > max_filters_per_route)
            throw config_error(rpath, "a route runs at most " + std::to_string(max_filters_per_route) + " filters");
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
            r.may_suspend = r.may_suspend || rf.impl->is_async();
            r.filters.push_back(std::move(rf));
        }
        set->may_suspend_ = set->may_suspend_ || r.may_suspend;
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

namespace {

/// Resolves the request's filter list against its route. Returns the route, or nullptr with
/// out.status set to the error.
const route* resolve(const filter_set& set, const request_view& req, chain_result& out,
                     const route_filter* (&resolved)[max_filters_per_route], std::size_t& n) noexcept {
    out.status = chain_status::done;
    out.allowed = false;
    out.detail = {};
    out.timings.clear();
    n = 0;

    const route* r = set.find_route(req.route());
    if (r == nullptr) {
        out.status = chain_status::unknown_route;
        return nullptr;
    }

    // Resolve the whole list first: nothing runs for a request that names an unknown filter.
    if (const auto* names = req.raw().filters()) {
        if (names->size() > std::size(resolved)) {
            out.status = chain_status::unknown_filter;
            out.detail = "too many filters";
            return nullptr;
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
                return nullptr;
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
        return nullptr;
    }
    return r;
}

/// The chain's own deny (problem+json). When the body cannot be allocated the request is still denied:
/// status and reason are set, and the body is left empty.
void chain_deny(context& ctx, std::uint16_t status, std::string_view title, std::string_view reason) noexcept {
    try {
        ctx.deny_problem(status, title, reason);
    } catch (...) {
        ctx.deny_status = status;
        ctx.reason = reason;
        ctx.deny_body.clear();
        ctx.deny_content_type.clear();
    }
}

/// Records one filter's outcome. Returns true when the chain goes on.
bool account(const route_filter* f, outcome o, std::int64_t t0, context& ctx, chain_result& out) noexcept {
    std::int64_t t1 = mono_now_ns();
    out.timings.push_back({f, o, static_cast<std::uint32_t>(std::min<std::int64_t>(t1 - t0, UINT32_MAX))});
    if (o == outcome::allow) {
        f->allowed->inc();
        return true;
    }
    if (o == outcome::error) {
        f->errored->inc();
        if (ctx.deny_status == 0)
            chain_deny(ctx, 500, "Internal Server Error", ctx.reason.empty() ? "filter_error" : ctx.reason);
    } else {
        f->denied->inc();
        if (ctx.deny_status == 0)  // a filter that denies without a status still denies
            chain_deny(ctx, 403, "Forbidden", ctx.reason.empty() ? "denied" : ctx.reason);
    }
    return false;
}

void finish(const route* r, std::int64_t chain_start, bool allowed, chain_result& out) noexcept {
    r->latency->observe(static_cast<std::uint64_t>(mono_now_ns() - chain_start));
    (allowed ? r->allowed : r->denied)->inc();
    out.allowed = allowed;
}

/// One suspendable chain run: steps through the filters, suspending at each asynchronous one.
struct async_run : std::enable_shared_from_this<async_run> {
    const route* r = nullptr;
    const route_filter* resolved[max_filters_per_route] = {};
    std::size_t n = 0;
    std::size_t i = 0;
    std::int64_t chain_start = 0;
    std::int64_t t0 = 0;
    const request_view* req = nullptr;
    context* ctx = nullptr;
    chain_result* out = nullptr;
    std::function<void()> done;

    // Runs filters from i until one suspends or the chain ends.
    void step() noexcept {
        while (i < n) {
            const route_filter* f = resolved[i];
            t0 = mono_now_ns();
            if (f->impl->is_async()) {
                // resume() carries on, whether the filter answers before returning or later. The
                // callback keeps the run alive until the filter lets go of it.
                resume_fn resume_cb;
                try {
                    resume_cb = [self = shared_from_this()](outcome o) { self->resume(o); };
                } catch (...) {  // the callback could not be allocated: the filter never runs
                    chain_deny(*ctx, 500, "Internal Server Error", "out_of_memory");
                    return end(false);
                }
                f->impl->on_request_async(*req, *ctx, std::move(resume_cb));
                return;
            }
            outcome o = f->impl->on_request(*req, *ctx);
            if (!account(f, o, t0, *ctx, *out))
                return end(false);
            ++i;
        }
        end(true);
    }

    void resume(outcome o) noexcept {
        const route_filter* f = resolved[i];
        if (!account(f, o, t0, *ctx, *out))
            return end(false);
        ++i;
        step();
    }

    void end(bool allowed) noexcept {
        finish(r, chain_start, allowed, *out);
        auto d = std::move(done);
        d();
    }
};

}  // namespace

void run_chain(const filter_set& set, const request_view& req, context& ctx, chain_result& out) noexcept {
    const route_filter* resolved[max_filters_per_route];
    std::size_t n = 0;
    const route* r = resolve(set, req, out, resolved, n);
    if (r == nullptr)
        return;

    std::int64_t chain_start = mono_now_ns();
    bool allowed = true;
    for (std::size_t i = 0; i < n; ++i) {
        const route_filter* f = resolved[i];
        std::int64_t t0 = mono_now_ns();
        outcome o = f->impl->on_request(req, ctx);
        if (!account(f, o, t0, ctx, out)) {
            allowed = false;
            break;
        }
    }
    finish(r, chain_start, allowed, out);
}

void run_chain_async(const filter_set& set, const request_view& req, context& ctx, chain_result& out,
                     std::function<void()> done) noexcept {
    const route_filter* resolved[max_filters_per_route];
    std::size_t n = 0;
    const route* r = resolve(set, req, out, resolved, n);
    if (r == nullptr)
        return done();
    std::shared_ptr<async_run> run;
    try {
        run = std::make_shared<async_run>();
    } catch (...) {
        chain_deny(ctx, 500, "Internal Server Error", "out_of_memory");
        finish(r, mono_now_ns(), false, out);
        return done();
    }
    run->r = r;
    std::copy(resolved, resolved + n, run->resolved);
    run->n = n;
    // One round trip: a nonce of an earlier filter rides with a later filter on the same store.
    for (std::size_t j = 0; j < run->n && ctx.fused_store == nullptr; ++j) {
        const void* store = run->resolved[j]->impl->shared_store();
        if (store == nullptr)
            continue;
        for (std::size_t k = j + 1; k < run->n; ++k)
            if (run->resolved[k]->impl->carries_nonce() && run->resolved[k]->impl->shared_store() == store) {
                ctx.fused_store = store;
                break;
            }
    }
    run->req = &req;
    run->ctx = &ctx;
    run->out = &out;
    run->done = std::move(done);
    run->chain_start = mono_now_ns();
    run->step();
}

}  // namespace filterd
