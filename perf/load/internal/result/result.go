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
)

// CPU seconds (user + system, from /proc/<pid>/stat) one process used during a phase.
type CPU struct {
	FilterdS float64 `json:"filterd_s"`
	GatewayS float64 `json:"gateway_s"`
	BackendS float64 `json:"backend_s"`
	DriverS  float64 `json:"driver_s"`
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
	LoadAvgStart string  `json:"loadavg_start,omitempty"`
	LoadAvgEnd   string  `json:"loadavg_end,omitempty"`
	CPUModel     string  `json:"cpu_model"`
	CPUs         int     `json:"cpus"`
	MemGiB       float64 `json:"mem_gib"`
	Kernel       string  `json:"kernel"`
	OS           string  `json:"os"`
	Go           string  `json:"go"`
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
	// Added P50 of (b) over the floor's P50: the bridge's round trip as a multiple of the floor.
	BridgeRTTOverFloor float64 `json:"bridge_rtt_over_floor,omitempty"`
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
	Derived      Derived      `json:"derived"`
	Targets      []Target     `json:"targets"`
	Notes        []string     `json:"notes,omitempty"`
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
		if r.Floor != nil && r.Floor.RTTUS.P50 > 0 {
			d.BridgeRTTOverFloor = x.P50 / r.Floor.RTTUS.P50
		}
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

// targets evaluates the issue-5 target table. A figure that was not measured is reported as such,
// never as met.
func (r *Result) targets() []Target {
	d := r.Derived
	var t []Target
	b := r.Phases[PhasePlugin]
	clean := b != nil && b.Errors == 0

	if d.AddedB != nil {
		x := Target{Measure: "added P99 at 1000 RPS (b over a)", Target: "≤ 0.5 ms", Value: d.AddedB.P99 / 1000, Unit: "ms",
			Status: status(d.AddedB.P99 <= 500 && clean)}
		var notes []string
		if !clean {
			notes = append(notes, fmt.Sprintf("(b) had %d non-2xx/failed requests: a latency figure over failed requests is not a pass", b.Errors))
		}
		if r.Config.RatePerS != 1000 {
			notes = append(notes, fmt.Sprintf("measured at %d RPS, not 1000", r.Config.RatePerS))
		}
		x.Note = strings.Join(notes, "; ")
		t = append(t, x)
	} else {
		t = append(t, Target{Measure: "added P99 at 1000 RPS (b over a)", Target: "≤ 0.5 ms", Unit: "ms", Status: "not measured"})
	}

	if d.AddedB != nil && r.Floor != nil && r.Floor.RTTUS.P50 > 0 {
		t = append(t, Target{Measure: "added P50 (b over a) vs raw socket round-trip floor", Target: "≤ 3× floor",
			Value: d.BridgeRTTOverFloor, Unit: "× floor", Status: status(d.BridgeRTTOverFloor <= 3 && clean),
			Note: fmt.Sprintf("added P50 %.1f µs, floor P50 %.1f µs", d.AddedB.P50, r.Floor.RTTUS.P50)})
	} else {
		t = append(t, Target{Measure: "added P50 (b over a) vs raw socket round-trip floor", Target: "≤ 3× floor", Unit: "× floor", Status: "not measured"})
	}

	if b != nil && b.Requests > 0 && b.CPU.FilterdS > 0 {
		t = append(t, Target{Measure: "filterd CPU at 1000 RPS", Target: "≤ 1% of one core (≤ 10 µs CPU per request)",
			Value: d.FilterdCPUPerReqUS, Unit: "µs/request", Status: status(d.FilterdCPUPerReqUS <= 10),
			Note: fmt.Sprintf("%.2f%% of one core at %.0f RPS achieved", d.FilterdCoreShareB*100, b.AchievedRPS)})
	} else {
		t = append(t, Target{Measure: "filterd CPU at 1000 RPS", Target: "≤ 1% of one core (≤ 10 µs CPU per request)", Unit: "µs/request", Status: "not measured"})
	}

	if bb := r.Bridge; bb != nil {
		t = append(t, Target{Measure: "bridge allocations (1 KiB body)", Target: "≤ 4 KB and ≤ 20 allocs per request",
			Value: bb.BytesPerOp, Unit: "B/op", Status: status(bb.BytesPerOp <= 4096 && bb.AllocsPerOp <= 20),
			Note: fmt.Sprintf("%s: %.0f B/op, %.0f allocs/op", bb.Name, bb.BytesPerOp, bb.AllocsPerOp)})
	} else {
		t = append(t, Target{Measure: "bridge allocations (1 KiB body)", Target: "≤ 4 KB and ≤ 20 allocs per request", Unit: "B/op", Status: "not measured"})
	}

	if lg := r.Loadgen; lg != nil && lg.FilterdCPUS > 0 {
		x := Target{Measure: "filterd alone, full chain, C++ load generator", Target: "≥ 50,000 decisions/s per core",
			Value: lg.DecisionsPerCore, Unit: "decisions/CPU-s", Status: status(lg.DecisionsPerCore >= 50000 && lg.Errors == 0),
			Note: fmt.Sprintf("%d decisions (%d allow, %d deny, %d errors) in %.1f s, %.0f/s wall", lg.Decisions, lg.Allowed, lg.Denied, lg.Errors, lg.WallS, lg.DecisionsPerS)}
		t = append(t, x)
	} else {
		t = append(t, Target{Measure: "filterd alone, full chain, C++ load generator", Target: "≥ 50,000 decisions/s per core", Unit: "decisions/CPU-s", Status: "not measured"})
	}
	return t
}
