// The C++ SPV1 signer of tests and tools (tests/support/spv1.hpp, used by filterd-loadgen and the C++
// tests) against the shared vectors of the independent generator: every hmac-sha256 vector, byte for
// byte. The Go signer (tools/spv1) and the Python tool (tools/spv1_sign.py) pass the same vectors.

#include "tests/filters/merchant_auth/support.hpp"
#include "tests/support/spv1.hpp"

#include <catch2/catch.hpp>

using namespace filterd;
using namespace filterd::merchant_auth::testing;

TEST_CASE("the C++ test signer reproduces every hmac-sha256 vector", "[signer]") {
    std::map<std::string, std::string> key_file;  // vector name -> its key file
    const json::value doc = parse_json_file(data_dir() + "vectors.json");
    for (const auto& v : doc.at("vectors").as_array())
        key_file[json::value_to<std::string>(v.at("name"))] = json::value_to<std::string>(v.at("key"));
    int checked = 0;
    for (const auto& [name, v] : vectors()) {
        if (v.alg != "hmac-sha256")
            continue;  // asymmetric keys are signed by tools/spv1_sign.py only
        INFO("vector " << name);
        ++checked;
        const std::string merchant = v.header("X-Merchant-Id"), key_id = v.header("X-Key-Id");
        const std::string ts = v.header("X-Timestamp"), nonce = v.header("X-Nonce");

        // The canonical string, from the decoded path and query the gateway hands filterd.
        std::string canonical = filterd::testing::spv1_canonical(v.spec, merchant, key_id, ts, nonce,
                                                                 filterd::testing::spv1_sha256_hex(v.spec.body));
        CHECK(canonical == v.canonical);

        auto secret = filterd::testing::spv1_read_secret_file(data_dir() + key_file.at(name));
        REQUIRE(secret);
        CHECK(filterd::testing::spv1_hmac_signature(*secret, canonical) == v.header("X-Signature"));

        // spv1_sign_hmac sets the same five headers (the vector's timestamp is a plain integer here).
        if (ts.front() != '0') {
            proto::request_spec spec = v.spec;
            spec.headers.clear();
            filterd::testing::spv1_sign_hmac(spec, merchant, key_id, *secret, nonce, std::stoll(ts));
            vector_case signed_case = v;
            signed_case.spec = spec;
            for (const char* h : {"X-Merchant-Id", "X-Key-Id", "X-Timestamp", "X-Nonce", "X-Signature"})
                CHECK(signed_case.header(h) == v.header(h));
            // A digest given by the caller (hashed once) signs the same.
            filterd::testing::spv1_sign_hmac(spec, merchant, key_id, *secret, nonce, std::stoll(ts),
                                             filterd::testing::spv1_sha256_hex(v.spec.body));
            CHECK(spec.headers.size() == 5);
            signed_case.spec = spec;
            CHECK(signed_case.header("X-Signature") == v.header("X-Signature"));
        }
    }
    CHECK(checked >= 8);
}
