// Registers the rate-limit filter under the stable name "rate-limit" (config keys and the wire).
#include "filters/rate_limit/filter.hpp"

namespace filterd::rate_limit {
namespace {

class rate_limit_factory final : public filter_factory {
public:
    std::string_view name() const override { return "rate-limit"; }

    std::shared_ptr<filter_instance> create(const boost::json::value* cfg, const std::string& path,
                                            const std::shared_ptr<filter_instance>& previous) const override {
        const auto* prev = dynamic_cast<const rate_limit_instance*>(previous.get());
        return std::make_shared<rate_limit_instance>(config::load(cfg, path), prev);
    }
};

const registrar reg{std::make_shared<rate_limit_factory>()};

}  // namespace
}  // namespace filterd::rate_limit
