// Package harness wires lura and the KrakenD CE components the product relies on, at KrakenD CE
// 2.12.1's module versions and in KrakenD CE's order, so that the project's tests run the plugin in
// a gateway that behaves like the one in production, weaknesses included:
//   - plugin load errors are logged at DEBUG only and the gateway starts anyway;
//   - an endpoint whose "name" is not a list, or names an unregistered plugin, is served without it;
//   - a modifier factory that returns nil is skipped; one that panics takes the gateway down;
//   - a modifier that panics is caught by gin's recovery (500);
//   - the access log is gin's default line: method, full path AND query string.
//
// What it does not emulate it refuses by name (see CheckNamespaces), so a test never passes
// because a KrakenD feature was silently missing.
package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/gin-gonic/gin"
	cmd "github.com/krakend/krakend-cobra/v2"
	gologging "github.com/krakend/krakend-gologging/v2"
	ratelimit "github.com/krakend/krakend-ratelimit/v3/router/gin"
	"github.com/luraproject/lura/v2/config"
	"github.com/luraproject/lura/v2/core"
	"github.com/luraproject/lura/v2/logging"
	"github.com/luraproject/lura/v2/proxy"
	luragin "github.com/luraproject/lura/v2/router/gin"
	"github.com/luraproject/lura/v2/transport/http/client"
	clientplugin "github.com/luraproject/lura/v2/transport/http/client/plugin"
	serverhttp "github.com/luraproject/lura/v2/transport/http/server"
	serverplugin "github.com/luraproject/lura/v2/transport/http/server/plugin"
)

// UsageDisableEnv is the variable that stops KrakenD CE's usage report to its vendor.
const UsageDisableEnv = "USAGE_DISABLE"

// NewExecutor returns the function krakend-cobra's `run` calls with the parsed config.
func NewExecutor(ctx context.Context) cmd.Executor {
	return func(cfg config.ServiceConfig) {
		cfg.Normalize()
		logger := NewLogger(cfg)
		logger.Info(fmt.Sprintf("Starting gateway-harness: KrakenD CE v%s wiring (lura, gin, plugin loaders, qos/ratelimit/router)", core.KrakendVersion))
		warnUsageReport(logger)
		if wd, err := os.Getwd(); err == nil {
			logger.Info("Working directory is", wd)
		}
		if err := CheckNamespaces(cfg); err != nil {
			logger.Critical("[HARNESS]", err.Error())
			fmt.Fprintln(os.Stderr, "gateway-harness:", err)
			os.Exit(1)
		}
		if cfg.Plugin != nil {
			LoadPlugins(ctx, cfg.Plugin.Folder, cfg.Plugin.Pattern, logger)
		}

		pf := proxy.NewShadowFactory(proxy.NewDefaultFactory(newBackendFactory(logger), logger))
		handlerF := ratelimit.NewRateLimiterMw(logger, luragin.CustomErrorEndpointHandler(logger, serverhttp.DefaultToHTTPError))
		runServer := luragin.RunServerFunc(serverplugin.New(logger, serverplugin.RunServer(serverhttp.RunServerWithLoggerFactory(logger))))

		routerFactory := luragin.NewFactory(luragin.Config{
			Engine:         NewEngine(cfg, luragin.EngineOptions{Logger: logger}),
			ProxyFactory:   pf,
			Logger:         logger,
			HandlerFactory: handlerF,
			RunServer:      runServer,
		})
		logger.Info("Starting the KrakenD instance")
		routerFactory.NewWithContext(ctx).Run(cfg)
	}
}

// NewLogger is KrakenD CE's logger choice without GELF and logstash: telemetry/logging when it is
// configured, otherwise lura's logger at DEBUG on stdout with the prefix KRAKEND.
func NewLogger(cfg config.ServiceConfig) logging.Logger {
	logger, err := gologging.NewLogger(cfg.ExtraConfig)
	if err == nil {
		logger.Debug("[SERVICE: telemetry/logging] Improved logging started.")
		return logger
	}
	fallback, ferr := logging.NewLogger("DEBUG", os.Stdout, "KRAKEND")
	if ferr != nil {
		fmt.Fprintln(os.Stderr, "gateway-harness: logger:", ferr)
		os.Exit(1)
	}
	if err != gologging.ErrWrongConfig {
		fallback.Error("[SERVICE: Logging] Unable to create the logger:", err.Error())
	}
	return fallback
}

// warnUsageReport stands for KrakenD CE's usage reporter. KrakenD CE sends a report to its vendor
// about 5 s after start unless USAGE_DISABLE=1; the harness never sends anything, but says loudly
// that the real gateway would, so that a missing setting is seen in every test log.
func warnUsageReport(logger logging.Logger) {
	if os.Getenv(UsageDisableEnv) == "1" {
		return
	}
	logger.Warning("[SERVICE: Telemetry] " + UsageDisableEnv + " is not 1: KrakenD CE would send a usage report to its vendor; the harness sends nothing")
}

// newBackendFactory is KrakenD CE's backend pipe for plain HTTP backends: lura's HTTP proxy with
// the request executor of plugin/http-client plugins.
func newBackendFactory(logger logging.Logger) proxy.BackendFactory {
	executorFactory := clientplugin.HTTPRequestExecutor(logger, func(*config.Backend) client.HTTPRequestExecutor {
		return client.DefaultHTTPRequestExecutor(client.NewHTTPClient)
	})
	return func(remote *config.Backend) proxy.Proxy {
		logger.Debug(fmt.Sprintf("[BACKEND: %s] Building the backend pipe", remote.URLPattern))
		return proxy.NewHTTPProxyWithHTTPExecutor(remote, executorFactory(remote), remote.Decoder)
	}
}

// NewEngine is lura's gin engine with KrakenD CE's NoRoute/NoMethod answers (X-KrakenD headers and
// the router's optional error_body).
func NewEngine(cfg config.ServiceConfig, opt luragin.EngineOptions) *gin.Engine {
	engine := luragin.NewEngine(cfg, opt)
	engine.NoRoute(defaultHandler)
	engine.NoMethod(defaultHandler)
	var opts struct {
		ErrorBody struct {
			Err404 interface{} `json:"404"`
			Err405 interface{} `json:"405"`
		} `json:"error_body"`
	}
	if v, ok := cfg.ExtraConfig[luragin.Namespace]; ok && v != nil {
		if b, err := json.Marshal(v); err == nil {
			_ = json.Unmarshal(b, &opts)
		}
	}
	if opts.ErrorBody.Err404 != nil {
		engine.NoRoute(jsonHandler(404, opts.ErrorBody.Err404))
	}
	if opts.ErrorBody.Err405 != nil {
		engine.NoMethod(jsonHandler(405, opts.ErrorBody.Err405))
	}
	return engine
}

func defaultHandler(c *gin.Context) {
	c.Header(core.KrakendHeaderName, core.KrakendHeaderValue)
	c.Header(serverhttp.CompleteResponseHeaderName, serverhttp.HeaderIncompleteResponseValue)
}

func jsonHandler(status int, v interface{}) gin.HandlerFunc {
	return func(c *gin.Context) {
		defaultHandler(c)
		c.JSON(status, v)
	}
}
