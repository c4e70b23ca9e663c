// libFuzzer target for the log scrubber (core/scrub.cpp).
//
// Asserts, for any input:
//  * scrub_text returns (no crash, no sanitizer report, no exception: it is noexcept);
//  * the output holds no maximal run of 13-19 ASCII digits that passes Luhn (a card number survived), and no
//    maximal run of exactly 13 digits (a CNIC survived), and no range of whole digit groups joined by single
//    ' ', '-', '_' or '.' separators that holds 13-19 digits and passes Luhn (a separated card survived);
// (Idempotence is deliberately not asserted: when a digit run right after some letters is masked, the
// letters before it become a shorter word, and that word may pass the 1-in-97 IBAN check on a second pass.
// That is an over-mask, not a leak.)
// Run: build-enr-fuzz/scrub_fuzz -max_total_time=60 fuzz/corpus/scrub
#include "core/scrub.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/support/luhn.hpp"
#include <string_view>

namespace {

using filterd::testing::find_separated_card;
using filterd::testing::luhn_ok;

[[noreturn]] void fail(const char* what, std::string_view in, std::string_view out) {
    std::fprintf(stderr, "scrub_fuzz: %s\n in:  %.*s\n out: %.*s\n", what, static_cast<int>(in.size()), in.data(),
                 static_cast<int>(out.size()), out.data());
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    std::string out = filterd::scrub_text(in);

    if (!find_separated_card(out).empty())
        fail("a separated card number survived", in, out);
    std::size_t i = 0;
    while (i < out.size()) {
        if (out[i] < '0' || out[i] > '9') {
            ++i;
            continue;
        }
        std::size_t b = i;
        while (i < out.size() && out[i] >= '0' && out[i] <= '9')
            ++i;
        std::string_view run(out.data() + b, i - b);
        if (run.size() == 13)
            fail("a 13-digit run survived", in, out);
        if (run.size() >= 13 && run.size() <= 19 && luhn_ok(run))
            fail("a Luhn-valid 13-19 digit run survived", in, out);
    }
    return 0;
}
