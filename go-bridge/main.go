// Command simpaisa-plugin-filter-bridge is a KrakenD CE v2 request-modifier plugin
// (go build -buildmode=plugin) that hands every request of an endpoint to filterd over a
// Unix socket and applies its verdict. See docs/bridge.md.
//
// The plugin boundary uses standard-library types only (STD-API-034, style guide habit 11):
// lura finds ModifierRegisterer by name and talks to it through interfaces with the method
// sets declared here, so the .so shares no types with the gateway binary.
package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// Name is the name the plugin registers under and the key of its settings.
const Name = "simpaisa/filter-bridge"

const logPrefix = "[PLUGIN: " + Name + "]"

// ModifierRegisterer is the symbol lura's plugin loader looks up.
var ModifierRegisterer = registerer(Name)

func main() {}

// Logger is the subset of KrakenD's logger the plugin uses (the method set of lura's
// logging.Logger, declared locally as lura's test plugins do).
type Logger interface {
	Debug(v ...interface{})
	Info(v ...interface{})
	Warning(v ...interface{})
	Error(v ...interface{})
	Critical(v ...interface{})
	Fatal(v ...interface{})
}

type noopLogger struct{}

func (noopLogger) Debug(...interface{})    {}
func (noopLogger) Info(...interface{})     {}
func (noopLogger) Warning(...interface{})  {}
func (noopLogger) Error(...interface{})    {}
func (noopLogger) Critical(...interface{}) {}
func (noopLogger) Fatal(...interface{})    {}

type registerer string

// RegisterModifiers registers the request modifier (appliesToRequest=true,
// appliesToResponse=false).
func (r registerer) RegisterModifiers(f func(
	name string,
	factory func(map[string]interface{}) func(interface{}) (interface{}, error),
	appliesToRequest bool,
	appliesToResponse bool,
)) {
	defer recoverEntry("RegisterModifiers")
	f(string(r), defaultPlugin.factory, true, false)
}

// RegisterLogger receives KrakenD's logger; anything without the Logger methods is ignored.
func (registerer) RegisterLogger(v interface{}) {
	defer recoverEntry("RegisterLogger")
	if l, ok := v.(Logger); ok {
		defaultPlugin.setLogger(l)
		l.Debug(line(logPrefix, "logger registered"))
	}
}

// RegisterContext receives the gateway's context: when it ends, every daemon connection and
// goroutine of the plugin ends.
func (registerer) RegisterContext(ctx context.Context) {
	defer recoverEntry("RegisterContext")
	if ctx == nil {
		return
	}
	defaultPlugin.setContext(ctx)
}

// Ready reports nil when the plugin has at least one daemon connection and every one of them
// has completed its HELLO exchange; otherwise an error that says which socket is not ready.
// The gateway's readiness probe looks it up by name in the loaded .so (plugin.Open on the
// same path returns the already loaded plugin) as a func() error; see docs/bridge.md.
func Ready() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: readiness check panicked: %s", Name, panicText(r))
		}
	}()
	return defaultPlugin.ready()
}

// Counters returns the plugin's per-route counters, summed over the endpoints of each route,
// keyed "<route_id>/<counter>" (counter names as in docs/bridge.md: allowed, denied, failed,
// too_large, panics, shadow_allowed, shadow_denied, shadow_failed, shadow_too_large). A
// host looks it up like Ready, as a func() map[string]uint64, to export metrics; it is how
// shadow mode's verdicts are counted. The map is a fresh copy.
func Counters() (m map[string]uint64) {
	defer func() {
		if r := recover(); r != nil {
			m = map[string]uint64{}
		}
	}()
	return defaultPlugin.counters()
}

func (p *pluginState) counters() map[string]uint64 {
	p.mu.Lock()
	bridges := append([]*bridge(nil), p.bridges...)
	p.mu.Unlock()
	m := make(map[string]uint64, 9*len(bridges))
	for _, b := range bridges {
		s := &b.stats
		for _, c := range [...]struct {
			name string
			v    uint64
		}{
			{"allowed", s.Allowed.Load()}, {"denied", s.Denied.Load()}, {"failed", s.Failed.Load()},
			{"too_large", s.TooLarge.Load()}, {"panics", s.Panics.Load()},
			{"shadow_allowed", s.ShadowAllowed.Load()}, {"shadow_denied", s.ShadowDenied.Load()},
			{"shadow_failed", s.ShadowFailed.Load()}, {"shadow_too_large", s.ShadowTooLarge.Load()},
		} {
			m[b.cfg.RouteID+"/"+c.name] += c.v
		}
	}
	return m
}

// recoverEntry is deferred by the entry points lura calls once at load time: a panic there is
// logged instead of crashing the gateway. (If RegisterModifiers fails, the plugin registers
// nothing and the gateway harness refuses endpoints that name it.)
func recoverEntry(what string) {
	if r := recover(); r != nil {
		defaultPlugin.log().Error(line(logPrefix, what, "panicked:", panicText(r)))
	}
}

var defaultPlugin = newPlugin()

// pluginState is everything the plugin keeps between factory calls. Tests make their own.
type pluginState struct {
	logger atomic.Pointer[loggerBox]

	mu      sync.Mutex
	ctx     context.Context
	conns   map[string]*daemonConn // one shared connection per socket path
	bridges []*bridge              // every endpoint's modifier, for Counters
}

type loggerBox struct{ Logger }

func newPlugin() *pluginState {
	p := &pluginState{ctx: context.Background(), conns: map[string]*daemonConn{}}
	p.logger.Store(&loggerBox{noopLogger{}})
	return p
}

func (p *pluginState) setLogger(l Logger) { p.logger.Store(&loggerBox{safeLogger{l}}) }

// safeLogger shields the plugin from a host logger that panics: a log line is never worth a
// goroutine (the connection supervisor logs too, and nothing above it could recover).
type safeLogger struct{ l Logger }

func (s safeLogger) call(f func(...interface{}), v []interface{}) {
	defer func() { _ = recover() }()
	f(v...)
}
func (s safeLogger) Debug(v ...interface{})    { s.call(s.l.Debug, v) }
func (s safeLogger) Info(v ...interface{})     { s.call(s.l.Info, v) }
func (s safeLogger) Warning(v ...interface{})  { s.call(s.l.Warning, v) }
func (s safeLogger) Error(v ...interface{})    { s.call(s.l.Error, v) }
func (s safeLogger) Critical(v ...interface{}) { s.call(s.l.Critical, v) }
func (s safeLogger) Fatal(v ...interface{})    { s.call(s.l.Fatal, v) }

func (p *pluginState) log() Logger { return p.logger.Load().Logger }

func (p *pluginState) setContext(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ctx = ctx
}

// conn returns the shared connection for path, starting it on first use.
func (p *pluginState) conn(path string) *daemonConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[path]; ok {
		return c
	}
	c := newDaemonConn(p.ctx, path, p.log)
	p.conns[path] = c
	return c
}

func (p *pluginState) ready() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.conns) == 0 {
		return fmt.Errorf("%s: no endpoint is configured with the plugin", Name)
	}
	for _, c := range p.conns {
		if err := c.ready(); err != nil {
			return err
		}
	}
	return nil
}

// line joins the parts of a log message with spaces. Each log call passes one string, so the
// text does not depend on how the host's logger joins variadic arguments.
func line(v ...interface{}) string {
	s := fmt.Sprintln(v...)
	return s[:len(s)-1]
}
