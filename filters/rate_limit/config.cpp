#include "filters/rate_limit/config.hpp"

#include "core/log.hpp"
#include "filters/common/syntax.hpp"

#include <charconv>
#include <cstdlib>
#include <utility>

namespace filterd::rate_limit {

namespace json = boost::json;

namespace {

std::int64_t parse_replicas(config_object& obj) {
    const json::value* v = obj.get("replicas");
    const std::string key = obj.key_path("replicas");
    if (v == nullptr)
        return 1;
    if (v->is_object()) {
        config_object ref(*v, key);
        auto env = ref.optional_string("env");
        ref.finish();  // unknown keys first: {"file": ...} is named as such, not as a missing "env"
        if (!env || env->empty())
            ref.fail("env", "is required: the name of an environment variable holding the replica count");
        const std::string& name = *env;
        const char* raw = std::getenv(name.c_str());
        if (raw == nullptr || *raw == '\0')
            throw config_error(key + ".env", "environment variable " + name + " is not set");
        std::string_view text(raw);
        std::int64_t n = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
        if (ec != std::errc{} || end != text.data() + text.size() || n < 1 || n > max_replicas)
            throw config_error(key + ".env", "environment variable " + name + " must be an integer between 1 and " +
                                                 std::to_string(max_replicas));
        return n;
    }
    return obj.require_int("replicas", 1, max_replicas);
}

policy_config parse_policy(const json::value& v, const std::string& name, const std::string& path,
                           std::int64_t replicas) {
    config_object o(v, path);
    policy_config p;
    p.name = name;
    p.quota = o.require_int("quota", 1, 1'000'000'000);
    p.window_ms = o.require_int("window_ms", 1000, 31LL * 86'400'000);
    if (p.window_ms % 1000 != 0)
        o.fail("window_ms", "must be whole seconds (a multiple of 1000): the RateLimit-Policy field carries "
                            "the window in seconds");
    p.burst = o.get_int("burst", p.quota, 1, 1'000'000'000);

    const std::string key = o.get_enum("key", "", {"client_ip", "merchant_id", "key_id", "route", "header"});
    if (key.empty())
        o.fail("key", "is required (one of: client_ip, merchant_id, key_id, route, header)");
    if (key == "client_ip")
        p.key = key_kind::client_ip;
    else if (key == "merchant_id")
        p.key = key_kind::merchant_id;
    else if (key == "key_id")
        p.key = key_kind::key_id;
    else if (key == "route")
        p.key = key_kind::route;
    else
        p.key = key_kind::header;

    auto header = o.optional_string("header");
    if (p.key == key_kind::header) {
        if (!header)
            o.fail("header", "is required when key is \"header\"");
        if (!syntax::is_token(*header, 128))
            o.fail("header", "must be a header name (1-128 token characters)");
        p.header = *header;
    } else if (header) {
        o.fail("header", "is only allowed when key is \"header\"");
    }
    p.max_keys = o.get_int("max_keys", default_max_keys, 1, max_max_keys);
    o.finish();

    // Each pod enforces its share of the fleet-wide quota; the burst stays per pod (documented).
    p.pod_quota = std::max<std::int64_t>(1, p.quota / replicas);
    if (p.quota < replicas)  // the fleet then admits `replicas` per window, more than the quota
        log::warn("rate-limit quota is below the replica count; each pod still admits 1 per window",
                  {{"key", path}, {"quota", p.quota}, {"replicas", replicas}});
    const std::int64_t window_ns = p.window_ms * 1'000'000;
    p.gcra.emission_ns = window_ns / p.pod_quota;  // >= 1: window >= 1 s and quota <= 1e9
    if (p.burst > max_tolerance_ns / p.gcra.emission_ns)
        o.fail("burst", "burst x window / quota is too large");
    p.gcra.tolerance_ns = p.burst * p.gcra.emission_ns;
    p.shared_gcra.emission_ns = window_ns / p.quota;
    p.shared_gcra.tolerance_ns = p.burst > max_tolerance_ns / p.shared_gcra.emission_ns
                                     ? max_tolerance_ns
                                     : p.burst * p.shared_gcra.emission_ns;

    p.policy_item = "\"" + p.name + "\";q=" + std::to_string(p.quota) + ";w=" + std::to_string(p.window_ms / 1000);
    p.quota_text = std::to_string(p.quota);
    return p;
}

}  // namespace

config config::load(const json::value* v, const std::string& path) {
    config g;
    if (v == nullptr)
        return g;
    config_object root(*v, path);
    g.replicas = parse_replicas(root);
    if (auto r = redis::parse_store(root)) {
        g.store = store_kind::redis;
        g.redis = std::move(*r);
        g.on_redis_error = root.get_enum("on_redis_error", "local", {"local", "deny"}) == "deny" ? on_error::deny
                                                                                                 : on_error::local;
        g.clock = root.get_enum("clock", "redis", {"redis", "filterd"}) == "filterd" ? clock_kind::filterd
                                                                                     : clock_kind::redis;
    } else {
        for (const char* k : {"on_redis_error", "clock"})
            if (root.has(k))
                root.fail(k, "is only allowed when store is \"redis\"");
    }
    config_object policies = root.require_object("policies");
    const auto& raw = v->as_object().at("policies").as_object();
    if (raw.empty())
        throw config_error(policies.path(), "must define at least one policy");
    for (const auto& kv : raw) {
        std::string name(kv.key());
        std::string ppath = policies.key_path(name);
        if (!syntax::is_identifier(name, 64, "._-"))
            throw config_error(ppath, "policy name must match [A-Za-z0-9_.-]{1,64}");
        policies.get(name);  // mark known
        auto p = parse_policy(kv.value(), name, ppath, g.replicas);
        if (g.store == store_kind::redis && p.shared_gcra.tolerance_ns + p.shared_gcra.emission_ns > max_shared_span_ns)
            throw config_error(ppath + ".burst",
                               "burst x window / quota must stay below 104 days with store \"redis\"");
        g.policies.emplace(name, std::move(p));
    }
    policies.finish();
    root.finish();
    return g;
}

route_config route_config::load(const config& g, std::string_view, const json::value* v, const std::string& path) {
    if (v == nullptr)
        throw config_error(path, "must be an object {\"policies\": [\"<name>\", ...]}");
    config_object o(*v, path);
    if (o.get("policies") == nullptr)
        o.fail("policies", "is required");
    auto names = o.get_array("policies");
    o.finish();
    if (names.empty())
        o.fail("policies", "must name at least one policy");
    if (names.size() > max_policies_per_route)
        o.fail("policies", "at most " + std::to_string(max_policies_per_route) + " policies per route");
    route_config r;
    std::vector<const policy_config*>& out = r.policies;
    for (const auto& [e, epath] : names) {
        if (!e->is_string())
            throw config_error(epath, "must be a policy name (string)");
        std::string_view name = e->get_string();
        auto it = g.policies.find(name);
        if (it == g.policies.end())
            throw config_error(epath,
                               "unknown policy \"" + std::string(name) + "\" (not in filters.rate-limit.policies)");
        for (const auto* seen : out)
            if (seen == &it->second)
                throw config_error(epath, "policy \"" + std::string(name) + "\" is listed twice");
        out.push_back(&it->second);
    }
    // Redis Cluster runs a script on one slot: every key of a request must carry the same hash tag,
    // so a route's policies must be keyed on the same thing (merchant_id and key_id share the
    // merchant's tag).
    if (g.store == store_kind::redis && g.redis.cluster)
        for (const auto* p : out) {
            auto family = [](const policy_config& c) {
                return needs_auth(c.key)           ? std::string("merchant")
                       : c.key == key_kind::header ? "header:" + c.header
                                                   : std::to_string(static_cast<int>(c.key));
            };
            if (family(*p) != family(*out.front()))
                o.fail("policies", "with Redis Cluster, a route's policies must share their key (policy \"" + p->name +
                                       "\" is keyed differently from \"" + out.front()->name + "\")");
        }
    return r;
}

}  // namespace filterd::rate_limit
