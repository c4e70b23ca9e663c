package main

import (
	"net/url"
	"strconv"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"filterd.local/perf/load/internal/result"
	"filterd.local/tools/spv1"
)

func TestMakeBodyIsExactJSONSize(t *testing.T) {
	for _, n := range []int{0, 10, 64, 1024, 4096} {
		b := makeBody(n)
		want := n
		if want < 42 {
			want = 42
		}
		if len(b) != want || b[0] != '{' || b[len(b)-1] != '}' {
			t.Fatalf("makeBody(%d): %d bytes %q", n, len(b), b[:10])
		}
	}
}

// Every target the pump hands out is signed for its own path, with a nonce never seen before and a
// timestamp of now: the properties merchant-auth checks.
func TestTargeterSignsEveryRequestFreshly(t *testing.T) {
	u, _ := url.Parse("http://127.0.0.1:1/v1/payments?b=2&a=1")
	e := &endpoint{key: "b", url: u, query: []spv1.Pair{{Name: "b", Value: "2"}, {Name: "a", Value: "1"}}, phase: &result.Phase{}}
	key := spv1.Key{MerchantID: "m-perf", KeyID: "k-perf", Secret: []byte("s3cret-s3cret-s3cret-s3cret-s3cr")}
	body := makeBody(1024)
	tr := targeter(e, key, "POST", body, 1000)
	seen := map[string]bool{}
	for i := 0; i < 500; i++ {
		var tg vegeta.Target
		if err := tr(&tg); err != nil {
			t.Fatal(err)
		}
		h := tg.Header
		n := h.Get("X-Nonce")
		if seen[n] {
			t.Fatalf("nonce %q reused", n)
		}
		seen[n] = true
		ts, _ := strconv.ParseInt(h.Get("X-Timestamp"), 10, 64)
		if d := time.Now().Unix() - ts; d < 0 || d > 2 {
			t.Fatalf("timestamp %d is %d s old", ts, d)
		}
		c := spv1.Canonical("POST", "/v1/payments", e.query, "m-perf", "k-perf", h.Get("X-Timestamp"), n, tg.Body)
		if h.Get("X-Signature") != key.Signature(c) {
			t.Fatalf("signature does not verify for target %d", i)
		}
		if tg.URL != u.String() || len(tg.Body) != 1024 {
			t.Fatalf("target %d: %s, %d bytes", i, tg.URL, len(tg.Body))
		}
	}
}
