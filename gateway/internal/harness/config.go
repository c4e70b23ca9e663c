// Package harness is the gateway harness built on lura v2.13.0: the framework KrakenD CE is built on,
// with the same plugin loader (lura proxy/plugin). It is not KrakenD CE: KrakenD CE cannot be fetched
// here (the Go module proxy answers 403 for github.com/krakendio/krakend-ce/v2), so this harness wires
// the lura pieces KrakenD CE uses for the features this product needs, and refuses everything else.
//
// Design rule: FAIL CLOSED. Where KrakenD CE would log at DEBUG and serve an endpoint without its
// plugin (a plugin that failed to load, a name that is not registered, a factory that returned nil,
// a "name" that is a string rather than a list), the harness refuses to start or denies the request.
package harness

import (
	"errors"
	"fmt"
	ratelimitrouter "github.com/krakendio/krakend-ratelimit/v3/router"
	"sort"
	"strings"

	"github.com/luraproject/lura/v2/config"
	"github.com/luraproject/lura/v2/proxy/plugin"
	luragin "github.com/luraproject/lura/v2/router/gin"
)

// KrakenD-format extra_config keys the harness understands. KrakenD CE maps its short keys to lura's
// long namespaces through config.ExtraConfigAlias; the harness registers the same aliases.
const (
	// ModifierKey is KrakenD's key for request/response modifier plugins (lura plugin.Namespace).
	ModifierKey = "plugin/req-resp-modifier"
	// RouterKey is KrakenD's key for the lura gin router options (luragin.Namespace).
	RouterKey = "router"
	// HarnessKey holds the harness's own settings (the readiness probe) at service level.
	HarnessKey = "simpaisa/gateway-harness"
)

// refusedNamespaces are KrakenD CE features the harness does not provide. A config that asks for one
// is refused at start rather than served without the feature: an endpoint silently losing its rate
// limit is exactly the fail-open we forbid. qos/ratelimit/router is provided (krakend-ratelimit
// v3.1.0, KRAKEND_RATELIMIT_VERSION in versions.env, the newest v3 the Go module proxy serves here);
// the backend-side qos/ratelimit/proxy is not wired.
var refusedNamespaces = map[string]string{
	"qos/ratelimit/proxy": "github.com/krakendio/krakend-ratelimit/v3 (proxy side, not wired in the harness)",
}

var aliasesRegistered bool

// RegisterAliases maps KrakenD's short extra_config keys to lura namespaces, as KrakenD CE does.
func RegisterAliases() {
	if aliasesRegistered {
		return
	}
	config.ExtraConfigAlias[ModifierKey] = plugin.Namespace
	config.ExtraConfigAlias[RouterKey] = luragin.Namespace
	aliasesRegistered = true
}

// ConfigError names the offending key of a config the harness refuses.
type ConfigError struct {
	Where string // e.g. `endpoint "/v1/pay" (POST)`
	Key   string
	Msg   string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("config: %s: %q: %s", e.Where, e.Key, e.Msg)
}

// LoadConfig parses a KrakenD-format (version 3) JSON config with lura's parser, applies KrakenD's
// aliases and checks that the harness can honour every extra_config namespace in it.
func LoadConfig(path string) (config.ServiceConfig, error) {
	RegisterAliases()
	cfg, err := config.NewParser().Parse(path)
	if err != nil {
		return cfg, err
	}
	cfg.Normalize()
	if err := CheckNamespaces(cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// CheckNamespaces refuses extra_config keys the harness does not implement, and features it does not
// implement (TLS, async agents), instead of ignoring them as a permissive gateway would.
func CheckNamespaces(cfg config.ServiceConfig) error {
	if cfg.TLS != nil && !cfg.TLS.IsDisabled {
		return &ConfigError{"service", "tls", "TLS is not implemented by the gateway harness; terminate TLS in front of it"}
	}
	if len(cfg.AsyncAgents) > 0 {
		return &ConfigError{"service", "async_agent", "async agents are not implemented by the gateway harness"}
	}
	if err := checkKeys("service", cfg.ExtraConfig, luragin.Namespace, HarnessKey); err != nil {
		return err
	}
	hasModifiers := false
	for _, e := range cfg.Endpoints {
		where := fmt.Sprintf("endpoint %q (%s)", e.Endpoint, e.Method)
		if err := checkKeys(where, e.ExtraConfig, plugin.Namespace, ratelimitrouter.Namespace); err != nil {
			return err
		}
		if _, ok := e.ExtraConfig[plugin.Namespace]; ok {
			hasModifiers = true
		}
		for i, b := range e.Backend {
			bwhere := fmt.Sprintf("%s backend #%d", where, i)
			if err := checkKeys(bwhere, b.ExtraConfig, plugin.Namespace); err != nil {
				return err
			}
			if _, ok := b.ExtraConfig[plugin.Namespace]; ok {
				hasModifiers = true
			}
		}
	}
	if hasModifiers && (cfg.Plugin == nil || cfg.Plugin.Folder == "" || cfg.Plugin.Pattern == "") {
		return &ConfigError{"service", "plugin", `endpoints use "plugin/req-resp-modifier" but "plugin": {"folder", "pattern"} is missing`}
	}
	return nil
}

func checkKeys(where string, extra config.ExtraConfig, allowed ...string) error {
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if mod, ok := refusedNamespaces[k]; ok {
			return &ConfigError{where, k, "this KrakenD CE feature (module " + mod +
				") is not provided by the gateway harness; it does not fake it"}
		}
		ok := false
		for _, a := range allowed {
			if k == a {
				ok = true
			}
		}
		if !ok {
			return &ConfigError{where, k, "extra_config namespace not implemented by the gateway harness (allowed here: " +
				strings.Join(shortNames(allowed), ", ") + ")"}
		}
	}
	return nil
}

func shortNames(ns []string) []string {
	out := make([]string, 0, len(ns))
	for _, n := range ns {
		switch n {
		case plugin.Namespace:
			out = append(out, ModifierKey)
		case luragin.Namespace:
			out = append(out, RouterKey)
		default:
			out = append(out, n)
		}
	}
	return out
}

// ModifierNames returns the plugin names a "plugin/req-resp-modifier" block asks for. lura silently
// skips a "name" that is not a list of strings (a plain string, a number): the harness refuses it.
func ModifierNames(where string, extra config.ExtraConfig) ([]string, bool, error) {
	raw, ok := extra[plugin.Namespace]
	if !ok {
		return nil, false, nil
	}
	block, ok := raw.(map[string]interface{})
	if !ok {
		return nil, true, &ConfigError{where, ModifierKey, "must be an object"}
	}
	list, ok := block["name"].([]interface{})
	if !ok {
		return nil, true, &ConfigError{where, ModifierKey + ".name", "must be a list of plugin names (lura ignores anything else, which would serve the endpoint unfiltered)"}
	}
	if len(list) == 0 {
		return nil, true, &ConfigError{where, ModifierKey + ".name", "must not be empty"}
	}
	names := make([]string, 0, len(list))
	for _, v := range list {
		s, ok := v.(string)
		if !ok || s == "" {
			return nil, true, &ConfigError{where, ModifierKey + ".name", "every entry must be a non-empty string"}
		}
		names = append(names, s)
	}
	return names, true, nil
}

// CheckModifiersRegistered verifies, after the plugins are loaded, that every plugin name an endpoint
// or backend asks for is registered. lura would serve such an endpoint without the plugin.
func CheckModifiersRegistered(cfg config.ServiceConfig) error {
	check := func(where string, extra config.ExtraConfig) error {
		names, _, err := ModifierNames(where, extra)
		if err != nil {
			return err
		}
		for _, n := range names {
			_, req := plugin.GetRequestModifier(n)
			_, resp := plugin.GetResponseModifier(n)
			if !req && !resp {
				return &ConfigError{where, ModifierKey + ".name", fmt.Sprintf("plugin %q is not registered by any loaded plugin", n)}
			}
		}
		return nil
	}
	for _, e := range cfg.Endpoints {
		where := fmt.Sprintf("endpoint %q (%s)", e.Endpoint, e.Method)
		if err := check(where, e.ExtraConfig); err != nil {
			return err
		}
		for i, b := range e.Backend {
			if err := check(fmt.Sprintf("%s backend #%d", where, i), b.ExtraConfig); err != nil {
				return err
			}
		}
	}
	return nil
}

// ErrNoPluginsLoaded is returned when the plugin folder holds no file matching the pattern.
var ErrNoPluginsLoaded = errors.New("plugin loader: no plugin matched the folder and pattern")
