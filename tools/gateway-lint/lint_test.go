package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func repo(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func example(t *testing.T) map[string]interface{} {
	t.Helper()
	var m map[string]interface{}
	if err := json.Unmarshal(repo(t, "conf/gateway.example.json"), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// endpointByPath returns the example's endpoint with that path, and its bridge settings.
func endpointByPath(t *testing.T, cfg map[string]interface{}, path string) (map[string]interface{}, map[string]interface{}) {
	t.Helper()
	for _, e := range cfg["endpoints"].([]interface{}) {
		ep := e.(map[string]interface{})
		if ep["endpoint"] == path {
			block := ep["extra_config"].(map[string]interface{})[modifierKey].(map[string]interface{})
			return block, block[bridgeName].(map[string]interface{})
		}
	}
	t.Fatalf("no endpoint %s in the example", path)
	return nil, nil
}

func lint(t *testing.T, cfg map[string]interface{}) []Finding {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	routes, err := FilterdRoutes(repo(t, "conf/filterd.example.json"))
	if err != nil {
		t.Fatal(err)
	}
	return LintGateway("gateway.json", b, routes)
}

// The shipped example configs are clean: no error and no warning.
func TestExampleConfigsAreClean(t *testing.T) {
	if f := lint(t, example(t)); len(f) != 0 {
		t.Fatalf("conf/gateway.example.json: %v", f)
	}
}

// Each fail-open or fail-weak mistake is reported as an ERROR at its exact JSON path.
func TestEachMistakeIsReportedAtItsPath(t *testing.T) {
	pay := `$.endpoints[4].extra_config["plugin/req-resp-modifier"]`
	cases := []struct {
		name   string
		mutate func(cfg map[string]interface{}, block, settings map[string]interface{})
		path   string
		text   string
	}{
		{"name is a string", func(_, b, _ map[string]interface{}) { b["name"] = bridgeName }, pay + ".name", "must be a list"},
		{"misspelt plugin name", func(_, b, _ map[string]interface{}) { b["name"] = []interface{}{"simpaisa/filter-bridg"} }, pay + ".name[0]", "did you mean"},
		{"unregistered plugin name", func(_, b, _ map[string]interface{}) { b["name"] = []interface{}{bridgeName, "acme/other"} }, pay + ".name[1]", "not registered"},
		{"settings without the name", func(_, b, _ map[string]interface{}) { b["name"] = []interface{}{"acme/other"} }, pay + ".name", "does not list"},
		{"merchant-auth in shadow mode", func(_, _, s map[string]interface{}) { s["mode"] = "shadow"; s["shadow_until"] = "2030-01-01T00:00:00Z" }, pay + `["simpaisa/filter-bridge"].mode`, "switches authentication off"},
		{"shadow mode without expiry", func(_, _, s map[string]interface{}) { s["mode"] = "shadow" }, pay + `["simpaisa/filter-bridge"].shadow_until`, "expiry"},
		{"return_error_msg off", func(c, _, _ map[string]interface{}) {
			c["extra_config"].(map[string]interface{})["router"].(map[string]interface{})["return_error_msg"] = false
		}, "$.extra_config.router.return_error_msg", "empty body"},
		{"client IP from X-Forwarded-For", func(c, _, _ map[string]interface{}) {
			delete(c["extra_config"].(map[string]interface{})["router"].(map[string]interface{}), "forwarded_by_client_ip")
		}, "$.extra_config.router.forwarded_by_client_ip", "X-Forwarded-For"},
		{"deadline at the budget", func(_, _, s map[string]interface{}) { s["deadline"] = "5ms" }, pay + `["simpaisa/filter-bridge"].deadline`, "outside the budget"},
		{"deadline too short", func(_, _, s map[string]interface{}) { s["deadline"] = "50us" }, pay + `["simpaisa/filter-bridge"].deadline`, "outside the budget"},
		{"shared route id, other filters", func(c, _, s map[string]interface{}) {
			_, rates := endpointByPath(t, c, "/v1/rates")
			rates["route_id"] = "payments.create"
		}, pay + `["simpaisa/filter-bridge"].filters`, "also used at"},
		{"no probe endpoint", func(c, _, _ map[string]interface{}) { c["endpoints"] = c["endpoints"].([]interface{})[1:] }, "$.endpoints", "no readiness probe"},
		{"no plugin folder", func(c, _, _ map[string]interface{}) { delete(c, "plugin") }, "$.plugin", "missing"},
		{"route unknown to filterd", func(_, _, s map[string]interface{}) { s["route_id"] = "payments.typo" }, pay + `["simpaisa/filter-bridge"].route_id`, "not in the filterd config"},
		{"filters differ from filterd", func(_, _, s map[string]interface{}) { s["filters"] = []interface{}{"rate-limit"} }, pay + `["simpaisa/filter-bridge"].filters`, "differ from filterd"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := example(t)
			block, settings := endpointByPath(t, cfg, "/v1/payments")
			c.mutate(cfg, block, settings)
			found := false
			for _, f := range lint(t, cfg) {
				if f.Severity == Error && f.Path == c.path && strings.Contains(f.Msg, c.text) {
					found = true
				}
			}
			if !found {
				t.Fatalf("no ERROR at %s containing %q; got %v", c.path, c.text, lint(t, cfg))
			}
		})
	}
}

// The access log, which KrakenD CE cannot redact, is a warning when on.
func TestAccessLogOnIsAWarning(t *testing.T) {
	cfg := example(t)
	delete(cfg["extra_config"].(map[string]interface{})["router"].(map[string]interface{}), "disable_access_log")
	f := lint(t, cfg)
	if len(f) != 1 || f[0].Severity != Warning || f[0].Path != "$.extra_config.router.disable_access_log" {
		t.Fatalf("got %v", f)
	}
}

// A deployment file that starts KrakenD without USAGE_DISABLE=1 gets a warning; with it, none.
func TestManifestsNeedUsageDisable(t *testing.T) {
	cases := []struct {
		file, body string
		warn       bool
	}{
		{"pod.yaml", "kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n      - name: gateway\n        image: krakend:2.12.1\n", true},
		{"pod.yaml", "kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n      - name: gateway\n        image: krakend:2.12.1\n        env:\n        - {name: USAGE_DISABLE, value: \"1\"}\n", false},
		{"pod.yaml", "kind: Pod\nspec:\n  containers:\n  - name: filterd\n    image: filterd:1\n", false},
		{"compose.yml", "services:\n  gateway:\n    image: gw\n    environment: [\"USAGE_DISABLE=1\"]\n", false},
		{"compose.yml", "services:\n  gateway:\n    image: gw\n    environment: {OTHER: x}\n", true},
		{"Dockerfile", "FROM krakend:2.12.1\n", true},
		{"Dockerfile", "FROM krakend:2.12.1\nENV USAGE_DISABLE=1\n", false},
	}
	for i, c := range cases {
		f := LintManifest(c.file, []byte(c.body))
		if got := len(f) == 1 && f[0].Severity == Warning; got != c.warn || (!c.warn && len(f) != 0) {
			t.Errorf("case %d (%s): findings %v, want warning %v", i, c.file, f, c.warn)
		}
	}
}

// The command exits 1 on errors, 0 on a clean config, 2 on unreadable input.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	cfg := example(t)
	block, _ := endpointByPath(t, cfg, "/v1/payments")
	block["name"] = bridgeName
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(bad, b, 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join("..", "..", "conf", "gateway.example.json")
	fd := filepath.Join("..", "..", "conf", "filterd.example.json")
	if c := run([]string{"-filterd", fd, good}); c != 0 {
		t.Errorf("clean example: exit %d", c)
	}
	if c := run([]string{bad}); c != 1 {
		t.Errorf("bad config: exit %d", c)
	}
	if c := run([]string{filepath.Join(dir, "missing.json")}); c != 2 {
		t.Errorf("missing file: exit %d", c)
	}
}
