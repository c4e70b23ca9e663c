#include "core/log.hpp"

#include "core/scrub.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <unistd.h>

namespace filterd::log {
namespace {

std::atomic<int> g_level{static_cast<int>(level::info)};
std::atomic<int> g_fd{1};

const char* level_name(level l) {
    switch (l) {
    case level::debug: return "debug";
    case level::info: return "info";
    case level::warn: return "warn";
    case level::error: return "error";
    }
    return "error";
}

void append_escaped(std::string& out, std::string_view s) {
    static const char* hex = "0123456789abcdef";
    for (unsigned char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20 || c == 0x7f) {
                out += "\\u00";
                out += hex[c >> 4];
                out += hex[c & 0xf];
            } else {
                out += static_cast<char>(c);
            }
        }
    }
}

void append_timestamp(std::string& out) {
    auto now = std::chrono::system_clock::now();
    auto secs = std::chrono::time_point_cast<std::chrono::seconds>(now);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - secs).count();
    std::time_t t = std::chrono::system_clock::to_time_t(secs);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[80];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
    out += buf;
}

}  // namespace

void set_level(level l) noexcept { g_level.store(static_cast<int>(l), std::memory_order_relaxed); }
level current_level() noexcept { return static_cast<level>(g_level.load(std::memory_order_relaxed)); }
void set_fd(int fd) noexcept { g_fd.store(fd, std::memory_order_relaxed); }

bool parse_level(std::string_view s, level& out) noexcept {
    if (s == "debug")
        out = level::debug;
    else if (s == "info")
        out = level::info;
    else if (s == "warn")
        out = level::warn;
    else if (s == "error")
        out = level::error;
    else
        return false;
    return true;
}

std::string format_line(level l, std::string_view msg, std::initializer_list<field> fields) {
    std::string out;
    out.reserve(128 + msg.size());
    out += "{\"ts\":\"";
    append_timestamp(out);
    out += "\",\"level\":\"";
    out += level_name(l);
    out += "\",\"msg\":\"";
    append_escaped(out, scrub_text(msg));
    out += '"';
    for (const auto& f : fields) {
        out += ",\"";
        append_escaped(out, f.key);
        out += "\":";
        if (f.raw_number) {
            // A number can be a card number or a CNIC too: scrub it, and quote what the scrubber masked.
            std::string v = scrub_text(f.value);
            if (v == f.value) {
                out += f.value;
            } else {
                out += '"';
                append_escaped(out, v);
                out += '"';
            }
        } else {
            out += '"';
            append_escaped(out, scrub_text(f.value));
            out += '"';
        }
    }
    out += "}\n";
    return out;
}

void write(level l, std::string_view msg, std::initializer_list<field> fields) noexcept {
    if (static_cast<int>(l) < g_level.load(std::memory_order_relaxed))
        return;
    try {
        std::string line = format_line(l, msg, fields);
        const char* p = line.data();
        std::size_t left = line.size();
        int fd = g_fd.load(std::memory_order_relaxed);
        while (left > 0) {
            ssize_t n = ::write(fd, p, left);
            if (n <= 0)
                break;
            p += n;
            left -= static_cast<std::size_t>(n);
        }
    } catch (...) {
        // Logging must never take the daemon down; a line lost to allocation failure is the lesser evil.
    }
}

namespace {
std::atomic<std::int64_t> g_throttle_interval_ns{1'000'000'000};
}  // namespace

void throttle::set_interval_ns(std::int64_t ns) noexcept { g_throttle_interval_ns.store(ns < 0 ? 0 : ns); }
std::int64_t throttle::interval_ns() noexcept { return g_throttle_interval_ns.load(std::memory_order_relaxed); }

bool throttle::admit(std::int64_t now_ns, std::uint64_t& suppressed) noexcept {
    std::int64_t next = next_ns_.load(std::memory_order_relaxed);
    if (now_ns < next || !next_ns_.compare_exchange_strong(next, now_ns + interval_ns(), std::memory_order_relaxed)) {
        held_.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    suppressed = held_.exchange(0, std::memory_order_relaxed);
    return true;
}

}  // namespace filterd::log
