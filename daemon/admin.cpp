#include "daemon/admin.hpp"

#include "core/log.hpp"
#include "core/metrics.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <chrono>

namespace filterd {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

http::response<http::string_body> handle(const http::request<http::empty_body>& req,
                                         const std::function<bool()>& ready) {
    http::response<http::string_body> res;
    res.version(req.version());
    res.keep_alive(false);
    res.set(http::field::server, "filterd-admin");
    auto reply = [&](http::status st, std::string body, const char* type) {
        res.result(st);
        res.set(http::field::content_type, type);
        res.body() = req.method() == http::verb::head ? std::string() : std::move(body);
        res.prepare_payload();
    };
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
        reply(http::status::method_not_allowed, "method not allowed\n", "text/plain");
        return res;
    }
    auto target = req.target();
    if (target == "/healthz")
        reply(http::status::ok, "ok\n", "text/plain");
    else if (target == "/readyz") {
        bool ok = ready();
        reply(ok ? http::status::ok : http::status::service_unavailable, ok ? "ready\n" : "not ready\n", "text/plain");
    } else if (target == "/metrics")
        reply(http::status::ok, metrics_registry::global().render_prometheus(), "text/plain; version=0.0.4");
    else
        reply(http::status::not_found, "not found\n", "text/plain");
    return res;
}

net::awaitable<void> serve(beast::tcp_stream stream, std::function<bool()> ready) {
    beast::flat_buffer buf(8192);
    http::request_parser<http::empty_body> parser;
    parser.header_limit(8192);
    boost::system::error_code ec;
    stream.expires_after(std::chrono::seconds(5));
    co_await http::async_read(stream, buf, parser, net::redirect_error(net::use_awaitable, ec));
    if (ec)
        co_return;  // timeouts and garbage from loopback clients are not worth a log line
    auto res = handle(parser.get(), ready);
    co_await http::async_write(stream, res, net::redirect_error(net::use_awaitable, ec));
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

}  // namespace

admin_server::admin_server(net::io_context& ioc, std::function<bool()> ready)
    : ioc_(ioc),
      acceptor_(ioc),
      ready_(std::move(ready)) {}

void admin_server::start(const std::string& address, std::uint16_t port) {
    boost::system::error_code ec;
    tcp::endpoint ep(net::ip::make_address(address, ec), port);
    if (!ec)
        acceptor_.open(ep.protocol(), ec);
    if (!ec)
        acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec)
        acceptor_.bind(ep, ec);
    if (!ec)
        acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec)
        throw std::system_error(ec, "admin: cannot listen on " + address + ":" + std::to_string(port));
    port_ = acceptor_.local_endpoint().port();
    net::co_spawn(
        acceptor_.get_executor(),
        [this]() -> net::awaitable<void> {
            for (;;) {
                boost::system::error_code aec;
                auto sock = co_await acceptor_.async_accept(net::make_strand(ioc_),
                                                            net::redirect_error(net::use_awaitable, aec));
                if (aec) {
                    if (!acceptor_.is_open())
                        co_return;
                    // Out of descriptors (EMFILE/ENFILE) or memory: the pending connection stays queued and
                    // accept would fail again at once. Back off instead of spinning a core.
                    if (aec == net::error::no_descriptors || aec == net::error::no_buffer_space ||
                        aec == net::error::no_memory) {
                        log::warn("admin accept failed; retrying in 100 ms", {{"error", aec.message()}});
                        net::steady_timer t(acceptor_.get_executor(), std::chrono::milliseconds(100));
                        co_await t.async_wait(net::redirect_error(net::use_awaitable, aec));
                    }
                    continue;
                }
                auto ex = sock.get_executor();
                net::co_spawn(ex, serve(beast::tcp_stream(std::move(sock)), ready_), net::detached);
            }
        },
        net::detached);
    log::info("admin listening", {{"address", address}, {"port", port_}});
}

void admin_server::stop() {
    net::post(acceptor_.get_executor(), [this] {
        boost::system::error_code ec;
        acceptor_.close(ec);
    });
}

}  // namespace filterd
