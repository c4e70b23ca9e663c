package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/luraproject/lura/v2/config"
	"github.com/luraproject/lura/v2/proxy/plugin"
)

// DefaultReadyPath is where the harness serves its readiness probe.
const DefaultReadyPath = "/__ready"

// Readiness is the probe Kubernetes calls. It answers 200 only when a request modifier from a loaded
// plugin, built from the probe settings, allows a synthetic request: for the filter bridge that means
// the plugin is loaded AND filterd answered (a route with no filters allows; any failure to reach the
// daemon is a deny). It never calls a backend, so it costs no backend traffic and no rate-limit quota.
//
// Config, at service level:
//
//	"extra_config": { "simpaisa/gateway-harness": { "readiness": {
//	    "path": "/__ready", "timeout": "1s",
//	    "plugin": "simpaisa/filter-bridge",
//	    "settings": { "socket_path": "...", "route_id": "<a route with no filters>", "filters": [], "mode": "enforce" } } } }
type Readiness struct {
	Path    string
	timeout time.Duration
	mod     func(interface{}) (interface{}, error)
	reason  string // why the probe can never pass (not configured, bad config); "" when configured
}

type readinessConfig struct {
	Path     string                 `json:"path"`
	Timeout  string                 `json:"timeout"`
	Plugin   string                 `json:"plugin"`
	Settings map[string]interface{} `json:"settings"`
}

// NewReadiness builds the probe after the plugins are loaded. A config error is returned (and stops
// the start); a missing readiness block gives a probe that always answers 503 (fail closed).
func NewReadiness(cfg config.ServiceConfig) (*Readiness, error) {
	r := &Readiness{Path: DefaultReadyPath, timeout: time.Second}
	raw, ok := cfg.ExtraConfig[HarnessKey].(map[string]interface{})
	if !ok {
		r.reason = "readiness-not-configured"
		return r, nil
	}
	rraw, ok := raw["readiness"]
	if !ok {
		r.reason = "readiness-not-configured"
		return r, nil
	}
	b, err := json.Marshal(rraw)
	if err != nil {
		return nil, &ConfigError{"service", HarnessKey + ".readiness", err.Error()}
	}
	var rc readinessConfig
	if err := json.Unmarshal(b, &rc); err != nil {
		return nil, &ConfigError{"service", HarnessKey + ".readiness", err.Error()}
	}
	if rc.Path != "" {
		if rc.Path[0] != '/' {
			return nil, &ConfigError{"service", HarnessKey + ".readiness.path", "must start with /"}
		}
		if strings.HasPrefix(rc.Path, "/__health") || strings.HasPrefix(rc.Path, "/__debug") || strings.HasPrefix(rc.Path, "/__echo") {
			return nil, &ConfigError{"service", HarnessKey + ".readiness.path", "collides with a lura reserved path"}
		}
		r.Path = rc.Path
	}
	if rc.Timeout != "" {
		d, err := time.ParseDuration(rc.Timeout)
		if err != nil || d <= 0 {
			return nil, &ConfigError{"service", HarnessKey + ".readiness.timeout", "must be a positive duration"}
		}
		r.timeout = d
	}
	if rc.Plugin == "" {
		return nil, &ConfigError{"service", HarnessKey + ".readiness.plugin", "required"}
	}
	if m, ok := rc.Settings["mode"]; ok && m != "enforce" {
		// In shadow mode the plugin lets everything through, so the probe would prove nothing.
		return nil, &ConfigError{"service", HarnessKey + ".readiness.settings.mode", `must be "enforce"`}
	}
	for _, e := range cfg.Endpoints {
		if e.Endpoint == r.Path {
			return nil, &ConfigError{"service", HarnessKey + ".readiness.path", "collides with endpoint " + e.Endpoint}
		}
	}
	f, ok := plugin.GetRequestModifier(rc.Plugin)
	if !ok {
		return nil, &ConfigError{"service", HarnessKey + ".readiness.plugin", fmt.Sprintf("%q is not a registered request modifier", rc.Plugin)}
	}
	// The same shape lura hands a factory: the whole plugin block, settings under the plugin's name.
	r.mod = f(map[string]interface{}{"name": []interface{}{rc.Plugin}, rc.Plugin: rc.Settings})
	return r, nil
}

// ServeHTTP answers 200 {"status":"ready"} or 503 {"status":"not ready","reason":...}.
func (r *Readiness) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if reason := r.check(req.Context()); reason != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, `{"status":"not ready","reason":%q}`, reason)
		return
	}
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, `{"status":"ready"}`)
}

func (r *Readiness) check(parent context.Context) string {
	if r.mod == nil {
		if r.reason == "" {
			return "readiness-not-configured"
		}
		return r.reason
	}
	ctx, cancel := context.WithTimeout(parent, r.timeout)
	defer cancel()
	done := make(chan string, 1) // buffered: the goroutine never blocks after we give up
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- "plugin-panicked"
			}
		}()
		_, err := r.mod(newProbeRequest(ctx, r.Path))
		if err != nil {
			if sc, ok := err.(interface{ StatusCode() int }); ok {
				done <- fmt.Sprintf("plugin-denied-%d", sc.StatusCode())
				return
			}
			done <- "plugin-error"
			return
		}
		done <- ""
	}()
	select {
	case s := <-done:
		return s
	case <-ctx.Done():
		return "timeout"
	}
}

// probeRequest implements the request-wrapper methods lura hands to request modifiers
// (proxy.RequestWrapper plus Context), so the plugin sees the same shape as on a real request.
type probeRequest struct {
	ctx     context.Context
	u       *url.URL
	headers map[string][]string
}

func newProbeRequest(ctx context.Context, path string) *probeRequest {
	return &probeRequest{
		ctx: ctx,
		u:   &url.URL{Scheme: "http", Host: "127.0.0.1", Path: path},
		headers: map[string][]string{
			"X-Forwarded-For": {"127.0.0.1"},
			"User-Agent":      {"gateway-harness-readiness"},
		},
	}
}

func (p *probeRequest) Context() context.Context     { return p.ctx }
func (p *probeRequest) Method() string               { return http.MethodGet }
func (p *probeRequest) URL() *url.URL                { return p.u }
func (p *probeRequest) Query() url.Values            { return url.Values{} }
func (p *probeRequest) Path() string                 { return p.u.Path }
func (p *probeRequest) Body() io.ReadCloser          { return http.NoBody }
func (p *probeRequest) Params() map[string]string    { return map[string]string{} }
func (p *probeRequest) Headers() map[string][]string { return p.headers }
