#include "filters/enrichment/config.hpp"

#include "filters/common/filter.hpp"
#include "filters/common/syntax.hpp"

namespace filterd::enrichment {

namespace {
char fold(char c) noexcept {
    if (c >= 'A' && c <= 'Z')
        return static_cast<char>(c - 'A' + 'a');
    return c == '_' ? '-' : c;
}
}  // namespace

bool header_name_equal(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (fold(a[i]) != fold(b[i]))
            return false;
    return true;
}

bool header_name_starts_with(std::string_view name, std::string_view prefix) noexcept {
    return name.size() >= prefix.size() && header_name_equal(name.substr(0, prefix.size()), prefix);
}

namespace {

/// Reads and checks a `strip_headers` array; `also_against` holds names that must not be repeated.
std::vector<std::string> read_strip_list(config_object& o, std::string_view key,
                                         const std::vector<std::string>& also_against) {
    std::vector<std::string> names = o.get_string_array(key);
    if (names.size() > max_strip_headers)
        o.fail(key, "at most " + std::to_string(max_strip_headers) + " names");
    for (std::size_t i = 0; i < names.size(); ++i) {
        const std::string item = o.key_path(key) + "[" + std::to_string(i) + "]";
        const std::string& n = names[i];
        if (!syntax::is_token(n, max_header_name))
            throw config_error(item, "must be a header name (RFC 9110 token, 1-" + std::to_string(max_header_name) +
                                         " characters)");
        for (std::size_t j = 0; j < i; ++j)
            if (header_name_equal(names[j], n))
                throw config_error(item, "duplicate header name \"" + n + "\"");
        for (const auto& a : also_against)
            if (header_name_equal(a, n))
                throw config_error(item, "\"" + n + "\" is already removed by default");
    }
    return names;
}

}  // namespace

config config::load(const boost::json::value* cfg, const std::string& path) {
    config c;
    for (auto n : fixed_strip_headers)
        c.strip_headers.emplace_back(n);
    if (cfg != nullptr) {
        config_object o(*cfg, path);
        c.internal_prefix = o.get_string("internal_prefix", std::string(default_internal_prefix));
        if (c.internal_prefix.size() < 2 || !syntax::is_token(c.internal_prefix, max_prefix) ||
            c.internal_prefix.back() != '-')
            o.fail("internal_prefix",
                   "must be a header-name token of 2-" + std::to_string(max_prefix) + " characters ending in '-'");
        for (auto& n : read_strip_list(o, "strip_headers", c.strip_headers))
            c.strip_headers.push_back(std::move(n));
        c.sample_new_traces = o.get_bool("sample_new_traces", true);
        o.finish();
    }
    c.merchant_id_header = c.internal_prefix + "Merchant-Id";
    c.key_id_header = c.internal_prefix + "Key-Id";
    c.client_ip_header = c.internal_prefix + "Client-Ip";
    c.request_id_header = c.internal_prefix + "Request-Id";
    c.received_at_header = c.internal_prefix + "Received-At";
    return c;
}

route_config route_config::load(const config&, std::string_view, const boost::json::value* cfg,
                                const std::string& path) {
    route_config r;
    if (cfg == nullptr)
        return r;
    config_object o(*cfg, path);
    r.strip_headers = read_strip_list(o, "strip_headers", {});
    o.finish();
    return r;
}

}  // namespace filterd::enrichment
