#include "filters/merchant_auth/filter.hpp"

#include "core/log.hpp"
#include "filters/merchant_auth/canonical.hpp"

namespace filterd::merchant_auth {

namespace {

constexpr std::int64_t ns_per_s = 1'000'000'000;
constexpr std::int64_t max_timestamp_s = 9'000'000'000;

// Scratch reused by every request on a thread: the steady state builds no new strings.
struct scratch {
    canonicaliser canon;
    std::string text;
};
scratch& tls() {
    thread_local scratch s;
    return s;
}

}  // namespace

outcome merchant_auth_filter::deny(const request_view& req, context& ctx, reason r, std::string_view merchant_id,
                                   std::string_view key_id) const noexcept {
    const config& c = *cfg_;
    c.denied[static_cast<std::size_t>(r)]->inc();
    std::uint16_t status = reason_status(r);
    ctx.deny_problem(status, reason_title(r), reason_token(r));
    if (status == 401)
        ctx.deny_headers.push_back({"WWW-Authenticate", "SPV1"});
    // Ids only once they passed the header syntax check; never the signature, nonce, secret or body.
    log::warn("merchant-auth denied", {{"reason", reason_token(r)},
                                       {"status", status},
                                       {"route", route_.route_id},
                                       {"request_id", req.id()},
                                       {"merchant_id", merchant_id},
                                       {"key_id", key_id}});
    return r == reason::internal_error ? outcome::error : outcome::deny;
}

outcome merchant_auth_filter::on_request(const request_view& req, context& ctx) const noexcept {
    verified v;
    if (outcome o = verify(req, ctx, v); o != outcome::allow)
        return o;
    const auto& h = v.h;
    // 5. Nonce: recorded only after the signature passed.
    switch (nonces_->check_and_record(h.merchant_id, v.m->nonce_owner, h.nonce, h.timestamp_s, v.now_ns, v.skew_ns)) {
    case nonce_store::result::recorded: break;
    case nonce_store::result::replay: return deny(req, ctx, reason::replay, h.merchant_id, h.key_id);
    case nonce_store::result::full: return deny(req, ctx, reason::nonce_store_full, h.merchant_id, h.key_id);
    case nonce_store::result::merchant_full:
        return deny(req, ctx, reason::nonce_quota_exceeded, h.merchant_id, h.key_id);
    case nonce_store::result::unavailable:
        return deny(req, ctx, reason::nonce_journal_unavailable, h.merchant_id, h.key_id);
    }
    return authorise(req, ctx, v, true);
}

void merchant_auth_filter::on_request_async(const request_view& req, context& ctx, resume_fn done) const noexcept {
    auto v = std::make_shared<verified>();
    if (outcome o = verify(req, ctx, *v); o != outcome::allow)
        return done(o);
    const auto& h = v->h;
    std::string key = redis::merchant_prefix(h.merchant_id) + "n:" + redis::key_part(h.nonce);
    // Remembered for 2 x skew: whatever the clock of the replica that sees a replay, the request's
    // timestamp is outside every replica's window by then.
    const std::int64_t ttl_ms = 2 * cfg_->skew_s * 1000;
    if (ctx.fused_store == redis_.get()) {
        // One round trip: the later filter on the same store records the nonce in its own script
        // call, before its decision, and settles this filter's verdict. Authorisation runs now.
        if (outcome o = authorise(req, ctx, *v, false); o != outcome::allow)
            return done(o);
        ctx.nonce.emplace();
        ctx.nonce->key = std::move(key);
        ctx.nonce->ttl_ms = ttl_ms;
        ctx.nonce->settle = [this, &req, v](context& c, context::pending_nonce::verdict verdict) {
            using vd = context::pending_nonce::verdict;
            if (verdict == vd::recorded) {
                cfg_->allowed->inc();
                return outcome::allow;
            }
            c.authenticated = false;
            return deny(req, c, verdict == vd::replay ? reason::replay : reason::nonce_store_unavailable,
                        v->h.merchant_id, v->h.key_id);
        };
        return done(outcome::allow);
    }
    const auto deadline = redis::clock::time_point(std::chrono::nanoseconds(ctx.deadline_mono_ns));
    // `this`, `req` and `ctx` outlive the call: the chain keeps them until done() (filter.hpp).
    redis_->command(
        {"SET", std::move(key), "1", "NX", "PX", std::to_string(ttl_ms)}, deadline,
        [this, &req, &ctx, v, done = std::move(done)](redis::result&& r) {
            auto rv = r.value.view();
            if (r.error == redis::errc::ok && rv.is_string() && rv.str() == "OK")
                return done(authorise(req, ctx, *v, true));
            if (r.error == redis::errc::ok && rv.is_nil())
                return done(deny(req, ctx, reason::replay, v->h.merchant_id, v->h.key_id));
            done(deny(req, ctx, reason::nonce_store_unavailable, v->h.merchant_id, v->h.key_id));
        },
        1);
}

outcome merchant_auth_filter::verify(const request_view& req, context& ctx, verified& out) const noexcept {
    const config& c = *cfg_;
    auto& h = out.h;

    // 1. Syntax and size limits.
    auth_header_parser parser;
    req.for_each_header([&](std::string_view n, std::string_view v) { parser.add(n, v); });
    parse_status ps = parser.finish(h);
    if (ps == parse_status::duplicate)
        return deny(req, ctx, reason::duplicate_header, {}, {});
    if (ps == parse_status::control_char || has_control_char(req.method()) || has_control_char(req.path()))
        return deny(req, ctx, reason::control_char, {}, {});
    if (ps == parse_status::missing)
        return deny(req, ctx, reason::missing_header, {}, {});
    if (ps == parse_status::malformed)
        return deny(req, ctx, reason::malformed_header, {}, {});
    if (req.query_count() > c.max_query_params)
        return deny(req, ctx, reason::too_many_query_params, h.merchant_id, h.key_id);
    auto body = req.body();
    if (!req.body_fields_consistent())
        return deny(req, ctx, reason::malformed_body_digest, h.merchant_id, h.key_id);
    if (body.size() > c.max_body_bytes)
        return deny(req, ctx, reason::body_too_large, h.merchant_id, h.key_id);

    // 2. Timestamp within ±skew of the caller's wall clock. Timestamps past year 2255 are refused
    // before the arithmetic, which then cannot overflow (now_ns < 2^63 ns is before year 2262).
    const std::int64_t now_ns = ctx.wall_ns;
    const std::int64_t skew_ns = c.skew_s * ns_per_s;
    if (h.timestamp_s > max_timestamp_s)
        return deny(req, ctx, reason::timestamp_skew, h.merchant_id, h.key_id);
    const std::int64_t diff = now_ns - h.timestamp_s * ns_per_s;
    if (diff > skew_ns || diff < -skew_ns)
        return deny(req, ctx, reason::timestamp_skew, h.merchant_id, h.key_id);

    // 3. Key lookup. The algorithm comes from the key record; an unknown key gets a stand-in.
    const merchant_record* m = c.find_merchant(h.merchant_id);
    const key_record* k = m != nullptr ? m->find_key(h.key_id) : nullptr;
    const verify_key* vk = k != nullptr ? &k->key : m != nullptr ? &m->keys.front()->key : c.unknown_merchant_key;

    // 4. Signature over the canonical string.
    // The gateway sends either the body or its digest (body_sha256); a digest is used as it is.
    char body_hex[64];
    if (auto digest = req.body_sha256()) {
        static constexpr char hex[] = "0123456789abcdef";
        for (std::size_t i = 0; i < 32; ++i) {
            body_hex[2 * i] = hex[(*digest)[i] >> 4];
            body_hex[2 * i + 1] = hex[(*digest)[i] & 0xf];
        }
    } else if (!sha256_hex(body, body_hex)) {
        return deny(req, ctx, reason::internal_error, h.merchant_id, h.key_id);
    }
    scratch& s = tls();
    s.canon.reset();
    req.for_each_query([&](std::string_view n, std::string_view v) { s.canon.add_query(n, v); });
    s.canon.build({req.method(), req.path(), h.merchant_id, h.key_id, h.timestamp, h.nonce,
                   std::string_view(body_hex, sizeof(body_hex))},
                  s.text);
    bool good = vk != nullptr && vk->verify(s.text, h.signature_bytes());
    if (k == nullptr)
        return deny(req, ctx, reason::unknown_key, h.merchant_id, h.key_id);  // `good` is ignored on purpose
    if (!good)
        return deny(req, ctx, reason::bad_signature, h.merchant_id, h.key_id);
    if (k->state == key_state::revoked)
        return deny(req, ctx, reason::key_revoked, h.merchant_id, h.key_id);
    if (k->not_before_s && now_ns < *k->not_before_s * ns_per_s)
        return deny(req, ctx, reason::key_not_yet_valid, h.merchant_id, h.key_id);
    if (k->not_after_s && now_ns >= *k->not_after_s * ns_per_s)
        return deny(req, ctx, reason::key_expired, h.merchant_id, h.key_id);

    out.m = m;
    out.k = k;
    out.now_ns = now_ns;
    out.skew_ns = skew_ns;
    return outcome::allow;
}

outcome merchant_auth_filter::authorise(const request_view& req, context& ctx, const verified& v,
                                        bool count_allow) const noexcept {
    const config& c = *cfg_;
    const auto& h = v.h;
    const merchant_record* m = v.m;
    const key_record* k = v.k;
    const std::int64_t now_ns = v.now_ns;

    // 6. Authorisation.
    if (!m->active)
        return deny(req, ctx, reason::merchant_suspended, h.merchant_id, h.key_id);
    if (!k->route_allowed(route_.route_id))
        return deny(req, ctx, reason::route_not_allowed, h.merchant_id, h.key_id);
    if (!k->cidrs.empty()) {
        std::array<std::uint8_t, 16> ip{};
        bool inside = false;
        if (parse_ip(req.client_ip(), ip))  // an unparsable client IP is outside every CIDR
            for (const auto& net : k->cidrs)
                inside = inside || net.contains(ip);
        if (!inside)
            return deny(req, ctx, reason::ip_not_allowed, h.merchant_id, h.key_id);
    }
    if (!route_.merchant_path_param.empty()) {
        auto p = req.path_param(route_.merchant_path_param);
        if (!p || *p != h.merchant_id)  // a missing parameter is a mismatch
            return deny(req, ctx, reason::merchant_mismatch, h.merchant_id, h.key_id);
    }

    if (k->state == key_state::retiring) {
        k->retiring_uses->inc();
        std::int64_t now_s = now_ns / ns_per_s;
        std::int64_t last = k->last_retiring_log_s.load(std::memory_order_relaxed);
        if ((last == INT64_MIN || now_s - last >= 60) && k->last_retiring_log_s.compare_exchange_strong(last, now_s))
            log::warn("merchant-auth: request signed with a retiring key",
                      {{"merchant_id", h.merchant_id}, {"key_id", h.key_id}, {"not_after", *k->not_after_s}});
    }
    if (count_allow)
        c.allowed->inc();
    ctx.authenticated = true;
    ctx.merchant_id.assign(h.merchant_id);
    ctx.key_id.assign(h.key_id);
    return outcome::allow;
}

std::shared_ptr<const filter> merchant_auth_instance::for_route(std::string_view route_id,
                                                                const boost::json::value* route_cfg,
                                                                const std::string& path) const {
    return std::make_shared<merchant_auth_filter>(cfg_, route_config::load(*cfg_, route_id, route_cfg, path), nonces_,
                                                  redis_);
}

}  // namespace filterd::merchant_auth
