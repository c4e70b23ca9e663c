#pragma once
// Bounded, sharded GCRA state for one policy: key hash -> theoretical arrival time (TAT).
//
// Contract
//   - At most `max_keys` keys are tracked per policy (the per-shard limits sum to exactly max_keys).
//   - A key that is not tracked and finds its shard full is charged to the policy's single overflow
//     bucket, shared by all such keys and counted in filterd_rate_limit_overflow_total{policy}. Memory
//     never grows after construction: all slots are allocated up front.
//   - Entries whose TAT has passed carry no information (gcra.hpp) and are reclaimed: reused in place
//     when a probe meets one, and swept out of a full shard at most once per `sweep_interval_ns`
//     (bounding the O(shard) sweep cost an attacker cycling keys can cause).
//   - Keys are stored as SipHash-2-4 values under a random per-table key (keyed_hash.hpp).
//   - Thread-safety: each shard and the overflow bucket have their own mutex. The filter locks what a
//     request needs with `lock_set` (below), which imposes a global order, so a request can check all of
//     its policies and then commit all or none of them without deadlock.
// Nothing here throws after construction, allocates on the request path, or reads a clock.

#include "core/metrics.hpp"
#include "filters/rate_limit/config.hpp"

#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

namespace filterd::rate_limit {

/// Minimum spacing of sweeps of one full shard.
inline constexpr std::int64_t sweep_interval_ns = 10'000'000;

struct slot {
    std::uint64_t key = 0;  ///< 0 = empty (a real hash of 0 is stored as 1)
    std::int64_t tat = 0;
};

/// One shard: an open-addressing (linear probing) table at most half full, and its mutex.
struct alignas(64) shard {
    std::mutex mu;
    std::vector<slot> slots;
    std::size_t mask = 0;
    std::size_t used = 0;   ///< occupied slots (live or expired-not-yet-reclaimed)
    std::size_t limit = 0;  ///< this shard's share of max_keys
    std::int64_t next_sweep_ns = INT64_MIN;
};

/// Where a request's key lives, found under the shard lock and valid while it is held.
struct placement {
    shard* sh = nullptr;
    slot* entry = nullptr;     ///< the key's slot, or the slot it will take on commit; nullptr = overflow
    bool is_new = false;       ///< the key is not tracked yet (entry is where it would go)
    bool takes_empty = false;  ///< committing fills an empty slot (used += 1)
};

class policy_table {
public:
    /// @param p  the validated policy; its name labels the metrics. Allocates every slot. @throws bad_alloc.
    explicit policy_table(const policy_config& p);

    const policy_config& config() const noexcept { return cfg_; }

    /// Hash of a key made of one or two parts (two parts are separated so ("ab","c") != ("a","bc")).
    std::uint64_t hash(std::string_view a, std::string_view b = {}, bool two_parts = false) const noexcept;

    shard& shard_for(std::uint64_t h) noexcept { return shards_[h & shard_mask_]; }

    /// Finds the key (shard lock held). Reclaims expired entries of a full shard when the sweep interval
    /// allows. Returns entry == nullptr when the key must use the overflow bucket.
    placement locate(shard& sh, std::uint64_t h, std::int64_t now) noexcept;

    /// Stores `new_tat` for a located key (shard lock held; overflow lock held for overflow placements).
    void commit(const placement& pl, std::uint64_t h, std::int64_t new_tat) noexcept;

    std::mutex& overflow_mutex() noexcept { return overflow_mu_; }
    std::int64_t overflow_tat() const noexcept { return overflow_tat_; }  ///< overflow lock held

    // Metrics (declared in one list in filter.cpp's docs and in docs/filters/rate-limit.md).
    counter& allowed() noexcept { return *allowed_; }
    counter& denied() noexcept { return *denied_; }
    counter& errors() noexcept { return *errors_; }
    counter& overflowed() noexcept { return *overflow_; }
    gauge& tracked() noexcept { return *tracked_; }

    std::size_t shard_count() const noexcept { return shards_.size(); }
    /// Total tracked keys (takes every shard lock; for tests and diagnostics only).
    std::size_t tracked_keys();

private:
    std::size_t home(std::uint64_t h) const noexcept { return (h >> 8); }
    std::size_t sweep(shard& sh, std::int64_t now) noexcept;
    void erase_at(shard& sh, std::size_t i) noexcept;

    policy_config cfg_;
    std::uint64_t k0_ = 0, k1_ = 0;
    std::vector<shard> shards_;
    std::size_t shard_mask_ = 0;

    std::mutex overflow_mu_;
    std::int64_t overflow_tat_ = INT64_MIN;

    counter* allowed_ = nullptr;
    counter* denied_ = nullptr;
    counter* errors_ = nullptr;
    counter* overflow_ = nullptr;
    gauge* tracked_ = nullptr;
};

/// Up to 2 * max_policies_per_route mutexes, locked in address order (a global total order, so two
/// requests naming the same policies in different route orders cannot deadlock) and released on
/// destruction. Shard mutexes are all taken in one `lock_all` before any overflow mutex, and overflow
/// mutexes (leaf locks) never wait while another thread could need them to finish its shard phase.
class lock_set {
public:
    lock_set() = default;
    lock_set(const lock_set&) = delete;
    lock_set& operator=(const lock_set&) = delete;
    ~lock_set() { unlock_all(); }

    /// Adds a mutex to the next batch (duplicates are ignored).
    void add(std::mutex* m) noexcept;
    /// Locks the batch added since the last call, in address order.
    void lock_batch() noexcept;
    void unlock_all() noexcept;

private:
    std::mutex* held_[2 * max_policies_per_route] = {};
    std::size_t n_held_ = 0;
    std::size_t n_locked_ = 0;
};

}  // namespace filterd::rate_limit
