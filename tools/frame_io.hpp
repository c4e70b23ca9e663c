#pragma once
// Blocking frame reads for the tools and benchmarks that play a protocol peer (filterd-loadgen,
// perf/daemon_bench). Not used by the daemon, which is asynchronous.

#include "core/fd_io.hpp"
#include "protocol/framing.hpp"

#include <cstdint>
#include <vector>

namespace filterd::tools {

/// Reads one length-prefixed frame body into `body`, refusing a length of 0 or above `limit`.
inline bool read_frame(int fd, std::vector<std::uint8_t>& body, std::uint32_t limit) {
    std::uint8_t len[proto::length_bytes];
    if (!fd_io::recv_all(fd, len, sizeof len))
        return false;
    std::uint32_t n = proto::read_length(len);
    if (proto::check_length(n, limit) != proto::frame_status::ok)
        return false;
    body.resize(n);
    return fd_io::recv_all(fd, body.data(), n);
}

}  // namespace filterd::tools
