#pragma once
// SPV1 wire format: the auth header parser and the canonical string (docs/filters/merchant-auth.md).
//
// Both are pure functions of their inputs (no clock, no config, no I/O), never throw and never
// allocate once their scratch buffers have grown, so the hot path and the fuzzer share them.
//
// Header formats (the contract with merchants; anything else is malformed):
//   X-Merchant-Id  [A-Za-z0-9_-]{1,64}
//   X-Key-Id       [A-Za-z0-9_-]{1,64}
//   X-Timestamp    0|[1-9][0-9]{0,17}   Unix seconds, decimal: no sign, fraction or leading zeros
//   X-Nonce        [A-Za-z0-9_-]{16,128}   base64url alphabet, no padding
//   X-Signature    "v1=" + standard base64 with padding (RFC 4648 section 4), canonical encoding,
//                  decoding to 1..max_signature_bytes bytes
//
// Canonical string: these nine lines joined by "\n", no trailing newline:
//   SPV1, METHOD (ASCII upper-cased), canonical path, canonical query, merchant id, key id,
//   timestamp (as sent), nonce, lower-case hex SHA-256 of the raw body.
// Canonical path: the percent-DECODED path (what the gateway hands filterd: KrakenD's plugin sees only
// Go's URL.Path) re-encoded byte by byte: unreserved characters and '/' kept, every other byte %XX with
// upper-case hex. A merchant computes it from the raw path by decoding every %XX once and re-encoding
// the same way, so "/v1/%70ayments" and "/v1/payments" sign the same, and the encoded path a merchant
// sent never meets a decoded one.
// Canonical query: every decoded name and value is percent-encoded (unreserved A-Z a-z 0-9 - . _ ~
// kept, every other byte %XX with upper-case hex), pairs sorted by encoded name then encoded value
// (byte order), written name=value and joined with '&'; empty when there is no query.

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace filterd::merchant_auth {

/// Largest decoded signature accepted (an RSA-8192 signature is 1024 bytes).
inline constexpr std::size_t max_signature_bytes = 1024;

enum class auth_field : std::uint8_t { merchant_id = 0, key_id, timestamp, nonce, signature };
inline constexpr std::size_t auth_field_count = 5;
/// Header names, indexed by auth_field. Matched case-insensitively.
inline constexpr std::array<std::string_view, auth_field_count> auth_header_names{
    "X-Merchant-Id", "X-Key-Id", "X-Timestamp", "X-Nonce", "X-Signature"};

/// Result of parsing the auth headers, in the order the checks run.
enum class parse_status : std::uint8_t {
    ok,
    duplicate,     ///< an auth header appears more than once (also as two values of one header) -> 400
    control_char,  ///< an auth header value holds a byte < 0x20 or 0x7f -> 400
    missing,       ///< an auth header is absent -> 401
    malformed,     ///< an auth header does not match its format -> 401
};

/// The parsed, syntactically valid auth headers. Views point into the request.
struct auth_headers {
    std::string_view merchant_id;
    std::string_view key_id;
    std::string_view timestamp;  ///< as sent (goes into the canonical string)
    std::int64_t timestamp_s = 0;
    std::string_view nonce;
    std::array<std::uint8_t, max_signature_bytes> signature{};
    std::size_t signature_len = 0;

    std::span<const std::uint8_t> signature_bytes() const noexcept { return {signature.data(), signature_len}; }
};

/// Collects the auth headers from a request's header list. Feed every header with add(), then call
/// finish() once. Non-auth headers are ignored. Never throws.
class auth_header_parser {
public:
    /// Offers one header value. `name` is compared case-insensitively with auth_header_names.
    void add(std::string_view name, std::string_view value) noexcept;

    /// Validates what was offered and fills `out` on ok. Checks run in the order of parse_status:
    /// any duplicate wins over a control character, which wins over a missing header, etc.
    parse_status finish(auth_headers& out) const noexcept;

private:
    std::array<std::string_view, auth_field_count> values_{};
    std::array<std::uint32_t, auth_field_count> counts_{};
};

/// True when `s` holds a byte < 0x20 or 0x7f (ASCII control characters).
bool has_control_char(std::string_view s) noexcept;

/// Strict RFC 4648 standard base64 decode (with padding, canonical trailing bits). Writes at most
/// out.size() bytes; returns false on any deviation or when the result does not fit.
bool decode_base64(std::string_view in, std::span<std::uint8_t> out, std::size_t& written) noexcept;

/// Appends the SPV1 percent-encoding of `bytes` to `out`.
void append_percent_encoded(std::string& out, std::string_view bytes);
/// Appends the canonical path of the decoded path `path`: as append_percent_encoded, but '/' is kept.
void append_path_encoded(std::string& out, std::string_view path);

/// The non-query parts of a canonical string.
struct canonical_parts {
    std::string_view method;
    std::string_view path;  ///< the decoded path (FilterRequest.path); encoded by build()
    std::string_view merchant_id;
    std::string_view key_id;
    std::string_view timestamp;
    std::string_view nonce;
    std::string_view body_sha256_hex;  ///< 64 lower-case hex characters
};

/// Builds canonical strings. Holds scratch buffers that are reused across calls, so one instance per
/// thread makes the steady state allocation-free. Not thread-safe; cheap to construct.
class canonicaliser {
public:
    /// Starts a new canonical string (forgets the query pairs of the previous one).
    void reset() noexcept;
    /// Adds one decoded query pair.
    void add_query(std::string_view name, std::string_view value);
    /// Writes the canonical string for `p` and the pairs added since reset() into `out` (replacing it).
    void build(const canonical_parts& p, std::string& out);
    /// Writes only the canonical query (line 4) into `out` (replacing it).
    void build_query(std::string& out);

private:
    struct pair_ref {
        std::uint32_t name_off, name_len, value_off, value_len;
    };
    std::string arena_;
    std::vector<pair_ref> pairs_;
};

}  // namespace filterd::merchant_auth
