#include "daemon/app.hpp"

#include "core/log.hpp"
#include "daemon/admin.hpp"
#include "daemon/config.hpp"
#include "daemon/sched.hpp"
#include "daemon/server.hpp"
#include "filters/common/redis.hpp"

#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <csignal>
#include <cstring>
#include <iostream>
#include <thread>

namespace filterd {

namespace net = boost::asio;

bool parse_options(int argc, char** argv, options& out, int& exit_code) {
    static const char* usage = "usage: filterd --config PATH [--socket PATH] [--check]\n"
                               "  --config PATH   daemon config (JSON, see docs/configuration.md)\n"
                               "  --socket PATH   listen on PATH instead of listen.socket\n"
                               "  --check         validate the config and exit (0 = valid, 2 = invalid)\n";
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        auto value = [&](std::string& dst) {
            if (i + 1 >= argc) {
                std::cerr << "filterd: " << a << " needs a value\n" << usage;
                return false;
            }
            dst = argv[++i];
            return true;
        };
        if (a == "--config") {
            if (!value(out.config_path))
                return exit_code = 2, false;
        } else if (a == "--socket") {
            if (!value(out.socket_override))
                return exit_code = 2, false;
        } else if (a == "--check") {
            out.check_only = true;
        } else if (a == "--help" || a == "-h") {
            std::cout << usage;
            return exit_code = 0, false;
        } else {
            std::cerr << "filterd: unknown argument " << a << "\n" << usage;
            return exit_code = 2, false;
        }
    }
    if (out.config_path.empty()) {
        std::cerr << "filterd: --config is required\n" << usage;
        return exit_code = 2, false;
    }
    return true;
}

namespace {

void apply_log_level(const daemon_config& cfg) {
    log::level l{};
    if (log::parse_level(cfg.log_level, l))
        log::set_level(l);
    log::throttle::set_interval_ns(std::chrono::nanoseconds(cfg.log_per_request_interval).count());
}

/// Reloads the config; keeps the old one on any error. Start-up-only settings that changed are
/// reported and ignored until restart.
void reload(server& srv, const options& opt, const registry& reg) {
    auto old = srv.config();
    try {
        auto next = load_config(opt.config_path, opt.socket_override, reg, old.get());
        if (next->listen.socket_path != old->listen.socket_path || next->io_threads != old->io_threads ||
            next->admin.port != old->admin.port || next->admin.address != old->admin.address ||
            next->admin.enabled != old->admin.enabled || next->listen.mode != old->listen.mode ||
            next->io_thread_slice != old->io_thread_slice)
            log::warn("config reload: listen, admin, io_threads and io_thread_slice_us changes need a restart; keeping "
                      "the old values");
        auto merged = std::make_shared<daemon_config>(*next);
        merged->listen = old->listen;
        merged->admin = old->admin;
        merged->io_threads = old->io_threads;
        merged->io_thread_slice = old->io_thread_slice;
        // allowed_uids is a security setting and applies to new connections at once.
        merged->listen.allowed_uids = next->listen.allowed_uids;
        srv.update_config(merged);
        apply_log_level(*merged);
        metrics_registry::global()
            .get_counter("filterd_config_reloads_total", "Config reloads by result.", {{"result", "ok"}})
            .inc();
        log::info("config reloaded", {{"routes", merged->filters->route_count()}});
    } catch (const config_error& e) {
        metrics_registry::global()
            .get_counter("filterd_config_reloads_total", "Config reloads by result.", {{"result", "error"}})
            .inc();
        log::error("config reload rejected; keeping the previous config", {{"key", e.key()}, {"error", e.what()}});
    } catch (const std::exception& e) {
        metrics_registry::global()
            .get_counter("filterd_config_reloads_total", "Config reloads by result.", {{"result", "error"}})
            .inc();
        log::error("config reload rejected; keeping the previous config", {{"error", e.what()}});
    }
}

}  // namespace

int run_daemon(const options& opt, const registry& reg) {
    std::shared_ptr<const daemon_config> cfg;
    set_check_only(opt.check_only);
    try {
        cfg = load_config(opt.config_path, opt.socket_override, reg, nullptr);
    } catch (const config_error& e) {
        log::error("invalid config", {{"key", e.key()}, {"error", e.what()}});
        std::cerr << "filterd: invalid config: " << e.what() << "\n";
        return 2;
    }
    apply_log_level(*cfg);
    if (opt.check_only) {
        std::cout << "filterd: config OK (" << cfg->filters->route_count() << " routes)\n";
        return 0;
    }
    std::signal(SIGPIPE, SIG_IGN);

    net::io_context ioc(static_cast<int>(cfg->io_threads));
    // Redis clients (filters with store "redis") bind to these I/O threads at their first request, so a
    // request and its Redis round trip need no cross-thread wake-up.
    redis::use_io_context(&ioc);
    server srv(ioc, cfg);
    admin_server admin(ioc, [&srv] {
        bool reachable = srv.socket_reachable();
        static std::atomic<bool> warned{false};
        if (!reachable && srv.accepting() && !warned.exchange(true))
            log::error(
                "socket file deleted or replaced: not ready (clients cannot reach this daemon); restart to recreate it",
                {{"socket", srv.config()->listen.socket_path}});
        return srv.accepting() && srv.config() != nullptr && reachable;
    });
    try {
        srv.start();
        if (cfg->admin.enabled)
            admin.start(cfg->admin.address, cfg->admin.port);
    } catch (const std::exception& e) {
        log::error("start-up failed", {{"error", e.what()}});
        std::cerr << "filterd: " << e.what() << "\n";
        redis::use_io_context(nullptr);
        return 1;
    }

    net::signal_set signals(ioc, SIGHUP, SIGTERM, SIGINT);
    net::steady_timer drain_timer(ioc);
    std::chrono::steady_clock::time_point drain_deadline{};
    bool draining = false;

    std::function<void()> poll_drain = [&] {
        if (srv.session_count() == 0 || std::chrono::steady_clock::now() >= drain_deadline) {
            std::size_t left = srv.session_count();
            if (left > 0) {
                log::warn("drain timeout; closing remaining connections", {{"connections", left}});
                srv.close_all();
            }
            admin.stop();
            log::info("stopped", {{"connections_left", left}});
            ioc.stop();
            return;
        }
        drain_timer.expires_after(std::chrono::milliseconds(5));
        drain_timer.async_wait([&](boost::system::error_code) { poll_drain(); });
    };

    std::function<void()> wait_signal = [&] {
        signals.async_wait([&](boost::system::error_code ec, int sig) {
            if (ec)
                return;
            if (sig == SIGHUP) {
                log::info("SIGHUP: reloading config", {{"path", opt.config_path}});
                reload(srv, opt, reg);
            } else if (!draining) {
                draining = true;
                auto timeout = srv.config()->limits.drain_timeout;
                log::info("shutting down: draining",
                          {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}, {"drain_timeout_ms", timeout.count()}});
                srv.begin_drain();
                drain_deadline = std::chrono::steady_clock::now() + timeout;
                poll_drain();
            }
            wait_signal();
        });
    };
    wait_signal();

    log::info("filterd started", {{"io_threads", cfg->io_threads}, {"routes", cfg->filters->route_count()}});
    // Every I/O thread asks for the configured CPU slice; a refusal leaves the kernel's default.
    auto slice = cfg->io_thread_slice;
    auto run = [&ioc, slice] {
        if (slice.count() > 0) {
            if (int err = set_thread_slice(slice))
                log::warn("io_thread_slice_us refused by the kernel; this I/O thread keeps the default slice",
                          {{"io_thread_slice_us", slice.count()}, {"error", std::strerror(err)}});
        }
        ioc.run();
    };
    if (slice.count() > 0)
        log::info("I/O threads ask for a short CPU slice", {{"io_thread_slice_us", slice.count()}});
    std::vector<std::thread> threads;
    for (unsigned i = 1; i < cfg->io_threads; ++i)
        threads.emplace_back(run);
    run();
    for (auto& t : threads)
        t.join();
    // Clients bound to ioc go before it (the server drops its config when it is destroyed).
    redis::use_io_context(nullptr);
    cfg.reset();
    return 0;
}

}  // namespace filterd
