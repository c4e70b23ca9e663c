#pragma once
// The test merchant's HMAC key (tests/data/merchant_auth/), as filterd reads a {"file": ...} secret
// reference: the first line, without its newline. Tests sign requests with it.

#include <fstream>
#include <string>

namespace filterd::testing {

inline std::string read_secret(const std::string& file = "acme-k1.secret") {
    std::ifstream f(std::string(FILTERD_SOURCE_DIR) + "/tests/data/merchant_auth/" + file);
    std::string v;
    std::getline(f, v);  // the daemon drops one trailing newline, as this does
    return v;
}

}  // namespace filterd::testing
