#include "filters/rate_limit/filter.hpp"

#include "core/log.hpp"
#include "filters/rate_limit/redis_store.hpp"

#include <charconv>

namespace filterd::rate_limit {

namespace {

std::string to_dec(std::int64_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}

/// Fills the 429 deny for the most constrained refusing policy.
outcome deny_for(context& ctx, const policy_config& c, const gcra_decision& d) {
    const std::string retry = to_dec(ceil_seconds(d.retry_after_ns));
    ctx.deny_problem(429, "Too Many Requests", "rate_limited");
    ctx.deny_headers.push_back({"Retry-After", retry});
    ctx.deny_headers.push_back({"RateLimit-Policy", c.policy_item});
    ctx.deny_headers.push_back({"RateLimit", "\"" + c.name + "\";r=0;t=" + retry});
    ctx.deny_headers.push_back({"X-RateLimit-Limit", c.quota_text});
    ctx.deny_headers.push_back({"X-RateLimit-Remaining", "0"});
    ctx.deny_headers.push_back({"X-RateLimit-Reset", to_dec(ceil_seconds(d.reset_ns))});
    return outcome::deny;
}

}  // namespace

outcome rate_limit_filter::on_request(const request_view& req, context& ctx) const noexcept {
    const std::size_t n = policies_.size();
    const std::int64_t now = ctx.mono_ns;
    std::uint64_t keys[max_policies_per_route];
    placement where[max_policies_per_route];
    gcra_decision decided[max_policies_per_route];

    // 1. Keys. Nothing is locked or changed until every key is known.
    for (std::size_t i = 0; i < n; ++i) {
        const policy_config& c = *policies_[i].cfg;
        policy_table& t = *policies_[i].table;
        switch (c.key) {
        case key_kind::client_ip: keys[i] = t.hash(req.client_ip()); break;
        case key_kind::route: keys[i] = t.hash(req.route()); break;
        case key_kind::header: keys[i] = t.hash(req.header(c.header).first); break;
        case key_kind::merchant_id:
        case key_kind::key_id:
            if (!ctx.authenticated) {
                t.errors().inc();
                ctx.reason = "rate_limit_unauthenticated";
                return outcome::error;
            }
            keys[i] = c.key == key_kind::merchant_id ? t.hash(ctx.merchant_id)
                                                     : t.hash(ctx.merchant_id, ctx.key_id, true);
            break;
        }
    }

    // 2-4. Lock, locate, decide, then commit all or nothing.
    bool all_allowed = true;
    bool overflowed[max_policies_per_route] = {};
    {
        lock_set locks;
        for (std::size_t i = 0; i < n; ++i)
            locks.add(&policies_[i].table->shard_for(keys[i]).mu);
        locks.lock_batch();
        bool any_overflow = false;
        for (std::size_t i = 0; i < n; ++i) {
            policy_table& t = *policies_[i].table;
            where[i] = t.locate(t.shard_for(keys[i]), keys[i], now);
            if (where[i].entry == nullptr) {
                overflowed[i] = any_overflow = true;
                locks.add(&t.overflow_mutex());
            }
        }
        if (any_overflow)
            locks.lock_batch();
        for (std::size_t i = 0; i < n; ++i) {
            policy_table& t = *policies_[i].table;
            const std::int64_t tat = where[i].entry == nullptr ? t.overflow_tat()
                                     : where[i].is_new         ? now
                                                               : where[i].entry->tat;
            decided[i] = gcra_decide(tat, now, t.config().gcra);
            all_allowed = all_allowed && decided[i].allowed;
        }
        if (all_allowed)
            for (std::size_t i = 0; i < n; ++i)
                policies_[i].table->commit(where[i], keys[i], decided[i].new_tat);
    }

    for (std::size_t i = 0; i < n; ++i)
        if (overflowed[i])
            policies_[i].table->overflowed().inc();
    if (all_allowed) {
        for (std::size_t i = 0; i < n; ++i)
            policies_[i].table->allowed().inc();
        return outcome::allow;
    }

    // Deny: report the most constrained refusing policy.
    std::size_t worst = n;
    for (std::size_t i = 0; i < n; ++i) {
        if (decided[i].allowed)
            continue;
        policies_[i].table->denied().inc();
        if (worst == n || decided[i].retry_after_ns > decided[worst].retry_after_ns)
            worst = i;
    }
    return deny_for(ctx, *policies_[worst].cfg, decided[worst]);
}

void redis_link::note(bool ok, redis::errc why) noexcept {
    if (ok) {
        if (degraded.exchange(false)) {
            degraded_gauge->set(0);
            log::info("rate-limit store answering again; shared limits apply");
        }
        return;
    }
    if (!degraded.exchange(true)) {
        degraded_gauge->set(1);
        log::warn(
            "rate-limit store not answering; requests are decided without it until it recovers",
            {{"error", std::string(redis::to_string(why))},
             {"on_redis_error", policy == on_error::local ? "local (this pod's share of each quota)" : "deny (503)"}});
    }
}

std::string rate_limit_filter::redis_key(std::size_t i, const request_view& req, const context& ctx) const {
    const policy_config& c = *policies_[i].cfg;
    switch (c.key) {
    case key_kind::merchant_id: return redis::merchant_prefix(ctx.merchant_id) + "rl:" + c.name;
    case key_kind::key_id:
        return redis::merchant_prefix(ctx.merchant_id) + "rl:" + c.name + ":" + redis::key_part(ctx.key_id);
    case key_kind::client_ip: return "filterd:{ip:" + redis::key_part(req.client_ip()) + "}:rl:" + c.name;
    case key_kind::route: return "filterd:{r:" + redis::key_part(req.route()) + "}:rl:" + c.name;
    case key_kind::header:
        return "filterd:{h:" + redis::key_part(c.header) + ":" + redis::key_part(req.header(c.header).first) +
               "}:rl:" + c.name;
    }
    return {};
}

outcome rate_limit_filter::store_failed(const request_view& req, context& ctx, bool with_nonce,
                                        redis::errc why) const noexcept {
    store_->note(false, why);
    if (with_nonce)  // replay protection never goes without its store: merchant-auth's 503
        return ctx.nonce->settle(ctx, context::pending_nonce::verdict::unavailable);
    if (store_->policy == on_error::deny) {
        store_->fallback_deny->inc();
        ctx.deny_problem(503, "Service Unavailable", "rate_limit_store_unavailable");
        return outcome::deny;
    }
    store_->fallback_local->inc();
    return on_request(req, ctx);
}

void rate_limit_filter::on_request_async(const request_view& req, context& ctx, resume_fn done) const noexcept {
    const std::size_t n = policies_.size();
    for (std::size_t i = 0; i < n; ++i)
        if (needs_auth(policies_[i].cfg->key) && !ctx.authenticated) {
            policies_[i].table->errors().inc();
            ctx.reason = "rate_limit_unauthenticated";
            return done(outcome::error);
        }
    const bool with_nonce = ctx.nonce.has_value() && ctx.fused_store == store_->client.get();
    std::vector<std::string> keys;
    keys.reserve(n + 1);
    if (with_nonce)
        keys.push_back(ctx.nonce->key);
    for (std::size_t i = 0; i < n; ++i)
        keys.push_back(redis_key(i, req, ctx));
    std::vector<std::string> args;
    args.reserve(3 + 2 * n);
    args.push_back(with_nonce ? "1" : "0");
    args.push_back(with_nonce ? to_dec(ctx.nonce->ttl_ms) : "0");
    args.push_back(store_->clock == clock_kind::filterd ? to_dec(ctx.wall_ns) : "");
    for (std::size_t i = 0; i < n; ++i) {
        args.push_back(to_dec(policies_[i].cfg->shared_gcra.emission_ns));
        args.push_back(to_dec(policies_[i].cfg->shared_gcra.tolerance_ns));
    }
    const auto deadline = redis::clock::time_point(std::chrono::nanoseconds(ctx.deadline_mono_ns));
    // `this`, `req` and `ctx` outlive the call: the chain keeps them until done() (filter.hpp).
    store_->client->eval(gcra_script(), std::move(keys), std::move(args), deadline,
                         [this, &req, &ctx, with_nonce, done = std::move(done)](redis::result&& r) {
                             const std::size_t np = policies_.size();
                             auto v = r.value.view();
                             if (r.error != redis::errc::ok || !v.is_array() || v.size() < 1 || !v[0].is_integer())
                                 return done(
                                     store_failed(req, ctx, with_nonce,
                                                  r.error == redis::errc::ok ? redis::errc::server_error : r.error));
                             if (v[0].integer() == 1) {  // the nonce was there: a replay, nothing was charged
                                 store_->note(true, redis::errc::ok);
                                 if (with_nonce)
                                     return done(ctx.nonce->settle(ctx, context::pending_nonce::verdict::replay));
                                 return done(store_failed(req, ctx, false, redis::errc::server_error));
                             }
                             if (v.size() != 1 + 4 * np)
                                 return done(store_failed(req, ctx, with_nonce, redis::errc::server_error));
                             store_->note(true, redis::errc::ok);
                             if (with_nonce) {
                                 outcome o = ctx.nonce->settle(ctx, context::pending_nonce::verdict::recorded);
                                 if (o != outcome::allow)
                                     return done(o);
                             }
                             gcra_decision d[max_policies_per_route];
                             bool all = true;
                             for (std::size_t i = 0; i < np; ++i) {
                                 d[i].allowed = v[1 + 4 * i].integer() == 1;
                                 d[i].remaining = v[2 + 4 * i].integer();
                                 d[i].retry_after_ns = v[3 + 4 * i].integer();
                                 d[i].reset_ns = v[4 + 4 * i].integer();
                                 all = all && d[i].allowed;
                             }
                             if (all) {
                                 for (std::size_t i = 0; i < np; ++i)
                                     policies_[i].table->allowed().inc();
                                 return done(outcome::allow);
                             }
                             std::size_t worst = np;
                             for (std::size_t i = 0; i < np; ++i) {
                                 if (d[i].allowed)
                                     continue;
                                 policies_[i].table->denied().inc();
                                 if (worst == np || d[i].retry_after_ns > d[worst].retry_after_ns)
                                     worst = i;
                             }
                             done(deny_for(ctx, *policies_[worst].cfg, d[worst]));
                         });
}

rate_limit_instance::rate_limit_instance(config cfg, const rate_limit_instance* previous) : cfg_(std::move(cfg)) {
    if (cfg_.store == store_kind::redis) {
        store_ = std::make_shared<redis_link>();
        store_->client = redis::shared_client(cfg_.redis);
        store_->policy = cfg_.on_redis_error;
        store_->clock = cfg_.clock;
        auto& m = metrics_registry::global();
        const char* fh = "Rate-limit requests decided without the shared store, by action.";
        store_->fallback_local = &m.get_counter("filterd_rate_limit_store_fallbacks_total", fh, {{"action", "local"}});
        store_->fallback_deny = &m.get_counter("filterd_rate_limit_store_fallbacks_total", fh, {{"action", "deny"}});
        store_->degraded_gauge = &m.get_gauge("filterd_rate_limit_store_degraded",
                                              "1 while the rate-limit shared store does not answer.");
    }
    for (const auto& [name, p] : cfg_.policies) {
        bound_policy b;
        b.cfg = std::make_shared<const policy_config>(p);
        if (previous != nullptr)
            if (auto old = previous->table(name); old && old->config().same_limits(p))
                b.table = std::move(old);
        if (!b.table)
            b.table = std::make_shared<policy_table>(p);
        policies_.emplace(name, std::move(b));
    }
}

std::shared_ptr<const filter> rate_limit_instance::for_route(std::string_view route_id,
                                                             const boost::json::value* route_cfg,
                                                             const std::string& path) const {
    std::vector<bound_policy> bound;
    bool merchant_keyed = true;
    for (const policy_config* p : route_config::load(cfg_, route_id, route_cfg, path).policies) {
        bound.push_back(policies_.find(p->name)->second);
        merchant_keyed = merchant_keyed && needs_auth(p->key);
    }
    // A nonce (tagged with its merchant) can share the script call when every key is in one slot.
    const bool nonce_slot_safe = store_ && (!cfg_.redis.cluster || merchant_keyed);
    return std::make_shared<rate_limit_filter>(std::move(bound), store_, nonce_slot_safe);
}

std::shared_ptr<policy_table> rate_limit_instance::table(std::string_view name) const {
    auto it = policies_.find(name);
    return it == policies_.end() ? nullptr : it->second.table;
}

}  // namespace filterd::rate_limit
