#pragma once
// The filter contract: what a filter sees, what it may say, and how it is built.
//
// Life cycle
//   config load:  filter_factory::create()  -> filter_instance (one per filter name per config generation;
//                                              owns the validated global section and shared state)
//                 filter_instance::for_route() -> filter (one per route that uses the filter)
//   request:      filter::on_request(request_view, context&), from any I/O thread, concurrently.
//
// Filters are immutable after construction (`const`), so one object serves every request of its route;
// everything per request lives in `context`. This replaces Envoy's "one filter object per request" with no
// allocation on the hot path. Config errors throw config_error at load time; the request path never throws.

#include "filters/common/config_reader.hpp"
#include "protocol/filterd_generated.h"

#include <boost/json/value.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace filterd {

enum class outcome : std::uint8_t { allow = 0, deny = 1, error = 2 };

/// ASCII case-insensitive equality, for header names.
bool iequals(std::string_view a, std::string_view b) noexcept;

/// A verified FilterRequest as the filters see it. Valid only during one on_request call: the strings
/// point into the received frame. Every accessor is safe on absent fields (empty result).
class request_view {
public:
    /// `req` must come from a buffer that passed the FlatBuffers Verifier.
    explicit request_view(const wire::FilterRequest& req) noexcept : req_(&req) {}

    std::uint64_t id() const noexcept { return req_->id(); }
    std::string_view route() const noexcept { return sv(req_->route()); }
    std::string_view method() const noexcept { return sv(req_->method()); }
    std::string_view path() const noexcept { return sv(req_->path()); }
    std::string_view client_ip() const noexcept { return sv(req_->client_ip()); }
    std::span<const std::uint8_t> body() const noexcept;
    /// The SHA-256 of the whole body when the gateway sent the digest instead of the body (the bridge
    /// streams the body through SHA-256, so bodies never cross the socket). Absent when not sent.
    std::optional<std::span<const std::uint8_t>> body_sha256() const noexcept;
    /// False when body_sha256 is set but is not 32 bytes, or is set together with body: such a request
    /// is Malformed (the server answers it with an error before any filter runs).
    bool body_fields_consistent() const noexcept;

    /// All values of header `name` (case-insensitive), across repeated header entries, in order.
    /// `count` is the total number of values; `first` the first one (empty when count == 0).
    struct header_values {
        std::size_t count = 0;
        std::string_view first;
    };
    header_values header(std::string_view name) const noexcept;

    /// Calls f(name, value) for every header value in order.
    template <class F>
    void for_each_header(F&& f) const {
        if (const auto* hs = req_->headers())
            for (const auto* h : *hs) {
                if (h == nullptr || h->values() == nullptr)
                    continue;
                for (const auto* v : *h->values())
                    f(sv(h->name()), sv(v));
            }
    }

    /// Calls f(name, value) for every (decoded) query pair in order.
    template <class F>
    void for_each_query(F&& f) const {
        if (const auto* qs = req_->query())
            for (const auto* q : *qs)
                if (q != nullptr)
                    f(sv(q->name()), sv(q->value()));
    }
    std::size_t query_count() const noexcept { return req_->query() ? req_->query()->size() : 0; }

    /// Value of the gateway path parameter `name`, compared ASCII case-insensitively: lura hands the
    /// plugin parameter names with the first letter upper-cased ("merchant" arrives as "Merchant").
    /// Absent when no parameter matches, or when more than one does (ambiguous).
    std::optional<std::string_view> path_param(std::string_view name) const noexcept;

    const wire::FilterRequest& raw() const noexcept { return *req_; }

    static std::string_view sv(const flatbuffers::String* s) noexcept {
        return s ? std::string_view(s->data(), s->size()) : std::string_view{};
    }

private:
    const wire::FilterRequest* req_;
};

struct header_kv {
    std::string name;
    std::string value;
};

/// Per-request state shared along the chain, and the verdict being built.
struct context {
    // Times, taken once per request by the caller so that filters are deterministic under test.
    std::int64_t wall_ns = 0;  ///< Unix time in ns (system clock)
    std::int64_t mono_ns = 0;  ///< monotonic clock in ns
    std::int64_t deadline_mono_ns = INT64_MAX;

    // Established by merchant-auth for later filters.
    bool authenticated = false;
    std::string merchant_id;
    std::string key_id;

    // Deny output (set by the filter that denies).
    std::uint16_t deny_status = 0;
    std::vector<header_kv> deny_headers;
    std::string deny_body;
    std::string deny_content_type;

    // Allow output, accumulated by all filters; removes are applied before sets.
    std::vector<header_kv> set_headers;
    std::vector<std::string> remove_headers;

    /// Short machine token saying why the last filter denied (e.g. "bad_signature"). Goes to logs and
    /// metrics only, never to the client. Must point at static storage.
    std::string_view reason;

    /// One round trip for a request's shared-store work. Set by the chain before any filter runs: the
    /// store (filter::shared_store()) that an earlier filter of this request may hand its pending
    /// write to, because a later filter of the same request writes to that store too. nullptr: no
    /// hand-off, each filter talks to its store itself.
    const void* fused_store = nullptr;

    /// A nonce handed over by merchant-auth to the later filter that talks to `fused_store`. That
    /// filter records it in the same atomic step as its own work (first, before its own decision) and
    /// calls settle() with the result; settle() fills the deny (401 replay, 503 store unavailable) and
    /// returns the outcome the carrying filter must return (allow: carry on with its own decision).
    struct pending_nonce {
        std::string key;          ///< the store key (merchant-namespaced)
        std::int64_t ttl_ms = 0;  ///< how long the nonce must be remembered
        enum class verdict : std::uint8_t { recorded, replay, unavailable };
        std::function<outcome(context&, verdict)> settle;
    };
    std::optional<pending_nonce> nonce;

    /// Sets a deny with a problem+json body: {"type":"about:blank","title":title,"status":status}.
    void deny_problem(std::uint16_t status, std::string_view title, std::string_view reason_token);

    /// Clears all outputs and established state, for reuse across requests.
    void reset() noexcept;
};

/// Resumes a suspended chain with a filter's outcome.
using resume_fn = std::function<void(outcome)>;

class filter {
public:
    virtual ~filter() = default;
    /// Decides on one request. Must not block or throw. On deny it fills ctx.deny_* and ctx.reason;
    /// on allow it may add ctx.set_headers / remove_headers and establish ctx fields; `error` means the
    /// filter could not decide (the chain turns it into a deny).
    virtual outcome on_request(const request_view& req, context& ctx) const noexcept = 0;

    /// True for a filter whose decision waits on a shared store (Redis). The chain then calls
    /// on_request_async instead of on_request, and runs the requests of routes that use the filter as
    /// suspendable requests (frame and context kept alive until the decision). Filters that decide
    /// locally keep the default and run inline, as before.
    virtual bool is_async() const noexcept { return false; }

    /// Starts the decision and calls `done` exactly once: before returning or later, from any thread,
    /// and within ctx.deadline_mono_ns (the store wait is bounded by it). `req` and `ctx` stay valid
    /// until then. Must not block or throw.
    virtual void on_request_async(const request_view& req, context& ctx, resume_fn done) const noexcept {
        done(on_request(req, ctx));
    }

    /// The shared store this filter writes to (an opaque identity; nullptr: none). Two filters of one
    /// request with the same store may fuse their work into one round trip (context::fused_store).
    virtual const void* shared_store() const noexcept { return nullptr; }
    /// True when this filter can carry another filter's pending nonce (context::nonce) to its store.
    virtual bool carries_nonce() const noexcept { return false; }
};

/// One filter type's config generation: the validated `filters.<name>` section plus shared state.
class filter_instance {
public:
    virtual ~filter_instance() = default;
    /// Builds the filter for one route. `route_cfg` is `routes.<id>.<filter-name>` (nullptr when absent);
    /// `path` is that key's path for errors. @throws config_error.
    virtual std::shared_ptr<const filter> for_route(std::string_view route_id, const boost::json::value* route_cfg,
                                                    const std::string& path) const = 0;
};

/// Process-wide, set by `filterd --check` before it builds a config: filters validate and build as
/// usual but commit no large memory (a check runs beside the live daemon, in the same memory limit).
void set_check_only(bool on) noexcept;
bool check_only() noexcept;

class filter_factory {
public:
    virtual ~filter_factory() = default;
    /// Stable name used in config and on the wire, e.g. "rate-limit".
    virtual std::string_view name() const = 0;
    /// Validates `filters.<name>` (nullptr when absent) and builds the instance. `previous` is the
    /// instance of the same filter in the config being replaced (nullptr at start-up); stateful filters
    /// carry their state across (nonces, rate-limit buckets). @throws config_error naming the key.
    virtual std::shared_ptr<filter_instance> create(const boost::json::value* cfg, const std::string& path,
                                                    const std::shared_ptr<filter_instance>& previous) const = 0;
};

/// Name -> factory. `builtin()` holds every factory linked into the binary (they self-register with
/// `registrar`); tests may build their own registry with test-only filters.
class registry {
public:
    void add(std::shared_ptr<const filter_factory> f);
    const filter_factory* find(std::string_view name) const noexcept;
    std::vector<std::string> names() const;

    static registry& builtin();

private:
    std::vector<std::shared_ptr<const filter_factory>> factories_;
};

/// Static self-registration into registry::builtin(): `static registrar reg{std::make_shared<my_factory>()};`
struct registrar {
    explicit registrar(std::shared_ptr<const filter_factory> f) { registry::builtin().add(std::move(f)); }
};

}  // namespace filterd
