#include "filters/rate_limit/table.hpp"
#include "filters/rate_limit/keyed_hash.hpp"

#include <algorithm>
#include <bit>
#include <random>

namespace filterd::rate_limit {

namespace {
constexpr std::size_t max_shards = 32;
}

policy_table::policy_table(const policy_config& p) : cfg_(p) {
    std::random_device rd;
    k0_ = (std::uint64_t{rd()} << 32) ^ rd();
    k1_ = (std::uint64_t{rd()} << 32) ^ rd();

    // Shards: a power of two, at most max_keys so that every shard may hold at least one key.
    const auto max_keys = static_cast<std::size_t>(cfg_.max_keys);
    const std::size_t n = std::min(max_shards, std::bit_floor(max_keys));
    shards_ = std::vector<shard>(n);
    shard_mask_ = n - 1;
    for (std::size_t i = 0; i < n; ++i) {
        shard& s = shards_[i];
        s.limit = max_keys / n + (i < max_keys % n ? 1 : 0);
        const std::size_t cap = std::bit_ceil(2 * s.limit);  // load factor <= 1/2: probes stay short
        s.slots.assign(cap, slot{});
        s.mask = cap - 1;
    }

    auto& m = metrics_registry::global();
    const char* dh = "Rate-limit decisions by policy and result (allow: the request committed; deny: this "
                     "policy refused it; error: the policy could not find its key).";
    allowed_ = &m.get_counter("filterd_rate_limit_decisions_total", dh, {{"policy", cfg_.name}, {"result", "allow"}});
    denied_ = &m.get_counter("filterd_rate_limit_decisions_total", dh, {{"policy", cfg_.name}, {"result", "deny"}});
    errors_ = &m.get_counter("filterd_rate_limit_decisions_total", dh, {{"policy", cfg_.name}, {"result", "error"}});
    overflow_ = &m.get_counter(
        "filterd_rate_limit_overflow_total",
        "Decisions charged to the shared overflow bucket because the policy's key table was full.",
        {{"policy", cfg_.name}});
    tracked_ = &m.get_gauge("filterd_rate_limit_tracked_keys", "Keys currently tracked by a policy's table.",
                            {{"policy", cfg_.name}});
    tracked_->set(0);  // a new table (start-up, or a policy whose limits changed) starts empty
}

std::uint64_t policy_table::hash(std::string_view a, std::string_view b, bool two_parts) const noexcept {
    siphash24 h(k0_, k1_);
    h.update(a);
    if (two_parts) {
        h.update(std::string_view("\0", 1));
        h.update(b);
    }
    std::uint64_t v = h.finish();
    return v == 0 ? 1 : v;
}

placement policy_table::locate(shard& sh, std::uint64_t h, std::int64_t now) noexcept {
    placement pl;
    pl.sh = &sh;
    for (int attempt = 0; attempt < 2; ++attempt) {
        slot* reusable = nullptr;
        for (std::size_t i = home(h) & sh.mask;; i = (i + 1) & sh.mask) {
            slot& s = sh.slots[i];
            if (s.key == h) {
                pl.entry = &s;
                return pl;
            }
            if (s.key == 0) {
                pl.is_new = true;
                if (reusable != nullptr) {  // an expired entry on the probe path: take its place
                    pl.entry = reusable;
                    return pl;
                }
                if (sh.used < sh.limit) {
                    pl.entry = &s;
                    pl.takes_empty = true;
                    return pl;
                }
                break;  // shard full
            }
            if (reusable == nullptr && s.tat <= now)
                reusable = &s;
        }
        if (attempt == 0 && now >= sh.next_sweep_ns && sweep(sh, now) > 0)
            continue;  // something was reclaimed: probe again
        break;
    }
    pl.entry = nullptr;  // overflow bucket
    pl.is_new = false;
    return pl;
}

void policy_table::commit(const placement& pl, std::uint64_t h, std::int64_t new_tat) noexcept {
    if (pl.entry == nullptr) {
        overflow_tat_ = new_tat;
        return;
    }
    if (pl.is_new) {
        pl.entry->key = h;
        if (pl.takes_empty) {
            ++pl.sh->used;
            tracked_->add(1);
        }
    }
    pl.entry->tat = new_tat;
}

// Removes every expired entry with backward-shift deletion (linear probing needs no tombstones).
std::size_t policy_table::sweep(shard& sh, std::int64_t now) noexcept {
    std::size_t removed = 0;
    std::size_t i = 0;
    while (i < sh.slots.size()) {
        const slot& s = sh.slots[i];
        if (s.key != 0 && s.tat <= now) {
            erase_at(sh, i);
            ++removed;
            continue;  // a later entry may have shifted into i
        }
        ++i;
    }
    sh.used -= removed;
    tracked_->add(-static_cast<std::int64_t>(removed));
    sh.next_sweep_ns = now + sweep_interval_ns;
    return removed;
}

void policy_table::erase_at(shard& sh, std::size_t i) noexcept {
    std::size_t j = i;
    for (;;) {
        j = (j + 1) & sh.mask;
        if (sh.slots[j].key == 0)
            break;
        const std::size_t k = home(sh.slots[j].key) & sh.mask;
        // Entry j may fill hole i unless its home lies cyclically in (i, j].
        const bool home_in_between = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (!home_in_between) {
            sh.slots[i] = sh.slots[j];
            i = j;
        }
    }
    sh.slots[i] = slot{};
}

std::size_t policy_table::tracked_keys() {
    std::size_t n = 0;
    for (auto& s : shards_) {
        std::lock_guard lock(s.mu);
        n += s.used;
    }
    return n;
}

void lock_set::add(std::mutex* m) noexcept {
    for (std::size_t i = 0; i < n_held_; ++i)
        if (held_[i] == m)
            return;
    held_[n_held_++] = m;
}

void lock_set::lock_batch() noexcept {
    std::sort(held_ + n_locked_, held_ + n_held_, std::less<std::mutex*>());
    for (; n_locked_ < n_held_; ++n_locked_)
        held_[n_locked_]->lock();
}

void lock_set::unlock_all() noexcept {
    while (n_locked_ > 0)
        held_[--n_locked_]->unlock();
    n_held_ = 0;
}

}  // namespace filterd::rate_limit
