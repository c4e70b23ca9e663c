package e2e

// Security behaviour through the whole stack (real gateway harness, real plugin, real filterd, demo
// backend): the documented merchant path parameter, encoded paths, and trusted-header smuggling.

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// secStack is a stack with the routes these tests need.
type secStack struct {
	dir, socket, secretFile string
	be                      *backend
	g                       *gateway
}

func newSecStack(t *testing.T) *secStack {
	t.Helper()
	b := binaries(t)
	need(t, b.plugin, b.harness, b.backend, b.filterd)
	s := &secStack{dir: tmpDir(t)}
	s.socket = filepath.Join(s.dir, "filterd.sock")
	s.secretFile = filepath.Join(s.dir, "acme-k1.secret")
	if err := os.WriteFile(s.secretFile, []byte("e2e-test-only-secret-0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.be = startBackend(t, s.dir)
	key := func() []interface{} {
		return []interface{}{map[string]interface{}{"id": keyID, "alg": "hmac-sha256",
			"secret": map[string]interface{}{"file": s.secretFile}, "state": "active"}}
	}
	startFilterd(t, s.dir, s.socket, filterdConfig(s.socket,
		map[string]interface{}{
			"merchant-auth": map[string]interface{}{"merchants": map[string]interface{}{
				merchant: map[string]interface{}{"status": "active", "keys": key()},
				"globex": map[string]interface{}{"status": "active", "keys": key()},
			}},
			"enrichment": map[string]interface{}{},
		},
		map[string]interface{}{
			"open":     map[string]interface{}{},
			"payouts":  map[string]interface{}{"merchant-auth": map[string]interface{}{"merchant_path_param": "merchant"}},
			"payments": map[string]interface{}{"merchant-auth": nil, "enrichment": nil},
		}))
	a := s.be.addr
	s.g = startHarness(t, s.dir, gatewayConfig(b.pluginDir, []interface{}{
		endpoint("/v1/merchants/{merchant}/payouts", "POST", a, bridge(s.socket, "payouts", []string{"merchant-auth"}, nil)),
		endpoint("/v1/payments", "GET", a, bridge(s.socket, "payments", []string{"merchant-auth", "enrichment"}, nil)),
		probeEndpoint(s.socket, "open"),
	}, nil))
	deadline := time.Now().Add(startWait)
	for s.g.do(t, "GET", "/__filterd/ready", nil, nil).status != 200 {
		if time.Now().After(deadline) {
			t.Fatal("gateway harness never became ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s
}

// send signs signedURL as merchant `as` (with the independent signing tool) and sends sentURL,
// retrying a 503 from a missed deadline on a busy box with a fresh signature each time.
func (s *secStack) send(t *testing.T, method, signedURL, sentURL, as string, extra map[string]string) reply {
	t.Helper()
	var r reply
	for i := 0; i < 20; i++ {
		h := s.sign(t, method, signedURL, as)
		for k, v := range extra {
			h[k] = v
		}
		r = s.g.do(t, method, sentURL, h, nil)
		if r.status != 503 {
			return r
		}
		time.Sleep(10 * time.Millisecond)
	}
	return r
}

func (s *secStack) sign(t *testing.T, method, url, who string) map[string]string {
	t.Helper()
	tool := envOr("E2E_SIGN", filepath.Join(repoRoot(t), "tools", "spv1_sign.py"))
	need(t, tool)
	out, err := exec.Command(tool, "--method", method, "--url", url, "--merchant", who, "--key-id", keyID,
		"--alg", "hmac-sha256", "--secret-file", s.secretFile, "--json").Output()
	if err != nil {
		t.Fatalf("signing tool: %v", err)
	}
	h := map[string]string{}
	if err := json.Unmarshal(out, &h); err != nil || h["X-Signature"] == "" {
		t.Fatalf("signing tool output: %v: %s", err, out)
	}
	return h
}

// The documented config `merchant_path_param: "merchant"` works although lura hands the plugin the
// parameter as "Merchant": the merchant's own path passes, another merchant's path is 403.
func TestSecurityMerchantPathParamThroughGateway(t *testing.T) {
	s := newSecStack(t)
	if r := s.send(t, "POST", "/v1/merchants/acme/payouts", "/v1/merchants/acme/payouts", merchant, nil); r.status != 200 {
		t.Fatalf("own path: status %d, body %s", r.status, r.body)
	}
	if r := s.send(t, "POST", "/v1/merchants/globex/payouts", "/v1/merchants/globex/payouts", merchant, nil); r.status != 403 {
		t.Fatalf("another merchant's path: status %d, want 403", r.status)
	}
	if r := s.send(t, "POST", "/v1/merchants/globex/payouts", "/v1/merchants/globex/payouts", "globex", nil); r.status != 200 {
		t.Fatalf("globex's own path: status %d, body %s", r.status, r.body)
	}
}

// A merchant who signs the raw, percent-encoded path as the docs say is not refused.
func TestSecurityEncodedPathVerifies(t *testing.T) {
	s := newSecStack(t)
	if r := s.send(t, "GET", "/v1/%70ayments", "/v1/%70ayments", merchant, nil); r.status != 200 {
		t.Fatalf("encoded path: status %d, body %s", r.status, r.body)
	}
}

// Trusted headers cannot be smuggled with underscores, nor dropped through Connection.
func TestSecurityTrustedHeaderSmuggling(t *testing.T) {
	s := newSecStack(t)
	r := s.send(t, "GET", "/v1/payments", "/v1/payments", merchant, map[string]string{
		"X_Gw_Merchant_Id": "evil",
		"Connection":       "keep-alive, X-Gw-Merchant-Id, X-Gw-Key-Id",
	})
	if r.status != 200 {
		t.Fatalf("status %d, body %s", r.status, r.body)
	}
	e := r.echo(t)
	t.Logf("backend saw: %v", e.Headers)
	for k, v := range e.Headers {
		if strings.EqualFold(strings.ReplaceAll(k, "_", "-"), "X-Gw-Merchant-Id") && (len(v) != 1 || v[0] != merchant) {
			t.Errorf("backend saw %s: %v; want only the trusted %q", k, v, merchant)
		}
		if strings.EqualFold(k, "Connection") && strings.Contains(strings.ToLower(strings.Join(v, ",")), "x-gw-") {
			t.Errorf("backend saw Connection: %v naming a trusted header", v)
		}
	}
	if got, _ := e.header("X-Gw-Merchant-Id"); got != merchant {
		t.Errorf("X-Gw-Merchant-Id = %q, want %q", got, merchant)
	}
}
