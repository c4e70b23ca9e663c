#pragma once
// The daemon configuration (schema: docs/configuration.md; example: conf/filterd.example.json).
//
// load_config() validates the whole document before anything uses it and throws config_error naming
// the offending key. Sections:
//   listen   {socket, mode, allowed_uids}                 start-up only
//   admin    {address, port, enabled}                     start-up only; address must be loopback
//   io_threads                                            start-up only
//   limits   {max_frame_bytes, max_in_flight_per_connection, max_connections,
//             stall_timeout_ms, drain_timeout_ms}         reloadable (applies to new work)
//   log      {level, per_request_interval_ms}             reloadable
//   filters, routes                                       reloadable (filters/common/chain.hpp)

#include "filters/common/chain.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace filterd {

struct listen_config {
    std::string socket_path;
    unsigned mode = 0660;
    /// Peer uids (SO_PEERCRED) allowed to connect. Never empty: when the key is absent it holds
    /// filterd's own effective uid only; a pod config lists the gateway container's uid.
    std::vector<std::uint32_t> allowed_uids;
};

struct admin_config {
    bool enabled = true;
    std::string address = "127.0.0.1";
    std::uint16_t port = 9901;
};

struct limits_config {
    std::uint32_t max_frame_bytes = 1u << 20;
    std::uint32_t max_in_flight_per_connection = 256;
    std::uint32_t max_connections = 64;
    std::chrono::milliseconds stall_timeout{2000};
    std::chrono::milliseconds drain_timeout{5000};
};

/// One fully validated configuration generation.
struct daemon_config {
    listen_config listen;
    admin_config admin;
    unsigned io_threads = 2;
    /// The CPU slice each I/O thread asks the kernel's fair scheduler for (EEVDF, Linux 6.12+): a
    /// shorter slice than other tasks' lets a woken I/O thread run before they finish theirs. 0: the
    /// kernel's default.
    std::chrono::microseconds io_thread_slice{100};
    limits_config limits;
    std::string log_level = "info";
    /// At most one per-request line (denial, unknown route or filter) per interval; 0 = every one.
    std::chrono::milliseconds log_per_request_interval{1000};
    std::shared_ptr<const filter_set> filters;
};

/// Reads and validates `path`. `socket_override` (from --socket) replaces listen.socket.
/// `previous` carries filter state across a reload. @throws config_error.
std::shared_ptr<const daemon_config> load_config(const std::string& path, const std::string& socket_override,
                                                 const registry& reg, const daemon_config* previous);

/// Same, from JSON text (tests).
std::shared_ptr<const daemon_config> load_config_text(std::string_view text, const std::string& socket_override,
                                                      const registry& reg, const daemon_config* previous);

}  // namespace filterd
