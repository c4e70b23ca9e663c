#pragma once
// An asynchronous Redis client for the filters' shared state (nonces, rate-limit buckets).
//
// Wire handling is hiredis's: commands are formatted with redisFormatCommandArgv and replies parsed
// by its redisReader. All socket I/O is Boost.Asio, on the client's own strand; no thread ever blocks
// on Redis.
//
// Contract
//  * command()/eval() may be called from any thread. The callback runs exactly once, on the client's
//    strand, with the reply or an error, and never later than the request's deadline (bounded also by
//    `options::command_timeout`). A reply that arrives after its request gave up is read and dropped:
//    replies are matched to requests by order on each connection, so a late reply can never reach a
//    later request.
//  * Pipelining: concurrent requests on one connection are written in batches, one write in flight.
//  * A connection that errors, closes, answers garbage, or stops answering (its oldest request waits
//    past command_timeout) is closed; every request waiting on it fails with `disconnected`, and it
//    reconnects with exponential backoff (options::backoff_min..backoff_max). While it is down,
//    requests fail at once with `disconnected`: callers get a deterministic answer, not a queue.
//  * Memory is bounded: at most `max_pending` requests wait per connection; past it, `overloaded`.
//  * eval() sends EVALSHA; on NOSCRIPT (a restarted or failed-over server) it resends the request as
//    EVAL, which loads the script again, within the same deadline.
//  * On connect: TLS handshake (optional), AUTH (optional ACL user and password from a secret
//    reference), then PING; the connection takes requests only after PONG, within connect_timeout.
//  * Cluster mode: the slot map comes from CLUSTER SLOTS; each request goes to the master of its first
//    key's slot; MOVED updates the map and retries there, ASK retries once on the named node with
//    ASKING. The map is read again after a connection failure, CLUSTERDOWN or TRYAGAIN, and while a
//    slot's master cannot be reached (at most every 100 ms), so requests reach a promoted replica as
//    soon as the cluster names it. A map read asks the nodes with a ready connection first, then the
//    other known nodes and the seeds, moving on at once past a node that cannot answer (a dead seed
//    does not stop it). A node that left the map is not reconnected until a request needs it. A
//    request is retried at most `max_redirects` times, always within its deadline; a request for a
//    master whose connection is backing off fails at once with `disconnected`.
//  * pool_size: that many connections per node, opened on first use; requests go round robin over
//    them, each connection pipelining with one write in flight. Requests on different connections are
//    not ordered with each other.
//  * Host names in seeds are resolved by Asio's asynchronous resolver at each connection attempt; a
//    name that does not resolve is a connection failure (logged with the resolver's error).
//  * State changes (a node up or down, a new slot map) are logged once each and counted in metrics:
//      filterd_redis_connected{node}                  gauge: 1 while a connection to the node is ready
//      filterd_redis_slot_map_master{node}            gauge (cluster): 1 while the node is a master in the map
//      filterd_redis_requests_total{result}           ok | server_error | timeout | disconnected | overloaded
//      filterd_redis_redirects_total{kind}            moved | ask
//      filterd_redis_reconnects_total                 connection attempts after a failure
//      filterd_redis_slot_map_refreshes_total{result} ok | failed (one per node asked)

#include "filters/common/config_reader.hpp"
#include "filters/common/secret.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct redisReply;

namespace boost::asio {
class io_context;
}

namespace filterd::redis {

using clock = std::chrono::steady_clock;

/// Why a request got no reply. `server_error` comes with the server's error reply.
enum class errc : std::uint8_t {
    ok = 0,
    server_error,  ///< Redis answered an error (the reply holds it)
    timeout,       ///< the deadline passed before the reply
    disconnected,  ///< no ready connection, or it was lost with the request in flight
    overloaded,    ///< too many requests waiting on the connection
};
std::string_view to_string(errc e) noexcept;

/// Read-only view of one hiredis reply (or an element of one).
class reply_view {
public:
    explicit reply_view(const redisReply* r) noexcept : r_(r) {}
    bool valid() const noexcept { return r_ != nullptr; }
    bool is_error() const noexcept;
    bool is_nil() const noexcept;
    bool is_integer() const noexcept;
    bool is_string() const noexcept;  ///< bulk string or status
    bool is_array() const noexcept;
    long long integer() const noexcept;
    std::string_view str() const noexcept;  ///< string, status or error text
    std::size_t size() const noexcept;      ///< array length (0 for non-arrays)
    reply_view operator[](std::size_t i) const noexcept;

private:
    const redisReply* r_;
};

/// An owned reply.
class reply {
public:
    reply() = default;
    explicit reply(redisReply* r) noexcept : r_(r) {}
    reply_view view() const noexcept { return reply_view(r_.get()); }
    explicit operator bool() const noexcept { return r_ != nullptr; }

private:
    struct deleter {
        void operator()(redisReply* r) const noexcept;
    };
    std::unique_ptr<redisReply, deleter> r_;
};

struct result {
    errc error = errc::ok;
    reply value;  ///< set for ok and server_error
};

using callback = std::function<void(result&&)>;

struct endpoint {
    std::string host;
    std::uint16_t port = 0;
    std::string str() const { return host + ":" + std::to_string(port); }
    friend bool operator==(const endpoint&, const endpoint&) = default;
};

struct tls_options {
    bool enabled = false;
    std::string ca_file;      ///< PEM bundle that must sign the server's certificate (required with TLS)
    std::string server_name;  ///< name checked against the certificate (default: the host)
    std::string cert_file;    ///< optional client certificate (PEM), for servers with tls-auth-clients
    std::string key_file;
};

struct options {
    std::vector<endpoint> seeds;  ///< standalone: one address; cluster: one or more seed nodes
    bool cluster = false;
    std::string user;  ///< ACL user (empty: AUTH with the password only, or no AUTH)
    secret password;   ///< from an env or file reference; empty: no AUTH
    tls_options tls;
    std::chrono::milliseconds connect_timeout{500};
    std::chrono::milliseconds command_timeout{100};  ///< upper bound on any request's wait
    std::size_t pool_size = 1;                       ///< connections per node
    std::size_t max_pending = 10'000;                ///< requests waiting per connection
    std::chrono::milliseconds backoff_min{20};
    std::chrono::milliseconds backoff_max{1000};
    int max_redirects = 3;

    /// A text that identifies these options (secrets included only as a digest): clients are shared
    /// between filters whose options are equal.
    std::string identity() const;
};

/// Reads a `redis` config object:
///   {"address": "host:port"} | {"cluster_seeds": ["host:port", ...]},
///   "user": "...", "password": {"env"|"file": ...}, "timeout_ms": 1..10000 (default 100),
///   "connect_timeout_ms": 1..60000 (default 500), "pool_size": 1..64 (default 1),
///   "max_pending": 1..1000000 (default 10000),
///   "tls": {"ca_file": "...", "server_name": "...", "cert_file": "...", "key_file": "..."}
/// @throws config_error naming the key.
options parse_options(config_object& o);

/// Reads a filter's `"store": "local" | "redis"` (default "local") and, with "redis", its required
/// `redis` object (parse_options). Returns the Redis options, or nullopt for "local", where a `redis`
/// key is refused.
/// @throws config_error naming the key.
std::optional<options> parse_store(config_object& o);

/// A Lua script sent by its SHA-1 (EVALSHA), with the body kept for NOSCRIPT.
class script {
public:
    explicit script(std::string body);
    const std::string& body() const noexcept { return body_; }
    const std::string& sha1() const noexcept { return sha1_; }

private:
    std::string body_;
    std::string sha1_;
};

/// Cluster hash slot of a key (CRC16/XMODEM mod 16384, honouring {hash tags}).
std::uint16_t key_slot(std::string_view key) noexcept;

/// A client-influenced value made safe for a key: kept as is when it is 1-64 characters of
/// [A-Za-z0-9._:@-] (so keys stay readable), else "~" and the hex SHA-256 of the value (so no value
/// can break a {hash tag} or make a key long).
std::string key_part(std::string_view v);

/// The key prefix of everything stored for one merchant: "filterd:{m:<merchant>}:". The hash tag puts
/// all of a merchant's keys (nonces and merchant-keyed rate limits) in one cluster slot.
std::string merchant_prefix(std::string_view merchant_id);

class client_impl;

class client {
public:
    /// Does not connect: connections open on first use (and again after a failure).
    client(boost::asio::any_io_executor ex, options o);
    /// The same, bound at first use to the executor given to use_io_context() (filterd's own I/O
    /// threads), or else to a dedicated I/O thread.
    explicit client(options o);
    ~client();
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    /// Sends one command. In cluster mode it is routed by argv[route_key] (0 = no key: any node).
    void command(std::vector<std::string> argv, clock::time_point deadline, callback cb, std::size_t route_key = 0);

    /// Runs `s` with KEYS = keys and ARGV = args (EVALSHA, then EVAL on NOSCRIPT). In cluster mode the
    /// keys must share one slot; the request is routed by keys[0].
    void eval(std::shared_ptr<const script> s, std::vector<std::string> keys, std::vector<std::string> args,
              clock::time_point deadline, callback cb);

    /// Closes every connection; waiting requests fail with `disconnected`. New requests still work
    /// (they reconnect). Thread-safe.
    void reset();

    const options& opts() const noexcept;

private:
    client_impl& impl();

    options opts_;
    std::optional<boost::asio::any_io_executor> ex_;
    std::once_flag bound_;
    std::shared_ptr<client_impl> impl_;
};

/// Makes clients created without an executor run on `ioc` (filterd's I/O threads, so a request and
/// its Redis I/O share threads: no cross-thread wake-up). Call before the first request; clients
/// already bound keep their executor. Pass nullptr to go back to the dedicated thread. The caller
/// destroys every client bound to `ioc` before `ioc` itself.
void use_io_context(boost::asio::io_context* ioc) noexcept;

/// The process's Redis clients, shared by filters whose options are equal (so a nonce and a rate
/// limit of one request can go out in one round trip on one connection). They bind at first use to
/// the io_context given to use_io_context(), else to one dedicated I/O thread started on first use.
std::shared_ptr<client> shared_client(const options& o);

}  // namespace filterd::redis
