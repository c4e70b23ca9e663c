package e2e

// The product's protections against KrakenD CE's fail-open, and KrakenD CE's own behaviour that the
// product must live with (deny responses, logs), tested on the harness that behaves like KrakenD CE.

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// checkLog runs scripts/check-gateway-log.sh on a gateway's log and config.
func checkLog(t *testing.T, g *gateway, cfgPath string) (int, string) {
	t.Helper()
	out, err := exec.Command("bash", filepath.Join(repoRoot(t), "scripts", "check-gateway-log.sh"), g.log, cfgPath).CombinedOutput()
	return exitCode(t, err), string(out)
}

// lintConfig runs gateway-lint on a config written to dir.
func lintConfig(t *testing.T, dir string, cfg map[string]interface{}) (int, string) {
	t.Helper()
	lint := filepath.Join(filepath.Dir(binaries(t).harness), "gateway-lint")
	need(t, lint)
	p := filepath.Join(dir, "lint.json")
	writeJSON(t, p, cfg)
	out, err := exec.Command(lint, p).CombinedOutput()
	return exitCode(t, err), string(out)
}

func waitProbe(t *testing.T, g *gateway, want int) reply {
	t.Helper()
	deadline := time.Now().Add(startWait)
	var r reply
	for time.Now().Before(deadline) {
		if r = g.do(t, "GET", "/__filterd/ready", nil, nil); r.status == want {
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("/__filterd/ready: %d %s, want %d", r.status, r.body, want)
	return r
}

// The readiness probe is 200 only when the plugin loaded, filterd answers and allows the probe;
// in each of the three failure states it is not 200, for the whole observation window.
func TestProbeReadinessOnlyWhenTheBridgeWorks(t *testing.T) {
	s := newStack(t, true)
	r := waitProbe(t, s.g, 200)
	if string(r.body) != `{"status":"ready"}` {
		t.Errorf("probe body %q", r.body)
	}
	b := binaries(t)
	stays := func(t *testing.T, g *gateway, want int) {
		t.Helper()
		for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if r := g.do(t, "GET", "/__filterd/ready", nil, nil); r.status != want {
				t.Fatalf("/__filterd/ready: %d %s, want %d throughout", r.status, r.body, want)
			}
		}
	}
	t.Run("plugin did not load", func(t *testing.T) {
		dir := tmpDir(t) // an empty plugin folder: KrakenD loads nothing and forwards to the unreachable backend
		g := startHarness(t, dir, gatewayConfig(dir, []interface{}{probeEndpoint(s.socket, "open")}, nil))
		stays(t, g, 500)
	})
	t.Run("filterd does not answer", func(t *testing.T) {
		dir := tmpDir(t)
		g := startHarness(t, dir, gatewayConfig(b.pluginDir, []interface{}{probeEndpoint(filepath.Join(dir, "none.sock"), "open")}, nil))
		stays(t, g, 503)
	})
	t.Run("filterd denies the probe", func(t *testing.T) {
		dir := tmpDir(t)
		probe := probeEndpoint(s.socket, "pay")
		probe["extra_config"] = bridge(s.socket, "pay", []string{"merchant-auth", "rate-limit", "enrichment"},
			map[string]interface{}{"mode": "probe", "max_body_bytes": nil})
		g := startHarness(t, dir, gatewayConfig(b.pluginDir, []interface{}{probe}, nil))
		stays(t, g, 401) // merchant-auth denies the unsigned probe
	})
}

// Each config mistake that makes KrakenD CE serve an endpoint unfiltered is caught before deploy by
// gateway-lint (exit 1, the JSON path) and after start by the start-up log check, and really does
// fail open in a KrakenD-faithful gateway (which is why both exist).
func TestLintAndStartupCheckCatchFailOpenConfigs(t *testing.T) {
	b := binaries(t)
	need(t, b.plugin, b.filterd)
	dir := tmpDir(t)
	socket := filepath.Join(dir, "fd.sock")
	startFilterd(t, dir, socket, filterdConfig(socket, nil, map[string]interface{}{"open": map[string]interface{}{}, "pay": map[string]interface{}{}}))
	be := startBackend(t, dir)
	cases := map[string]func(block map[string]interface{}){
		"name is a string":      func(b map[string]interface{}) { b["name"] = "simpaisa/filter-bridge" },
		"misspelt name":         func(b map[string]interface{}) { b["name"] = []interface{}{"simpaisa/filter_bridge"} },
		"settings without name": func(b map[string]interface{}) { b["name"] = []interface{}{"simpaisa/other"} },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			d := tmpDir(t)
			pay := endpoint("/v1/pay", "POST", be.addr, bridge(socket, "pay", []string{}, nil))
			mutate(pay["extra_config"].(map[string]interface{})["plugin/req-resp-modifier"].(map[string]interface{}))
			cfg := gatewayConfig(b.pluginDir, []interface{}{pay, probeEndpoint(socket, "open")}, nil)
			if code, out := lintConfig(t, d, cfg); code != 1 || !strings.Contains(out, `$.endpoints[0].extra_config["plugin/req-resp-modifier"].name`) {
				t.Errorf("gateway-lint: exit %d, want 1 naming the endpoint's name:\n%s", code, out)
			}
			g := startHarness(t, d, cfg)
			waitProbe(t, g, 200) // the probe endpoint is fine: readiness alone cannot see this
			before := be.counts(t).ByPath["/v1/pay"]
			if r := g.do(t, "POST", "/v1/pay", nil, []byte("{}")); r.status != 200 || be.counts(t).ByPath["/v1/pay"] != before+1 {
				t.Fatalf("unsigned POST: %d; KrakenD CE serves this endpoint unfiltered", r.status)
			}
			code, out := checkLog(t, g, filepath.Join(d, "gateway.json"))
			if code != 1 || !strings.Contains(out, "MISSING route pay") || strings.Contains(out, "MISSING '") {
				t.Errorf("check-gateway-log: exit %d, want 1 naming route pay only:\n%s", code, out)
			}
		})
	}
	t.Run("healthy gateway passes", func(t *testing.T) {
		d := tmpDir(t)
		cfg := gatewayConfig(b.pluginDir, []interface{}{
			endpoint("/v1/pay", "POST", be.addr, bridge(socket, "pay", []string{}, nil)), probeEndpoint(socket, "open")}, nil)
		if code, out := lintConfig(t, d, cfg); code != 0 {
			t.Errorf("gateway-lint on a good config: exit %d\n%s", code, out)
		}
		g := startHarness(t, d, cfg)
		waitProbe(t, g, 200)
		if code, out := checkLog(t, g, filepath.Join(d, "gateway.json")); code != 0 {
			t.Errorf("check-gateway-log on a healthy gateway: exit %d\n%s", code, out)
		}
	})
	t.Run("plugin did not load", func(t *testing.T) {
		d := tmpDir(t)
		g := startHarness(t, d, gatewayConfig(d, []interface{}{
			endpoint("/v1/pay", "POST", be.addr, bridge(socket, "pay", []string{}, nil)), probeEndpoint(socket, "open")}, nil))
		code, out := checkLog(t, g, filepath.Join(d, "gateway.json"))
		if code != 1 || !strings.Contains(out, "the plugin did not load") {
			t.Errorf("check-gateway-log without the plugin: exit %d\n%s", code, out)
		}
	})
}

// A deny reaches the client exactly as KrakenD CE returns a plugin's error: the status and headers
// the daemon chose, KrakenD's X-Krakend headers, and the body only with return_error_msg.
func TestDenyResponseAsKrakenDReturnsIt(t *testing.T) {
	s := newStack(t, true)
	r := s.settle(t, "POST", "/v1/pay", nil, []byte("{}"))
	if r.status != 401 {
		t.Fatalf("unsigned: %d", r.status)
	}
	want := map[string]string{"X-Krakend": "Version 2.12.1", "X-Krakend-Completed": "false", "Www-Authenticate": "SPV1"}
	for k, v := range want {
		if got := r.header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") || !strings.Contains(string(r.body), `"status":401`) {
		t.Errorf("Content-Type %q body %q", ct, r.body)
	}

	cfg := s.gatewayConfig(binaries(t).pluginDir)
	cfg["extra_config"].(map[string]interface{})["router"] = map[string]interface{}{"return_error_msg": false, "disable_access_log": true, "forwarded_by_client_ip": false}
	g := startHarness(t, tmpDir(t), cfg)
	waitProbe(t, g, 200)
	var q reply
	for i := 0; i < 20; i++ {
		if q = g.do(t, "POST", "/v1/pay", nil, []byte("{}")); q.status != 503 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if q.status != 401 || len(q.body) != 0 || q.header.Get("Www-Authenticate") != "SPV1" || q.header.Get("X-Krakend") != "Version 2.12.1" {
		t.Fatalf("return_error_msg off: %d %q %v; want 401, empty body, same headers", q.status, q.body, q.header)
	}
}

// No card number and no e-mail address, sent in the path, the query, a header and the body of
// allowed and denied requests, appears in any log of the stack (gateway, filterd, backend), with the
// shipped logging and router settings.
func TestNoCardDataInAnyLog(t *testing.T) {
	s := newStack(t, true)
	const pan, email = "4111111111111111", "jane.doe@example.com"
	b := binaries(t)
	cfg := s.gatewayConfig(b.pluginDir)
	eps := cfg["endpoints"].([]interface{})
	eps = append(eps, endpoint("/v1/merchants/{merchant}/payouts", "GET", s.be.addr, bridge(s.socket, "open", []string{}, nil)))
	cfg["endpoints"] = eps
	g := startHarness(t, tmpDir(t), cfg)
	waitProbe(t, g, 200)
	hdr := map[string]string{"X-Card": pan, "X-Email": email}
	body := []byte(fmt.Sprintf(`{"pan":"%s","email":"%s"}`, pan, email))
	query := "?pan=" + pan + "&email=" + strings.Replace(email, "@", "%40", 1)
	for i := 0; i < 3; i++ {
		g.do(t, "GET", "/v1/merchants/"+pan+"/payouts"+query, hdr, nil)   // allowed: reaches the backend
		g.do(t, "GET", "/v1/merchants/"+email+"/payouts"+query, hdr, nil) // allowed
		g.do(t, "POST", "/v1/pay"+query, hdr, body)                       // denied: no signature
		g.do(t, "GET", "/v1/limited"+query, hdr, nil)                     // allowed, then rate limited
		g.do(t, "GET", "/v1/nowhere/"+pan+query, hdr, nil)                // 404
	}
	time.Sleep(200 * time.Millisecond)
	mask := regexp.MustCompile(`4111[-_. ]?1111[-_. ]?1111[-_. ]?1111`)
	for name, p := range map[string]*proc{"gateway": g.proc, "filterd": s.fd.proc, "backend": s.be.proc} {
		text := p.logText()
		if mask.MatchString(text) || strings.Contains(text, email) || strings.Contains(text, "jane.doe") {
			t.Errorf("%s log carries card data or the e-mail address:\n%s", name, text)
		}
	}
}

// A flood of denials costs KrakenD exactly one ERROR line per deny (documented; KrakenD CE cannot
// change it), but the plugin and filterd each log it as a few summary lines, not one per request.
func TestDenyFloodIsSummarised(t *testing.T) {
	s := newStack(t, true)
	before := len(pluginLines(s.g.logText()))
	fdBefore := strings.Count(s.fd.logText(), `"request denied"`)
	const n = 300
	denied := 0
	for i := 0; i < n; i++ {
		if r := s.g.do(t, "POST", "/v1/pay", nil, []byte("{}")); r.status == 401 {
			denied++
		}
	}
	time.Sleep(1100 * time.Millisecond)
	if r := s.settle(t, "POST", "/v1/pay", nil, []byte("{}")); r.status == 401 {
		denied++
	}
	time.Sleep(100 * time.Millisecond)
	if denied < n/2 {
		t.Fatalf("only %d of %d unsigned requests were denied with 401", denied, n+1)
	}
	gw := s.g.logText()
	if got := strings.Count(gw, "[ENDPOINT: /v1/pay]"); got < denied {
		t.Errorf("KrakenD ERROR lines for /v1/pay: %d, want one per deny (%d), as documented", got, denied)
	}
	if got := len(pluginLines(gw)) - before; got > 10 {
		t.Errorf("the plugin wrote %d lines for %d denials; want a few summaries", got, denied)
	}
	fd := s.fd.logText()
	if got := strings.Count(fd, `"request denied"`) - fdBefore; got > 5 || got < 1 {
		t.Errorf("filterd wrote %d deny lines for %d denials; want between 1 and 5", got, denied)
	}
	if !regexp.MustCompile(`"denials_not_logged":[1-9]`).MatchString(fd) {
		t.Errorf("no filterd deny line reports the denials it did not log:\n%s", tail(fd, 2000))
	}
}

func pluginLines(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "[PLUGIN: simpaisa/filter-bridge]") && !strings.Contains(l, "endpoint configured") && !strings.Contains(l, "loaded:") {
			out = append(out, l)
		}
	}
	return out
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
