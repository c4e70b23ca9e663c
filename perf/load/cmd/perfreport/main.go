// Command perfreport renders result.json as report.md and latency.png beside it, after merging
// in the figures measured by other tools of the same run (floor, loadgen, bridge benchmark).
//
//	perfreport -in perf/results/latest/result.json [-floor floor.json] [-loadgen loadgen.json] [-gobench go-bench.txt]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"filterd.local/perf/load/internal/gobench"
	"filterd.local/perf/load/internal/report"
	"filterd.local/perf/load/internal/result"
)

func main() {
	in := flag.String("in", "", "result.json to render (rewritten with derived figures)")
	floor := flag.String("floor", "", "floor JSON(s) from filterd-loadgen floor, comma-separated (optional; the lowest P50 is used)")
	loadgen := flag.String("loadgen", "", "loadgen JSON from filterd-loadgen (optional)")
	pacedFloor := flag.String("paced-floor", "", "floor JSON from filterd-loadgen floor --rate (optional)")
	pacedLoadgen := flag.String("paced-loadgen", "", "loadgen JSON from filterd-loadgen run --rate (optional)")
	gobench := flag.String("gobench", "", "go test -bench output of go-bridge (optional)")
	benchRe := flag.String("bridge-bench", `^BenchmarkModifierRoundTrip/body=\d+B(-\d+)?$`, "regexp picking the bridge benchmarks judged on the allocation target (the worst one is kept)")
	stalls := flag.String("stalls", "", "filterd-loadgen stalls JSON from the rounds (optional)")
	loadedFloor := flag.String("loaded-floor", "", "floor JSON from filterd-loadgen floor --rate, measured while (a)'s load ran (optional)")
	bridgeLines := flag.Int("bridge-lines", 0, "hand-written lines of Go code in go-bridge, as cloc counts them (optional)")
	bridgePhysical := flag.Int("bridge-physical-lines", 0, "the same files' physical lines, comments and blanks included (optional)")
	flag.Parse()
	if *in == "" {
		fmt.Fprintln(os.Stderr, "perfreport: -in is required")
		os.Exit(2)
	}
	r, err := result.Load(*in)
	must(err)
	if *floor != "" {
		// Several floor measurements of one run (comma-separated): the floor is the least a round
		// trip costs, and other work on the machine only ever adds to it, so the lowest P50 is kept
		// and the others are listed.
		var all []string
		for _, path := range strings.Split(*floor, ",") {
			var f result.Floor
			if err := readJSON(path, &f); err != nil {
				r.Notes = append(r.Notes, "floor measurement missing: "+err.Error())
				continue
			}
			label := f.Pin
			if label == "" {
				label = filepath.Base(path)
			}
			all = append(all, fmt.Sprintf("%s %.1f", label, f.RTTUS.P50))
			if r.Floor == nil || f.RTTUS.P50 < r.Floor.RTTUS.P50 {
				f := f
				r.Floor = &f
			}
		}
		if len(all) > 1 {
			r.Notes = append(r.Notes, fmt.Sprintf("floor measured %d times in this run, P50 by placement of the two processes (same CPU / across CPUs / left to the scheduler): %s µs; the lowest is used", len(all), strings.Join(all, ", ")))
		}
	}
	readOptional(&r.Loadgen, *loadgen, "filterd-loadgen result unavailable", &r.Notes)
	readOptional(&r.PacedFloor, *pacedFloor, "", &r.Notes)
	readOptional(&r.PacedFilterd, *pacedLoadgen, "", &r.Notes)
	readOptional(&r.LoadedFloor, *loadedFloor, "loaded floor missing", &r.Notes)
	readOptional(&r.StallProbe, *stalls, "stall probe missing", &r.Notes)
	if *bridgeLines > 0 {
		r.BridgeGoLines, r.BridgeGoPhysicalLines = *bridgeLines, *bridgePhysical
	}
	if *gobench != "" {
		bb, err := pickBench(*gobench, regexp.MustCompile(*benchRe))
		if err != nil {
			r.Notes = append(r.Notes, "bridge benchmark: "+err.Error())
		} else {
			r.Bridge = bb
		}
	}
	// perfreport may be run again on its own output (e.g. after perf-micro.sh): keep notes unique.
	seen := map[string]bool{}
	notes := r.Notes[:0]
	for _, n := range r.Notes {
		if !seen[n] {
			seen[n] = true
			notes = append(notes, n)
		}
	}
	r.Notes = notes
	r.Derive()
	must(r.Save(*in))
	dir := filepath.Dir(*in)
	must(report.PlotPNG(r, filepath.Join(dir, "latency.png")))
	f, err := os.Create(filepath.Join(dir, "report.md"))
	must(err)
	must(report.Markdown(f, r, "latency.png"))
	must(f.Close())
	fmt.Printf("perfreport: wrote %s, %s, %s\n", *in, filepath.Join(dir, "report.md"), filepath.Join(dir, "latency.png"))
}

// readOptional reads path, when given, into *dst. A file that cannot be read leaves *dst as it was and
// adds "missing: <error>" to notes (nothing when missing is "").
func readOptional[T any](dst **T, path, missing string, notes *[]string) {
	if path == "" {
		return
	}
	var v T
	if err := readJSON(path, &v); err != nil {
		if missing != "" {
			*notes = append(*notes, missing+": "+err.Error())
		}
		return
	}
	*dst = &v
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// pickBench averages every benchmark matching re that reports B/op and allocs/op (over -count
// runs, as gobench.Parse reads them) and returns the worst one: the most bytes per op, then the
// most allocations. re is matched against the name without its -GOMAXPROCS suffix.
func pickBench(path string, re *regexp.Regexp) (*result.BridgeBench, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	figs, err := gobench.Parse(f)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(figs))
	for name := range figs {
		names = append(names, name)
	}
	sort.Strings(names)
	var worst *result.BridgeBench
	for _, name := range names {
		fig := figs[name]
		if !fig.HasMem || !re.MatchString(name) {
			continue
		}
		b := result.BridgeBench{Name: name, NsPerOp: fig.NsPerOp, BytesPerOp: fig.BytesPerOp, AllocsPerOp: fig.AllocsPerOp}
		if worst == nil || b.BytesPerOp > worst.BytesPerOp || (b.BytesPerOp == worst.BytesPerOp && b.AllocsPerOp > worst.AllocsPerOp) {
			worst = &b
		}
	}
	if worst == nil {
		return nil, fmt.Errorf("no benchmark matching %s with -benchmem figures in %s", re, path)
	}
	return worst, nil
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "perfreport:", err)
		os.Exit(1)
	}
}
