package gobench

import (
	"strings"
	"testing"
)

const baseText = `goos: linux
goarch: amd64
pkg: bitbucket.org/simpaisa/simpaisa-plugin-filter-bridge
BenchmarkModifier/body=1KiB-2         	   50000	     21000 ns/op	    1900 B/op	      11 allocs/op
BenchmarkModifier/body=1KiB-2         	   50000	     23000 ns/op	    1940 B/op	      11 allocs/op
BenchmarkEncode-2                     	 1000000	      1200 ns/op
PASS
ok  	bitbucket.org/simpaisa/simpaisa-plugin-filter-bridge	3.2s
`

func parse(t *testing.T, s string) map[string]*Figures {
	m, err := Parse(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseAverages(t *testing.T) {
	m := parse(t, baseText)
	f := m["BenchmarkModifier/body=1KiB"]
	if f == nil || f.NsPerOp != 22000 || f.BytesPerOp != 1920 || f.AllocsPerOp != 11 || !f.HasMem {
		t.Fatalf("parsed %+v", f)
	}
	if e := m["BenchmarkEncode"]; e == nil || e.HasMem {
		t.Fatalf("encode %+v", e)
	}
}

func TestCompare(t *testing.T) {
	base := parse(t, baseText)
	slower := strings.ReplaceAll(baseText, "21000 ns/op", "90000 ns/op") // time is not gated
	if ok, lines := Compare(base, parse(t, slower)); !ok {
		t.Fatalf("slower ns/op must not fail: %v", lines)
	}
	moreAllocs := strings.ReplaceAll(baseText, "11 allocs/op", "13 allocs/op")
	if ok, _ := Compare(base, parse(t, moreAllocs)); ok {
		t.Fatal("two more allocs/op must fail")
	}
	moreBytes := strings.ReplaceAll(baseText, "1900 B/op", "2600 B/op")
	moreBytes = strings.ReplaceAll(moreBytes, "1940 B/op", "2600 B/op")
	if ok, _ := Compare(base, parse(t, moreBytes)); ok {
		t.Fatal("+35% B/op must fail")
	}
	jitter := strings.ReplaceAll(baseText, "1940 B/op", "1990 B/op")
	if ok, lines := Compare(base, parse(t, jitter)); !ok {
		t.Fatalf("pool jitter must pass: %v", lines)
	}
}
