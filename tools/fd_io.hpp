#pragma once
// Blocking whole-buffer socket I/O for the tools and benchmarks that play a protocol peer
// (filterd-loadgen, perf/daemon_bench). Not used by the daemon, which is asynchronous.

#include "protocol/framing.hpp"

#include <cerrno>
#include <cstdint>
#include <vector>
#include <sys/socket.h>
#include <unistd.h>

namespace filterd::tools {

/// Writes all `n` bytes (retrying on EINTR, no SIGPIPE). False when the peer is gone.
inline bool write_all(int fd, const std::uint8_t* p, std::size_t n) {
    while (n > 0) {
        ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

/// Reads exactly `n` bytes (retrying on EINTR). False on EOF or error.
inline bool read_all(int fd, std::uint8_t* p, std::size_t n) {
    while (n > 0) {
        ssize_t r = ::recv(fd, p, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        p += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}

/// Reads one length-prefixed frame body into `body`, refusing a length of 0 or above `limit`.
inline bool read_frame(int fd, std::vector<std::uint8_t>& body, std::uint32_t limit) {
    std::uint8_t len[proto::length_bytes];
    if (!read_all(fd, len, sizeof len))
        return false;
    std::uint32_t n = proto::read_length(len);
    if (proto::check_length(n, limit) != proto::frame_status::ok)
        return false;
    body.resize(n);
    return read_all(fd, body.data(), n);
}

}  // namespace filterd::tools
