// The I/O threads' CPU slice under the kernel's fair scheduler.
#pragma once

#include <chrono>
#include <optional>

namespace filterd {

/// Asks the fair scheduler for `slice` as the calling thread's CPU slice (sched_setattr's
/// sched_runtime, which EEVDF honours since Linux 6.12: a woken thread with a shorter slice than the
/// running task's gets the CPU sooner). The thread's policy and nice value are kept; a thread not under
/// the fair scheduler (SCHED_FIFO, SCHED_RR, ...) is left alone. Returns 0 or the errno.
int set_thread_slice(std::chrono::microseconds slice) noexcept;

/// The calling thread's slice as the kernel reports it, or nullopt where it reports none.
std::optional<std::chrono::nanoseconds> thread_slice();

}  // namespace filterd
