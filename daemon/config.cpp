#include "daemon/config.hpp"

#include "core/log.hpp"

#include <boost/asio/ip/address.hpp>

#include <unistd.h>

namespace filterd {

namespace json = boost::json;

namespace {

unsigned parse_mode(config_object& o, std::string_view key, unsigned def) {
    auto s = o.optional_string(key);
    if (!s)
        return def;
    if (s->size() < 3 || s->size() > 4)
        o.fail(key, "must be an octal string such as \"0660\"");
    unsigned v = 0;
    for (char c : *s) {
        if (c < '0' || c > '7')
            o.fail(key, "must be an octal string such as \"0660\"");
        v = v * 8 + static_cast<unsigned>(c - '0');
    }
    if (v & 0007)
        o.fail(key, "must not grant access to others (last digit must be 0)");
    if ((v & 0600) != 0600)
        o.fail(key, "must grant the owner read and write (0600)");
    return v;
}

std::shared_ptr<const daemon_config> build(const json::value& doc, const std::string& socket_override,
                                           const registry& reg, const daemon_config* previous) {
    auto cfg = std::make_shared<daemon_config>();
    config_object root(doc, "");

    {
        auto l = root.require_object("listen");
        cfg->listen.socket_path = socket_override.empty() ? l.require_string("socket") : socket_override;
        if (!socket_override.empty())
            (void)l.get("socket");
        if (cfg->listen.socket_path.size() >= 108)
            l.fail("socket", "path is longer than the 107 bytes a Unix socket address holds");
        cfg->listen.mode = parse_mode(l, "mode", 0660);
        if (l.has("allowed_uids")) {
            for (auto& [v, path] : l.get_array("allowed_uids")) {
                if (!v->is_int64() && !v->is_uint64())
                    throw config_error(path, "must be a non-negative integer uid");
                auto n = v->is_int64() ? v->get_int64() : static_cast<std::int64_t>(v->get_uint64());
                if (n < 0 || n > UINT32_MAX)
                    throw config_error(path, "must be a uid between 0 and 4294967295");
                cfg->listen.allowed_uids.push_back(static_cast<std::uint32_t>(n));
            }
            if (cfg->listen.allowed_uids.empty())
                l.fail("allowed_uids", "must list at least one uid (omit it to allow only filterd's own uid)");
        } else {
            (void)l.get("allowed_uids");
            cfg->listen.allowed_uids.push_back(static_cast<std::uint32_t>(::geteuid()));
        }
        l.finish();
    }

    if (auto a = root.optional_object("admin")) {
        cfg->admin.enabled = a->get_bool("enabled", true);
        cfg->admin.address = a->get_string("address", "127.0.0.1");
        boost::system::error_code ec;
        auto addr = boost::asio::ip::make_address(cfg->admin.address, ec);
        if (ec)
            a->fail("address", "is not an IP address");
        if (!addr.is_loopback())
            a->fail("address", "must be a loopback address (the admin listener is not authenticated)");
        cfg->admin.port = static_cast<std::uint16_t>(a->get_int("port", 9901, 0, 65535));
        a->finish();
    }

    cfg->io_threads = static_cast<unsigned>(root.get_int("io_threads", 2, 1, 64));
    auto slice = root.get_int("io_thread_slice_us", 100, 0, 100000);
    if (slice > 0 && slice < 100)
        root.fail("io_thread_slice_us", "must be 0 (the kernel's default) or 100..100000");
    cfg->io_thread_slice = std::chrono::microseconds(slice);

    if (auto l = root.optional_object("limits")) {
        cfg->limits.max_frame_bytes = static_cast<std::uint32_t>(
            l->get_int("max_frame_bytes", 1 << 20, 4096, 16 << 20));
        cfg->limits.max_in_flight_per_connection = static_cast<std::uint32_t>(
            l->get_int("max_in_flight_per_connection", 256, 1, 65536));
        cfg->limits.max_connections = static_cast<std::uint32_t>(l->get_int("max_connections", 64, 1, 10000));
        cfg->limits.stall_timeout = std::chrono::milliseconds(l->get_int("stall_timeout_ms", 2000, 10, 600000));
        cfg->limits.drain_timeout = std::chrono::milliseconds(l->get_int("drain_timeout_ms", 5000, 0, 600000));
        l->finish();
    }

    if (auto lg = root.optional_object("log")) {
        cfg->log_level = lg->get_enum("level", "info", {"debug", "info", "warn", "error"});
        cfg->log_per_request_interval = std::chrono::milliseconds(
            lg->get_int("per_request_interval_ms", 1000, 0, 3600000));
        lg->finish();
    }

    const json::value* filters = root.get("filters");
    const json::value* routes = root.get("routes");
    root.finish();
    cfg->filters = filter_set::build(filters, routes, reg, previous ? previous->filters.get() : nullptr);
    return cfg;
}

}  // namespace

std::shared_ptr<const daemon_config> load_config_text(std::string_view text, const std::string& socket_override,
                                                      const registry& reg, const daemon_config* previous) {
    return build(parse_json_text(text, "<config>"), socket_override, reg, previous);
}

std::shared_ptr<const daemon_config> load_config(const std::string& path, const std::string& socket_override,
                                                 const registry& reg, const daemon_config* previous) {
    return build(parse_json_file(path), socket_override, reg, previous);
}

}  // namespace filterd
