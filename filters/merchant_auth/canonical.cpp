#include "filters/merchant_auth/canonical.hpp"

#include "filters/common/filter.hpp"

#include <algorithm>

namespace filterd::merchant_auth {

namespace {

bool is_id_char(char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

bool all_id_chars(std::string_view s, std::size_t min, std::size_t max) noexcept {
    if (s.size() < min || s.size() > max)
        return false;
    return std::all_of(s.begin(), s.end(), is_id_char);
}

/// SPV1 timestamp: a decimal integer without sign, fraction or leading zeros ("0" itself is well formed).
/// One spelling per value, so a signed request cannot be re-sent with a different X-Timestamp text.
bool parse_timestamp(std::string_view s, std::int64_t& out) noexcept {
    if (s.empty() || s.size() > 18)  // 18 digits always fit in int64
        return false;
    if (s.size() > 1 && s[0] == '0')
        return false;
    std::int64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    out = v;
    return true;
}

int b64_value(char c) noexcept {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

bool is_unreserved(unsigned char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

}  // namespace

bool has_control_char(std::string_view s) noexcept {
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c == 0x7f)
            return true;
    }
    return false;
}

bool decode_base64(std::string_view in, std::span<std::uint8_t> out, std::size_t& written) noexcept {
    written = 0;
    if (in.empty() || in.size() % 4 != 0)
        return false;
    std::size_t pad = 0;
    if (in.back() == '=')
        pad = (in[in.size() - 2] == '=') ? 2 : 1;
    std::size_t need = in.size() / 4 * 3 - pad;
    if (need > out.size())
        return false;
    std::size_t o = 0;
    for (std::size_t i = 0; i < in.size(); i += 4) {
        bool last = i + 4 == in.size();
        int v[4];
        for (int k = 0; k < 4; ++k) {
            char c = in[i + static_cast<std::size_t>(k)];
            if (c == '=') {
                // Padding only in the last quantum, only in its last 1 or 2 places.
                if (!last || k < 4 - static_cast<int>(pad))
                    return false;
                v[k] = 0;
                continue;
            }
            v[k] = b64_value(c);
            if (v[k] < 0)
                return false;
        }
        std::uint32_t triple = (static_cast<std::uint32_t>(v[0]) << 18) | (static_cast<std::uint32_t>(v[1]) << 12) |
                               (static_cast<std::uint32_t>(v[2]) << 6) | static_cast<std::uint32_t>(v[3]);
        std::size_t n = last ? 3 - pad : 3;
        // Canonical encoding: the bits that padding hides must be zero.
        if (last && pad == 1 && (triple & 0xff) != 0)
            return false;
        if (last && pad == 2 && (triple & 0xffff) != 0)
            return false;
        for (std::size_t k = 0; k < n; ++k)
            out[o++] = static_cast<std::uint8_t>(triple >> (16 - 8 * k));
    }
    written = o;
    return true;
}

void append_percent_encoded(std::string& out, std::string_view bytes) {
    static constexpr char hex[] = "0123456789ABCDEF";
    for (char ch : bytes) {
        auto c = static_cast<unsigned char>(ch);
        if (is_unreserved(c)) {
            out += ch;
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 0xf];
        }
    }
}

void append_path_encoded(std::string& out, std::string_view path) {
    static constexpr char hex[] = "0123456789ABCDEF";
    for (char ch : path) {
        auto c = static_cast<unsigned char>(ch);
        if (is_unreserved(c) || c == '/') {
            out += ch;
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 0xf];
        }
    }
}

void auth_header_parser::add(std::string_view name, std::string_view value) noexcept {
    for (std::size_t i = 0; i < auth_field_count; ++i) {
        if (iequals(name, auth_header_names[i])) {
            if (counts_[i]++ == 0)
                values_[i] = value;
            return;
        }
    }
}

parse_status auth_header_parser::finish(auth_headers& out) const noexcept {
    for (auto c : counts_)
        if (c > 1)
            return parse_status::duplicate;
    for (std::size_t i = 0; i < auth_field_count; ++i)
        if (counts_[i] == 1 && has_control_char(values_[i]))
            return parse_status::control_char;
    for (auto c : counts_)
        if (c == 0)
            return parse_status::missing;

    const auto v = [&](auth_field f) { return values_[static_cast<std::size_t>(f)]; };
    out.merchant_id = v(auth_field::merchant_id);
    out.key_id = v(auth_field::key_id);
    out.timestamp = v(auth_field::timestamp);
    out.nonce = v(auth_field::nonce);
    if (!all_id_chars(out.merchant_id, 1, 64) || !all_id_chars(out.key_id, 1, 64) ||
        !all_id_chars(out.nonce, 16, 128) || !parse_timestamp(out.timestamp, out.timestamp_s))
        return parse_status::malformed;
    std::string_view sig = v(auth_field::signature);
    if (sig.size() < 4 || sig.substr(0, 3) != "v1=")
        return parse_status::malformed;
    if (!decode_base64(sig.substr(3), out.signature, out.signature_len) || out.signature_len == 0)
        return parse_status::malformed;
    return parse_status::ok;
}

void canonicaliser::reset() noexcept {
    arena_.clear();
    pairs_.clear();
}

void canonicaliser::add_query(std::string_view name, std::string_view value) {
    pair_ref r{};
    r.name_off = static_cast<std::uint32_t>(arena_.size());
    append_percent_encoded(arena_, name);
    r.name_len = static_cast<std::uint32_t>(arena_.size() - r.name_off);
    r.value_off = static_cast<std::uint32_t>(arena_.size());
    append_percent_encoded(arena_, value);
    r.value_len = static_cast<std::uint32_t>(arena_.size() - r.value_off);
    pairs_.push_back(r);
}

void canonicaliser::build_query(std::string& out) {
    out.clear();
    const std::string_view a(arena_);
    auto name = [&](const pair_ref& r) { return a.substr(r.name_off, r.name_len); };
    auto value = [&](const pair_ref& r) { return a.substr(r.value_off, r.value_len); };
    // string_view comparison is char_traits<char>::compare, i.e. memcmp: unsigned byte order.
    std::sort(pairs_.begin(), pairs_.end(), [&](const pair_ref& x, const pair_ref& y) {
        int c = name(x).compare(name(y));
        return c != 0 ? c < 0 : value(x) < value(y);
    });
    bool first = true;
    for (const auto& r : pairs_) {
        if (!first)
            out += '&';
        first = false;
        out += name(r);
        out += '=';
        out += value(r);
    }
}

void canonicaliser::build(const canonical_parts& p, std::string& out) {
    build_query(out);  // query first, into `out`, then the rest around it without another buffer
    std::string_view q;
    // Move the query to the end of the arena so `out` can be rebuilt in order.
    std::size_t qoff = arena_.size();
    arena_ += out;
    q = std::string_view(arena_).substr(qoff);
    out.clear();
    out += "SPV1\n";
    for (char ch : p.method) {
        char c = ch;
        if (c >= 'a' && c <= 'z')
            c = static_cast<char>(c - 32);
        out += c;
    }
    out += '\n';
    append_path_encoded(out, p.path);
    out += '\n';
    out += q;
    out += '\n';
    out += p.merchant_id;
    out += '\n';
    out += p.key_id;
    out += '\n';
    out += p.timestamp;
    out += '\n';
    out += p.nonce;
    out += '\n';
    out += p.body_sha256_hex;
    arena_.resize(qoff);
}

}  // namespace filterd::merchant_auth
