#pragma once
// The Generic Cell Rate Algorithm (GCRA) in integer nanoseconds: the pure arithmetic, no state, no clock.
//
// A policy admits `quota` requests per `window` with a burst of `burst`:
//   emission interval  T   = window_ns / quota      (the sustained spacing between requests)
//   tolerance          tau = burst * T              (how far ahead of `now` the TAT may run)
// Each key stores a theoretical arrival time (TAT). For a request at `now`:
//   new_tat = max(tat, now) + T
//   allowed  when new_tat - now <= tau
//   remaining   = floor((tau - (new_tat - now)) / T)      (requests still admissible right now)
//   retry_after = new_tat - now - tau                     (on deny: wait this long, then one passes)
// A key never seen, or whose TAT has passed, behaves exactly like tat == now, which is why entries with
// tat <= now carry no information and may be reclaimed.
//
// Golden example (quota 5 / 1 s, burst 5, so T = 200 ms, tau = 1 s): five requests at t = 0 pass with
// remaining 4, 3, 2, 1, 0; the sixth is denied with retry_after 200 ms (Retry-After: 1); at t = 3 s a
// request passes with remaining 4.

#include <algorithm>
#include <cstdint>

namespace filterd::rate_limit {

inline constexpr std::int64_t ns_per_s = 1'000'000'000;

/// Parameters of one policy, computed once at config load. Contract: emission_ns >= 1 and
/// 0 < tolerance_ns, and tolerance_ns + emission_ns plus any clock value in use fits in int64
/// (config.cpp enforces tolerance_ns <= max_tolerance_ns).
struct gcra_params {
    std::int64_t emission_ns = 0;   ///< T
    std::int64_t tolerance_ns = 0;  ///< tau = burst * T

    friend bool operator==(const gcra_params&, const gcra_params&) = default;
};

/// Upper bound on tau accepted at load (about 146 years): keeps every sum below INT64_MAX for any
/// monotonic clock value a real process sees.
inline constexpr std::int64_t max_tolerance_ns = std::int64_t{1} << 62;

struct gcra_decision {
    bool allowed = false;
    std::int64_t new_tat = 0;         ///< the TAT to store if the request commits (only when allowed)
    std::int64_t remaining = 0;       ///< requests still admissible after this one (0 on deny)
    std::int64_t retry_after_ns = 0;  ///< on deny: time until one request would pass (> 0); 0 on allow
    std::int64_t reset_ns = 0;        ///< time until the key is back to a full burst (TAT - now), >= 0
};

/// Decides one request for a key whose stored TAT is `tat` (pass `now` for a key with no entry).
/// Pure and total: never fails for parameters that satisfy the contract above.
constexpr gcra_decision gcra_decide(std::int64_t tat, std::int64_t now, const gcra_params& p) noexcept {
    gcra_decision d;
    const std::int64_t base = std::max(tat, now);
    const std::int64_t new_tat = base + p.emission_ns;
    const std::int64_t ahead = new_tat - now;
    if (ahead <= p.tolerance_ns) {
        d.allowed = true;
        d.new_tat = new_tat;
        d.remaining = (p.tolerance_ns - ahead) / p.emission_ns;
        d.reset_ns = ahead;
    } else {
        d.allowed = false;
        d.new_tat = tat;
        d.retry_after_ns = ahead - p.tolerance_ns;
        d.reset_ns = base - now;
    }
    return d;
}

/// Whole seconds, rounded up (Retry-After and the reset fields never promise earlier than the truth).
constexpr std::int64_t ceil_seconds(std::int64_t ns) noexcept { return ns <= 0 ? 0 : (ns + ns_per_s - 1) / ns_per_s; }

}  // namespace filterd::rate_limit
