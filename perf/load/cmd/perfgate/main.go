// Command perfgate is the load half of the CI regression gate: it compares the added P99 of (b)
// over (a) in the current run with the committed baseline's, and exits 1 when it grew by more
// than the limit (1 ms by default, STD-API-034) or when (a) had failed requests or (b) more than 1% (deadline misses of a busy machine).
//
//	perfgate -baseline perf/baseline/load.json -current perf/results/tmp/gate/result.json
//	perfgate -bench-baseline perf/baseline/go-bench.txt -bench-current perf/results/tmp/gate/go-bench.txt
//
// The second form gates the Go benchmarks' B/op and allocs/op (deterministic); their time per op is
// printed by benchstat beside it and not gated (it is not comparable across days on this machine).
package main

import (
	"flag"
	"fmt"
	"os"

	"filterd.local/perf/load/internal/gobench"
	"filterd.local/perf/load/internal/result"
)

func benchGate(basePath, curPath string) int {
	read := func(p string) map[string]*gobench.Figures {
		f, err := os.Open(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "perfgate:", err)
			os.Exit(2)
		}
		defer f.Close()
		m, err := gobench.Parse(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "perfgate:", err)
			os.Exit(2)
		}
		return m
	}
	pass, lines := gobench.Compare(read(basePath), read(curPath))
	for _, l := range lines {
		fmt.Println("perfgate: bench", l)
	}
	if !pass {
		fmt.Println("perfgate: bench allocations FAIL")
		return 1
	}
	fmt.Println("perfgate: bench allocations PASS")
	return 0
}

func main() {
	basePath := flag.String("baseline", "perf/baseline/load.json", "committed baseline result")
	curPath := flag.String("current", "", "result of the current run")
	growth := flag.Float64("max-p99-growth-ms", result.DefaultGate.MaxAddedP99GrowthUS/1000, "allowed growth of the added P99, ms")
	benchBase := flag.String("bench-baseline", "", "go test -bench baseline output (allocation gate)")
	benchCur := flag.String("bench-current", "", "go test -bench current output (allocation gate)")
	flag.Parse()
	if *benchBase != "" || *benchCur != "" {
		os.Exit(benchGate(*benchBase, *benchCur))
	}
	base, err := result.Load(*basePath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "perfgate: baseline:", err)
		os.Exit(2)
	}
	cur, err := result.Load(*curPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "perfgate: current:", err)
		os.Exit(2)
	}
	cfg := result.DefaultGate
	cfg.MaxAddedP99GrowthUS = *growth * 1000
	o := result.Gate(base, cur, cfg)
	for _, l := range o.Lines {
		fmt.Println("perfgate:", l)
	}
	if !o.Pass {
		fmt.Println("perfgate: FAIL")
		os.Exit(1)
	}
	fmt.Println("perfgate: PASS")
}
