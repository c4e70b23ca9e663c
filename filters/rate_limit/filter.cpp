#include "filters/rate_limit/filter.hpp"

#include <charconv>

namespace filterd::rate_limit {

namespace {

std::string to_dec(std::int64_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
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
                                     : where[i].is_new          ? now
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
    const policy_config& c = *policies_[worst].cfg;
    const std::string retry = to_dec(ceil_seconds(decided[worst].retry_after_ns));
    ctx.deny_problem(429, "Too Many Requests", "rate_limited");
    ctx.deny_headers.push_back({"Retry-After", retry});
    ctx.deny_headers.push_back({"RateLimit-Policy", c.policy_item});
    ctx.deny_headers.push_back({"RateLimit", "\"" + c.name + "\";r=0;t=" + retry});
    ctx.deny_headers.push_back({"X-RateLimit-Limit", c.quota_text});
    ctx.deny_headers.push_back({"X-RateLimit-Remaining", "0"});
    ctx.deny_headers.push_back({"X-RateLimit-Reset", to_dec(ceil_seconds(decided[worst].reset_ns))});
    return outcome::deny;
}

rate_limit_instance::rate_limit_instance(global_config cfg, const rate_limit_instance* previous)
    : cfg_(std::move(cfg)) {
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

std::shared_ptr<const filter> rate_limit_instance::for_route(std::string_view, const boost::json::value* route_cfg,
                                                             const std::string& path) const {
    std::vector<bound_policy> bound;
    for (const policy_config* p : parse_route(cfg_, route_cfg, path))
        bound.push_back(policies_.find(p->name)->second);
    return std::make_shared<rate_limit_filter>(std::move(bound));
}

std::shared_ptr<policy_table> rate_limit_instance::table(std::string_view name) const {
    auto it = policies_.find(name);
    return it == policies_.end() ? nullptr : it->second.table;
}

}  // namespace filterd::rate_limit
