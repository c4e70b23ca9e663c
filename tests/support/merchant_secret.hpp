#pragma once
// The test merchant's HMAC key (tests/data/merchant_auth/), read as filterd reads a {"file": ...}
// secret reference (spv1_read_secret_file). Tests sign requests with it.

#include "tests/support/spv1.hpp"

#include <string>

namespace filterd::testing {

inline std::string read_secret(const std::string& file = "acme-k1.secret") {
    return spv1_read_secret_file(std::string(FILTERD_SOURCE_DIR) + "/tests/data/merchant_auth/" + file).value_or("");
}

}  // namespace filterd::testing
