#include "filters/enrichment/ids.hpp"

#include "filters/common/syntax.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <atomic>
#include <cstring>
#include <pthread.h>

namespace filterd::enrichment {
namespace {

constexpr char hex_digits[] = "0123456789abcdef";

std::atomic<std::uint64_t> g_fork_generation{0};

void on_fork_child() noexcept { g_fork_generation.fetch_add(1, std::memory_order_relaxed); }

struct rng_buffer {
    static constexpr std::size_t size = 4096;
    std::uint8_t bytes[size];
    std::size_t used = size;  // empty until first use
    std::uint64_t generation = 0;

    ~rng_buffer() { OPENSSL_cleanse(bytes, size); }
};

bool is_lower_hex(char c) noexcept { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool all_lower_hex(std::string_view s) noexcept {
    for (char c : s)
        if (!is_lower_hex(c))
            return false;
    return true;
}

bool all_zero(std::string_view s) noexcept {
    for (char c : s)
        if (c != '0')
            return false;
    return true;
}

std::uint8_t hex_value(char c) noexcept { return static_cast<std::uint8_t>(c <= '9' ? c - '0' : c - 'a' + 10); }

void put2(char* p, unsigned v) noexcept {
    p[0] = static_cast<char>('0' + v / 10);
    p[1] = static_cast<char>('0' + v % 10);
}

}  // namespace

bool random_bytes(std::uint8_t* out, std::size_t n) noexcept {
    static const bool atfork_registered = (pthread_atfork(nullptr, nullptr, &on_fork_child) == 0);
    (void)atfork_registered;  // without it a fork child could reuse buffered bytes; filterd does not fork
    thread_local rng_buffer buf;
    const std::uint64_t gen = g_fork_generation.load(std::memory_order_relaxed);
    if (buf.generation != gen) {
        OPENSSL_cleanse(buf.bytes, rng_buffer::size);
        buf.used = rng_buffer::size;
        buf.generation = gen;
    }
    if (n > rng_buffer::size)
        return RAND_bytes(out, static_cast<int>(n)) == 1;
    if (rng_buffer::size - buf.used < n) {
        if (RAND_bytes(buf.bytes, static_cast<int>(rng_buffer::size)) != 1) {
            buf.used = rng_buffer::size;
            return false;
        }
        buf.used = 0;
    }
    std::memcpy(out, buf.bytes + buf.used, n);
    OPENSSL_cleanse(buf.bytes + buf.used, n);
    buf.used += n;
    return true;
}

void to_hex(const std::uint8_t* in, std::size_t n, char* out) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
        out[2 * i] = hex_digits[in[i] >> 4];
        out[2 * i + 1] = hex_digits[in[i] & 0xf];
    }
}

uuid_text format_uuid_v7(std::uint64_t unix_ms, const std::uint8_t (&rnd)[10]) noexcept {
    std::uint8_t b[16];
    for (int i = 0; i < 6; ++i)
        b[i] = static_cast<std::uint8_t>(unix_ms >> (8 * (5 - i)));
    b[6] = static_cast<std::uint8_t>(0x70 | (rnd[0] & 0x0f));  // version 7, rand_a high nibble
    b[7] = rnd[1];                                             // rand_a low byte
    b[8] = static_cast<std::uint8_t>(0x80 | (rnd[2] & 0x3f));  // variant 0b10, rand_b
    std::memcpy(b + 9, rnd + 3, 7);
    uuid_text t;
    char* p = t.data();
    for (int i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex_digits[b[i] >> 4];
        *p++ = hex_digits[b[i] & 0xf];
    }
    return t;
}

bool parse_traceparent(std::string_view v, trace_parent& out) noexcept {
    if (v.size() < traceparent_size)
        return false;
    const std::string_view version = v.substr(0, 2);
    if (!all_lower_hex(version) || version == "ff")
        return false;
    if (version == "00" && v.size() != traceparent_size)
        return false;
    if (v.size() > traceparent_size && v[traceparent_size] != '-')
        return false;
    if (v[2] != '-' || v[35] != '-' || v[52] != '-')
        return false;
    const std::string_view trace = v.substr(3, 32), parent = v.substr(36, 16), flags = v.substr(53, 2);
    if (!all_lower_hex(trace) || !all_lower_hex(parent) || !all_lower_hex(flags))
        return false;
    if (all_zero(trace) || all_zero(parent))
        return false;
    std::memcpy(out.trace_id.data(), trace.data(), 32);
    std::memcpy(out.parent_id.data(), parent.data(), 16);
    out.flags = static_cast<std::uint8_t>(hex_value(flags[0]) << 4 | hex_value(flags[1]));
    return true;
}

void format_traceparent(const std::array<char, 32>& trace_id, const std::array<char, 16>& parent_id, std::uint8_t flags,
                        char* out) noexcept {
    out[0] = '0';
    out[1] = '0';
    out[2] = '-';
    std::memcpy(out + 3, trace_id.data(), 32);
    out[35] = '-';
    std::memcpy(out + 36, parent_id.data(), 16);
    out[52] = '-';
    out[53] = hex_digits[flags >> 4];
    out[54] = hex_digits[flags & 0xf];
}

bool format_rfc3339_ms(std::int64_t unix_ns, char (&out)[rfc3339_ms_size]) noexcept {
    if (unix_ns <= 0)
        return false;
    const std::int64_t ms_total = unix_ns / 1'000'000;
    const std::int64_t secs = ms_total / 1000;
    const unsigned ms = static_cast<unsigned>(ms_total % 1000);
    const std::int64_t days = secs / 86400;
    const unsigned sod = static_cast<unsigned>(secs % 86400);
    // Civil date from days since 1970-01-01 (H. Hinnant's days_from_civil inverse); days >= 0 here.
    const std::int64_t z = days + 719468;
    const std::int64_t era = z / 146097;
    const unsigned doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2)
        ++y;
    if (y > 9999)
        return false;
    const unsigned yy = static_cast<unsigned>(y);
    put2(out, yy / 100);
    put2(out + 2, yy % 100);
    out[4] = '-';
    put2(out + 5, m);
    out[7] = '-';
    put2(out + 8, d);
    out[10] = 'T';
    put2(out + 11, sod / 3600);
    out[13] = ':';
    put2(out + 14, sod / 60 % 60);
    out[16] = ':';
    put2(out + 17, sod % 60);
    out[19] = '.';
    out[20] = static_cast<char>('0' + ms / 100);
    put2(out + 21, ms % 100);
    out[23] = 'Z';
    return true;
}

bool valid_request_id(std::string_view v) noexcept { return syntax::is_identifier(v, 64, "._-"); }

}  // namespace filterd::enrichment
