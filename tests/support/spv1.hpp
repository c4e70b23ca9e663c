#pragma once
// Test-only SPV1 signer for requests without a query, written from docs/filters/merchant-auth.md and
// sharing no code with filters/merchant_auth/ (OpenSSL HMAC and SHA-256 directly). Tests that need
// many distinct, validly signed requests (fresh nonces, current timestamps) use it; the committed
// vectors from the independent Python generator cover the canonical-string edge cases.

#include "protocol/framing.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <cstdint>
#include <string>

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

/// Fills the SPV1 headers of `spec` (method, path and body already set; no query) for an
/// hmac-sha256 key. `secret` is the key's bytes.
inline void spv1_sign_hmac(proto::request_spec& spec, const std::string& merchant, const std::string& key_id,
                           const std::string& secret, const std::string& nonce, std::int64_t timestamp_s) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(spec.body.data()), spec.body.size(), digest);
    std::string method = spec.method;
    for (auto& c : method)
        if (c >= 'a' && c <= 'z')
            c = static_cast<char>(c - 32);
    std::string canonical = "SPV1\n" + method + "\n" + spec.path + "\n\n" + merchant + "\n" + key_id + "\n" +
                            std::to_string(timestamp_s) + "\n" + nonce + "\n" + spv1_hex(digest, sizeof digest);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(canonical.data()), canonical.size(), mac, &mac_len);
    spec.headers.push_back({"X-Merchant-Id", {merchant}});
    spec.headers.push_back({"X-Key-Id", {key_id}});
    spec.headers.push_back({"X-Timestamp", {std::to_string(timestamp_s)}});
    spec.headers.push_back({"X-Nonce", {nonce}});
    spec.headers.push_back({"X-Signature", {"v1=" + spv1_base64(mac, mac_len)}});
}

}  // namespace filterd::testing
