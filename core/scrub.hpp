#pragma once
// The one log scrubber. Every log line the daemon writes passes through scrub_text.
//
// Masks, wherever they appear in free text (exact rules and examples: docs/logging.md):
//  * card numbers -> "[card]": 13-19 digits, optionally separated by single spaces, dashes, underscores or dots,
//    passing Luhn;
//  * Pakistani mobile numbers -> "[phone]": 03XXXXXXXXX, 923XXXXXXXXX, +923XXXXXXXXX, 00923XXXXXXXXX, with
//    optional single space/dash/underscore/dot separators (0300-1234567, +92 300 1234567);
//  * CNIC numbers -> "[cnic]": 12345-1234567-1, or 13 contiguous digits;
//  * IBANs -> "[iban]": two letters, two check digits, 11-30 alphanumerics, contiguous or in space-separated
//    groups of four; only when the ISO 13616 mod-97 check passes.
// Boundaries: digits are matched as whole runs ("groups") of a numeric span, never cut out of a longer
// contiguous digit run, so a 20+ digit run (a hash, a trace id) is left alone, and so is any number that
// fails the checks above (durations, counts, most ids). A 13-digit run is always masked (it has the CNIC
// shape), which includes millisecond Unix timestamps: log times as RFC 3339 text instead.
// Replacements carry no digit of the masked value. The pass is linear in the input length.

#include <string>
#include <string_view>

namespace filterd {

/// Returns `in` with every sensitive span masked. Never throws; allocation failure yields "[scrub-failed]".
std::string scrub_text(std::string_view in) noexcept;

}  // namespace filterd
