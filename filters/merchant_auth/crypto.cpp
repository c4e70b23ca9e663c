#include "filters/merchant_auth/crypto.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <array>
#include <stdexcept>

namespace filterd::merchant_auth {

namespace {

// Algorithms fetched once per process: EVP_sha256()/HMAC() would look them up on every call.
EVP_MD* sha256_md() noexcept {
    static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return md;
}

EVP_MAC* hmac_mac() noexcept {
    static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    return mac;
}

// Per-thread contexts, created on first use and reused for every request on that thread.
struct thread_ctx {
    EVP_MD_CTX* digest = nullptr;  // body hash
    EVP_MD_CTX* verify = nullptr;  // RSA / Ed25519 DigestVerify
    EVP_MAC_CTX* mac = nullptr;    // HMAC-SHA256 (digest parameter set once)

    thread_ctx() {
        digest = EVP_MD_CTX_new();
        verify = EVP_MD_CTX_new();
        if (EVP_MAC* m = hmac_mac()) {
            mac = EVP_MAC_CTX_new(m);
            char name[] = "SHA256";
            OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, name, 0),
                                   OSSL_PARAM_construct_end()};
            if (mac != nullptr && EVP_MAC_CTX_set_params(mac, params) != 1) {
                EVP_MAC_CTX_free(mac);
                mac = nullptr;
            }
        }
    }
    ~thread_ctx() {
        EVP_MD_CTX_free(digest);
        EVP_MD_CTX_free(verify);
        EVP_MAC_CTX_free(mac);
    }
    thread_ctx(const thread_ctx&) = delete;
    thread_ctx& operator=(const thread_ctx&) = delete;
};

thread_ctx& tls() noexcept {
    thread_local thread_ctx t;
    return t;
}

void pkey_free(EVP_PKEY* p) noexcept { EVP_PKEY_free(p); }

}  // namespace

std::string_view to_string(algorithm a) noexcept {
    switch (a) {
    case algorithm::hmac_sha256: return "hmac-sha256";
    case algorithm::rsa_sha256: return "rsa-sha256";
    case algorithm::ed25519: return "ed25519";
    }
    return "?";
}

bool parse_algorithm(std::string_view s, algorithm& out) noexcept {
    if (s == "hmac-sha256")
        out = algorithm::hmac_sha256;
    else if (s == "rsa-sha256")
        out = algorithm::rsa_sha256;
    else if (s == "ed25519")
        out = algorithm::ed25519;
    else
        return false;
    return true;
}

verify_key verify_key::hmac(secret s) {
    verify_key k;
    k.alg_ = algorithm::hmac_sha256;
    k.secret_ = std::move(s);
    return k;
}

verify_key verify_key::public_key(algorithm a, std::shared_ptr<EVP_PKEY> pkey) {
    verify_key k;
    k.alg_ = a;
    k.pkey_ = std::move(pkey);
    return k;
}

bool verify_key::verify(std::string_view msg, std::span<const std::uint8_t> sig) const noexcept {
    thread_ctx& t = tls();
    const auto* m = reinterpret_cast<const unsigned char*>(msg.data());
    if (alg_ == algorithm::hmac_sha256) {
        if (t.mac == nullptr || secret_.empty())
            return false;
        std::array<unsigned char, 32> mac{};
        std::size_t len = 0;
        auto key = secret_.reveal();
        if (EVP_MAC_init(t.mac, reinterpret_cast<const unsigned char*>(key.data()), key.size(), nullptr) != 1 ||
            EVP_MAC_update(t.mac, m, msg.size()) != 1 || EVP_MAC_final(t.mac, mac.data(), &len, mac.size()) != 1 ||
            len != mac.size()) {
            ERR_clear_error();
            return false;
        }
        // Always compare 32 bytes so a wrong-length signature costs the same; then reject it.
        std::array<unsigned char, 32> given{};
        std::copy_n(sig.data(), std::min(sig.size(), given.size()), given.data());
        bool equal = CRYPTO_memcmp(mac.data(), given.data(), mac.size()) == 0;
        OPENSSL_cleanse(mac.data(), mac.size());
        return equal && sig.size() == mac.size();
    }
    if (t.verify == nullptr || pkey_ == nullptr)
        return false;
    // RSA: PKCS#1 v1.5 is the default padding of an "RSA" key; Ed25519 takes no digest (pure EdDSA).
    const EVP_MD* md = alg_ == algorithm::rsa_sha256 ? sha256_md() : nullptr;
    bool ok = EVP_DigestVerifyInit_ex(t.verify, nullptr, md != nullptr ? EVP_MD_get0_name(md) : nullptr, nullptr,
                                      nullptr, pkey_.get(), nullptr) == 1 &&
              EVP_DigestVerify(t.verify, sig.data(), sig.size(), m, msg.size()) == 1;
    EVP_MD_CTX_reset(t.verify);
    if (!ok)
        ERR_clear_error();
    return ok;
}

std::shared_ptr<EVP_PKEY> parse_public_key_pem(std::string_view pem, std::string& err) {
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    if (bio == nullptr) {
        err = "out of memory";
        return nullptr;
    }
    EVP_PKEY* p = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    ERR_clear_error();
    if (p == nullptr) {
        err = "is not a PEM public key (expected -----BEGIN PUBLIC KEY-----)";
        return nullptr;
    }
    return std::shared_ptr<EVP_PKEY>(p, pkey_free);
}

std::string check_public_key(algorithm a, EVP_PKEY* pkey) {
    switch (a) {
    case algorithm::rsa_sha256:
        if (EVP_PKEY_is_a(pkey, "RSA") != 1)
            return "alg rsa-sha256 needs an RSA public key";
        if (EVP_PKEY_get_bits(pkey) < min_rsa_bits)
            return "RSA key has " + std::to_string(EVP_PKEY_get_bits(pkey)) + " bits; at least " +
                   std::to_string(min_rsa_bits) + " are required";
        return {};
    case algorithm::ed25519:
        if (EVP_PKEY_is_a(pkey, "ED25519") != 1)
            return "alg ed25519 needs an Ed25519 public key";
        return {};
    case algorithm::hmac_sha256: return "alg hmac-sha256 takes a secret, not a public key";
    }
    return "unknown algorithm";
}

const verify_key& dummy_key(algorithm a) {
    auto make = [](algorithm alg) {
        if (alg == algorithm::hmac_sha256) {
            std::string s(32, '\0');
            if (RAND_bytes(reinterpret_cast<unsigned char*>(s.data()), static_cast<int>(s.size())) != 1)
                throw std::runtime_error("merchant-auth: RAND_bytes failed");
            return verify_key::hmac(secret(std::move(s)));
        }
        EVP_PKEY* p = alg == algorithm::rsa_sha256 ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048})
                                                   : EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
        if (p == nullptr)
            throw std::runtime_error("merchant-auth: cannot generate a dummy key");
        return verify_key::public_key(alg, std::shared_ptr<EVP_PKEY>(p, pkey_free));
    };
    static const verify_key hmac = make(algorithm::hmac_sha256);
    if (a == algorithm::hmac_sha256)
        return hmac;
    if (a == algorithm::ed25519) {
        static const verify_key ed = make(algorithm::ed25519);
        return ed;
    }
    static const verify_key rsa = make(algorithm::rsa_sha256);
    return rsa;
}

bool sha256_hex(std::span<const std::uint8_t> data, char out[64]) noexcept {
    static constexpr char hex[] = "0123456789abcdef";
    thread_ctx& t = tls();
    std::array<unsigned char, 32> d{};
    unsigned int len = 0;
    if (t.digest == nullptr || sha256_md() == nullptr || EVP_DigestInit_ex2(t.digest, sha256_md(), nullptr) != 1 ||
        EVP_DigestUpdate(t.digest, data.data(), data.size()) != 1 ||
        EVP_DigestFinal_ex(t.digest, d.data(), &len) != 1 || len != d.size()) {
        ERR_clear_error();
        return false;
    }
    for (std::size_t i = 0; i < d.size(); ++i) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 0xf];
    }
    return true;
}

}  // namespace filterd::merchant_auth
