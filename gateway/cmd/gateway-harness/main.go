// Command gateway-harness is the gateway harness (lura v2.13.0): a minimal gateway built from the
// framework KrakenD CE is built on, loading request-modifier plugins with lura's loader exactly as
// KrakenD CE does, reading a KrakenD-format (version 3) JSON config and serving through lura's gin
// router. It is NOT KrakenD CE (which the Go module proxy refuses here); see docs/gateway-harness.md.
//
//	gateway-harness -c conf/gateway.example.json [-listen 127.0.0.1:0] [-addr-file F] [-l INFO]
//	gateway-harness -check -c conf/gateway.example.json   parse, load plugins, check; exit 0/1
//	gateway-harness -test-plugin out/plugins/simpaisa-plugin-filter-bridge.so   like `krakend test-plugin`
//	gateway-harness -check-plugin out/plugins/simpaisa-plugin-filter-bridge.so  like `krakend check-plugin`
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/luraproject/lura/v2/logging"

	"bitbucket.org/simpaisa/simpaisa-gateway-harness/internal/harness"
)

func main() {
	os.Exit(run())
}

func run() int {
	cfgPath := flag.String("c", "", "KrakenD-format JSON config (version 3)")
	testPlugin := flag.String("test-plugin", "", "load this modifier plugin .so with lura's loader, report, and exit 0 (loaded) or 1")
	checkPlugin := flag.String("check-plugin", "", "compare this plugin .so's build info (toolchain, settings, shared modules) with the harness's; exit 0 (compatible) or 1")
	check := flag.Bool("check", false, "parse the config, load the plugins, run every start-up check, then exit 0 or 1")
	level := flag.String("l", "INFO", "log level: DEBUG, INFO, WARNING, ERROR, CRITICAL")
	listen := flag.String("listen", "", "override listen_ip:port from the config (e.g. 127.0.0.1:0)")
	addrFile := flag.String("addr-file", "", "write the bound address to this file once listening")
	flag.Parse()

	logger, err := logging.NewLogger(strings.ToUpper(*level), os.Stdout, "[GATEWAY-HARNESS]")
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway-harness:", err)
		return 2
	}

	harness.SetIdentity()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *checkPlugin != "" {
		problems, err := harness.CheckPlugin(*checkPlugin)
		if err != nil {
			fmt.Printf("[KO] %s: %v\n", *checkPlugin, err)
			return 1
		}
		if len(problems) > 0 {
			for _, p := range problems {
				fmt.Printf("[KO] %s: %s\n", *checkPlugin, p)
			}
			return 1
		}
		fmt.Printf("[OK] %s: same toolchain, build settings and shared module versions as the harness\n", *checkPlugin)
		return 0
	}
	if *testPlugin != "" {
		reg, err := harness.TestPlugin(ctx, *testPlugin, logger)
		if err != nil {
			fmt.Printf("[KO] %s: %v\n", *testPlugin, err)
			return 1
		}
		fmt.Printf("[OK] %s: request modifiers %v, response modifiers %v\n", *testPlugin, reg.Request, reg.Response)
		return 0
	}

	if *cfgPath == "" {
		fmt.Fprintln(os.Stderr, "gateway-harness: -c CONFIG is required")
		return 2
	}
	cfg, err := harness.LoadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway-harness: refusing to start:", err)
		return 1
	}
	if cfg.Plugin != nil && cfg.Plugin.Folder != "" {
		// KrakenD CE logs a failed plugin load and serves anyway; the harness refuses to start.
		reg, n, err := harness.LoadPlugins(ctx, cfg.Plugin.Folder, cfg.Plugin.Pattern, logger)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gateway-harness: refusing to start: plugin load:", err)
			return 1
		}
		logger.Info(fmt.Sprintf("[HARNESS] %d plugin(s) loaded: request modifiers %v, response modifiers %v", n, reg.Request, reg.Response))
	}
	if err := harness.CheckModifiersRegistered(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "gateway-harness: refusing to start:", err)
		return 1
	}
	ready, err := harness.NewReadiness(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway-harness: refusing to start:", err)
		return 1
	}
	if *check {
		fmt.Printf("[OK] %s: %d endpoint(s), plugins registered, readiness at %s\n", *cfgPath, len(cfg.Endpoints), ready.Path)
		return 0
	}
	if err := harness.Run(ctx, cfg, ready, harness.Options{Listen: *listen, AddrFile: *addrFile}, logger); err != nil {
		fmt.Fprintln(os.Stderr, "gateway-harness:", err)
		return 1
	}
	return 0
}
