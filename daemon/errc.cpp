#include "daemon/errc.hpp"

#include <iterator>

namespace filterd {

namespace {

struct errc_info {
    const char* label;
    wire::ErrorCode wire_code;
    bool closes;
    const char* message;
};

/// Indexed by errc value - 1.
constexpr errc_info errc_table[] = {
#define FILTERD_ERRC_INFO(name, wire_code, closes, message) {#name, wire::ErrorCode::wire_code, closes, message},
    FILTERD_ERRC(FILTERD_ERRC_INFO)
#undef FILTERD_ERRC_INFO
};
static_assert(std::size(errc_table) == std::size(all_errc));

const errc_info* info(errc e) noexcept {
    const auto i = static_cast<std::size_t>(e);
    return i >= 1 && i <= std::size(errc_table) ? &errc_table[i - 1] : nullptr;
}

class category final : public std::error_category {
public:
    const char* name() const noexcept override { return "filterd"; }
    std::string message(int ev) const override {
        const errc_info* i = info(static_cast<errc>(ev));
        return i ? i->message : "unknown filterd error";
    }
};

}  // namespace

const char* errc_label(errc e) noexcept {
    const errc_info* i = info(e);
    return i ? i->label : nullptr;
}

const std::error_category& filterd_category() noexcept {
    static const category c;
    return c;
}

wire::ErrorCode to_wire(errc e) noexcept {
    const errc_info* i = info(e);
    return i ? i->wire_code : wire::ErrorCode::Internal;
}

bool closes_connection(errc e) noexcept {
    const errc_info* i = info(e);
    return i != nullptr && i->closes;
}

}  // namespace filterd
