#include "tests/support/client.hpp"

#include <boost/asio/executor_work_guard.hpp>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <poll.h>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace filterd::testing {

namespace {

/// Waits until `fd` has bytes (or EOF) to read, at most until `deadline`. False on timeout or error.
bool readable_by(int fd, std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
        return false;
    pollfd pfd{fd, POLLIN, 0};
    return ::poll(&pfd, 1, static_cast<int>(left.count())) > 0;
}

}  // namespace

client::client(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd_);
        fd_ = -1;
    }
}

client::~client() {
    if (fd_ >= 0)
        ::close(fd_);
}

bool client::send_raw(const void* p, std::size_t n) {
    const auto* c = static_cast<const std::uint8_t*>(p);
    while (n > 0) {
        ssize_t w = ::send(fd_, c, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        c += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

bool client::send(const std::vector<std::uint8_t>& bytes) { return send_raw(bytes.data(), bytes.size()); }

bool client::read_exact(std::uint8_t* p, std::size_t n, std::chrono::steady_clock::time_point deadline) {
    while (n > 0) {
        if (!readable_by(fd_, deadline))
            return false;
        ssize_t r = ::recv(fd_, p, n, 0);
        if (r <= 0)
            return false;
        p += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}

std::optional<received> client::recv(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::uint8_t len[4];
    if (!read_exact(len, 4, deadline))
        return std::nullopt;
    std::uint32_t n = proto::read_length(len);
    if (n == 0 || n > proto::max_frame_limit)
        return std::nullopt;
    received r;
    r.buf.resize(n);
    if (!read_exact(r.buf.data(), n, deadline))
        return std::nullopt;
    proto::frame_status st{};
    r.frame = proto::verify_frame(r.buf, st);
    if (r.frame == nullptr)
        return std::nullopt;
    return r;
}

bool client::wait_closed(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::uint8_t buf[4096];
    for (;;) {
        if (!readable_by(fd_, deadline))
            return false;
        ssize_t r = ::recv(fd_, buf, sizeof buf, 0);
        if (r <= 0)
            return true;
    }
}

std::optional<received> client::handshake(std::uint32_t max_frame, std::uint64_t caps) {
    if (!send(proto::encode_hello(1, 1, max_frame, caps, "test-client")))
        return std::nullopt;
    auto r = recv();
    if (!r || r->ack() == nullptr)
        return std::nullopt;
    return r;
}

namespace {

class simple_instance : public filter_instance {
public:
    explicit simple_instance(std::shared_ptr<const filter> f) : f_(std::move(f)) {}
    std::shared_ptr<const filter> for_route(std::string_view, const boost::json::value* cfg,
                                            const std::string& path) const override {
        if (cfg != nullptr) {
            config_object o(*cfg, path);
            o.finish();
        }
        return f_;
    }

private:
    std::shared_ptr<const filter> f_;
};

template <class F>
class simple_factory : public filter_factory {
public:
    explicit simple_factory(std::string name) : name_(std::move(name)) {}
    std::string_view name() const override { return name_; }
    std::shared_ptr<filter_instance> create(const boost::json::value* cfg, const std::string& path,
                                            const std::shared_ptr<filter_instance>&) const override {
        if (cfg != nullptr) {
            config_object o(*cfg, path);
            o.finish();
        }
        return std::make_shared<simple_instance>(std::make_shared<F>());
    }

private:
    std::string name_;
};

struct allow_filter : filter {
    outcome on_request(const request_view&, context& ctx) const noexcept override {
        ctx.set_headers.push_back({"X-Test-Allow", "1"});
        return outcome::allow;
    }
};
struct deny_filter : filter {
    outcome on_request(const request_view&, context& ctx) const noexcept override {
        ctx.deny_problem(418, "I'm a teapot", "test_deny");
        ctx.deny_headers.push_back({"X-Test-Deny", "1"});
        return outcome::deny;
    }
};
struct delay_filter : filter {
    outcome on_request(const request_view& req, context&) const noexcept override {
        auto h = req.header("X-Test-Delay-Ms");
        if (h.count > 0) {
            int ms = std::atoi(std::string(h.first).c_str());
            std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        }
        return outcome::allow;
    }
};
/// Suspends the request and answers from another thread after X-Test-Async-Ms (default 0), as a
/// filter waiting on Redis does; "X-Test-Async-Deny: 1" makes it deny 429.
struct async_filter : filter {
    outcome on_request(const request_view&, context&) const noexcept override { return outcome::error; }
    bool is_async() const noexcept override { return true; }
    void on_request_async(const request_view& req, context& ctx, resume_fn done) const noexcept override {
        auto h = req.header("X-Test-Async-Ms");
        int ms = h.count > 0 ? std::atoi(std::string(h.first).c_str()) : 0;
        bool deny = req.header("X-Test-Async-Deny").count > 0;
        std::thread([ms, deny, &ctx, done = std::move(done)] {
            std::this_thread::sleep_for(std::chrono::milliseconds(ms));
            if (deny) {
                ctx.deny_problem(429, "Too Many Requests", "test_async_deny");
                return done(outcome::deny);
            }
            ctx.set_headers.push_back({"X-Test-Async", "1"});
            done(outcome::allow);
        }).detach();
    }
};
struct auth_filter : filter {
    outcome on_request(const request_view& req, context& ctx) const noexcept override {
        auto h = req.header("X-Test-Merchant");
        if (h.count == 0) {
            ctx.deny_problem(401, "Unauthorized", "test_no_merchant");
            return outcome::deny;
        }
        ctx.authenticated = true;
        ctx.merchant_id = std::string(h.first);
        return outcome::allow;
    }
};
struct echo_filter : filter {
    outcome on_request(const request_view&, context& ctx) const noexcept override {
        ctx.set_headers.push_back({"X-Seen-Merchant", ctx.merchant_id});
        return outcome::allow;
    }
};

class config_instance : public filter_instance {
public:
    std::shared_ptr<const filter> for_route(std::string_view, const boost::json::value* cfg,
                                            const std::string& path) const override {
        if (cfg == nullptr)
            throw config_error(path, "is required");
        config_object o(*cfg, path);
        o.require_string("tag");
        o.finish();
        return std::make_shared<allow_filter>();
    }
};
class config_factory : public filter_factory {
public:
    std::string_view name() const override { return "test-config"; }
    std::shared_ptr<filter_instance> create(const boost::json::value* cfg, const std::string& path,
                                            const std::shared_ptr<filter_instance>&) const override {
        if (cfg == nullptr)
            throw config_error(path, "is required");
        config_object o(*cfg, path);
        o.require_int("level", 1, 10);
        o.finish();
        return std::make_shared<config_instance>();
    }
};

}  // namespace

const registry& test_registry() {
    static const registry r = [] {
        registry reg;
        reg.add(std::make_shared<simple_factory<allow_filter>>("test-allow"));
        reg.add(std::make_shared<simple_factory<deny_filter>>("test-deny"));
        reg.add(std::make_shared<simple_factory<delay_filter>>("test-delay"));
        reg.add(std::make_shared<simple_factory<auth_filter>>("test-auth"));
        reg.add(std::make_shared<simple_factory<async_filter>>("test-async"));
        reg.add(std::make_shared<simple_factory<echo_filter>>("test-echo"));
        reg.add(std::make_shared<config_factory>());
        return reg;
    }();
    return r;
}

std::string temp_socket_path(const std::string& tag) {
    static std::atomic<int> n{0};
    return "/tmp/filterd-test-" + std::to_string(::getpid()) + "-" + tag + "-" + std::to_string(n++) + ".sock";
}

std::string config_with_socket(const std::string& path, const std::string& body) {
    return R"({"listen": {"socket": ")" + path + R"("}, "admin": {"enabled": false}, )" + body + "}";
}

daemon_fixture::daemon_fixture(const std::string& config_json, unsigned threads) : ioc_(static_cast<int>(threads)) {
    auto cfg = load_config_text(config_json, "", test_registry(), nullptr);
    path_ = cfg->listen.socket_path;
    srv_ = std::make_unique<server>(ioc_, cfg);
    srv_->start();
    for (unsigned i = 0; i < threads; ++i)
        threads_.emplace_back([this] { ioc_.run(); });
}

daemon_fixture::~daemon_fixture() {
    srv_->close_all();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ioc_.stop();
    for (auto& t : threads_)
        t.join();
    srv_.reset();
}

}  // namespace filterd::testing
