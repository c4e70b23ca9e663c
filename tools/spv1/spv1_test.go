package spv1

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// vectorDir holds the shared SPV1 vector set, made by the independent generator
// (tests/data/merchant_auth/gen_vectors.py); every signer of the project is checked against it.
var vectorDir = filepath.Join("..", "..", "tests", "data", "merchant_auth")

type vector struct {
	Name         string            `json:"name"`
	Alg          string            `json:"alg"`
	Key          string            `json:"key"`
	Method       string            `json:"method"`
	Path         string            `json:"path"`
	QueryHex     [][2]string       `json:"query_hex"`
	BodyHex      string            `json:"body_hex"`
	Headers      map[string]string `json:"headers"`
	CanonicalHex string            `json:"canonical_hex"`
}

func unhex(t *testing.T, s string) string {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Every hmac-sha256 vector: the canonical string and the signature are the generator's, byte for
// byte, from the raw path, the decoded query pairs and the key file as filterd reads it.
func TestSharedVectors(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(vectorDir, "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Vectors []vector }
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, v := range doc.Vectors {
		if v.Alg != "hmac-sha256" {
			continue // asymmetric keys are signed by tools/spv1_sign.py only
		}
		n++
		t.Run(v.Name, func(t *testing.T) {
			var q []Pair
			for _, p := range v.QueryHex {
				q = append(q, Pair{Name: unhex(t, p[0]), Value: unhex(t, p[1])})
			}
			h := v.Headers
			c := Canonical(v.Method, v.Path, q, h["X-Merchant-Id"], h["X-Key-Id"], h["X-Timestamp"], h["X-Nonce"], []byte(unhex(t, v.BodyHex)))
			if want := unhex(t, v.CanonicalHex); c != want {
				t.Fatalf("canonical:\n%q\nwant\n%q", c, want)
			}
			secret, err := ReadSecretFile(filepath.Join(vectorDir, v.Key))
			if err != nil {
				t.Fatal(err)
			}
			k := Key{MerchantID: h["X-Merchant-Id"], KeyID: h["X-Key-Id"], Secret: secret}
			if s := k.Signature(c); s != h["X-Signature"] {
				t.Fatalf("signature %s, want %s", s, h["X-Signature"])
			}

			// The same pairs sent as a query string (any valid spelling) decode to the same canonical query.
			var raw []string
			for _, p := range q {
				raw = append(raw, url.QueryEscape(p.Name)+"="+url.QueryEscape(p.Value))
			}
			parsed, err := ParseQuery(strings.Join(raw, "&"))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := CanonicalQuery(parsed), CanonicalQuery(q); got != want {
				t.Fatalf("ParseQuery round trip: %q, want %q", got, want)
			}
		})
	}
	if n < 8 {
		t.Fatalf("only %d hmac-sha256 vectors in %s", n, vectorDir)
	}
}

func TestParseQuery(t *testing.T) {
	q, err := ParseQuery("a=1&&b+c=%2F%7e&d&e=x=y")
	if err != nil {
		t.Fatal(err)
	}
	want := []Pair{{"a", "1"}, {"b c", "/~"}, {"d", ""}, {"e", "x=y"}}
	if len(q) != len(want) {
		t.Fatalf("%v, want %v", q, want)
	}
	for i := range q {
		if q[i] != want[i] {
			t.Fatalf("%v, want %v", q, want)
		}
	}
	if _, err := ParseQuery("a=%zz"); err == nil {
		t.Fatal("an invalid percent escape was accepted")
	}
}

func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]string{"s\n": "s", "s\r\n": "s", "s\n\n": "s\n", "s": "s", "s\r": "s"} {
		f := filepath.Join(dir, "k")
		if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadSecretFile(f)
		if err != nil || string(got) != want {
			t.Errorf("ReadSecretFile(%q) = %q, %v; want %q", content, got, err, want)
		}
	}
}

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
