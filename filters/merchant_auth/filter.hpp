#pragma once
// merchant-auth: verifies SPV1 request signatures (docs/filters/merchant-auth.md).
//
// Order of checks, each stopping at the first failure:
//   1. syntax and limits: duplicate auth header (400), control character in an auth header, the method
//      or the path (400), missing (401) or malformed (401) auth header, more than max_query_params
//      query pairs (400), body_sha256 not 32 bytes or sent with a body (400), body over max_body_bytes
//      (413; only a body that crossed the socket can be measured: with body_sha256 the gateway enforces
//      the limit);
//   2. |now - X-Timestamp| <= skew_seconds, with now = ctx.wall_ns (401 timestamp_skew);
//   3. key lookup by (X-Merchant-Id, X-Key-Id); an unknown key is still verified (with the merchant's
//      first key, or a throwaway key for an unknown merchant) and the result discarded, so it costs
//      the same work, then denied 401 unknown_key;
//   4. the signature over the canonical string (line 9: body_sha256 when sent, else the hash of body), with the key
//   record's algorithm (401 bad_signature);
//      then the key's state and validity window at ctx.wall_ns: revoked (401 key_revoked), before
//      not_before (401 key_not_yet_valid), at or after not_after (401 key_expired). A retiring key
//      still authenticates; each use is counted and logged (at most once a minute per key);
//   5. the nonce, recorded only now, after the signature passed: replay (401), store full (503), the
//      merchant's share of the store full (429 nonce_quota_exceeded), the journal could not record it
//      or the start-up fence covers its timestamp (503 nonce_journal_unavailable);
//   6. authorisation (403): merchant active, route allowed for the key, client IP inside the key's
//      CIDRs, and the route's merchant path parameter equal to the merchant id.
// On allow: ctx.authenticated = true, ctx.merchant_id and ctx.key_id are set.
// On deny: ctx.deny_problem(status, generic title, reason token); 401 adds WWW-Authenticate: SPV1;
// the reason goes to ctx.reason, filterd_merchant_auth_denied_total{reason} and one warn log line
// that never holds the signature, the secret or the body.

#include "filters/common/filter.hpp"
#include "filters/merchant_auth/canonical.hpp"
#include "filters/merchant_auth/config.hpp"
#include "filters/merchant_auth/nonce_store.hpp"

#include <memory>

namespace filterd::merchant_auth {

class merchant_auth_filter final : public filter {
public:
    /// @param redis  the shared nonce store (store "redis"), or nullptr (store "local")
    merchant_auth_filter(std::shared_ptr<const config> cfg, route_config route, std::shared_ptr<nonce_store> nonces,
                         std::shared_ptr<redis::client> redis = nullptr)
        : cfg_(std::move(cfg)),
          route_(std::move(route)),
          nonces_(std::move(nonces)),
          redis_(std::move(redis)) {}

    /// Store "local": steps 1-6 above, inline.
    outcome on_request(const request_view& req, context& ctx) const noexcept override;

    /// Store "redis": steps 1-4 inline, then the nonce in Redis (SET <merchant prefix>n:<nonce> 1 NX
    /// PX 2 x skew), then step 6. A nonce that exists is a replay (401, as locally); Redis failing,
    /// erroring or not answering within the request's deadline denies 503 nonce_store_unavailable
    /// (fail closed, never skipped). When ctx.fused_store is this store, the nonce is handed to the
    /// later filter of the request on the same store (context::nonce) instead, so the request makes one
    /// round trip; authorisation (step 6) then runs before the nonce is recorded.
    void on_request_async(const request_view& req, context& ctx, resume_fn done) const noexcept override;
    bool is_async() const noexcept override { return redis_ != nullptr; }
    const void* shared_store() const noexcept override { return redis_.get(); }

private:
    /// What steps 1-4 established.
    struct verified {
        auth_headers h;
        const merchant_record* m = nullptr;
        const key_record* k = nullptr;
        std::int64_t now_ns = 0;
        std::int64_t skew_ns = 0;
    };
    /// Steps 1-4: allow means "go on to the nonce".
    outcome verify(const request_view& req, context& ctx, verified& out) const noexcept;
    /// Step 6 and the allow (counted when `count_allow`).
    outcome authorise(const request_view& req, context& ctx, const verified& v, bool count_allow) const noexcept;

    outcome deny(const request_view& req, context& ctx, reason r, std::string_view merchant_id,
                 std::string_view key_id) const noexcept;

    std::shared_ptr<const config> cfg_;
    route_config route_;
    std::shared_ptr<nonce_store> nonces_;
    std::shared_ptr<redis::client> redis_;
};

/// The filter_instance of one config generation: the config plus the nonce store, which is shared
/// with (carried over from) the previous generation.
class merchant_auth_instance final : public filter_instance {
public:
    merchant_auth_instance(std::shared_ptr<const config> cfg, std::shared_ptr<nonce_store> nonces,
                           std::shared_ptr<redis::client> redis = nullptr)
        : cfg_(std::move(cfg)),
          nonces_(std::move(nonces)),
          redis_(std::move(redis)) {}

    std::shared_ptr<const filter> for_route(std::string_view route_id, const boost::json::value* route_cfg,
                                            const std::string& path) const override;

    const std::shared_ptr<const config>& cfg() const noexcept { return cfg_; }
    const std::shared_ptr<nonce_store>& nonces() const noexcept { return nonces_; }

private:
    std::shared_ptr<const config> cfg_;
    std::shared_ptr<nonce_store> nonces_;
    std::shared_ptr<redis::client> redis_;
};

}  // namespace filterd::merchant_auth
