#pragma once
// Process-wide metrics in Prometheus text format.
//
// Contract: series are created (get-or-create, under a mutex) when config is loaded, and the
// returned references stay valid for the life of the process, so the request path only touches
// atomics. Series are never removed; their number is bounded by the size of the config.

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace filterd {

using labels = std::vector<std::pair<std::string, std::string>>;

class counter {
public:
    void inc(std::uint64_t n = 1) noexcept { v_.fetch_add(n, std::memory_order_relaxed); }
    std::uint64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> v_{0};
};

class gauge {
public:
    void add(std::int64_t n) noexcept { v_.fetch_add(n, std::memory_order_relaxed); }
    void set(std::int64_t n) noexcept { v_.store(n, std::memory_order_relaxed); }
    std::int64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::int64_t> v_{0};
};

/// Latency histogram with fixed buckets from 1 µs to 10 ms (values in nanoseconds).
class histogram {
public:
    static constexpr std::array<std::uint64_t, 14> bounds_ns{1'000,     2'500,     5'000,      10'000,    25'000,
                                                             50'000,    100'000,   250'000,    500'000,   1'000'000,
                                                             2'500'000, 5'000'000, 10'000'000, 50'000'000};
    void observe(std::uint64_t ns) noexcept;
    std::uint64_t count() const noexcept { return count_.load(std::memory_order_relaxed); }
    std::uint64_t bucket(std::size_t i) const noexcept { return buckets_[i].load(std::memory_order_relaxed); }
    std::uint64_t sum_ns() const noexcept { return sum_.load(std::memory_order_relaxed); }

private:
    std::array<std::atomic<std::uint64_t>, bounds_ns.size()> buckets_{};
    std::atomic<std::uint64_t> count_{0};
    std::atomic<std::uint64_t> sum_{0};
};

class metrics_registry {
public:
    counter& get_counter(const std::string& name, const std::string& help, const labels& l = {});
    gauge& get_gauge(const std::string& name, const std::string& help, const labels& l = {});
    histogram& get_histogram(const std::string& name, const std::string& help, const labels& l = {});

    /// Current value of a counter series, or 0 when it does not exist. For tests.
    std::uint64_t counter_value(const std::string& name, const labels& l = {}) const;

    std::string render_prometheus() const;

    static metrics_registry& global();

private:
    enum class kind { counter, gauge, histogram };
    struct family {
        kind k;
        std::string help;
        std::map<std::string, std::unique_ptr<counter>> counters;
        std::map<std::string, std::unique_ptr<gauge>> gauges;
        std::map<std::string, std::unique_ptr<histogram>> histograms;
    };
    family& family_for(const std::string& name, const std::string& help, kind k);
    /// get_counter, get_gauge and get_histogram: the series `l` of family `name`, created on first use.
    template <class T>
    T& get_series(std::map<std::string, std::unique_ptr<T>> family::*series, kind k, const std::string& name,
                  const std::string& help, const labels& l);

    mutable std::mutex mu_;
    std::map<std::string, family> families_;
};

/// Renders `{a="x",b="y"}` (empty string for no labels), escaping values per the exposition format.
std::string render_labels(const labels& l);

}  // namespace filterd
