#include "core/metrics.hpp"

#include <stdexcept>

namespace filterd {

void histogram::observe(std::uint64_t ns) noexcept {
    for (std::size_t i = 0; i < bounds_ns.size(); ++i) {
        if (ns <= bounds_ns[i]) {
            buckets_[i].fetch_add(1, std::memory_order_relaxed);
            break;
        }
    }
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(ns, std::memory_order_relaxed);
}

std::string render_labels(const labels& l) {
    if (l.empty())
        return {};
    std::string out = "{";
    bool first = true;
    for (const auto& [k, v] : l) {
        if (!first)
            out += ',';
        first = false;
        out += k;
        out += "=\"";
        for (char c : v) {
            if (c == '\\')
                out += "\\\\";
            else if (c == '"')
                out += "\\\"";
            else if (c == '\n')
                out += "\\n";
            else
                out += c;
        }
        out += '"';
    }
    out += '}';
    return out;
}

metrics_registry::family& metrics_registry::family_for(const std::string& name, const std::string& help, kind k) {
    auto [it, inserted] = families_.try_emplace(name);
    if (inserted) {
        it->second.k = k;
        it->second.help = help;
    } else if (it->second.k != k) {
        throw std::logic_error("metric " + name + " registered with two types");
    }
    return it->second;
}

template <class T>
T& metrics_registry::get_series(std::map<std::string, std::unique_ptr<T>> family::*series, kind k,
                                const std::string& name, const std::string& help, const labels& l) {
    std::lock_guard lock(mu_);
    auto& p = (family_for(name, help, k).*series)[render_labels(l)];
    if (!p)
        p = std::make_unique<T>();
    return *p;
}

counter& metrics_registry::get_counter(const std::string& name, const std::string& help, const labels& l) {
    return get_series(&family::counters, kind::counter, name, help, l);
}

gauge& metrics_registry::get_gauge(const std::string& name, const std::string& help, const labels& l) {
    return get_series(&family::gauges, kind::gauge, name, help, l);
}

histogram& metrics_registry::get_histogram(const std::string& name, const std::string& help, const labels& l) {
    return get_series(&family::histograms, kind::histogram, name, help, l);
}

std::uint64_t metrics_registry::counter_value(const std::string& name, const labels& l) const {
    std::lock_guard lock(mu_);
    auto it = families_.find(name);
    if (it == families_.end())
        return 0;
    auto c = it->second.counters.find(render_labels(l));
    return c == it->second.counters.end() ? 0 : c->second->value();
}

namespace {
// Inserts `extra` (e.g. le="0.001") into an already rendered label set.
std::string with_label(const std::string& rendered, const std::string& extra) {
    if (rendered.empty())
        return "{" + extra + "}";
    return rendered.substr(0, rendered.size() - 1) + "," + extra + "}";
}
std::string seconds(std::uint64_t ns) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(ns) / 1e9);
    return buf;
}
}  // namespace

std::string metrics_registry::render_prometheus() const {
    std::lock_guard lock(mu_);
    std::string out;
    for (const auto& [name, f] : families_) {
        out += "# HELP " + name + " " + f.help + "\n";
        switch (f.k) {
        case kind::counter:
            out += "# TYPE " + name + " counter\n";
            for (const auto& [l, c] : f.counters)
                out += name + l + " " + std::to_string(c->value()) + "\n";
            break;
        case kind::gauge:
            out += "# TYPE " + name + " gauge\n";
            for (const auto& [l, g] : f.gauges)
                out += name + l + " " + std::to_string(g->value()) + "\n";
            break;
        case kind::histogram:
            out += "# TYPE " + name + " histogram\n";
            for (const auto& [l, h] : f.histograms) {
                std::uint64_t cum = 0;
                for (std::size_t i = 0; i < histogram::bounds_ns.size(); ++i) {
                    cum += h->bucket(i);
                    out += name + "_bucket" + with_label(l, "le=\"" + seconds(histogram::bounds_ns[i]) + "\"") + " " +
                           std::to_string(cum) + "\n";
                }
                out += name + "_bucket" + with_label(l, "le=\"+Inf\"") + " " + std::to_string(h->count()) + "\n";
                out += name + "_sum" + l + " " + seconds(h->sum_ns()) + "\n";
                out += name + "_count" + l + " " + std::to_string(h->count()) + "\n";
            }
            break;
        }
    }
    return out;
}

metrics_registry& metrics_registry::global() {
    static metrics_registry r;
    return r;
}

}  // namespace filterd
