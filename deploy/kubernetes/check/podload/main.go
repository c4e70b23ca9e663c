// podload drives the gateway pod in the container tests (scripts/test-pod.sh). It runs in the pod's
// network namespace (nsenter), so it talks to the gateway on 127.0.0.1 like a sidecar would.
//
//	podload once -kind signed|unsigned [-i N] [-save F | -replay F]
//	                                       one POST /v1/payments; prints the status; exit 0. -save keeps
//	                                       the signed headers, -replay sends them again (a replay).
//	podload ready                          one GET /__filterd/ready; prints the status
//	podload load -rate 200 -duration 20s -signed-share 0.5 -kill-pid PID -kill-at 8s -out FILE
//	        open-loop load, a mix of signed and unsigned requests; at kill-at it SIGKILLs PID
//	        (filterd, by its host PID) and keeps polling GET /__filterd/ready every 20 ms; writes
//	        every request and readiness sample as JSON to FILE for the analysis (podload analyse).
//	podload analyse -in FILE -restarted-at RFC3339NANO -backend-total N
//	        checks and prints the figures of the crash-under-load test; exit 1 on any failure.
//
// Signed requests carry SPV1 hmac-sha256 headers (docs/filters/merchant-auth.md), made by the
// project's Go signer (tools/spv1) with a fresh nonce each; the key is read from -key-file. Each
// request is tagged in its query (k=s|u, i=N) so the demo backend's echo proves which requests
// reached it.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"filterd.local/tools/spv1"
)

// Record is one request of the load run.
type Record struct {
	I       int     `json:"i"`
	Signed  bool    `json:"signed"`
	SentNS  int64   `json:"sent_ns"` // wall clock, Unix ns
	LatUS   float64 `json:"lat_us"`
	Status  int     `json:"status"` // 0 = transport error
	EchoTag string  `json:"echo_tag,omitempty"`
	Err     string  `json:"err,omitempty"`
}

// Sample is one readiness poll.
type Sample struct {
	AtNS   int64 `json:"at_ns"`
	Status int   `json:"status"`
}

type Run struct {
	Rate      int      `json:"rate"`
	StartNS   int64    `json:"start_ns"`
	KillNS    int64    `json:"kill_ns"`
	Records   []Record `json:"records"`
	Readiness []Sample `json:"readiness"`
}

const paymentsPath = "/v1/payments"

var body = []byte(`{"amount":"100.00","currency":"PKR","order_id":"pod-test"}`)

func newClient() *http.Client {
	return &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: 30 * time.Second,
			DisableCompression: true,
		},
	}
}

func doPayment(c *http.Client, base string, key spv1.Key, i int, signed bool, save, replay string) Record {
	kind := "u"
	if signed {
		kind = "s"
	}
	q := []spv1.Pair{{Name: "k", Value: kind}, {Name: "i", Value: strconv.Itoa(i)}}
	req, _ := http.NewRequest(http.MethodPost, base+paymentsPath+"?k="+kind+"&i="+strconv.Itoa(i), bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	switch {
	case replay != "":
		b, err := os.ReadFile(replay)
		if err == nil {
			err = json.Unmarshal(b, &req.Header)
		}
		if err != nil {
			return Record{I: i, Err: err.Error()}
		}
	case signed:
		key.Sign(req.Header, http.MethodPost, paymentsPath, q, body, time.Now())
		if save != "" {
			b, _ := json.Marshal(req.Header)
			if err := os.WriteFile(save, b, 0o600); err != nil {
				return Record{I: i, Err: err.Error()}
			}
		}
	}
	r := Record{I: i, Signed: signed}
	t0 := time.Now()
	r.SentNS = t0.UnixNano()
	resp, err := c.Do(req)
	if err != nil {
		r.LatUS = float64(time.Since(t0).Microseconds())
		r.Err = err.Error()
		return r
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	r.LatUS = float64(time.Since(t0).Nanoseconds()) / 1e3
	r.Status = resp.StatusCode
	if resp.StatusCode == 200 {
		var echo struct {
			RawQuery string `json:"raw_query"`
		}
		if json.Unmarshal(b, &echo) == nil {
			r.EchoTag = echo.RawQuery
		}
	}
	return r
}

func getStatus(c *http.Client, url string) int {
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: podload once|ready|load|analyse [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	base := fs.String("url", "http://127.0.0.1:8080", "gateway base URL")
	keyFile := fs.String("key-file", "", "merchant key file (its exact bytes, as filterd reads them)")
	merchant := fs.String("merchant", "demo-merchant", "merchant id")
	keyID := fs.String("key-id", "k1", "key id")
	kind := fs.String("kind", "signed", "once: signed or unsigned")
	index := fs.Int("i", 0, "once: the request's tag i=N")
	save := fs.String("save", "", "once: save the signed request's headers to this file")
	replay := fs.String("replay", "", "once: send the headers saved in this file instead of signing anew")
	rate := fs.Int("rate", 200, "load: requests per second")
	duration := fs.Duration("duration", 20*time.Second, "load: duration")
	share := fs.Float64("signed-share", 0.5, "load: share of signed requests")
	killPID := fs.Int("kill-pid", 0, "load: host PID to SIGKILL (filterd)")
	killAt := fs.Duration("kill-at", 8*time.Second, "load: when to SIGKILL")
	out := fs.String("out", "", "load: JSON output; analyse: input")
	in := fs.String("in", "", "analyse: JSON input")
	restartedAt := fs.String("restarted-at", "", "analyse: filterd's new container start time (RFC 3339)")
	backendTotal := fs.Int("backend-total", -1, "analyse: requests the backend counted")
	maxDenyMS := fs.Float64("max-deny-ms", 5, "analyse: bound for each denial in the gap")
	_ = fs.Parse(os.Args[2:])

	var key spv1.Key // the zero value: no key file given, unsigned requests only
	if *keyFile != "" {
		// filterd strips one trailing newline (and CR) from a key file; sign with what it uses.
		k, err := spv1.ReadSecretFile(*keyFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "podload:", err)
			os.Exit(2)
		}
		key = spv1.Key{MerchantID: *merchant, KeyID: *keyID, Secret: k}
	}
	c := newClient()
	switch os.Args[1] {
	case "once":
		r := doPayment(c, *base, key, *index, *kind == "signed", *save, *replay)
		fmt.Println(r.Status)
	case "ready":
		fmt.Println(getStatus(c, *base+"/__filterd/ready"))
	case "load":
		run := load(c, *base, key, *rate, *duration, *share, *killPID, *killAt)
		b, _ := json.Marshal(run)
		if err := os.WriteFile(*out, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "podload:", err)
			os.Exit(2)
		}
		fmt.Printf("podload: %d requests, %d readiness samples -> %s\n", len(run.Records), len(run.Readiness), *out)
	case "analyse":
		os.Exit(analyse(*in, *restartedAt, *backendTotal, *maxDenyMS))
	default:
		fmt.Fprintln(os.Stderr, "podload: unknown command", os.Args[1])
		os.Exit(2)
	}
}

func load(c *http.Client, base string, key spv1.Key, rate int, d time.Duration, share float64, pid int, killAt time.Duration) Run {
	run := Run{Rate: rate}
	n := int(float64(rate) * d.Seconds())
	recs := make([]Record, n)
	var wg sync.WaitGroup
	stopReady := make(chan struct{})
	var readyMu sync.Mutex
	go func() { // readiness, as the kubelet would see it, every 20 ms
		rc := newClient()
		rc.Timeout = time.Second
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopReady:
				return
			case <-t.C:
				st := getStatus(rc, base+"/__filterd/ready")
				readyMu.Lock()
				run.Readiness = append(run.Readiness, Sample{time.Now().UnixNano(), st})
				readyMu.Unlock()
			}
		}
	}()
	start := time.Now()
	run.StartNS = start.UnixNano()
	interval := time.Second / time.Duration(rate)
	killed := pid == 0
	// Deterministic mix: request i is signed when floor((i+1)*share) > floor(i*share).
	for i := 0; i < n; i++ {
		due := start.Add(time.Duration(i) * interval)
		if !killed && time.Since(start) >= killAt {
			run.KillNS = time.Now().UnixNano()
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				fmt.Fprintln(os.Stderr, "podload: kill:", err)
			}
			killed = true
		}
		if w := time.Until(due); w > 0 {
			time.Sleep(w)
		}
		signed := int(float64(i+1)*share) > int(float64(i)*share)
		wg.Add(1)
		go func(i int, signed bool) {
			defer wg.Done()
			recs[i] = doPayment(c, base, key, i, signed, "", "")
		}(i, signed)
	}
	wg.Wait()
	time.Sleep(100 * time.Millisecond)
	close(stopReady)
	readyMu.Lock()
	defer readyMu.Unlock()
	run.Records = recs
	return run
}
