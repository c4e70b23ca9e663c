#pragma once
// SipHash-2-4 (Aumasson & Bernstein), a keyed 64-bit hash, used to turn rate-limit keys (client IPs,
// merchant ids, header values: all attacker-influenced) into table keys.
//
// Why keyed: the tables store only the 64-bit hash, never the key text, so two keys with one hash share a
// bucket. With a random 128-bit key chosen per policy table at creation, a client cannot aim a collision
// at another client's bucket, nor pile keys into one shard. A collision can only make limiting stricter,
// never looser. Written from the published algorithm; tests check the reference vector.

#include <array>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace filterd::rate_limit {

class siphash24 {
public:
    /// @param k0,k1  the 128-bit key, little-endian halves.
    siphash24(std::uint64_t k0, std::uint64_t k1) noexcept
        : v0_(k0 ^ 0x736f6d6570736575ULL),
          v1_(k1 ^ 0x646f72616e646f6dULL),
          v2_(k0 ^ 0x6c7967656e657261ULL),
          v3_(k1 ^ 0x7465646279746573ULL) {}

    /// Appends bytes. May be called any number of times.
    void update(std::string_view s) noexcept {
        const auto* p = reinterpret_cast<const unsigned char*>(s.data());
        std::size_t n = s.size();
        total_ += n;
        while (n > 0 && fill_ != 0) {  // complete a partial word first
            buf_[fill_++] = *p++;
            --n;
            if (fill_ == 8) {
                compress(load(buf_.data()));
                fill_ = 0;
            }
        }
        for (; n >= 8; n -= 8, p += 8)
            compress(load(p));
        for (; n > 0; --n)
            buf_[fill_++] = *p++;
    }

    /// The hash of everything appended. Call once.
    std::uint64_t finish() noexcept {
        std::uint64_t last = static_cast<std::uint64_t>(total_ & 0xff) << 56;
        for (std::size_t i = 0; i < fill_; ++i)
            last |= static_cast<std::uint64_t>(buf_[i]) << (8 * i);
        compress(last);
        v2_ ^= 0xff;
        for (int i = 0; i < 4; ++i)
            round();
        return v0_ ^ v1_ ^ v2_ ^ v3_;
    }

private:
    static std::uint64_t rotl(std::uint64_t x, int b) noexcept { return (x << b) | (x >> (64 - b)); }
    static std::uint64_t load(const unsigned char* p) noexcept {
        std::uint64_t w = 0;
        for (int i = 7; i >= 0; --i)
            w = (w << 8) | p[i];
        return w;
    }
    void round() noexcept {
        v0_ += v1_;
        v1_ = rotl(v1_, 13);
        v1_ ^= v0_;
        v0_ = rotl(v0_, 32);
        v2_ += v3_;
        v3_ = rotl(v3_, 16);
        v3_ ^= v2_;
        v0_ += v3_;
        v3_ = rotl(v3_, 21);
        v3_ ^= v0_;
        v2_ += v1_;
        v1_ = rotl(v1_, 17);
        v1_ ^= v2_;
        v2_ = rotl(v2_, 32);
    }
    void compress(std::uint64_t m) noexcept {
        v3_ ^= m;
        round();
        round();
        v0_ ^= m;
    }

    std::uint64_t v0_, v1_, v2_, v3_;
    std::array<unsigned char, 8> buf_{};
    std::size_t fill_ = 0;
    std::uint64_t total_ = 0;
};

}  // namespace filterd::rate_limit
