// Command plugincheck loads the built simpaisa-plugin-filter-bridge.so the way lura's plugin
// loader does (plugin.Open, Lookup("ModifierRegisterer"), interface assertions) and checks the
// contract without a gateway: the registered name and flags, the logger and context hooks,
// the exported Ready probe, and that both an invalid config and an absent daemon deny.
//
// It imports the standard library only, like the gateway's view of the plugin, and must be
// built with the same toolchain and GO_BUILD_FLAGS as the .so (go-bridge/build.sh does).
//
//	plugincheck -so out/simpaisa-plugin-filter-bridge.so
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"plugin"
	"strings"
)

type registerer interface {
	RegisterModifiers(func(
		name string,
		factory func(map[string]interface{}) func(interface{}) (interface{}, error),
		appliesToRequest bool,
		appliesToResponse bool,
	))
}

type loggerRegisterer interface{ RegisterLogger(interface{}) }
type contextRegisterer interface{ RegisterContext(context.Context) }

type statusError interface {
	error
	StatusCode() int
	Headers() map[string][]string
	Encoding() string
}

type stdoutLogger struct{}

func (stdoutLogger) Debug(v ...interface{})   { fmt.Println(append([]interface{}{"DEBUG"}, v...)...) }
func (stdoutLogger) Info(v ...interface{})    { fmt.Println(append([]interface{}{"INFO"}, v...)...) }
func (stdoutLogger) Warning(v ...interface{}) { fmt.Println(append([]interface{}{"WARNING"}, v...)...) }
func (stdoutLogger) Error(v ...interface{})   { fmt.Println(append([]interface{}{"ERROR"}, v...)...) }
func (stdoutLogger) Critical(v ...interface{}) {
	fmt.Println(append([]interface{}{"CRITICAL"}, v...)...)
}
func (stdoutLogger) Fatal(v ...interface{}) { fmt.Println(append([]interface{}{"FATAL"}, v...)...) }

type req struct{}

func (req) Context() context.Context     { return context.Background() }
func (req) Params() map[string]string    { return map[string]string{} }
func (req) Headers() map[string][]string { return map[string][]string{} }
func (req) Body() io.ReadCloser          { return nil }
func (req) Method() string               { return "GET" }
func (req) URL() *url.URL                { return nil }
func (req) Query() url.Values            { return url.Values{} }
func (req) Path() string                 { return "/" }

func main() {
	so := flag.String("so", "", "path of the built plugin")
	flag.Parse()
	if err := check(*so); err != nil {
		fmt.Fprintln(os.Stderr, "plugincheck: FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("plugincheck: OK")
}

func check(so string) error {
	p, err := plugin.Open(so)
	if err != nil {
		return err
	}
	sym, err := p.Lookup("ModifierRegisterer")
	if err != nil {
		return err
	}
	r, ok := sym.(registerer)
	if !ok {
		return fmt.Errorf("ModifierRegisterer (%T) does not implement RegisterModifiers", sym)
	}
	lr, ok := sym.(loggerRegisterer)
	if !ok {
		return fmt.Errorf("ModifierRegisterer does not implement RegisterLogger")
	}
	cr, ok := sym.(contextRegisterer)
	if !ok {
		return fmt.Errorf("ModifierRegisterer does not implement RegisterContext")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lr.RegisterLogger(stdoutLogger{})
	cr.RegisterContext(ctx)

	var name string
	var onReq, onResp bool
	var factory func(map[string]interface{}) func(interface{}) (interface{}, error)
	r.RegisterModifiers(func(n string, f func(map[string]interface{}) func(interface{}) (interface{}, error), a, b bool) {
		name, factory, onReq, onResp = n, f, a, b
	})
	if name != "simpaisa/filter-bridge" || !onReq || onResp || factory == nil {
		return fmt.Errorf("registered %q request=%v response=%v", name, onReq, onResp)
	}

	readySym, err := p.Lookup("Ready")
	if err != nil {
		return err
	}
	ready, ok := readySym.(func() error)
	if !ok {
		return fmt.Errorf("Ready is %T, want func() error", readySym)
	}
	if ready() == nil {
		return fmt.Errorf("Ready() = nil before any endpoint is configured")
	}

	bad := factory(map[string]interface{}{name: map[string]interface{}{"socket_path": "relative"}})
	if bad == nil {
		return fmt.Errorf("factory returned nil for an invalid config")
	}
	if err := wantDeny(bad, 503); err != nil {
		return fmt.Errorf("invalid config: %v", err)
	}

	dir, err := os.MkdirTemp("", "plugincheck")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	good := factory(map[string]interface{}{name: map[string]interface{}{
		"socket_path": filepath.Join(dir, "absent.sock"), "route_id": "check", "filters": []interface{}{},
	}})
	if err := wantDeny(good, 503); err != nil {
		return fmt.Errorf("absent daemon: %v", err)
	}
	if err := ready(); err == nil || !strings.Contains(err.Error(), "not connected") {
		return fmt.Errorf("Ready() with an absent daemon = %v", err)
	}
	countersSym, err := p.Lookup("Counters")
	if err != nil {
		return err
	}
	counters, ok := countersSym.(func() map[string]uint64)
	if !ok {
		return fmt.Errorf("Counters is %T, want func() map[string]uint64", countersSym)
	}
	if n := counters()["check/failed"]; n != 1 {
		return fmt.Errorf("Counters()[check/failed] = %d after one failed request, want 1", n)
	}
	return nil
}

func wantDeny(mod func(interface{}) (interface{}, error), status int) error {
	out, err := mod(req{})
	if err == nil || out != nil {
		return fmt.Errorf("request passed")
	}
	se, ok := err.(statusError)
	if !ok {
		return fmt.Errorf("deny %T lacks StatusCode/Headers/Encoding", err)
	}
	if se.StatusCode() != status {
		return fmt.Errorf("status %d, want %d", se.StatusCode(), status)
	}
	return nil
}
