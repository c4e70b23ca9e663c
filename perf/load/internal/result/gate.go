package result

import (
	"fmt"
	"math"
	"strings"
)

// GateConfig sets the regression gate's tolerances.
type GateConfig struct {
	// MaxAddedP99GrowthUS: the added P99 of (b) over (a) may grow by at most this much over the
	// baseline's added P99. STD-API-034: "Any regression >1ms at P99 fails the build".
	MaxAddedP99GrowthUS float64
	// MaxErrorRateB: the share of (b)'s requests that may fail. A faster plugin that fails requests
	// is not an improvement, so failures are gated too.
	MaxErrorRateB float64
	// MaxDeadlineDenialRateB: the share of (b)'s validly signed requests that may be denied with 503
	// (the bridge failing closed on its deadline). A denied payment is worse than a slow one.
	MaxDeadlineDenialRateB float64
}

// DefaultGate is the gate CI runs: at most 0.01% of (b) denied on the deadline (1 in the gate's 10,000
// requests), at most 1% failed in all (a broken plugin, a wrong signature or a dead daemon fails nearly
// every request). The product's target for deadline denials is 1 in 100,000 over 60 s
// (docs/performance.md); the gate's 10 s cannot show a rate that low.
var DefaultGate = GateConfig{MaxAddedP99GrowthUS: 1000, MaxErrorRateB: 0.01, MaxDeadlineDenialRateB: 0.0001}

// GateOutcome is the verdict of one comparison.
type GateOutcome struct {
	Pass  bool
	Lines []string // human-readable, one finding per line
}

// Gate compares a current run with the baseline. Only same-run deltas are compared: the added P99
// of (b) over (a) in the current run against the added P99 of (b) over (a) in the baseline run.
// The absolute latencies of the two runs never meet.
func Gate(base, cur *Result, cfg GateConfig) GateOutcome {
	o := GateOutcome{Pass: true}
	fail := func(f string, a ...any) { o.Pass = false; o.Lines = append(o.Lines, "FAIL: "+fmt.Sprintf(f, a...)) }
	info := func(f string, a ...any) { o.Lines = append(o.Lines, "ok:   "+fmt.Sprintf(f, a...)) }

	cb, ca := cur.Phases[PhasePlugin], cur.Phases[PhaseBaseline]
	if cb == nil || ca == nil {
		fail("current run lacks phase (a) or (b)")
		return o
	}
	if ca.Success == 0 || cb.Success == 0 {
		fail("current run: (a) %d ok, (b) %d ok: nothing to compare", ca.Success, cb.Success)
		return o
	}
	if base.Derived.AddedB == nil {
		fail("baseline has no added latency for (b); regenerate it with scripts/perf-baseline-update.sh")
		return o
	}
	if cur.Derived.AddedB == nil {
		cur.Derive()
	}
	if rate := float64(cb.Errors) / float64(cb.Requests); rate > cfg.MaxErrorRateB {
		fail("(b) failed %d of %d requests (%.3f%%; allowed %.3f%%): %s", cb.Errors, cb.Requests, rate*100,
			cfg.MaxErrorRateB*100, codes(cb))
	} else {
		info("(b) %d of %d requests succeeded", cb.Success, cb.Requests)
	}
	if d := cur.Derived.DeadlineDenialRateB; d > cfg.MaxDeadlineDenialRateB {
		fail("(b) denied %d of %d validly signed requests with 503 (%.4f%%; allowed %.4f%%): the bridge's deadline", cur.Derived.DeadlineDenialsB,
			cb.Requests, d*100, cfg.MaxDeadlineDenialRateB*100)
	} else {
		info("(b) deadline denials: %d of %d (limit %.4f%%)", cur.Derived.DeadlineDenialsB, cb.Requests, cfg.MaxDeadlineDenialRateB*100)
	}
	if ca.Errors > 0 {
		fail("(a) baseline endpoint failed %d of %d requests (%s): the run is not a valid comparison", ca.Errors, ca.Requests, codes(ca))
	}

	// The plugin cannot make a request faster, so a negative added P99 in the baseline is noise (a
	// burst of other work that fell on (a)); it counts as zero, or a noisy baseline would fail every
	// quiet run after it.
	baseP99 := math.Max(base.Derived.AddedB.P99, 0)
	growth := cur.Derived.AddedB.P99 - baseP99
	line := fmt.Sprintf("added P99 (b over a): now %.0f µs, baseline %.0f µs (counted as %.0f), growth %+.0f µs (limit +%.0f µs)",
		cur.Derived.AddedB.P99, base.Derived.AddedB.P99, baseP99, growth, cfg.MaxAddedP99GrowthUS)
	if growth > cfg.MaxAddedP99GrowthUS {
		fail("%s", line)
	} else {
		info("%s", line)
	}
	info("added P50 (b over a): now %.0f µs, baseline %.0f µs (reported, not gated)", cur.Derived.AddedB.P50, base.Derived.AddedB.P50)
	if cur.Config.RatePerS != base.Config.RatePerS {
		o.Lines = append(o.Lines, fmt.Sprintf("note: current rate %d/s, baseline rate %d/s", cur.Config.RatePerS, base.Config.RatePerS))
	}
	return o
}

func codes(p *Phase) string {
	var parts []string
	for k, v := range p.StatusCodes {
		parts = append(parts, fmt.Sprintf("%s×%d", k, v))
	}
	for k, v := range p.ErrorKinds {
		parts = append(parts, fmt.Sprintf("%q×%d", k, v))
	}
	return strings.Join(parts, ", ")
}
