package e2e

// The gateway harness behaves like KrakenD CE 2.12.1, weaknesses included, with a real backend and
// small real plugins built by the same toolchain (gateway/testplugins). These need no daemon. The
// product's protections against KrakenD's fail-open (the readiness probe, the config linter, the
// start-up log check) are tested against this behaviour elsewhere.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func exitCode(t *testing.T, err error) int {
	t.Helper()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// `test-plugin -m` really loads a .so with lura's loader, as `krakend test-plugin -m` does, and
// prints KrakenD's [OK]/[KO] lines.
func TestHarnessTestPlugin(t *testing.T) {
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
		{filepath.Join(b.testPluginDir, "harness-test-plugins.so"), 0, "[OK] MODIFIER\tharness-test-plugins.so"},
		// KrakenD CE passes a plugin that exports the symbol but registers nothing: so does the harness.
		{filepath.Join(b.emptyPluginDir, "empty.so"), 0, "[OK] MODIFIER\tempty.so"},
		{garbage, 1, "[KO] MODIFIER\tgarbage.so"},
		{filepath.Join(tmpDir(t), "missing.so"), 1, "[KO] Unable to open the plugin"},
	}
	for _, c := range cases {
		out, err := exec.Command(b.harness, "test-plugin", "-m", c.so).CombinedOutput()
		if code := exitCode(t, err); code != c.wantCode || !strings.Contains(string(out), c.wantOut) {
			t.Errorf("test-plugin -m %s: exit %d, output %q; want exit %d and %q", c.so, code, out, c.wantCode, c.wantOut)
		}
	}
}

// KrakenD CE serves an endpoint WITHOUT its plugin when the plugin did not load, when "name" is not
// a list, or when the name is not registered; the failed load is logged at DEBUG only. The harness
// must do exactly the same, or our tests would not see what production does.
func TestHarnessFailsOpenLikeKrakenD(t *testing.T) {
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
	}{
		"control: loaded plugin, listed name": {b.testPluginDir, mod([]interface{}{"test/allow"})},
		"misspelt plugin name":                {b.testPluginDir, mod([]interface{}{"test/alow"})},
		"name is a string":                    {b.testPluginDir, mod("test/allow")},
		"plugin fails to load":                {brokenDir, mod([]interface{}{"test/allow"})},
		"factory returns nil":                 {b.testPluginDir, mod([]interface{}{"test/nil-factory"})},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := tmpDir(t)
			be := startBackend(t, dir)
			g := startHarness(t, dir, gatewayConfig(c.pluginDir, []interface{}{endpoint("/x", "GET", be.addr, c.extra)}, nil))
			r := g.do(t, "GET", "/x", nil, nil)
			if r.status != 200 || be.counts(t).ByPath["/x"] != 1 {
				t.Fatalf("status %d, backend count %d: KrakenD CE serves this endpoint", r.status, be.counts(t).ByPath["/x"])
			}
			_, filtered := r.echo(t).header("X-Test-Plugin")
			if want := strings.HasPrefix(name, "control"); filtered != want {
				t.Fatalf("plugin ran: %v, want %v (KrakenD CE runs it only when it loaded and is listed)", filtered, want)
			}
		})
	}
}

// A modifier that panics is caught by gin's recovery (500, nothing reaches the backend); a factory
// that panics takes the whole gateway down at start, as in KrakenD CE: STD-API-034's reason for
// keeping plugins thin.
func TestHarnessPluginPanicsLikeKrakenD(t *testing.T) {
	b := binaries(t)
	dir := tmpDir(t)
	be := startBackend(t, dir)
	mod := func(name string) map[string]interface{} {
		return map[string]interface{}{"plugin/req-resp-modifier": map[string]interface{}{"name": []interface{}{name}}}
	}
	g := startHarness(t, dir, gatewayConfig(b.testPluginDir, []interface{}{
		endpoint("/panic-modifier", "GET", be.addr, mod("test/panic-modifier")),
	}, nil))
	if r := g.do(t, "GET", "/panic-modifier", nil, nil); r.status != 500 {
		t.Fatalf("/panic-modifier: %d, want 500 (gin recovery)", r.status)
	}
	if c := be.counts(t).ByPath["/panic-modifier"]; c != 0 || !g.alive() {
		t.Fatalf("backend count %d, gateway alive %v", c, g.alive())
	}

	dir2 := tmpDir(t)
	p, _ := startHarnessProc(t, dir2, gatewayConfig(b.testPluginDir, []interface{}{
		endpoint("/panic-factory", "GET", be.addr, mod("test/panic-factory")),
	}, nil))
	if code := p.waitExit(t, startWait); code == 0 {
		t.Fatalf("a panicking factory did not stop the gateway:\n%s", p.logText())
	}
}

// What the harness does not emulate it refuses by name, rather than serve without it.
func TestHarnessRefusesWhatItDoesNotEmulate(t *testing.T) {
	b := binaries(t)
	cases := map[string]struct {
		extra, svc map[string]interface{}
		want       string
	}{
		"endpoint namespace": {map[string]interface{}{"auth/validator": map[string]interface{}{}}, nil, `"auth/validator"`},
		"service namespace":  {nil, map[string]interface{}{"security/cors": map[string]interface{}{}}, `"security/cors"`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p, _ := startHarnessProc(t, tmpDir(t), gatewayConfig(b.testPluginDir, []interface{}{endpoint("/x", "GET", "127.0.0.1:65000", c.extra)}, c.svc))
			if code := p.waitExit(t, startWait); code != 1 || !strings.Contains(p.logText(), c.want) {
				t.Fatalf("exit %d, want 1 and a log naming %s:\n%s", code, c.want, p.logText())
			}
		})
	}
}

// `check -c X --lint-no-network` validates against KrakenD's own v2.12 schema (built in), as
// `krakend check` does: every KrakenD config we ship passes, and a foreign key fails, by name.
func TestHarnessCheckLintsAgainstKrakenDSchema(t *testing.T) {
	b := binaries(t)
	need(t, b.harness)
	root := repoRoot(t)
	configs, _ := filepath.Glob(filepath.Join(root, "conf", "gateway*.json"))
	if len(configs) == 0 {
		t.Fatal("no conf/gateway*.json")
	}
	for _, cfg := range configs {
		out, err := exec.Command(b.harness, "check", "-c", cfg, "--lint-no-network").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Syntax OK!") {
			t.Errorf("check --lint-no-network %s: %v\n%s", cfg, err, out)
		}
	}
	bad := filepath.Join(tmpDir(t), "bad.json")
	cfg := gatewayConfig("", []interface{}{endpoint("/x", "GET", "127.0.0.1:65000", nil)},
		map[string]interface{}{"simpaisa/gateway-harness": map[string]interface{}{"readiness": true}})
	writeJSON(t, bad, cfg)
	out, err := exec.Command(b.harness, "check", "-c", bad, "--lint-no-network").CombinedOutput()
	if exitCode(t, err) == 0 || !strings.Contains(string(out), "'simpaisa/gateway-harness' not allowed") {
		t.Fatalf("check accepted a namespace KrakenD does not have: %v\n%s", err, out)
	}
}

// A plugin built with other flags than the gateway (here -trimpath; KrakenD releases are built
// without it) is caught before deploy by verify-plugin, and cannot load (test-plugin, KrakenD's
// message). A gateway whose plugin folder holds it starts anyway and serves the endpoint without
// it, as KrakenD does: only the product's probe and checks stand in the way.
func TestHarnessPluginBuiltWithOtherFlags(t *testing.T) {
	b := binaries(t)
	need(t, b.harness)
	dir := tmpDir(t)
	so := filepath.Join(dir, "other-flags.so")
	build := exec.Command("go", "build", "-buildmode=plugin", "-trimpath", "-o", so, "./testplugins/multi")
	build.Dir = filepath.Join(repoRoot(t), "gateway")
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the test plugin with -trimpath: %v\n%s", err, out)
	}
	out, err := exec.Command(b.harness, "verify-plugin", "-g", goVersion(t), "-l", "glibc-2.36", so).CombinedOutput()
	if exitCode(t, err) != 1 || !strings.Contains(string(out), "-trimpath") {
		t.Errorf("verify-plugin accepted a -trimpath plugin: %v %s", err, out)
	}
	out, err = exec.Command(b.harness, "verify-plugin", "-g", "1.26.8", "-l", "glibc-2.36", filepath.Join(b.testPluginDir, "harness-test-plugins.so")).CombinedOutput()
	if exitCode(t, err) != 1 || !strings.Contains(string(out), "Go toolchain") {
		t.Errorf("verify-plugin accepted a plugin for another toolchain: %v %s", err, out)
	}
	out, err = exec.Command(b.harness, "verify-plugin", "-g", goVersion(t), "-l", "musl-1.2.5", filepath.Join(b.testPluginDir, "harness-test-plugins.so")).CombinedOutput()
	if exitCode(t, err) != 1 || !strings.Contains(string(out), "C library") {
		t.Errorf("verify-plugin accepted a glibc plugin for a musl gateway: %v %s", err, out)
	}
	out, err = exec.Command(b.harness, "test-plugin", "-m", so).CombinedOutput()
	if exitCode(t, err) != 1 || !strings.Contains(string(out), "different version of package") {
		t.Errorf("test-plugin loaded a plugin built with other flags: %v %s", err, out)
	}
	be := startBackend(t, dir)
	g := startHarness(t, dir, gatewayConfig(dir, []interface{}{endpoint("/x", "GET", be.addr,
		map[string]interface{}{"plugin/req-resp-modifier": map[string]interface{}{"name": []interface{}{"test/allow"}}})}, nil))
	r := g.do(t, "GET", "/x", nil, nil)
	if _, filtered := r.echo(t).header("X-Test-Plugin"); r.status != 200 || filtered {
		t.Fatalf("status %d, plugin ran %v: KrakenD serves the endpoint unfiltered", r.status, filtered)
	}
}

// goVersion is the toolchain the harness was built with (versions.env GO_VERSION without "go").
func goVersion(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(binaries(t).harness, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("harness version: %v %s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "Go Version: "); ok {
			return v
		}
	}
	t.Fatalf("no Go Version in %q", out)
	return ""
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

// KrakenD CE's default access log is gin's line with the full path AND query string; the router's
// disable_access_log turns it off. The harness does the same, so that log tests see what production
// logs.
func TestHarnessAccessLogLikeKrakenD(t *testing.T) {
	b := binaries(t)
	for _, disabled := range []bool{false, true} {
		dir := tmpDir(t)
		be := startBackend(t, dir)
		cfg := gatewayConfig(b.testPluginDir, []interface{}{endpoint("/baseline", "GET", be.addr, nil)}, nil)
		cfg["extra_config"].(map[string]interface{})["router"] = map[string]interface{}{"return_error_msg": true, "disable_access_log": disabled}
		g := startHarness(t, dir, cfg)
		if r := g.do(t, "GET", "/baseline?email=a%40b.example&pan=4111111111111111", nil, nil); r.status != 200 {
			t.Fatalf("/baseline: %d", r.status)
		}
		g.signal(syscall.SIGTERM)
		g.waitExit(t, 10*time.Second)
		logged := strings.Contains(g.logText(), `"/baseline?email=a%40b.example&pan=4111111111111111"`)
		if logged == disabled {
			t.Fatalf("disable_access_log %v: full path and query logged %v:\n%s", disabled, logged, g.logText())
		}
	}
}

// Without USAGE_DISABLE=1 KrakenD CE reports usage to its vendor; the harness never sends it but
// warns in its log, so that a deployment missing the setting shows in every test.
func TestHarnessWarnsWithoutUsageDisable(t *testing.T) {
	b := binaries(t)
	need(t, b.harness)
	for _, env := range []string{"USAGE_DISABLE=0", "USAGE_DISABLE=1"} {
		dir := tmpDir(t)
		port := freePort(t)
		cfg := gatewayConfig("", []interface{}{endpoint("/x", "GET", "127.0.0.1:65000", nil)}, nil)
		cfg["port"] = port
		writeJSON(t, filepath.Join(dir, "g.json"), cfg)
		p := startEnv(t, "gateway-harness", dir, []string{env}, b.harness, "run", "-c", filepath.Join(dir, "g.json"))
		time.Sleep(500 * time.Millisecond)
		p.signal(syscall.SIGTERM)
		p.waitExit(t, 10*time.Second)
		warned := strings.Contains(p.logText(), "KrakenD CE would send a usage report")
		if warned != (env == "USAGE_DISABLE=0") {
			t.Fatalf("%s: usage warning %v:\n%s", env, warned, p.logText())
		}
	}
}

// qos/ratelimit/router is KrakenD CE's own endpoint rate limiter (krakend-ratelimit v3.3.0, wired the
// way KrakenD CE wires it): the perf suite's peer reference (c). Past max_rate it answers itself with
// 503 (v3.3.0's endpoint limiter has no configurable status).
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
	if statuses[200] != 2 || statuses[503] != 3 || be.counts(t).ByPath["/limited-builtin"] != 2 {
		t.Fatalf("5 immediate requests at max_rate 2, capacity 2: got %v, want 2 x 200 and 3 x 503", statuses)
	}
}
