#pragma once
// Replay protection: remembers (merchant id, nonce) pairs for as long as their request could still
// pass the timestamp check.
//
// Contract
//  * An entry recorded for a request with timestamp T is "live" while now <= T + skew, i.e. while a
//    replay of that request would still be inside the ±skew window. The skew is passed on every call,
//    so a reload that changes skew_seconds applies to entries already stored.
//  * Memory is bounded and committed once, at construction: capacity entries (16 bytes each, in a
//    table twice that size), every page touched then (in transparent huge pages where the kernel
//    grants them). A container limit too small for nonce_capacity therefore fails at start-up, not
//    hours later, and no request pays a page fault.
//  * When a shard is full and nothing in it has expired, check_and_record answers `full` (the filter
//    denies 503): the store never forgets a live nonce to make room.
//  * One merchant cannot fill the store for the others: each registered merchant (owner index, from
//    owner_index()) holds at most per_merchant_limit() live entries; past it the answer is
//    `merchant_full` for that merchant only. Expired entries are swept out of a shard that sees traffic
//    every skew/16 (at least a second), so the per-merchant count overstates the live count by at most
//    about 1/16 of the window. A sweep examines at most sweep_slots slots per insert: no request scans
//    a whole shard (0.5 to 2 MiB at the capacities filterd uses); only a shard found full with
//    something expired in it is swept whole, on that insert, so an expired entry never causes `full`.
//  * Optional persistence (nonce_journal): with a journal attached, every recorded entry is appended
//    to it before check_and_record answers `recorded`; a failed append answers `unavailable` (deny
//    503). At start-up the journal is replayed into the store (restore()), so a restart does not
//    forget the nonces of the last skew window. A journal that could not be read completely sets a
//    fence: requests whose timestamp is below it are answered `unavailable` until then.
//  * Thread-safe. The table is split into up to 64 shards, each with its own mutex, chosen by the
//    hash, so concurrent requests rarely contend.
//  * Entries are 64-bit fingerprints of a keyed (per-process random seed) hash of merchant id and
//    nonce. A fingerprint collision can only make a fresh request look like a replay (a deny), never
//    let a replay through; with a secret seed nobody can aim for one.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace filterd::merchant_auth {

class nonce_journal;

class nonce_store {
public:
    /// Owner index meaning "no per-merchant bound" (tests, tools).
    static constexpr std::uint32_t no_owner = 0;
    /// Distinct merchants one process can register (owner indexes are never reused).
    static constexpr std::uint32_t max_owners = 65535;
    /// Timestamps are stored in 40 bits; the filter only passes 0..9e9.
    static constexpr std::int64_t max_timestamp_s = (std::int64_t{1} << 40) - 1;

    /// @param capacity  total number of live entries kept (>= 1). Capacities below 1024 use one shard,
    ///                  so the bound is exact; larger ones use 64 shards of ceil(capacity / 64) each.
    /// @param per_merchant_limit  live entries one owner may hold (0 = capacity).
    /// `commit` false (`filterd --check`): the table is taken from the kernel lazily instead.
    explicit nonce_store(std::size_t capacity, std::size_t per_merchant_limit = 0, bool commit = true);
    ~nonce_store();
    nonce_store(const nonce_store&) = delete;
    nonce_store& operator=(const nonce_store&) = delete;

    enum class result : std::uint8_t {
        recorded,       ///< not seen before (or only as an expired entry); now remembered
        replay,         ///< a live entry exists: deny
        full,           ///< no room without forgetting a live entry: deny with 503
        merchant_full,  ///< this merchant holds its whole share of the store: deny with 429
        unavailable,    ///< the journal could not record it, or the start-up fence covers it: deny with 503
    };

    /// Checks and records in one step (atomic per (merchant, nonce)). Never throws or allocates.
    /// @param owner        owner_index(merchant_id), or no_owner
    /// @param timestamp_s  the request's X-Timestamp (0..max_timestamp_s, else `full`)
    /// @param now_ns       wall clock of the request (context::wall_ns)
    /// @param skew_ns      the current skew window
    result check_and_record(std::string_view merchant_id, std::uint32_t owner, std::string_view nonce,
                            std::int64_t timestamp_s, std::int64_t now_ns, std::int64_t skew_ns) noexcept;
    result check_and_record(std::string_view merchant_id, std::string_view nonce, std::int64_t timestamp_s,
                            std::int64_t now_ns, std::int64_t skew_ns) noexcept {
        return check_and_record(merchant_id, no_owner, nonce, timestamp_s, now_ns, skew_ns);
    }

    /// The stable owner index of `merchant_id` (the same id gets the same index for the life of the
    /// store). Config load only. @throws std::length_error past max_owners merchants.
    std::uint32_t owner_index(std::string_view merchant_id);

    /// Live entries one owner may hold; changeable on reload.
    void set_per_merchant_limit(std::size_t n) noexcept;
    std::size_t per_merchant_limit() const noexcept { return per_merchant_limit_.load(std::memory_order_relaxed); }
    /// Entries (live or not yet swept out) an owner holds. For tests and metrics.
    std::size_t owner_count(std::uint32_t owner) const noexcept;

    /// Attaches the journal that every later recorded entry is appended to. Start-up only.
    void attach_journal(std::shared_ptr<nonce_journal> j) noexcept { journal_ = std::move(j); }
    const std::shared_ptr<nonce_journal>& journal() const noexcept { return journal_; }

    /// Inserts an entry read back from the journal at start-up (not journalled again). Expired entries
    /// are skipped. Returns false when it could not be stored (store full).
    bool restore(std::string_view merchant_id, std::string_view nonce, std::int64_t timestamp_s, std::int64_t now_ns,
                 std::int64_t skew_ns) noexcept;

    /// Requests with a timestamp below `fence_s` are answered `unavailable` (set after a journal could
    /// not be read completely: the lost entries had timestamps below it).
    void set_fence(std::int64_t fence_s) noexcept { fence_s_.store(fence_s, std::memory_order_relaxed); }
    std::int64_t fence() const noexcept { return fence_s_.load(std::memory_order_relaxed); }

    std::size_t capacity() const noexcept { return capacity_; }
    /// Slots a sweep examines per insert: 16 KiB of table, a few microseconds.
    static constexpr std::size_t sweep_slots = 1024;
    /// Bytes a store of this capacity commits at construction.
    static std::size_t table_bytes(std::size_t capacity) noexcept;
    /// Entries currently stored (live or expired but not yet swept out). For tests and metrics.
    std::size_t size() const noexcept;

private:
    struct slot {
        std::uint64_t fp;    // 0 = empty
        std::uint64_t meta;  // owner << 40 | timestamp_s
    };
    struct alignas(64) shard {
        std::mutex mu;
        slot* slots = nullptr;
        std::size_t mask = 0;
        std::size_t cap = 0;
        std::size_t used = 0;
        std::int64_t min_timestamp_s = INT64_MAX;  // lower bound of the stored timestamps
        std::int64_t last_sweep_s = 0;             // wall second the last sweep ended
        std::size_t sweep_at = 0;                  // 0: no sweep under way; else slots [0, sweep_at) are done
        std::int64_t sweep_min = INT64_MAX;        // lower bound of the timestamps the sweep has kept or seen recorded
    };

    /// A zeroed block of `slots` slots, every page touched unless !commit. @throws std::bad_alloc
    static slot* make_table(std::size_t slots, bool commit);
    struct layout {
        std::size_t shards, per_shard, slots_per_shard;  // entries kept per shard; its table's size
    };
    static layout layout_for(std::size_t capacity) noexcept;
    std::uint64_t hash(std::string_view merchant_id, std::string_view nonce) const noexcept;
    void erase_at(shard& s, std::size_t i) noexcept;
    /// Lowers the shard's timestamp bounds (and the running sweep's) for an entry just recorded.
    static void note_timestamp(shard& s, std::int64_t timestamp_s) noexcept;
    /// Continues (or starts) the shard's sweep over at most `slots` slots, erasing expired entries.
    void sweep(shard& s, std::size_t slots, std::int64_t now_ns, std::int64_t skew_ns) noexcept;
    result insert(std::string_view merchant_id, std::uint32_t owner, std::string_view nonce, std::int64_t timestamp_s,
                  std::int64_t now_ns, std::int64_t skew_ns, bool check_quota) noexcept;

    std::size_t capacity_;
    std::size_t shard_count_;
    std::unique_ptr<shard[]> shards_;
    slot* table_ = nullptr;  // every shard's slots, one block
    std::uint64_t seed_[2];
    std::atomic<std::size_t> per_merchant_limit_;
    std::unique_ptr<std::atomic<std::uint32_t>[]> owner_counts_;  // index = owner
    std::mutex owners_mu_;
    std::map<std::string, std::uint32_t, std::less<>> owners_;
    std::shared_ptr<nonce_journal> journal_;
    std::atomic<std::int64_t> fence_s_{INT64_MIN};
};

}  // namespace filterd::merchant_auth
