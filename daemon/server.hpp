#pragma once
// The filter socket server: a Unix stream socket, one session per connection.
//
// Concurrency contract
//  * Each session lives on its own strand: the completions of its read, its write and its watchdog,
//    and every answer posted back to it, run there, so session state needs no locks. Its life is one
//    state (handshake, open, draining, failing, closed) that only moves forward.
//  * A verified FilterRequest that arrives alone (nothing in flight on its connection, no other frame
//    buffered) runs on the strand at once: no cross-thread hop. One that arrives with others is copied
//    and posted to the io_context (any I/O thread), so a pipelined connection's requests run in
//    parallel and are answered out of order, matched by request id.
//  * One write in flight per connection: responses queue behind it and are written in batches. A
//    batch goes straight to the socket (no wake-up); only what the socket does not take becomes the
//    write in flight.
//  * System calls per lone request: one wake-up (epoll_wait), one read of everything available (every
//    complete frame in it is handled before the next read), one write of all answers ready; no timer
//    per read or write (one watchdog per connection ticks at a quarter of the stall timeout).
//  * Bounds: the frame size (negotiated in Hello), in-flight requests per connection (past it:
//    Overloaded error), queued responses (past it the reader stops: back-pressure), connections, and a
//    stall timeout for peers that stop mid-frame, mid-handshake, or stop reading our writes.
//  * At max_connections a new client evicts the connection idle for the longest (handshaked, nothing in
//    flight or buffered); only when every connection is busy is the new one refused. So idle
//    connections, hostile or forgotten, never lock a restarted gateway out.
//
// Reload: update_config() swaps the config atomically; each request holds the config it started with.
// Drain: begin_drain() stops accepting; sessions stop reading, answer what they already accepted and
// close when the last answer is written (counted, not polled).

#include "core/metrics.hpp"
#include "daemon/config.hpp"
#include "daemon/errc.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <sys/types.h>

namespace filterd {

class session;

struct server_metrics {
    gauge& connections_open;
    counter& connections_total;
    counter& deadline_misses;
    histogram& request_duration;
    counter& responses_allow;
    counter& responses_deny;

    /// Per-reason series, created with the others so the request path never takes the registry lock.
    counter& frame_error(errc e) noexcept { return *frame_errors[static_cast<std::size_t>(e)]; }
    counter& error_reply(errc e) noexcept { return *error_replies[static_cast<std::size_t>(e)]; }

    static server_metrics& get();

    std::array<counter*, std::size(all_errc) + 1> frame_errors{};
    std::array<counter*, std::size(all_errc) + 1> error_replies{};
};

class server {
public:
    server(boost::asio::io_context& ioc, std::shared_ptr<const daemon_config> cfg);
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    /// Removes a stale socket file (only if it is a socket), binds with the configured mode and starts
    /// accepting. @throws std::system_error with a message naming the path.
    void start();

    /// New requests use `cfg` from now on; requests already running keep theirs.
    void update_config(std::shared_ptr<const daemon_config> cfg);
    std::shared_ptr<const daemon_config> config() const { return cfg_.load(); }

    /// Stops accepting. Sessions stop reading, finish the requests they hold, then close.
    void begin_drain();
    /// Closes every session now (after the drain timeout).
    void close_all();

    bool accepting() const noexcept { return accepting_.load(); }
    /// True while the path the server bound still names the very socket it listens on (same device and
    /// inode). False once the file is deleted or replaced: clients can no longer reach this daemon, so
    /// it must not report ready. Thread-safe (one lstat).
    bool socket_reachable() const noexcept;
    std::size_t session_count() const;
    boost::asio::io_context& io() noexcept { return ioc_; }

private:
    friend class session;
    /// Sessions by id. Shared with the sessions (weakly) so one that outlives the server is safe.
    struct session_registry {
        std::mutex mu;
        std::unordered_map<std::uint64_t, std::weak_ptr<session>> sessions;
    };
    void run_accept_loop();
    /// At max_connections: evicts the connection that has been idle the longest (handshaked, nothing in
    /// flight), so that idle connections cannot keep a new client (a restarted gateway) out. Returns
    /// false when every connection is busy. Needs registry_->mu held; every session it looked at is
    /// added to `looked_at`, which the caller must release only after unlocking.
    bool make_room(std::size_t limit, std::vector<std::shared_ptr<session>>& looked_at);
    std::vector<std::shared_ptr<session>> live_sessions() const;

    boost::asio::io_context& ioc_;
    std::atomic<std::shared_ptr<const daemon_config>> cfg_;
    boost::asio::local::stream_protocol::acceptor acceptor_;
    std::atomic<bool> accepting_{false};
    std::atomic<bool> draining_{false};
    std::shared_ptr<session_registry> registry_;
    std::uint64_t next_id_ = 1;  ///< only touched by the accept loop
    std::string bound_path_;
    dev_t bound_dev_ = 0;  ///< set in start(), before any reader exists
    ino_t bound_ino_ = 0;
};

}  // namespace filterd
