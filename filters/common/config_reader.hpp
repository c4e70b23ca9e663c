#pragma once
// Checked reading of JSON config sections.
//
// Contract: every accessor either returns a value that satisfies the stated rule or throws
// `config_error` whose message starts with the full key path (e.g. "routes.pay.rate-limit.policies[0]").
// `finish()` throws for any key that was never asked for, so unknown keys are always errors.
// Config is read once at load or reload; none of this runs on the request path.

#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace filterd {

/// Thrown while loading config. `key()` is the dotted path of the offending key.
class config_error : public std::runtime_error {
public:
    config_error(std::string key, const std::string& what)
        : std::runtime_error(key + ": " + what),
          key_(std::move(key)) {}
    const std::string& key() const noexcept { return key_; }

private:
    std::string key_;
};

/// A view of one JSON object in the config, with the key path it lives at.
class config_object {
public:
    /// @throws config_error when `v` is not an object.
    config_object(const boost::json::value& v, std::string path);

    const std::string& path() const noexcept { return path_; }
    /// Full path of a member key, for error messages.
    std::string key_path(std::string_view key) const;

    bool has(std::string_view key) const;
    /// The raw member, or nullptr. Marks the key as known.
    const boost::json::value* get(std::string_view key);

    std::string require_string(std::string_view key);
    std::string get_string(std::string_view key, std::string def);
    std::optional<std::string> optional_string(std::string_view key);

    /// Integer in [min, max].
    std::int64_t require_int(std::string_view key, std::int64_t min, std::int64_t max);
    std::int64_t get_int(std::string_view key, std::int64_t def, std::int64_t min, std::int64_t max);
    std::optional<std::int64_t> optional_int(std::string_view key, std::int64_t min, std::int64_t max);

    bool get_bool(std::string_view key, bool def);

    /// One of the listed strings.
    std::string get_enum(std::string_view key, std::string def, std::initializer_list<std::string_view> allowed);

    /// An array of strings (possibly empty), each checked with `pred` when given.
    std::vector<std::string> get_string_array(std::string_view key, std::vector<std::string> def = {});

    /// A nested object. @throws config_error when missing.
    config_object require_object(std::string_view key);
    std::optional<config_object> optional_object(std::string_view key);

    /// An array; each element is handed out with its path "key[i]".
    std::vector<std::pair<const boost::json::value*, std::string>> get_array(std::string_view key);

    /// Throws for the first key that was never read through this object.
    void finish() const;

    /// Throws config_error for `key` with `what`.
    [[noreturn]] void fail(std::string_view key, const std::string& what) const;

private:
    const boost::json::object* obj_;
    std::string path_;
    std::set<std::string, std::less<>> seen_;
};

/// Parses a JSON document. @throws config_error("<source>", parse message).
boost::json::value parse_json_file(const std::string& path);
boost::json::value parse_json_text(std::string_view text, const std::string& source);

}  // namespace filterd
