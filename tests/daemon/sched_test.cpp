// The I/O threads' CPU slice: asked of the real kernel, read back from /proc.
#include "daemon/sched.hpp"

#include <catch2/catch.hpp>

#include <cerrno>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>

using namespace filterd;

TEST_CASE("set_thread_slice gives the calling thread that slice and keeps its nice value", "[sched]") {
    // A thread of its own: the slice and nice value change only there, not in the test runner's thread.
    // Catch2's assertions are not for other threads: the thread records, the test checks after join.
    int err = -1, nice_set = -1, nice_after = 0;
    std::optional<std::chrono::nanoseconds> before, after;
    std::thread t([&] {
        nice_set = ::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), 5);
        before = thread_slice();
        err = set_thread_slice(std::chrono::microseconds(300));
        after = thread_slice();
        errno = 0;
        nice_after = ::getpriority(PRIO_PROCESS, 0);
    });
    t.join();
    REQUIRE(nice_set == 0);
    CHECK(err == 0);
    CHECK(nice_after == 5);
    if (!before) {
        WARN("this kernel reports no se.slice in /proc/thread-self/sched; the slice cannot be read back");
        return;
    }
    REQUIRE(after);
    CHECK(after->count() == 300'000);
    CHECK(before->count() != 300'000);
}
