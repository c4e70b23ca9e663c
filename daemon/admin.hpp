#pragma once
// Admin HTTP listener (Boost.Beast) on a loopback address.
//   GET /healthz  200 "ok" while the process runs its event loop
//   GET /readyz   200 when a config is loaded, the filter socket accepts, and its path still names the
//                 socket filterd listens on (a deleted or replaced socket file is 503); 503 otherwise
//   GET /metrics  Prometheus text format 0.0.4
// Anything else is 404; methods other than GET/HEAD are 405. Each connection has a 5 s deadline and
// requests are limited to 8 KiB of headers and no body.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <functional>
#include <string>

namespace filterd {

class admin_server {
public:
    /// @param ready  called per /readyz request; must be thread-safe.
    admin_server(boost::asio::io_context& ioc, std::function<bool()> ready);

    /// Binds address:port (port 0 picks a free one). @throws std::system_error naming the address.
    void start(const std::string& address, std::uint16_t port);
    void stop();
    std::uint16_t port() const noexcept { return port_; }

private:
    boost::asio::io_context& ioc_;
    boost::asio::ip::tcp::acceptor acceptor_;
    std::function<bool()> ready_;
    std::uint16_t port_ = 0;
};

}  // namespace filterd
