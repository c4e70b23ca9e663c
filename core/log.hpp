#pragma once
// Structured JSON log lines on stdout, one object per line:
//   {"ts":"2026-11-26T12:00:00.123Z","level":"info","msg":"...","key":"value",...}
//
// Contract: every message and every field value passes through `scrub_text` (core/scrub.hpp)
// before it is written, so card numbers, phone numbers, CNICs and IBANs are masked wherever they
// appear. Callers must still never pass secrets, signatures, Authorization values or bodies: the
// scrubber is a safety net, not a licence. Thread-safe; each line is written with one write(2).

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace filterd::log {

enum class level : std::uint8_t { debug = 0, info = 1, warn = 2, error = 3 };

struct field {
    std::string_view key;
    std::string value;
    bool raw_number = false;  // emit without quotes (value must be a JSON number)

    field(std::string_view k, std::string_view v) : key(k), value(v) {}
    field(std::string_view k, const std::string& v) : key(k), value(v) {}
    field(std::string_view k, const char* v) : key(k), value(v) {}
    template <class N, class = std::enable_if_t<std::is_arithmetic_v<N>>>
    field(std::string_view k, N n) : key(k),
                                     value(std::to_string(n)),
                                     raw_number(true) {}
};

void set_level(level l) noexcept;
level current_level() noexcept;
bool parse_level(std::string_view s, level& out) noexcept;

/// Redirects output to a file descriptor (default 1, stdout). For tests.
void set_fd(int fd) noexcept;

void write(level l, std::string_view msg, std::initializer_list<field> fields = {}) noexcept;

inline void debug(std::string_view m, std::initializer_list<field> f = {}) noexcept { write(level::debug, m, f); }
inline void info(std::string_view m, std::initializer_list<field> f = {}) noexcept { write(level::info, m, f); }
inline void warn(std::string_view m, std::initializer_list<field> f = {}) noexcept { write(level::warn, m, f); }
inline void error(std::string_view m, std::initializer_list<field> f = {}) noexcept { write(level::error, m, f); }

/// Rate limit for log lines that a client can cause once per request (denials, unknown routes):
/// at most one line per interval goes through, and that line reports how many were held back since
/// the previous one. A flood therefore costs one line per interval, never one per request; the
/// exact counts are in the metrics. Thread-safe and lock-free. An interval of 0 lets every line
/// through.
class throttle {
public:
    /// Sets the interval for every throttle (config `log.per_request_interval_ms`).
    static void set_interval_ns(std::int64_t ns) noexcept;
    static std::int64_t interval_ns() noexcept;

    /// True when a line may be written at `now_ns` (monotonic); `suppressed` then receives the
    /// number of lines held back since the last one admitted. False: the caller writes nothing.
    bool admit(std::int64_t now_ns, std::uint64_t& suppressed) noexcept;

private:
    std::atomic<std::int64_t> next_ns_{0};
    std::atomic<std::uint64_t> held_{0};
};

/// Formats one line without writing it (used by write and by tests).
std::string format_line(level l, std::string_view msg, std::initializer_list<field> fields);

}  // namespace filterd::log
