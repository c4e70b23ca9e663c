#include "daemon/sched.hpp"

#include <cerrno>
#include <cstdint>
#include <fstream>
#include <sched.h>
#include <string>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace filterd {

namespace {

// The kernel's struct sched_attr (include/uapi/linux/sched/types.h); glibc 2.36 has no wrapper.
struct sched_attr {
    std::uint32_t size;
    std::uint32_t sched_policy;
    std::uint64_t sched_flags;
    std::int32_t sched_nice;
    std::uint32_t sched_priority;
    std::uint64_t sched_runtime;
    std::uint64_t sched_deadline;
    std::uint64_t sched_period;
    std::uint32_t sched_util_min;
    std::uint32_t sched_util_max;
};

}  // namespace

int set_thread_slice(std::chrono::microseconds slice) noexcept {
    int policy = ::sched_getscheduler(0);
    if (policy < 0)
        return errno;
    if (policy != SCHED_OTHER && policy != SCHED_BATCH)
        return 0;
    errno = 0;
    int nice = ::getpriority(PRIO_PROCESS, 0);  // Linux: the calling thread's
    if (nice == -1 && errno != 0)
        return errno;
    sched_attr attr{};
    attr.size = sizeof attr;
    attr.sched_policy = static_cast<std::uint32_t>(policy);
    attr.sched_nice = nice;
    attr.sched_runtime = static_cast<std::uint64_t>(std::chrono::nanoseconds(slice).count());
    if (::syscall(SYS_sched_setattr, 0, &attr, 0) != 0)
        return errno;
    return 0;
}

std::optional<std::chrono::nanoseconds> thread_slice() {
    std::ifstream in("/proc/thread-self/sched");
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("se.slice", 0) != 0)
            continue;
        auto colon = line.find(':');
        if (colon == std::string::npos)
            return std::nullopt;
        try {
            return std::chrono::nanoseconds(std::stoll(line.substr(colon + 1)));
        } catch (const std::exception&) {
            return std::nullopt;
        }
    }
    return std::nullopt;
}

}  // namespace filterd
