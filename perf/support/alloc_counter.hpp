#pragma once
// Counts C++ heap allocations, for the benchmarks that report allocations per request and the tests
// that prove a path does not allocate (or survives when allocation fails).
//
// This header DEFINES the replaceable global operator new / delete (they cannot be inline). Include it
// in exactly one translation unit of a binary: a second one is a link error (multiple definition of
// operator new), never a silent second counter.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace filterd::alloc_counter {

/// operator new calls in the whole process since start.
inline std::atomic<std::uint64_t> count{0};

/// Failure injection on this thread: -1 (the default) never fails; n >= 0 lets n more operator new
/// calls succeed, then every one throws std::bad_alloc until it is set back to -1.
inline thread_local std::int64_t fail_after = -1;

/// operator new calls so far.
inline std::uint64_t now() noexcept { return count.load(std::memory_order_relaxed); }

}  // namespace filterd::alloc_counter

// GCC cannot see that this operator new uses malloc, and warns on the matching free.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
    filterd::alloc_counter::count.fetch_add(1, std::memory_order_relaxed);
    std::int64_t& budget = filterd::alloc_counter::fail_after;
    if (budget == 0)
        throw std::bad_alloc();
    if (budget > 0)
        --budget;
    if (void* p = std::malloc(n == 0 ? 1 : n))
        return p;
    throw std::bad_alloc();
}
// The nothrow form too (Catch allocates its test registry with it): left to the runtime, it would come
// from a different allocator than the operator delete below frees into (AddressSanitizer reports
// alloc-dealloc-mismatch at exit).
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    filterd::alloc_counter::count.fetch_add(1, std::memory_order_relaxed);
    std::int64_t& budget = filterd::alloc_counter::fail_after;
    if (budget == 0)
        return nullptr;
    if (budget > 0)
        --budget;
    return std::malloc(n == 0 ? 1 : n);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
#pragma GCC diagnostic pop
