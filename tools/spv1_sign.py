#!/usr/bin/env python3
"""spv1-sign: print the SPV1 merchant-auth headers for one request.

Uses only the Python standard library (hmac, hashlib) for hmac-sha256 and the `openssl` command line
tool for rsa-sha256 and ed25519. Secrets are never taken on the command line (they would show up in
`ps` and shell history): pass a reference instead, --secret-env NAME or --secret-file PATH for HMAC,
--private-key-file PATH (PEM) for RSA / Ed25519.

Example:
  export ACME_K1_SECRET='...'
  tools/spv1_sign.py --method POST --url '/v1/payments?currency=PKR' --body-file body.json \\
      --merchant acme --key-id k1 --alg hmac-sha256 --secret-env ACME_K1_SECRET

Query decoding: the query string after '?' is split on '&' and each name/value is decoded the way the
gateway does (percent escapes, and '+' means a space, as in application/x-www-form-urlencoded).
The decoded pairs are then re-encoded by the canonical rules, so any valid spelling of the URL signs
the same. The path is decoded once (percent escapes only) and re-encoded the same way, keeping '/'
(the canonical path): the gateway hands filterd the decoded path, so that is what both sides can agree
on. See docs/filters/merchant-auth.md for the canonical string.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time

UNRESERVED = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def pct(data: bytes) -> str:
    return "".join(chr(b) if b in UNRESERVED else "%%%02X" % b for b in data)


def percent_decode(s: str, plus_is_space: bool, where: str) -> bytes:
    """Percent-decodes s once; in a query ('+' is a space) or in a path ('+' stays '+')."""
    raw = s.encode("utf-8")
    out = bytearray()
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == ord("+") and plus_is_space:
            out.append(0x20)
            i += 1
        elif c == ord("%"):
            h = raw[i + 1:i + 3]
            if len(h) != 2 or not all(x in b"0123456789abcdefABCDEF" for x in h):
                raise ValueError("invalid percent escape in %s: %r" % (where, s))
            out.append(int(h, 16))
            i += 3
        else:
            out.append(c)
            i += 1
    return bytes(out)


def form_decode(s: str) -> bytes:
    return percent_decode(s, True, "query")


def parse_query(q: str):
    pairs = []
    for part in q.split("&"):
        if part == "":
            continue
        name, _, value = part.partition("=")
        pairs.append((form_decode(name), form_decode(value)))
    return pairs


def path_decode(s: str) -> bytes:
    """Percent-decodes a raw path once, as the gateway (Go's URL.Path) does; '+' stays '+'."""
    return percent_decode(s, False, "path (the gateway answers 400)")


def canonical_path(raw_path: str) -> str:
    """The raw path decoded once, then re-encoded: unreserved characters and '/' kept, all else %XX."""
    return "".join(chr(b) if b in UNRESERVED or b == ord("/") else "%%%02X" % b for b in path_decode(raw_path))


def canonical_query(pairs) -> str:
    enc = sorted((pct(n).encode(), pct(v).encode()) for n, v in pairs)
    return "&".join((n + b"=" + v).decode() for n, v in enc)


def canonical_string(method, path, pairs, merchant, key_id, timestamp, nonce, body: bytes) -> str:
    return "\n".join(["SPV1", method.upper(), canonical_path(path), canonical_query(pairs), merchant, key_id, str(timestamp),
                      nonce, hashlib.sha256(body).hexdigest()])


def sign(alg, canonical: str, args) -> bytes:
    msg = canonical.encode("utf-8", "surrogateescape")
    if alg == "hmac-sha256":
        if args.secret_env:
            key = os.environ.get(args.secret_env)
            if not key:
                sys.exit("spv1-sign: environment variable %s is not set or empty" % args.secret_env)
            key = key.encode()
        elif args.secret_file:
            with open(args.secret_file, "rb") as f:
                key = f.read()
            # same rule as filterd's secret loader: one trailing newline (and CR) is dropped
            if key.endswith(b"\n"):
                key = key[:-1]
            if key.endswith(b"\r"):
                key = key[:-1]
        else:
            sys.exit("spv1-sign: hmac-sha256 needs --secret-env or --secret-file")
        return hmac.new(key, msg, hashlib.sha256).digest()
    if not args.private_key_file:
        sys.exit("spv1-sign: %s needs --private-key-file" % alg)
    with tempfile.NamedTemporaryFile() as tmp:
        tmp.write(msg)
        tmp.flush()
        if alg == "rsa-sha256":
            cmd = ["openssl", "dgst", "-sha256", "-sign", args.private_key_file, tmp.name]
        else:
            cmd = ["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", args.private_key_file, "-in", tmp.name]
        r = subprocess.run(cmd, capture_output=True)
        if r.returncode != 0:
            sys.exit("spv1-sign: openssl failed: " + r.stderr.decode(errors="replace"))
        return r.stdout


def main(argv=None):
    p = argparse.ArgumentParser(prog="spv1-sign", description="Print SPV1 merchant-auth request headers.")
    p.add_argument("--method", required=True)
    p.add_argument("--url", required=True, help="path and optional query exactly as sent, e.g. /v1/pay?a=1")
    p.add_argument("--body-file", help="file holding the raw body; '-' reads stdin; omit for no body")
    p.add_argument("--merchant", required=True)
    p.add_argument("--key-id", required=True)
    p.add_argument("--alg", required=True, choices=["hmac-sha256", "rsa-sha256", "ed25519"])
    p.add_argument("--secret-env", help="HMAC: name of the environment variable holding the secret")
    p.add_argument("--secret-file", help="HMAC: file holding the secret")
    p.add_argument("--private-key-file", help="RSA / Ed25519: PEM private key file")
    p.add_argument("--timestamp", type=int, help="Unix seconds (default: now)")
    p.add_argument("--nonce", help="16-128 base64url characters (default: 32 random)")
    p.add_argument("--json", action="store_true", help="print the headers as a JSON object")
    p.add_argument("--show-canonical", action="store_true", help="also print the canonical string to stderr")
    args = p.parse_args(argv)

    path, _, query = args.url.partition("?")
    try:
        pairs = parse_query(query)
        canonical_path(path)
    except ValueError as e:
        sys.exit("spv1-sign: %s" % e)
    body = b""
    if args.body_file == "-":
        body = sys.stdin.buffer.read()
    elif args.body_file:
        with open(args.body_file, "rb") as f:
            body = f.read()
    ts = args.timestamp if args.timestamp is not None else int(time.time())
    nonce = args.nonce or base64.urlsafe_b64encode(secrets.token_bytes(24)).decode().rstrip("=")

    canonical = canonical_string(args.method, path, pairs, args.merchant, args.key_id, ts, nonce, body)
    if args.show_canonical:
        sys.stderr.write(canonical + "\n")
    sig = sign(args.alg, canonical, args)
    headers = {
        "X-Merchant-Id": args.merchant,
        "X-Key-Id": args.key_id,
        "X-Timestamp": str(ts),
        "X-Nonce": nonce,
        "X-Signature": "v1=" + base64.b64encode(sig).decode(),
    }
    if args.json:
        print(json.dumps(headers, indent=2))
    else:
        for k, v in headers.items():
            print("%s: %s" % (k, v))


if __name__ == "__main__":
    main()
