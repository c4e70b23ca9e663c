// Package report renders a load-test result as a short Markdown report and a PNG plot of the
// latency percentile curves of (a), (b) and (c).
package report

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"filterd.local/perf/load/internal/result"
)

// Markdown writes the short report. plotName is the PNG's file name (relative link), or "".
func Markdown(w io.Writer, r *result.Result, plotName string) error {
	var b strings.Builder
	p := func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }
	p("# Load test: %s\n\n", r.StartedAt)
	m := r.Machine
	p("Machine: %s, %d CPUs (%s), %.0f GiB, %s, kernel %s, %s. Commit %s. Load average at start %s, at end %s.\n\n",
		m.Hostname, m.CPUs, m.CPUModel, m.MemGiB, m.OS, m.Kernel, m.Go, r.Commit, m.LoadAvgStart, m.LoadAvgEnd)
	if m.StealMS != nil {
		p("The hypervisor took %.0f ms of CPU time from this VM (steal, all CPUs) during the measured rounds.\n\n", *m.StealMS)
	}
	c := r.Config
	order := "back to back"
	if c.Interleaved {
		order = "interleaved"
	}
	p("Profile: %d requests/s per endpoint, %.0f s per endpoint in %d round(s), %s (order %s), %.0f s warm-up per endpoint, %d-byte body.\n\n",
		c.RatePerS, c.DurationS, c.Rounds, order, strings.Join(c.Order, ","), c.WarmupS, c.BodyBytes)

	p("## Latency (µs)\n\n")
	p("| endpoint | requests | ok | errors | RPS | P50 | P90 | P99 | P99.9 | max |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, k := range r.PhaseNames() {
		ph := r.Phases[k]
		l := ph.LatencyUS
		p("| (%s) %s | %d | %d | %d | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |\n", k, ph.Name, ph.Requests, ph.Success, ph.Errors, ph.AchievedRPS, l.P50, l.P90, l.P99, l.P999, l.Max)
	}
	p("\n")
	d := r.Derived
	if d.AddedB != nil || d.AddedC != nil {
		p("## Added latency over (a) (µs)\n\n| | P50 | P90 | P99 | P99.9 | max |\n|---|---:|---:|---:|---:|---:|\n")
		if x := d.AddedB; x != nil {
			p("| (b) − (a) | %+.0f | %+.0f | %+.0f | %+.0f | %+.0f |\n", x.P50, x.P90, x.P99, x.P999, x.Max)
		}
		if x := d.AddedC; x != nil {
			p("| (c) − (a) | %+.0f | %+.0f | %+.0f | %+.0f | %+.0f |\n", x.P50, x.P90, x.P99, x.P999, x.Max)
		}
		p("\n")
	}
	p("## CPU (seconds over each endpoint's phases)\n\n| endpoint | filterd | gateway | backend | load driver |\n|---|---:|---:|---:|---:|\n")
	for _, k := range r.PhaseNames() {
		cpu := r.Phases[k].CPU
		p("| (%s) | %.2f | %.2f | %.2f | %.2f |\n", k, cpu.FilterdS, cpu.GatewayS, cpu.BackendS, cpu.DriverS)
	}
	p("\nfilterd during (b): %.2f%% of one core, %.1f µs CPU per request. Extra gateway CPU per request over (a): (b) %+.1f µs",
		d.FilterdCoreShareB*100, d.FilterdCPUPerReqUS, d.GatewayExtraCPUPerReqBUS)
	if d.AddedC != nil {
		p(", (c) %+.1f µs", d.GatewayExtraCPUPerReqCUS)
	}
	p(".\n\n")
	if d.GatewaySleepsPerReqA > 0 {
		p("Context switches: the gateway's threads slept %.2f times per request of (a) and %.2f of (b) (each sleep is a wake-up paid later); filterd's %.2f per request of (b).",
			d.GatewaySleepsPerReqA, d.GatewaySleepsPerReqB, d.FilterdSleepsPerReqB)
		if d.GatewayCPUPerExtraSleep > 0 {
			p(" Extra gateway CPU per extra sleep of (b): **%.1f µs**.", d.GatewayCPUPerExtraSleep)
		}
		if a, b := r.Phases[result.PhaseBaseline], r.Phases[result.PhasePlugin]; a != nil && b != nil && a.Requests > 0 && b.Requests > 0 {
			p(" Preemptions per request: gateway (a) %.2f, (b) %.2f; filterd (b) %.2f.",
				float64(a.CPU.GatewayPreemptions)/float64(a.Requests), float64(b.CPU.GatewayPreemptions)/float64(b.Requests),
				float64(b.CPU.FilterdPreemptions)/float64(b.Requests))
		}
		p("\n\n")
	}
	if f := r.Floor; f != nil {
		p("## Raw floor\n\nUnix-socket round trip between two processes, %d-byte request, %d-byte reply, %d iterations (%s): P50 %.1f µs, P90 %.1f µs, P99 %.1f µs.",
			f.ReqBytes, f.ReplyBytes, f.Iterations, f.Source, f.RTTUS.P50, f.RTTUS.P90, f.RTTUS.P99)
		if d.BridgeRTTOverFloor > 0 {
			p(" Added P50 of (b) is **%.1f×** the floor.", d.BridgeRTTOverFloor)
		}
		p("\n\n")
	}
	if x := d.AddedDOverB; x != nil {
		p("## Redis stores, phase (d)\n\nThe same chain with nonces and rate limits in Redis (one standalone redis-server on loopback). (d) − (b): P50 %+.0f µs, P99 %+.0f µs. Per request: Redis-mode filterd %.1f µs CPU, redis-server %.1f µs CPU",
			x.P50, x.P99, d.FilterdRedisCPUPerReqUS, d.RedisCPUPerReqUS)
		if d.RedisCallsPerReqD > 0 {
			p(", %.4f Redis round trips (script calls)", d.RedisCallsPerReqD)
		}
		p(".\n\n")
	}
	if f := r.LoadedFloor; f != nil {
		p("## Loaded floor\n\nThe same round trip, paced at %.0f/s, while (a)'s HTTP load runs: P50 %.1f µs, P90 %.1f µs, P99 %.1f µs (%d round trips).",
			f.RatePerS, f.RTTUS.P50, f.RTTUS.P90, f.RTTUS.P99, f.Iterations)
		if d.BridgeRTTOverLoadedFloor > 0 {
			p(" Added P50 of (b) is **%.2f×** the loaded floor.", d.BridgeRTTOverLoadedFloor)
		}
		p("\n\n")
	}
	if b := r.Phases[result.PhasePlugin]; b != nil && b.Requests > 0 {
		p("## Deadline denials\n\n(b): %d of %d validly signed requests answered 503 (%.4f%%, %.2f per 100,000).\n\n",
			d.DeadlineDenialsB, b.Requests, d.DeadlineDenialRateB*100, d.DeadlineDenialRateB*1e5)
		if sp := r.StallProbe; sp != nil && sp.Sleeps > 0 {
			p("Stall probe (a thread with filterd's CPU slice and priority, sleeping 1 ms at a time through the rounds): %d of %d wake-ups came %.1f ms or more late (worst %.1f ms). At those moments a thread scheduled like filterd's could not run for a whole deadline, which no scheduling inside the machine prevents.\n\n",
				sp.Stalls, sp.Sleeps, sp.ThresholdUS/1000, sp.WorstUS/1000)
		}
	}
	if s := r.Saturation; s != nil {
		p("## Saturation\n\n(a) and (b) ramped side by side in %.0f s steps (×1.25 from 500/s) until a step and its repeat both had P99 > 10 ms or errors > 0.1%%, then refined by bisection to within 7%%: (a) sustained **%d/s**, (b) **%d/s**, ratio **%.2f**.",
			s.StepS, s.MaxRateA, s.MaxRateB, d.SaturationRatio)
		if s.Capped {
			p(" A ramp reached its highest step: that figure is a lower bound.")
		}
		p("\n\n| phase | rate | requests | errors | P99 (µs) | pass |\n|---|---:|---:|---:|---:|---|\n")
		for _, st := range s.Steps {
			p("| (%s) | %d/s | %d | %d | %.0f | %v |\n", st.Phase, st.RatePerS, st.Requests, st.Errors, st.P99US, st.Pass)
		}
		p("\n")
	}
	if lg := r.Loadgen; lg != nil {
		p("## filterd alone (C++ load generator, full chain)\n\n%d decisions in %.1f s over %d connection(s) × %d in flight: %.0f decisions/s wall, filterd CPU %.2f s → **%.0f decisions per CPU-second**. allow %d, deny %d, errors %d. Frames %d B → %d B.\n\n",
			lg.Decisions, lg.WallS, lg.Connections, lg.Pipeline, lg.DecisionsPerS, lg.FilterdCPUS, lg.DecisionsPerCore, lg.Allowed, lg.Denied, lg.Errors, lg.ReqBytes, lg.ReplyBytes)
	}
	if pf, pl := r.PacedFloor, r.PacedFilterd; pf != nil && pl != nil && pl.Decisions > 0 && pl.RTTUS != nil {
		cpu := pl.FilterdCPUS * 1e6 / float64(pl.Decisions)
		p("## filterd at a steady rate (C++ client, one request at a time)\n\n")
		p("| | rate | round trip P50 | P99 | CPU per round trip (server side) |\n|---|---:|---:|---:|---:|\n")
		p("| raw socket floor (echo process) | %.0f/s | %.1f µs | %.1f µs | %.1f µs |\n", pf.RatePerS, pf.RTTUS.P50, pf.RTTUS.P99, pf.EchoCPUUS)
		p("| filterd, full chain | %.0f/s | %.1f µs | %.1f µs | %.1f µs |\n\n", pl.RatePerS, pl.RTTUS.P50, pl.RTTUS.P99, cpu)
		p("Of filterd's %.1f µs CPU per request at this rate, about %.1f µs is what the kernel charges any process for one socket round trip with a sleep in between (the echo process's figure); the rest, %.1f µs, is filterd's own: its event loop, thread hand-offs and the filters.\n\n",
			cpu, pf.EchoCPUUS, cpu-pf.EchoCPUUS)
	}
	p("## Targets\n\n| measure | target | figure | status |\n|---|---|---|---|\n")
	for _, t := range r.Targets {
		fig := "—"
		if t.Status != "not measured" {
			fig = fmt.Sprintf("%s %s", trim(t.Value), t.Unit)
		}
		if t.Note != "" {
			fig += " (" + t.Note + ")"
		}
		p("| %s | %s | %s | %s |\n", t.Measure, t.Target, fig, t.Status)
	}
	for _, n := range r.Notes {
		p("\n- %s", n)
	}
	if len(r.Notes) > 0 {
		p("\n")
	}
	if plotName != "" {
		p("\n![latency percentiles](%s)\n", plotName)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func trim(v float64) string {
	switch {
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// nines maps a quantile to the x position of an HdrHistogram-style plot: 1/(1−q), on a log axis,
// so 90% sits at 10, 99% at 100, 99.9% at 1000. The maximum is drawn one decade past the last
// finite point.
func nines(q float64, maxX float64) float64 {
	if q >= 1 {
		return maxX
	}
	return 1 / (1 - q)
}

type ninesTicks struct{}

func (ninesTicks) Ticks(min, max float64) []plot.Tick {
	labels := map[float64]string{1: "0%", 2: "50%", 10: "90%", 100: "99%", 1000: "99.9%", 10000: "99.99%", 100000: "max"}
	var t []plot.Tick
	for _, x := range []float64{1, 2, 10, 100, 1000, 10000, 100000} {
		if x >= min && x <= max {
			t = append(t, plot.Tick{Value: x, Label: labels[x]})
		}
	}
	return t
}

// PlotPNG writes the percentile curves of every phase to path (PNG).
func PlotPNG(r *result.Result, path string) error {
	pl := plot.New()
	pl.Title.Text = fmt.Sprintf("Latency by percentile, %d RPS per endpoint", r.Config.RatePerS)
	pl.X.Label.Text = "percentile"
	pl.Y.Label.Text = "latency (ms, log)"
	pl.X.Scale = plot.LogScale{}
	pl.Y.Scale = plot.LogScale{}
	pl.X.Tick.Marker = ninesTicks{}
	pl.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	pl.Add(plotter.NewGrid())
	const maxX = 100000
	colors := map[string]color.RGBA{"a": {0x1f, 0x77, 0xb4, 0xff}, "b": {0xd6, 0x27, 0x28, 0xff}, "c": {0x2c, 0xa0, 0x2c, 0xff}}
	pl.X.Min, pl.X.Max = 1, maxX
	for _, k := range r.PhaseNames() {
		ph := r.Phases[k]
		var pts plotter.XYs
		for _, pt := range ph.Curve {
			if pt.US <= 0 {
				continue
			}
			pts = append(pts, plotter.XY{X: nines(pt.Q, maxX), Y: pt.US / 1000})
		}
		if len(pts) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		c := colors[k]
		line.Color, points.Color = c, c
		line.Width = vg.Points(1.5)
		pl.Add(line, points)
		pl.Legend.Add(fmt.Sprintf("(%s) %s: P50 %.2f ms, P99 %.2f ms", k, ph.Name, ph.LatencyUS.P50/1000, ph.LatencyUS.P99/1000), line, points)
	}
	// Curves rise to the right, so the lower right corner is empty.
	pl.Legend.Top = false
	pl.Legend.Left = false
	return pl.Save(9*vg.Inch, 5.5*vg.Inch, path)
}
