// libFuzzer target for the merchant-auth SPV1 header parser and canonicaliser
// (filters/merchant_auth/canonical.cpp).
//
// Input layout (so seeds are readable text): line 0 is the method, line 1 the path, then header lines
// "Name:value" up to an empty line, then query lines "name=value" (raw decoded bytes) up to another
// empty line; the rest is the body.
//
// Asserts, for any input:
//  * neither the parser nor the canonicaliser crashes (sanitizers) or throws past their contracts;
//  * a header set the parser accepts satisfies every documented format, and its signature re-encodes
//    to exactly the base64 text that was sent (strict, canonical decoding);
//  * the canonical query line holds only unreserved bytes, "%XX" (upper-case hex), '=' and '&'; it
//    splits back into exactly the pairs given, each percent-decoding to the original bytes, in sorted
//    order; the path line holds only unreserved bytes, '/' and "%XX", percent-decoding to the path; the
//    whole string has 8 line breaks when the method has none (a newline in the path is encoded);
//  * the canonical string does not depend on the order of the query pairs.
// Run: build-auth-fuzz/canonical_fuzz -max_total_time=60 fuzz/corpus/canonical
#include "filters/merchant_auth/canonical.hpp"
#include "filters/merchant_auth/crypto.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using namespace filterd::merchant_auth;

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "canonical_fuzz: %s\n", what);
    std::abort();
}
void check(bool ok, const char* what) {
    if (!ok)
        fail(what);
}

bool next_line(std::string_view& in, std::string_view& line) {
    if (in.empty())
        return false;
    auto nl = in.find('\n');
    line = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
    return true;
}

std::string b64_encode(const std::uint8_t* p, std::size_t n) {
    static constexpr char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (std::size_t i = 0; i < n; i += 3) {
        std::uint32_t v = std::uint32_t{p[i]} << 16;
        if (i + 1 < n)
            v |= std::uint32_t{p[i + 1]} << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out += a[(v >> 18) & 63];
        out += a[(v >> 12) & 63];
        out += i + 1 < n ? a[(v >> 6) & 63] : '=';
        out += i + 2 < n ? a[v & 63] : '=';
    }
    return out;
}

int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;  // lower-case hex is not canonical
}

std::string pct_decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        check(i + 2 < s.size(), "truncated %XX");
        int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
        check(hi >= 0 && lo >= 0, "bad %XX");
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

bool id_ok(std::string_view s, std::size_t min, std::size_t max) {
    return s.size() >= min && s.size() <= max && std::all_of(s.begin(), s.end(), [](char c) {
               return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                      c == '_';
           });
}

void check_headers(const std::vector<std::pair<std::string_view, std::string_view>>& headers) {
    auth_header_parser p;
    for (const auto& [n, v] : headers)
        p.add(n, v);
    auth_headers h;
    if (p.finish(h) != parse_status::ok)
        return;
    check(id_ok(h.merchant_id, 1, 64), "accepted merchant id");
    check(id_ok(h.key_id, 1, 64), "accepted key id");
    check(id_ok(h.nonce, 16, 128), "accepted nonce");
    check(!h.timestamp.empty() && h.timestamp.size() <= 18 &&
              std::all_of(h.timestamp.begin(), h.timestamp.end(), [](char c) { return c >= '0' && c <= '9'; }),
          "accepted timestamp");
    check(std::to_string(h.timestamp_s).size() <= h.timestamp.size(), "timestamp value");
    check(h.signature_len >= 1 && h.signature_len <= max_signature_bytes, "signature length");
    std::string_view sent;
    for (const auto& [n, v] : headers)
        if (n.size() == 11 && (n[0] == 'X' || n[0] == 'x') && n.substr(1) == "-Signature")
            sent = v;
    if (!sent.empty())
        check("v1=" + b64_encode(h.signature.data(), h.signature_len) == sent, "signature base64 round trip");
}

void check_canonical(std::string_view method, std::string_view path,
                     const std::vector<std::pair<std::string_view, std::string_view>>& query, std::string_view body) {
    char hex[64];
    if (!sha256_hex({reinterpret_cast<const std::uint8_t*>(body.data()), body.size()}, hex))
        fail("sha256 failed");
    canonical_parts parts{
        method, path, "merchant", "key", "1764158400", "nonce-nonce-nonce", std::string_view(hex, 64)};
    canonicaliser c;
    c.reset();
    for (const auto& [n, v] : query)
        c.add_query(n, v);
    std::string out;
    c.build(parts, out);
    check(out.rfind("SPV1\n", 0) == 0, "prefix");
    // Line 2 is the canonical path: only unreserved bytes, '/' and %XX, decoding back to the path.
    {
        std::string_view rest = std::string_view(out).substr(5);
        rest = rest.substr(rest.find('\n') + (method.find('\n') == std::string_view::npos ? 1 : 0));
        std::string canon_path;
        append_path_encoded(canon_path, path);
        for (char ch : canon_path) {
            bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                      ch == '.' || ch == '_' || ch == '~' || ch == '%' || ch == '/';
            check(ok, "path byte outside the canonical alphabet");
        }
        check(pct_decode(canon_path) == path, "canonical path does not decode to the path");
        if (method.find('\n') == std::string_view::npos)
            check(rest.substr(0, canon_path.size() + 1) == canon_path + "\n", "line 3 is the canonical path");
    }

    std::string q;
    c.reset();
    for (const auto& [n, v] : query)
        c.add_query(n, v);
    c.build_query(q);
    for (char ch : q) {
        bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                  ch == '.' || ch == '_' || ch == '~' || ch == '%' || ch == '=' || ch == '&';
        check(ok, "query byte outside the canonical alphabet");
    }
    // Split back into pairs and compare with the input as multisets (sorted by encoded form).
    std::vector<std::pair<std::string, std::string>> got, want;
    if (!q.empty()) {
        std::string_view rest = q;
        for (;;) {
            auto amp = rest.find('&');
            std::string_view pair = rest.substr(0, amp);
            auto eq = pair.find('=');
            check(eq != std::string_view::npos, "pair without '='");
            got.emplace_back(std::string(pair.substr(0, eq)), std::string(pair.substr(eq + 1)));
            if (amp == std::string_view::npos)
                break;
            rest = rest.substr(amp + 1);
        }
    }
    check(got.size() == query.size(), "pair count");
    check(std::is_sorted(got.begin(), got.end()), "pairs not sorted");
    std::vector<std::pair<std::string, std::string>> decoded_got;
    for (const auto& [n, v] : got)
        decoded_got.emplace_back(pct_decode(n), pct_decode(v));
    for (const auto& [n, v] : query)
        want.emplace_back(std::string(n), std::string(v));
    auto by_encoding = [](const auto& x, const auto& y) {
        std::string ex, ey, vx, vy;
        append_percent_encoded(ex, x.first);
        append_percent_encoded(ey, y.first);
        if (ex != ey)
            return ex < ey;
        append_percent_encoded(vx, x.second);
        append_percent_encoded(vy, y.second);
        return vx < vy;
    };
    std::sort(want.begin(), want.end(), by_encoding);
    check(decoded_got == want, "pairs do not round-trip");

    if (method.find('\n') == std::string_view::npos)
        check(std::count(out.begin(), out.end(), '\n') == 8, "line count");

    // Order independence.
    c.reset();
    for (auto it = query.rbegin(); it != query.rend(); ++it)
        c.add_query(it->first, it->second);
    std::string reversed;
    c.build(parts, reversed);
    check(reversed == out, "canonical string depends on query order");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    std::string_view method, path, line;
    next_line(in, method);
    next_line(in, path);
    std::vector<std::pair<std::string_view, std::string_view>> headers, query;
    while (next_line(in, line) && !line.empty()) {
        auto colon = line.find(':');
        if (colon == std::string_view::npos)
            headers.emplace_back(line, std::string_view{});
        else
            headers.emplace_back(line.substr(0, colon), line.substr(colon + 1));
        if (headers.size() > 64)
            break;
    }
    while (next_line(in, line) && !line.empty()) {
        auto eq = line.find('=');
        query.emplace_back(line.substr(0, eq), eq == std::string_view::npos ? std::string_view{} : line.substr(eq + 1));
        if (query.size() > 256)
            break;
    }
    check_headers(headers);
    check_canonical(method, path, query, in);
    return 0;
}
