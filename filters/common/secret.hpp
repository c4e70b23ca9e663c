#pragma once
// Secrets are referenced from config, never written in it.
//
// A reference is a JSON object with exactly one of:
//   {"env": "NAME"}          the value of environment variable NAME (must be set and non-empty)
//   {"file": "/abs/path"}    the contents of the file (one trailing newline is dropped)
// The value is read once at config load. `secret` never prints its value and wipes it on destruction.

#include "filters/common/config_reader.hpp"

#include <string>
#include <string_view>

namespace filterd {

class secret {
public:
    secret() = default;
    explicit secret(std::string value) : value_(std::move(value)) {}
    secret(const secret&) = default;
    secret& operator=(const secret&) = default;
    secret(secret&&) noexcept = default;
    secret& operator=(secret&&) noexcept = default;
    ~secret();

    /// The secret bytes. Never log or copy them into anything that outlives the request.
    std::string_view reveal() const noexcept { return value_; }
    bool empty() const noexcept { return value_.empty(); }

private:
    std::string value_;
};

/// Reads the secret referenced by member `key` of `obj`. Inline strings are refused with a
/// config_error that says to use a reference.
secret load_secret(config_object& obj, std::string_view key);

}  // namespace filterd
