#pragma once
// Replay protection: remembers (merchant id, nonce) pairs for as long as their request could still
// pass the timestamp check.
//
// Contract
//  * An entry recorded for a request with timestamp T is "live" while now <= T + skew, i.e. while a
//    replay of that request would still be inside the ±skew window. The skew is passed on every call,
//    so a reload that changes skew_seconds applies to entries already stored.
//  * Memory is bounded and allocated once, at construction: capacity entries (16 bytes each, in a
//    table twice that size). When a shard is full and nothing in it has expired, check_and_record
//    answers `full` (the filter denies 503): the store never forgets a live nonce to make room.
//  * Thread-safe. The table is split into up to 64 shards, each with its own mutex, chosen by the
//    hash, so concurrent requests rarely contend.
//  * Entries are 64-bit fingerprints of a keyed (per-process random seed) hash of merchant id and
//    nonce. A fingerprint collision can only make a fresh request look like a replay (a deny), never
//    let a replay through; with a secret seed nobody can aim for one.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>

namespace filterd::merchant_auth {

class nonce_store {
public:
    /// @param capacity  total number of live entries kept (>= 1). Capacities below 1024 use one shard,
    ///                  so the bound is exact; larger ones use 64 shards of ceil(capacity / 64) each.
    explicit nonce_store(std::size_t capacity);
    ~nonce_store();
    nonce_store(const nonce_store&) = delete;
    nonce_store& operator=(const nonce_store&) = delete;

    enum class result : std::uint8_t {
        recorded,  ///< not seen before (or only as an expired entry); now remembered
        replay,    ///< a live entry exists: deny
        full,      ///< no room without forgetting a live entry: deny with 503
    };

    /// Checks and records in one step (atomic per (merchant, nonce)). Never throws or allocates.
    /// @param timestamp_s  the request's X-Timestamp
    /// @param now_ns       wall clock of the request (context::wall_ns)
    /// @param skew_ns      the current skew window
    result check_and_record(std::string_view merchant_id, std::string_view nonce, std::int64_t timestamp_s,
                            std::int64_t now_ns, std::int64_t skew_ns) noexcept;

    std::size_t capacity() const noexcept { return capacity_; }
    /// Entries currently stored (live or expired-but-not-yet-purged). For tests and metrics.
    std::size_t size() const noexcept;

private:
    struct slot {
        std::uint64_t fp;          // 0 = empty
        std::int64_t timestamp_s;  // the request's timestamp
    };
    struct alignas(64) shard {
        std::mutex mu;
        slot* slots = nullptr;
        std::size_t mask = 0;
        std::size_t cap = 0;
        std::size_t used = 0;
        std::int64_t min_timestamp_s = INT64_MAX;  // lower bound of the stored timestamps
    };

    std::uint64_t hash(std::string_view merchant_id, std::string_view nonce) const noexcept;
    static void erase_at(shard& s, std::size_t i) noexcept;
    static void purge_expired(shard& s, std::int64_t now_ns, std::int64_t skew_ns) noexcept;

    std::size_t capacity_;
    std::size_t shard_count_;
    std::unique_ptr<shard[]> shards_;
    std::uint64_t seed_[2];
};

}  // namespace filterd::merchant_auth
