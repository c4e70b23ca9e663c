package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/luraproject/lura/v2/logging"
	"github.com/luraproject/lura/v2/plugin"
	proxyplugin "github.com/luraproject/lura/v2/proxy/plugin"
)

// DenyHeader marks a denial made by the harness itself (never by a plugin): a plugin factory that
// returned nil or panicked, or a modifier that panicked. Tests use it to tell the two apart.
const DenyHeader = "X-Harness-Deny"

// HarnessDeny is the error the harness returns when it must deny on a plugin's behalf. It implements
// the interfaces lura's gin router reads (StatusCode, Headers, Encoding), as a plugin's deny does.
type HarnessDeny struct {
	Status int
	Reason string // a fixed token, never request data
}

func (d HarnessDeny) Error() string {
	return fmt.Sprintf(`{"type":"about:blank","title":"Service Unavailable","status":%d,"detail":"gateway harness: %s"}`, d.Status, d.Reason)
}
func (d HarnessDeny) StatusCode() int  { return d.Status }
func (d HarnessDeny) Encoding() string { return "application/problem+json" }
func (d HarnessDeny) Headers() map[string][]string {
	return map[string][]string{DenyHeader: {d.Reason}}
}

// Registry records what the loaded plugins registered, for -test-plugin and the start-up checks.
type Registry struct {
	mu       sync.Mutex
	Request  []string
	Response []string
}

func (r *Registry) add(name string, req, resp bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if req {
		r.Request = append(r.Request, name)
	}
	if resp {
		r.Response = append(r.Response, name)
	}
	sort.Strings(r.Request)
	sort.Strings(r.Response)
}

// Total is the number of registered modifier factories.
func (r *Registry) Total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.Request) + len(r.Response)
}

type modifierFactory = func(map[string]interface{}) func(interface{}) (interface{}, error)

// guardFactory wraps a plugin's factory so that it can never fail open:
//   - a factory that panics or returns nil yields a modifier that denies every request (lura would
//     silently drop a nil modifier and serve the endpoint unfiltered);
//   - a modifier that panics denies that request (the plugin must recover itself; this is the net).
func guardFactory(name string, f modifierFactory, logger logging.Logger) modifierFactory {
	return func(cfg map[string]interface{}) (mod func(interface{}) (interface{}, error)) {
		defer func() {
			if r := recover(); r != nil {
				logger.Error(fmt.Sprintf("[HARNESS] plugin %q: factory panicked; the endpoint will deny every request", name))
				mod = denyAll("plugin-factory-panicked")
			}
		}()
		inner := f(cfg)
		if inner == nil {
			logger.Error(fmt.Sprintf("[HARNESS] plugin %q: factory returned nil; the endpoint will deny every request", name))
			return denyAll("plugin-factory-returned-nil")
		}
		return func(in interface{}) (out interface{}, err error) {
			defer func() {
				if r := recover(); r != nil {
					logger.Error(fmt.Sprintf("[HARNESS] plugin %q: modifier panicked; request denied", name))
					out, err = nil, HarnessDeny{Status: 503, Reason: "plugin-modifier-panicked"}
				}
			}()
			return inner(in)
		}
	}
}

func denyAll(reason string) func(interface{}) (interface{}, error) {
	return func(interface{}) (interface{}, error) {
		return nil, HarnessDeny{Status: 503, Reason: reason}
	}
}

// LoadPlugins loads every file in folder whose name contains pattern with lura's loader (the loader
// KrakenD CE uses), registering guarded factories. Any load error is returned: KrakenD CE logs it
// and starts anyway; the harness's caller refuses to start.
func LoadPlugins(ctx context.Context, folder, pattern string, logger logging.Logger) (*Registry, int, error) {
	reg := &Registry{}
	rmf := func(name string, f modifierFactory, req, resp bool) {
		reg.add(name, req, resp)
		proxyplugin.RegisterModifier(name, guardFactory(name, f, logger), req, resp)
	}
	n, err := proxyplugin.LoadWithLoggerAndContext(ctx, folder, pattern, rmf, logger)
	if err != nil {
		return reg, n, err
	}
	if n == 0 {
		return reg, 0, fmt.Errorf("%w (folder %q, pattern %q)", ErrNoPluginsLoaded, folder, pattern)
	}
	return reg, n, nil
}

// TestPlugin really loads one .so with lura's loader, as `krakend test-plugin` does, and checks that
// it registers at least one modifier. It returns what was registered.
func TestPlugin(ctx context.Context, path string, logger logging.Logger) (*Registry, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s is a directory; give the .so file", abs)
	}
	dir, base := filepath.Dir(abs), filepath.Base(abs)
	// lura's loader takes a folder and a substring pattern; make sure it will open exactly this file.
	found, err := plugin.Scan(dir, base)
	if err != nil {
		return nil, err
	}
	if len(found) != 1 || found[0] != abs {
		return nil, fmt.Errorf("pattern %q matches %d files in %s; test-plugin needs it to match exactly one", base, len(found), dir)
	}
	reg, _, err := LoadPlugins(ctx, dir, base, logger)
	if err != nil {
		return reg, err
	}
	if reg.Total() == 0 {
		return reg, fmt.Errorf("%s loaded but registered no modifier", abs)
	}
	return reg, nil
}
