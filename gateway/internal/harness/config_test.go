package harness

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

func writeCfg(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "gw.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const okEndpoint = `{"endpoint":"/x","method":"GET","backend":[{"host":["http://127.0.0.1:65000"],"url_pattern":"/x"}]%s}`

func cfgWith(service, endpointExtra string) string {
	e := okEndpoint
	if endpointExtra != "" {
		e = strings.Replace(e, "%s", `,"extra_config":`+endpointExtra, 1)
	} else {
		e = strings.Replace(e, "%s", "", 1)
	}
	return `{"version":3,"plugin":{"folder":"/nonexistent","pattern":".so"}` + service + `,"endpoints":[` + e + `]}`
}

// One case per start-up rule of LoadConfig; each names the offending key.
func TestLoadConfigRules(t *testing.T) {
	cases := []struct {
		name, cfg, wantKey string
	}{
		{"ok, modifier alias", cfgWith("", `{"plugin/req-resp-modifier":{"name":["a"]}}`), ""},
		{"ok, router alias", cfgWith(`,"extra_config":{"router":{"return_error_msg":true}}`, ""), ""},
		{"refused module", cfgWith("", `{"qos/ratelimit/proxy":{"max_rate":1}}`), "qos/ratelimit/proxy"},
		{"unknown endpoint namespace", cfgWith("", `{"auth/validator":{}}`), "auth/validator"},
		{"unknown service namespace", cfgWith(`,"extra_config":{"telemetry/logging":{}}`, ""), "telemetry/logging"},
		{"tls", cfgWith(`,"tls":{"public_key":"a","private_key":"b"}`, ""), "tls"},
		{"plugin block without folder", `{"version":3,"endpoints":[` + strings.Replace(okEndpoint, "%s", `,"extra_config":{"plugin/req-resp-modifier":{"name":["a"]}}`, 1) + `]}`, "plugin"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadConfig(writeCfg(t, c.cfg))
			if c.wantKey == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Key != c.wantKey {
				t.Fatalf("error %v, want a ConfigError naming %q", err, c.wantKey)
			}
		})
	}
}

func TestLoadConfigRejectsOtherVersions(t *testing.T) {
	if _, err := LoadConfig(writeCfg(t, strings.Replace(cfgWith("", ""), `"version":3`, `"version":2`, 1))); err == nil {
		t.Fatal("version 2 accepted")
	}
}

func TestModifierNamesRules(t *testing.T) {
	RegisterAliases()
	for name, c := range map[string]struct {
		block   interface{}
		wantErr string
		want    int
	}{
		"list":       {map[string]interface{}{"name": []interface{}{"a", "b"}}, "", 2},
		"string":     {map[string]interface{}{"name": "a"}, "must be a list", 0},
		"empty":      {map[string]interface{}{"name": []interface{}{}}, "must not be empty", 0},
		"non-string": {map[string]interface{}{"name": []interface{}{1}}, "non-empty string", 0},
		"not object": {"x", "must be an object", 0},
	} {
		t.Run(name, func(t *testing.T) {
			names, present, err := ModifierNames("e", map[string]interface{}{
				"github.com/devopsfaith/krakend/proxy/plugin": c.block})
			if !present {
				t.Fatal("block not seen")
			}
			if c.wantErr == "" && (err != nil || len(names) != c.want) {
				t.Fatalf("names %v err %v", names, err)
			}
			if c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("err %v, want %q", err, c.wantErr)
			}
		})
	}
}

// A factory that returns nil, or panics, and a modifier that panics all become denials.
func TestGuardFactoryFailsClosed(t *testing.T) {
	l := noopLogger{}
	deny := func(m func(interface{}) (interface{}, error), reason string) {
		t.Helper()
		_, err := m(nil)
		var d HarnessDeny
		if !errors.As(err, &d) || d.Status != 503 || d.Reason != reason {
			t.Fatalf("err %v, want a 503 HarnessDeny %q", err, reason)
		}
		if d.Headers()[DenyHeader][0] != reason || d.Encoding() != "application/problem+json" {
			t.Fatalf("deny headers/encoding: %v %q", d.Headers(), d.Encoding())
		}
	}
	deny(guardFactory("n", func(map[string]interface{}) func(interface{}) (interface{}, error) { return nil }, l)(nil), "plugin-factory-returned-nil")
	deny(guardFactory("p", func(map[string]interface{}) func(interface{}) (interface{}, error) { panic("x") }, l)(nil), "plugin-factory-panicked")
	deny(guardFactory("m", func(map[string]interface{}) func(interface{}) (interface{}, error) {
		return func(interface{}) (interface{}, error) { panic("y") }
	}, l)(nil), "plugin-modifier-panicked")
	ok := guardFactory("ok", func(map[string]interface{}) func(interface{}) (interface{}, error) {
		return func(in interface{}) (interface{}, error) { return in, nil }
	}, l)(nil)
	if out, err := ok("req"); err != nil || out != "req" {
		t.Fatalf("a good modifier was changed: %v %v", out, err)
	}
}

type noopLogger struct{}

func (noopLogger) Debug(...interface{})    {}
func (noopLogger) Info(...interface{})     {}
func (noopLogger) Warning(...interface{})  {}
func (noopLogger) Error(...interface{})    {}
func (noopLogger) Critical(...interface{}) {}
func (noopLogger) Fatal(...interface{})    {}

func TestAccessLogFormatterOmitsQuery(t *testing.T) {
	line := AccessLogFormatter(gin.LogFormatterParams{Path: "/v1/pay?msisdn=03001234567&card=4111111111111111", Method: "GET", StatusCode: 200})
	if strings.Contains(line, "03001234567") || strings.Contains(line, "4111") || !strings.Contains(line, "/v1/pay?<query omitted>") {
		t.Fatalf("access log line %q", line)
	}
}
