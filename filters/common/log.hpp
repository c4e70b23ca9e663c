#pragma once
// Structured JSON log lines on stdout, one object per line:
//   {"ts":"2026-11-26T12:00:00.123Z","level":"info","msg":"...","key":"value",...}
//
// Contract: every message and every field value passes through `scrub_text` (filters/common/scrub.hpp)
// before it is written, so card numbers, phone numbers, CNICs and IBANs are masked wherever they
// appear. Callers must still never pass secrets, signatures, Authorization values or bodies: the
// scrubber is a safety net, not a licence. Thread-safe; each line is written with one write(2).

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
    field(std::string_view k, N n) : key(k), value(std::to_string(n)), raw_number(true) {}
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

/// Formats one line without writing it (used by write and by tests).
std::string format_line(level l, std::string_view msg, std::initializer_list<field> fields);

}  // namespace filterd::log
