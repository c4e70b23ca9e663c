package report

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filterd.local/perf/load/internal/result"
	"filterd.local/perf/load/internal/stats"
)

func sample() *result.Result {
	mk := func(name string, base float64) *result.Phase {
		var s stats.Sample
		for i := 0; i < 5000; i++ {
			s.Add(durUS(base + float64(i%100)*3 + float64(i%1000)/10))
		}
		return &result.Phase{Name: name, Requests: 5000, Success: 5000, DurationS: 5, AchievedRPS: 1000,
			StatusCodes: map[string]int{"200": 5000}, LatencyUS: s.Percentiles(), Curve: s.Curve()}
	}
	r := &result.Result{Schema: result.SchemaVersion, StartedAt: "2026-11-26T12:00:00Z",
		Config: result.Config{RatePerS: 1000, DurationS: 5, Rounds: 1, Order: []string{"a", "b", "c"}},
		Phases: map[string]*result.Phase{"a": mk("baseline", 300), "b": mk("plugin", 340), "c": mk("builtin", 310)},
		Floor:  &result.Floor{Source: "test", ReqBytes: 1500, ReplyBytes: 500, Iterations: 100, RTTUS: stats.Percentiles{P50: 12}}}
	r.Derive()
	return r
}

// markdown renders r as the report does.
func markdown(t *testing.T, r *result.Result) string {
	t.Helper()
	var b bytes.Buffer
	if err := Markdown(&b, r, "latency.png"); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestMarkdownHasEveryFigure(t *testing.T) {
	md := markdown(t, sample())
	for _, want := range []string{"| (a) baseline |", "| (b) plugin |", "| (c) builtin |", "(b) − (a) | +40 |", "(c) − (a) | +10 |",
		"Raw floor", "3.3×", "| added P99 (b over a) |", "## Deadline denials", "not measured", "![latency percentiles](latency.png)"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

// The machine's own stalls are reported beside the denials they explain: the steal and the probe.
func TestMarkdownReportsStealAndStalls(t *testing.T) {
	r := sample()
	steal := 270.0
	r.Machine.StealMS = &steal
	r.StallProbe = &result.StallProbe{Sleeps: 180000, ThresholdUS: 4500, Stalls: 3, WorstUS: 9000, Seconds: 200}
	r.Derive()
	md := markdown(t, r)
	for _, want := range []string{"took 270 ms of CPU time from this VM", "3 of 180000 wake-ups came 4.5 ms or more late (worst 9.0 ms)",
		"the stall probe woke 4.5 ms or more late 3 times in the rounds"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

// The gateway's sleeps per request, and what each extra one costs, are reported with the CPU.
func TestMarkdownReportsContextSwitches(t *testing.T) {
	r := sample()
	r.Phases["a"].CPU = result.CPU{GatewayS: 1.5, GatewaySleeps: 20000, GatewayPreemptions: 500}
	r.Phases["b"].CPU = result.CPU{GatewayS: 2.0, GatewaySleeps: 25000, GatewayPreemptions: 1000, FilterdSleeps: 5100, FilterdPreemptions: 50}
	r.Derive()
	md := markdown(t, r)
	for _, want := range []string{"slept 4.00 times per request of (a) and 5.00 of (b)", "filterd's 1.02 per request of (b)",
		"Extra gateway CPU per extra sleep of (b): **100.0 µs**", "gateway (a) 0.10, (b) 0.20; filterd (b) 0.01"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

func TestPlotIsAPNG(t *testing.T) {
	p := filepath.Join(t.TempDir(), "latency.png")
	if err := PlotPNG(sample(), p); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds().Dx() < 500 {
		t.Fatalf("plot too small: %v", img.Bounds())
	}
}
