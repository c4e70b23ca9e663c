#pragma once
// Test oracle for the scrubber: the Luhn check, written independently of core/scrub.cpp so
// the tests and the fuzz target do not trust the code they check.

#include <string>
#include <string_view>
#include <vector>

namespace filterd::testing {

/// True when the digit string `d` (digits only) passes the Luhn check.
inline bool luhn_ok(std::string_view d) {
    unsigned sum = 0;
    bool dbl = false;
    for (std::size_t i = d.size(); i-- > 0;) {
        unsigned v = static_cast<unsigned>(d[i] - '0');
        if (dbl)
            v = v * 2 > 9 ? v * 2 - 9 : v * 2;
        sum += v;
        dbl = !dbl;
    }
    return sum % 10 == 0;
}

/// The card-number rule of docs/logging.md, read independently: a numeric span is digit groups joined
/// by single separators (' ', '-', '_', '.'); any range of whole consecutive groups holding 13-19 digits
/// that passes Luhn is a card. Returns the digits of the first such range in `s`, or "" when none.
inline std::string find_separated_card(std::string_view s) {
    auto digit = [](char c) { return c >= '0' && c <= '9'; };
    auto sep = [](char c) { return c == ' ' || c == '-' || c == '_' || c == '.'; };
    std::size_t i = 0;
    while (i < s.size()) {
        if (!digit(s[i])) {
            ++i;
            continue;
        }
        std::vector<std::string_view> groups;  // one numeric span
        for (;;) {
            std::size_t b = i;
            while (i < s.size() && digit(s[i]))
                ++i;
            groups.push_back(s.substr(b, i - b));
            if (i + 1 < s.size() && sep(s[i]) && digit(s[i + 1]))
                ++i;
            else
                break;
        }
        for (std::size_t a = 0; a < groups.size(); ++a) {
            std::string d;
            for (std::size_t b = a; b < groups.size() && d.size() + groups[b].size() <= 19; ++b) {
                d += groups[b];
                if (d.size() >= 13 && luhn_ok(d))
                    return d;
            }
        }
    }
    return {};
}

}  // namespace filterd::testing
