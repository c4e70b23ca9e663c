#include "filters/common/redis.hpp"

#include "core/log.hpp"
#include "core/metrics.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>

#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>

namespace filterd::redis {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;

// ---- small pieces ------------------------------------------------------------------------------

std::string_view to_string(errc e) noexcept {
    switch (e) {
    case errc::ok: return "ok";
    case errc::server_error: return "server_error";
    case errc::timeout: return "timeout";
    case errc::disconnected: return "disconnected";
    case errc::overloaded: return "overloaded";
    }
    return "unknown";
}

bool reply_view::is_error() const noexcept { return r_ && r_->type == REDIS_REPLY_ERROR; }
bool reply_view::is_nil() const noexcept { return r_ && r_->type == REDIS_REPLY_NIL; }
bool reply_view::is_integer() const noexcept { return r_ && r_->type == REDIS_REPLY_INTEGER; }
bool reply_view::is_string() const noexcept {
    return r_ && (r_->type == REDIS_REPLY_STRING || r_->type == REDIS_REPLY_STATUS);
}
bool reply_view::is_array() const noexcept { return r_ && r_->type == REDIS_REPLY_ARRAY; }
long long reply_view::integer() const noexcept { return r_ ? r_->integer : 0; }
std::string_view reply_view::str() const noexcept {
    if (r_ && r_->str &&
        (r_->type == REDIS_REPLY_STRING || r_->type == REDIS_REPLY_STATUS || r_->type == REDIS_REPLY_ERROR))
        return {r_->str, r_->len};
    return {};
}
std::size_t reply_view::size() const noexcept { return is_array() ? r_->elements : 0; }
reply_view reply_view::operator[](std::size_t i) const noexcept {
    return reply_view(i < size() ? r_->element[i] : nullptr);
}
void reply::deleter::operator()(redisReply* r) const noexcept { freeReplyObject(r); }

namespace {

std::string hex(const unsigned char* p, std::size_t n) {
    static const char* digits = "0123456789abcdef";
    std::string s(2 * n, '0');
    for (std::size_t i = 0; i < n; ++i) {
        s[2 * i] = digits[p[i] >> 4];
        s[2 * i + 1] = digits[p[i] & 15];
    }
    return s;
}

std::string digest(std::string_view algo, std::string_view data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(data.data(), data.size(), md, &n, EVP_get_digestbyname(std::string(algo).c_str()), nullptr);
    return hex(md, n);
}

/// The RESP bytes of one command (hiredis's formatter).
std::string format(const std::vector<std::string>& argv) {
    std::vector<const char*> p(argv.size());
    std::vector<std::size_t> l(argv.size());
    for (std::size_t i = 0; i < argv.size(); ++i) {
        p[i] = argv[i].data();
        l[i] = argv[i].size();
    }
    char* out = nullptr;
    int n = redisFormatCommandArgv(&out, static_cast<int>(argv.size()), p.data(), l.data());
    if (n < 0 || out == nullptr)
        throw std::bad_alloc();
    std::string s(out, static_cast<std::size_t>(n));
    redisFreeCommand(out);
    return s;
}

bool parse_endpoint(std::string_view s, endpoint& out) {
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos || colon == 0)
        return false;
    unsigned port = 0;
    auto tail = s.substr(colon + 1);
    auto [end, ec] = std::from_chars(tail.data(), tail.data() + tail.size(), port);
    if (ec != std::errc{} || end != tail.data() + tail.size() || port == 0 || port > 65535)
        return false;
    out.host = std::string(s.substr(0, colon));
    if (out.host.size() > 2 && out.host.front() == '[' && out.host.back() == ']')
        out.host = out.host.substr(1, out.host.size() - 2);
    out.port = static_cast<std::uint16_t>(port);
    return true;
}

struct redis_metrics {
    counter* results[5];
    counter* moved;
    counter* ask;
    counter* reconnects;
    counter* map_ok;
    counter* map_failed;
    static redis_metrics& get() {
        static redis_metrics m = [] {
            auto& r = metrics_registry::global();
            redis_metrics out{};
            const char* help = "Redis requests by result.";
            for (errc e : {errc::ok, errc::server_error, errc::timeout, errc::disconnected, errc::overloaded})
                out.results[static_cast<int>(e)] = &r.get_counter("filterd_redis_requests_total", help,
                                                                  {{"result", std::string(to_string(e))}});
            out.moved = &r.get_counter("filterd_redis_redirects_total", "Redis Cluster redirects followed.",
                                       {{"kind", "moved"}});
            out.ask = &r.get_counter("filterd_redis_redirects_total", "Redis Cluster redirects followed.",
                                     {{"kind", "ask"}});
            out.reconnects = &r.get_counter("filterd_redis_reconnects_total",
                                            "Redis connection attempts after a failure.");
            const char* map_help = "Redis Cluster slot map reads (CLUSTER SLOTS) by result.";
            out.map_ok = &r.get_counter("filterd_redis_slot_map_refreshes_total", map_help, {{"result", "ok"}});
            out.map_failed = &r.get_counter("filterd_redis_slot_map_refreshes_total", map_help, {{"result", "failed"}});
            return out;
        }();
        return m;
    }
};

}  // namespace

std::string options::identity() const {
    std::string s = cluster ? "cluster" : "standalone";
    for (const auto& e : seeds)
        s += " " + e.str();
    s += " user=" + user + " pw=" + (password.empty() ? "" : digest("SHA256", password.reveal()));
    s += " tls=" + std::string(tls.enabled ? "1" : "0") + tls.ca_file + "|" + tls.server_name + "|" + tls.cert_file +
         "|" + tls.key_file;
    s += " t=" + std::to_string(connect_timeout.count()) + "/" + std::to_string(command_timeout.count());
    s += " pool=" + std::to_string(pool_size) + " pending=" + std::to_string(max_pending);
    return s;
}

std::optional<options> parse_store(config_object& o) {
    if (o.get_enum("store", "local", {"local", "redis"}) != "redis") {
        if (o.has("redis"))
            o.fail("redis", "is only allowed when store is \"redis\"");
        return std::nullopt;
    }
    auto r = o.optional_object("redis");
    if (!r)
        o.fail("redis", "is required when store is \"redis\"");
    options out = parse_options(*r);
    r->finish();
    return out;
}

options parse_options(config_object& o) {
    options out;
    auto addr = o.optional_string("address");
    const boost::json::value* seeds = o.get("cluster_seeds");
    if (addr && seeds)
        o.fail("cluster_seeds", "give either address (standalone) or cluster_seeds (Redis Cluster), not both");
    if (!addr && !seeds)
        o.fail("address", "is required (\"host:port\"), or cluster_seeds for Redis Cluster");
    if (addr) {
        endpoint e;
        if (!parse_endpoint(*addr, e))
            o.fail("address", "must be \"host:port\"");
        out.seeds.push_back(e);
    } else {
        out.cluster = true;
        auto list = o.get_array("cluster_seeds");
        if (list.empty())
            o.fail("cluster_seeds", "must name at least one node");
        for (const auto& [v, path] : list) {
            endpoint e;
            if (!v->is_string() || !parse_endpoint(v->get_string(), e))
                throw config_error(path, "must be \"host:port\"");
            out.seeds.push_back(e);
        }
    }
    out.user = o.get_string("user", "");
    if (o.has("password"))
        out.password = load_secret(o, "password");
    else if (!out.user.empty())
        o.fail("password", "is required with user (an {\"env\": ...} or {\"file\": ...} reference)");
    out.command_timeout = std::chrono::milliseconds(o.get_int("timeout_ms", 100, 1, 10'000));
    out.connect_timeout = std::chrono::milliseconds(o.get_int("connect_timeout_ms", 500, 1, 60'000));
    out.pool_size = static_cast<std::size_t>(o.get_int("pool_size", 1, 1, 64));
    out.max_pending = static_cast<std::size_t>(o.get_int("max_pending", 10'000, 1, 1'000'000));
    if (auto t = o.optional_object("tls")) {
        out.tls.enabled = true;
        out.tls.ca_file = t->require_string("ca_file");
        out.tls.server_name = t->get_string("server_name", "");
        out.tls.cert_file = t->get_string("cert_file", "");
        out.tls.key_file = t->get_string("key_file", "");
        if (out.tls.cert_file.empty() != out.tls.key_file.empty())
            t->fail("key_file", "cert_file and key_file go together");
        t->finish();
        // Checked now, so a bad path stops start-up instead of failing every connection.
        try {
            ssl::context ctx(ssl::context::tls_client);
            ctx.load_verify_file(out.tls.ca_file);
            if (!out.tls.cert_file.empty()) {
                ctx.use_certificate_chain_file(out.tls.cert_file);
                ctx.use_private_key_file(out.tls.key_file, ssl::context::pem);
            }
        } catch (const std::exception& e) {
            throw config_error(o.key_path("tls"), std::string("cannot load the TLS files: ") + e.what());
        }
    }
    return out;
}

script::script(std::string body) : body_(std::move(body)), sha1_(digest("SHA1", body_)) {}

std::uint16_t key_slot(std::string_view key) noexcept {
    auto open = key.find('{');
    if (open != std::string_view::npos) {
        auto close = key.find('}', open + 1);
        if (close != std::string_view::npos && close > open + 1)
            key = key.substr(open + 1, close - open - 1);
    }
    std::uint16_t crc = 0;
    for (unsigned char c : key) {
        crc ^= static_cast<std::uint16_t>(c) << 8;
        for (int i = 0; i < 8; ++i)
            crc = (crc & 0x8000) ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021)
                                 : static_cast<std::uint16_t>(crc << 1);
    }
    return crc & 16383;
}

std::string key_part(std::string_view v) {
    bool plain = !v.empty() && v.size() <= 64;
    for (char c : v)
        plain = plain && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                          c == '_' || c == ':' || c == '@' || c == '-');
    if (plain)
        return std::string(v);
    return "~" + digest("SHA256", v);
}

std::string merchant_prefix(std::string_view merchant_id) { return "filterd:{m:" + key_part(merchant_id) + "}:"; }

// ---- implementation ----------------------------------------------------------------------------

class connection;

struct request {
    std::vector<std::string> argv;  ///< the command as sent (EVALSHA form for scripts)
    std::shared_ptr<const script> scr;
    std::string wire;  ///< RESP bytes to send (may start with ASKING)
    callback cb;       ///< empty once completed
    clock::time_point deadline;
    clock::time_point sent_at;
    std::unique_ptr<net::steady_timer> timer;
    std::weak_ptr<connection> conn;  ///< where it waits for its reply
    int redirects = 0;
    int skip_replies = 0;  ///< replies to drop before ours (ASKING's +OK)
    bool eval_retried = false;
    bool has_slot = false;
    std::uint16_t slot = 0;
    bool internal = false;  ///< handshake or slot-map traffic: no metrics
};
using request_ptr = std::shared_ptr<request>;

class client_impl : public std::enable_shared_from_this<client_impl> {
public:
    client_impl(net::any_io_executor ex, options o);
    ~client_impl();

    void submit(request_ptr r);  // any thread
    void reset();                // any thread

    // ---- on the strand ----
    void dispatch(const request_ptr& r);
    void complete(const request_ptr& r, result&& res);
    void on_node_state(std::size_t node, bool up, std::string_view why);
    void on_moved(std::uint16_t slot, const endpoint& ep);
    void dispatch_to(const endpoint& ep, const request_ptr& r);
    void refresh_slots();
    void refresh_slots_soon();
    void ask_for_slots();
    void on_connection_failed();
    bool in_map(std::size_t idx) const noexcept { return nodes_[idx].in_map; }

    net::strand<net::any_io_executor> strand_;
    options opts_;
    std::unique_ptr<ssl::context> ssl_ctx_;

    enum class node_state : std::uint8_t { unknown, up, down };
    struct node {
        endpoint ep;
        std::vector<std::shared_ptr<connection>> conns;
        std::size_t next = 0;
        node_state state = node_state::unknown;
        bool in_map = true;  ///< cluster: serves a slot in the current map (standalone: always)
        gauge* connected = nullptr;
        gauge* masters = nullptr;  ///< cluster: filterd_redis_slot_map_master{node}
    };
    std::vector<node> nodes_;
    std::size_t node_for(const endpoint& ep);

    // Cluster: slot -> node index (-1 unknown), and requests waiting for the first map. A refresh asks
    // one node at a time, the nodes with a ready connection first, then the other known nodes and the
    // seeds, moving on at once when a node cannot answer.
    std::vector<std::int32_t> slots_;
    bool have_map_ = false;
    bool refreshing_ = false;
    std::size_t refresh_tries_ = 0;   ///< nodes asked in the current refresh
    std::size_t refresh_cursor_ = 0;  ///< rotates the first node asked, refresh after refresh
    clock::time_point last_refresh_{};
    std::deque<request_ptr> waiting_map_;
};

class connection : public std::enable_shared_from_this<connection> {
public:
    connection(client_impl& owner, std::size_t node) : owner_(owner), node_(node), sock_(owner.strand_) {}

    /// Queues a request (strand). Fails it at once when the connection is backing off or full.
    void send(const request_ptr& r) {
        if (state_ == state::backoff) {
            owner_.complete(r, {errc::disconnected, {}});
            return;
        }
        if (outbox_.size() + inflight_.size() >= owner_.opts_.max_pending) {
            owner_.complete(r, {errc::overloaded, {}});
            return;
        }
        r->conn = weak_from_this();
        outbox_.push_back(r);
        if (state_ == state::idle)
            connect();
        else if (state_ == state::ready)
            start_write();
    }

    /// The request's timer fired while it waits here: a connection whose oldest request has waited
    /// past command_timeout is stuck (a paused or overloaded server) and is dropped.
    void check_stall(clock::time_point now) {
        if (state_ == state::ready && !inflight_.empty() &&
            now - inflight_.front()->sent_at >= owner_.opts_.command_timeout)
            fail("no reply within timeout_ms");
    }

    void close() { fail("closed", false); }

    bool ready() const noexcept { return state_ == state::ready; }
    bool backing_off() const noexcept { return state_ == state::backoff; }

private:
    enum class state : std::uint8_t { idle, connecting, ready, backoff };
    using tls_stream = ssl::stream<tcp::socket&>;

    void connect() {
        state_ = state::connecting;
        auto gen = ++gen_;
        const auto& ep = owner_.nodes_[node_].ep;
        connect_timer_ = std::make_unique<net::steady_timer>(owner_.strand_, owner_.opts_.connect_timeout);
        connect_timer_->async_wait([self = shared_from_this(), gen](boost::system::error_code ec) {
            if (!ec && gen == self->gen_ && self->state_ == state::connecting)
                self->fail("connect timeout");
        });
        resolver_ = std::make_unique<tcp::resolver>(owner_.strand_);
        resolver_->async_resolve(
            ep.host, std::to_string(ep.port),
            [self = shared_from_this(), gen](boost::system::error_code ec, tcp::resolver::results_type rs) {
                if (gen != self->gen_)
                    return;
                if (ec)
                    return self->fail("resolve: " + ec.message());
                net::async_connect(self->sock_, rs, [self, gen](boost::system::error_code ec2, const tcp::endpoint&) {
                    if (gen != self->gen_)
                        return;
                    if (ec2)
                        return self->fail("connect: " + ec2.message());
                    self->on_connected();
                });
            });
    }

    void on_connected() {
        boost::system::error_code ec;
        sock_.set_option(tcp::no_delay(true), ec);
        reader_.reset(redisReaderCreate());
        if (owner_.ssl_ctx_) {
            tls_ = std::make_shared<tls_stream>(sock_, *owner_.ssl_ctx_);
            const auto& o = owner_.opts_.tls;
            std::string name = o.server_name.empty() ? owner_.nodes_[node_].ep.host : o.server_name;
            SSL_set_tlsext_host_name(tls_->native_handle(), name.c_str());
            tls_->set_verify_mode(ssl::verify_peer);
            tls_->set_verify_callback(ssl::host_name_verification(name));
            auto gen = gen_;
            // Each pending operation keeps its TLS stream alive: fail() drops the connection's reference
            // while operations on it may still be completing.
            tls_->async_handshake(ssl::stream_base::client,
                                  [self = shared_from_this(), gen, keep = tls_](boost::system::error_code e) {
                                      if (gen != self->gen_)
                                          return;
                                      if (e)
                                          return self->fail("TLS handshake: " + e.message());
                                      self->start_handshake();
                                  });
            return;
        }
        start_handshake();
    }

    // AUTH (when configured) and PING, pipelined; ready on PONG.
    void start_handshake() {
        start_read();
        std::vector<request_ptr> hs;
        const auto& o = owner_.opts_;
        if (!o.password.empty()) {
            auto a = std::make_shared<request>();
            a->internal = true;
            a->argv = o.user.empty() ? std::vector<std::string>{"AUTH", std::string(o.password.reveal())}
                                     : std::vector<std::string>{"AUTH", o.user, std::string(o.password.reveal())};
            a->wire = format(a->argv);
            a->argv.clear();  // the password is not kept
            // Callbacks held by queued requests refer to their owners weakly: a request queued on a
            // connection that holds it must not keep that connection (or the client) alive.
            a->cb = [weak = weak_from_this()](result&& r) {
                auto self = weak.lock();
                if (self && r.error != errc::ok)
                    self->fail(r.error == errc::server_error ? "AUTH refused: " + std::string(r.value.view().str())
                                                             : "AUTH failed");
            };
            hs.push_back(a);
        }
        auto p = std::make_shared<request>();
        p->internal = true;
        p->argv = {"PING"};
        p->wire = format(p->argv);
        p->cb = [weak = weak_from_this(), gen = gen_](result&& r) {
            auto self = weak.lock();
            if (!self || gen != self->gen_ || self->state_ != state::connecting)
                return;
            if (r.error != errc::ok)
                return self->fail("PING: " + std::string(r.value ? r.value.view().str() : to_string(r.error)));
            self->state_ = state::ready;
            self->backoff_ = std::chrono::milliseconds(0);
            self->connect_timer_->cancel();
            self->owner_.on_node_state(self->node_, true, "");
            self->start_write();
        };
        hs.push_back(p);
        write_batch(std::move(hs));
    }

    void start_read() {
        auto gen = gen_;
        auto handler = [self = shared_from_this(), gen](boost::system::error_code ec, std::size_t n) {
            if (gen != self->gen_)
                return;
            if (ec)
                return self->fail(ec == net::error::eof ? "closed by server" : "read: " + ec.message());
            if (redisReaderFeed(self->reader_.get(), self->rbuf_.data(), n) != REDIS_OK)
                return self->fail("reply buffer");
            for (;;) {
                void* raw = nullptr;
                if (redisReaderGetReply(self->reader_.get(), &raw) != REDIS_OK)
                    return self->fail("malformed reply");
                if (raw == nullptr)
                    break;
                self->on_reply(reply(static_cast<redisReply*>(raw)));
                if (gen != self->gen_)
                    return;  // the reply's handling closed the connection
            }
            self->start_read();
        };
        if (tls_)
            tls_->async_read_some(net::buffer(rbuf_),
                                  [h = std::move(handler), keep = tls_](boost::system::error_code ec,
                                                                        std::size_t n) mutable { h(ec, n); });
        else
            sock_.async_read_some(net::buffer(rbuf_), std::move(handler));
    }

    void on_reply(reply rep) {
        if (inflight_.empty())
            return fail("unexpected reply");
        request_ptr r = inflight_.front();
        if (r->skip_replies > 0) {
            --r->skip_replies;
            return;
        }
        inflight_.pop_front();
        if (!r->cb)
            return;  // gave up (deadline): the reply is dropped here, never handed to another request
        reply_view v = rep.view();
        if (v.is_error() && !r->internal) {
            std::string_view msg = v.str();
            if (msg.starts_with("NOSCRIPT") && r->scr && !r->eval_retried) {
                r->eval_retried = true;
                r->argv[0] = "EVAL";
                r->argv[1] = r->scr->body();
                r->wire = format(r->argv);
                r->argv[1] = r->scr->sha1();
                r->argv[0] = "EVALSHA";
                return send(r);
            }
            if ((msg.starts_with("MOVED ") || msg.starts_with("ASK ")) && owner_.opts_.cluster &&
                r->redirects < owner_.opts_.max_redirects) {
                // "MOVED <slot> <host>:<port>"
                auto sp1 = msg.find(' ');
                auto sp2 = msg.find(' ', sp1 + 1);
                endpoint ep;
                unsigned slot = 0;
                auto sv = msg.substr(sp1 + 1, sp2 - sp1 - 1);
                std::from_chars(sv.data(), sv.data() + sv.size(), slot);
                if (sp2 != std::string_view::npos && parse_endpoint(msg.substr(sp2 + 1), ep) && slot < 16384) {
                    ++r->redirects;
                    if (msg.starts_with("MOVED ")) {
                        redis_metrics::get().moved->inc();
                        r->has_slot = true;
                        r->slot = static_cast<std::uint16_t>(slot);
                        owner_.on_moved(static_cast<std::uint16_t>(slot), ep);
                        r->wire = format(r->argv);
                        owner_.dispatch(r);
                    } else {
                        redis_metrics::get().ask->inc();
                        r->wire = format({"ASKING"}) + format(r->argv);
                        r->skip_replies = 1;
                        owner_.dispatch_to(ep, r);
                    }
                    return;
                }
            }
            if (msg.starts_with("CLUSTERDOWN") || msg.starts_with("TRYAGAIN"))
                owner_.refresh_slots();
            return owner_.complete(r, {errc::server_error, std::move(rep)});
        }
        owner_.complete(r, {v.is_error() ? errc::server_error : errc::ok, std::move(rep)});
    }

    void start_write() {
        if (writing_ || outbox_.empty() || state_ != state::ready)
            return;
        std::vector<request_ptr> batch;
        batch.reserve(outbox_.size());
        while (!outbox_.empty()) {
            if (outbox_.front()->cb)  // a request that already timed out is not sent
                batch.push_back(std::move(outbox_.front()));
            outbox_.pop_front();
        }
        if (!batch.empty())
            write_batch(std::move(batch));
    }

    void write_batch(std::vector<request_ptr> batch) {
        writing_ = true;
        auto now = clock::now();
        std::vector<net::const_buffer> bufs;
        bufs.reserve(batch.size());
        for (auto& r : batch) {
            r->sent_at = now;
            r->conn = weak_from_this();
            inflight_.push_back(r);
            bufs.push_back(net::buffer(r->wire));
        }
        auto handler = [self = shared_from_this(), gen = gen_, batch = std::move(batch)](boost::system::error_code ec,
                                                                                         std::size_t) {
            if (gen != self->gen_)
                return;
            self->writing_ = false;
            if (ec)
                return self->fail("write: " + ec.message());
            self->start_write();
        };
        if (tls_)
            net::async_write(*tls_, bufs,
                             [h = std::move(handler), keep = tls_](boost::system::error_code ec,
                                                                   std::size_t n) mutable { h(ec, n); });
        else
            net::async_write(sock_, bufs, std::move(handler));
    }

    /// Drops the connection: every waiting request fails with `disconnected`, then a reconnect after
    /// the backoff (when `retry`).
    void fail(const std::string& why, bool retry = true) {
        if (state_ == state::idle && inflight_.empty() && outbox_.empty())
            return;
        ++gen_;
        boost::system::error_code ec;
        sock_.close(ec);
        tls_.reset();
        if (connect_timer_)
            connect_timer_->cancel();
        if (resolver_)
            resolver_->cancel();
        writing_ = false;
        auto in = std::move(inflight_);
        auto out = std::move(outbox_);
        inflight_.clear();
        outbox_.clear();
        if (!retry) {
            state_ = state::idle;
        } else {
            state_ = state::backoff;
            const auto& o = owner_.opts_;
            backoff_ = backoff_.count() == 0 ? o.backoff_min : std::min(o.backoff_max, backoff_ * 2);
            std::uniform_int_distribution<long> jitter(0, backoff_.count() / 4);
            thread_local std::minstd_rand rng{std::random_device{}()};
            backoff_timer_ = std::make_unique<net::steady_timer>(owner_.strand_,
                                                                 backoff_ + std::chrono::milliseconds(jitter(rng)));
            backoff_timer_->async_wait([self = shared_from_this(), gen = gen_](boost::system::error_code e) {
                if (e || gen != self->gen_ || self->state_ != state::backoff)
                    return;
                if (!self->owner_.in_map(self->node_)) {
                    // A node the cluster no longer routes to (a failed master): no reconnect loop;
                    // the next request for it, if any, connects again.
                    self->state_ = state::idle;
                    return;
                }
                redis_metrics::get().reconnects->inc();
                self->connect();
            });
        }
        owner_.on_node_state(node_, false, why);
        for (auto& r : in)
            if (r->cb)
                owner_.complete(r, {errc::disconnected, {}});
        for (auto& r : out)
            if (r->cb)
                owner_.complete(r, {errc::disconnected, {}});
        owner_.on_connection_failed();
    }

    struct reader_deleter {
        void operator()(redisReader* r) const noexcept { redisReaderFree(r); }
    };

    client_impl& owner_;
    const std::size_t node_;
    tcp::socket sock_;
    std::shared_ptr<tls_stream> tls_;
    std::unique_ptr<tcp::resolver> resolver_;
    std::unique_ptr<net::steady_timer> connect_timer_;
    std::unique_ptr<net::steady_timer> backoff_timer_;
    std::unique_ptr<redisReader, reader_deleter> reader_;
    std::array<char, 16 * 1024> rbuf_{};
    std::deque<request_ptr> outbox_;    ///< accepted, not yet written
    std::deque<request_ptr> inflight_;  ///< written (or being written), replies due in this order
    std::chrono::milliseconds backoff_{0};
    std::uint64_t gen_ = 0;  ///< bumps on every close: completions of an older socket are ignored
    state state_ = state::idle;
    bool writing_ = false;
};

client_impl::client_impl(net::any_io_executor ex, options o) : strand_(net::make_strand(ex)), opts_(std::move(o)) {
    if (opts_.tls.enabled) {
        ssl_ctx_ = std::make_unique<ssl::context>(ssl::context::tls_client);
        ssl_ctx_->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                              ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
        ssl_ctx_->load_verify_file(opts_.tls.ca_file);
        if (!opts_.tls.cert_file.empty()) {
            ssl_ctx_->use_certificate_chain_file(opts_.tls.cert_file);
            ssl_ctx_->use_private_key_file(opts_.tls.key_file, ssl::context::pem);
        }
    }
    if (!opts_.cluster)
        node_for(opts_.seeds.at(0));
    else
        slots_.assign(16384, -1);
}

client_impl::~client_impl() = default;

std::size_t client_impl::node_for(const endpoint& ep) {
    for (std::size_t i = 0; i < nodes_.size(); ++i)
        if (nodes_[i].ep == ep)
            return i;
    node n;
    n.ep = ep;
    n.connected = &metrics_registry::global().get_gauge(
        "filterd_redis_connected", "1 while filterd has a ready connection to the Redis node.", {{"node", ep.str()}});
    if (opts_.cluster)
        n.masters = &metrics_registry::global().get_gauge(
            "filterd_redis_slot_map_master",
            "1 while the Redis node is a master in filterd's Redis Cluster slot map (a failed master drops to 0).",
            {{"node", ep.str()}});
    nodes_.push_back(std::move(n));
    std::size_t idx = nodes_.size() - 1;
    for (std::size_t i = 0; i < opts_.pool_size; ++i)
        nodes_[idx].conns.push_back(std::make_shared<connection>(*this, idx));
    return idx;
}

void client_impl::submit(request_ptr r) {
    net::post(strand_, [self = shared_from_this(), r = std::move(r)]() mutable {
        auto now = clock::now();
        auto limit = std::min(r->deadline, now + self->opts_.command_timeout);
        r->timer = std::make_unique<net::steady_timer>(self->strand_, limit);
        std::weak_ptr<request> weak = r;
        r->timer->async_wait([self, weak](boost::system::error_code ec) {
            if (ec)
                return;
            auto req = weak.lock();
            if (!req)
                return;
            if (req->cb)
                self->complete(req, {errc::timeout, {}});
            // A request still waiting on a connection is kept until its reply (which is then
            // dropped); if that connection stays silent past command_timeout it is stuck.
            if (auto c = req->conn.lock()) {
                auto now2 = clock::now();
                if (req->sent_at != clock::time_point{} && now2 - req->sent_at < self->opts_.command_timeout) {
                    req->timer->expires_at(req->sent_at + self->opts_.command_timeout);
                    req->timer->async_wait([self, weak](boost::system::error_code e2) {
                        if (e2)
                            return;
                        if (auto rq = weak.lock())
                            if (auto cc = rq->conn.lock())
                                cc->check_stall(clock::now());
                    });
                } else {
                    c->check_stall(now2);
                }
            }
        });
        if (now >= r->deadline)
            return self->complete(r, {errc::timeout, {}});
        self->dispatch(r);
    });
}

void client_impl::dispatch(const request_ptr& r) {
    if (!r->cb)
        return;
    std::size_t n = 0;
    if (opts_.cluster && r->has_slot) {
        if (!have_map_) {
            waiting_map_.push_back(r);
            refresh_slots();
            return;
        }
        std::int32_t idx = slots_[r->slot];
        if (idx < 0) {
            refresh_slots();
            return complete(r, {errc::disconnected, {}});
        }
        n = static_cast<std::size_t>(idx);
    } else if (opts_.cluster) {
        // No key: any node that is up, else the first known one.
        if (nodes_.empty())
            node_for(opts_.seeds[0]);
        for (std::size_t i = 0; i < nodes_.size(); ++i)
            if (nodes_[i].state == node_state::up) {
                n = i;
                break;
            }
    }
    auto& nd = nodes_[n];
    auto c = nd.conns[nd.next++ % nd.conns.size()];  // a copy: a map read below may add nodes
    // A slot whose master cannot be reached: the cluster may be failing over to a replica. The map is
    // asked for again (at most every 100 ms) so requests move to the new master as soon as it exists;
    // this request fails at once.
    if (opts_.cluster && c->backing_off())
        refresh_slots_soon();
    c->send(r);
}

void client_impl::dispatch_to(const endpoint& ep, const request_ptr& r) {
    auto& nd = nodes_[node_for(ep)];
    nd.conns[nd.next++ % nd.conns.size()]->send(r);
}

void client_impl::complete(const request_ptr& r, result&& res) {
    if (!r->cb)
        return;
    auto cb = std::move(r->cb);
    r->cb = nullptr;
    if (r->timer && res.error != errc::timeout)
        r->timer->cancel();
    if (!r->internal)
        redis_metrics::get().results[static_cast<int>(res.error)]->inc();
    cb(std::move(res));
}

void client_impl::on_node_state(std::size_t idx, bool, std::string_view why) {
    auto& n = nodes_[idx];
    bool any_up = false;
    for (auto& c : n.conns)
        any_up = any_up || c->ready();
    // Logged once per change of the node's state (a failing reconnect loop logs nothing more).
    if (any_up && n.state != node_state::up) {
        n.state = node_state::up;
        n.connected->set(1);
        log::info("redis node up", {{"node", n.ep.str()}});
    } else if (!any_up && n.state != node_state::down) {
        n.state = node_state::down;
        n.connected->set(0);
        log::warn("redis node down", {{"node", n.ep.str()}, {"error", std::string(why)}});
    }
}

void client_impl::on_connection_failed() {
    if (opts_.cluster)
        refresh_slots();
}

void client_impl::on_moved(std::uint16_t slot, const endpoint& ep) {
    slots_[slot] = static_cast<std::int32_t>(node_for(ep));
    refresh_slots();  // a MOVED usually means a whole range changed hands
}

void client_impl::refresh_slots() {
    if (!opts_.cluster || refreshing_)
        return;
    refreshing_ = true;
    refresh_tries_ = 0;
    last_refresh_ = clock::now();
    ++refresh_cursor_;
    ask_for_slots();
}

void client_impl::refresh_slots_soon() {
    if (clock::now() - last_refresh_ >= std::chrono::milliseconds(100))
        refresh_slots();
}

void client_impl::ask_for_slots() {
    // Candidates: nodes with a ready connection, then nodes not known to be down, then the rest and the
    // seeds (a seed that died is still worth a try after every other node).
    std::vector<endpoint> up, other, down;
    for (const auto& n : nodes_)
        (n.state == node_state::up ? up : n.state == node_state::down ? down : other).push_back(n.ep);
    for (const auto& sd : opts_.seeds)
        if (std::find_if(nodes_.begin(), nodes_.end(), [&](const node& n) { return n.ep == sd; }) == nodes_.end())
            other.push_back(sd);
    for (auto* group : {&up, &other, &down})
        if (!group->empty())
            std::rotate(group->begin(), group->begin() + static_cast<long>(refresh_cursor_ % group->size()),
                        group->end());
    std::vector<endpoint> order = std::move(up);
    order.insert(order.end(), other.begin(), other.end());
    order.insert(order.end(), down.begin(), down.end());
    const endpoint target = order[refresh_tries_ % order.size()];
    const std::size_t candidates = order.size();
    ++refresh_tries_;

    auto r = std::make_shared<request>();
    r->internal = true;
    r->argv = {"CLUSTER", "SLOTS"};
    r->wire = format(r->argv);
    r->deadline = clock::now() + opts_.connect_timeout + opts_.command_timeout;
    r->cb = [weak = weak_from_this(), candidates](result&& res) {
        auto self = weak.lock();
        if (!self)
            return;
        reply_view v = res.value.view();
        if (res.error == errc::ok && v.is_array() && v.size() > 0) {
            self->refreshing_ = false;
            std::vector<std::int32_t> fresh(16384, -1);
            for (std::size_t i = 0; i < v.size(); ++i) {
                reply_view range = v[i];
                if (range.size() < 3 || !range[2].is_array() || range[2].size() < 2)
                    continue;
                endpoint ep;
                ep.host = std::string(range[2][0].str());
                ep.port = static_cast<std::uint16_t>(range[2][1].integer());
                auto idx = static_cast<std::int32_t>(self->node_for(ep));
                for (long long s = range[0].integer(); s <= range[1].integer() && s < 16384; ++s)
                    if (s >= 0)
                        fresh[static_cast<std::size_t>(s)] = idx;
            }
            redis_metrics::get().map_ok->inc();
            for (auto& n : self->nodes_)
                n.in_map = false;
            for (auto idx : fresh)
                if (idx >= 0)
                    self->nodes_[static_cast<std::size_t>(idx)].in_map = true;
            std::string masters;
            for (auto& n : self->nodes_) {
                n.masters->set(n.in_map ? 1 : 0);
                if (n.in_map)
                    masters += (masters.empty() ? "" : ",") + n.ep.str();
            }
            // Logged when the map changes (first load, failover, resharding), not on every read.
            if (!self->have_map_ || fresh != self->slots_)
                log::info("redis cluster slot map loaded", {{"masters", masters}});
            self->slots_ = std::move(fresh);
            self->have_map_ = true;
            auto waiting = std::move(self->waiting_map_);
            self->waiting_map_.clear();
            for (auto& w : waiting)
                self->dispatch(w);
            return;
        }
        // This node gave no map: the next candidate is asked now, each known node at most once.
        redis_metrics::get().map_failed->inc();
        if (self->refresh_tries_ < candidates)
            return self->ask_for_slots();
        self->refreshing_ = false;
        auto waiting = std::move(self->waiting_map_);
        self->waiting_map_.clear();
        for (auto& w : waiting)
            self->complete(w, {errc::disconnected, {}});
    };
    auto timer = std::make_shared<net::steady_timer>(strand_, r->deadline);
    std::weak_ptr<request> weak = r;
    timer->async_wait([self = shared_from_this(), weak, timer](boost::system::error_code ec) {
        if (ec)
            return;
        if (auto rq = weak.lock())
            self->complete(rq, {errc::timeout, {}});
    });
    dispatch_to(target, r);
}

void client_impl::reset() {
    net::post(strand_, [self = shared_from_this()] {
        for (auto& n : self->nodes_)
            for (auto& c : n.conns)
                c->close();
    });
}

// ---- client ------------------------------------------------------------------------------------

namespace {

/// One I/O thread for the clients that have no other executor, started on first use, stopped at exit.
class runtime {
public:
    runtime() : work_(net::make_work_guard(ioc_)), thread_([this] { ioc_.run(); }) {}
    ~runtime() {
        work_.reset();
        ioc_.stop();
        thread_.join();
    }
    net::io_context& io() noexcept { return ioc_; }

private:
    net::io_context ioc_{1};
    net::executor_work_guard<net::io_context::executor_type> work_;
    std::thread thread_;
};

std::mutex preferred_mu;
net::io_context* preferred_ioc = nullptr;

net::any_io_executor default_executor() {
    {
        std::lock_guard lock(preferred_mu);
        if (preferred_ioc != nullptr)
            return preferred_ioc->get_executor();
    }
    static runtime rt;
    return rt.io().get_executor();
}

}  // namespace

void use_io_context(net::io_context* ioc) noexcept {
    std::lock_guard lock(preferred_mu);
    preferred_ioc = ioc;
}

client::client(net::any_io_executor ex, options o) : opts_(o), ex_(std::move(ex)) {}

client::client(options o) : opts_(std::move(o)) {}

client::~client() {
    if (impl_)
        impl_->reset();
}

const options& client::opts() const noexcept { return opts_; }

client_impl& client::impl() {
    std::call_once(bound_, [this] { impl_ = std::make_shared<client_impl>(ex_ ? *ex_ : default_executor(), opts_); });
    return *impl_;
}

void client::command(std::vector<std::string> argv, clock::time_point deadline, callback cb, std::size_t route_key) {
    auto r = std::make_shared<request>();
    r->deadline = deadline;
    r->cb = std::move(cb);
    if (route_key > 0 && route_key < argv.size()) {
        r->has_slot = true;
        r->slot = key_slot(argv[route_key]);
    }
    r->wire = format(argv);
    r->argv = std::move(argv);
    impl().submit(std::move(r));
}

void client::eval(std::shared_ptr<const script> s, std::vector<std::string> keys, std::vector<std::string> args,
                  clock::time_point deadline, callback cb) {
    auto r = std::make_shared<request>();
    r->deadline = deadline;
    r->cb = std::move(cb);
    if (!keys.empty()) {
        r->has_slot = true;
        r->slot = key_slot(keys[0]);
    }
    r->argv.reserve(3 + keys.size() + args.size());
    r->argv.push_back("EVALSHA");
    r->argv.push_back(s->sha1());
    r->argv.push_back(std::to_string(keys.size()));
    for (auto& k : keys)
        r->argv.push_back(std::move(k));
    for (auto& a : args)
        r->argv.push_back(std::move(a));
    r->scr = std::move(s);
    r->wire = format(r->argv);
    impl().submit(std::move(r));
}

void client::reset() { impl().reset(); }

// ---- shared clients ----------------------------------------------------------------------------

std::shared_ptr<client> shared_client(const options& o) {
    static std::mutex mu;
    static std::map<std::string, std::weak_ptr<client>> clients;
    std::lock_guard lock(mu);
    auto id = o.identity();
    if (auto it = clients.find(id); it != clients.end())
        if (auto c = it->second.lock())
            return c;
    auto c = std::make_shared<client>(o);
    clients[id] = c;
    return c;
}

}  // namespace filterd::redis
