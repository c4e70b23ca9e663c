#!/usr/bin/env python3
"""Generates tests/data/merchant_auth/vectors.json: SPV1 test vectors for merchant-auth.

This is the independent implementation the C++ tests are checked against: Python's hmac/hashlib and
the `cryptography` package (pip install cryptography), with its own canonicaliser written from the
spec in docs/filters/merchant-auth.md, sharing no code with filters/merchant_auth/. As a second
opinion it also runs tools/spv1_sign.py (stdlib + openssl CLI) on a few vectors and checks that the
signatures agree. The C++ tests read only the committed output; they never run Python.

Key material here is TEST-ONLY and committed on purpose. Keys are created once and reused on later
runs, so re-running the script reproduces the same vectors (RSA PKCS#1 v1.5 and Ed25519 are
deterministic).

Usage: python3 tests/data/merchant_auth/gen_vectors.py
"""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import urllib.parse

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
TS = 1764158400  # 2025-11-26T12:00:00Z; tests set ctx.wall_ns relative to it

HMAC_SECRETS = {  # file name -> test-only secret (>= 32 bytes, as the config requires)
    "acme-k1.secret": b"test-only-acme-k1-secret-0123456789abcdef",
    "acme-k2.secret": b"test-only-acme-k2-secret-fedcba9876543210",
    "globex-g1.secret": b"test-only-globex-g1-secret-00112233445566",
}


def path_of(name):
    return os.path.join(HERE, name)


def ensure_keys():
    for name, value in HMAC_SECRETS.items():
        with open(path_of(name), "wb") as f:
            f.write(value + b"\n")  # trailing newline: the loader drops one
    if not os.path.exists(path_of("acme-rsa.key.pem")):
        k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        write_pair(k, "acme-rsa")
    if not os.path.exists(path_of("acme-ed.key.pem")):
        write_pair(ed25519.Ed25519PrivateKey.generate(), "acme-ed")
    if not os.path.exists(path_of("small-rsa.pub.pem")):  # for the config rule "RSA >= 2048 bits"
        k = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        with open(path_of("small-rsa.pub.pem"), "wb") as f:
            f.write(k.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo))


def write_pair(k, stem):
    with open(path_of(stem + ".key.pem"), "wb") as f:
        f.write(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))
    with open(path_of(stem + ".pub.pem"), "wb") as f:
        f.write(k.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo))


def load_private(stem):
    with open(path_of(stem + ".key.pem"), "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


# ---- the canonical string, from the spec ----------------------------------------------------------
def encode(b: bytes) -> bytes:
    keep = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
    return b"".join(bytes([c]) if c in keep else ("%%%02X" % c).encode() for c in b)


def decode_path(raw: str) -> bytes:
    """What the gateway hands filterd: the raw path with every %XX decoded once ('+' stays '+')."""
    return urllib.parse.unquote_to_bytes(raw)


def encode_path(decoded: bytes) -> bytes:
    keep = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/"
    return b"".join(bytes([c]) if c in keep else ("%%%02X" % c).encode() for c in decoded)


def canonical(method, path, query, merchant, key_id, ts, nonce, body: bytes) -> bytes:
    """`path` is the raw path a merchant sends; line 3 is its canonical form (decode once, re-encode)."""
    pairs = sorted((encode(n), encode(v)) for n, v in query)
    q = b"&".join(n + b"=" + v for n, v in pairs)
    lines = [b"SPV1", method.upper().encode(), encode_path(decode_path(path)), q, merchant.encode(),
             key_id.encode(), str(ts).encode(), nonce.encode(), hashlib.sha256(body).hexdigest().encode()]
    return b"\n".join(lines)


def sign(alg, key_name, msg: bytes) -> bytes:
    if alg == "hmac-sha256":
        return hmac.new(HMAC_SECRETS[key_name], msg, hashlib.sha256).digest()
    k = load_private(key_name)
    if alg == "rsa-sha256":
        return k.sign(msg, padding.PKCS1v15(), hashes.SHA256())
    return k.sign(msg)


def b(s):
    return s.encode() if isinstance(s, str) else s


VECTORS = [
    # name, alg, key file/stem, merchant, key id, method, path, query [(name, value) bytes], body, nonce
    ("hmac_post_json", "hmac-sha256", "acme-k1.secret", "acme", "k1", "POST", "/v1/payments", [],
     b'{"amount":"1500.00","currency":"PKR"}', "bm9uY2UtMDAwMDAwMDAx"),
    ("hmac_get_query", "hmac-sha256", "acme-k1.secret", "acme", "k1", "GET", "/v1/payments",
     [(b"status", b"captured"), (b"b", b"2"), (b"a", b"z"), (b"a", b"1"), (b"A", b"3"), (b"a~", b""),
      (b"q", b"a b&c=d+e/f?"), (b"name", "Zoë Ü".encode()), (b"empty", b""), (b"%", b"100%")],
     b"", "bm9uY2UtMDAwMDAwMDAy"),
    ("hmac_lowercase_method", "hmac-sha256", "acme-k1.secret", "acme", "k1", "patch",
     "/v1/merchants/acme/refunds/%7Bid%7D/", [(b"x", b"\x00\xff")], b"refund", "bm9uY2UtMDAwMDAwMDAz"),
    ("hmac_binary_body", "hmac-sha256", "acme-k2.secret", "acme", "k2", "PUT", "/v1/files/1", [],
     bytes(range(256)) * 4, "bm9uY2UtMDAwMDAwMDA0"),
    ("hmac_path_param", "hmac-sha256", "acme-k1.secret", "acme", "k1", "POST", "/v1/merchants/acme/payouts",
     [], b'{"amount":"10.00"}', "bm9uY2UtMDAwMDAwMDA1"),
    ("rsa_post", "rsa-sha256", "acme-rsa", "acme", "r1", "POST", "/v1/payments", [(b"idempotency", b"abc-1")],
     b'{"amount":"99.99","currency":"PKR"}', "bm9uY2UtMDAwMDAwMDA2"),
    ("ed25519_post", "ed25519", "acme-ed", "acme", "e1", "POST", "/v1/payments", [],
     b'{"amount":"5.00"}', "bm9uY2UtMDAwMDAwMDA3"),
    ("globex_own_key", "hmac-sha256", "globex-g1.secret", "globex", "g1", "GET", "/v1/balance", [], b"",
     "bm9uY2UtMDAwMDAwMDA4"),
    # signed with globex's secret but presented as acme: another merchant's key
    ("cross_merchant_key", "hmac-sha256", "globex-g1.secret", "acme", "g1", "GET", "/v1/balance", [], b"",
     "bm9uY2UtMDAwMDAwMDA5"),
    ("hmac_nonce_max_len", "hmac-sha256", "acme-k1.secret", "acme", "k1", "DELETE", "/v1/cards/tok_1", [], b"",
     "A" * 60 + "-_" * 34),
    # A percent-encoded path: the merchant signs the raw path's canonical form; the gateway hands filterd
    # the decoded path ("wire_path_hex"); both give line 3 = /v1/payments/caf%C3%A9%20x%2By/a/b
    ("hmac_encoded_path", "hmac-sha256", "acme-k1.secret", "acme", "k1", "GET",
     "/v1/%70ayments/caf%C3%A9%20x+y/a%2Fb", [], b"", "bm9uY2UtMDAwMDAwMDEw"),
]

# Requests that must be refused, signed correctly over what they send: (vector fields..., expected reason).
REFUSED = [
    # X-Timestamp with leading zeros is malformed (one spelling per value), even with a valid signature.
    ("hmac_timestamp_leading_zeros", "hmac-sha256", "acme-k1.secret", "acme", "k1", "GET", "/v1/payments", [], b"",
     "bm9uY2UtMDAwMDAwMDEx", "00" + str(TS), "malformed_header"),
]


def vector(name, alg, key, merchant, key_id, method, path, query, body, nonce, ts_text, expect):
    msg = canonical(method, path, query, merchant, key_id, ts_text, nonce, body)
    sig = sign(alg, key, msg)
    return {
        "name": name,
        "alg": alg,
        "key": key if alg == "hmac-sha256" else key + ".pub.pem",
        "method": method,
        "path": path,
        "wire_path_hex": decode_path(path).hex(),
        "query_hex": [[n.hex(), v.hex()] for n, v in query],
        "body_hex": body.hex(),
        "headers": {
            "X-Merchant-Id": merchant,
            "X-Key-Id": key_id,
            "X-Timestamp": ts_text,
            "X-Nonce": nonce,
            "X-Signature": "v1=" + base64.b64encode(sig).decode(),
        },
        "canonical_hex": msg.hex(),
        "expect": expect,
    }


def main():
    ensure_keys()
    out = []
    for (name, alg, key, merchant, key_id, method, path, query, body, nonce) in VECTORS:
        out.append(vector(name, alg, key, merchant, key_id, method, path, query, body, nonce, str(TS), "allow"))
    for (name, alg, key, merchant, key_id, method, path, query, body, nonce, ts_text, expect) in REFUSED:
        out.append(vector(name, alg, key, merchant, key_id, method, path, query, body, nonce, ts_text, expect))
    cross_check(out)
    doc = {"generated_by": "tests/data/merchant_auth/gen_vectors.py", "timestamp": TS, "vectors": out}
    with open(path_of("vectors.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print("wrote %d vectors to %s" % (len(out), path_of("vectors.json")))


def cross_check(vectors):
    """Second opinion: tools/spv1_sign.py (stdlib + openssl CLI) must produce the same signatures."""
    tool = os.path.join(ROOT, "tools", "spv1_sign.py")
    for v in vectors:
        if v["name"] not in ("hmac_post_json", "hmac_get_query", "rsa_post", "ed25519_post", "hmac_encoded_path"):
            continue
        q = "&".join(urllib.parse.quote(bytes.fromhex(n), safe="") + "=" + urllib.parse.quote(bytes.fromhex(x), safe="")
                     for n, x in v["query_hex"])
        url = v["path"] + ("?" + q if q else "")
        h = v["headers"]
        args = [sys.executable, tool, "--method", v["method"], "--url", url, "--merchant", h["X-Merchant-Id"],
                "--key-id", h["X-Key-Id"], "--alg", v["alg"], "--timestamp", h["X-Timestamp"], "--nonce",
                h["X-Nonce"], "--json", "--body-file", "-"]
        if v["alg"] == "hmac-sha256":
            args += ["--secret-file", path_of(v["key"])]
        else:
            args += ["--private-key-file", path_of(v["key"].replace(".pub.pem", ".key.pem"))]
        r = subprocess.run(args, input=bytes.fromhex(v["body_hex"]), capture_output=True, check=True)
        got = json.loads(r.stdout)
        if got != h:
            sys.exit("cross-check failed for %s:\n tool: %s\n gen:  %s" % (v["name"], got, h))
    print("cross-check with tools/spv1_sign.py: ok")


if __name__ == "__main__":
    main()
