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
#include <functional>
#include <optional>
#include <span>
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
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

/// Logs an exception that escaped the accept loop (a bug: the I/O path does not throw on peer input).
void log_coroutine_exit(std::exception_ptr e) {
    if (!e)
        return;
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        log::error("accept loop failed", {{"error", ex.what()}});
    } catch (...) {
        log::error("accept loop failed", {{"error", "unknown exception"}});
    }
}

bool benign_close(const boost::system::error_code& ec) noexcept {
    return ec == net::error::eof || ec == net::error::operation_aborted || ec == net::error::connection_reset ||
           ec == net::error::broken_pipe;
}

// Lines a client can cause once per request: at most one per log.per_request_interval_ms each.
log::throttle deny_log;
log::throttle unknown_route_log;
log::throttle unknown_filter_log;
log::throttle filters_mismatch_log;

// ---- request handling ----------------------------------------------------------------------------
// Free functions: they see the request, the config it started with and what its connection agreed at
// Hello (request_env), never the connection itself, so any thread may run them.

/// What a request needs from its connection. Fixed at Hello and copied into each request.
struct request_env {
    std::uint64_t conn_id = 0;                         ///< for log lines only
    std::uint32_t max_frame = proto::min_frame_limit;  ///< the negotiated frame limit
    bool with_timings = false;                         ///< the client asked for FilterResult entries
};

wire::FilterOutcome wire_outcome(outcome o) noexcept {
    return o == outcome::allow  ? wire::FilterOutcome::Allow
           : o == outcome::deny ? wire::FilterOutcome::Deny
                                : wire::FilterOutcome::Error;
}

/// The FilterResponse frame for a chain that ran. The views point into `ctx` and `res`.
std::vector<std::uint8_t> encode_verdict(std::uint64_t id, const context& ctx, const chain_result& res,
                                         bool with_timings) {
    // Scratch reused per thread: no allocation per request once warm.
    thread_local std::vector<proto::header_view> headers;
    thread_local std::vector<std::string_view> removes;
    thread_local std::vector<proto::filter_timing_view> timings;
    headers.clear();
    removes.clear();
    timings.clear();
    proto::response_view r;
    r.id = id;
    r.allowed = res.allowed;
    r.with_timings = with_timings;
    if (with_timings) {
        for (const auto& ft : res.timings)
            timings.push_back({ft.filter->name, wire_outcome(ft.result), ft.elapsed_ns});
        r.timings = timings;
    }
    const auto& hs = res.allowed ? ctx.set_headers : ctx.deny_headers;
    for (const auto& h : hs)
        headers.push_back({h.name, h.value});
    if (res.allowed) {
        for (const auto& name : ctx.remove_headers)
            removes.push_back(name);
        r.set_headers = headers;
        r.remove_headers = removes;
    } else {
        r.deny_status = ctx.deny_status;
        r.deny_headers = headers;
        r.deny_body = ctx.deny_body;
        r.deny_content_type = ctx.deny_content_type;
    }
    return proto::encode_response(r);
}

void prepare(context& ctx, const wire::FilterRequest& req, std::int64_t received) noexcept {
    ctx.reset();
    ctx.mono_ns = mono_ns();
    ctx.wall_ns = wall_ns();
    ctx.deadline_mono_ns = received + static_cast<std::int64_t>(req.budget_us()) * 1000;
}

/// The answer frame for a request whose chain ran (or that missed its deadline before it could), with
/// its metrics and throttled log lines.
std::vector<std::uint8_t> answer(const wire::FilterRequest& req, const context& ctx, const chain_result& res,
                                 std::int64_t received, bool deadline_missed, const request_env& env) {
    std::vector<std::uint8_t> out;
    errc err{};
    bool failed = false;
    if (deadline_missed) {
        server_metrics::get().deadline_misses.inc();
        err = errc::deadline_exceeded;
        failed = true;
    } else if (res.status == chain_status::unknown_route) {
        err = errc::unknown_route;
        failed = true;
    } else if (res.status == chain_status::unknown_filter) {
        err = errc::unknown_filter;
        failed = true;
    } else if (res.status == chain_status::filters_mismatch) {
        err = errc::filters_mismatch;
        failed = true;
    } else {
        request_view view(req);
        out = encode_verdict(req.id(), ctx, res, env.with_timings);
        if (out.size() > env.max_frame + proto::length_bytes) {
            log::error("response exceeds the frame limit", {{"conn", env.conn_id}, {"route", view.route()}});
            out = proto::encode_error(req.id(), wire::ErrorCode::Internal, "response too large");
        }
        auto& m = server_metrics::get();
        (res.allowed ? m.responses_allow : m.responses_deny).inc();
        std::uint64_t held = 0;
        if (!res.allowed && deny_log.admit(ctx.mono_ns, held))
            log::info("request denied", {{"conn", env.conn_id},
                                         {"request_id", req.id()},
                                         {"route", view.route()},
                                         {"status", ctx.deny_status},
                                         {"reason", ctx.reason},
                                         {"denials_not_logged", held}});
    }
    if (failed) {
        server_metrics::get().error_reply(err).inc();
        std::string msg = make_error_code(err).message();
        std::uint64_t held = 0;
        if (err == errc::unknown_route && unknown_route_log.admit(ctx.mono_ns, held))
            log::warn("unknown route",
                      {{"conn", env.conn_id}, {"route", request_view::sv(req.route())}, {"lines_not_logged", held}});
        else if (err == errc::unknown_filter && unknown_filter_log.admit(ctx.mono_ns, held))
            log::warn("unknown filter for route", {{"conn", env.conn_id},
                                                   {"route", request_view::sv(req.route())},
                                                   {"filter", res.detail},
                                                   {"lines_not_logged", held}});
        else if (err == errc::filters_mismatch && filters_mismatch_log.admit(ctx.mono_ns, held))
            log::warn("request leaves out a filter its route requires", {{"conn", env.conn_id},
                                                                         {"route", request_view::sv(req.route())},
                                                                         {"missing", res.detail},
                                                                         {"lines_not_logged", held}});
        out = proto::encode_error(req.id(), to_wire(err), msg);
    }
    server_metrics::get().request_duration.observe(static_cast<std::uint64_t>(mono_ns() - received));
    return out;
}

/// Runs the filter chain for one verified FilterRequest frame body and returns its answer frame.
/// `received`: when its frame was read (monotonic ns); the budget counts from there.
std::vector<std::uint8_t> handle_request(std::span<const std::uint8_t> frame, const daemon_config& cfg,
                                         const request_env& env, std::int64_t received) {
    thread_local context ctx;
    thread_local chain_result res;
    const auto& req = *wire::GetFrame(frame.data())->body_as_FilterRequest();  // verified by the reader
    prepare(ctx, req, received);
    if (ctx.mono_ns >= ctx.deadline_mono_ns)
        return answer(req, ctx, res, received, true, env);
    request_view view(req);
    run_chain(*cfg.filters, view, ctx, res);
    return answer(req, ctx, res, received, false, env);
}

/// A request of a route that may suspend: everything it needs lives here until it is answered.
struct suspendable_request {
    std::vector<std::uint8_t> frame;           ///< its own copy of the verified frame body
    std::shared_ptr<const daemon_config> cfg;  ///< pinned: a reload never changes a started request
    std::int64_t received = 0;
    context ctx;
    chain_result res;
    std::optional<request_view> view;
};

using answer_sink = std::function<void(std::vector<std::uint8_t>)>;

/// Runs a suspendable request's chain. `done` receives the answer frame exactly once, on whichever
/// thread ends the chain (possibly this one, before this returns).
void handle_request_async(std::shared_ptr<suspendable_request> st, const request_env& env, answer_sink done) {
    const auto& req = *wire::GetFrame(st->frame.data())->body_as_FilterRequest();  // verified by the reader
    prepare(st->ctx, req, st->received);
    if (st->ctx.mono_ns >= st->ctx.deadline_mono_ns)
        return done(answer(req, st->ctx, st->res, st->received, true, env));
    st->view.emplace(req);
    auto* raw = st.get();
    run_chain_async(*raw->cfg->filters, *raw->view, raw->ctx, raw->res,
                    [st = std::move(st), env, done = std::move(done)] {
                        done(answer(st->view->raw(), st->ctx, st->res, st->received, false, env));
                    });
}

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
//
// One connection. Every member function below runs on the connection's strand (the socket's
// executor) unless it says "Thread-safe"; completions of its reads, writes and timer come back there.
//
// I/O contract, chosen for the fewest system calls and wake-ups per request:
//  * One read at a time, into the frame splitter's buffer, of all the socket holds (room for at least
//    16 KiB, or for the rest of a larger frame under way); every complete frame in it is handled
//    before the next read.
//  * Answers produced while a read's frames are handled are written together once they all are; an
//    answer that completes later (pipelined, suspended) is written at once when it is the last one
//    outstanding, else with the others on the strand's next turn. A write first goes straight to the
//    socket (non-blocking sendmsg, no wake-up); only what the socket does not take becomes the one
//    asynchronous write in flight.
//  * No timer per read or write: one watchdog per connection ticks at a quarter of the stall timeout.
class session : public std::enable_shared_from_this<session> {
public:
    /// A connection's life. It only moves down this list (possibly skipping states).
    enum class state : std::uint8_t {
        handshake,  ///< reading; only a Hello is accepted
        open,       ///< reading; requests are answered
        draining,   ///< not reading (drain, eviction while busy, EOF, read error): every accepted request
                    ///< is answered and written, then the socket is closed
        failing,    ///< not reading: a connection-level error is queued; closed once the queue is written
        closed,     ///< socket closed; answers that complete later are dropped
    };

    session(server& srv, stream_protocol::socket sock, std::uint64_t id, std::uint32_t peer_uid)
        : srv_(srv),
          registry_(srv.registry_),
          sock_(std::move(sock)),
          id_(id),
          peer_uid_(peer_uid),
          cfg_(srv.config()),
          splitter_(cfg_->limits.max_frame_bytes),
          watchdog_(sock_.get_executor()) {}

    /// Starts reading and the watchdog. Called once, by the accept loop.
    void start() {
        server_metrics::get().connections_open.add(1);
        server_metrics::get().connections_total.inc();
        last_rx_ = clock_type::now();
        net::dispatch(sock_.get_executor(), [self = shared_from_this()] {
            // User-level non-blocking mode: flush() tries the socket directly and never blocks.
            boost::system::error_code ec;
            self->sock_.non_blocking(true, ec);
            if (ec) {
                log::warn("cannot make the socket non-blocking", {{"conn", self->id_}, {"error", ec.message()}});
                self->close_now();
                return;
            }
            self->start_read();
            self->arm_watchdog();
        });
    }

    /// Stop reading; close once every accepted request is answered. Thread-safe.
    void drain() {
        net::post(sock_.get_executor(), [self = shared_from_this()] { self->begin_draining(); });
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
    /// Thread-safe.
    void evict() {
        net::post(sock_.get_executor(), [self = shared_from_this()] {
            if (self->state_ != state::handshake && self->state_ != state::open)
                return;
            if (self->in_flight_ == 0 && !self->splitter_.mid_frame() && self->writeq_.empty() && !self->writing_) {
                self->fail_connection(errc::connection_evicted, "idle connection evicted at max_connections");
            } else {
                server_metrics::get().frame_error(errc::connection_evicted).inc();
                log::warn("evicting connection after its last answer", {{"conn", self->id_}});
                self->begin_draining();
            }
            self->settle();
        });
    }

    /// Runs once the pending read, write, watchdog and every posted completion have let go of the session.
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
    bool reading_state() const noexcept { return state_ == state::handshake || state_ == state::open; }

    /// Answers queued past this stop the reading (back-pressure on a peer that does not read them).
    std::size_t queue_limit() const noexcept {
        return 2 * static_cast<std::size_t>(cfg_->limits.max_in_flight_per_connection) + 16;
    }

    // ---- reading ----

    /// Starts the next read unless one is active, the connection no longer reads, or the answer queue is
    /// over its limit (the write that shrinks it calls here again).
    void start_read() {
        if (reading_ || !reading_state() || writeq_.size() > queue_limit())
            return;
        auto buf = splitter_.prepare(std::max<std::size_t>(16 * 1024, splitter_.missing()));
        reading_ = true;
        sock_.async_read_some(
            net::buffer(buf.data(), buf.size()),
            net::bind_cancellation_slot(read_cancel_.slot(),
                                        [self = shared_from_this()](const boost::system::error_code& ec,
                                                                    std::size_t n) { self->on_read(ec, n); }));
    }

    void on_read(const boost::system::error_code& ec, std::size_t n) {
        // reading_ stays set while the frames are handled: the splitter's buffer is the reader's until
        // then, so an answer that completes in between cannot start a read into it.
        if (state_ == state::closed) {
            reading_ = false;
            return;
        }
        if (ec) {
            if (!benign_close(ec))
                log::warn("read failed", {{"conn", id_}, {"error", ec.message()}});
            reading_ = false;
            begin_draining();  // EOF or error: answer what was accepted, then close
            settle();
            return;
        }
        splitter_.commit(n);
        last_rx_ = clock_type::now();
        handle_frames();
        reading_ = false;
        settle();
    }

    /// Handles every complete frame buffered, in order, until the connection stops taking frames.
    void handle_frames() {
        while (reading_state() || state_ == state::draining) {
            std::span<const std::uint8_t> frame;
            proto::frame_status st{};
            auto r = splitter_.next(frame, st);
            if (r == proto::frame_splitter::next_result::need_more)
                return;
            if (r == proto::frame_splitter::next_result::error) {
                fail_connection(st == proto::frame_status::too_large ? errc::frame_too_large : errc::malformed_frame,
                                proto::to_string(st));
                return;
            }
            on_frame(frame);
        }
    }

    /// Handles one frame body whose length is within the limit.
    void on_frame(std::span<const std::uint8_t> body) {
        proto::frame_status st{};
        const wire::Frame* f = proto::verify_frame(body, st);
        if (f == nullptr)
            return fail_connection(errc::malformed_frame, proto::to_string(st));
        if (state_ == state::handshake)
            return on_hello(f);
        if (f->body_type() != wire::Body::FilterRequest)
            return fail_connection(errc::unexpected_frame, wire::EnumNameBody(f->body_type()));
        on_request(body, *f->body_as_FilterRequest());
    }

    void on_hello(const wire::Frame* f) {
        const wire::Hello* h = f->body_as_Hello();
        if (h == nullptr)
            return fail_connection(errc::hello_required, wire::EnumNameBody(f->body_type()));
        if (h->version_min() > proto::protocol_version || h->version_max() < proto::protocol_version ||
            h->version_min() > h->version_max())
            return fail_connection(errc::version_mismatch,
                                   "daemon speaks version " + std::to_string(proto::protocol_version) + ", client " +
                                       std::to_string(h->version_min()) + ".." + std::to_string(h->version_max()));
        std::uint32_t daemon_max = cfg_->limits.max_frame_bytes;
        std::uint32_t agreed = h->max_frame_bytes() == 0 ? daemon_max : std::min(h->max_frame_bytes(), daemon_max);
        if (agreed < proto::min_frame_limit)
            return fail_connection(errc::malformed_frame,
                                   "max_frame_bytes below " + std::to_string(proto::min_frame_limit));
        splitter_.set_limit(agreed);
        std::uint64_t caps = h->capabilities() & proto::cap_filter_timings;
        env_ = {id_, agreed, (caps & proto::cap_filter_timings) != 0};
        state_ = state::open;
        enqueue(
            proto::encode_hello_ack(proto::protocol_version, agreed, caps, cfg_->limits.max_in_flight_per_connection));
        log::debug("client connected", {{"conn", id_}, {"uid", peer_uid_}, {"max_frame", agreed}});
    }

    void on_request(std::span<const std::uint8_t> body, const wire::FilterRequest& req) {
        std::uint64_t rid = req.id();
        if (rid == 0)
            return fail_connection(errc::bad_request_id, "request id 0 is reserved");
        if (!request_view(req).body_fields_consistent())
            return reply_error(rid, errc::malformed_request);
        if (state_ == state::draining)
            return reply_error(rid, errc::shutting_down);
        if (in_flight_ >= cfg_->limits.max_in_flight_per_connection)
            return reply_error(rid, errc::overloaded);
        std::int64_t received = mono_ns();
        if (req.budget_us() == 0) {
            server_metrics::get().deadline_misses.inc();
            return reply_error(rid, errc::deadline_exceeded);
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
                auto st = std::make_shared<suspendable_request>();
                st->frame.assign(body.begin(), body.end());
                st->cfg = std::move(cfg);
                st->received = received;
                answer_sink done = [self = shared_from_this()](std::vector<std::uint8_t> out) {
                    net::dispatch(self->sock_.get_executor(),
                                  [self, out = std::move(out)]() mutable { self->on_answer(std::move(out)); });
                };
                if (alone)
                    handle_request_async(std::move(st), env_, std::move(done));
                else
                    net::post(srv_.io(), [st = std::move(st), env = env_, done = std::move(done)]() mutable {
                        handle_request_async(std::move(st), env, std::move(done));
                    });
                return;
            }
        }
        if (alone)
            return enqueue(handle_request(body, *cfg, env_, received));
        ++in_flight_;
        // The frame buffer is reused by the next read, so the worker gets its own copy. The config is
        // pinned here: a reload never changes a request that has started.
        std::vector<std::uint8_t> copy(body.begin(), body.end());
        net::post(srv_.io(),
                  [self = shared_from_this(), copy = std::move(copy), cfg = std::move(cfg), env = env_, received] {
                      auto out = handle_request(copy, *cfg, env, received);
                      net::post(self->sock_.get_executor(),
                                [self, out = std::move(out)]() mutable { self->on_answer(std::move(out)); });
                  });
    }

    /// The answer of a request that ran off the reader's path (pipelined or suspended).
    void on_answer(std::vector<std::uint8_t> out) {
        --in_flight_;
        enqueue(std::move(out));
        if (in_flight_ == 0)
            return settle();  // the last one outstanding: nothing to wait for, write now
        // Others are still running: their answers, already queued on the strand, go in the same write.
        if (flush_scheduled_)
            return;
        flush_scheduled_ = true;
        net::post(sock_.get_executor(), [self = shared_from_this()] {
            self->flush_scheduled_ = false;
            self->settle();
        });
    }

    void reply_error(std::uint64_t rid, errc e) {
        server_metrics::get().error_reply(e).inc();
        enqueue(proto::encode_error(rid, to_wire(e), make_error_code(e).message()));
    }

    /// Reports a connection-level error (request id 0); the connection closes once it is written.
    void fail_connection(errc e, std::string_view detail) {
        server_metrics::get().frame_error(e).inc();
        log::warn("closing connection after protocol error",
                  {{"conn", id_}, {"reason", errc_label(e)}, {"detail", detail}});
        enqueue(proto::encode_error(0, to_wire(e), make_error_code(e).message() + ": " + std::string(detail)));
        state_ = state::failing;
    }

    void begin_draining() {
        if (!reading_state())
            return;
        state_ = state::draining;
        read_cancel_.emit(net::cancellation_type::terminal);  // no-op when no read is pending
    }

    // ---- writing ----

    void enqueue(std::vector<std::uint8_t> frame) {
        if (state_ != state::closed)
            writeq_.push_back(std::move(frame));
    }

    /// After every event: writes what is queued, closes a draining or failing connection that is done,
    /// resumes reading, and publishes idleness.
    void settle() {
        flush();
        bool written = writeq_.empty() && !writing_;
        if ((state_ == state::failing && written) || (state_ == state::draining && written && in_flight_ == 0))
            close_now();
        start_read();
        update_idle();
    }

    /// Writes the queued answers unless a write is in flight: first straight to the socket (no
    /// wake-up); what it does not take goes out as the one asynchronous write.
    void flush() {
        if (writing_ || writeq_.empty() || state_ == state::closed)
            return;
        gather();
        boost::system::error_code ec;
        std::size_t n = sock_.write_some(write_bufs_, ec);
        if (ec == net::error::would_block || ec == net::error::try_again) {
            ec = {};
            n = 0;
        }
        if (ec)
            return write_failed(ec);
        consume(n);
        if (writeq_.empty())
            return;
        gather();
        writing_ = true;
        write_started_ = clock_type::now();
        net::async_write(sock_, write_bufs_,
                         [self = shared_from_this()](const boost::system::error_code& wec, std::size_t wn) {
                             self->on_written(wec, wn);
                         });
    }

    void on_written(const boost::system::error_code& ec, std::size_t n) {
        writing_ = false;
        if (state_ == state::closed)
            return;
        if (ec)
            return write_failed(ec);
        consume(n);
        settle();
    }

    void write_failed(const boost::system::error_code& ec) {
        if (!benign_close(ec))
            log::warn("write failed", {{"conn", id_}, {"error", ec.message()}});
        close_now();
    }

    /// Points write_bufs_ at the unwritten bytes of up to 64 queued frames.
    void gather() {
        write_bufs_.clear();
        std::size_t batch = std::min<std::size_t>(writeq_.size(), 64);
        for (std::size_t i = 0; i < batch; ++i)
            write_bufs_.emplace_back(net::buffer(writeq_[i]) + (i == 0 ? head_written_ : 0));
    }

    /// Drops the first `n` written bytes from the queue.
    void consume(std::size_t n) noexcept {
        while (n > 0 && !writeq_.empty()) {
            std::size_t left = writeq_.front().size() - head_written_;
            if (n < left) {
                head_written_ += n;
                return;
            }
            n -= left;
            head_written_ = 0;
            writeq_.pop_front();
        }
    }

    // ---- watchdog and close ----

    /// Closes peers that stall mid-frame, mid-handshake, or stop reading what we write.
    void arm_watchdog() {
        auto tick = std::max<std::chrono::milliseconds>(std::chrono::milliseconds(5), cfg_->limits.stall_timeout / 4);
        watchdog_.expires_after(tick);
        watchdog_.async_wait([self = shared_from_this()](const boost::system::error_code&) { self->on_watchdog(); });
    }

    void on_watchdog() {
        if (state_ == state::closed)
            return;
        auto stall = cfg_->limits.stall_timeout;
        auto now = clock_type::now();
        bool stalled_read = (state_ == state::handshake || (state_ == state::open && splitter_.mid_frame())) &&
                            now - last_rx_ > stall;
        bool stalled_write = writing_ && now - write_started_ > stall;
        if (stalled_read || stalled_write) {
            server_metrics::get().frame_error(errc::stalled).inc();
            log::warn(
                "closing stalled connection",
                {{"conn", id_}, {"stage", stalled_write ? "write" : (state_ == state::handshake ? "hello" : "frame")}});
            close_now();
            return;
        }
        arm_watchdog();
    }

    /// Publishes whether the connection is idle, for eviction by the accept loop.
    void update_idle() noexcept {
        bool idle = state_ == state::open && in_flight_ == 0 && !splitter_.mid_frame() && writeq_.empty() && !writing_;
        if (!idle)
            idle_since_ns_.store(-1, std::memory_order_relaxed);
        else if (idle_since_ns_.load(std::memory_order_relaxed) < 0)
            idle_since_ns_.store(mono_ns(), std::memory_order_relaxed);
    }

    /// Ends the connection: the pending read and write complete with operation_aborted and let go.
    void close_now() {
        if (state_ == state::closed)
            return;
        state_ = state::closed;
        boost::system::error_code ec;
        sock_.shutdown(stream_protocol::socket::shutdown_both, ec);
        sock_.close(ec);
        watchdog_.cancel();
        idle_since_ns_.store(-1, std::memory_order_relaxed);
    }

    server& srv_;
    std::weak_ptr<server::session_registry> registry_;
    stream_protocol::socket sock_;
    const std::uint64_t id_;
    const std::uint32_t peer_uid_;
    std::shared_ptr<const daemon_config> cfg_;  ///< limits in force when the connection opened
    proto::frame_splitter splitter_;
    request_env env_{};  ///< set at Hello
    state state_ = state::handshake;
    std::uint32_t in_flight_ = 0;  ///< requests accepted and not yet answered (off the reader's path)
    // Operations in flight (at most one of each):
    bool reading_ = false;                          ///< a read is pending, or its frames are being handled
    bool writing_ = false;                          ///< an asynchronous write is pending
    bool flush_scheduled_ = false;                  ///< a settle() is posted to write answers that completed together
    std::deque<std::vector<std::uint8_t>> writeq_;  ///< whole frames; the first may be partly written
    std::size_t head_written_ = 0;                  ///< bytes of writeq_.front() already written
    std::vector<net::const_buffer> write_bufs_;     ///< the write in flight's view of writeq_
    net::steady_timer watchdog_;
    net::cancellation_signal read_cancel_;
    clock_type::time_point last_rx_{};
    clock_type::time_point write_started_{};
    std::atomic<std::int64_t> idle_since_ns_{-1};  ///< written on the strand, read by the accept loop
    std::atomic<bool> evicting_{false};
};

// ---- server ------------------------------------------------------------------------------------

server::server(net::io_context& ioc, std::shared_ptr<const daemon_config> cfg)
    : ioc_(ioc),
      cfg_(std::move(cfg)),
      acceptor_(ioc),
      registry_(std::make_shared<session_registry>()) {}

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
                        log::warn("rejected connection",
                                  {{"reason", "too_many_connections"}, {"limit", cfg->limits.max_connections}});
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
