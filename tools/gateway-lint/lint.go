package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Severity of a finding: an ERROR is a config that fails open or fails weak in KrakenD CE and must
// not be deployed; a WARNING is a risk an operator should see.
type Severity string

const (
	Error   Severity = "ERROR"
	Warning Severity = "WARNING"
)

// Finding is one problem, with the exact place it is at.
type Finding struct {
	Severity Severity
	File     string
	Path     string // JSON path, e.g. $.endpoints[2].extra_config["plugin/req-resp-modifier"].name
	Msg      string
}

func (f Finding) String() string {
	return fmt.Sprintf("%s %s %s: %s", f.Severity, f.File, f.Path, f.Msg)
}

const (
	bridgeName   = "simpaisa/filter-bridge"
	modifierKey  = "plugin/req-resp-modifier"
	maxDeadline  = 5 * time.Millisecond // exclusive, the bridge's own limit
	minDeadline  = 100 * time.Microsecond
	probeMode    = "probe"
	shadowMode   = "shadow"
	merchantAuth = "merchant-auth"
)

// knownPlugins are the modifier names the plugins we ship register.
var knownPlugins = map[string]bool{bridgeName: true}

type linter struct {
	file     string
	findings []Finding
}

func (l *linter) add(sev Severity, path, format string, args ...interface{}) {
	l.findings = append(l.findings, Finding{sev, l.file, path, fmt.Sprintf(format, args...)})
}

// bridgeUse is one endpoint's use of the bridge, for the checks across endpoints.
type bridgeUse struct {
	path    string
	route   string
	filters []string
	mode    string
}

// LintGateway checks a KrakenD gateway config. filterdRoutes, when not nil, is the route -> filters
// table of the filterd config the gateway talks to.
func LintGateway(file string, data []byte, filterdRoutes map[string][]string) []Finding {
	l := &linter{file: file}
	var cfg map[string]interface{}
	if err := json.Unmarshal(data, &cfg); err != nil {
		l.add(Error, "$", "not valid JSON: %v", err)
		return l.findings
	}
	router, _ := extra(cfg)["router"].(map[string]interface{})
	if v, _ := router["return_error_msg"].(bool); !v {
		l.add(Error, `$.extra_config.router.return_error_msg`, "must be true: without it KrakenD answers every filterd deny with an empty body, so merchants and operators cannot tell a bad signature (401) from a rate limit or an outage")
	}
	if v, set := router["forwarded_by_client_ip"].(bool); (v || !set) && router["trusted_proxies"] == nil {
		l.add(Error, `$.extra_config.router.forwarded_by_client_ip`, "must be false (or trusted_proxies set): KrakenD CE's gin otherwise takes the client IP from any client's X-Forwarded-For, and filterd's per-IP rate limits and the X-Gw-Client-Ip header would trust what the client claims")
	}
	if v, _ := router["disable_access_log"].(bool); !v {
		l.add(Warning, `$.extra_config.router.disable_access_log`, "KrakenD CE's access log prints the full path and query string and cannot be redacted (custom formats are Enterprise only): card numbers or e-mail addresses in URLs reach the logs; set it to true")
	}

	endpoints, _ := cfg["endpoints"].([]interface{})
	var uses []bridgeUse
	for i, raw := range endpoints {
		ep, _ := raw.(map[string]interface{})
		base := fmt.Sprintf("$.endpoints[%d]", i)
		if u, ok := l.modifierBlock(base, ep); ok {
			uses = append(uses, u)
		}
		backends, _ := ep["backend"].([]interface{})
		for j, b := range backends {
			bm, _ := b.(map[string]interface{})
			if u, ok := l.modifierBlock(fmt.Sprintf("%s.backend[%d]", base, j), bm); ok {
				uses = append(uses, u)
			}
		}
	}
	if len(uses) > 0 {
		if p, _ := cfg["plugin"].(map[string]interface{}); p == nil || p["folder"] == nil || p["pattern"] == nil {
			l.add(Error, "$.plugin", `endpoints use %s but "plugin": {"folder", "pattern"} is missing: KrakenD loads no plugin and serves them unfiltered`, bridgeName)
		}
	}
	l.crossEndpoint(uses, filterdRoutes)
	return l.findings
}

func extra(m map[string]interface{}) map[string]interface{} {
	e, _ := m["extra_config"].(map[string]interface{})
	return e
}

// modifierBlock checks one plugin/req-resp-modifier block (endpoint or backend level).
func (l *linter) modifierBlock(base string, owner map[string]interface{}) (bridgeUse, bool) {
	raw, ok := extra(owner)[modifierKey]
	if !ok {
		return bridgeUse{}, false
	}
	path := fmt.Sprintf(`%s.extra_config[%q]`, base, modifierKey)
	block, ok := raw.(map[string]interface{})
	if !ok {
		l.add(Error, path, "must be an object")
		return bridgeUse{}, false
	}
	list, isList := block["name"].([]interface{})
	listed := false
	switch {
	case !isList:
		l.add(Error, path+".name", "must be a list of plugin names: KrakenD CE ignores anything else and serves the endpoint WITHOUT the plugin")
	case len(list) == 0:
		l.add(Error, path+".name", "is empty: the endpoint runs no plugin")
	default:
		for k, v := range list {
			s, _ := v.(string)
			switch {
			case s == bridgeName:
				listed = true
			case !knownPlugins[s]:
				hint := ""
				if near(s, bridgeName) {
					hint = fmt.Sprintf(" (did you mean %q?)", bridgeName)
				}
				l.add(Error, fmt.Sprintf("%s.name[%d]", path, k), "%q is not registered by any plugin we ship%s: KrakenD CE silently serves the endpoint without it", s, hint)
			}
		}
	}
	settings, has := block[bridgeName]
	if !has {
		return bridgeUse{}, false
	}
	spath := fmt.Sprintf(`%s[%q]`, path, bridgeName)
	if isList && !listed {
		l.add(Error, path+".name", "has %s settings but does not list %q: KrakenD CE never calls the plugin and serves the endpoint unfiltered", bridgeName, bridgeName)
	}
	s, ok := settings.(map[string]interface{})
	if !ok {
		l.add(Error, spath, "must be an object")
		return bridgeUse{}, false
	}
	u := bridgeUse{path: spath, mode: "enforce"}
	u.route, _ = s["route_id"].(string)
	if u.route == "" {
		l.add(Error, spath+".route_id", "is required")
	}
	if fl, ok := s["filters"].([]interface{}); ok {
		for _, f := range fl {
			name, _ := f.(string)
			u.filters = append(u.filters, name)
		}
	} else {
		l.add(Error, spath+".filters", "must be a list of filter names")
	}
	if m, ok := s["mode"].(string); ok {
		u.mode = m
	}
	if d, ok := s["deadline"]; ok {
		ds, _ := d.(string)
		dur, err := time.ParseDuration(ds)
		if err != nil || dur < minDeadline || dur >= maxDeadline {
			l.add(Error, spath+".deadline", "%v is outside the budget: at least 100µs and below 5ms (STD-API-034's 5 ms P99); the plugin would deny every request", d)
		} else if t, ok := owner["timeout"].(string); ok {
			if et, err := time.ParseDuration(t); err == nil && et <= dur {
				l.add(Error, spath+".deadline", "%s is not below the endpoint timeout %s", ds, t)
			}
		}
	}
	if u.mode == shadowMode {
		for _, f := range u.filters {
			if f == merchantAuth {
				l.add(Error, spath+".mode", `"shadow" on a route with merchant-auth switches authentication off: unsigned requests reach the backend`)
			}
		}
		if _, ok := s["shadow_until"]; !ok {
			l.add(Error, spath+".shadow_until", `shadow mode needs an expiry ("shadow_until": RFC 3339 time)`)
		}
	}
	return u, true
}

func (l *linter) crossEndpoint(uses []bridgeUse, filterdRoutes map[string][]string) {
	byRoute := map[string]bridgeUse{}
	probe := false
	for _, u := range uses {
		if u.mode == probeMode {
			probe = true
		}
		if u.route == "" {
			continue
		}
		if prev, ok := byRoute[u.route]; ok && strings.Join(prev.filters, ",") != strings.Join(u.filters, ",") {
			l.add(Error, u.path+".filters", "route %q is also used at %s with filters %v, here %v: one route id, one filter list", u.route, prev.path, prev.filters, u.filters)
		} else if !ok {
			byRoute[u.route] = u
		}
		if filterdRoutes == nil {
			continue
		}
		want, ok := filterdRoutes[u.route]
		switch {
		case !ok:
			l.add(Error, u.path+".route_id", "route %q is not in the filterd config: every request would be refused", u.route)
		case strings.Join(want, ",") != strings.Join(u.filters, ","):
			l.add(Error, u.path+".filters", "%v differ from filterd's route %q %v", u.filters, u.route, want)
		}
	}
	if len(uses) > 0 && !probe {
		l.add(Error, "$.endpoints", `no readiness probe endpoint (the bridge in "mode": "probe"): a pod whose plugin did not load, or whose filterd is down, would still be ready`)
	}
}

// near reports a likely misspelling of want: same length +/- 2 and mostly the same characters.
func near(s, want string) bool {
	if s == want {
		return false
	}
	ls, lw := strings.ToLower(s), strings.ToLower(want)
	if ls == lw || strings.Contains(ls, "filter") || strings.Contains(ls, "bridge") {
		return true
	}
	d := len(s) - len(want)
	return d >= -2 && d <= 2 && strings.HasPrefix(ls, lw[:3])
}

// FilterdRoutes reads the route -> filters table of a filterd config. A route's filters are its keys
// in the file's order, or its "filters" list when it has one.
func FilterdRoutes(data []byte) (map[string][]string, error) {
	var cfg struct {
		Routes json.RawMessage `json:"routes"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, err
	}
	routes := map[string][]string{}
	keys, err := orderedKeys(cfg.Routes)
	if err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(cfg.Routes, &raw); err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	for _, k := range keys {
		var explicit struct {
			Filters []string `json:"filters"`
		}
		if json.Unmarshal(raw[k], &explicit) == nil && explicit.Filters != nil {
			routes[k] = explicit.Filters
			continue
		}
		fk, err := orderedKeys(raw[k])
		if err != nil {
			return nil, fmt.Errorf("routes.%s: %w", k, err)
		}
		routes[k] = fk
	}
	return routes, nil
}

func orderedKeys(obj json.RawMessage) ([]string, error) {
	dec := json.NewDecoder(strings.NewReader(string(obj)))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("must be an object")
	}
	var keys []string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		keys = append(keys, t.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// sortFindings orders findings by file, then path.
func sortFindings(f []Finding) {
	sort.SliceStable(f, func(i, j int) bool {
		if f[i].File != f[j].File {
			return f[i].File < f[j].File
		}
		return f[i].Path < f[j].Path
	})
}

func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return b, nil
}
