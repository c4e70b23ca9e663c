#pragma once
// Blocking whole-buffer I/O on a file descriptor: the one loop that retries EINTR and short counts.
//
// Used by the nonce journal (files), and by the tools and benchmarks that play a protocol peer over
// a blocking socket (filterd-loadgen, perf/daemon_bench). The daemon's socket I/O is asynchronous and
// does not use it.

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

namespace filterd::fd_io {

/// Calls `op(p, n)` (a read(2)- or write(2)-like call returning ssize_t) until all `n` bytes are
/// done, retrying on EINTR. @return false on an error, or when `op` returns 0 (EOF, peer gone).
template <class Byte, class Op>
bool transfer_all(Byte* p, std::size_t n, Op op) noexcept {
    while (n > 0) {
        ssize_t done = op(p, n);
        if (done < 0 && errno == EINTR)
            continue;
        if (done <= 0)
            return false;
        p += done;
        n -= static_cast<std::size_t>(done);
    }
    return true;
}

/// Writes all `n` bytes to a file or pipe with write(2). False on an error (errno says which).
inline bool write_all(int fd, const std::uint8_t* p, std::size_t n) noexcept {
    return transfer_all(p, n, [fd](const std::uint8_t* b, std::size_t k) { return ::write(fd, b, k); });
}

/// Sends all `n` bytes on a socket (MSG_NOSIGNAL: a closed peer is an error, not SIGPIPE).
/// False when the peer is gone.
inline bool send_all(int fd, const std::uint8_t* p, std::size_t n) noexcept {
    return transfer_all(p, n, [fd](const std::uint8_t* b, std::size_t k) { return ::send(fd, b, k, MSG_NOSIGNAL); });
}

/// Receives exactly `n` bytes from a socket. False on EOF or an error.
inline bool recv_all(int fd, std::uint8_t* p, std::size_t n) noexcept {
    return transfer_all(p, n, [fd](std::uint8_t* b, std::size_t k) { return ::recv(fd, b, k, 0); });
}

}  // namespace filterd::fd_io
