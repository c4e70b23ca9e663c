package spv1

import (
	"net/http"
	"testing"
	"time"
)

// The expected canonical string and signature were produced independently with printf, sha256sum
// and `openssl dgst -sha256 -hmac perf-secret -binary | base64`.
func TestVectorFromOpenSSL(t *testing.T) {
	q := []Pair{{"x", "1"}, {"a b", "/"}, {"x", ""}}
	c := Canonical("post", "/v1/payments/m-001", q, "m-001", "k1", "1764158400", "AAAAAAAAAAAAAAAAAAAAAA", []byte(`{"amount":100}`))
	want := "SPV1\nPOST\n/v1/payments/m-001\na%20b=%2F&x=&x=1\nm-001\nk1\n1764158400\nAAAAAAAAAAAAAAAAAAAAAA\n" +
		"4d4bbe59c6aad22442cde199a6a8a5f034405fcd78fb5a81c24ef249de1c45f1"
	if c != want {
		t.Fatalf("canonical:\n%q\nwant\n%q", c, want)
	}
	k := Key{MerchantID: "m-001", KeyID: "k1", Secret: []byte("perf-secret")}
	if s := k.Signature(c); s != "v1=hjE8D6Mj0oH1mCsBzQsBsJwSK+VjlHymgAr6p1zhPRQ=" {
		t.Fatalf("signature %s", s)
	}
}

func TestEmptyQueryAndBody(t *testing.T) {
	c := Canonical("GET", "/", nil, "m", "k", "1", "n", nil)
	want := "SPV1\nGET\n/\n\nm\nk\n1\nn\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	if c != want {
		t.Fatalf("canonical %q", c)
	}
}

func TestSignSetsFreshHeaders(t *testing.T) {
	k := Key{MerchantID: "m-001", KeyID: "k1", Secret: []byte("s")}
	seen := map[string]bool{}
	now := time.Unix(1764158400, 0)
	for i := 0; i < 1000; i++ {
		h := http.Header{}
		k.Sign(h, "POST", "/p", nil, []byte("b"), now)
		n := h.Get("X-Nonce")
		if len(n) < 16 || len(n) > 128 || seen[n] {
			t.Fatalf("nonce %q (len %d, repeated %v)", n, len(n), seen[n])
		}
		seen[n] = true
		if h.Get("X-Timestamp") != "1764158400" || h.Get("X-Merchant-Id") != "m-001" || h.Get("X-Key-Id") != "k1" {
			t.Fatalf("headers %v", h)
		}
		c := Canonical("POST", "/p", nil, "m-001", "k1", "1764158400", n, []byte("b"))
		if h.Get("X-Signature") != k.Signature(c) {
			t.Fatal("signature does not cover the headers sent")
		}
	}
}

// The canonical path: decoded once, re-encoded with '/' kept (vector hmac_encoded_path of
// tests/data/merchant_auth/vectors.json has the same line 3).
func TestCanonicalPath(t *testing.T) {
	for raw, want := range map[string]string{
		"/v1/payments":                         "/v1/payments",
		"/v1/%70ayments/caf%C3%A9%20x+y/a%2Fb": "/v1/payments/caf%C3%A9%20x%2By/a/b",
		"/v1/{id}":                             "/v1/%7Bid%7D",
	} {
		if got := CanonicalPath(raw); got != want {
			t.Errorf("CanonicalPath(%q) = %q, want %q", raw, got, want)
		}
	}
}
