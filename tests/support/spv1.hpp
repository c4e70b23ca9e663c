#pragma once
// The C++ SPV1 signer (hmac-sha256) for tests and tools: the C++ tests that need many distinct,
// validly signed requests (fresh nonces, current timestamps) and filterd-loadgen use it. Written from
// docs/filters/merchant-auth.md and sharing no code with filters/merchant_auth/ (OpenSSL HMAC and
// SHA-256 directly); tests/filters/merchant_auth/signer_test.cpp checks it against every hmac-sha256
// vector of the independent generator (tests/data/merchant_auth/vectors.json).
//
// It signs a proto::request_spec, i.e. a request as the gateway hands it to filterd: `path` is the
// decoded path and `query` the decoded pairs; both are encoded here by the canonical rules.

#include "protocol/framing.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace filterd::testing {

inline std::string spv1_hex(const unsigned char* p, std::size_t n) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < n; ++i) {
        out += hex[p[i] >> 4];
        out += hex[p[i] & 0xf];
    }
    return out;
}

inline std::string spv1_base64(const unsigned char* p, std::size_t n) {
    std::string out(4 * ((n + 2) / 3) + 1, '\0');
    int w = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), p, static_cast<int>(n));
    out.resize(static_cast<std::size_t>(w));
    return out;
}

/// An hmac secret from a file, as filterd's secret loader reads it: the file's bytes less one
/// trailing newline, then one trailing carriage return. No value when the file cannot be read.
inline std::optional<std::string> spv1_read_secret_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f)
        return std::nullopt;
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (!s.empty() && s.back() == '\n')
        s.pop_back();
    if (!s.empty() && s.back() == '\r')
        s.pop_back();
    return s;
}

/// Lower-case hex SHA-256 of `bytes` (line 9 of the canonical string).
inline std::string spv1_sha256_hex(std::string_view bytes) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest);
    return spv1_hex(digest, sizeof digest);
}

/// RFC 3986 percent-encoding: unreserved bytes (and '/' when `keep_slash`) stay, every other byte
/// is %XX with upper-case hex.
inline std::string spv1_encode(std::string_view s, bool keep_slash = false) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '.' || c == '_' || c == '~' || (keep_slash && c == '/');
        if (keep) {
            out += ch;
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 0xf];
        }
    }
    return out;
}

/// Line 4: the decoded pairs encoded, sorted by name then value (bytewise), joined with '&'.
inline std::string spv1_canonical_query(const std::vector<std::pair<std::string, std::string>>& query) {
    std::vector<std::pair<std::string, std::string>> enc;
    enc.reserve(query.size());
    for (const auto& [n, v] : query)
        enc.emplace_back(spv1_encode(n), spv1_encode(v));
    std::sort(enc.begin(), enc.end());
    std::string out;
    for (const auto& [n, v] : enc) {
        if (!out.empty())
            out += '&';
        out += n + "=" + v;
    }
    return out;
}

/// The SPV1 canonical string of `spec` (method, decoded path, decoded query) for these header values.
/// `body_sha256_hex` is line 9: the hex SHA-256 of the body.
inline std::string spv1_canonical(const proto::request_spec& spec, std::string_view merchant, std::string_view key_id,
                                  std::string_view timestamp, std::string_view nonce,
                                  std::string_view body_sha256_hex) {
    std::string method = spec.method;
    for (auto& c : method)
        if (c >= 'a' && c <= 'z')
            c = static_cast<char>(c - 32);
    std::string out = "SPV1\n" + method + "\n" + spv1_encode(spec.path, true) + "\n" +
                      spv1_canonical_query(spec.query) + "\n";
    out.append(merchant).append("\n").append(key_id).append("\n").append(timestamp).append("\n");
    out.append(nonce).append("\n").append(body_sha256_hex);
    return out;
}

/// The X-Signature value ("v1=" + base64 HMAC-SHA256) of a canonical string under `secret`.
inline std::string spv1_hmac_signature(std::string_view secret, std::string_view canonical) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(canonical.data()), canonical.size(), mac, &mac_len);
    return "v1=" + spv1_base64(mac, mac_len);
}

/// Sets the five SPV1 headers of `spec` (replacing any already there) for an hmac-sha256 key;
/// `secret` is the key's bytes. The body digest is `body_sha256_hex` when given (a caller that sends
/// one body many times hashes it once), else spec.body_sha256 when set, else the hash of spec.body.
inline void spv1_sign_hmac(proto::request_spec& spec, const std::string& merchant, const std::string& key_id,
                           const std::string& secret, const std::string& nonce, std::int64_t timestamp_s,
                           std::string_view body_sha256_hex = {}) {
    std::string digest(body_sha256_hex);
    if (digest.empty())
        digest = spec.body_sha256 ? spv1_hex(reinterpret_cast<const unsigned char*>(spec.body_sha256->data()),
                                             spec.body_sha256->size())
                                  : spv1_sha256_hex(spec.body);
    std::string ts = std::to_string(timestamp_s);
    std::string signature = spv1_hmac_signature(secret, spv1_canonical(spec, merchant, key_id, ts, nonce, digest));
    auto set = [&](const char* name, std::string value) {
        for (auto& h : spec.headers)
            if (h.name == name) {
                h.values = {std::move(value)};
                return;
            }
        spec.headers.push_back({name, {std::move(value)}});
    };
    set("X-Merchant-Id", merchant);
    set("X-Key-Id", key_id);
    set("X-Timestamp", ts);
    set("X-Nonce", nonce);
    set("X-Signature", std::move(signature));
}

}  // namespace filterd::testing
