package e2e

// Two gateway replicas (gateway + plugin + filterd each) sharing one Redis for nonces and rate
// limits: the multi-replica replay test through HTTP.

import (
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// startRedis starts a redis-server on a free loopback port (persistence off) and waits for PING.
func startRedis(t *testing.T, dir string) string {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server missing (scripts/install-deps.sh installs it): %v", err)
	}
	port := freePort(t)
	p := start(t, "redis-server", dir, "redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(startWait)
	for time.Now().Before(deadline) {
		if out, err := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "PING").Output(); err == nil &&
			string(out) == "PONG\n" {
			return addr
		}
		if !p.alive() {
			t.Fatalf("redis-server exited:\n%s", p.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("redis-server did not answer PING within %v", startWait)
	return ""
}

// startReplica starts one pod: filterd with Redis-backed nonces and rate limits, and the gateway
// with the plugin, on their own directory and socket. Replicas share the merchant key (e2eSecret).
func startReplica(t *testing.T, redisAddr string) *stack {
	t.Helper()
	return startStack(t, stackSpec{
		daemon: func(s *stack) map[string]interface{} {
			redis := map[string]interface{}{"address": redisAddr, "timeout_ms": 100}
			return filterdConfig(s.socket,
				map[string]interface{}{
					"merchant-auth": map[string]interface{}{
						"store": "redis", "redis": redis,
						"merchants": map[string]interface{}{
							merchant: map[string]interface{}{"status": "active", "keys": s.keys()},
						},
					},
					"rate-limit": map[string]interface{}{
						"store": "redis", "redis": redis,
						"policies": map[string]interface{}{
							"pay": map[string]interface{}{"quota": 100000, "window_ms": 1000, "burst": 100000, "key": "merchant_id"},
						}},
				},
				map[string]interface{}{
					"open": map[string]interface{}{},
					"pay":  map[string]interface{}{"merchant-auth": nil, "rate-limit": map[string]interface{}{"policies": []string{"pay"}}},
				})
		},
		endpoints: func(s *stack) []interface{} {
			return []interface{}{
				// 4.5 ms (just below the bridge's 5 ms limit): room for one Redis round trip on a loaded machine.
				endpoint("/v1/pay", "POST", s.be.addr, bridge(s.socket, "pay", []string{"merchant-auth", "rate-limit"},
					map[string]interface{}{"deadline": "4500us"})),
				probeEndpoint(s.socket, "open"),
			}
		},
	})
}

func TestRedisTwoReplicasReplayThroughHTTP(t *testing.T) {
	dir := tmpDir(t)
	redisAddr := startRedis(t, dir)
	a := startReplica(t, redisAddr)
	b := startReplica(t, redisAddr)
	body := []byte(`{"amount":"10.00","currency":"PKR"}`)
	allowed := 0

	// Signed once, accepted by replica A, then replayed on replica B: 200 then 401. A request that
	// missed the bridge's deadline (503) may still have used its nonce, so A gets a freshly signed
	// request until one is accepted.
	var h map[string]string
	for i := 0; i < 20; i++ {
		h = a.sign(t, "POST", "/v1/pay", body)
		r := a.g.do(t, "POST", "/v1/pay", h, body)
		if r.status == 200 {
			allowed++
			break
		}
		if r.status != 503 {
			t.Fatalf("replica A: %d %s, want 200", r.status, r.body)
		}
	}
	if allowed != 1 {
		t.Fatal("replica A never accepted a signed request")
	}
	// Retried only on a 503 (a busy test machine can miss the bridge's deadline): a retry cannot turn
	// a replay into an allow, the nonce is recorded.
	if r := b.settle(t, "POST", "/v1/pay", fixed(h), body); r.status != 401 {
		t.Fatalf("replay on replica B: %d %s, want 401", r.status, r.body)
	}

	// The same request sent to both at once: never two allows. A round where neither side missed
	// its deadline (503) must be exactly one 200 and one 401.
	clean := 0
	for i := 0; i < 50; i++ {
		h := a.sign(t, "POST", "/v1/pay", body)
		var wg sync.WaitGroup
		var ra, rb reply
		wg.Add(2)
		go func() { defer wg.Done(); ra = a.g.do(t, "POST", "/v1/pay", h, body) }()
		go func() { defer wg.Done(); rb = b.g.do(t, "POST", "/v1/pay", h, body) }()
		wg.Wait()
		if ra.status == 200 && rb.status == 200 {
			t.Fatalf("round %d: both replicas accepted the same signed request", i)
		}
		for _, r := range []reply{ra, rb} {
			if r.status == 200 {
				allowed++
			} else if r.status != 401 && r.status != 503 {
				t.Fatalf("round %d: status %d %s", i, r.status, r.body)
			}
		}
		if ra.status != 503 && rb.status != 503 {
			clean++
			if !((ra.status == 200 && rb.status == 401) || (ra.status == 401 && rb.status == 200)) {
				t.Fatalf("round %d: replica A %d, replica B %d; want exactly one 200 and one 401", i, ra.status, rb.status)
			}
		}
	}
	if clean < 25 {
		t.Fatalf("only %d of 50 rounds ended within the bridge's deadline on both replicas: the machine is too busy for this test", clean)
	}
	// The backends saw exactly the allowed requests.
	got := a.be.counts(t).ByPath["/v1/pay"] + b.be.counts(t).ByPath["/v1/pay"]
	if got != int64(allowed) {
		t.Fatalf("backends received %d payment(s), but %d were allowed", got, allowed)
	}
}
