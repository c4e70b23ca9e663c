package main

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

const benchOut = `goos: linux
BenchmarkRawUnixPingPong/body=1024B-2   	   68077	     21504 ns/op	  47.62 MB/s	       0 B/op	       0 allocs/op
BenchmarkModifierRoundTrip/body=0B-2    	   56295	     34300 ns/op	     532 B/op	       6 allocs/op
BenchmarkModifierRoundTrip/body=1024B-2 	   61843	     52703 ns/op	  19.43 MB/s	    1605 B/op	       8 allocs/op
BenchmarkModifierRoundTrip/body=1024B-2 	   61843	     50703 ns/op	  19.43 MB/s	    1607 B/op	       8 allocs/op
BenchmarkModifierRoundTripParallel-2    	   58508	     17798 ns/op	  57.53 MB/s	    1607 B/op	       8 allocs/op
PASS
`

func TestPickBenchTakesTheNamedBenchmarkAndAverages(t *testing.T) {
	p := filepath.Join(t.TempDir(), "go-bench.txt")
	if err := os.WriteFile(p, []byte(benchOut), 0o644); err != nil {
		t.Fatal(err)
	}
	bb, err := pickBench(p, regexp.MustCompile(`^BenchmarkModifierRoundTrip/body=1024B(-\d+)?$`))
	if err != nil {
		t.Fatal(err)
	}
	if bb.Name != "BenchmarkModifierRoundTrip/body=1024B" || bb.BytesPerOp != 1606 || bb.AllocsPerOp != 8 || bb.NsPerOp != 51703 {
		t.Fatalf("picked %+v", bb)
	}
	if _, err := pickBench(p, regexp.MustCompile(`^BenchmarkNope`)); err == nil {
		t.Fatal("a missing benchmark must be an error, not a zero figure")
	}
}
