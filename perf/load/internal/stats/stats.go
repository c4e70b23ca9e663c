// Package stats turns raw latency samples into the percentiles the performance report uses.
//
// Percentiles are exact (nearest rank over all samples), not estimated: a phase of the load test
// holds at most a few hundred thousand samples, which sort in milliseconds.
package stats

import (
	"math"
	"sort"
	"time"
)

// Percentiles of one set of latency samples, in microseconds.
type Percentiles struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// Point is one point of a percentile curve: quantile q in [0,1] and its latency in µs.
type Point struct {
	Q  float64 `json:"q"`
	US float64 `json:"us"`
}

// CurveQuantiles are the quantiles a percentile curve is sampled at: dense towards the tail,
// as HdrHistogram plots are, so that P99.9 and the maximum are visible.
var CurveQuantiles = []float64{0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9999, 1}

// Sample is a growing set of latencies.
type Sample struct {
	d      []time.Duration
	sorted bool
}

// Add records one latency.
func (s *Sample) Add(d time.Duration) { s.d = append(s.d, d); s.sorted = false }

// Len is the number of samples.
func (s *Sample) Len() int { return len(s.d) }

func (s *Sample) sort() {
	if !s.sorted {
		sort.Slice(s.d, func(i, j int) bool { return s.d[i] < s.d[j] })
		s.sorted = true
	}
}

// Quantile returns the nearest-rank quantile q (0 ≤ q ≤ 1) in µs; 0 for an empty sample.
// q = 0 is the minimum and q = 1 the maximum.
func (s *Sample) Quantile(q float64) float64 {
	if len(s.d) == 0 {
		return 0
	}
	s.sort()
	return us(s.d[rank(q, len(s.d))])
}

// rank is the 0-based nearest-rank index of quantile q among n sorted samples.
func rank(q float64, n int) int {
	if q <= 0 {
		return 0
	}
	if q >= 1 {
		return n - 1
	}
	// A small epsilon keeps 0.99*1000 = 990 from becoming 991 through float error.
	r := int(math.Ceil(q*float64(n)-1e-9)) - 1
	if r < 0 {
		r = 0
	}
	if r >= n {
		r = n - 1
	}
	return r
}

// Percentiles summarises the sample.
func (s *Sample) Percentiles() Percentiles {
	if len(s.d) == 0 {
		return Percentiles{}
	}
	var sum float64
	for _, d := range s.d {
		sum += us(d)
	}
	return Percentiles{
		P50: s.Quantile(0.50), P90: s.Quantile(0.90), P99: s.Quantile(0.99), P999: s.Quantile(0.999),
		Max: s.Quantile(1), Mean: sum / float64(len(s.d)),
	}
}

// Curve samples the percentile curve at CurveQuantiles.
func (s *Sample) Curve() []Point {
	if len(s.d) == 0 {
		return nil
	}
	out := make([]Point, 0, len(CurveQuantiles))
	for _, q := range CurveQuantiles {
		out = append(out, Point{Q: q, US: s.Quantile(q)})
	}
	return out
}

// Sub returns a − b for each percentile (the latency b adds over a, when called as x.Sub(base)).
func (p Percentiles) Sub(b Percentiles) Percentiles {
	return Percentiles{P50: p.P50 - b.P50, P90: p.P90 - b.P90, P99: p.P99 - b.P99, P999: p.P999 - b.P999,
		Max: p.Max - b.Max, Mean: p.Mean - b.Mean}
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
