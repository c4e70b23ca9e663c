// enrichment: registration under the stable name "enrichment".
#include "filters/enrichment/config.hpp"
#include "filters/enrichment/filter.hpp"

#include "filters/common/filter.hpp"

#include <memory>

namespace filterd::enrichment {
namespace {

/// One config generation: the validated global section, shared by every route's filter. The filter keeps
/// no state across requests, so `previous` is not needed.
class instance final : public filter_instance {
public:
    explicit instance(std::shared_ptr<const config> cfg) : cfg_(std::move(cfg)) {}

    std::shared_ptr<const filter> for_route(std::string_view route_id, const boost::json::value* route_cfg,
                                            const std::string& path) const override {
        return std::make_shared<enrichment_filter>(cfg_, route_config::from_json(route_cfg, path),
                                                   events::for_route(route_id));
    }

private:
    std::shared_ptr<const config> cfg_;
};

class factory final : public filter_factory {
public:
    std::string_view name() const override { return "enrichment"; }

    std::shared_ptr<filter_instance> create(const boost::json::value* cfg, const std::string& path,
                                            const std::shared_ptr<filter_instance>&) const override {
        return std::make_shared<instance>(std::make_shared<const config>(config::from_json(cfg, path)));
    }
};

const registrar enrichment_registrar{std::make_shared<factory>()};

}  // namespace
}  // namespace filterd::enrichment
