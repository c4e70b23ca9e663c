#pragma once
// Test oracle for the scrubber: the Luhn check, written independently of filters/common/scrub.cpp so
// the tests and the fuzz target do not trust the code they check.

#include <string_view>

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

}  // namespace filterd::testing
