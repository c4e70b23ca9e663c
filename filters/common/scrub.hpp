#pragma once
// The one log scrubber. Every log line the daemon writes passes through scrub_text.
//
// Masks, wherever they appear in free text:
//  * card numbers: 13-19 digits, optionally separated by single spaces or dashes, passing Luhn;
//  * Pakistani mobile numbers (03XXXXXXXXX, +923XXXXXXXXX, 923XXXXXXXXX, with optional separators);
//  * CNIC numbers (XXXXX-XXXXXXX-X or 13 contiguous digits);
//  * IBANs (two letters, two check digits, 11-30 alphanumerics, optional spaces; mod-97 valid).
// Replacements keep the length class visible but no digits of the secret part, e.g. "[card]".

#include <string>
#include <string_view>

namespace filterd {

/// Returns `in` with every sensitive span masked. Never throws; allocation failure yields "[scrub-failed]".
std::string scrub_text(std::string_view in) noexcept;

}  // namespace filterd
