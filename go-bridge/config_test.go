package main

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func validSettings() map[string]interface{} {
	return map[string]interface{}{
		"socket_path": "/run/filterd/filterd.sock", "route_id": "payments",
		"filters": []interface{}{"merchant-auth", "rate-limit", "enrichment"},
	}
}

func block(settings map[string]interface{}) map[string]interface{} {
	return map[string]interface{}{"name": []interface{}{Name}, Name: settings}
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := ParseConfig(block(validSettings()))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Deadline != 4500*time.Microsecond || cfg.MaxBodyBytes != 1<<20 || cfg.ErrorStatus != 503 || cfg.Mode != "enforce" ||
		cfg.DaemonUID != uint32(os.Geteuid()) || cfg.DaemonGID != -1 {
		t.Errorf("defaults = %+v", cfg)
	}
	if strings.Join(cfg.Filters, ",") != "merchant-auth,rate-limit,enrichment" {
		t.Errorf("filters = %v (order must be kept)", cfg.Filters)
	}
}

func TestConfigAllSettings(t *testing.T) {
	s := validSettings()
	s["deadline"] = "2500us"
	s["max_body_bytes"] = float64(4096)
	s["error_status"] = float64(500)
	s["mode"] = "shadow"
	s["shadow_until"] = "2027-01-31T18:00:00+05:00"
	s["daemon_uid"] = 10001.0
	s["daemon_gid"] = 0.0
	s["filters"] = []interface{}{}
	cfg, err := ParseConfig(block(s))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Deadline != 2500*time.Microsecond || cfg.MaxBodyBytes != 4096 || cfg.ErrorStatus != 500 || cfg.Mode != "shadow" ||
		len(cfg.Filters) != 0 || cfg.ShadowUntil.Unix() != 1801400400 || cfg.DaemonUID != 10001 || cfg.DaemonGID != 0 {
		t.Errorf("cfg = %+v", cfg)
	}
	delete(s, "shadow_until")
	for _, mode := range []string{"enforce", "probe"} {
		s["mode"] = mode
		s["max_body_bytes"] = 7 // a Go int, as a programmatic caller would pass
		if cfg, err = ParseConfig(block(s)); err != nil || cfg.Mode != mode || cfg.MaxBodyBytes != 7 {
			t.Errorf("cfg = %+v, %v", cfg, err)
		}
	}
	l := make([]interface{}, MaxFilters)
	for i := range l {
		l[i] = strings.Repeat("f", i+1)
	}
	s["filters"] = l
	if _, err := ParseConfig(block(s)); err != nil {
		t.Errorf("%d filters (filterd's chain limit) refused: %v", MaxFilters, err)
	}
}

// One case per rule: each must fail, naming the offending key.
func TestConfigRules(t *testing.T) {
	cases := []struct {
		name string
		edit func(m map[string]interface{})
		key  string
	}{
		{"unknown key", func(m map[string]interface{}) { m["dead_line"] = "3ms" }, "dead_line"},
		{"socket_path missing", func(m map[string]interface{}) { delete(m, "socket_path") }, "socket_path"},
		{"socket_path not a string", func(m map[string]interface{}) { m["socket_path"] = 5.0 }, "socket_path"},
		{"socket_path relative", func(m map[string]interface{}) { m["socket_path"] = "filterd.sock" }, "socket_path"},
		{"socket_path too long", func(m map[string]interface{}) { m["socket_path"] = "/" + strings.Repeat("s", 107) }, "socket_path"},
		{"route_id missing", func(m map[string]interface{}) { delete(m, "route_id") }, "route_id"},
		{"route_id blank", func(m map[string]interface{}) { m["route_id"] = "  " }, "route_id"},
		{"route_id too long", func(m map[string]interface{}) { m["route_id"] = strings.Repeat("r", 257) }, "route_id"},
		{"filters missing", func(m map[string]interface{}) { delete(m, "filters") }, "filters"},
		{"filters not a list", func(m map[string]interface{}) { m["filters"] = "rate-limit" }, "filters"},
		{"filter not a string", func(m map[string]interface{}) { m["filters"] = []interface{}{1.0} }, "filters"},
		{"filter empty", func(m map[string]interface{}) { m["filters"] = []interface{}{""} }, "filters"},
		{"filter twice", func(m map[string]interface{}) { m["filters"] = []interface{}{"a", "a"} }, "filters"},
		{"too many filters", func(m map[string]interface{}) {
			l := make([]interface{}, MaxFilters+1)
			for i := range l {
				l[i] = strings.Repeat("f", i+1)
			}
			m["filters"] = l
		}, "filters"},
		{"deadline not a string", func(m map[string]interface{}) { m["deadline"] = 3.0 }, "deadline"},
		{"deadline unparsable", func(m map[string]interface{}) { m["deadline"] = "3 ms" }, "deadline"},
		{"deadline at 5ms", func(m map[string]interface{}) { m["deadline"] = "5ms" }, "deadline"},
		{"deadline too small", func(m map[string]interface{}) { m["deadline"] = "50us" }, "deadline"},
		{"deadline negative", func(m map[string]interface{}) { m["deadline"] = "-1ms" }, "deadline"},
		{"max_body_bytes fraction", func(m map[string]interface{}) { m["max_body_bytes"] = 1.5 }, "max_body_bytes"},
		{"max_body_bytes negative", func(m map[string]interface{}) { m["max_body_bytes"] = -1.0 }, "max_body_bytes"},
		{"max_body_bytes too big", func(m map[string]interface{}) { m["max_body_bytes"] = float64(8<<20 + 1) }, "max_body_bytes"},
		{"max_body_bytes string", func(m map[string]interface{}) { m["max_body_bytes"] = "1MiB" }, "max_body_bytes"},
		{"error_status 200", func(m map[string]interface{}) { m["error_status"] = 200.0 }, "error_status"},
		{"error_status 600", func(m map[string]interface{}) { m["error_status"] = 600.0 }, "error_status"},
		{"mode unknown", func(m map[string]interface{}) { m["mode"] = "permissive" }, "mode"},
		{"mode not a string", func(m map[string]interface{}) { m["mode"] = true }, "mode"},
		{"shadow without shadow_until", func(m map[string]interface{}) { m["mode"] = "shadow" }, "shadow_until"},
		{"shadow_until not RFC 3339", func(m map[string]interface{}) { m["mode"], m["shadow_until"] = "shadow", "2027-01-31" }, "shadow_until"},
		{"shadow_until not a string", func(m map[string]interface{}) { m["mode"], m["shadow_until"] = "shadow", 1.8e9 }, "shadow_until"},
		{"shadow_until with enforce", func(m map[string]interface{}) { m["shadow_until"] = "2027-01-31T00:00:00Z" }, "shadow_until"},
		{"shadow_until with probe", func(m map[string]interface{}) { m["mode"], m["shadow_until"] = "probe", "2027-01-31T00:00:00Z" }, "shadow_until"},
		{"daemon_uid negative", func(m map[string]interface{}) { m["daemon_uid"] = -1.0 }, "daemon_uid"},
		{"daemon_uid string", func(m map[string]interface{}) { m["daemon_uid"] = "filterd" }, "daemon_uid"},
		{"daemon_uid too big", func(m map[string]interface{}) { m["daemon_uid"] = 4294967295.0 }, "daemon_uid"},
		{"daemon_gid fraction", func(m map[string]interface{}) { m["daemon_gid"] = 0.5 }, "daemon_gid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := validSettings()
			c.edit(m)
			_, err := ParseConfig(block(m))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a ConfigError", err)
			}
			if ce.Key != c.key || !strings.Contains(err.Error(), c.key) {
				t.Errorf("error %q names key %q, want %q", err, ce.Key, c.key)
			}
		})
	}
}

func TestConfigSectionShape(t *testing.T) {
	if _, err := ParseConfig(map[string]interface{}{"name": []interface{}{Name}}); err == nil {
		t.Error("missing section accepted")
	}
	if _, err := ParseConfig(map[string]interface{}{Name: "socket"}); err == nil {
		t.Error("non-object section accepted")
	}
}

// The fail-open trap: lura silently skips a nil modifier, so an invalid config must yield a
// modifier that denies every request with error_status (when that setting itself is valid).
func TestInvalidConfigDeniesEveryRequest(t *testing.T) {
	e := newEnv(t)
	s := validSettings()
	s["deadline"] = "1h"
	s["error_status"] = 500.0
	mod := e.p.factory(block(s))
	if mod == nil {
		t.Fatal("factory returned nil for an invalid config")
	}
	for i := 0; i < 3; i++ {
		mustDeny(t, 500)(mod(newRequest("x")))
	}
	mod = e.p.factory(map[string]interface{}{})
	if mod == nil {
		t.Fatal("factory returned nil for a missing section")
	}
	mustDeny(t, 503)(mod(newRequest("x")))
	found := false
	for _, l := range e.log.all() {
		if strings.HasPrefix(l, "ERROR") && strings.Contains(l, "invalid config") && strings.Contains(l, "deadline") {
			found = true
		}
	}
	if !found {
		t.Errorf("no ERROR log naming the bad key; logs: %v", e.log.all())
	}
}

func TestFactoryPanicDeniesEveryRequest(t *testing.T) {
	e := newEnv(t)
	e.p.pools = nil // broken state: registering the endpoint's pool panics
	mod := e.p.factory(block(validSettings()))
	if mod == nil {
		t.Fatal("factory returned nil after a panic")
	}
	mustDeny(t, 503)(mod(newRequest("x")))
	e.p.pools = map[poolKey]*pool{}
	e.p.factory(block(validSettings())) // the plugin's lock was not left held

}

// A host logger that panics must not take the plugin (or its connection loop) down.
func TestPanickingLoggerIsContained(t *testing.T) {
	path := socketPath(t)
	newPeer(t, path).start()
	e := newEnv(t)
	e.p.logger.Store(&loggerBox{&panicLogger{}})
	mod := e.p.factory(block(map[string]interface{}{"socket_path": path, "route_id": "r", "filters": []interface{}{}}))
	e.p.mu.Lock()
	c := e.p.pools[poolKey{path, uint32(os.Geteuid()), -1}]
	e.p.mu.Unlock()
	waitReady(t, c)
	passEventually(t, mod)
}

type panicLogger struct{ recLogger }

func (*panicLogger) Info(...interface{})    { panic("logger exploded") }
func (*panicLogger) Warning(...interface{}) { panic("logger exploded") }
