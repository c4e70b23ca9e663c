#!/usr/bin/env python3
"""tools/spv1_sign.py against the shared SPV1 vectors (tests/data/merchant_auth/vectors.json, made by
the independent generator gen_vectors.py): every vector's canonical string, and the command line run
end to end on every vector (hmac-sha256 with --secret-file, rsa-sha256 and ed25519 with
--private-key-file; both are deterministic), printing exactly the vector's headers.

The Go signer (tools/spv1) and the C++ signer (tests/support/spv1.hpp) pass the same vectors.
Run: python3 tools/spv1_sign_test.py (ctest runs it as spv1_sign_vectors).
"""
import importlib.util
import json
import os
import subprocess
import sys
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data", "merchant_auth")
TOOL = os.path.join(HERE, "spv1_sign.py")

_spec = importlib.util.spec_from_file_location("spv1_sign", TOOL)
spv1_sign = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(spv1_sign)

with open(os.path.join(DATA, "vectors.json")) as f:
    VECTORS = json.load(f)["vectors"]


def query_pairs(v):
    return [(bytes.fromhex(n), bytes.fromhex(x)) for n, x in v["query_hex"]]


class SharedVectors(unittest.TestCase):
    def test_there_are_vectors_of_every_algorithm(self):
        self.assertEqual({v["alg"] for v in VECTORS}, {"hmac-sha256", "rsa-sha256", "ed25519"})

    def test_canonical_string(self):
        for v in VECTORS:
            with self.subTest(v["name"]):
                h = v["headers"]
                got = spv1_sign.canonical_string(v["method"], v["path"], query_pairs(v), h["X-Merchant-Id"],
                                                 h["X-Key-Id"], h["X-Timestamp"], h["X-Nonce"],
                                                 bytes.fromhex(v["body_hex"]))
                self.assertEqual(got.encode("utf-8", "surrogateescape").hex(), v["canonical_hex"])

    def test_command_line_prints_the_vector_headers(self):
        n = 0
        for v in VECTORS:
            h = v["headers"]
            if h["X-Timestamp"] != str(int(h["X-Timestamp"])):
                continue  # --timestamp takes an integer: a malformed spelling cannot be asked for
            n += 1
            with self.subTest(v["name"]):
                q = "&".join(urllib.parse.quote(n_, safe="") + "=" + urllib.parse.quote(x, safe="")
                             for n_, x in query_pairs(v))
                args = [sys.executable, TOOL, "--method", v["method"], "--url", v["path"] + ("?" + q if q else ""),
                        "--merchant", h["X-Merchant-Id"], "--key-id", h["X-Key-Id"], "--alg", v["alg"],
                        "--timestamp", h["X-Timestamp"], "--nonce", h["X-Nonce"], "--json", "--body-file", "-"]
                if v["alg"] == "hmac-sha256":
                    args += ["--secret-file", os.path.join(DATA, v["key"])]
                else:
                    args += ["--private-key-file", os.path.join(DATA, v["key"].replace(".pub.pem", ".key.pem"))]
                r = subprocess.run(args, input=bytes.fromhex(v["body_hex"]), capture_output=True)
                self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
                self.assertEqual(json.loads(r.stdout), h)
        self.assertGreaterEqual(n, 10)

    def test_secret_env_signs_like_the_file(self):
        v = next(x for x in VECTORS if x["name"] == "hmac_post_json")
        h = v["headers"]
        with open(os.path.join(DATA, v["key"]), "rb") as f:
            secret = f.read().rstrip(b"\n").decode()
        env = dict(os.environ, SPV1_TEST_SECRET=secret)
        r = subprocess.run([sys.executable, TOOL, "--method", v["method"], "--url", v["path"], "--merchant",
                            h["X-Merchant-Id"], "--key-id", h["X-Key-Id"], "--alg", "hmac-sha256", "--timestamp",
                            h["X-Timestamp"], "--nonce", h["X-Nonce"], "--json", "--body-file", "-",
                            "--secret-env", "SPV1_TEST_SECRET"],
                           input=bytes.fromhex(v["body_hex"]), capture_output=True, env=env)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        self.assertEqual(json.loads(r.stdout)["X-Signature"], h["X-Signature"])

    def test_invalid_escape_is_refused(self):
        r = subprocess.run([sys.executable, TOOL, "--method", "GET", "--url", "/v1/p?a=%zz", "--merchant", "m",
                            "--key-id", "k", "--alg", "hmac-sha256", "--secret-env", "SPV1_TEST_UNSET"],
                           capture_output=True, env={k: x for k, x in os.environ.items() if k != "SPV1_TEST_UNSET"})
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"invalid percent escape", r.stderr)


if __name__ == "__main__":
    unittest.main()
