#include "filters/merchant_auth/nonce_store.hpp"

#include "filters/merchant_auth/nonce_journal.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <sys/mman.h>

namespace filterd::merchant_auth {

namespace {

constexpr std::uint64_t mix(std::uint64_t x) noexcept {  // splitmix64 finaliser
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

bool live(std::int64_t timestamp_s, std::int64_t now_ns, std::int64_t skew_ns) noexcept {
    // now <= T + skew. Timestamps are bounded by the filter's skew check; clamp anyway so that no
    // input can overflow (a timestamp past year 2255 counts as live: fail closed).
    if (timestamp_s > 9'000'000'000 || timestamp_s < -9'000'000'000)
        return timestamp_s > 0;
    return now_ns - skew_ns <= timestamp_s * 1'000'000'000;
}

constexpr unsigned ts_bits = 40;
constexpr std::uint64_t ts_mask = (std::uint64_t{1} << ts_bits) - 1;
constexpr std::int64_t ts_of(std::uint64_t meta) noexcept { return static_cast<std::int64_t>(meta & ts_mask); }
constexpr std::uint32_t owner_of(std::uint64_t meta) noexcept { return static_cast<std::uint32_t>(meta >> ts_bits); }
constexpr std::uint64_t pack(std::uint32_t owner, std::int64_t ts) noexcept {
    return (std::uint64_t{owner} << ts_bits) | (static_cast<std::uint64_t>(ts) & ts_mask);
}

}  // namespace

nonce_store::layout nonce_store::layout_for(std::size_t capacity) noexcept {
    capacity = capacity < 1 ? 1 : capacity;
    layout l;
    l.shards = capacity < 1024 ? 1 : 64;
    l.per_shard = (capacity + l.shards - 1) / l.shards;
    l.slots_per_shard = std::bit_ceil(l.per_shard * 2);  // load factor <= 1/2 keeps probe chains short
    return l;
}

std::size_t nonce_store::table_bytes(std::size_t capacity) noexcept {
    layout l = layout_for(capacity);
    return l.slots_per_shard * l.shards * sizeof(slot);
}

nonce_store::slot* nonce_store::make_table(std::size_t slots, bool commit) {
    if (!commit) {
        auto* p = static_cast<slot*>(std::calloc(slots, sizeof(slot)));
        if (p == nullptr)
            throw std::bad_alloc();
        return p;
    }
    constexpr std::size_t huge_page = std::size_t{2} << 20;
    std::size_t bytes = slots * sizeof(slot);
    std::size_t align = bytes >= huge_page ? huge_page : alignof(std::max_align_t);
    bytes = (bytes + align - 1) / align * align;
    void* p = std::aligned_alloc(align, bytes);  // not malloc: malloc + memset may become a lazy calloc
    if (p == nullptr)
        throw std::bad_alloc();
    if (align == huge_page)
        ::madvise(p, bytes, MADV_HUGEPAGE);  // a refusal leaves 4 KiB pages: slower, still correct
    std::memset(p, 0, bytes);                // touches every page now: committed at start-up, never on a request
    return static_cast<slot*>(p);
}

nonce_store::nonce_store(std::size_t capacity, std::size_t per_merchant_limit, bool commit)
    : capacity_(capacity < 1 ? 1 : capacity),
      per_merchant_limit_(per_merchant_limit == 0 ? capacity_ : per_merchant_limit),
      owner_counts_(new std::atomic<std::uint32_t>[max_owners + 1]()) {
    const layout l = layout_for(capacity_);
    shard_count_ = l.shards;
    shards_ = std::make_unique<shard[]>(shard_count_);
    table_ = make_table(l.slots_per_shard * shard_count_, commit);
    for (std::size_t i = 0; i < shard_count_; ++i) {
        shards_[i].slots = table_ + i * l.slots_per_shard;
        shards_[i].mask = l.slots_per_shard - 1;
        shards_[i].cap = l.per_shard;
    }
    if (RAND_bytes(reinterpret_cast<unsigned char*>(seed_), sizeof(seed_)) != 1) {
        std::random_device rd;
        seed_[0] = (std::uint64_t{rd()} << 32) ^ rd();
        seed_[1] = (std::uint64_t{rd()} << 32) ^ rd();
    }
}

nonce_store::~nonce_store() { std::free(table_); }

std::uint64_t nonce_store::hash(std::string_view merchant_id, std::string_view nonce) const noexcept {
    // Keyed multiply-mix over both strings with a separator byte; not a MAC, only collision-resistant
    // against parties that do not know the seed (see the header).
    std::uint64_t h = seed_[0] ^ (merchant_id.size() * 0x9e3779b97f4a7c15ULL);
    auto absorb = [&](std::string_view s) {
        std::size_t i = 0;
        for (; i + 8 <= s.size(); i += 8) {
            std::uint64_t w;
            std::memcpy(&w, s.data() + i, 8);
            h = mix(h ^ w ^ seed_[1]);
        }
        std::uint64_t w = 0;
        std::memcpy(&w, s.data() + i, s.size() - i);
        h = mix(h ^ w ^ (std::uint64_t{s.size() - i} << 56));
    };
    absorb(merchant_id);
    h = mix(h ^ 0xff);
    absorb(nonce);
    return mix(h ^ (nonce.size() * 0xc2b2ae3d27d4eb4fULL) ^ seed_[1]);
}

void nonce_store::set_per_merchant_limit(std::size_t n) noexcept {
    per_merchant_limit_.store(n == 0 ? capacity_ : n, std::memory_order_relaxed);
}

std::size_t nonce_store::owner_count(std::uint32_t owner) const noexcept {
    return owner <= max_owners ? owner_counts_[owner].load(std::memory_order_relaxed) : 0;
}

std::uint32_t nonce_store::owner_index(std::string_view merchant_id) {
    std::lock_guard lock(owners_mu_);
    if (auto it = owners_.find(merchant_id); it != owners_.end())
        return it->second;
    if (owners_.size() >= max_owners)
        throw std::length_error("more than " + std::to_string(max_owners) +
                                " distinct merchants since start; restart filterd");
    auto idx = static_cast<std::uint32_t>(owners_.size() + 1);
    owners_.emplace(std::string(merchant_id), idx);
    return idx;
}

void nonce_store::erase_at(shard& s, std::size_t i) noexcept {
    if (std::uint32_t o = owner_of(s.slots[i].meta); o != no_owner)
        owner_counts_[o].fetch_sub(1, std::memory_order_relaxed);
    // Backward-shift deletion for linear probing: no tombstones, chains stay intact.
    std::size_t j = i;
    for (;;) {
        j = (j + 1) & s.mask;
        if (s.slots[j].fp == 0)
            break;
        std::size_t home = s.slots[j].fp & s.mask;
        // Move slot j back to i unless its home lies cyclically in (i, j].
        bool stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        s.slots[i] = s.slots[j];
        i = j;
    }
    s.slots[i] = slot{0, 0};
    --s.used;
}

void nonce_store::note_timestamp(shard& s, std::int64_t timestamp_s) noexcept {
    s.min_timestamp_s = std::min(s.min_timestamp_s, timestamp_s);
    s.sweep_min = std::min(s.sweep_min, timestamp_s);  // a sweep under way has passed this slot, or may have
}

void nonce_store::sweep(shard& s, std::size_t slots, std::int64_t now_ns, std::int64_t skew_ns) noexcept {
    if (s.sweep_at == 0)  // a new sweep
        s.sweep_min = INT64_MAX;
    // Entries move only into the hole an erase leaves, at or after i (or wrapped to the swept front,
    // whose entries were seen or recorded in this sweep), so every entry is seen once at least.
    const std::size_t end = std::min(s.sweep_at + slots, s.mask + 1);
    std::size_t i = s.sweep_at;
    while (i < end) {
        slot& e = s.slots[i];
        if (e.fp != 0 && !live(ts_of(e.meta), now_ns, skew_ns)) {
            erase_at(s, i);  // another entry may have moved into i: look at i again
            continue;
        }
        if (e.fp != 0)
            s.sweep_min = std::min(s.sweep_min, ts_of(e.meta));
        ++i;
    }
    s.sweep_at = i;
    if (i > s.mask) {
        s.sweep_at = 0;
        s.min_timestamp_s = s.sweep_min;
        s.last_sweep_s = now_ns / 1'000'000'000;
    }
}

nonce_store::result nonce_store::check_and_record(std::string_view merchant_id, std::uint32_t owner,
                                                  std::string_view nonce, std::int64_t timestamp_s, std::int64_t now_ns,
                                                  std::int64_t skew_ns) noexcept {
    if (timestamp_s < 0 || timestamp_s > max_timestamp_s || owner > max_owners)
        return result::full;  // outside what an entry can hold: refuse rather than store it wrongly
    if (timestamp_s < fence_s_.load(std::memory_order_relaxed))
        return result::unavailable;
    result r = insert(merchant_id, owner, nonce, timestamp_s, now_ns, skew_ns, true);
    // Journalled after the shard lock is released: until the append returns, the request has not been
    // answered, so a crash in between loses nothing that was allowed.
    if (r == result::recorded && journal_ && !journal_->append(merchant_id, nonce, timestamp_s, now_ns, skew_ns))
        return result::unavailable;
    return r;
}

bool nonce_store::restore(std::string_view merchant_id, std::string_view nonce, std::int64_t timestamp_s,
                          std::int64_t now_ns, std::int64_t skew_ns) noexcept {
    if (timestamp_s < 0 || timestamp_s > max_timestamp_s)
        return false;
    if (!live(timestamp_s, now_ns, skew_ns))
        return true;
    std::uint32_t owner = no_owner;
    try {
        owner = owner_index(merchant_id);
    } catch (...) {  // the owner table is full: keep the entry without a per-merchant count
    }
    result r = insert(merchant_id, owner, nonce, timestamp_s, now_ns, skew_ns, false);
    return r == result::recorded || r == result::replay;
}

nonce_store::result nonce_store::insert(std::string_view merchant_id, std::uint32_t owner, std::string_view nonce,
                                        std::int64_t timestamp_s, std::int64_t now_ns, std::int64_t skew_ns,
                                        bool check_quota) noexcept {
    std::uint64_t h = hash(merchant_id, nonce);
    std::uint64_t fp = h == 0 ? 1 : h;
    shard& s = shards_[shard_count_ == 1 ? 0 : (h >> 58)];
    std::lock_guard lock(s.mu);

    // A shard is swept every skew/16 (at least 1 s) once something in it may have expired,
    // sweep_slots slots per insert: per-merchant counts overstate the live entries by about 1/16 of
    // the window at most, and no request scans the whole shard.
    const std::int64_t sweep_every_s = std::max<std::int64_t>(1, skew_ns / 16 / 1'000'000'000);
    if (s.sweep_at != 0 || (s.min_timestamp_s != INT64_MAX && !live(s.min_timestamp_s, now_ns, skew_ns) &&
                            now_ns / 1'000'000'000 - s.last_sweep_s >= sweep_every_s))
        sweep(s, sweep_slots, now_ns, skew_ns);

    std::size_t i = fp & s.mask;
    for (; s.slots[i].fp != 0; i = (i + 1) & s.mask) {
        slot& e = s.slots[i];
        if (e.fp != fp)
            continue;
        if (live(ts_of(e.meta), now_ns, skew_ns))
            return result::replay;
        e.meta = pack(owner_of(e.meta), timestamp_s);  // an expired entry for the same pair: reuse it
        note_timestamp(s, timestamp_s);
        return result::recorded;
    }
    if (check_quota && owner != no_owner &&
        owner_counts_[owner].load(std::memory_order_relaxed) >= per_merchant_limit_.load(std::memory_order_relaxed))
        return result::merchant_full;
    if (s.used >= s.cap) {
        if (s.min_timestamp_s == INT64_MAX || live(s.min_timestamp_s, now_ns, skew_ns))
            return result::full;  // nothing can have expired: do not scan
        s.sweep_at = 0;           // the whole shard, now: this insert needs the room
        sweep(s, s.mask + 1, now_ns, skew_ns);
        if (s.used >= s.cap)
            return result::full;
        i = fp & s.mask;  // the sweep moved entries: find the first empty slot again
        while (s.slots[i].fp != 0)
            i = (i + 1) & s.mask;
    }
    s.slots[i] = slot{fp, pack(owner, timestamp_s)};
    ++s.used;
    if (owner != no_owner)
        owner_counts_[owner].fetch_add(1, std::memory_order_relaxed);
    note_timestamp(s, timestamp_s);
    return result::recorded;
}

std::size_t nonce_store::size() const noexcept {
    std::size_t n = 0;
    for (std::size_t i = 0; i < shard_count_; ++i) {
        std::lock_guard lock(shards_[i].mu);
        n += shards_[i].used;
    }
    return n;
}

}  // namespace filterd::merchant_auth
