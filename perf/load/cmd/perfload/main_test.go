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

// The ramp finds each endpoint's limit to within satResolution, runs (a) and (b) at each rate side by
// side, needs a repeat to fail before it counts, and reports a ramp stopped by max as a lower bound.
func TestRampFindsEachLimitAndConfirmsFailures(t *testing.T) {
	a := &endpoint{key: result.PhaseBaseline}
	b := &endpoint{key: result.PhasePlugin}
	limit := map[string]int{result.PhaseBaseline: 4100, result.PhasePlugin: 3600}
	hiccups := map[string]int{result.PhasePlugin: 976} // one failed step at 976/s: a hiccup, not a limit
	var order []string
	run := func(e *endpoint, rate int) result.SatStep {
		order = append(order, e.key)
		st := result.SatStep{Phase: e.key, RatePerS: rate, Requests: rate * 3, P99US: 2000}
		if rate > limit[e.key] {
			st.P99US = 50000
		} else if hiccups[e.key] == rate {
			delete(hiccups, e.key)
			st.P99US = 12000
		}
		return st
	}
	sat := ramp([]*endpoint{a, b}, 500, 1.25, 20000, time.Millisecond, time.Now().Add(time.Hour), run)
	for key, got := range map[string]int{result.PhaseBaseline: sat.MaxRateA, result.PhasePlugin: sat.MaxRateB} {
		if got > limit[key] || float64(got)*satResolution < float64(limit[key]) {
			t.Errorf("(%s): sustained %d/s, limit %d/s: not within %.2f", key, got, limit[key], satResolution)
		}
	}
	if sat.Capped {
		t.Error("both ramps found a limit, yet the result is marked as a lower bound")
	}
	if order[0] != result.PhaseBaseline || order[1] != result.PhasePlugin {
		t.Errorf("the first rate did not run (a) then (b): %v", order[:2])
	}
	retried := 0
	for _, st := range sat.Steps {
		if st.Phase == result.PhasePlugin && st.RatePerS == 976 {
			retried++
		}
	}
	if retried != 2 {
		t.Errorf("the hiccup at 976/s ran %d times, want 2 (the step and its repeat)", retried)
	}

	limit[result.PhasePlugin] = 1 << 30
	sat = ramp([]*endpoint{a, b}, 500, 1.25, 2000, time.Millisecond, time.Now().Add(time.Hour), run)
	if !sat.Capped || sat.MaxRateB > 2000 || sat.MaxRateB < 1600 {
		t.Errorf("a ramp stopped by max: capped %v, (b) %d/s", sat.Capped, sat.MaxRateB)
	}
	sat = ramp([]*endpoint{a, b}, 500, 1.25, 20000, time.Second, time.Now().Add(time.Second), run)
	if len(sat.Steps) != 0 || !sat.Capped {
		t.Errorf("no time for a step and its repeat: %d steps, capped %v", len(sat.Steps), sat.Capped)
	}
}

func TestParseStealReadsTheStealColumn(t *testing.T) {
	stat := "cpu  2375288 631635 606566 1513791 11765 0 33969 1507 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"
	if got := parseSteal(stat); got != 15070 {
		t.Errorf("parseSteal = %v ms, want 15070 (1507 ticks of 10 ms)", got)
	}
	for _, bad := range []string{"", "cpu 1 2 3", "intr 1 2 3 4 5 6 7 8 9", "cpu 1 2 3 4 5 6 7 x 9"} {
		if got := parseSteal(bad); got != -1 {
			t.Errorf("parseSteal(%q) = %v, want -1", bad, got)
		}
	}
}
