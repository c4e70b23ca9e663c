package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"sort"
	"strconv"
	"time"
)

// percentile is nearest-rank on a sorted slice.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	k := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	if k < 0 {
		k = 0
	}
	return sorted[k]
}

// Figures are the results of one crash-under-load run.
type Figures struct {
	Requests, Signed, Unsigned, OK, TransportErrors int
	StatusCounts                                    map[string]int
	GapRequests                                     int
	GapStatusCounts                                 map[string]int
	GapDenyP50MS, GapDenyP99MS, GapDenyMaxMS        float64
	FirstOKAfterKillMS                              float64
	FirstOKAfterRestartMS                           float64
	RestartAfterKillMS                              float64
	UnreadyAfterKillMS, ReadyAgainAfterKillMS       float64
	BackendTotal                                    int
	OutsideGap401P50MS, OutsideGap401P99MS          float64
	OutsideGap401MaxMS                              float64
	OutsideGap401OverBound                          int
}

// analyse checks a load run (see main.go) and prints its figures; it returns the exit code.
//
// The gap is [kill, first 200 sent after the kill). Checks:
//   - every request got an HTTP answer from the gateway (no transport error);
//   - no unsigned request got 200, and each 200's backend echo carries its own request's tag;
//   - the backend counted exactly the 200s (so no denied request reached it);
//   - no request sent between the kill and filterd's new start got 200 (that would be a fail-open);
//   - the denials in the gap are fast: their median at most maxDenyMS (the product's budget); their
//     P99 at most maxDenyMS above the P99 of the same run's 401s outside the gap, which carries the
//     scheduler delays of this machine (a 2-core box restarting a container); none waits 1 s (that
//     would be the endpoint timeout, not the bridge failing closed);
//   - readiness was 200 before the kill, went non-200 after it, and came back to 200;
//   - traffic recovered: a 200 after the kill.
func analyse(in, restartedAt string, backendTotal int, maxDenyMS float64) int {
	b, err := os.ReadFile(in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "podload:", err)
		return 2
	}
	var run Run
	if err := json.Unmarshal(b, &run); err != nil {
		fmt.Fprintln(os.Stderr, "podload:", err)
		return 2
	}
	var restartNS int64
	if restartedAt != "" {
		t, err := time.Parse(time.RFC3339Nano, restartedAt)
		if err != nil {
			fmt.Fprintln(os.Stderr, "podload: -restarted-at:", err)
			return 2
		}
		restartNS = t.UnixNano()
	}
	fail := 0
	bad := func(format string, a ...any) {
		fail++
		fmt.Printf("FAIL: "+format+"\n", a...)
	}
	f := Figures{StatusCounts: map[string]int{}, GapStatusCounts: map[string]int{}, BackendTotal: backendTotal}
	recs := run.Records
	sort.Slice(recs, func(i, j int) bool { return recs[i].SentNS < recs[j].SentNS })
	firstOK := int64(0)
	for _, r := range recs {
		f.Requests++
		if r.Signed {
			f.Signed++
		} else {
			f.Unsigned++
		}
		f.StatusCounts[strconv.Itoa(r.Status)]++
		if r.Status == 0 {
			f.TransportErrors++
		}
		if r.Status == 200 {
			f.OK++
			q, _ := url.ParseQuery(r.EchoTag)
			if !r.Signed {
				bad("unsigned request %d got 200", r.I)
			} else if q.Get("k") != "s" || q.Get("i") != strconv.Itoa(r.I) {
				bad("request %d got 200 but the backend echoed the query %q: another request reached it", r.I, r.EchoTag)
			}
			if run.KillNS != 0 && r.SentNS >= run.KillNS && firstOK == 0 {
				firstOK = r.SentNS
			}
			if run.KillNS != 0 && restartNS != 0 && r.SentNS >= run.KillNS && r.SentNS < restartNS {
				bad("request %d sent %.1f ms after the kill, before filterd restarted, got 200 (fail-open)", r.I,
					float64(r.SentNS-run.KillNS)/1e6)
			}
		}
	}
	if f.TransportErrors > 0 {
		bad("%d requests got no HTTP answer from the gateway", f.TransportErrors)
	}
	if backendTotal >= 0 && backendTotal != f.OK {
		bad("the backend counted %d requests but %d were allowed (200)", backendTotal, f.OK)
	}
	if run.KillNS == 0 {
		bad("filterd was not killed during the run")
	}
	if firstOK == 0 {
		bad("no 200 after the kill: traffic did not recover")
	}
	if run.KillNS != 0 {
		end := firstOK
		if end == 0 {
			end = math.MaxInt64
		}
		var lat []float64
		for _, r := range recs {
			if r.SentNS >= run.KillNS && r.SentNS < end {
				f.GapRequests++
				f.GapStatusCounts[strconv.Itoa(r.Status)]++
				if r.Status != 200 && r.Status != 0 {
					lat = append(lat, r.LatUS/1e3)
					if r.LatUS/1e3 > 1000 {
						bad("request %d in the gap was denied (%d) in %.2f ms: it waited for a timeout", r.I, r.Status, r.LatUS/1e3)
					}
				}
			}
		}
		// The slowest denials of the gap, with when they were sent relative to the kill.
		var gap []Record
		for _, r := range recs {
			if r.SentNS >= run.KillNS && r.SentNS < end && r.Status != 200 && r.Status != 0 {
				gap = append(gap, r)
			}
		}
		sort.Slice(gap, func(i, j int) bool { return gap[i].LatUS > gap[j].LatUS })
		for i := 0; i < len(gap) && i < 5; i++ {
			fmt.Printf("gap: slowest #%d: sent %.2f ms after the kill, %d in %.3f ms\n", i+1,
				float64(gap[i].SentNS-run.KillNS)/1e6, gap[i].Status, gap[i].LatUS/1e3)
		}
		sort.Float64s(lat)
		f.GapDenyP50MS, f.GapDenyP99MS = percentile(lat, 50), percentile(lat, 99)
		if len(lat) > 0 {
			f.GapDenyMaxMS = lat[len(lat)-1]
		}
		if f.GapRequests == 0 {
			bad("no request was sent in the gap: the test did not test the crash")
		}
		if firstOK != 0 {
			f.FirstOKAfterKillMS = float64(firstOK-run.KillNS) / 1e6
			if restartNS != 0 {
				f.FirstOKAfterRestartMS = float64(firstOK-restartNS) / 1e6
			}
		}
		if restartNS != 0 {
			f.RestartAfterKillMS = float64(restartNS-run.KillNS) / 1e6
		}
		// Readiness: ready before the kill, unready after it, ready again later.
		readyBefore := false
		var unready, readyAgain int64
		for _, s := range run.Readiness {
			switch {
			case s.AtNS < run.KillNS:
				readyBefore = readyBefore || s.Status == 200
			case unready == 0 && s.Status != 200:
				unready = s.AtNS
			case unready != 0 && readyAgain == 0 && s.Status == 200:
				readyAgain = s.AtNS
			}
		}
		if !readyBefore {
			bad("readiness was never 200 before the kill")
		}
		if unready == 0 {
			bad("readiness never went unready after the kill")
		} else {
			f.UnreadyAfterKillMS = float64(unready-run.KillNS) / 1e6
		}
		if readyAgain == 0 {
			bad("readiness did not come back to 200")
		} else {
			f.ReadyAgainAfterKillMS = float64(readyAgain-run.KillNS) / 1e6
		}
	}
	// For comparison: unsigned requests denied (401) by a running filterd, outside the gap.
	var base []float64
	for _, r := range recs {
		if r.Status == 401 && (run.KillNS == 0 || r.SentNS < run.KillNS || (firstOK != 0 && r.SentNS >= firstOK)) {
			base = append(base, r.LatUS/1e3)
		}
	}
	sort.Float64s(base)
	f.OutsideGap401P50MS, f.OutsideGap401P99MS = percentile(base, 50), percentile(base, 99)
	if len(base) > 0 {
		f.OutsideGap401MaxMS = base[len(base)-1]
	}
	for _, l := range base {
		if l > maxDenyMS {
			f.OutsideGap401OverBound++
		}
	}
	if run.KillNS != 0 && f.GapRequests > 0 {
		if f.GapDenyP50MS > maxDenyMS {
			bad("gap denials: P50 %.2f ms > %.1f ms", f.GapDenyP50MS, maxDenyMS)
		}
		if limit := f.OutsideGap401P99MS + maxDenyMS; f.GapDenyP99MS > limit {
			bad("gap denials: P99 %.2f ms > %.2f ms (the same run's 401 P99 %.2f ms + %.1f ms)", f.GapDenyP99MS, limit, f.OutsideGap401P99MS, maxDenyMS)
		}
	}
	out, _ := json.MarshalIndent(f, "", "  ")
	fmt.Println(string(out))
	fmt.Printf("crash under load: %d req at %d/s (%d signed, %d unsigned); statuses %v; backend counted %d = allowed %d\n",
		f.Requests, run.Rate, f.Signed, f.Unsigned, f.StatusCounts, f.BackendTotal, f.OK)
	fmt.Printf("gap: %d requests %v, denial latency P50 %.3f ms, P99 %.3f ms, max %.3f ms (bound %.1f ms)\n",
		f.GapRequests, f.GapStatusCounts, f.GapDenyP50MS, f.GapDenyP99MS, f.GapDenyMaxMS, maxDenyMS)
	fmt.Printf("outside the gap, for comparison: 401 from a running filterd, P50 %.3f ms, P99 %.3f ms, max %.3f ms, %d over %.1f ms\n",
		f.OutsideGap401P50MS, f.OutsideGap401P99MS, f.OutsideGap401MaxMS, f.OutsideGap401OverBound, maxDenyMS)
	fmt.Printf("filterd restarted %.0f ms after the kill; first 200 %.1f ms after the kill (%.1f ms after the restart); "+
		"readiness unready %.0f ms and ready again %.0f ms after the kill\n",
		f.RestartAfterKillMS, f.FirstOKAfterKillMS, f.FirstOKAfterRestartMS, f.UnreadyAfterKillMS, f.ReadyAgainAfterKillMS)
	if fail > 0 {
		fmt.Printf("crash under load: %d check(s) FAILED\n", fail)
		return 1
	}
	fmt.Println("crash under load: all checks passed")
	return 0
}
