package result

import (
	"path/filepath"
	"strings"
	"testing"

	"filterd.local/perf/load/internal/stats"
)

// synthetic builds a run whose (a) and (b) latencies differ by addP50/addP99 µs.
func synthetic(addP50, addP99 float64, errsB int) *Result {
	a := &Phase{Name: "baseline", Requests: 10000, Success: 10000, DurationS: 10, AchievedRPS: 1000,
		StatusCodes: map[string]int{"200": 10000},
		LatencyUS:   stats.Percentiles{P50: 300, P90: 450, P99: 900, P999: 2000, Max: 5000, Mean: 320},
		CPU:         CPU{GatewayS: 1.0, FilterdS: 0.001}}
	b := &Phase{Name: "plugin", Requests: 10000, Success: 10000 - errsB, Errors: errsB, DurationS: 10, AchievedRPS: 1000,
		StatusCodes: map[string]int{"200": 10000 - errsB},
		LatencyUS:   stats.Percentiles{P50: 300 + addP50, P90: 500, P99: 900 + addP99, P999: 2100, Max: 6000, Mean: 350},
		CPU:         CPU{GatewayS: 1.3, FilterdS: 0.08}}
	if errsB > 0 {
		b.StatusCodes["503"] = errsB
	}
	c := &Phase{Name: "builtin", Requests: 10000, Success: 10000, DurationS: 10, AchievedRPS: 1000,
		StatusCodes: map[string]int{"200": 10000},
		LatencyUS:   stats.Percentiles{P50: 310, P90: 460, P99: 950, P999: 2050, Max: 5100, Mean: 330},
		CPU:         CPU{GatewayS: 1.1}}
	r := &Result{Schema: SchemaVersion, Config: Config{RatePerS: 1000, DurationS: 10, Rounds: 1},
		Phases: map[string]*Phase{"a": a, "b": b, "c": c},
		Floor:  &Floor{ReqBytes: 1700, ReplyBytes: 600, Iterations: 20000, RTTUS: stats.Percentiles{P50: 10}}}
	r.Derive()
	return r
}

func TestDeriveAddedLatencyCPUAndFloorMultiple(t *testing.T) {
	r := synthetic(25, 150, 0)
	d := r.Derived
	if d.AddedB == nil || d.AddedB.P50 != 25 || d.AddedB.P99 != 150 || d.AddedB.P999 != 100 || d.AddedB.Max != 1000 {
		t.Fatalf("added b = %+v", d.AddedB)
	}
	if d.AddedC == nil || d.AddedC.P50 != 10 || d.AddedC.P99 != 50 {
		t.Fatalf("added c = %+v", d.AddedC)
	}
	near := func(x, y float64) bool { return x-y < 1e-6 && y-x < 1e-6 }
	if !near(d.FilterdCoreShareB, 0.008) || !near(d.FilterdCPUPerReqUS, 8) {
		t.Fatalf("filterd share %v, per req %v", d.FilterdCoreShareB, d.FilterdCPUPerReqUS)
	}
	if !near(d.GatewayExtraCPUPerReqBUS, 30) || !near(d.GatewayExtraCPUPerReqCUS, 10) {
		t.Fatalf("gateway extra b %v c %v", d.GatewayExtraCPUPerReqBUS, d.GatewayExtraCPUPerReqCUS)
	}
	if !near(d.BridgeRTTOverFloor, 2.5) {
		t.Fatalf("bridge/floor = %v", d.BridgeRTTOverFloor)
	}
	if d.GatewaySleepsPerReqA != 0 || d.GatewayCPUPerExtraSleep != 0 {
		t.Fatalf("sleeps derived without sleep counts: %v, %v", d.GatewaySleepsPerReqA, d.GatewayCPUPerExtraSleep)
	}
}

func TestCPUAddDeltaAddsEveryCounter(t *testing.T) {
	c := CPU{GatewayS: 1, GatewaySleeps: 10}
	c.AddDelta(CPU{FilterdS: 1, GatewayS: 2, BackendS: 3, DriverS: 4, FilterdRedisS: 5, RedisS: 6,
		GatewaySleeps: 100, GatewayPreemptions: 7, FilterdSleeps: 8, FilterdPreemptions: 9},
		CPU{FilterdS: 2, GatewayS: 4, BackendS: 6, DriverS: 8, FilterdRedisS: 10, RedisS: 12,
			GatewaySleeps: 150, GatewayPreemptions: 14, FilterdSleeps: 16, FilterdPreemptions: 18})
	want := CPU{FilterdS: 1, GatewayS: 3, BackendS: 3, DriverS: 4, FilterdRedisS: 5, RedisS: 6,
		GatewaySleeps: 60, GatewayPreemptions: 7, FilterdSleeps: 8, FilterdPreemptions: 9}
	if c != want {
		t.Fatalf("AddDelta = %+v, want %+v", c, want)
	}
}

// 4 sleeps per request of (a), 5.5 of (b): 1.5 extra sleeps for 30 µs of extra gateway CPU.
func TestDeriveGatewayCPUPerExtraSleep(t *testing.T) {
	r := synthetic(25, 150, 0)
	r.Phases["a"].CPU.GatewaySleeps, r.Phases["b"].CPU.GatewaySleeps, r.Phases["b"].CPU.FilterdSleeps = 40000, 55000, 10000
	r.Derive()
	d := r.Derived
	if d.GatewaySleepsPerReqA != 4 || d.GatewaySleepsPerReqB != 5.5 || d.FilterdSleepsPerReqB != 1 {
		t.Fatalf("sleeps per request: a %v, b %v, filterd %v", d.GatewaySleepsPerReqA, d.GatewaySleepsPerReqB, d.FilterdSleepsPerReqB)
	}
	if x := d.GatewayCPUPerExtraSleep; x < 19.999 || x > 20.001 {
		t.Fatalf("gateway CPU per extra sleep = %v, want 20 µs", x)
	}
	r.Phases["b"].CPU.GatewaySleeps = 40000 // no extra sleep: no ratio
	r.Derive()
	if r.Derived.GatewayCPUPerExtraSleep != 0 {
		t.Fatalf("ratio over no extra sleeps: %v", r.Derived.GatewayCPUPerExtraSleep)
	}
}

func targetStatus(r *Result, prefix string) string {
	for _, t := range r.Targets {
		if strings.HasPrefix(t.Measure, prefix) {
			return t.Status
		}
	}
	return "absent"
}

func TestTargets(t *testing.T) {
	r := synthetic(25, 150, 0)
	if s := targetStatus(r, "added P99"); s != "met" {
		t.Fatalf("added P99 150 µs: %s", s)
	}
	for _, m := range []string{"added P50", "extra gateway CPU", "filterd CPU", "throughput at saturation", "bridge heap", "hand-written Go", "filterd alone"} {
		if s := targetStatus(r, m); s != "not measured" {
			t.Fatalf("%s without its measurement: %s", m, s)
		}
	}
	if s := targetStatus(r, "legitimate requests denied"); s != "met" {
		t.Fatalf("no 503 in (b): %s", s)
	}

	// The loaded floor, the paced echo floor, the saturation ramp, the bridge benchmark and its size.
	r.LoadedFloor = &Floor{RTTUS: stats.Percentiles{P50: 15}}
	r.PacedFloor = &Floor{EchoCPUUS: 11}
	r.Saturation = &Saturation{MaxRateA: 4000, MaxRateB: 3500, StepS: 3}
	r.Bridge = &BridgeBench{Name: "BenchmarkModifierRoundTrip/body=1048576B", BytesPerOp: 900, AllocsPerOp: 4}
	r.BridgeGoLines = 990
	r.Loadgen = &Loadgen{Decisions: 600000, FilterdCPUS: 10, DecisionsPerCore: 60000}
	r.Derive()
	want := map[string]string{
		"added P50":                  "met", // 25 / 15 = 1.67×
		"extra gateway CPU":          "met", // 30 ≤ 33
		"filterd CPU":                "met", // 8 ≤ 22
		"throughput at saturation":   "met", // 0.875
		"bridge heap":                "met",
		"hand-written Go":            "met",
		"filterd alone":              "met",
		"legitimate requests denied": "met",
	}
	for m, s := range want {
		if got := targetStatus(r, m); got != s {
			t.Errorf("%s: %s, want %s", m, got, s)
		}
	}
	r.LoadedFloor.RTTUS.P50 = 12 // 2.08×
	r.PacedFloor.EchoCPUUS = 3.9 // 30 > 11.7; 8 > 7.8
	r.Saturation.MaxRateB = 3300 // 0.825
	r.Bridge.AllocsPerOp = 5
	r.BridgeGoLines = 1001
	r.Derive()
	for _, m := range []string{"added P50", "extra gateway CPU", "filterd CPU", "throughput at saturation", "bridge heap", "hand-written Go"} {
		if got := targetStatus(r, m); got != "missed" {
			t.Errorf("%s: %s, want missed", m, got)
		}
	}

	slow := synthetic(40, 600, 0)
	if targetStatus(slow, "added P99") != "missed" {
		t.Fatalf("600 µs must miss: %+v", slow.Targets)
	}
	// One deadline denial in 10,000 misses 1 in 100,000, and is not counted as another failure.
	failing := synthetic(5, 10, 1)
	if targetStatus(failing, "legitimate requests denied") != "missed" || targetStatus(failing, "added P99") != "met" {
		t.Fatalf("targets: %+v", failing.Targets)
	}
	other := synthetic(5, 10, 0)
	other.Phases["b"].Errors, other.Phases["b"].StatusCodes["401"] = 2, 2
	other.Derive()
	if targetStatus(other, "added P99") != "missed" {
		t.Fatal("a run with failed (b) requests other than deadline denials must not meet the latency target")
	}
}

func TestGate(t *testing.T) {
	base := synthetic(25, 150, 0)
	cases := []struct {
		name string
		cur  *Result
		pass bool
	}{
		{"same", synthetic(25, 150, 0), true},
		{"better", synthetic(10, 20, 0), true},
		{"grows 0.99 ms", synthetic(25, 1140, 0), true},
		{"grows exactly 1 ms", synthetic(25, 1150, 0), true},
		{"grows 1.01 ms", synthetic(25, 1160, 0), false},
		{"1 deadline denial in 10000 is tolerated", synthetic(25, 150, 1), true},
		{"2 deadline denials in 10000 fail (over 0.01%)", synthetic(25, 150, 2), false},
		{"fast but failing", synthetic(0, 0, 101), false},
	}
	for _, c := range cases {
		o := Gate(base, c.cur, DefaultGate)
		if o.Pass != c.pass {
			t.Errorf("%s: pass=%v, want %v\n%s", c.name, o.Pass, c.pass, strings.Join(o.Lines, "\n"))
		}
	}
	// Absolute latencies from another day do not matter: shift the whole current run by +5 ms.
	shifted := synthetic(25, 150, 0)
	for _, p := range shifted.Phases {
		p.LatencyUS.P50 += 5000
		p.LatencyUS.P99 += 5000
	}
	shifted.Derive()
	if o := Gate(base, shifted, DefaultGate); !o.Pass {
		t.Fatalf("a uniformly slower machine must not fail the gate:\n%s", strings.Join(o.Lines, "\n"))
	}
	// A broken baseline endpoint invalidates the comparison.
	broken := synthetic(25, 150, 0)
	broken.Phases["a"].Errors, broken.Phases["a"].StatusCodes["502"] = 10, 10
	if o := Gate(base, broken, DefaultGate); o.Pass {
		t.Fatal("errors on (a) must fail the gate")
	}
	// A negative baseline added P99 is noise and counts as 0: +900 µs now passes, +1100 µs fails.
	negBase := synthetic(25, -3000, 0)
	if o := Gate(negBase, synthetic(25, 900, 0), DefaultGate); !o.Pass {
		t.Fatalf("negative baseline must count as zero:\n%s", strings.Join(o.Lines, "\n"))
	}
	if o := Gate(negBase, synthetic(25, 1100, 0), DefaultGate); o.Pass {
		t.Fatal("+1.1 ms over a zero baseline must fail")
	}
	// A baseline without (b) cannot gate.
	empty := &Result{Schema: SchemaVersion, Phases: map[string]*Phase{}}
	if o := Gate(empty, synthetic(25, 150, 0), DefaultGate); o.Pass {
		t.Fatal("baseline without added latency must fail")
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	r := synthetic(25, 150, 0)
	p := filepath.Join(t.TempDir(), "r.json")
	if err := r.Save(p); err != nil {
		t.Fatal(err)
	}
	back, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if back.Derived.AddedB.P99 != 150 || back.Phases["b"].CPU.FilterdS != 0.08 || len(back.Targets) != 9 {
		t.Fatalf("round trip lost data: %+v", back.Derived)
	}
	bad := &Result{Schema: 99}
	_ = bad.Save(p)
	if _, err := Load(p); err == nil {
		t.Fatal("unknown schema must be refused")
	}
}
