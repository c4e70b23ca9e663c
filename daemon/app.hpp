#pragma once
// The filterd process: config, filter socket server, admin listener, signals.
//
//   SIGHUP          reload the config file; the new one is fully validated before an atomic swap; a bad
//                   one is logged (naming the key) and the old one stays.
//   SIGTERM/SIGINT  stop accepting, mark not ready, let sessions answer what they accepted, wait at most
//                   limits.drain_timeout_ms, close the rest, exit 0.
// Exit codes: 0 after a drain, 2 for a config error (the message names the key), 1 for other start-up
// failures (socket or admin port cannot be bound).

#include "filters/common/filter.hpp"

#include <string>

namespace filterd {

struct options {
    std::string config_path;
    std::string socket_override;  ///< --socket, replaces listen.socket
    bool check_only = false;      ///< --check: validate the config and exit
};

/// Parses argv. On error or --help, prints to stderr/stdout and returns false with `exit_code` set.
bool parse_options(int argc, char** argv, options& out, int& exit_code);

/// Runs until SIGTERM/SIGINT and returns the process exit code.
int run_daemon(const options& opt, const registry& reg = registry::builtin());

}  // namespace filterd
