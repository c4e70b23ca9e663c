// Command perfload drives a constant request rate through up to three gateway endpoints with the
// vegeta library and writes result.json (see internal/result):
//
//	(a) a baseline endpoint with no plugin,
//	(b) the endpoint with the filter-bridge plugin and all three filters,
//	(c) the endpoint using KrakenD's built-in qos/ratelimit/router, as a peer reference.
//
// Every request carries a fresh SPV1 signature (unique nonce, current timestamp), made ahead of
// time by a pump goroutine so that signing is not inside the measured latency. All three endpoints
// get requests of the same shape and size (signed for their own path), so they differ only in what
// the gateway does with them.
//
// The measured time is split into rounds; each round runs every endpoint for duration/rounds, in
// an order rotated every round, so slow drift of a shared machine (other builds, thermal state)
// falls on all three endpoints alike. CPU seconds of filterd, the gateway, the backend and this
// driver are read from /proc/<pid>/stat around every segment and summed per endpoint.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"filterd.local/perf/load/internal/procstat"
	"filterd.local/perf/load/internal/result"
	"filterd.local/perf/load/internal/stats"
	"filterd.local/tools/spv1"
)

type endpoint struct {
	key, name string
	url       *url.URL
	query     []spv1.Pair
	sample    stats.Sample
	phase     *result.Phase
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, "; ") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

type pids struct{ filterd, gateway, backend, filterdRedis, redis int }

func main() {
	var (
		aURL      = flag.String("a", "", "baseline endpoint URL (no plugin)")
		bURL      = flag.String("b", "", "plugin endpoint URL (filter-bridge with all three filters)")
		cURL      = flag.String("c", "", "built-in qos/ratelimit/router endpoint URL")
		dURL      = flag.String("d", "", "plugin endpoint URL whose filterd keeps nonces and rate limits in Redis")
		dPid      = flag.Int("filterd-redis-pid", 0, "pid of the Redis-mode filterd (0: not tracked)")
		rPid      = flag.Int("redis-pid", 0, "pid of redis-server (0: not tracked)")
		redisAddr = flag.String("redis-addr", "", "redis-server of phase (d): its command counts are read around the measured rounds")
		rate      = flag.Int("rate", 1000, "requests per second, per endpoint")
		duration  = flag.Duration("duration", 60*time.Second, "measured time per endpoint")
		rounds    = flag.Int("rounds", 0, "rounds the measured time is split into (0: one per second, at least 1)")
		warmup    = flag.Duration("warmup", 2*time.Second, "unmeasured warm-up per endpoint before the first round")
		method    = flag.String("method", "POST", "HTTP method")
		bodyBytes = flag.Int("body-bytes", 1024, "request body size (JSON)")
		merchant  = flag.String("merchant", "m-perf", "SPV1 merchant id")
		keyID     = flag.String("key-id", "k-perf", "SPV1 key id")
		secretEnv = flag.String("secret-env", "SPV1_PERF_SECRET", "environment variable holding the hmac secret")
		secretF   = flag.String("secret-file", "", "file holding the hmac secret (overrides -secret-env)")
		timeout   = flag.Duration("timeout", 5*time.Second, "per-request timeout")
		out       = flag.String("out", "result.json", "result file")
		commit    = flag.String("commit", "", "commit the stack was built from (recorded)")
		fPid      = flag.Int("filterd-pid", 0, "pid of filterd (0: not tracked)")
		gPid      = flag.Int("gateway-pid", 0, "pid of the gateway (0: not tracked)")
		bPid      = flag.Int("backend-pid", 0, "pid of the backend (0: not tracked)")
		saturate  = flag.Bool("saturate", false, "after the measured rounds, ramp (a) and (b) until P99 > 10 ms or errors > 0.1%")
		satStart  = flag.Int("sat-start", 500, "saturation: first rate, requests/s")
		satFactor = flag.Float64("sat-factor", 1.25, "saturation: rate multiplier per step")
		satStep   = flag.Duration("sat-step", 3*time.Second, "saturation: measured time per step")
		satMax    = flag.Int("sat-max", 20000, "saturation: highest rate tried")
		probePID  = flag.Int("probe-pid", 0, "stall probe (filterd-loadgen stalls) to stop with SIGTERM when the rounds end")
		satBudget = flag.Duration("sat-budget", 150*time.Second, "saturation: total time bound over both ramps")
		notes     multi
	)
	flag.Var(&notes, "note", "free-text note recorded in the result (repeatable)")
	flag.Parse()

	secret := []byte(os.Getenv(*secretEnv))
	if *secretF != "" {
		b, err := spv1.ReadSecretFile(*secretF)
		must(err)
		secret = b
	}
	key := spv1.Key{MerchantID: *merchant, KeyID: *keyID, Secret: secret}

	var eps []*endpoint
	for _, e := range []struct{ k, n, u string }{{"a", "baseline (no plugin)", *aURL}, {"b", "plugin + 3 filters", *bURL}, {"c", "built-in qos/ratelimit/router", *cURL}, {"d", "plugin + 3 filters, Redis stores", *dURL}} {
		if e.u == "" {
			continue
		}
		u, err := url.Parse(e.u)
		must(err)
		var q []spv1.Pair
		for name, vs := range u.Query() {
			for _, v := range vs {
				q = append(q, spv1.Pair{Name: name, Value: v})
			}
		}
		eps = append(eps, &endpoint{key: e.k, name: e.n, url: u, query: q,
			phase: &result.Phase{Name: e.n, URL: e.u, StatusCodes: map[string]int{}, ErrorKinds: map[string]int{}}})
	}
	if len(eps) == 0 {
		fail("give at least one of -a, -b, -c")
	}
	if len(secret) == 0 {
		fmt.Fprintf(os.Stderr, "perfload: warning: empty SPV1 secret (set $%s or -secret-file); (b) will be denied\n", *secretEnv)
	}
	if *rounds <= 0 {
		*rounds = int(*duration / time.Second)
		if *rounds < 1 {
			*rounds = 1
		}
	}
	seg := *duration / time.Duration(*rounds)
	body := makeBody(*bodyBytes)
	p := pids{*fPid, *gPid, *bPid, *dPid, *rPid}

	// A vegeta Attacker stops for good after one attack, so every segment gets a new one; they share
	// one HTTP client, so keep-alive connections carry over and no segment pays for new connections.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 10000, IdleConnTimeout: time.Minute}}
	attacker := func() *vegeta.Attacker {
		return vegeta.NewAttacker(vegeta.Client(client), vegeta.Timeout(*timeout), vegeta.KeepAlive(true),
			vegeta.Workers(32), vegeta.MaxBody(512), vegeta.Redirects(vegeta.NoFollow))
	}
	pace := vegeta.Rate{Freq: *rate, Per: time.Second}

	res := &result.Result{Schema: result.SchemaVersion, StartedAt: time.Now().UTC().Format(time.RFC3339), Commit: *commit,
		Machine: machine(), Phases: map[string]*result.Phase{}}
	var order []string
	for _, e := range eps {
		order = append(order, e.key)
		res.Phases[e.key] = e.phase
	}
	res.Config = result.Config{RatePerS: *rate, DurationS: duration.Seconds(), Rounds: *rounds, Order: order,
		BodyBytes: len(body), WarmupS: warmup.Seconds(), Interleaved: *rounds > 1}
	for _, n := range notes {
		if n != "" {
			res.Notes = append(res.Notes, n)
		}
	}

	if *warmup > 0 {
		for _, e := range eps {
			fmt.Fprintf(os.Stderr, "perfload: warm-up (%s) %s for %s\n", e.key, e.url, *warmup)
			for r := range attacker().Attack(targeter(e, key, *method, body, *rate), pace, *warmup, "warmup-"+e.key) {
				_ = r
			}
		}
	}
	calls0, steal0 := redisCalls(*redisAddr), stealMS()
	for round := 0; round < *rounds; round++ {
		for i := range eps {
			e := eps[(i+round)%len(eps)] // rotate the order every round
			fmt.Fprintf(os.Stderr, "perfload: round %d/%d (%s) %d/s for %s\n", round+1, *rounds, e.key, *rate, seg)
			runSegment(attacker(), e, key, *method, body, *rate, pace, seg, p)
		}
	}
	if steal1 := stealMS(); steal0 >= 0 && steal1 >= 0 {
		d := steal1 - steal0
		res.Machine.StealMS = &d
	}
	for _, e := range eps {
		ph := e.phase
		ph.LatencyUS = e.sample.Percentiles()
		ph.Curve = e.sample.Curve()
		if ph.DurationS > 0 {
			ph.AchievedRPS = float64(ph.Requests) / ph.DurationS
		}
		if len(ph.ErrorKinds) == 0 {
			ph.ErrorKinds = nil
		}
		fmt.Fprintf(os.Stderr, "perfload: (%s) %d requests, %d ok, P50 %.0f µs, P99 %.0f µs, max %.0f µs\n",
			e.key, ph.Requests, ph.Success, ph.LatencyUS.P50, ph.LatencyUS.P99, ph.LatencyUS.Max)
	}
	if *probePID > 0 { // the stall probe counts the rounds only
		_ = syscall.Kill(*probePID, syscall.SIGTERM)
	}
	if *redisAddr != "" {
		res.RedisCallsD = redisCalls(*redisAddr) - calls0
	}
	if *saturate {
		res.Saturation = saturation(eps, key, *method, body, *satStart, *satFactor, *satMax, *satStep, *satBudget, attacker)
	}
	res.Machine.LoadAvgEnd = loadavg()
	res.Derive()
	must(res.Save(*out))
	fmt.Fprintf(os.Stderr, "perfload: wrote %s\n", *out)
}

// saturation ramps (a) and (b) side by side: at each rate of the coarse ramp (start, ×factor, ...)
// each endpoint still ramping runs one step, so both see the same machine. A step passes with
// P99 ≤ 10 ms and errors ≤ 0.1%; a failing step is run once more, and only a second failure ends the
// coarse ramp (one scheduler hiccup in a few seconds is not the endpoint's limit). Then the rate is
// refined by bisection (geometric mean of the highest pass and the lowest confirmed failure) until
// they are within satResolution of each other. The highest passing rate is the sustained rate. A
// ramp that reached max, or ran out of the time budget before a confirmed failure,
// marks the result as a lower bound (Capped).
func saturation(eps []*endpoint, key spv1.Key, method string, body []byte, start int, factor float64, max int,
	step, budget time.Duration, attacker func() *vegeta.Attacker) *result.Saturation {
	run := func(e *endpoint, rate int) result.SatStep {
		var sample stats.Sample
		st := result.SatStep{Phase: e.key, RatePerS: rate}
		fmt.Fprintf(os.Stderr, "perfload: saturation (%s) %d/s for %s\n", e.key, rate, step)
		for r := range attacker().Attack(targeter(e, key, method, body, rate), vegeta.Rate{Freq: rate, Per: time.Second}, step, "sat-"+e.key) {
			st.Requests++
			sample.Add(r.Latency)
			if r.Code < 200 || r.Code >= 300 {
				st.Errors++
			}
		}
		st.P99US = sample.Percentiles().P99
		return st
	}
	sat := ramp(eps, start, factor, max, step, time.Now().Add(budget), run)
	sat.StepS = step.Seconds()
	return sat
}

// ramp drives the saturation ramps of (a) and (b) with run, which measures one step; it sets Pass.
func ramp(eps []*endpoint, start int, factor float64, max int, step time.Duration, deadline time.Time,
	run func(e *endpoint, rate int) result.SatStep) *result.Saturation {
	sat := &result.Saturation{}
	type state struct {
		e          *endpoint
		pass, fail int // highest passing rate; lowest confirmed failing rate (0: none yet)
		done       bool
	}
	var ramps []*state
	for _, e := range eps {
		if e.key == result.PhaseBaseline || e.key == result.PhasePlugin {
			ramps = append(ramps, &state{e: e})
		}
	}
	try := func(e *endpoint, rate int) bool {
		st := run(e, rate)
		st.Pass = st.Requests > 0 && st.P99US <= result.SatMaxP99US && float64(st.Errors) <= result.SatMaxErrorRate*float64(st.Requests)
		sat.Steps = append(sat.Steps, st)
		return st.Pass
	}
	for active := len(ramps); active > 0; {
		for _, r := range ramps {
			if r.done {
				continue
			}
			rate := start
			switch {
			case r.fail == 0 && r.pass > 0:
				rate = int(float64(r.pass)*factor + 0.5)
			case r.fail > 0:
				rate = int(math.Sqrt(float64(r.pass)*float64(r.fail)) + 0.5)
			}
			refined := r.fail > 0 && float64(r.fail) <= float64(r.pass)*satResolution
			if refined || rate > max || rate <= r.pass || !time.Now().Add(2*step).Before(deadline) {
				r.done, active = true, active-1
				sat.Capped = sat.Capped || r.fail == 0
				continue
			}
			if try(r.e, rate) || try(r.e, rate) {
				r.pass = rate
			} else {
				r.fail = rate
			}
		}
	}
	for _, r := range ramps {
		if r.e.key == result.PhaseBaseline {
			sat.MaxRateA = r.pass
		} else {
			sat.MaxRateB = r.pass
		}
	}
	return sat
}

// satResolution: the refined sustained rate is within this factor of the lowest failing rate.
const satResolution = 1.07

// redisCalls returns how many scripts (EVALSHA, and EVAL after a NOSCRIPT) redis-server at addr has
// run, from INFO commandstats: each is one round trip from filterd. The commands a script runs
// inside Redis (GET, SET, TIME) are counted by Redis too, but are no round trip, so they are left
// out. 0 when addr is empty or unreachable (the figure is then reported as not measured).
func redisCalls(addr string) int64 {
	if addr == "" {
		return 0
	}
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		fmt.Fprintf(os.Stderr, "perfload: warning: redis %s: %v\n", addr, err)
		return 0
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("INFO commandstats\r\n")); err != nil {
		return 0
	}
	r := bufio.NewReader(c)
	head, err := r.ReadString('\n') // $<length>
	if err != nil || !strings.HasPrefix(head, "$") {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(head[1:]))
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0
	}
	var total int64
	for _, l := range strings.Split(string(body), "\n") {
		for _, cmd := range []string{"cmdstat_evalsha:", "cmdstat_eval:"} {
			if rest, ok := strings.CutPrefix(l, cmd); ok {
				if v, ok := strings.CutPrefix(strings.SplitN(rest, ",", 2)[0], "calls="); ok {
					x, _ := strconv.ParseInt(v, 10, 64)
					total += x
				}
			}
		}
	}
	return total
}

// runSegment attacks one endpoint for d and adds the results and the CPU used to its phase.
func runSegment(atk *vegeta.Attacker, e *endpoint, key spv1.Key, method string, body []byte, rate int, pace vegeta.Pacer, d time.Duration, p pids) {
	cpu0 := readCPU(p)
	start := time.Now()
	for r := range atk.Attack(targeter(e, key, method, body, rate), pace, d, e.key) {
		ph := e.phase
		ph.Requests++
		e.sample.Add(r.Latency)
		ph.StatusCodes[fmt.Sprint(r.Code)]++
		if r.Code >= 200 && r.Code < 300 {
			ph.Success++
			continue
		}
		ph.Errors++
		if r.Error != "" {
			k := r.Error
			if len(k) > 60 {
				k = k[:60]
			}
			ph.ErrorKinds[k]++
		}
	}
	wall := time.Since(start).Seconds()
	cpu1 := readCPU(p)
	ph := e.phase
	ph.DurationS += wall
	ph.CPU.AddDelta(cpu0, cpu1)
}

func readCPU(p pids) result.CPU {
	get := func(pid int) float64 {
		v, err := procstat.CPUSeconds(pid)
		if err != nil {
			fmt.Fprintf(os.Stderr, "perfload: warning: pid %d: %v\n", pid, err)
		}
		return v
	}
	c := result.CPU{FilterdS: get(p.filterd), GatewayS: get(p.gateway), BackendS: get(p.backend), DriverS: get(os.Getpid())}
	switches := func(pid int) (int64, int64) {
		s, n, err := procstat.Switches(pid)
		if err != nil {
			fmt.Fprintf(os.Stderr, "perfload: warning: pid %d: %v\n", pid, err)
		}
		return s, n
	}
	c.GatewaySleeps, c.GatewayPreemptions = switches(p.gateway)
	c.FilterdSleeps, c.FilterdPreemptions = switches(p.filterd)
	if p.filterdRedis != 0 {
		c.FilterdRedisS, c.RedisS = get(p.filterdRedis), get(p.redis)
	}
	return c
}

// targeter hands out requests signed ahead of time by a pump goroutine. The pump stays at most
// rate/10 requests (≈100 ms) ahead, so every X-Timestamp is well inside the ±300 s skew window and
// every nonce is used once. The pump stops when the attack stops asking (after a short grace).
func targeter(e *endpoint, key spv1.Key, method string, body []byte, rate int) vegeta.Targeter {
	ahead := rate / 10
	if ahead < 8 {
		ahead = 8
	}
	ch := make(chan vegeta.Target, ahead)
	done := make(chan struct{})
	path := e.url.EscapedPath()
	go func() {
		for {
			h := http.Header{}
			h.Set("Content-Type", "application/json")
			h.Set("X-Request-Id", spv1.NewNonce())
			key.Sign(h, method, path, e.query, body, time.Now())
			select {
			case ch <- vegeta.Target{Method: method, URL: e.url.String(), Body: body, Header: h}:
			case <-done:
				return
			case <-time.After(5 * time.Second): // attack over
				return
			}
		}
	}()
	return func(t *vegeta.Target) error {
		select {
		case *t = <-ch:
			return nil
		case <-time.After(5 * time.Second):
			close(done)
			return fmt.Errorf("perfload: target pump stalled")
		}
	}
}

// makeBody returns a JSON object of exactly n bytes (at least 32).
func makeBody(n int) []byte {
	head := `{"amount":12500,"currency":"PKR","pad":"`
	tail := `"}`
	if n < len(head)+len(tail) {
		n = len(head) + len(tail)
	}
	return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
}

func machine() result.Machine {
	m := result.Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	m.Hostname, _ = os.Hostname()
	m.LoadAvgStart = loadavg()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				m.CPUModel = strings.TrimSpace(l[strings.IndexByte(l, ':')+1:])
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		fmt.Sscanf(strings.TrimPrefix(strings.Split(string(b), "\n")[0], "MemTotal:"), "%f", &kb)
		m.MemGiB = kb / (1 << 20)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "PRETTY_NAME=") {
				m.OS = strings.Trim(strings.TrimPrefix(l, "PRETTY_NAME="), `"`)
			}
		}
	}
	return m
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// stealMS is the CPU time the hypervisor has taken from this machine since boot (all CPUs, in
// milliseconds), from /proc/stat; -1 when it is not reported.
func stealMS() float64 {
	b, _ := os.ReadFile("/proc/stat")
	return parseSteal(string(b))
}

// parseSteal reads the steal column (the 8th after "cpu", in USER_HZ = 100 ticks per second).
func parseSteal(stat string) float64 {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return -1
	}
	ticks, err := strconv.ParseFloat(f[8], 64)
	if err != nil {
		return -1
	}
	return ticks * 10
}

func must(err error) {
	if err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "perfload:", msg)
	os.Exit(2)
}
