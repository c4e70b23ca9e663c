package stats

import (
	"testing"
	"time"
)

func TestNearestRankOn1000Samples(t *testing.T) {
	var s Sample
	// 1..1000 µs, added in reverse to prove the sample sorts itself.
	for i := 1000; i >= 1; i-- {
		s.Add(time.Duration(i) * time.Microsecond)
	}
	p := s.Percentiles()
	want := Percentiles{P50: 500, P90: 900, P99: 990, P999: 999, Max: 1000, Mean: 500.5}
	if p != want {
		t.Fatalf("percentiles = %+v, want %+v", p, want)
	}
	if got := s.Quantile(0); got != 1 {
		t.Fatalf("min = %v, want 1", got)
	}
}

func TestSmallAndEmptySamples(t *testing.T) {
	var empty Sample
	if (empty.Percentiles() != Percentiles{}) || empty.Curve() != nil {
		t.Fatal("empty sample must give zero percentiles and no curve")
	}
	var one Sample
	one.Add(7 * time.Microsecond)
	if p := one.Percentiles(); p.P50 != 7 || p.P999 != 7 || p.Max != 7 {
		t.Fatalf("single sample: %+v", p)
	}
}

func TestCurveIsMonotoneAndEndsAtMax(t *testing.T) {
	var s Sample
	for i := 0; i < 10000; i++ {
		s.Add(time.Duration(i%97+1) * time.Microsecond)
	}
	c := s.Curve()
	if len(c) != len(CurveQuantiles) {
		t.Fatalf("curve has %d points", len(c))
	}
	for i := 1; i < len(c); i++ {
		if c[i].US < c[i-1].US {
			t.Fatalf("curve not monotone at %d: %v", i, c)
		}
	}
	if c[len(c)-1].US != 97 || c[0].US != 1 {
		t.Fatalf("curve ends: %v", c)
	}
}

func TestSub(t *testing.T) {
	a := Percentiles{P50: 100, P90: 200, P99: 300, P999: 400, Max: 500, Mean: 150}
	b := Percentiles{P50: 130, P90: 210, P99: 390, P999: 800, Max: 900, Mean: 160}
	d := b.Sub(a)
	if d.P50 != 30 || d.P90 != 10 || d.P99 != 90 || d.P999 != 400 || d.Max != 400 || d.Mean != 10 {
		t.Fatalf("sub = %+v", d)
	}
}
