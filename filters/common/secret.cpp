#include "filters/common/secret.hpp"

#include <openssl/crypto.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace filterd {

secret::~secret() {
    if (!value_.empty())
        OPENSSL_cleanse(value_.data(), value_.size());
}

secret load_secret(config_object& obj, std::string_view key) {
    const boost::json::value* v = obj.get(key);
    if (v == nullptr)
        obj.fail(key, "is required (a reference: {\"env\": NAME} or {\"file\": PATH})");
    if (v->is_string())
        obj.fail(key, "inline secrets are not allowed; use {\"env\": NAME} or {\"file\": PATH}");
    config_object ref(*v, obj.key_path(key));
    auto env = ref.optional_string("env");
    auto file = ref.optional_string("file");
    ref.finish();
    if (env.has_value() == file.has_value())
        throw config_error(ref.path(), "must have exactly one of \"env\" or \"file\"");
    if (env) {
        const char* val = std::getenv(env->c_str());
        if (val == nullptr || *val == '\0')
            throw config_error(ref.key_path("env"), "environment variable " + *env + " is not set or empty");
        return secret(val);
    }
    std::ifstream in(*file, std::ios::binary);
    if (!in)
        throw config_error(ref.key_path("file"), "cannot read secret file " + *file);
    std::ostringstream ss;
    ss << in.rdbuf();
    std::string s = ss.str();
    if (!s.empty() && s.back() == '\n')
        s.pop_back();
    if (!s.empty() && s.back() == '\r')
        s.pop_back();
    if (s.empty())
        throw config_error(ref.key_path("file"), "secret file " + *file + " is empty");
    secret out(std::move(s));
    OPENSSL_cleanse(s.data(), s.size());
    return out;
}

}  // namespace filterd
