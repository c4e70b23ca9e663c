#pragma once
// Test-side protocol client over a real Unix socket (blocking POSIX I/O with poll timeouts), plus
// small test-only filters and an in-process daemon fixture.

#include "daemon/config.hpp"
#include "daemon/server.hpp"
#include "filters/common/filter.hpp"
#include "protocol/framing.hpp"

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace filterd::testing {

/// A decoded frame received by the client (the buffer owns the bytes the view points into).
struct received {
    std::vector<std::uint8_t> buf;
    const wire::Frame* frame = nullptr;

    const wire::FilterResponse* response() const { return frame ? frame->body_as_FilterResponse() : nullptr; }
    const wire::Error* error() const { return frame ? frame->body_as_Error() : nullptr; }
    const wire::HelloAck* ack() const { return frame ? frame->body_as_HelloAck() : nullptr; }
};

class client {
public:
    explicit client(const std::string& path);
    ~client();
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    bool connected() const noexcept { return fd_ >= 0; }
    /// Writes all bytes; false if the peer closed.
    bool send(const std::vector<std::uint8_t>& bytes);
    bool send_raw(const void* p, std::size_t n);
    /// Reads one frame, verified. nullopt on timeout, EOF or a frame that fails verification.
    std::optional<received> recv(std::chrono::milliseconds timeout = std::chrono::milliseconds(3000));
    /// True when the peer closed the connection (EOF or reset) within `timeout`; data read meanwhile is dropped.
    bool wait_closed(std::chrono::milliseconds timeout);
    /// Sends Hello and expects HelloAck.
    std::optional<received> handshake(std::uint32_t max_frame = 0, std::uint64_t caps = proto::cap_filter_timings);

private:
    bool read_exact(std::uint8_t* p, std::size_t n, std::chrono::steady_clock::time_point deadline);
    int fd_ = -1;
};

/// Registry with test-only filters:
///   "test-allow"   allows and sets X-Test-Allow: 1
///   "test-deny"    denies 418 with header X-Test-Deny: 1 and reason "test_deny"
///   "test-delay"   sleeps for the ms in header X-Test-Delay-Ms (blocks its I/O thread), then allows
///   "test-auth"    establishes ctx.merchant_id from header X-Test-Merchant, allows
///   "test-echo"    sets X-Seen-Merchant to ctx.merchant_id (shows context crossing filters)
///   "test-async"   suspends the request and resumes it from another thread after X-Test-Async-Ms,
///                  then allows with X-Test-Async: 1 (or denies 429 with X-Test-Async-Deny)
///   "test-config"  requires filters.test-config.level (int 1..10) and routes.<id>.test-config.tag (string)
const registry& test_registry();

/// A unique socket path under /tmp for this test process.
std::string temp_socket_path(const std::string& tag);

/// An in-process server on its own io_context threads.
class daemon_fixture {
public:
    explicit daemon_fixture(const std::string& config_json, unsigned threads = 2);
    ~daemon_fixture();
    const std::string& socket_path() const noexcept { return path_; }
    server& srv() { return *srv_; }

private:
    std::string path_;
    boost::asio::io_context ioc_;
    std::unique_ptr<server> srv_;
    std::vector<std::thread> threads_;
};

/// Config JSON with the socket path filled in: `body` is the rest of the top-level object.
std::string config_with_socket(const std::string& path, const std::string& body);

/// A FilterRequest for `route` naming `filters`, with a 2 s budget: generous, for tests that are not
/// about deadlines on a busy box.
inline proto::request_spec req(std::uint64_t id, std::string route, std::vector<std::string> filters = {}) {
    proto::request_spec r;
    r.id = id;
    r.budget_us = 2'000'000;
    r.route = std::move(route);
    r.filters = std::move(filters);
    return r;
}

}  // namespace filterd::testing
