#pragma once
// Verification keys and the OpenSSL 3 calls of merchant-auth.
//
// Keys are built once at config load (PEM parsed, EVP_PKEY ready) and are immutable afterwards, so
// any number of threads may verify with one key at once. Per-thread OpenSSL contexts (EVP_MAC_CTX,
// EVP_MD_CTX) are created on a thread's first use and reused, so the steady state does not allocate
// for HMAC and SHA-256. Nothing here throws on the request path; load-time helpers report errors
// through their return values and the caller turns them into config_error.

#include "filters/common/secret.hpp"

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace filterd::merchant_auth {

/// The algorithm comes from the key record, never from the request.
enum class algorithm : std::uint8_t { hmac_sha256, rsa_sha256, ed25519 };

std::string_view to_string(algorithm a) noexcept;
/// Parses "hmac-sha256" | "rsa-sha256" | "ed25519". Returns false for anything else.
bool parse_algorithm(std::string_view s, algorithm& out) noexcept;

/// Smallest HMAC secret accepted at load, in bytes.
inline constexpr std::size_t min_hmac_secret_bytes = 32;
/// Smallest RSA modulus accepted at load, in bits.
inline constexpr int min_rsa_bits = 2048;

/// Key material for one key record. Copyable (the EVP_PKEY is shared, read-only).
class verify_key {
public:
    verify_key() = default;
    /// An HMAC-SHA256 key over the bytes of `s`.
    static verify_key hmac(secret s);
    /// An RSA (PKCS#1 v1.5, SHA-256) or Ed25519 public key. `pkey` must match `a` (see check_public_key).
    static verify_key public_key(algorithm a, std::shared_ptr<EVP_PKEY> pkey);

    algorithm alg() const noexcept { return alg_; }
    bool valid() const noexcept { return alg_ == algorithm::hmac_sha256 ? !secret_.empty() : pkey_ != nullptr; }

    /// Verifies `sig` over `msg`. Runs the full computation even when `sig` has the wrong length (the
    /// comparison then fails), and compares MACs in constant time (CRYPTO_memcmp). Returns false for
    /// a bad signature and for any OpenSSL failure (fail closed). Never throws.
    bool verify(std::string_view msg, std::span<const std::uint8_t> sig) const noexcept;

private:
    algorithm alg_ = algorithm::hmac_sha256;
    secret secret_;
    std::shared_ptr<EVP_PKEY> pkey_;
};

/// Parses a PEM "PUBLIC KEY" (SubjectPublicKeyInfo). Returns nullptr and sets `err` on failure.
std::shared_ptr<EVP_PKEY> parse_public_key_pem(std::string_view pem, std::string& err);

/// Checks that `pkey` is usable for `a`: an "RSA" key of at least min_rsa_bits for rsa-sha256, an
/// "ED25519" key for ed25519. Returns an empty string when it is, else the reason.
std::string check_public_key(algorithm a, EVP_PKEY* pkey);

/// A process-wide throwaway key of algorithm `a` (random secret or freshly generated key pair), used
/// to spend the same work on an unknown merchant as on a known one. Built on first use (config load).
/// @throws std::runtime_error when OpenSSL cannot generate it (load time only).
const verify_key& dummy_key(algorithm a);

/// Writes the lower-case hex SHA-256 of `data` into out[0..64). Returns false on OpenSSL failure.
bool sha256_hex(std::span<const std::uint8_t> data, char out[64]) noexcept;

}  // namespace filterd::merchant_auth
