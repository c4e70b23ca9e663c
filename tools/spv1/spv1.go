// Package spv1 is the Go SPV1 signer (hmac-sha256) of the merchant-auth filter
// (docs/filters/merchant-auth.md, "Signers"): every Go client that sends signed requests uses it,
// the perf pump (perf/load/cmd/perfload), the end-to-end tests (tests/e2e) and the pod load driver
// (deploy/kubernetes/check/podload). Each of them signs a fresh request, with a unique nonce and
// the current time, for every hit.
//
// It is a client of the merchant contract, written from the docs and kept apart from the daemon's
// verifier on purpose: its tests check it against the committed vectors of the independent
// generator (tests/data/merchant_auth/vectors.json) and a vector made with the openssl CLI.
package spv1

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Key is one hmac-sha256 key of a merchant.
type Key struct {
	MerchantID string
	KeyID      string
	Secret     []byte
}

// Pair is one query parameter, decoded.
type Pair struct{ Name, Value string }

// encode percent-encodes per RFC 3986: unreserved bytes stay, every other byte is %XX (upper hex).
func encode(s string) string {
	const hexd = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexd[c>>4])
		b.WriteByte(hexd[c&15])
	}
	return b.String()
}

// CanonicalQuery encodes, sorts (by name, then value, bytewise) and joins the pairs.
func CanonicalQuery(q []Pair) string {
	enc := make([][2]string, len(q))
	for i, p := range q {
		enc[i] = [2]string{encode(p.Name), encode(p.Value)}
	}
	sort.Slice(enc, func(i, j int) bool {
		if enc[i][0] != enc[j][0] {
			return enc[i][0] < enc[j][0]
		}
		return enc[i][1] < enc[j][1]
	})
	parts := make([]string, len(enc))
	for i, e := range enc {
		parts[i] = e[0] + "=" + e[1]
	}
	return strings.Join(parts, "&")
}

// ParseQuery decodes a raw query string the way the gateway does: pairs split on '&' (empty parts
// skipped), name and value split at the first '=', each percent-decoded with '+' meaning a space.
// An invalid percent escape is an error.
func ParseQuery(raw string) ([]Pair, error) {
	var q []Pair
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		name, value, _ := strings.Cut(part, "=")
		n, err := url.QueryUnescape(name)
		if err != nil {
			return nil, err
		}
		v, err := url.QueryUnescape(value)
		if err != nil {
			return nil, err
		}
		q = append(q, Pair{Name: n, Value: v})
	}
	return q, nil
}

// ReadSecretFile reads an hmac secret from a file as filterd's secret loader does: its bytes, less
// one trailing newline and then one trailing carriage return.
func ReadSecretFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r")), nil
}

// CanonicalPath is line 3 of the canonical string: the raw path decoded once (percent escapes only;
// '+' stays '+'), then each segment encoded like a query value, '/' kept. An invalid escape is left as
// sent (the gateway answers such a request 400 before filterd sees it).
func CanonicalPath(raw string) string {
	dec, err := url.PathUnescape(raw)
	if err != nil {
		dec = raw
	}
	segs := strings.Split(dec, "/")
	for i, seg := range segs {
		segs[i] = encode(seg)
	}
	return strings.Join(segs, "/")
}

// Canonical builds the SPV1 canonical string; path is the raw path as sent.
func Canonical(method, path string, query []Pair, merchant, keyID, timestamp, nonce string, body []byte) string {
	sum := sha256.Sum256(body)
	return strings.Join([]string{"SPV1", strings.ToUpper(method), CanonicalPath(path), CanonicalQuery(query), merchant,
		keyID, timestamp, nonce, hex.EncodeToString(sum[:])}, "\n")
}

// Signature returns the X-Signature value for a canonical string.
func (k Key) Signature(canonical string) string {
	m := hmac.New(sha256.New, k.Secret)
	m.Write([]byte(canonical))
	return "v1=" + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// NewNonce returns 22 characters of base64url from 16 random bytes.
func NewNonce() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Sign sets the five SPV1 headers on h for a request made now.
func (k Key) Sign(h http.Header, method, path string, query []Pair, body []byte, now time.Time) {
	ts := strconv.FormatInt(now.Unix(), 10)
	nonce := NewNonce()
	h.Set("X-Merchant-Id", k.MerchantID)
	h.Set("X-Key-Id", k.KeyID)
	h.Set("X-Timestamp", ts)
	h.Set("X-Nonce", nonce)
	h.Set("X-Signature", k.Signature(Canonical(method, path, query, k.MerchantID, k.KeyID, ts, nonce, body)))
}
