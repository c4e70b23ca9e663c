#include "filters/common/config_reader.hpp"

#include <boost/json/parse.hpp>

#include <fstream>
#include <sstream>

namespace filterd {

namespace json = boost::json;

config_object::config_object(const json::value& v, std::string path) : obj_(v.if_object()), path_(std::move(path)) {
    if (obj_ == nullptr)
        throw config_error(path_.empty() ? "<root>" : path_, "must be an object");
}

std::string config_object::key_path(std::string_view key) const {
    if (path_.empty())
        return std::string(key);
    return path_ + "." + std::string(key);
}

void config_object::fail(std::string_view key, const std::string& what) const {
    throw config_error(key_path(key), what);
}

bool config_object::has(std::string_view key) const { return obj_->contains(key); }

const json::value* config_object::get(std::string_view key) {
    seen_.emplace(key);
    auto it = obj_->find(key);
    if (it == obj_->end() || it->value().is_null())
        return nullptr;
    return &it->value();
}

std::optional<std::string> config_object::optional_string(std::string_view key) {
    const json::value* v = get(key);
    if (v == nullptr)
        return std::nullopt;
    if (!v->is_string())
        fail(key, "must be a string");
    return std::string(v->get_string());
}

std::string config_object::require_string(std::string_view key) {
    auto s = optional_string(key);
    if (!s)
        fail(key, "is required");
    if (s->empty())
        fail(key, "must not be empty");
    return *s;
}

std::string config_object::get_string(std::string_view key, std::string def) {
    auto s = optional_string(key);
    return s ? *s : std::move(def);
}

std::optional<std::int64_t> config_object::optional_int(std::string_view key, std::int64_t min, std::int64_t max) {
    const json::value* v = get(key);
    if (v == nullptr)
        return std::nullopt;
    std::int64_t n = 0;
    if (v->is_int64())
        n = v->get_int64();
    else if (v->is_uint64() && v->get_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
        n = static_cast<std::int64_t>(v->get_uint64());
    else
        fail(key, "must be an integer");
    if (n < min || n > max)
        fail(key,
             "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " + std::to_string(n));
    return n;
}

std::int64_t config_object::require_int(std::string_view key, std::int64_t min, std::int64_t max) {
    auto n = optional_int(key, min, max);
    if (!n)
        fail(key, "is required");
    return *n;
}

std::int64_t config_object::get_int(std::string_view key, std::int64_t def, std::int64_t min, std::int64_t max) {
    auto n = optional_int(key, min, max);
    return n ? *n : def;
}

bool config_object::get_bool(std::string_view key, bool def) {
    const json::value* v = get(key);
    if (v == nullptr)
        return def;
    if (!v->is_bool())
        fail(key, "must be true or false");
    return v->get_bool();
}

std::string config_object::get_enum(std::string_view key, std::string def,
                                    std::initializer_list<std::string_view> allowed) {
    auto s = optional_string(key);
    if (!s)
        return def;
    for (auto a : allowed)
        if (*s == a)
            return *s;
    std::string list;
    for (auto a : allowed) {
        if (!list.empty())
            list += ", ";
        list += a;
    }
    fail(key, "must be one of: " + list);
}

std::vector<std::string> config_object::get_string_array(std::string_view key, std::vector<std::string> def) {
    const json::value* v = get(key);
    if (v == nullptr)
        return def;
    if (!v->is_array())
        fail(key, "must be an array of strings");
    std::vector<std::string> out;
    std::size_t i = 0;
    for (const auto& e : v->get_array()) {
        if (!e.is_string())
            throw config_error(key_path(key) + "[" + std::to_string(i) + "]", "must be a string");
        out.emplace_back(e.get_string());
        ++i;
    }
    return out;
}

config_object config_object::require_object(std::string_view key) {
    auto o = optional_object(key);
    if (!o)
        fail(key, "is required");
    return std::move(*o);
}

std::optional<config_object> config_object::optional_object(std::string_view key) {
    const json::value* v = get(key);
    if (v == nullptr)
        return std::nullopt;
    return config_object(*v, key_path(key));
}

std::vector<std::pair<const json::value*, std::string>> config_object::get_array(std::string_view key) {
    const json::value* v = get(key);
    std::vector<std::pair<const json::value*, std::string>> out;
    if (v == nullptr)
        return out;
    if (!v->is_array())
        fail(key, "must be an array");
    std::size_t i = 0;
    for (const auto& e : v->get_array())
        out.emplace_back(&e, key_path(key) + "[" + std::to_string(i++) + "]");
    return out;
}

void config_object::finish() const {
    for (const auto& kv : *obj_) {
        if (seen_.find(std::string_view(kv.key())) == seen_.end())
            throw config_error(key_path(kv.key()), "unknown key");
    }
}

json::value parse_json_text(std::string_view text, const std::string& source) {
    boost::system::error_code ec;
    json::parse_options opt;
    opt.max_depth = 32;
    json::value v = json::parse(text, ec, {}, opt);
    if (ec)
        throw config_error(source, "invalid JSON: " + ec.message());
    return v;
}

json::value parse_json_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw config_error(path, "cannot open config file");
    std::ostringstream ss;
    ss << in.rdbuf();
    return parse_json_text(ss.str(), path);
}

}  // namespace filterd
