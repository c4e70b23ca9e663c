// Package result defines the machine-readable result of one load-test run (result.json), the
// figures derived from it, the issue-5 targets, and the CI regression gate.
//
// Every derived figure compares numbers measured in the same run: endpoint (b) against endpoint
// (a) on the same backend, and the bridge against a socket floor measured minutes apart on the
// same machine. Nothing here compares an absolute time with one from another day, except the
// gate, and the gate compares same-run deltas (added P99) only.
package result

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"filterd.local/perf/load/internal/stats"
)

// SchemaVersion is bumped when a field changes meaning. Fields are only added.
const SchemaVersion = 1

// Phase names. (a) is the baseline endpoint, (b) the plugin with all three filters, (c) KrakenD's
// built-in qos/ratelimit/router as a peer reference.
const (
	PhaseBaseline = "a"
	PhasePlugin   = "b"
	PhaseBuiltin  = "c"
	PhaseRedis    = "d"
)

// CPU seconds (user + system, from /proc/<pid>/stat) one process used during a phase.
type CPU struct {
	FilterdS float64 `json:"filterd_s"`
	GatewayS float64 `json:"gateway_s"`
	BackendS float64 `json:"backend_s"`
	DriverS  float64 `json:"driver_s"`
	// Phase (d) only: the Redis-mode filterd and redis-server.
	FilterdRedisS float64 `json:"filterd_redis_s,omitempty"`
	RedisS        float64 `json:"redis_s,omitempty"`
	// Context switches of the gateway's and filterd's threads: sleeps (a thread blocked and was
	// woken later: each is a wake-up paid for) and preemptions.
	GatewaySleeps      int64 `json:"gateway_sleeps,omitempty"`
	GatewayPreemptions int64 `json:"gateway_preemptions,omitempty"`
	FilterdSleeps      int64 `json:"filterd_sleeps,omitempty"`
	FilterdPreemptions int64 `json:"filterd_preemptions,omitempty"`
}

// AddDelta adds what each counter grew by from before to after.
func (c *CPU) AddDelta(before, after CPU) {
	c.FilterdS += after.FilterdS - before.FilterdS
	c.GatewayS += after.GatewayS - before.GatewayS
	c.BackendS += after.BackendS - before.BackendS
	c.DriverS += after.DriverS - before.DriverS
	c.FilterdRedisS += after.FilterdRedisS - before.FilterdRedisS
	c.RedisS += after.RedisS - before.RedisS
	c.GatewaySleeps += after.GatewaySleeps - before.GatewaySleeps
	c.GatewayPreemptions += after.GatewayPreemptions - before.GatewayPreemptions
	c.FilterdSleeps += after.FilterdSleeps - before.FilterdSleeps
	c.FilterdPreemptions += after.FilterdPreemptions - before.FilterdPreemptions
}

// Phase is everything measured for one endpoint.
type Phase struct {
	Name        string            `json:"name"`
	URL         string            `json:"url"`
	Requests    int               `json:"requests"`
	Success     int               `json:"success"` // 2xx responses
	Errors      int               `json:"errors"`  // everything else, transport errors included
	StatusCodes map[string]int    `json:"status_codes"`
	ErrorKinds  map[string]int    `json:"error_kinds,omitempty"` // first 60 characters of each distinct error
	DurationS   float64           `json:"duration_s"`            // wall time the phase's attacks ran
	AchievedRPS float64           `json:"achieved_rps"`
	LatencyUS   stats.Percentiles `json:"latency_us"`
	Curve       []stats.Point     `json:"curve"`
	CPU         CPU               `json:"cpu"`
}

// Floor is the raw Unix-socket round trip between two processes, with the bridge's frame sizes.
type Floor struct {
	Source     string            `json:"source"`
	ReqBytes   int               `json:"req_bytes"`
	Pin        string            `json:"pin,omitempty"` // same | cross | none: CPUs of the two processes
	ReplyBytes int               `json:"reply_bytes"`
	Iterations int               `json:"iterations"`
	RatePerS   float64           `json:"rate_per_s,omitempty"`          // 0: back to back
	EchoCPUUS  float64           `json:"echo_cpu_us_per_rtt,omitempty"` // CPU of the echo process per round trip
	RTTUS      stats.Percentiles `json:"rtt_us"`
}

// Machine identifies where the run happened.
type Machine struct {
	Hostname string `json:"hostname"`
	// /proc/loadavg when the run started and ended: other work on a shared machine shows here.
	LoadAvgStart string `json:"loadavg_start,omitempty"`
	LoadAvgEnd   string `json:"loadavg_end,omitempty"`
	// CPU time the hypervisor took from this VM (all CPUs) during the measured rounds: a stall no
	// scheduling inside the VM can prevent. Absent where the kernel does not report it.
	StealMS  *float64 `json:"steal_ms_during_rounds,omitempty"`
	CPUModel string   `json:"cpu_model"`
	CPUs     int      `json:"cpus"`
	MemGiB   float64  `json:"mem_gib"`
	Kernel   string   `json:"kernel"`
	OS       string   `json:"os"`
	Go       string   `json:"go"`
}

// Config records how the run was driven.
type Config struct {
	RatePerS    int      `json:"rate_per_s"`
	DurationS   float64  `json:"duration_s_per_phase"`
	Rounds      int      `json:"rounds"`
	Order       []string `json:"order"` // phase order inside one round
	BodyBytes   int      `json:"body_bytes"`
	WarmupS     float64  `json:"warmup_s_per_phase"`
	Interleaved bool     `json:"interleaved"`
}

// SatStep is one step of a saturation ramp: one endpoint at one rate.
type SatStep struct {
	Phase    string  `json:"phase"`
	RatePerS int     `json:"rate_per_s"`
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	P99US    float64 `json:"p99_us"`
	Pass     bool    `json:"pass"` // P99 ≤ 10 ms and errors ≤ 0.1%
}

// Saturation is the highest rate each endpoint sustained in a bounded ramp.
type Saturation struct {
	StepS    float64   `json:"step_s"`
	MaxRateA int       `json:"max_rate_a"`
	MaxRateB int       `json:"max_rate_b"`
	Capped   bool      `json:"capped,omitempty"` // a ramp reached the highest rate tried: the figure is a lower bound
	Steps    []SatStep `json:"steps"`
}

// StallProbe is filterd-loadgen stalls' output.
type StallProbe struct {
	Sleeps      int64   `json:"sleeps"`
	ThresholdUS float64 `json:"threshold_us"`
	Stalls      int64   `json:"stalls"`
	WorstUS     float64 `json:"worst_us"`
	Seconds     float64 `json:"seconds"`
}

// Saturation ramp limits: a step passes with P99 ≤ SatMaxP99US and errors ≤ SatMaxErrorRate.
const (
	SatMaxP99US     = 10000
	SatMaxErrorRate = 0.001
)

// Derived holds the figures computed from phases and floor (see Derive).
type Derived struct {
	AddedB *stats.Percentiles `json:"added_b_us,omitempty"` // (b) − (a) per percentile
	AddedC *stats.Percentiles `json:"added_c_us,omitempty"` // (c) − (a) per percentile
	// filterd CPU during (b) divided by the phase's wall time: its share of one core.
	FilterdCoreShareB float64 `json:"filterd_core_share_b"`
	// filterd CPU per request of (b), µs.
	FilterdCPUPerReqUS float64 `json:"filterd_cpu_us_per_req_b"`
	// Gateway CPU per request of (b) minus that of (a): what the bridge costs KrakenD, µs.
	GatewayExtraCPUPerReqBUS float64 `json:"gateway_extra_cpu_us_per_req_b"`
	GatewayExtraCPUPerReqCUS float64 `json:"gateway_extra_cpu_us_per_req_c"`
	// Gateway thread sleeps per request of (a) and (b), filterd's per request of (b), and the extra
	// gateway CPU of (b) divided by its extra sleeps, µs: all of (b)'s extra CPU, not only the
	// wake-ups, so an upper bound on what one extra wake-up costs the gateway.
	GatewaySleepsPerReqA    float64 `json:"gateway_sleeps_per_req_a,omitempty"`
	GatewaySleepsPerReqB    float64 `json:"gateway_sleeps_per_req_b,omitempty"`
	FilterdSleepsPerReqB    float64 `json:"filterd_sleeps_per_req_b,omitempty"`
	GatewayCPUPerExtraSleep float64 `json:"gateway_cpu_us_per_extra_sleep_b,omitempty"`
	// Added P50 of (b) over the floor's P50: the bridge's round trip as a multiple of the floor.
	BridgeRTTOverFloor float64 `json:"bridge_rtt_over_floor,omitempty"`
	// Added P50 of (b) over the loaded floor's P50 (the floor measured while (a)'s load runs).
	BridgeRTTOverLoadedFloor float64 `json:"bridge_rtt_over_loaded_floor,omitempty"`
	// (b)'s 503 answers: every request of (b) is validly signed and within its quota, so a 503 is
	// the bridge failing closed, almost always on its deadline.
	DeadlineDenialsB    int     `json:"deadline_denials_b"`
	DeadlineDenialRateB float64 `json:"deadline_denial_rate_b"`
	// (d) − (b) per percentile: what keeping nonces and rate limits in Redis adds.
	AddedDOverB *stats.Percentiles `json:"added_d_over_b_us,omitempty"`
	// (d): Redis-mode filterd CPU and redis-server CPU per request, µs; Redis round trips per request
	// (from INFO commandstats, when perf-load.sh read them).
	FilterdRedisCPUPerReqUS float64 `json:"filterd_redis_cpu_us_per_req_d,omitempty"`
	RedisCPUPerReqUS        float64 `json:"redis_cpu_us_per_req_d,omitempty"`
	RedisCallsPerReqD       float64 `json:"redis_calls_per_req_d,omitempty"`
	// Highest sustained rate of (b) over that of (a).
	SaturationRatio float64 `json:"saturation_ratio,omitempty"`
}

// Target is one line of the issue-5 target table.
type Target struct {
	Measure string  `json:"measure"`
	Target  string  `json:"target"`
	Value   float64 `json:"value"`
	Unit    string  `json:"unit"`
	Status  string  `json:"status"` // "met", "missed" or "not measured"
	Note    string  `json:"note,omitempty"`
}

// Loadgen is the result of filterd-loadgen driving filterd alone (decisions per core).
type Loadgen struct {
	Decisions        int64   `json:"decisions"`
	Allowed          int64   `json:"allowed"`
	Denied           int64   `json:"denied"`
	Errors           int64   `json:"errors"`
	WallS            float64 `json:"wall_s"`
	FilterdCPUS      float64 `json:"filterd_cpu_s"`
	DecisionsPerS    float64 `json:"decisions_per_s"`
	DecisionsPerCore float64 `json:"decisions_per_core_s"` // decisions / filterd CPU seconds
	Connections      int     `json:"connections"`
	Pipeline         int     `json:"pipeline"`
	ReqBytes         int     `json:"req_bytes"`
	ReplyBytes       int     `json:"reply_bytes"`
	// Paced mode only: requests/s sent one at a time, and their round trips.
	RatePerS float64            `json:"rate_per_s,omitempty"`
	RTTUS    *stats.Percentiles `json:"rtt_us,omitempty"`
}

// BridgeBench is the go-bridge benchmark figure the allocation target is judged on.
type BridgeBench struct {
	Name        string  `json:"name"`
	BytesPerOp  float64 `json:"bytes_per_op"`
	AllocsPerOp float64 `json:"allocs_per_op"`
	NsPerOp     float64 `json:"ns_per_op"`
}

// Result is result.json.
type Result struct {
	Schema    int               `json:"schema"`
	StartedAt string            `json:"started_at"`
	Commit    string            `json:"commit"`
	Machine   Machine           `json:"machine"`
	Config    Config            `json:"config"`
	Phases    map[string]*Phase `json:"phases"`
	Floor     *Floor            `json:"floor,omitempty"`
	Loadgen   *Loadgen          `json:"loadgen,omitempty"`
	// The same two measured at a steady rate (one request at a time), to split filterd's CPU per
	// request into the kernel's share (PacedFloor.EchoCPUUS) and filterd's own.
	PacedFloor   *Floor       `json:"paced_floor,omitempty"`
	PacedFilterd *Loadgen     `json:"paced_filterd,omitempty"`
	Bridge       *BridgeBench `json:"bridge_bench,omitempty"`
	// The floor again, paced (200/s), while (a)'s HTTP load runs: the least a round trip costs under
	// the contention the bridge sees.
	LoadedFloor *Floor `json:"loaded_floor,omitempty"`
	// A thread scheduled like filterd's I/O thread, sleeping 1 ms at a time during the rounds: how
	// often it woke a deadline or more late (filterd-loadgen stalls).
	StallProbe *StallProbe `json:"stall_probe,omitempty"`
	Saturation *Saturation `json:"saturation,omitempty"`
	// Scripts (EVALSHA + EVAL) redis-server ran during phase (d): filterd's round trips to Redis.
	RedisCallsD int64 `json:"redis_calls_d,omitempty"`
	// Hand-written Go in go-bridge (not tests, not flatc output): lines of code as cloc counts them
	// (blank and comment lines excluded), and physical lines.
	BridgeGoLines         int      `json:"bridge_go_lines,omitempty"`
	BridgeGoPhysicalLines int      `json:"bridge_go_physical_lines,omitempty"`
	Derived               Derived  `json:"derived"`
	Targets               []Target `json:"targets"`
	Notes                 []string `json:"notes,omitempty"`
}

// Load reads a result file.
func Load(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Schema != SchemaVersion {
		return nil, fmt.Errorf("%s: schema %d, this tool reads %d", path, r.Schema, SchemaVersion)
	}
	return &r, nil
}

// Save writes a result file (indented, stable key order).
func (r *Result) Save(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// PhaseNames returns the phases present, in a, b, c order.
func (r *Result) PhaseNames() []string {
	var out []string
	for k := range r.Phases {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Derive fills r.Derived and r.Targets from the phases, the floor, the loadgen and bridge figures.
func (r *Result) Derive() {
	d := Derived{}
	a, b, c := r.Phases[PhaseBaseline], r.Phases[PhasePlugin], r.Phases[PhaseBuiltin]
	if a != nil && b != nil && a.Success > 0 && b.Success > 0 {
		x := b.LatencyUS.Sub(a.LatencyUS)
		d.AddedB = &x
		if b.DurationS > 0 {
			d.FilterdCoreShareB = b.CPU.FilterdS / b.DurationS
		}
		if b.Requests > 0 {
			d.FilterdCPUPerReqUS = b.CPU.FilterdS / float64(b.Requests) * 1e6
		}
		d.GatewayExtraCPUPerReqBUS = perReqUS(b) - perReqUS(a)
		if a.Requests > 0 && b.Requests > 0 && a.CPU.GatewaySleeps > 0 {
			d.GatewaySleepsPerReqA = float64(a.CPU.GatewaySleeps) / float64(a.Requests)
			d.GatewaySleepsPerReqB = float64(b.CPU.GatewaySleeps) / float64(b.Requests)
			d.FilterdSleepsPerReqB = float64(b.CPU.FilterdSleeps) / float64(b.Requests)
			if extra := d.GatewaySleepsPerReqB - d.GatewaySleepsPerReqA; extra > 0.05 {
				d.GatewayCPUPerExtraSleep = d.GatewayExtraCPUPerReqBUS / extra
			}
		}
		if r.Floor != nil && r.Floor.RTTUS.P50 > 0 {
			d.BridgeRTTOverFloor = x.P50 / r.Floor.RTTUS.P50
		}
		if r.LoadedFloor != nil && r.LoadedFloor.RTTUS.P50 > 0 {
			d.BridgeRTTOverLoadedFloor = x.P50 / r.LoadedFloor.RTTUS.P50
		}
	}
	if b != nil && b.Requests > 0 {
		d.DeadlineDenialsB = b.StatusCodes["503"]
		d.DeadlineDenialRateB = float64(d.DeadlineDenialsB) / float64(b.Requests)
	}
	if dd := r.Phases[PhaseRedis]; dd != nil && b != nil && dd.Success > 0 && b.Success > 0 && dd.Requests > 0 {
		x := dd.LatencyUS.Sub(b.LatencyUS)
		d.AddedDOverB = &x
		d.FilterdRedisCPUPerReqUS = dd.CPU.FilterdRedisS / float64(dd.Requests) * 1e6
		d.RedisCPUPerReqUS = dd.CPU.RedisS / float64(dd.Requests) * 1e6
		if r.RedisCallsD > 0 {
			d.RedisCallsPerReqD = float64(r.RedisCallsD) / float64(dd.Requests)
		}
	}
	if s := r.Saturation; s != nil && s.MaxRateA > 0 {
		d.SaturationRatio = float64(s.MaxRateB) / float64(s.MaxRateA)
	}
	if a != nil && c != nil && a.Success > 0 && c.Success > 0 {
		x := c.LatencyUS.Sub(a.LatencyUS)
		d.AddedC = &x
		d.GatewayExtraCPUPerReqCUS = perReqUS(c) - perReqUS(a)
	}
	r.Derived = d
	r.Targets = r.targets()
}

func perReqUS(p *Phase) float64 {
	if p.Requests == 0 {
		return 0
	}
	return p.CPU.GatewayS / float64(p.Requests) * 1e6
}

func status(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

// targets evaluates the target table. A figure that was not measured is reported as such, never
// as met.
func (r *Result) targets() []Target {
	d := r.Derived
	var t []Target
	b := r.Phases[PhasePlugin]
	clean := b != nil && b.Errors == d.DeadlineDenialsB // only deadline denials, counted on their own below
	add := func(measure, target, unit string, measured bool, value float64, ok bool, note string) {
		x := Target{Measure: measure, Target: target, Unit: unit, Status: "not measured"}
		if measured {
			x.Value, x.Status, x.Note = value, status(ok), note
		}
		t = append(t, x)
	}
	rateNote := ""
	if r.Config.RatePerS != 1000 {
		rateNote = fmt.Sprintf("measured at %d RPS, not 1000", r.Config.RatePerS)
	}

	if d.AddedB != nil {
		note := rateNote
		if !clean {
			note = strings.TrimPrefix(note+fmt.Sprintf("; (b) had %d failures other than deadline denials", b.Errors-d.DeadlineDenialsB), "; ")
		}
		add("added P99 (b over a)", "≤ 0.5 ms", "ms", true, d.AddedB.P99/1000, d.AddedB.P99 <= 500 && clean, note)
	} else {
		add("added P99 (b over a)", "≤ 0.5 ms", "ms", false, 0, false, "")
	}

	lf := r.LoadedFloor
	add("added P50 (b over a) vs the loaded floor", "≤ 2× loaded floor", "× loaded floor",
		d.AddedB != nil && lf != nil && lf.RTTUS.P50 > 0, d.BridgeRTTOverLoadedFloor, d.BridgeRTTOverLoadedFloor <= 2,
		func() string {
			if d.AddedB == nil || lf == nil {
				return ""
			}
			return fmt.Sprintf("added P50 %.1f µs, loaded floor P50 %.1f µs (quiet floor %.1f µs)", d.AddedB.P50, lf.RTTUS.P50, r.quietFloorP50())
		}())

	echo := 0.0
	if r.PacedFloor != nil {
		echo = r.PacedFloor.EchoCPUUS
	}
	a := r.Phases[PhaseBaseline]
	add("extra gateway CPU per request (b over a)", "≤ 3× paced echo floor CPU per round trip", "µs/request",
		echo > 0 && a != nil && b != nil && a.Requests > 0 && b.Requests > 0, d.GatewayExtraCPUPerReqBUS, d.GatewayExtraCPUPerReqBUS <= 3*echo,
		fmt.Sprintf("paced echo floor %.1f µs CPU per round trip; the gateway itself %.1f µs per request of (a)", echo, perReqUSOr0(a)))
	add("filterd CPU per request under HTTP load", "≤ 2× paced echo floor CPU per round trip", "µs/request",
		echo > 0 && b != nil && b.CPU.FilterdS > 0, d.FilterdCPUPerReqUS, d.FilterdCPUPerReqUS <= 2*echo,
		fmt.Sprintf("%.2f× the paced echo floor (%.1f µs)", ratio(d.FilterdCPUPerReqUS, echo), echo))

	if b != nil && b.Requests > 0 {
		note := fmt.Sprintf("%d of %d requests of (b) answered 503", d.DeadlineDenialsB, b.Requests)
		if b.Requests < 60000 {
			note += "; fewer than 60,000 requests: a rate of 1 in 100,000 cannot be shown by this run"
		}
		if sp := r.StallProbe; sp != nil && sp.Sleeps > 0 {
			note += fmt.Sprintf("; the stall probe woke %.1f ms or more late %d times in the rounds (worst %.1f ms)", sp.ThresholdUS/1000, sp.Stalls, sp.WorstUS/1000)
		}
		add("legitimate requests denied by the bridge's deadline", "≤ 1 in 100,000", "per 100,000", true,
			d.DeadlineDenialRateB*1e5, d.DeadlineDenialRateB <= 1e-5, note)
	} else {
		add("legitimate requests denied by the bridge's deadline", "≤ 1 in 100,000", "per 100,000", false, 0, false, "")
	}

	if s := r.Saturation; s != nil && s.MaxRateA > 0 {
		note := fmt.Sprintf("(a) %d/s, (b) %d/s sustained (P99 ≤ 10 ms, errors ≤ 0.1%%, %.0f s steps side by side, a failure confirmed by a repeat, refined to 7%%)", s.MaxRateA, s.MaxRateB, s.StepS)
		if s.Capped {
			note += "; a ramp reached its highest step: a lower bound"
		}
		add("throughput at saturation (b ÷ a)", "≥ 0.85", "ratio", true, d.SaturationRatio, d.SaturationRatio >= 0.85, note)
	} else {
		add("throughput at saturation (b ÷ a)", "≥ 0.85", "ratio", false, 0, false, "")
	}

	if bb := r.Bridge; bb != nil {
		add("bridge heap per request (worst body size up to the route's limit)", "≤ 1 KB and ≤ 4 allocs", "B/op", true,
			bb.BytesPerOp, bb.BytesPerOp <= 1024 && bb.AllocsPerOp <= 4, fmt.Sprintf("%s: %.0f B/op, %.1f allocs/op", bb.Name, bb.BytesPerOp, bb.AllocsPerOp))
	} else {
		add("bridge heap per request (worst body size up to the route's limit)", "≤ 1 KB and ≤ 4 allocs", "B/op", false, 0, false, "")
	}
	add("hand-written Go in go-bridge (not tests, not flatc output)", "≤ 1,000 lines of code", "lines of code (cloc)",
		r.BridgeGoLines > 0, float64(r.BridgeGoLines), r.BridgeGoLines <= 1000,
		fmt.Sprintf("%d physical lines with comments and blank lines", r.BridgeGoPhysicalLines))

	if dd := r.Phases[PhaseRedis]; dd != nil && d.AddedDOverB != nil {
		add("Redis round trips per request (d)", "1", "per request", d.RedisCallsPerReqD > 0, d.RedisCallsPerReqD,
			d.RedisCallsPerReqD >= 0.999 && d.RedisCallsPerReqD <= 1.001,
			fmt.Sprintf("%d script calls for %d requests; (d) − (b) P50 %+.0f µs, P99 %+.0f µs; redis-server %.1f µs CPU per request", r.RedisCallsD, dd.Requests, d.AddedDOverB.P50, d.AddedDOverB.P99, d.RedisCPUPerReqUS))
	}

	if lg := r.Loadgen; lg != nil && lg.FilterdCPUS > 0 {
		add("filterd alone, full chain, C++ load generator", "≥ 50,000 decisions/s per core", "decisions/CPU-s", true,
			lg.DecisionsPerCore, lg.DecisionsPerCore >= 50000 && lg.Errors == 0,
			fmt.Sprintf("%d decisions (%d allow, %d deny, %d errors) in %.1f s, %.0f/s wall", lg.Decisions, lg.Allowed, lg.Denied, lg.Errors, lg.WallS, lg.DecisionsPerS))
	} else {
		add("filterd alone, full chain, C++ load generator", "≥ 50,000 decisions/s per core", "decisions/CPU-s", false, 0, false, "")
	}
	return t
}

func (r *Result) quietFloorP50() float64 {
	if r.Floor == nil {
		return 0
	}
	return r.Floor.RTTUS.P50
}

func perReqUSOr0(p *Phase) float64 {
	if p == nil {
		return 0
	}
	return perReqUS(p)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
