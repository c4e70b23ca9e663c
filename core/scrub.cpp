// The one log scrubber. Contract and rules: scrub.hpp, docs/logging.md.
//
// One left-to-right pass. Two kinds of candidate are looked at:
//  * numeric spans: a maximal run of ASCII digits in which single ' ', '-', '_' or '.' characters may sit between two
//    digits (optionally led by '+'). A span is split into digit groups at its separators; cards, phones and
//    CNICs are ranges of whole groups, so digits are never taken out of the middle of a longer contiguous run.
//  * words that start with two letters and two digits (IBAN candidates), contiguous or grouped by 4.
// Every candidate looks at a bounded number of characters (at most 19 digits, at most 34 IBAN characters)
// beyond what it consumes, so the pass is linear in the input.
#include "core/scrub.hpp"

#include <cstdint>

namespace filterd {
namespace {

constexpr std::string_view token_card = "[card]";
constexpr std::string_view token_phone = "[phone]";
constexpr std::string_view token_cnic = "[cnic]";
constexpr std::string_view token_iban = "[iban]";

constexpr std::size_t card_min = 13;
constexpr std::size_t card_max = 19;
constexpr std::size_t iban_min = 15;  // 2 letters + 2 check digits + 11 BBAN characters
constexpr std::size_t iban_max = 34;  // ... + 30 BBAN characters

inline bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
inline bool is_alpha(char c) noexcept { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
inline bool is_alnum(char c) noexcept { return is_digit(c) || is_alpha(c); }
/// A single character that may sit between two digit groups of one numeric span. '_' and '.' are here
/// because identifiers and file-like names carry numbers that way ("k_4111_1111_1111_1111").
inline bool is_sep(char c) noexcept { return c == ' ' || c == '-' || c == '_' || c == '.'; }

/// One run of contiguous digits inside a numeric span; `sep` is the separator before it (0 for the first).
struct group {
    std::size_t begin;
    std::size_t end;
    char sep;
    std::size_t size() const noexcept { return end - begin; }
};

/// Reads the groups of one numeric span lazily, keeping only a window of them: a match starting at group i
/// looks at groups i..i+18 at most (each group has at least one digit, a match at most 19), so a ring of 32
/// is enough and a span of any length costs no allocation.
class span_reader {
public:
    span_reader(std::string_view in, std::size_t first_digit) noexcept : in_(in), q_(first_digit) {}

    /// Group `k` of the span (0-based), or nullptr past its end. `k` must be at least the largest k asked
    /// for so far minus 31.
    const group* get(std::size_t k) noexcept {
        while (parsed_ <= k && !done_)
            parse_one();
        return k < parsed_ ? &ring_[k % ring_size] : nullptr;
    }
    /// End of the span in the input (reads the rest of the span first).
    std::size_t end() noexcept {
        while (!done_)
            parse_one();
        return q_;
    }

private:
    static constexpr std::size_t ring_size = 32;

    void parse_one() noexcept {
        std::size_t b = q_;
        while (q_ < in_.size() && is_digit(in_[q_]))
            ++q_;
        ring_[parsed_ % ring_size] = {b, q_, sep_};
        ++parsed_;
        if (q_ + 1 < in_.size() && is_sep(in_[q_]) && is_digit(in_[q_ + 1])) {
            sep_ = in_[q_];
            ++q_;
        } else {
            done_ = true;
        }
    }

    std::string_view in_;
    std::size_t q_;
    char sep_ = 0;
    bool done_ = false;
    std::size_t parsed_ = 0;
    group ring_[ring_size];
};

enum class kind : std::uint8_t { none, card, phone, cnic };

bool luhn_ok(const char* d, std::size_t n) noexcept {
    unsigned sum = 0;
    bool dbl = false;
    for (std::size_t i = n; i-- > 0;) {
        unsigned v = static_cast<unsigned>(d[i] - '0');
        if (dbl) {
            v *= 2;
            if (v > 9)
                v -= 9;
        }
        sum += v;
        dbl = !dbl;
    }
    return sum % 10 == 0;
}

bool starts_with(const char* d, std::size_t n, std::string_view p) noexcept {
    return n >= p.size() && std::string_view(d, p.size()) == p;
}

/// Pakistani mobile numbers as digit strings: 03XXXXXXXXX, 923XXXXXXXXX (also written +92...), 00923XXXXXXXXX.
bool is_pk_mobile(const char* d, std::size_t n) noexcept {
    return (n == 11 && starts_with(d, n, "03")) || (n == 12 && starts_with(d, n, "923")) ||
           (n == 14 && starts_with(d, n, "00923"));
}

/// Finds the sensitive item that starts at group `i`, if any; `last` receives its last group.
kind match_at(std::string_view in, span_reader& gs, std::size_t i, std::size_t& last) noexcept {
    const group* g0 = gs.get(i);

    // CNIC, written 12345-1234567-1.
    if (g0->size() == 5) {
        const group* g1 = gs.get(i + 1);
        const group* g2 = g1 ? gs.get(i + 2) : nullptr;
        if (g2 != nullptr && g1->size() == 7 && g2->size() == 1 && g1->sep == '-' && g2->sep == '-') {
            last = i + 2;
            return kind::cnic;
        }
    }

    // Collect the digits of the ranges [i, j] that hold at most card_max digits.
    char digits[card_max];
    std::size_t total = 0;
    std::size_t ends[card_max + 1];  // ends[k]: digit count of [i, i + k]
    std::size_t nranges = 0;
    for (std::size_t j = i;; ++j) {
        const group* g = gs.get(j);
        if (g == nullptr || total + g->size() > card_max)
            break;
        for (std::size_t k = 0; k < g->size(); ++k)
            digits[total + k] = in[g->begin + k];
        total += g->size();
        ends[nranges++] = total;
    }

    for (std::size_t k = 0; k < nranges; ++k)
        if (is_pk_mobile(digits, ends[k])) {
            last = i + k;
            return kind::phone;
        }
    for (std::size_t k = nranges; k-- > 0;)  // longest card first
        if (ends[k] >= card_min && luhn_ok(digits, ends[k])) {
            last = i + k;
            return kind::card;
        }
    // CNIC written as 13 contiguous digits (a 13-digit run that is not a Luhn-valid card).
    if (g0->size() == 13) {
        last = i;
        return kind::cnic;
    }
    return kind::none;
}

std::string_view token_for(kind k) noexcept {
    switch (k) {
    case kind::card: return token_card;
    case kind::phone: return token_phone;
    case kind::cnic: return token_cnic;
    case kind::none: break;
    }
    return {};
}

/// Scrubs the numeric span that starts at `p` (a digit, or '+' before a digit) and returns its end.
std::size_t scrub_span(std::string_view in, std::size_t p, std::string& out) {
    const bool plus = in[p] == '+';
    span_reader gs(in, plus ? p + 1 : p);
    std::size_t cursor = p;  // input before `cursor` has been written to `out`
    for (std::size_t i = 0; gs.get(i) != nullptr;) {
        std::size_t last = i;
        kind k = match_at(in, gs, i, last);
        if (k == kind::none) {
            ++i;
            continue;
        }
        // "+92 300 1234567": the '+' belongs to the phone number.
        std::size_t from = (k == kind::phone && plus && i == 0) ? p : gs.get(i)->begin;
        out.append(in.data() + cursor, from - cursor);
        out += token_for(k);
        cursor = gs.get(last)->end;
        i = last + 1;
    }
    const std::size_t span_end = gs.end();
    out.append(in.data() + cursor, span_end - cursor);
    return span_end;
}

unsigned letter_value(char c) noexcept { return static_cast<unsigned>((c >= 'a' ? c - 'a' : c - 'A') + 10); }

/// mod-97 of the decimal string formed by appending `c` (a digit, or a letter as two digits 10..35).
unsigned mod97_push(unsigned r, char c) noexcept {
    if (is_digit(c))
        return (r * 10 + static_cast<unsigned>(c - '0')) % 97;
    return (r * 100 + letter_value(c)) % 97;
}

/// ISO 13616 check: BBAN, then country code and check digits, as one number mod 97 must be 1.
bool iban_check(unsigned bban_mod, std::string_view head) noexcept {
    unsigned r = bban_mod;
    for (char c : head)
        r = mod97_push(r, c);
    return r == 1;
}

/// An IBAN at `p` (not preceded by a letter): "CCdd" then 11-30 alphanumerics, either contiguous (ending at a word
/// boundary) or in space-separated groups of four with a last group of 1-4. Returns its end, or 0.
std::size_t match_iban(std::string_view in, std::size_t p) noexcept {
    const std::size_t n = in.size();
    if (p + 4 >= n || !is_alpha(in[p]) || !is_alpha(in[p + 1]) || !is_digit(in[p + 2]) || !is_digit(in[p + 3]))
        return 0;
    const std::string_view head = in.substr(p, 4);
    unsigned r = 0;
    if (is_alnum(in[p + 4])) {
        std::size_t q = p + 4;
        while (q < n && is_alnum(in[q]) && q - p <= iban_max) {
            r = mod97_push(r, in[q]);
            ++q;
        }
        std::size_t len = q - p;
        if ((q < n && is_alnum(in[q])) || len < iban_min || len > iban_max)
            return 0;
        return iban_check(r, head) ? q : 0;
    }
    if (in[p + 4] != ' ')
        return 0;
    std::size_t q = p + 4;
    std::size_t count = 0;  // BBAN characters so far
    std::size_t best = 0;
    while (q + 1 < n && in[q] == ' ' && is_alnum(in[q + 1])) {
        std::size_t k = q + 1;
        while (k < n && is_alnum(in[k]) && k - (q + 1) < 5)
            ++k;
        std::size_t glen = k - (q + 1);
        if (glen > 4)
            break;  // not a group of the printed form
        for (std::size_t t = q + 1; t < k; ++t)
            r = mod97_push(r, in[t]);
        count += glen;
        if (count > iban_max - 4)
            break;
        if (count >= iban_min - 4 && iban_check(r, head))
            best = k;
        if (glen < 4)
            break;  // a short group is the last one
        q = k;
    }
    return best;
}

}  // namespace

std::string scrub_text(std::string_view in) noexcept {
    try {
        std::string out;
        out.reserve(in.size() + 8);
        const std::size_t n = in.size();
        std::size_t p = 0;
        std::size_t pending = 0;  // input in [pending, p) is copied to `out` in one append when needed
        while (p < n) {
            const char c = in[p];
            if (is_digit(c)) {
                // Fast path: a lone run of fewer than 11 digits (no separator and digit after it) cannot be
                // any of the masked kinds, whose shortest form is an 11-digit phone number.
                std::size_t q = p + 1;
                while (q < n && is_digit(in[q]) && q - p < 11)
                    ++q;
                if (q - p < 11 && !(q + 1 < n && is_sep(in[q]) && is_digit(in[q + 1]))) {
                    p = q;
                    continue;
                }
            }
            if (is_digit(c) || (c == '+' && p + 1 < n && is_digit(in[p + 1]))) {
                out.append(in.data() + pending, p - pending);
                p = pending = scrub_span(in, p, out);
                continue;
            }
            if (!is_alpha(c)) {
                ++p;
                continue;
            }
            // A word start for IBANs: not right after a letter. Right after a digit counts, so "1PK36..." is
            // still caught (the digits before it were a span of their own).
            if (p == 0 || !is_alpha(in[p - 1])) {
                if (std::size_t end = match_iban(in, p); end != 0) {
                    out.append(in.data() + pending, p - pending);
                    out += token_iban;
                    p = pending = end;
                    continue;
                }
            }
            // The rest of this run of letters holds no word start and no digit: skip it in one go.
            ++p;
            while (p < n && is_alpha(in[p]))
                ++p;
        }
        out.append(in.data() + pending, n - pending);
        return out;
    } catch (...) {
        try {
            return "[scrub-failed]";
        } catch (...) {
            return {};
        }
    }
}

}  // namespace filterd
