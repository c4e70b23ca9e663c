package e2e

// The gateway harness's own fail-closed behaviour, with the real harness, a real backend and small
// real plugins built by the same toolchain (gateway/testplugins). These need no daemon.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// -test-plugin really loads a .so with lura's loader (our `krakend test-plugin`): exit 0 on a plugin
// that registers modifiers, 1 on one that registers none and on a file that is not a plugin.
func TestHarnessTestPluginFlag(t *testing.T) {
	b := binaries(t)
	need(t, b.harness, filepath.Join(b.testPluginDir, "harness-test-plugins.so"), filepath.Join(b.emptyPluginDir, "empty.so"))
	garbage := filepath.Join(tmpDir(t), "garbage.so")
	if err := os.WriteFile(garbage, []byte("not an ELF shared object"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		so       string
		wantCode int
		wantOut  string
	}{
		{filepath.Join(b.testPluginDir, "harness-test-plugins.so"), 0, "test/allow"},
		{filepath.Join(b.emptyPluginDir, "empty.so"), 1, "registered no modifier"},
		{garbage, 1, "plugin.Open"},
		{filepath.Join(tmpDir(t), "missing.so"), 1, "no such file"},
	}
	for _, c := range cases {
		out, err := exec.Command(b.harness, "-test-plugin", c.so).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s: %v", c.so, err)
		}
		if code != c.wantCode || !strings.Contains(string(out), c.wantOut) {
			t.Errorf("-test-plugin %s: exit %d, output %q; want exit %d and %q", c.so, code, out, c.wantCode, c.wantOut)
		}
	}
}

// Configs that KrakenD CE would serve with an endpoint silently unfiltered are refused at start: the
// harness exits non-zero and never listens.
func TestHarnessRefusesFailOpenConfigs(t *testing.T) {
	b := binaries(t)
	need(t, b.harness, filepath.Join(b.testPluginDir, "harness-test-plugins.so"))
	brokenDir := tmpDir(t)
	if err := os.WriteFile(filepath.Join(brokenDir, "broken.so"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	mod := func(name interface{}) map[string]interface{} {
		return map[string]interface{}{"plugin/req-resp-modifier": map[string]interface{}{"name": name}}
	}
	cases := map[string]struct {
		pluginDir string
		extra     map[string]interface{}
		svcExtra  map[string]interface{}
		wantErr   string
	}{
		"unregistered plugin name": {b.testPluginDir, mod([]interface{}{"test/does-not-exist"}), nil, "is not registered"},
		"name is a string":         {b.testPluginDir, mod("test/allow"), nil, "must be a list"},
		"empty name list":          {b.testPluginDir, mod([]interface{}{}), nil, "must not be empty"},
		"plugin fails to load":     {brokenDir, mod([]interface{}{"test/allow"}), nil, "plugin load"},
		"no plugin folder":         {"", mod([]interface{}{"test/allow"}), nil, `"plugin"`},
		"qos/ratelimit/proxy (not provided by the harness)": {b.testPluginDir,
			map[string]interface{}{"qos/ratelimit/proxy": map[string]interface{}{"max_rate": 10}}, nil, "krakend-ratelimit"},
		"unknown endpoint namespace": {b.testPluginDir,
			map[string]interface{}{"auth/validator": map[string]interface{}{}}, nil, "not implemented"},
		"unknown service namespace": {b.testPluginDir, nil,
			map[string]interface{}{"security/cors": map[string]interface{}{}}, "not implemented"},
		"readiness in shadow mode": {b.testPluginDir, nil,
			map[string]interface{}{"simpaisa/gateway-harness": map[string]interface{}{"readiness": map[string]interface{}{
				"plugin": "test/allow", "settings": map[string]interface{}{"mode": "shadow"}}}}, `must be "enforce"`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := tmpDir(t)
			cfg := gatewayConfig(c.pluginDir, []interface{}{endpoint("/x", "GET", "127.0.0.1:65000", c.extra)}, c.svcExtra)
			p := startHarnessProc(t, dir, cfg)
			if code := p.waitExit(t, startWait); code != 1 {
				t.Fatalf("exit code %d, want 1; log:\n%s", code, p.logText())
			}
			if _, err := os.Stat(filepath.Join(dir, "gateway.addr")); err == nil {
				t.Fatalf("harness wrote a listen address although it refused to start")
			}
			if !strings.Contains(p.logText(), c.wantErr) {
				t.Fatalf("log does not name the problem %q:\n%s", c.wantErr, p.logText())
			}
		})
	}
}

// A plugin factory that returns nil or panics, or a modifier that panics, denies with 503 and the
// harness marker header, and the backend never sees the request. A working plugin on the same
// harness lets requests through and its header change reaches the backend.
func TestHarnessGuardsDenyOnPluginMisbehaviour(t *testing.T) {
	b := binaries(t)
	dir := tmpDir(t)
	be := startBackend(t, dir)
	mod := func(name string) map[string]interface{} {
		return map[string]interface{}{"plugin/req-resp-modifier": map[string]interface{}{"name": []interface{}{name}}}
	}
	cfg := gatewayConfig(b.testPluginDir, []interface{}{
		endpoint("/allow", "GET", be.addr, mod("test/allow")),
		endpoint("/nil", "GET", be.addr, mod("test/nil-factory")),
		endpoint("/panic-factory", "GET", be.addr, mod("test/panic-factory")),
		endpoint("/panic-modifier", "GET", be.addr, mod("test/panic-modifier")),
		endpoint("/baseline", "GET", be.addr, nil),
	}, nil)
	g := startHarness(t, dir, cfg)

	for path, reason := range map[string]string{
		"/nil": "plugin-factory-returned-nil", "/panic-factory": "plugin-factory-panicked", "/panic-modifier": "plugin-modifier-panicked",
	} {
		for i := 0; i < 3; i++ {
			r := g.do(t, "GET", path, nil, nil)
			if r.status != 503 || r.header.Get("X-Harness-Deny") != reason {
				t.Fatalf("%s: status %d, X-Harness-Deny %q; want 503 and %q", path, r.status, r.header.Get("X-Harness-Deny"), reason)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("%s: Content-Type %q", path, ct)
			}
		}
	}
	r := g.do(t, "GET", "/allow", nil, nil)
	if r.status != 200 {
		t.Fatalf("/allow: status %d body %s", r.status, r.body)
	}
	if v, _ := r.echo(t).header("X-Test-Plugin"); v != "allow" {
		t.Fatalf("/allow: backend did not see the plugin's header; echo %s", r.body)
	}
	if r := g.do(t, "GET", "/baseline", nil, nil); r.status != 200 {
		t.Fatalf("/baseline: status %d", r.status)
	}
	c := be.counts(t)
	for _, p := range []string{"/nil", "/panic-factory", "/panic-modifier"} {
		if c.ByPath[p] != 0 {
			t.Errorf("backend received %d request(s) on %s, which the harness had to deny", c.ByPath[p], p)
		}
	}
	if c.ByPath["/allow"] != 1 || c.ByPath["/baseline"] != 1 {
		t.Errorf("backend counts %v, want /allow=1 /baseline=1", c.ByPath)
	}
	if !g.alive() {
		t.Fatalf("harness died: a plugin panic must never crash the gateway")
	}
}

// /__ready answers 503 when no readiness probe is configured: an unconfigured probe must not pass.
func TestHarnessReadinessUnconfiguredFailsClosed(t *testing.T) {
	b := binaries(t)
	dir := tmpDir(t)
	be := startBackend(t, dir)
	g := startHarness(t, dir, gatewayConfig(b.testPluginDir, []interface{}{endpoint("/baseline", "GET", be.addr, nil)}, nil))
	r := g.do(t, "GET", "/__ready", nil, nil)
	if r.status != 503 || !strings.Contains(string(r.body), "readiness-not-configured") {
		t.Fatalf("/__ready: %d %s; want 503 readiness-not-configured", r.status, r.body)
	}
}

// conf/gateway.example.json (what scripts/run-stack.sh serves) parses, its plugin loads, every
// plugin name it uses is registered and its readiness probe is valid: `gateway-harness -check`.
func TestExampleGatewayConfigChecks(t *testing.T) {
	b := binaries(t)
	need(t, b.harness, b.plugin)
	root := repoRoot(t)
	cmd := exec.Command(b.harness, "-check", "-c", filepath.Join(root, "conf", "gateway.example.json"))
	cmd.Dir = root // the example's plugin folder is relative to the repository root
	// The example names out/plugins; make the check use the plugin under test.
	if filepath.Clean(b.pluginDir) != filepath.Join(root, "out", "plugins") {
		t.Skipf("E2E_OUT is not <repo>/out; the example config names out/plugins")
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "[OK]") {
		t.Fatalf("-check conf/gateway.example.json: %v\n%s", err, out)
	}
}

// The harness and a plugin must be built by the same toolchain with the same flags. A plugin built
// without -trimpath (the only flag in GO_BUILD_FLAGS) is caught three ways: -check-plugin names the
// setting, -test-plugin fails to load it, and a harness whose plugin folder holds it refuses to start.
func TestHarnessRefusesPluginBuiltWithOtherFlags(t *testing.T) {
	b := binaries(t)
	need(t, b.harness)
	dir := tmpDir(t)
	so := filepath.Join(dir, "other-flags.so")
	build := exec.Command("go", "build", "-buildmode=plugin", "-o", so, "./testplugins/multi")
	build.Dir = filepath.Join(repoRoot(t), "gateway")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the test plugin without -trimpath: %v\n%s", err, out)
	}
	out, err := exec.Command(b.harness, "-check-plugin", so).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "-trimpath") {
		t.Errorf("-check-plugin accepted a plugin built without -trimpath: %v %s", err, out)
	}
	out, err = exec.Command(b.harness, "-test-plugin", so).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "different version of package") {
		t.Errorf("-test-plugin loaded a plugin built with other flags: %v %s", err, out)
	}
	if out, err := exec.Command(b.harness, "-check-plugin", filepath.Join(b.testPluginDir, "harness-test-plugins.so")).CombinedOutput(); err != nil {
		t.Errorf("-check-plugin refused the test plugin built by build-go.sh: %v %s", err, out)
	}
	cfg := gatewayConfig(dir, []interface{}{endpoint("/x", "GET", "127.0.0.1:65000",
		map[string]interface{}{"plugin/req-resp-modifier": map[string]interface{}{"name": []interface{}{"test/allow"}}})}, nil)
	p := startHarnessProc(t, dir, cfg)
	if code := p.waitExit(t, startWait); code != 1 {
		t.Fatalf("harness with a plugin built with other flags: exit %d, want 1\n%s", code, p.logText())
	}
}

// SIGTERM: the harness stops serving and exits 0, bounded.
func TestHarnessSIGTERMExitsCleanly(t *testing.T) {
	b := binaries(t)
	dir := tmpDir(t)
	be := startBackend(t, dir)
	g := startHarness(t, dir, gatewayConfig(b.testPluginDir, []interface{}{endpoint("/baseline", "GET", be.addr, nil)}, nil))
	if r := g.do(t, "GET", "/baseline", nil, nil); r.status != 200 {
		t.Fatalf("/baseline: %d", r.status)
	}
	if err := g.signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := g.waitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
}

// The access log keeps method, path and status but never the query string (STD-API-034: no PII or
// payment data in logs).
func TestHarnessAccessLogOmitsQueryStrings(t *testing.T) {
	b := binaries(t)
	dir := tmpDir(t)
	be := startBackend(t, dir)
	cfg := gatewayConfig(b.testPluginDir, []interface{}{endpoint("/baseline", "GET", be.addr, nil)}, nil)
	cfg["extra_config"].(map[string]interface{})["router"] = map[string]interface{}{"return_error_msg": true} // access log on
	g := startHarness(t, dir, cfg)
	if r := g.do(t, "GET", "/baseline?msisdn=03001234567&pan=4111111111111111", nil, nil); r.status != 200 {
		t.Fatalf("/baseline: %d", r.status)
	}
	g.signal(syscall.SIGTERM) // flush and stop, so the log is complete
	g.waitExit(t, 10*time.Second)
	log := g.logText()
	if !strings.Contains(log, `"/baseline?<query omitted>"`) {
		t.Fatalf("access log line missing:\n%s", log)
	}
	for _, secret := range []string{"03001234567", "4111111111111111", "msisdn"} {
		if strings.Contains(log, secret) {
			t.Errorf("harness log contains %q:\n%s", secret, log)
		}
	}
}

// qos/ratelimit/router is KrakenD CE's own endpoint rate limiter (krakend-ratelimit v3.1.0, wired the
// way KrakenD CE wires it): the perf suite's peer reference (c). Past max_rate the limiter answers
// itself, with 503: v3.1.0's endpoint limiter has no configurable status (later versions default to 429).
func TestHarnessBuiltinRateLimitRouter(t *testing.T) {
	b := binaries(t)
	dir := tmpDir(t)
	be := startBackend(t, dir)
	ep := endpoint("/limited-builtin", "GET", be.addr, map[string]interface{}{
		"qos/ratelimit/router": map[string]interface{}{"max_rate": 2, "capacity": 2},
	})
	g := startHarness(t, dir, gatewayConfig(b.testPluginDir, []interface{}{ep}, nil))
	statuses := map[int]int{}
	for i := 0; i < 5; i++ {
		statuses[g.do(t, "GET", "/limited-builtin", nil, nil).status]++
	}
	if statuses[200] != 2 || statuses[503] != 3 {
		t.Fatalf("5 immediate requests at max_rate 2, capacity 2: got %v, want 2 x 200 and 3 x 503", statuses)
	}
}
