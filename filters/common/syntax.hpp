#pragma once
// Character-level syntax shared by the filters: header names (RFC 9110 tokens) and the ids that config
// and requests carry (merchant and key ids, policy names, request ids). One definition of each rule,
// so that two filters never disagree about what a header name or an id is.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace filterd::syntax {

/// An ASCII letter or digit.
constexpr bool is_alnum(char c) noexcept {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/// An RFC 9110 tchar: a letter, a digit or one of !#$%&'*+-.^_`|~
constexpr bool is_tchar(char c) noexcept {
    return is_alnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

/// True when `s` has 1..max_len characters, each a letter, a digit or one of `extra`.
constexpr bool is_identifier(std::string_view s, std::size_t max_len, std::string_view extra) noexcept {
    if (s.empty() || s.size() > max_len)
        return false;
    for (char c : s)
        if (!is_alnum(c) && extra.find(c) == std::string_view::npos)
            return false;
    return true;
}

/// True for an RFC 9110 token (tchar+) of 1..max_len characters: the syntax of a header field name.
constexpr bool is_token(std::string_view s, std::size_t max_len = SIZE_MAX) noexcept {
    if (s.empty() || s.size() > max_len)
        return false;
    for (char c : s)
        if (!is_tchar(c))
            return false;
    return true;
}

}  // namespace filterd::syntax
