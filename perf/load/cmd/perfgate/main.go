// Command perfgate is the load half of the CI regression gate: it compares the added P99 of (b)
// over (a) in the current run with the committed baseline's, and exits 1 when it grew by more
// than the limit (1 ms by default, STD-API-034) or when (a) or (b) had failed requests.
//
//	perfgate -baseline perf/baseline/load.json -current perf/results/gate/result.json
package main

import (
	"flag"
	"fmt"
	"os"

	"filterd.local/perf/load/internal/result"
)

func main() {
	basePath := flag.String("baseline", "perf/baseline/load.json", "committed baseline result")
	curPath := flag.String("current", "", "result of the current run")
	growth := flag.Float64("max-p99-growth-ms", result.DefaultGate.MaxAddedP99GrowthUS/1000, "allowed growth of the added P99, ms")
	flag.Parse()
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
