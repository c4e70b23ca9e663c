#pragma once
// enrichment: request ids, W3C trace context and timestamps. Pure functions over caller-supplied time and
// randomness, plus one CSPRNG helper; nothing here reads a clock, allocates or throws.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace filterd::enrichment {

/// Fills `out` with `n` bytes from OpenSSL's CSPRNG (RAND_bytes).
///
/// For speed, bytes are drawn from a per-thread buffer of 4 KiB that is refilled with one RAND_bytes call
/// when it runs out; every byte is handed out once and wiped as it is consumed. A forked child discards the
/// buffer it inherited (a pthread_atfork handler bumps a generation number), so parent and child never share
/// ids. @return false when RAND_bytes fails; the caller must then fail closed (no id is made up).
bool random_bytes(std::uint8_t* out, std::size_t n) noexcept;

inline constexpr std::size_t uuid_text_size = 36;
using uuid_text = std::array<char, uuid_text_size>;

/// Formats a UUIDv7 (RFC 9562 section 5.7) in lower-case 8-4-4-4-12 form:
/// 48-bit big-endian Unix time in ms (`unix_ms`, truncated to 48 bits), version 7, 12 random bits (rand_a),
/// variant 0b10, 62 random bits (rand_b). `rnd` supplies the 74 random bits (its first 10 bytes are used).
/// Ids made in the same millisecond are ordered only by their random bits (RFC 9562 method "random", no
/// counter): uniqueness rests on the 74 CSPRNG bits.
uuid_text format_uuid_v7(std::uint64_t unix_ms, const std::uint8_t (&rnd)[10]) noexcept;

inline constexpr std::size_t traceparent_size = 55;  ///< "00-" 32 "-" 16 "-" 2

/// A parsed W3C traceparent (Trace Context Level 1).
struct trace_parent {
    std::array<char, 32> trace_id{};  ///< lower-case hex
    std::array<char, 16> parent_id{};
    std::uint8_t flags = 0;
};

/// Parses a traceparent header value per W3C Trace Context:
///  * version is two lower-case hex digits and not "ff";
///  * version "00": the value is exactly 55 characters "00-<32 hex>-<16 hex>-<2 hex>", lower-case hex only;
///  * a higher version: at least 55 characters, the first 55 in the version-00 layout, and if longer the 56th
///    is '-' (the rest is ignored, as the spec tells a version-00 parser to do);
///  * trace id and parent id are not all zeros.
/// @return false when the value is invalid (the caller starts a new trace).
bool parse_traceparent(std::string_view v, trace_parent& out) noexcept;

/// Writes "00-<trace_id>-<parent_id>-<flags>" (55 characters) into `out`.
void format_traceparent(const std::array<char, 32>& trace_id, const std::array<char, 16>& parent_id, std::uint8_t flags,
                        char* out) noexcept;

/// Lower-case hex of `n` bytes into `out` (2n characters).
void to_hex(const std::uint8_t* in, std::size_t n, char* out) noexcept;

inline constexpr std::size_t rfc3339_ms_size = 24;  ///< "2026-11-26T12:00:00.123Z"

/// RFC 3339 UTC time with milliseconds, from Unix ns. Truncates toward the past (floor) to the millisecond.
/// @return false when `unix_ns` is not after 1970-01-01 or the year would exceed 9999.
bool format_rfc3339_ms(std::int64_t unix_ns, char (&out)[rfc3339_ms_size]) noexcept;

/// True for a valid inbound X-Request-Id: [A-Za-z0-9._-]{1,64}.
bool valid_request_id(std::string_view v) noexcept;

}  // namespace filterd::enrichment
