#pragma once
// The real filterd binary as a child process (started from a config file, stopped by PID), and a
// private temporary directory. For tests that need whole processes: several replicas sharing Redis.

#include "tests/support/client.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace filterd::testing {

class filterd_process {
public:
    filterd_process(const std::string& config_path, const std::string& socket_path, const std::string& log_path)
        : socket_(socket_path),
          log_(log_path) {
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
            ::dup2(fd, 1);
            ::dup2(fd, 2);
            ::execl(FILTERD_BINARY, FILTERD_BINARY, "--config", config_path.c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
        for (int i = 0; i < 1000; ++i) {  // up to 10 s for the socket to accept
            client c(socket_);
            if (c.connected())
                return;
            int st = 0;
            if (::waitpid(pid_, &st, WNOHANG) == pid_) {
                pid_ = -1;
                FAIL("filterd exited at start-up; log:\n" << log_text());
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        FAIL("filterd did not start; log:\n" << log_text());
    }
    ~filterd_process() { kill(SIGKILL); }
    filterd_process(const filterd_process&) = delete;
    filterd_process& operator=(const filterd_process&) = delete;

    void kill(int sig) {
        if (pid_ <= 0)
            return;
        ::kill(pid_, sig);
        int st = 0;
        ::waitpid(pid_, &st, 0);
        pid_ = -1;
    }
    bool alive() const { return pid_ > 0 && ::kill(pid_, 0) == 0; }
    pid_t pid() const noexcept { return pid_; }
    const std::string& socket_path() const noexcept { return socket_; }
    std::string log_text() const {
        std::ifstream f(log_);
        std::stringstream ss;
        ss << f.rdbuf();
        return ss.str();
    }
    /// The admin port the daemon logged (admin.port 0 picks a free one); -1 if none within 5 s.
    int admin_port() const {
        std::regex re(R"re("msg":"admin listening".*"port":([0-9]+))re");
        for (int i = 0; i < 500; ++i) {
            std::smatch m;
            std::string text = log_text();
            if (std::regex_search(text, m, re))
                return std::stoi(m[1]);
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return -1;
    }

private:
    pid_t pid_ = -1;
    std::string socket_;
    std::string log_;
};

struct temp_dir {
    std::string path;
    temp_dir() {
        char tmpl[] = "/tmp/filterd-proc-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

}  // namespace filterd::testing
