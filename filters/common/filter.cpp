#include "filters/common/filter.hpp"

#include <atomic>
#include <stdexcept>

namespace filterd {

bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        unsigned char x = static_cast<unsigned char>(a[i]);
        unsigned char y = static_cast<unsigned char>(b[i]);
        if (x >= 'A' && x <= 'Z')
            x = static_cast<unsigned char>(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = static_cast<unsigned char>(y + 32);
        if (x != y)
            return false;
    }
    return true;
}

std::span<const std::uint8_t> request_view::body() const noexcept {
    const auto* b = req_->body();
    if (b == nullptr)
        return {};
    return {b->data(), b->size()};
}

std::optional<std::span<const std::uint8_t>> request_view::body_sha256() const noexcept {
    const auto* d = req_->body_sha256();
    if (d == nullptr)
        return std::nullopt;
    return std::span<const std::uint8_t>(d->data(), d->size());
}

bool request_view::body_fields_consistent() const noexcept {
    const auto* d = req_->body_sha256();
    return d == nullptr || (d->size() == 32 && req_->body() == nullptr);
}

request_view::header_values request_view::header(std::string_view name) const noexcept {
    header_values out;
    const auto* hs = req_->headers();
    if (hs == nullptr)
        return out;
    for (const auto* h : *hs) {
        if (h == nullptr || !iequals(sv(h->name()), name) || h->values() == nullptr)
            continue;
        for (const auto* v : *h->values()) {
            if (out.count == 0)
                out.first = sv(v);
            ++out.count;
        }
    }
    return out;
}

std::optional<std::string_view> request_view::path_param(std::string_view name) const noexcept {
    const auto* ps = req_->path_params();
    if (ps == nullptr)
        return std::nullopt;
    std::optional<std::string_view> found;
    for (const auto* p : *ps) {
        if (p == nullptr || !iequals(sv(p->name()), name))
            continue;
        if (found)
            return std::nullopt;  // two parameters that differ only in case: ambiguous, so absent
        found = sv(p->value());
    }
    return found;
}

void context::deny_problem(std::uint16_t status, std::string_view title, std::string_view reason_token) {
    deny_status = status;
    reason = reason_token;
    deny_content_type = "application/problem+json";
    deny_body.clear();
    deny_body += R"({"type":"about:blank","title":")";
    deny_body += title;  // titles are static strings chosen by filters, never request data
    deny_body += R"(","status":)";
    deny_body += std::to_string(status);
    deny_body += '}';
}

void context::reset() noexcept {
    authenticated = false;
    merchant_id.clear();
    key_id.clear();
    deny_status = 0;
    deny_headers.clear();
    deny_body.clear();
    deny_content_type.clear();
    set_headers.clear();
    remove_headers.clear();
    reason = {};
    fused_store = nullptr;
    nonce.reset();
}

namespace {
std::atomic<bool> check_only_flag{false};
}

void set_check_only(bool on) noexcept { check_only_flag.store(on, std::memory_order_relaxed); }
bool check_only() noexcept { return check_only_flag.load(std::memory_order_relaxed); }

void registry::add(std::shared_ptr<const filter_factory> f) {
    if (find(f->name()) != nullptr)
        throw std::logic_error("filter registered twice: " + std::string(f->name()));
    factories_.push_back(std::move(f));
}

const filter_factory* registry::find(std::string_view name) const noexcept {
    for (const auto& f : factories_)
        if (f->name() == name)
            return f.get();
    return nullptr;
}

std::vector<std::string> registry::names() const {
    std::vector<std::string> out;
    for (const auto& f : factories_)
        out.emplace_back(f->name());
    return out;
}

registry& registry::builtin() {
    static registry r;
    return r;
}

}  // namespace filterd
