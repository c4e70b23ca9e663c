// Registers merchant-auth under the stable name "merchant-auth".
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "filters/merchant_auth/filter.hpp"
#include "filters/merchant_auth/nonce_journal.hpp"

#include <chrono>

namespace filterd::merchant_auth {

namespace {

bool same_journal(const std::optional<journal_options>& a, const std::optional<journal_options>& b) {
    if (a.has_value() != b.has_value())
        return false;
    return !a || (a->dir == b->dir && a->max_bytes == b->max_bytes && a->fsync == b->fsync);
}

/// Start-up: a new store, and when configured, its journal replayed into it.
std::shared_ptr<nonce_store> make_store(const config& c, const std::string& path) {
    if (c.redis_store)  // Redis holds the nonces; the local store stays empty (one entry, never used)
        return std::make_shared<nonce_store>(1);
    // Logged first: if the container's memory limit is too small, this is the last line before it fails.
    // A config check beside the live daemon commits nothing.
    const bool commit = !check_only();
    if (commit)
        log::info("merchant-auth: committing the nonce table",
                  {{"nonce_capacity", c.nonce_capacity}, {"bytes", nonce_store::table_bytes(c.nonce_capacity)}});
    auto nonces = std::make_shared<nonce_store>(c.nonce_capacity, 0, commit);
    if (!c.nonce_journal) {
        log::warn("merchant-auth: no nonce_journal configured; nonces are forgotten on restart, so a request "
                  "accepted before a restart can be replayed after it within skew_seconds",
                  {{"skew_seconds", c.skew_s}});
        return nonces;
    }
    const auto now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    const std::int64_t skew_ns = c.skew_s * 1'000'000'000;
    std::shared_ptr<nonce_journal> j;
    nonce_journal::replay_stats stats;
    std::uint64_t restored = 0, dropped = 0;
    try {
        j = std::make_shared<nonce_journal>(*c.nonce_journal);
        stats = j->replay(
            [&](std::string_view m, std::string_view n, std::int64_t ts) {
                (nonces->restore(m, n, ts, now_ns, skew_ns) ? restored : dropped) += 1;
            },
            now_ns / 1'000'000'000);
    } catch (const std::exception& e) {
        throw config_error(path + ".nonce_journal.dir", e.what());
    }
    auto& reg = metrics_registry::global();
    reg.get_counter("filterd_merchant_auth_nonce_journal_replayed_total",
                    "Journal records read back into the nonce store at start-up.")
        .inc(stats.records);
    log::info("merchant-auth: nonce journal replayed", {{"dir", c.nonce_journal->dir},
                                                        {"segments", stats.segments},
                                                        {"records", stats.records},
                                                        {"live_restored", nonces->size()},
                                                        {"not_stored", dropped}});
    if (stats.damaged_segments > 0) {
        // A damaged record had a timestamp at most `skew` after its segment was last written; nothing
        // older than that is accepted until the window has passed.
        std::int64_t fence = stats.damaged_mtime_s + c.skew_s + 1;
        nonces->set_fence(fence);
        reg.get_counter("filterd_merchant_auth_nonce_journal_damaged_segments_total",
                        "Journal segments with an unreadable record at start-up.")
            .inc(stats.damaged_segments);
        log::error("merchant-auth: nonce journal damaged; requests with an older timestamp are refused (503) "
                   "until the fence passes",
                   {{"dir", c.nonce_journal->dir}, {"damaged_segments", stats.damaged_segments}, {"fence", fence}});
    }
    nonces->attach_journal(std::move(j));
    return nonces;
}

class merchant_auth_factory final : public filter_factory {
public:
    std::string_view name() const override { return "merchant-auth"; }

    /// Builds a config generation. The nonce store (and its journal) is carried over from `previous`,
    /// so a reload never forgets a nonce (a replay across a SIGHUP is still a replay). Its memory and
    /// its journal are set up once per process, so a reload that changes nonce_capacity or
    /// nonce_journal is refused; nonce_merchant_share_percent applies at once.
    std::shared_ptr<filter_instance> create(const boost::json::value* cfg, const std::string& path,
                                            const std::shared_ptr<filter_instance>& previous) const override {
        auto c = std::make_shared<config>(config::load(cfg, path));
        std::shared_ptr<nonce_store> nonces;
        if (auto* prev = dynamic_cast<merchant_auth_instance*>(previous.get()); prev != nullptr) {
            nonces = prev->nonces();
            if (prev->cfg()->redis_store != c->redis_store)
                throw config_error(path + ".store", "cannot change on reload; restart filterd to change it");
            if (!c->redis_store && nonces->capacity() != c->nonce_capacity)
                throw config_error(path + ".nonce_capacity", "cannot change on reload (running with " +
                                                                 std::to_string(nonces->capacity()) +
                                                                 "); restart filterd to resize the nonce store");
            if (!same_journal(prev->cfg()->nonce_journal, c->nonce_journal))
                throw config_error(path + ".nonce_journal", "cannot change on reload; restart filterd to change it");
        } else {
            nonces = make_store(*c, path);
        }
        for (auto& [id, m] : c->merchants) {
            try {
                m.nonce_owner = nonces->owner_index(id);
            } catch (const std::length_error& e) {
                throw config_error(path + ".merchants", e.what());
            }
        }
        // Applied last: a rejected config must not change the running store.
        nonces->set_per_merchant_limit(
            std::max<std::size_t>(1, c->nonce_capacity * c->nonce_merchant_share_percent / 100));
        std::shared_ptr<redis::client> shared;
        if (c->redis_store)
            shared = redis::shared_client(c->redis);
        return std::make_shared<merchant_auth_instance>(std::move(c), std::move(nonces), std::move(shared));
    }
};

const registrar reg{std::make_shared<merchant_auth_factory>()};

}  // namespace

}  // namespace filterd::merchant_auth
