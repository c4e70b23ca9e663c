// Command simpaisa-plugin-filter-bridge is a KrakenD CE request-modifier plugin: for every
// request of an endpoint it asks filterd over a Unix socket for a verdict and applies it;
// without a verdict it denies (docs/bridge.md). It shares no types with the gateway.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Name is the name the plugin registers under and the key of its settings.
const Name, logPrefix = "simpaisa/filter-bridge", "[PLUGIN: simpaisa/filter-bridge]"

// ModifierRegisterer is the symbol lura's plugin loader looks up.
var ModifierRegisterer = registerer(Name)

func main() {}

// Logger is the part of lura's logging.Logger the plugin uses.
type Logger interface {
	Info(v ...interface{})
	Warning(v ...interface{})
	Error(v ...interface{})
}

type registerer string

// RegisterModifiers registers the request modifier (request: yes, response: no).
func (r registerer) RegisterModifiers(f func(string, func(map[string]interface{}) func(interface{}) (interface{}, error), bool, bool)) {
	defer recoverEntry("RegisterModifiers")
	f(string(r), defaultPlugin.factory, true, false)
	defaultPlugin.registered.Store(true)
	defaultPlugin.logLoaded()
}

// RegisterLogger receives KrakenD's logger; anything without the Logger methods is ignored.
func (registerer) RegisterLogger(v interface{}) {
	defer recoverEntry("RegisterLogger")
	if l, ok := v.(Logger); ok {
		defaultPlugin.logger.Store(&loggerBox{l})
		defaultPlugin.logLoaded()
	}
}

// RegisterContext receives the gateway's context; when it ends, every connection closes.
func (registerer) RegisterContext(ctx context.Context) {
	defer recoverEntry("RegisterContext")
	if ctx != nil {
		defaultPlugin.mu.Lock()
		defaultPlugin.ctx = ctx
		defaultPlugin.mu.Unlock()
	}
}

// Counters returns per-route counters keyed "<route_id>/<counter>" (docs/bridge.md).
func Counters() (m map[string]uint64) {
	defer recoverEntry("Counters")
	m = map[string]uint64{} // the answer if counting panics
	return defaultPlugin.counters()
}

func recoverEntry(what string) {
	if r := recover(); r != nil {
		defaultPlugin.log(Logger.Error, logPrefix, what, "panicked:", panicText(r))
	}
}

var defaultPlugin = newPlugin()

// pluginState is everything the plugin keeps between factory calls. Tests make their own.
type pluginState struct {
	logger     atomic.Pointer[loggerBox]
	registered atomic.Bool // RegisterModifiers has run
	loadedLog  atomic.Bool // the "loaded" line has been written
	summaryGap time.Duration

	mu      sync.Mutex
	ctx     context.Context
	pools   map[poolKey]*pool // one per socket and expected peer
	bridges []*bridge
}

type loggerBox struct{ Logger }

func newPlugin() *pluginState {
	return &pluginState{ctx: context.Background(), pools: map[poolKey]*pool{}, summaryGap: 10 * time.Second}
}

// log writes one line at the level of method m (e.g. Logger.Info), once a logger is registered.
func (p *pluginState) log(m func(Logger, ...interface{}), v ...interface{}) {
	defer func() { _ = recover() }()
	if l := p.logger.Load(); l != nil {
		m(l.Logger, strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
	}
}

// logLoaded writes the start-up line once both the registration and a logger exist.
func (p *pluginState) logLoaded() {
	if p.logger.Load() != nil && p.registered.Load() && p.loadedLog.CompareAndSwap(false, true) {
		p.log(Logger.Info, logPrefix, "loaded: request modifier registered")
	}
}

func (p *pluginState) counters() map[string]uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[string]uint64, (nCounters+2)*len(p.bridges))
	for _, b := range p.bridges {
		r := b.cfg.RouteID + "/"
		for i := range b.stats {
			m[r+counterNames[i]] += b.stats[i].Load()
		}
		if b.cfg.Mode == "shadow" {
			m[r+"shadow_until_unix"] = uint64(max(b.cfg.ShadowUntil.Unix(), 0))
			if time.Now().Before(b.cfg.ShadowUntil) {
				m[r+"shadow_active"] = 1
			}
		}
	}
	return m
}

// panicText: errors and strings (fixed texts) capped, anything else only by type (no request data).
func panicText(r any) string {
	s := fmt.Sprintf("%T", r)
	if e, ok := r.(error); ok {
		s = e.Error()
	} else if t, ok := r.(string); ok {
		s = t
	}
	return s[:min(len(s), 200)]
}

// Config is one endpoint's checked, read-only configuration, built once by the factory.
type Config struct {
	SocketPath   string        `json:"socket_path"`    // filterd's Unix socket (absolute path)
	RouteID      string        `json:"route_id"`       // route id the daemon knows this endpoint by
	Filters      []string      `json:"filters"`        // filter names, run in this order
	Deadline     time.Duration `json:"-"`              // longest wait for a verdict, < 5 ms
	MaxBodyBytes int           `json:"max_body_bytes"` // larger bodies get 413 without calling the daemon
	ErrorStatus  int           `json:"error_status"`   // status of every deny the daemon did not choose itself
	Mode         string        `json:"mode"`           // "enforce", "shadow" or "probe"
	ShadowUntil  time.Time     `json:"-"`              // mode "shadow": verdicts are only counted until then
	DaemonUID    uint32        `json:"-"`              // SO_PEERCRED uid the daemon must have
	DaemonGID    int64         `json:"daemon_gid"`     // SO_PEERCRED gid the daemon must have; -1: not checked
}

// Limits and defaults of the settings. MaxDeadline is exclusive: STD-API-034's 5 ms budget.
const (
	DefaultDeadline, MinDeadline, MaxDeadline = 4500 * time.Microsecond, 100 * time.Microsecond, 5 * time.Millisecond
	DefaultMaxBodyBytes, MaxMaxBodyBytes      = 1 << 20, 8 << 20
	DefaultErrorStatus                        = 503
	MaxFilters                                = 16 // filterd's chain limit: the daemon refuses a request naming more
)

// ConfigError names the offending key. Its text never includes setting values.
type ConfigError struct{ Key, Reason string }

func (e *ConfigError) Error() string { return fmt.Sprintf("%s config: %q %s", Name, e.Key, e.Reason) }

// ParseConfig checks the endpoint's plugin block as lura hands it; unknown keys are errors.
func ParseConfig(block map[string]interface{}) (*Config, error) {
	m, ok := block[Name].(map[string]interface{})
	raw, err := json.Marshal(m) // keys sorted: the first unknown or mistyped key is reported
	if !ok || err != nil {
		return nil, &ConfigError{Name, "section is missing or not an object"}
	}
	c := &Config{MaxBodyBytes: DefaultMaxBodyBytes, ErrorStatus: DefaultErrorStatus, Mode: "enforce", DaemonGID: -1}
	s := struct { // the settings Config does not hold as they are written
		*Config
		Deadline    string `json:"deadline"`
		ShadowUntil string `json:"shadow_until"`
		DaemonUID   int64  `json:"daemon_uid"`
	}{c, DefaultDeadline.String(), "", int64(os.Geteuid())}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, &ConfigError{te.Field[strings.LastIndex(te.Field, ".")+1:], "has the wrong type (see docs/bridge.md)"}
		}
		_, key, _ := strings.Cut(err.Error(), `unknown field "`)
		return nil, &ConfigError{strings.TrimSuffix(key, `"`), "is not a known setting"}
	}
	c.Deadline, _ = time.ParseDuration(s.Deadline)
	c.ShadowUntil, _ = time.Parse(time.RFC3339, s.ShadowUntil)
	c.DaemonUID = uint32(s.DaemonUID)
	inRange := func(n, lo, hi int64) bool { return n >= lo && n <= hi }
	for _, r := range []struct {
		bad         bool
		key, reason string
	}{
		{!filepath.IsAbs(c.SocketPath) || len(c.SocketPath) > 107, "socket_path", "is required: an absolute path of at most 107 bytes (sun_path)"},
		{strings.TrimSpace(c.RouteID) == "" || len(c.RouteID) > 256, "route_id", "is required: a non-empty string of at most 256 bytes"},
		{c.Filters == nil, "filters", "is required (use [] for a route without filters)"},
		{len(c.Filters) > MaxFilters, "filters", fmt.Sprintf("must have at most %d entries (filterd's chain limit)", MaxFilters)},
		{slices.ContainsFunc(c.Filters, func(f string) bool { return f == "" || len(f) > 128 }), "filters", "entries must be non-empty strings of at most 128 bytes"},
		{len(slices.Compact(slices.Sorted(slices.Values(c.Filters)))) != len(c.Filters), "filters", "must not name a filter twice"},
		{c.Deadline < MinDeadline || c.Deadline >= MaxDeadline, "deadline", `must be a duration string from "100us" to below "5ms"`},
		{!inRange(int64(c.MaxBodyBytes), 0, MaxMaxBodyBytes), "max_body_bytes", fmt.Sprintf("must be a whole number from 0 to %d", MaxMaxBodyBytes)},
		{!inRange(int64(c.ErrorStatus), 400, 599), "error_status", "must be an HTTP error status from 400 to 599"},
		{!inRange(s.DaemonUID, 0, math.MaxUint32-1), "daemon_uid", "must be a uid from 0 to 4294967294"},
		{m["daemon_gid"] != nil && !inRange(c.DaemonGID, 0, math.MaxUint32-1), "daemon_gid", "must be a gid from 0 to 4294967294"},
		{c.Mode != "enforce" && c.Mode != "shadow" && c.Mode != "probe", "mode", `must be "enforce", "shadow" or "probe"`},
		{m["shadow_until"] != nil && c.Mode != "shadow", "shadow_until", `is only valid with "mode": "shadow"`},
		{c.Mode == "shadow" && c.ShadowUntil.IsZero(), "shadow_until", `is required with "mode": "shadow": an RFC 3339 time such as "2026-12-31T23:59:59Z"`},
	} {
		if r.bad {
			return nil, &ConfigError{r.key, r.reason}
		}
	}
	return c, nil
}
