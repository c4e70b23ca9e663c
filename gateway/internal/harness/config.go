package harness

import (
	"fmt"
	"sort"
	"strings"

	gologging "github.com/krakend/krakend-gologging/v2"
	ratelimitrouter "github.com/krakend/krakend-ratelimit/v3/router"
	"github.com/luraproject/lura/v2/config"
	proxyplugin "github.com/luraproject/lura/v2/proxy/plugin"
	luragin "github.com/luraproject/lura/v2/router/gin"
	clientplugin "github.com/luraproject/lura/v2/transport/http/client/plugin"
	serverplugin "github.com/luraproject/lura/v2/transport/http/server/plugin"
)

// Aliases maps KrakenD's short extra_config keys to the namespaces of the components the harness
// wires, as KrakenD CE's main does for all of its components.
var Aliases = map[string]string{
	"plugin/req-resp-modifier": proxyplugin.Namespace,
	"plugin/http-server":       serverplugin.Namespace,
	"plugin/http-client":       clientplugin.Namespace,
	"router":                   luragin.Namespace,
	"telemetry/logging":        gologging.Namespace,
}

// Namespaces the harness implements, per level. KrakenD CE implements many more; a config using
// one of those is refused by CheckNamespaces, because a test gateway that silently ignored it
// would pass tests that production would not.
var (
	serviceNamespaces  = []string{luragin.Namespace, gologging.Namespace, serverplugin.Namespace}
	endpointNamespaces = []string{proxyplugin.Namespace, ratelimitrouter.Namespace}
	backendNamespaces  = []string{proxyplugin.Namespace, clientplugin.Namespace}
)

// NotEmulatedError names a config key whose KrakenD feature the harness does not provide.
type NotEmulatedError struct {
	Where string
	Key   string
}

func (e *NotEmulatedError) Error() string {
	return fmt.Sprintf("config: %s: %q: this KrakenD feature is not emulated by the gateway harness (it refuses it rather than ignore it)", e.Where, shortName(e.Key))
}

// CheckNamespaces refuses extra_config namespaces, TLS and async agents the harness does not
// implement. It checks nothing that KrakenD CE itself would check: plugin names, the shape of a
// plugin block and everything else are left to lura, as in KrakenD CE.
func CheckNamespaces(cfg config.ServiceConfig) error {
	if cfg.TLS != nil && !cfg.TLS.IsDisabled {
		return &NotEmulatedError{"service", "tls"}
	}
	if len(cfg.AsyncAgents) > 0 {
		return &NotEmulatedError{"service", "async_agent"}
	}
	if err := checkKeys("service", cfg.ExtraConfig, serviceNamespaces); err != nil {
		return err
	}
	for _, e := range cfg.Endpoints {
		where := fmt.Sprintf("endpoint %s %s", e.Method, e.Endpoint)
		if err := checkKeys(where, e.ExtraConfig, endpointNamespaces); err != nil {
			return err
		}
		for i, b := range e.Backend {
			if err := checkKeys(fmt.Sprintf("%s backend #%d", where, i), b.ExtraConfig, backendNamespaces); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkKeys(where string, extra config.ExtraConfig, allowed []string) error {
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			return &NotEmulatedError{where, k}
		}
	}
	return nil
}

func shortName(ns string) string {
	for alias, n := range Aliases {
		if n == ns {
			return alias
		}
	}
	return strings.TrimSpace(ns)
}
