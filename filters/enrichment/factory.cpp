// enrichment: registration under the stable name "enrichment".
#include "filters/enrichment/filter.hpp"

#include <memory>

namespace filterd::enrichment {
namespace {

class enrichment_factory final : public filter_factory {
public:
    std::string_view name() const override { return "enrichment"; }

    /// The filter keeps no state across requests, so `previous` is not needed.
    std::shared_ptr<filter_instance> create(const boost::json::value* cfg, const std::string& path,
                                            const std::shared_ptr<filter_instance>&) const override {
        return std::make_shared<enrichment_instance>(std::make_shared<const config>(config::load(cfg, path)));
    }
};

const registrar reg{std::make_shared<enrichment_factory>()};

}  // namespace
}  // namespace filterd::enrichment
