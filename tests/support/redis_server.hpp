#pragma once
// Real redis-server processes for tests: started on free loopback ports, stopped by PID.
// Header-only so that every test binary (filter tests and daemon tests) can use it.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace filterd::testing {

/// A loopback TCP port nobody listens on right now.
inline std::uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
        throw std::runtime_error("free_port: cannot bind");
    ::close(fd);
    return ntohs(a.sin_port);
}

/// A free port P whose cluster bus port P + 10000 is free too (Redis Cluster needs P <= 55535).
inline std::uint16_t free_cluster_port() {
    for (int i = 0; i < 1000; ++i) {
        std::uint16_t p = free_port();
        if (p > 55535)
            continue;
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(static_cast<std::uint16_t>(p + 10000));
        bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        ::close(fd);
        if (ok)
            return p;
    }
    throw std::runtime_error("free_cluster_port: none found");
}

/// Runs a shell command and returns its standard output.
inline std::string run_capture(const std::string& cmd) {
    std::string out;
    FILE* p = ::popen(cmd.c_str(), "r");
    if (p == nullptr)
        return out;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
        out.append(buf, n);
    ::pclose(p);
    return out;
}

/// One redis-server child process on 127.0.0.1:<port> (port picked at construction and kept across
/// restarts), persistence off, its files in a private temporary directory.
class redis_server {
public:
    /// @param cli_flags  extra redis-cli flags to reach it (e.g. --tls --cacert F for a TLS-only server)
    explicit redis_server(std::vector<std::string> extra_args = {}, bool cluster_node = false,
                          std::string cli_flags = "")
        : port_(cluster_node ? free_cluster_port() : free_port()),
          extra_(std::move(extra_args)),
          cli_flags_(std::move(cli_flags)) {
        char tmpl[] = "/tmp/filterd-redis-XXXXXX";
        if (::mkdtemp(tmpl) == nullptr)
            throw std::runtime_error("mkdtemp failed");
        dir_ = tmpl;
        start();
    }
    ~redis_server() {
        stop();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    redis_server(const redis_server&) = delete;
    redis_server& operator=(const redis_server&) = delete;

    std::uint16_t port() const noexcept { return port_; }
    std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
    pid_t pid() const noexcept { return pid_; }
    const std::string& dir() const noexcept { return dir_; }

    /// Starts the server (again) and waits until it answers PING.
    void start() {
        if (pid_ > 0)
            return;
        std::vector<std::string> args = {"redis-server",
                                         "--port",
                                         std::to_string(port_),
                                         "--bind",
                                         "127.0.0.1",
                                         "--save",
                                         "",
                                         "--appendonly",
                                         "no",
                                         "--dir",
                                         dir_,
                                         "--logfile",
                                         dir_ + "/redis.log",
                                         "--daemonize",
                                         "no",
                                         "--protected-mode",
                                         "no"};
        args.insert(args.end(), extra_.begin(), extra_.end());
        pid_ = ::fork();
        if (pid_ == 0) {
            std::vector<char*> argv;
            for (auto& a : args)
                argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execvp("redis-server", argv.data());
            ::_exit(127);
        }
        if (pid_ < 0)
            throw std::runtime_error("fork failed");
        auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (std::chrono::steady_clock::now() < until) {
            auto out = cli("PING");  // PONG, or NOAUTH when the default user is off: either way it is up
            if (out.find("PONG") != std::string::npos || out.find("NOAUTH") != std::string::npos)
                return;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        kill();
        throw std::runtime_error("redis-server did not start on port " + std::to_string(port_));
    }

    /// Kills the server (SIGKILL: no goodbye to clients) and reaps it.
    void kill() {
        if (pid_ <= 0)
            return;
        ::kill(pid_, SIGCONT);
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }
    void stop() { kill(); }

    void pause() { ::kill(pid_, SIGSTOP); }
    void resume() { ::kill(pid_, SIGCONT); }

    /// redis-cli against this server (arguments are passed to the shell as written).
    std::string cli(const std::string& args, const std::string& auth = "--no-auth-warning") const {
        return run_capture("redis-cli -h 127.0.0.1 -p " + std::to_string(port_) + " " + cli_flags_ + " " + auth + " " +
                           args + " 2>/dev/null");
    }

private:
    std::uint16_t port_;
    std::vector<std::string> extra_;
    std::string cli_flags_;
    std::string dir_;
    pid_t pid_ = -1;
};

/// A Redis Cluster of three masters made with `redis-cli --cluster create`, with `replicas` replicas
/// per master (nodes 0-2 are the first masters; the replicas follow). Ready when every node says
/// cluster_state:ok and every replica's link to its master is up.
class redis_cluster {
public:
    explicit redis_cluster(int replicas = 0, int node_timeout_ms = 2000) {
        for (int i = 0; i < 3 * (1 + replicas); ++i)
            nodes_.emplace_back(std::make_unique<redis_server>(
                std::vector<std::string>{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                         "--cluster-node-timeout", std::to_string(node_timeout_ms)},
                true));
        std::string addrs;
        for (auto& n : nodes_)
            addrs += " " + n->address();
        run_capture("redis-cli --cluster create" + addrs + " --cluster-replicas " + std::to_string(replicas) +
                    " --cluster-yes >/dev/null 2>&1");
        auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        for (;;) {
            bool ok = true;
            for (auto& n : nodes_) {
                ok = ok && n->cli("CLUSTER INFO").find("cluster_state:ok") != std::string::npos;
                auto repl = n->cli("INFO replication");
                if (repl.find("role:slave") != std::string::npos)
                    ok = ok && repl.find("master_link_status:up") != std::string::npos;
            }
            if (ok)
                break;
            if (std::chrono::steady_clock::now() > until)
                throw std::runtime_error("redis cluster did not become ready");
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }
    redis_server& node(std::size_t i) { return *nodes_.at(i); }
    std::size_t size() const noexcept { return nodes_.size(); }

    /// The node currently serving `slot` (by CLUSTER SHARDS-free parsing of CLUSTER NODES).
    std::string node_id(std::size_t i) { return trim(nodes_.at(i)->cli("CLUSTER MYID")); }

    /// Index of the master that serves `slot`, as the live node `asked` sees the cluster (size() if none).
    std::size_t master_of(int slot, std::size_t asked = 0) {
        for (const auto& l : cluster_nodes(asked)) {
            if (l.size() < 9 || l[2].find("master") == std::string::npos || l[2].find("fail") != std::string::npos)
                continue;
            for (std::size_t i = 8; i < l.size(); ++i) {
                auto dash = l[i].find('-');
                if (l[i].front() == '[')
                    continue;  // a slot being migrated or imported
                int lo = std::stoi(l[i].substr(0, dash));
                int hi = dash == std::string::npos ? lo : std::stoi(l[i].substr(dash + 1));
                if (slot >= lo && slot <= hi)
                    return index_of(l[1]);
            }
        }
        return nodes_.size();
    }

    /// Index of a replica of master `m` (size() if none).
    std::size_t replica_of(std::size_t m) {
        std::string id = node_id(m);
        for (const auto& l : cluster_nodes(m))
            if (l.size() > 3 && l[3] == id)
                return index_of(l[1]);
        return nodes_.size();
    }

    /// The master's replication offset and the replica's: equal when the replica has every write.
    static long long repl_offset(redis_server& n, const std::string& field) {
        auto info = n.cli("INFO replication");
        auto p = info.find(field + ":");
        return p == std::string::npos ? -1 : std::stoll(info.substr(p + field.size() + 1));
    }

    /// Moves one slot from node `from` to node `to` with its keys (MIGRATE), as redis-cli reshard does.
    void migrate_slot(int slot, std::size_t from, std::size_t to) {
        auto& src = *nodes_.at(from);
        auto& dst = *nodes_.at(to);
        std::string src_id = node_id(from), dst_id = node_id(to);
        dst.cli("CLUSTER SETSLOT " + std::to_string(slot) + " IMPORTING " + src_id);
        src.cli("CLUSTER SETSLOT " + std::to_string(slot) + " MIGRATING " + dst_id);
        for (;;) {
            std::string keys = src.cli("CLUSTER GETKEYSINSLOT " + std::to_string(slot) + " 100");
            if (trim(keys).empty())
                break;
            std::string list;
            std::size_t pos = 0;
            while (pos < keys.size()) {
                auto nl = keys.find('\n', pos);
                std::string k = keys.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
                if (!k.empty())
                    list += " '" + k + "'";
                if (nl == std::string::npos)
                    break;
                pos = nl + 1;
            }
            src.cli("MIGRATE 127.0.0.1 " + std::to_string(dst.port()) + " \"\" 0 5000 KEYS" + list);
        }
        for (auto& n : nodes_)
            n->cli("CLUSTER SETSLOT " + std::to_string(slot) + " NODE " + dst_id);
    }

    static std::string trim(std::string s) {
        while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' '))
            s.pop_back();
        return s;
    }

private:
    /// CLUSTER NODES of node `i`, one vector of fields per line.
    std::vector<std::vector<std::string>> cluster_nodes(std::size_t i) {
        std::vector<std::vector<std::string>> out;
        std::string text = nodes_.at(i)->cli("CLUSTER NODES");
        std::size_t pos = 0;
        while (pos < text.size()) {
            auto nl = text.find('\n', pos);
            std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
            std::vector<std::string> fields;
            std::size_t f = 0;
            while (f < line.size()) {
                auto sp = line.find(' ', f);
                std::string w = trim(line.substr(f, sp == std::string::npos ? std::string::npos : sp - f));
                if (!w.empty())
                    fields.push_back(w);
                if (sp == std::string::npos)
                    break;
                f = sp + 1;
            }
            if (!fields.empty())
                out.push_back(std::move(fields));
            if (nl == std::string::npos)
                break;
            pos = nl + 1;
        }
        return out;
    }

    /// Index of the node with address "ip:port@busport".
    std::size_t index_of(const std::string& addr) {
        auto colon = addr.rfind(':', addr.find('@'));
        int port = std::stoi(addr.substr(colon + 1, addr.find('@') - colon - 1));
        for (std::size_t i = 0; i < nodes_.size(); ++i)
            if (nodes_[i]->port() == port)
                return i;
        return nodes_.size();
    }

    std::vector<std::unique_ptr<redis_server>> nodes_;
};

}  // namespace filterd::testing
