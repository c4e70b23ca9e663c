#include "filters/merchant_auth/config.hpp"

#include "filters/common/secret.hpp"
#include "filters/common/syntax.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <utility>

namespace filterd::merchant_auth {

namespace json = boost::json;

namespace {

struct reason_info {
    std::string_view token;
    std::uint16_t status;
    std::string_view title;
};
constexpr reason_info reason_table[] = {
#define FILTERD_X(name, status, title) {#name, status, title},
    FILTERD_MERCHANT_AUTH_REASONS(FILTERD_X)
#undef FILTERD_X
};
static_assert(std::size(reason_table) == reason_count);

/// Merchant and key ids: [A-Za-z0-9_-]{1,64}.
bool valid_id(std::string_view s) noexcept { return syntax::is_identifier(s, 64, "_-"); }

constexpr std::int64_t max_unix_s = 9'000'000'000;  // year 2255: times 1e9 still fits in int64 ns

std::unique_ptr<key_record> load_key(const json::value& v, const std::string& path, const std::string& merchant_id) {
    config_object o(v, path);
    auto k = std::make_unique<key_record>();
    k->id = o.require_string("id");
    if (!valid_id(k->id))
        o.fail("id", "must match [A-Za-z0-9_-]{1,64}");

    std::string alg_name = o.require_string("alg");
    algorithm alg{};
    if (!parse_algorithm(alg_name, alg))
        o.fail("alg", "must be one of: hmac-sha256, rsa-sha256, ed25519");

    if (alg == algorithm::hmac_sha256) {
        if (o.has("public_key"))
            o.fail("public_key", "is not allowed for alg hmac-sha256 (use \"secret\")");
        secret s = load_secret(o, "secret");
        if (s.reveal().size() < min_hmac_secret_bytes)
            o.fail("secret",
                   "the referenced secret is shorter than " + std::to_string(min_hmac_secret_bytes) + " bytes");
        k->key = verify_key::hmac(std::move(s));
    } else {
        if (o.has("secret"))
            o.fail("secret", "is not allowed for alg " + alg_name + " (use \"public_key\")");
        secret pem = load_secret(o, "public_key");  // a public key is no secret, but the reference is the same
        std::string err;
        auto pkey = parse_public_key_pem(pem.reveal(), err);
        if (pkey == nullptr)
            o.fail("public_key", err);
        if (std::string bad = check_public_key(alg, pkey.get()); !bad.empty())
            o.fail("public_key", bad);
        k->key = verify_key::public_key(alg, std::move(pkey));
    }

    std::string state = o.require_string("state");
    if (state == "active")
        k->state = key_state::active;
    else if (state == "retiring")
        k->state = key_state::retiring;
    else if (state == "revoked")
        k->state = key_state::revoked;
    else
        o.fail("state", "must be one of: active, retiring, revoked");

    k->not_before_s = o.optional_int("not_before", 0, max_unix_s);
    k->not_after_s = o.optional_int("not_after", 0, max_unix_s);
    if (k->not_before_s && k->not_after_s && *k->not_before_s >= *k->not_after_s)
        o.fail("not_after", "must be later than not_before");
    if (k->state == key_state::retiring && !k->not_after_s)
        o.fail("not_after", "is required for a retiring key (retirement must end)");

    if (o.has("routes")) {
        k->routes = o.get_string_array("routes");
        if (k->routes.empty())
            o.fail("routes", "must not be empty (omit it to allow every route)");
        for (std::size_t i = 0; i < k->routes.size(); ++i)
            if (k->routes[i].empty())
                throw config_error(o.key_path("routes") + "[" + std::to_string(i) + "]", "must not be empty");
    } else {
        o.get("routes");
    }
    if (o.has("cidrs")) {
        auto list = o.get_string_array("cidrs");
        if (list.empty())
            o.fail("cidrs", "must not be empty (omit it to allow every client IP)");
        for (std::size_t i = 0; i < list.size(); ++i) {
            cidr c;
            if (std::string err = cidr::parse(list[i], c); !err.empty())
                throw config_error(o.key_path("cidrs") + "[" + std::to_string(i) + "]", err);
            k->cidrs.push_back(c);
        }
    } else {
        o.get("cidrs");
    }
    o.finish();

    k->retiring_uses = &metrics_registry::global().get_counter("filterd_merchant_auth_retiring_key_total",
                                                               "Requests authenticated with a key in state retiring.",
                                                               {{"merchant", merchant_id}, {"key", k->id}});
    return k;
}

}  // namespace

std::string_view reason_token(reason r) noexcept { return reason_table[static_cast<std::size_t>(r)].token; }
std::uint16_t reason_status(reason r) noexcept { return reason_table[static_cast<std::size_t>(r)].status; }
std::string_view reason_title(reason r) noexcept { return reason_table[static_cast<std::size_t>(r)].title; }

bool parse_ip(std::string_view s, std::array<std::uint8_t, 16>& out) noexcept {
    char buf[INET6_ADDRSTRLEN + 1];
    if (s.empty() || s.size() >= sizeof(buf))
        return false;
    std::copy(s.begin(), s.end(), buf);
    buf[s.size()] = '\0';
    out.fill(0);
    if (s.find(':') == std::string_view::npos) {
        in_addr a{};
        if (inet_pton(AF_INET, buf, &a) != 1)
            return false;
        out[10] = 0xff;
        out[11] = 0xff;
        std::memcpy(out.data() + 12, &a, 4);
        return true;
    }
    in6_addr a{};
    if (inet_pton(AF_INET6, buf, &a) != 1)
        return false;
    std::memcpy(out.data(), &a, 16);
    return true;
}

bool cidr::contains(const std::array<std::uint8_t, 16>& ip) const noexcept {
    unsigned bits = prefix;
    for (std::size_t i = 0; i < 16 && bits > 0; ++i) {
        unsigned take = bits >= 8 ? 8 : bits;
        auto mask = static_cast<std::uint8_t>(0xff << (8 - take));
        if ((ip[i] & mask) != (addr[i] & mask))
            return false;
        bits -= take;
    }
    return true;
}

std::string cidr::parse(std::string_view s, cidr& out) {
    auto slash = s.find('/');
    if (slash == std::string_view::npos)
        return "must be an address/prefix, e.g. 10.0.0.0/8 or 2001:db8::/32";
    std::string_view addr = s.substr(0, slash), len = s.substr(slash + 1);
    bool v4 = addr.find(':') == std::string_view::npos;
    if (!parse_ip(addr, out.addr))
        return "is not a valid IPv4 or IPv6 address";
    unsigned max = v4 ? 32 : 128;
    if (len.empty() || len.size() > 3 ||
        !std::all_of(len.begin(), len.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return "prefix length must be a decimal number";
    unsigned n = static_cast<unsigned>(std::stoi(std::string(len)));
    if (n > max)
        return "prefix length must be at most " + std::to_string(max);
    out.prefix = static_cast<std::uint8_t>(v4 ? n + 96 : n);
    // Host bits must be zero: "10.0.0.1/8" is almost always a typo for something else.
    for (unsigned bit = out.prefix; bit < 128; ++bit)
        if (out.addr[bit / 8] & (0x80 >> (bit % 8)))
            return "has host bits set beyond the prefix length";
    return {};
}

bool key_record::route_allowed(std::string_view route) const noexcept {
    if (routes.empty())
        return true;
    return std::any_of(routes.begin(), routes.end(), [&](const std::string& r) { return r == route; });
}

const key_record* merchant_record::find_key(std::string_view key_id) const noexcept {
    for (const auto& k : keys)
        if (k->id == key_id)
            return k.get();
    return nullptr;
}

const merchant_record* config::find_merchant(std::string_view id) const noexcept {
    auto it = merchants.find(id);
    return it == merchants.end() ? nullptr : &it->second;
}

config config::load(const json::value* section, const std::string& path) {
    if (section == nullptr)
        throw config_error(path, "is required when a route uses merchant-auth (it holds the merchants and keys)");
    config_object o(*section, path);
    config c;
    c.skew_s = o.get_int("skew_seconds", 300, 1, 3600);
    if (auto r = redis::parse_store(o)) {
        c.redis_store = true;
        c.redis = std::move(*r);
        for (const char* k : {"nonce_capacity", "nonce_merchant_share_percent", "nonce_journal"})
            if (o.has(k))
                o.fail(k, "applies to store \"local\" only (with store \"redis\", Redis holds the nonces)");
    }
    c.nonce_capacity = static_cast<std::size_t>(o.get_int("nonce_capacity", 1'000'000, 1, 100'000'000));
    c.nonce_merchant_share_percent = static_cast<unsigned>(o.get_int("nonce_merchant_share_percent", 25, 1, 100));
    if (auto j = o.optional_object("nonce_journal")) {
        journal_options jo;
        jo.dir = j->require_string("dir");
        if (jo.dir.empty() || jo.dir.front() != '/')
            j->fail("dir", "must be an absolute path");
        jo.max_bytes = static_cast<std::uint64_t>(j->get_int("max_bytes", 256ll << 20, 1ll << 20, 16ll << 30));
        jo.fsync = j->get_bool("fsync", false);
        j->finish();
        c.nonce_journal = std::move(jo);
    }
    c.max_body_bytes = static_cast<std::size_t>(o.get_int("max_body_bytes", 1 << 20, 0, 16 << 20));
    c.max_query_params = static_cast<std::size_t>(o.get_int("max_query_params", 256, 0, 10'000));

    config_object ms = o.require_object("merchants");
    const auto& mobj = section->as_object().at("merchants").as_object();
    if (mobj.empty())
        throw config_error(ms.path(), "must define at least one merchant");
    for (const auto& kv : mobj) {
        std::string mid(kv.key());
        std::string mpath = ms.key_path(mid);
        if (!valid_id(mid))
            throw config_error(mpath, "merchant id must match [A-Za-z0-9_-]{1,64}");
        config_object m = ms.require_object(mid);
        merchant_record rec;
        rec.id = mid;
        std::string status = m.require_string("status");
        if (status == "active")
            rec.active = true;
        else if (status == "suspended")
            rec.active = false;
        else
            m.fail("status", "must be one of: active, suspended");
        if (!m.has("keys"))
            m.fail("keys", "is required");
        auto keys = m.get_array("keys");
        if (keys.empty())
            m.fail("keys", "must list at least one key");
        std::set<std::string, std::less<>> ids;
        for (const auto& [kv2, kpath] : keys) {
            auto k = load_key(*kv2, kpath, mid);
            if (!ids.insert(k->id).second)
                throw config_error(kpath + ".id", "duplicate key id \"" + k->id + "\" for merchant " + mid);
            rec.keys.push_back(std::move(k));
        }
        m.finish();
        c.merchants.emplace(mid, std::move(rec));
    }
    ms.finish();
    o.finish();

    // The first key in config order sets the algorithm whose work an unknown merchant costs.
    algorithm first = c.merchants.find(std::string_view(mobj.begin()->key()))->second.keys.front()->key.alg();
    try {
        c.unknown_merchant_key = &dummy_key(first);
    } catch (const std::exception& e) {
        throw config_error(path, e.what());
    }

    auto& reg = metrics_registry::global();
    for (std::size_t i = 0; i < reason_count; ++i)
        c.denied[i] = &reg.get_counter("filterd_merchant_auth_denied_total", "merchant-auth denials by reason.",
                                       {{"reason", std::string(reason_table[i].token)}});
    c.allowed = &reg.get_counter("filterd_merchant_auth_allowed_total", "Requests merchant-auth authenticated.");
    return c;
}

route_config route_config::load(const config&, std::string_view route_id, const json::value* section,
                                const std::string& path) {
    route_config r;
    r.route_id = std::string(route_id);
    if (section == nullptr)
        return r;
    config_object o(*section, path);
    if (auto p = o.optional_string("merchant_path_param")) {
        if (p->empty())
            o.fail("merchant_path_param", "must not be empty");
        r.merchant_path_param = *p;
    }
    o.finish();
    return r;
}

}  // namespace filterd::merchant_auth
