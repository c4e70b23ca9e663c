#include "daemon/server.hpp"

#include "core/log.hpp"
#include "protocol/framing.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <deque>
#include <optional>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace filterd {

namespace net = boost::asio;
using stream_protocol = net::local::stream_protocol;
using clock_type = std::chrono::steady_clock;

namespace {

std::int64_t mono_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch()).count();
}
std::int64_t wall_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

/// Logs an exception that escaped a coroutine (a bug: the I/O path does not throw on peer input).
void log_coroutine_exit(std::exception_ptr e) {
    if (!e)
        return;
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        log::error("session coroutine failed", {{"error", ex.what()}});
    } catch (...) {
        log::error("session coroutine failed", {{"error", "unknown exception"}});
    }
}

using str_offset = flatbuffers::Offset<flatbuffers::String>;

flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::Header>>>
encode_headers(flatbuffers::FlatBufferBuilder& b, const std::vector<header_kv>& hs) {
    std::vector<flatbuffers::Offset<wire::Header>> out;
    out.reserve(hs.size());
    for (const auto& h : hs) {
        str_offset v = b.CreateString(h.value);
        out.push_back(wire::CreateHeader(b, b.CreateString(h.name), b.CreateVector(&v, 1)));
    }
    return b.CreateVector(out);
}

/// Builds the FilterResponse frame for a chain that ran.
std::vector<std::uint8_t> encode_response(std::uint64_t id, const context& ctx, const chain_result& res,
                                          bool with_timings) {
    flatbuffers::FlatBufferBuilder b(256 + ctx.deny_body.size());
    flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::FilterResult>>> timings = 0;
    if (with_timings) {
        std::vector<flatbuffers::Offset<wire::FilterResult>> t;
        t.reserve(res.timings.size());
        for (const auto& ft : res.timings) {
            auto o = ft.result == outcome::allow  ? wire::FilterOutcome::Allow
                     : ft.result == outcome::deny ? wire::FilterOutcome::Deny
                                                  : wire::FilterOutcome::Error;
            t.push_back(wire::CreateFilterResult(b, b.CreateString(ft.filter->name), o, ft.elapsed_ns));
        }
        timings = b.CreateVector(t);
    }
    flatbuffers::Offset<wire::FilterResponse> resp;
    if (res.allowed) {
        std::vector<str_offset> removes;
        removes.reserve(ctx.remove_headers.size());
        for (const auto& r : ctx.remove_headers)
            removes.push_back(b.CreateString(r));
        auto sets = encode_headers(b, ctx.set_headers);
        auto rem = b.CreateVector(removes);
        wire::FilterResponseBuilder rb(b);
        rb.add_id(id);
        rb.add_verdict(wire::Verdict::Allow);
        rb.add_set_headers(sets);
        rb.add_remove_headers(rem);
        if (with_timings)
            rb.add_filters(timings);
        resp = rb.Finish();
    } else {
        auto dh = encode_headers(b, ctx.deny_headers);
        auto body = b.CreateVector(reinterpret_cast<const std::uint8_t*>(ctx.deny_body.data()), ctx.deny_body.size());
        auto ct = b.CreateString(ctx.deny_content_type);
        wire::FilterResponseBuilder rb(b);
        rb.add_id(id);
        rb.add_verdict(wire::Verdict::Deny);
        rb.add_status(ctx.deny_status);
        rb.add_deny_headers(dh);
        rb.add_deny_body(body);
        rb.add_deny_content_type(ct);
        if (with_timings)
            rb.add_filters(timings);
        resp = rb.Finish();
    }
    wire::FinishFrameBuffer(b, wire::CreateFrame(b, wire::Body::FilterResponse, resp.Union()));
    return proto::to_frame(b);
}

// Lines a client can cause once per request: at most one per log.per_request_interval_ms each.
log::throttle deny_log;
log::throttle unknown_route_log;
log::throttle unknown_filter_log;
log::throttle filters_mismatch_log;

}  // namespace

// ---- metrics -----------------------------------------------------------------------------------

server_metrics& server_metrics::get() {
    static server_metrics s = [] {
        auto& m = metrics_registry::global();
        server_metrics out{
            m.get_gauge("filterd_connections_open", "Open client connections."),
            m.get_counter("filterd_connections_total", "Accepted client connections."),
            m.get_counter("filterd_deadline_misses_total",
                          "Requests answered DeadlineExceeded without running filters."),
            m.get_histogram("filterd_request_duration_seconds",
                            "Time from receiving a request frame to queueing its answer."),
            m.get_counter("filterd_responses_total", "Filter responses by verdict.", {{"verdict", "allow"}}),
            m.get_counter("filterd_responses_total", "Filter responses by verdict.", {{"verdict", "deny"}}),
        };
        for (errc e : all_errc) {
            auto i = static_cast<std::size_t>(e);
            out.frame_errors[i] = &m.get_counter("filterd_frame_errors_total",
                                                 "Connection-level protocol errors by reason.",
                                                 {{"reason", errc_label(e)}});
            out.error_replies[i] = &m.get_counter("filterd_error_replies_total", "Error replies by reason.",
                                                  {{"reason", errc_label(e)}});
        }
        return out;
    }();
    return s;
}

// ---- session -----------------------------------------------------------------------------------

class session : public std::enable_shared_from_this<session> {
public:
    session(server& srv, stream_protocol::socket sock, std::uint64_t id, std::uint32_t peer_uid)
        : srv_(srv),
          registry_(srv.registry_),
          sock_(std::move(sock)),
          id_(id),
          peer_uid_(peer_uid),
          cfg_(srv.config()),
          splitter_(cfg_->limits.max_frame_bytes),
          write_signal_(sock_.get_executor(), clock_type::time_point::max()),
          room_signal_(sock_.get_executor(), clock_type::time_point::max()),
          watchdog_(sock_.get_executor()) {}

    void start() {
        auto self = shared_from_this();
        server_metrics::get().connections_open.add(1);
        server_metrics::get().connections_total.inc();
        last_rx_ = clock_type::now();
        net::co_spawn(sock_.get_executor(), self->reader(), [self](std::exception_ptr e) { log_coroutine_exit(e); });
        net::co_spawn(sock_.get_executor(), self->writer(), [self](std::exception_ptr e) { log_coroutine_exit(e); });
        net::co_spawn(sock_.get_executor(), self->watchdog(), [self](std::exception_ptr e) { log_coroutine_exit(e); });
    }

    /// Stop reading; close once every accepted request is answered. Thread-safe.
    void drain() {
        net::post(sock_.get_executor(), [self = shared_from_this()] {
            self->draining_ = true;
            self->read_cancel_.emit(net::cancellation_type::terminal);
        });
    }

    /// Close now. Thread-safe.
    void close() {
        net::post(sock_.get_executor(), [self = shared_from_this()] { self->close_now(); });
    }

    /// Monotonic ns since which this connection has been idle: handshaked, no request in flight, no
    /// partial frame, nothing left to write. -1 while it is not idle. Thread-safe.
    std::int64_t idle_since_ns() const noexcept { return idle_since_ns_.load(std::memory_order_relaxed); }
    bool evicting() const noexcept { return evicting_.load(std::memory_order_relaxed); }

    /// Marks the connection for eviction (false if it already was). Thread-safe.
    bool claim_eviction() noexcept { return !evicting_.exchange(true); }

    /// Closes a connection chosen to make room for a new one. If it is still idle on its strand it gets
    /// Error{0, Overloaded} and is closed; if a request arrived meanwhile, it is answered first (drain).
    void evict() {
        net::post(sock_.get_executor(), [self = shared_from_this()] {
            if (self->sock_closed_ || self->closing_)
                return;
            if (self->in_flight_ == 0 && !self->splitter_.mid_frame() && self->writeq_.empty() && !self->writing_) {
                // The writer closes the socket once the error is written, which ends the pending read.
                self->fail_connection(errc::connection_evicted, "idle connection evicted at max_connections");
            } else {
                server_metrics::get().frame_error(errc::connection_evicted).inc();
                log::warn("evicting connection after its last answer", {{"conn", self->id_}});
                self->draining_ = true;
                self->read_cancel_.emit(net::cancellation_type::terminal);
            }
        });
    }

private:
    // Reads frames until EOF, a connection-level error, or drain.
    net::awaitable<void> reader() {
        for (;;) {
            // Hand out every complete frame already buffered.
            for (;;) {
                std::span<const std::uint8_t> frame;
                proto::frame_status st{};
                auto r = splitter_.next(frame, st);
                if (r == proto::frame_splitter::next_result::need_more)
                    break;
                if (r == proto::frame_splitter::next_result::error) {
                    fail_connection(st == proto::frame_status::too_large ? errc::frame_too_large
                                                                          : errc::malformed_frame,
                                    proto::to_string(st));
                    co_return;
                }
                if (!on_frame(frame))
                    co_return;
            }
            if (closing_ || draining_)
                break;
            // Back-pressure: a peer that does not read its answers stops being read.
            while (writeq_.size() > 2 * static_cast<std::size_t>(cfg_->limits.max_in_flight_per_connection) + 16 &&
                   !closing_) {
                boost::system::error_code ec;
                room_signal_.expires_at(clock_type::time_point::max());
                co_await room_signal_.async_wait(net::redirect_error(net::use_awaitable, ec));
            }
            if (closing_)
                co_return;
            if (draining_)
                break;
            update_idle();
            auto buf = splitter_.prepare(16 * 1024);
            boost::system::error_code ec;
            std::size_t n = co_await sock_.async_read_some(
                net::buffer(buf.data(), buf.size()),
                net::bind_cancellation_slot(read_cancel_.slot(), net::redirect_error(net::use_awaitable, ec)));
            if (ec) {
                if (ec != net::error::eof && ec != net::error::operation_aborted && ec != net::error::connection_reset)
                    log::warn("read failed", {{"conn", id_}, {"error", ec.message()}});
                break;
            }
            splitter_.commit(n);
            last_rx_ = clock_type::now();
        }
        // Drain or EOF: answer what was accepted, then close.
        while (!closing_ && (in_flight_ > 0 || !writeq_.empty() || writing_)) {
            boost::system::error_code ec;
            drain_poll_.expires_after(std::chrono::milliseconds(1));
            co_await drain_poll_.async_wait(net::redirect_error(net::use_awaitable, ec));
        }
        close_now();
    }

    // Writes queued frames, several per system call, one write in flight.
    net::awaitable<void> writer() {
        std::vector<net::const_buffer> bufs;
        for (;;) {
            if (writeq_.empty()) {
                if (closing_after_write_ || sock_closed_) {
                    if (closing_after_write_)
                        close_now();
                    co_return;
                }
                boost::system::error_code ec;
                write_signal_.expires_at(clock_type::time_point::max());
                co_await write_signal_.async_wait(net::redirect_error(net::use_awaitable, ec));
                continue;
            }
            std::size_t batch = std::min<std::size_t>(writeq_.size(), 64);
            bufs.clear();
            for (std::size_t i = 0; i < batch; ++i)
                bufs.emplace_back(net::buffer(writeq_[i]));
            writing_ = true;
            write_started_ = clock_type::now();
            boost::system::error_code ec;
            co_await net::async_write(sock_, bufs, net::redirect_error(net::use_awaitable, ec));
            writing_ = false;
            if (ec) {
                if (ec != net::error::operation_aborted && ec != net::error::broken_pipe &&
                    ec != net::error::connection_reset)
                    log::warn("write failed", {{"conn", id_}, {"error", ec.message()}});
                close_now();
                co_return;
            }
            writeq_.erase(writeq_.begin(), writeq_.begin() + static_cast<std::ptrdiff_t>(batch));
            room_signal_.cancel();
            update_idle();
        }
    }

    // Closes peers that stall mid-frame, mid-handshake, or stop reading what we write.
    net::awaitable<void> watchdog() {
        for (;;) {
            auto stall = cfg_->limits.stall_timeout;
            auto tick = std::max<std::chrono::milliseconds>(std::chrono::milliseconds(5), stall / 4);
            boost::system::error_code ec;
            watchdog_.expires_after(tick);
            co_await watchdog_.async_wait(net::redirect_error(net::use_awaitable, ec));
            if (sock_closed_)
                co_return;
            auto now = clock_type::now();
            bool stalled_read = (splitter_.mid_frame() || !hello_done_) && !draining_ && now - last_rx_ > stall;
            bool stalled_write = writing_ && now - write_started_ > stall;
            if (stalled_read || stalled_write) {
                server_metrics::get().frame_error(errc::stalled).inc();
                log::warn("closing stalled connection",
                          {{"conn", id_}, {"stage", stalled_write ? "write" : (hello_done_ ? "frame" : "hello")}});
                close_now();
                co_return;
            }
        }
    }

    /// Handles one verified-length frame body. Returns false when the connection is being closed.
    bool on_frame(std::span<const std::uint8_t> body) {
        proto::frame_status st{};
        const wire::Frame* f = proto::verify_frame(body, st);
        if (f == nullptr) {
            fail_connection(errc::malformed_frame, proto::to_string(st));
            return false;
        }
        if (!hello_done_)
            return on_hello(f);
        if (f->body_type() != wire::Body::FilterRequest) {
            fail_connection(errc::unexpected_frame, wire::EnumNameBody(f->body_type()));
            return false;
        }
        return on_request(body, *f->body_as_FilterRequest());
    }

    bool on_hello(const wire::Frame* f) {
        const wire::Hello* h = f->body_as_Hello();
        if (h == nullptr) {
            fail_connection(errc::hello_required, wire::EnumNameBody(f->body_type()));
            return false;
        }
        if (h->version_min() > proto::protocol_version || h->version_max() < proto::protocol_version ||
            h->version_min() > h->version_max()) {
            fail_connection(errc::version_mismatch,
                            "daemon speaks version " + std::to_string(proto::protocol_version) + ", client " +
                                std::to_string(h->version_min()) + ".." + std::to_string(h->version_max()));
            return false;
        }
        std::uint32_t daemon_max = cfg_->limits.max_frame_bytes;
        std::uint32_t agreed = h->max_frame_bytes() == 0 ? daemon_max : std::min(h->max_frame_bytes(), daemon_max);
        if (agreed < proto::min_frame_limit) {
            fail_connection(errc::malformed_frame, "max_frame_bytes below " + std::to_string(proto::min_frame_limit));
            return false;
        }
        max_frame_ = agreed;
        splitter_.set_limit(agreed);
        caps_ = h->capabilities() & proto::cap_filter_timings;
        hello_done_ = true;
        enqueue(proto::encode_hello_ack(proto::protocol_version, agreed, caps_,
                                        cfg_->limits.max_in_flight_per_connection));
        log::debug("client connected", {{"conn", id_}, {"uid", peer_uid_}, {"max_frame", agreed}});
        return true;
    }

    bool on_request(std::span<const std::uint8_t> body, const wire::FilterRequest& req) {
        std::uint64_t rid = req.id();
        if (rid == 0) {
            fail_connection(errc::bad_request_id, "request id 0 is reserved");
            return false;
        }
        if (!request_view(req).body_fields_consistent())
            return reply_error(rid, errc::malformed_request), true;
        if (draining_)
            return reply_error(rid, errc::shutting_down), true;
        if (in_flight_ >= cfg_->limits.max_in_flight_per_connection)
            return reply_error(rid, errc::overloaded), true;
        std::int64_t received = mono_ns();
        if (req.budget_us() == 0) {
            server_metrics::get().deadline_misses.inc();
            return reply_error(rid, errc::deadline_exceeded), true;
        }
        // A request alone on its connection (nothing in flight, no other frame already buffered) runs
        // right here on the strand: filters take microseconds, and this saves two cross-thread
        // wake-ups, most of the daemon's CPU per request at gateway rates. A request that arrives with
        // others is handed to any I/O thread, so a pipelined connection uses every core and slow
        // requests do not hold up the ones behind them.
        const bool alone = in_flight_ == 0 && !splitter_.frame_ready();
        auto cfg = srv_.config();
        // A route with a filter that waits on a shared store (Redis) runs as a suspendable request: it
        // owns its frame and context, and its answer is queued when the store has answered. Its I/O
        // thread never waits. Configs without such a route never take this branch.
        if (cfg->filters->may_suspend()) {
            const route* rt = cfg->filters->find_route(request_view::sv(req.route()));
            if (rt != nullptr && rt->may_suspend) {
                ++in_flight_;
                auto st = std::make_shared<suspendable>();
                st->frame.assign(body.begin(), body.end());
                st->cfg = std::move(cfg);
                st->received = received;
                if (alone)
                    start_suspendable(std::move(st));
                else
                    net::post(srv_.io(), [self = shared_from_this(), st = std::move(st)]() mutable {
                        self->start_suspendable(std::move(st));
                    });
                return true;
            }
        }
        if (alone) {
            enqueue(run_request(body, *cfg, received));
            return true;
        }
        ++in_flight_;
        // The frame buffer is reused by the next read, so the worker gets its own copy. The config is
        // pinned here: a reload never changes a request that has started.
        std::vector<std::uint8_t> copy(body.begin(), body.end());
        net::post(srv_.io(), [self = shared_from_this(), copy = std::move(copy), cfg = std::move(cfg), received] {
            auto out = self->run_request(copy, *cfg, received);
            net::post(self->sock_.get_executor(), [self, out = std::move(out)]() mutable {
                --self->in_flight_;
                self->enqueue(std::move(out));
            });
        });
        return true;
    }

    /// Runs the filter chain for one verified request and returns the answer frame. Runs on the strand
    /// or on any I/O thread, so it reads no session state but caps_ and max_frame_, fixed at Hello.
    std::vector<std::uint8_t> run_request(std::span<const std::uint8_t> buf, const daemon_config& cfg,
                                          std::int64_t received) {
        thread_local context ctx;
        thread_local chain_result res;
        const auto& req = *wire::GetFrame(buf.data())->body_as_FilterRequest();  // verified on the strand
        prepare(ctx, req, received);
        if (ctx.mono_ns >= ctx.deadline_mono_ns)
            return answer(req, ctx, res, received, true);
        request_view view(req);
        run_chain(*cfg.filters, view, ctx, res);
        return answer(req, ctx, res, received, false);
    }

    /// A request of a route that may suspend: everything it needs lives here until it is answered.
    struct suspendable {
        std::vector<std::uint8_t> frame;
        std::shared_ptr<const daemon_config> cfg;  ///< pinned: a reload never changes a started request
        std::int64_t received = 0;
        context ctx;
        chain_result res;
        std::optional<request_view> view;
    };

    /// Runs a suspendable request's chain (on the strand or any I/O thread). Its answer is queued on the
    /// strand when the chain ends, whichever thread resumed it.
    void start_suspendable(std::shared_ptr<suspendable> st) {
        const auto& req = *wire::GetFrame(st->frame.data())->body_as_FilterRequest();  // verified on the strand
        prepare(st->ctx, req, st->received);
        if (st->ctx.mono_ns >= st->ctx.deadline_mono_ns)
            return finish_suspendable(answer(req, st->ctx, st->res, st->received, true));
        st->view.emplace(req);
        auto* raw = st.get();
        run_chain_async(*raw->cfg->filters, *raw->view, raw->ctx, raw->res, [self = shared_from_this(), st = std::move(st)] {
            self->finish_suspendable(self->answer(st->view->raw(), st->ctx, st->res, st->received, false));
        });
    }

    void finish_suspendable(std::vector<std::uint8_t> out) {
        net::dispatch(sock_.get_executor(), [self = shared_from_this(), out = std::move(out)]() mutable {
            --self->in_flight_;
            self->enqueue(std::move(out));
        });
    }

    static void prepare(context& ctx, const wire::FilterRequest& req, std::int64_t received) noexcept {
        ctx.reset();
        ctx.mono_ns = mono_ns();
        ctx.wall_ns = wall_ns();
        ctx.deadline_mono_ns = received + static_cast<std::int64_t>(req.budget_us()) * 1000;
    }

    /// The answer frame for a request whose chain ran (or that missed its deadline before it could).
    /// Reads no session state but caps_, max_frame_ and id_, fixed at Hello, so any thread may call it.
    std::vector<std::uint8_t> answer(const wire::FilterRequest& req, context& ctx, chain_result& res,
                                     std::int64_t received, bool deadline_missed) {
        std::vector<std::uint8_t> out;
        errc err{};
        bool failed = false;
        if (deadline_missed) {
            server_metrics::get().deadline_misses.inc();
            err = errc::deadline_exceeded;
            failed = true;
        } else {
            request_view view(req);
            if (res.status == chain_status::unknown_route) {
                err = errc::unknown_route;
                failed = true;
            } else if (res.status == chain_status::unknown_filter) {
                err = errc::unknown_filter;
                failed = true;
            } else if (res.status == chain_status::filters_mismatch) {
                err = errc::filters_mismatch;
                failed = true;
            } else {
                out = encode_response(req.id(), ctx, res, caps_ & proto::cap_filter_timings);
                if (out.size() > max_frame_ + proto::length_bytes) {
                    log::error("response exceeds the frame limit", {{"conn", id_}, {"route", view.route()}});
                    out = proto::encode_error(req.id(), wire::ErrorCode::Internal, "response too large");
                }
                auto& m = server_metrics::get();
                (res.allowed ? m.responses_allow : m.responses_deny).inc();
                std::uint64_t held = 0;
                if (!res.allowed && deny_log.admit(ctx.mono_ns, held))
                    log::info("request denied", {{"conn", id_},
                                                 {"request_id", req.id()},
                                                 {"route", view.route()},
                                                 {"status", ctx.deny_status},
                                                 {"reason", ctx.reason},
                                                 {"denials_not_logged", held}});
            }
        }
        if (failed) {
            server_metrics::get().error_reply(err).inc();
            std::string msg = make_error_code(err).message();
            std::uint64_t held = 0;
            if (err == errc::unknown_route && unknown_route_log.admit(ctx.mono_ns, held))
                log::warn("unknown route", {{"conn", id_},
                                            {"route", request_view::sv(req.route())},
                                            {"lines_not_logged", held}});
            else if (err == errc::unknown_filter && unknown_filter_log.admit(ctx.mono_ns, held))
                log::warn("unknown filter for route", {{"conn", id_},
                                                       {"route", request_view::sv(req.route())},
                                                       {"filter", res.detail},
                                                       {"lines_not_logged", held}});
            else if (err == errc::filters_mismatch && filters_mismatch_log.admit(ctx.mono_ns, held))
                log::warn("request leaves out a filter its route requires", {{"conn", id_},
                                                                             {"route", request_view::sv(req.route())},
                                                                             {"missing", res.detail},
                                                                             {"lines_not_logged", held}});
            out = proto::encode_error(req.id(), to_wire(err), msg);
        }
        server_metrics::get().request_duration.observe(static_cast<std::uint64_t>(mono_ns() - received));
        return out;
    }

    void reply_error(std::uint64_t rid, errc e) {
        server_metrics::get().error_reply(e).inc();
        enqueue(proto::encode_error(rid, to_wire(e), make_error_code(e).message()));
    }

    /// Reports a connection-level error (request id 0), then closes once it is written.
    void fail_connection(errc e, std::string_view detail) {
        server_metrics::get().frame_error(e).inc();
        log::warn("closing connection after protocol error",
                  {{"conn", id_}, {"reason", errc_label(e)}, {"detail", detail}});
        enqueue(proto::encode_error(0, to_wire(e), make_error_code(e).message() + ": " + std::string(detail)));
        closing_ = true;
        closing_after_write_ = true;
        room_signal_.cancel();
    }

    /// Publishes whether the connection is idle, for eviction by the accept loop. Runs on the strand.
    void update_idle() noexcept {
        bool idle = hello_done_ && !draining_ && !closing_ && in_flight_ == 0 && !splitter_.mid_frame() &&
                    writeq_.empty() && !writing_;
        if (!idle)
            idle_since_ns_.store(-1, std::memory_order_relaxed);
        else if (idle_since_ns_.load(std::memory_order_relaxed) < 0)
            idle_since_ns_.store(mono_ns(), std::memory_order_relaxed);
    }

    void enqueue(std::vector<std::uint8_t> frame) {
        if (sock_closed_)
            return;
        writeq_.push_back(std::move(frame));
        write_signal_.cancel();
    }

    void close_now() {
        if (sock_closed_)
            return;
        sock_closed_ = true;
        closing_ = true;
        boost::system::error_code ec;
        sock_.shutdown(stream_protocol::socket::shutdown_both, ec);
        sock_.close(ec);
        write_signal_.cancel();
        room_signal_.cancel();
        watchdog_.cancel();
        drain_poll_.cancel();
    }

public:
    /// Runs once the reader, writer, watchdog and every posted completion have let go of the session.
    ~session() {
        boost::system::error_code ec;
        sock_.close(ec);
        server_metrics::get().connections_open.add(-1);
        if (auto reg = registry_.lock()) {
            std::lock_guard lock(reg->mu);
            reg->sessions.erase(id_);
        }
    }

private:

    server& srv_;
    std::weak_ptr<server::session_registry> registry_;
    stream_protocol::socket sock_;
    const std::uint64_t id_;
    const std::uint32_t peer_uid_;
    std::shared_ptr<const daemon_config> cfg_;  ///< limits in force when the connection opened
    proto::frame_splitter splitter_;
    std::deque<std::vector<std::uint8_t>> writeq_;
    net::steady_timer write_signal_;  ///< cancelled to wake the writer
    net::steady_timer room_signal_;   ///< cancelled to wake a reader waiting for queue room
    net::steady_timer watchdog_;
    net::steady_timer drain_poll_{sock_.get_executor()};
    net::cancellation_signal read_cancel_;
    clock_type::time_point last_rx_{};
    clock_type::time_point write_started_{};
    std::uint32_t in_flight_ = 0;
    std::uint32_t max_frame_ = proto::min_frame_limit;
    std::uint64_t caps_ = 0;
    bool hello_done_ = false;
    bool writing_ = false;
    bool draining_ = false;
    bool closing_ = false;
    bool closing_after_write_ = false;
    bool sock_closed_ = false;
    std::atomic<std::int64_t> idle_since_ns_{-1};  ///< written on the strand, read by the accept loop
    std::atomic<bool> evicting_{false};
};

// ---- server ------------------------------------------------------------------------------------

server::server(net::io_context& ioc, std::shared_ptr<const daemon_config> cfg)
    : ioc_(ioc), cfg_(std::move(cfg)), acceptor_(ioc), registry_(std::make_shared<session_registry>()) {}

server::~server() {
    boost::system::error_code ec;
    acceptor_.close(ec);
    if (!bound_path_.empty())
        ::unlink(bound_path_.c_str());
}

void server::start() {
    auto cfg = config();
    const std::string& path = cfg->listen.socket_path;
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            throw std::system_error(EEXIST, std::generic_category(),
                                    "listen.socket: " + path + " exists and is not a socket; refusing to remove it");
        if (::unlink(path.c_str()) != 0)
            throw std::system_error(errno, std::generic_category(), "listen.socket: cannot remove stale " + path);
        log::info("removed stale socket", {{"path", path}});
    }
    // The socket is created with the configured mode: no window where it is more open than that.
    mode_t old = ::umask(static_cast<mode_t>(0777 & ~cfg->listen.mode));
    boost::system::error_code ec;
    acceptor_.open(stream_protocol(), ec);
    if (!ec)
        acceptor_.bind(stream_protocol::endpoint(path), ec);
    ::umask(old);
    if (!ec)
        acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec)
        throw std::system_error(ec, "listen.socket: cannot listen on " + path);
    ::chmod(path.c_str(), static_cast<mode_t>(cfg->listen.mode));
    struct stat bound {};
    if (::lstat(path.c_str(), &bound) != 0)
        throw std::system_error(errno, std::generic_category(), "listen.socket: cannot stat " + path + " after bind");
    bound_dev_ = bound.st_dev;
    bound_ino_ = bound.st_ino;
    bound_path_ = path;
    accepting_ = true;
    run_accept_loop();
    log::info("listening", {{"socket", path}});
}

void server::run_accept_loop() {
    net::co_spawn(
        acceptor_.get_executor(),
        [this]() -> net::awaitable<void> {
            for (;;) {
                boost::system::error_code ec;
                auto sock = co_await acceptor_.async_accept(net::make_strand(ioc_),
                                                            net::redirect_error(net::use_awaitable, ec));
                if (ec) {
                    if (ec == net::error::operation_aborted || !acceptor_.is_open())
                        co_return;
                    log::warn("accept failed", {{"error", ec.message()}});
                    // EMFILE and friends: back off instead of spinning.
                    net::steady_timer t(co_await net::this_coro::executor, std::chrono::milliseconds(50));
                    co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
                    continue;
                }
                auto cfg = config();
                ucred cred{};
                socklen_t len = sizeof cred;
                std::uint32_t uid = UINT32_MAX;
                if (::getsockopt(sock.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
                    uid = cred.uid;
                const auto& allowed = cfg->listen.allowed_uids;
                if (std::find(allowed.begin(), allowed.end(), uid) == allowed.end()) {
                    server_metrics::get().frame_error(errc::peer_not_allowed).inc();
                    log::warn("rejected peer", {{"uid", uid}, {"reason", "peer_not_allowed"}});
                    sock.close(ec);
                    continue;
                }
                std::shared_ptr<session> s;
                // Sessions looked at while the registry is locked are released only after it is
                // unlocked: a session's destructor takes the same lock.
                std::vector<std::shared_ptr<session>> looked_at;
                {
                    std::lock_guard lock(registry_->mu);
                    if (registry_->sessions.size() >= cfg->limits.max_connections &&
                        !make_room(cfg->limits.max_connections, looked_at)) {
                        server_metrics::get().frame_error(errc::too_many_connections).inc();
                        log::warn("rejected connection", {{"reason", "too_many_connections"},
                                                          {"limit", cfg->limits.max_connections}});
                        sock.close(ec);
                        continue;
                    }
                    std::uint64_t id = next_id_++;
                    s = std::make_shared<session>(*this, std::move(sock), id, uid);
                    registry_->sessions.emplace(id, s);
                }
                s->start();
            }
        },
        [](std::exception_ptr e) { log_coroutine_exit(e); });
}

bool server::socket_reachable() const noexcept {
    if (bound_path_.empty())
        return false;
    struct stat st {};
    return ::lstat(bound_path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == bound_dev_ &&
           st.st_ino == bound_ino_;
}

bool server::make_room(std::size_t limit, std::vector<std::shared_ptr<session>>& looked_at) {
    // Called with registry_->mu held. Connections already being evicted do not count: they are on
    // their way out. Otherwise the connection idle for the longest goes; none idle: no room.
    std::size_t leaving = 0;
    session* oldest = nullptr;
    std::int64_t oldest_since = INT64_MAX;
    looked_at.reserve(registry_->sessions.size());
    for (auto& [id, w] : registry_->sessions) {
        auto s = w.lock();
        if (!s)
            continue;
        looked_at.push_back(s);  // kept alive until the caller has unlocked the registry
        if (s->evicting()) {
            ++leaving;
            continue;
        }
        std::int64_t since = s->idle_since_ns();
        if (since >= 0 && since < oldest_since) {
            oldest_since = since;
            oldest = s.get();
        }
    }
    if (registry_->sessions.size() - leaving < limit)
        return true;
    if (!oldest || !oldest->claim_eviction())
        return false;
    log::warn("evicting the longest-idle connection to admit a new one",
              {{"limit", limit}, {"idle_ms", (mono_ns() - oldest_since) / 1'000'000}});
    oldest->evict();
    return true;
}

void server::update_config(std::shared_ptr<const daemon_config> cfg) { cfg_.store(std::move(cfg)); }

void server::begin_drain() {
    draining_ = true;
    accepting_ = false;
    net::post(acceptor_.get_executor(), [this] {
        boost::system::error_code ec;
        acceptor_.close(ec);
    });
    for (auto& s : live_sessions())
        s->drain();
}

void server::close_all() {
    for (auto& s : live_sessions())
        s->close();
}

std::vector<std::shared_ptr<session>> server::live_sessions() const {
    std::vector<std::shared_ptr<session>> out;
    std::lock_guard lock(registry_->mu);
    for (auto& [id, w] : registry_->sessions)
        if (auto s = w.lock())
            out.push_back(std::move(s));
    return out;
}

std::size_t server::session_count() const {
    std::lock_guard lock(registry_->mu);
    return registry_->sessions.size();
}

}  // namespace filterd
