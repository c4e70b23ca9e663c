#pragma once
// Framing and encoding of the filterd wire protocol (docs/protocol.md).
//
// A frame is a 4-byte big-endian length N, then N bytes holding one FlatBuffers buffer with root
// `filterd.wire.Frame` and file identifier "SPF1". Nothing here does I/O or throws on peer input.

#include "protocol/filterd_generated.h"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace filterd::proto {

inline constexpr std::uint16_t protocol_version = 1;
inline constexpr std::size_t length_bytes = 4;
/// Smallest and largest maximum frame size either side may negotiate.
inline constexpr std::uint32_t min_frame_limit = 4096;
inline constexpr std::uint32_t max_frame_limit = 16u << 20;
/// Largest nesting/table count the Verifier accepts (bounds its work on hostile input).
inline constexpr std::uint32_t verifier_max_depth = 16;
inline constexpr std::uint32_t verifier_max_tables = 100'000;

/// Capability bits (HelloAck.capabilities is the intersection of both sides).
inline constexpr std::uint64_t cap_filter_timings = 1u << 0;  ///< responses carry FilterResult entries

inline std::uint32_t read_length(const std::uint8_t* p) noexcept {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}
inline void write_length(std::uint8_t* p, std::uint32_t n) noexcept {
    p[0] = static_cast<std::uint8_t>(n >> 24);
    p[1] = static_cast<std::uint8_t>(n >> 16);
    p[2] = static_cast<std::uint8_t>(n >> 8);
    p[3] = static_cast<std::uint8_t>(n);
}

enum class frame_status : std::uint8_t {
    ok,
    too_large,       ///< length prefix above the limit (detected before the body is read)
    empty,           ///< length prefix of zero
    bad_identifier,  ///< buffer does not carry "SPF1"
    verify_failed,   ///< FlatBuffers Verifier rejected the buffer
    no_body,         ///< a valid Frame with no union member
};
std::string_view to_string(frame_status s) noexcept;

/// Checks a length prefix against the negotiated limit.
frame_status check_length(std::uint32_t n, std::uint32_t limit) noexcept;

/// Verifies one frame body (without the length prefix). Returns the root on success, nullptr and
/// `status` otherwise. The Verifier runs before any field is read.
const wire::Frame* verify_frame(std::span<const std::uint8_t> body, frame_status& status) noexcept;

/// Splits a byte stream into frames. Feed it what the socket gave; it hands out complete frame
/// bodies in order. It never buffers more than `limit` + 4 bytes of one frame.
class frame_splitter {
public:
    explicit frame_splitter(std::uint32_t limit) : limit_(limit) {}
    void set_limit(std::uint32_t limit) noexcept { limit_ = limit; }

    /// Space to read into: at least `min` bytes.
    std::span<std::uint8_t> prepare(std::size_t min = 4096);
    /// Marks `n` bytes of the prepared space as received.
    void commit(std::size_t n) noexcept { end_ += n; }

    enum class next_result : std::uint8_t { frame, need_more, error };
    /// Extracts the next complete frame into `out`: a view, 8-byte aligned in memory (as FlatBuffers
    /// needs), valid until the next call to next() or prepare().
    next_result next(std::span<const std::uint8_t>& out, frame_status& err) noexcept;

    /// Bytes still missing from the frame under way: 0 while its length prefix is incomplete, when the
    /// frame is complete, or when the prefix is over the limit (next() reports that). A reader that
    /// prepares this much room takes the rest of a large frame in one read when the socket holds it.
    std::size_t missing() const noexcept {
        std::size_t avail = end_ - begin_;
        if (avail < length_bytes)
            return 0;
        std::uint32_t n = read_length(buf_.data() + begin_);
        if (n > limit_ || avail - length_bytes >= n)
            return 0;
        return length_bytes + n - avail;
    }
    /// True when bytes of an unfinished frame are buffered (a peer stalling here is timed out).
    bool mid_frame() const noexcept { return end_ > begin_; }
    /// True when next() would hand out a whole frame (or report an error) without more input.
    bool frame_ready() const noexcept {
        std::size_t avail = end_ - begin_;
        return avail >= length_bytes && avail - length_bytes >= read_length(buf_.data() + begin_);
    }

private:
    std::vector<std::uint8_t> buf_;
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
    std::uint32_t limit_;
};

// ---- encoding helpers (daemon replies; tests, tools and benchmarks build requests) -----------------

struct header_spec {
    std::string name;
    std::vector<std::string> values;
};

struct request_spec {
    std::uint64_t id = 1;
    std::uint32_t budget_us = 5000;
    std::string route;
    std::vector<std::string> filters;
    std::string method = "GET";
    std::string path = "/";
    std::vector<std::pair<std::string, std::string>> query;
    std::vector<header_spec> headers;
    std::string client_ip = "127.0.0.1";
    std::string body;
    std::vector<std::pair<std::string, std::string>> path_params;
    std::optional<std::string> body_sha256;  ///< raw digest bytes; sent as body_sha256 when set
};

/// A header of a response: views into the caller's strings, valid for the encode call only.
struct header_view {
    std::string_view name;
    std::string_view value;
};

/// One filter's outcome and time, as the FilterResponse's `filters` list reports it.
struct filter_timing_view {
    std::string_view filter;
    wire::FilterOutcome outcome = wire::FilterOutcome::Allow;
    std::uint32_t elapsed_ns = 0;
};

/// Everything a FilterResponse carries. An allow carries set/remove headers and no deny fields; a deny
/// carries status, headers, body and content type and no set/remove headers. `timings` is sent only
/// when `with_timings` (the capability negotiated in Hello). Views: valid for the encode call only.
struct response_view {
    std::uint64_t id = 0;
    bool allowed = false;
    std::span<const header_view> set_headers;
    std::span<const std::string_view> remove_headers;
    std::uint16_t deny_status = 0;
    std::span<const header_view> deny_headers;
    std::string_view deny_body;
    std::string_view deny_content_type;
    bool with_timings = false;
    std::span<const filter_timing_view> timings;
};

/// A whole frame, length prefix included.
std::vector<std::uint8_t> encode_request(const request_spec& r);
/// A FilterResponse frame. Each header goes out with one value.
std::vector<std::uint8_t> encode_response(const response_view& r);
std::vector<std::uint8_t> encode_hello(std::uint16_t vmin, std::uint16_t vmax, std::uint32_t max_frame,
                                       std::uint64_t caps, std::string_view client_name);
std::vector<std::uint8_t> encode_hello_ack(std::uint16_t version, std::uint32_t max_frame, std::uint64_t caps,
                                           std::uint32_t max_in_flight);
std::vector<std::uint8_t> encode_error(std::uint64_t id, wire::ErrorCode code, std::string_view message);

/// Prepends the 4-byte length to a finished builder's buffer.
std::vector<std::uint8_t> to_frame(const flatbuffers::FlatBufferBuilder& b);

}  // namespace filterd::proto
