package e2e

// Two gateway replicas (gateway + plugin + filterd each) sharing one Redis for nonces and rate
// limits: the multi-replica replay test through HTTP.

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
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

// replicaPair is one pod: filterd with Redis-backed nonces and rate limits, and the gateway with the
// plugin, on their own directory and socket.
type replicaPair struct {
	s *stack
}

func startReplica(t *testing.T, redisAddr, secret string) *replicaPair {
	t.Helper()
	b := binaries(t)
	need(t, b.plugin, b.harness, b.backend, b.filterd)
	s := &stack{dir: tmpDir(t)}
	s.socket = filepath.Join(s.dir, "filterd.sock")
	s.secretFile = filepath.Join(s.dir, "acme-k1.secret")
	if err := os.WriteFile(s.secretFile, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	s.be = startBackend(t, s.dir)
	redis := map[string]interface{}{"address": redisAddr, "timeout_ms": 100}
	s.fd = startFilterd(t, s.dir, s.socket, filterdConfig(s.socket,
		map[string]interface{}{
			"merchant-auth": map[string]interface{}{
				"store": "redis", "redis": redis,
				"merchants": map[string]interface{}{
					merchant: map[string]interface{}{"status": "active", "keys": []interface{}{
						map[string]interface{}{"id": keyID, "alg": "hmac-sha256", "secret": map[string]interface{}{"file": s.secretFile}, "state": "active"},
					}},
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
		}))
	s.g = startHarness(t, s.dir, gatewayConfig(b.pluginDir, []interface{}{
		// 4.5 ms (just below the bridge's 5 ms limit): room for one Redis round trip on a loaded machine.
		endpoint("/v1/pay", "POST", s.be.addr, bridge(s.socket, "pay", []string{"merchant-auth", "rate-limit"},
			map[string]interface{}{"deadline": "4500us"})),
		probeEndpoint(s.socket, "open"),
	}, nil))
	s.waitReady(t)
	return &replicaPair{s: s}
}

// replayed sends a request that another replica already accepted, retrying only on a 503 (a busy
// test machine can miss the bridge's deadline). A retry cannot turn a replay into an allow: the nonce
// is recorded.
func (p *replicaPair) replayed(t *testing.T, h map[string]string, body []byte) reply {
	t.Helper()
	var r reply
	for i := 0; i < 20; i++ {
		r = p.s.g.do(t, "POST", "/v1/pay", h, body)
		if r.status != 503 {
			return r
		}
		time.Sleep(10 * time.Millisecond)
	}
	return r
}

func TestRedisTwoReplicasReplayThroughHTTP(t *testing.T) {
	dir := tmpDir(t)
	redisAddr := startRedis(t, dir)
	secret := "e2e-test-only-secret-0123456789abcdef"
	a := startReplica(t, redisAddr, secret)
	b := startReplica(t, redisAddr, secret)
	body := []byte(`{"amount":"10.00","currency":"PKR"}`)
	allowed := 0

	// Signed once, accepted by replica A, then replayed on replica B: 200 then 401. A request that
	// missed the bridge's deadline (503) may still have used its nonce, so A gets a freshly signed
	// request until one is accepted.
	var h map[string]string
	for i := 0; i < 20; i++ {
		h = a.s.sign(t, "POST", "/v1/pay", body)
		r := a.s.g.do(t, "POST", "/v1/pay", h, body)
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
	if r := b.replayed(t, h, body); r.status != 401 {
		t.Fatalf("replay on replica B: %d %s, want 401", r.status, r.body)
	}

	// The same request sent to both at once: never two allows. A round where neither side missed
	// its deadline (503) must be exactly one 200 and one 401.
	clean := 0
	for i := 0; i < 50; i++ {
		h := a.s.sign(t, "POST", "/v1/pay", body)
		var wg sync.WaitGroup
		var ra, rb reply
		wg.Add(2)
		go func() { defer wg.Done(); ra = a.s.g.do(t, "POST", "/v1/pay", h, body) }()
		go func() { defer wg.Done(); rb = b.s.g.do(t, "POST", "/v1/pay", h, body) }()
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
	got := a.s.be.counts(t).ByPath["/v1/pay"] + b.s.be.counts(t).ByPath["/v1/pay"]
	if got != int64(allowed) {
		t.Fatalf("backends received %d payment(s), but %d were allowed", got, allowed)
	}
}
