// Package gobench reads `go test -bench -benchmem` output and gates the deterministic figures.
//
// Time per op from another day on a shared 2-core machine is noise, so it is only printed (by
// benchstat, next to this). Bytes and allocations per op do not depend on the machine's load, so
// the gate fails when they grow.
package gobench

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Figures are the means over every line (-count) of one benchmark.
type Figures struct {
	NsPerOp, BytesPerOp, AllocsPerOp float64
	HasMem                           bool
	n                                int
}

var procSuffix = regexp.MustCompile(`-\d+$`)

// Parse reads benchmark lines; other lines are ignored.
func Parse(r io.Reader) (map[string]*Figures, error) {
	out := map[string]*Figures{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name := procSuffix.ReplaceAllString(f[0], "")
		fig := out[name]
		if fig == nil {
			fig = &Figures{}
			out[name] = fig
		}
		fig.n++
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				fig.NsPerOp += v
			case "B/op":
				fig.BytesPerOp += v
				fig.HasMem = true
			case "allocs/op":
				fig.AllocsPerOp += v
			}
		}
	}
	for _, fig := range out {
		k := float64(fig.n)
		fig.NsPerOp, fig.BytesPerOp, fig.AllocsPerOp = fig.NsPerOp/k, fig.BytesPerOp/k, fig.AllocsPerOp/k
	}
	return out, sc.Err()
}

// Tolerances of the allocation gate. sync.Pool can hand out a fresh buffer after a GC, so a mean
// may move by a fraction of an allocation between runs; a real regression moves it by whole ones.
const (
	AllocSlack      = 0.5  // allocs/op
	BytesSlackRatio = 0.10 // of the baseline B/op
	BytesSlackAbs   = 64   // B/op
)

// Compare gates allocations of every benchmark present in both runs. Benchmarks only in one run
// are listed, not failed (a renamed benchmark needs a deliberate baseline update).
func Compare(base, cur map[string]*Figures) (pass bool, lines []string) {
	pass = true
	var names []string
	for n := range cur {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c, b := cur[n], base[n]
		if b == nil {
			lines = append(lines, fmt.Sprintf("new:  %s (not in the baseline)", n))
			continue
		}
		if !c.HasMem || !b.HasMem {
			lines = append(lines, fmt.Sprintf("skip: %s has no -benchmem figures", n))
			continue
		}
		msg := fmt.Sprintf("%s: %.1f allocs/op (baseline %.1f), %.0f B/op (baseline %.0f)", n, c.AllocsPerOp, b.AllocsPerOp, c.BytesPerOp, b.BytesPerOp)
		if c.AllocsPerOp > b.AllocsPerOp+AllocSlack || c.BytesPerOp > b.BytesPerOp*(1+BytesSlackRatio)+BytesSlackAbs {
			pass = false
			lines = append(lines, "FAIL: "+msg)
		} else {
			lines = append(lines, "ok:   "+msg)
		}
	}
	for n := range base {
		if cur[n] == nil {
			lines = append(lines, fmt.Sprintf("gone: %s (in the baseline, not in this run)", n))
		}
	}
	return pass, lines
}
