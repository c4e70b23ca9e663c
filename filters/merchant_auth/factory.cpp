// Registers merchant-auth under the stable name "merchant-auth".
#include "filters/merchant_auth/filter.hpp"

namespace filterd::merchant_auth {

namespace {

class auth_factory final : public filter_factory {
public:
    std::string_view name() const override { return "merchant-auth"; }

    /// Builds a config generation. The nonce store is carried over from `previous`, so a reload never
    /// forgets a nonce (a replay across a SIGHUP is still a replay). Its memory is allocated once per
    /// process, so a reload that changes nonce_capacity is refused.
    std::shared_ptr<filter_instance> create(const boost::json::value* cfg, const std::string& path,
                                            const std::shared_ptr<filter_instance>& previous) const override {
        auto c = config::load(cfg, path);
        std::shared_ptr<nonce_store> nonces;
        if (auto* prev = dynamic_cast<auth_instance*>(previous.get()); prev != nullptr) {
            nonces = prev->nonces();
            if (nonces->capacity() != c->nonce_capacity)
                throw config_error(path + ".nonce_capacity",
                                   "cannot change on reload (running with " + std::to_string(nonces->capacity()) +
                                       "); restart filterd to resize the nonce store");
        } else {
            nonces = std::make_shared<nonce_store>(c->nonce_capacity);
        }
        return std::make_shared<auth_instance>(std::move(c), std::move(nonces));
    }
};

const registrar reg{std::make_shared<auth_factory>()};

}  // namespace

}  // namespace filterd::merchant_auth
