// Command gateway-harness is the project's stand-in for KrakenD CE 2.12.1 in tests: the same
// command line (krakend-cobra), the same config parser (krakend-koanf), the same logger
// (krakend-gologging), router (lura's gin), plugin loaders and qos/ratelimit/router
// (krakend-ratelimit), at KrakenD CE 2.12.1's module versions, wired the way KrakenD CE wires them.
// It keeps KrakenD CE's weaknesses on purpose, so that our tests see what production sees: a plugin
// that fails to load, or an endpoint naming an unknown plugin, is served WITHOUT the plugin.
// See docs/gateway-harness.md.
//
//	gateway-harness run -c krakend.json [-p PORT] [-d]
//	gateway-harness check -c krakend.json [--lint-no-network]    (KrakenD 2.12's schema, built in)
//	gateway-harness test-plugin -m plugin.so ...
//	gateway-harness check-plugin -g 1.25.6 -l glibc-2.36 -s go.sum
//	gateway-harness verify-plugin -g 1.25.6 -l glibc-2.36 plugin.so   (ours: the built .so itself)
package main

import (
	"context"
	_ "embed"
	"log"
	"os"
	"os/signal"
	"syscall"

	cmd "github.com/krakend/krakend-cobra/v2"
	koanf "github.com/krakend/krakend-koanf"
	"github.com/luraproject/lura/v2/config"

	"bitbucket.org/simpaisa/simpaisa-gateway-harness/internal/harness"
)

// KrakenD's published JSON schema for v2.12 configs (krakend check --lint-no-network).
//
//go:embed schema/schema.json
var rawSchema string

func main() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case sig := <-sigs:
			log.Println("Signal intercepted:", sig)
			cancel()
		case <-ctx.Done():
		}
	}()

	for alias, ns := range harness.Aliases {
		config.ExtraConfigAlias[alias] = ns
	}

	commands := []cmd.Command{
		cmd.RunCommand,
		cmd.NewCheckCmd(rawSchema),
		cmd.PluginCommand,
		cmd.VersionCommand,
		harness.NewTestPluginCmd(),
		harness.NewVerifyPluginCmd(),
	}
	cmd.DefaultRoot = cmd.NewRoot(cmd.RootCommand, commands...)
	cmd.DefaultRoot.Cmd.Use = "gateway-harness"
	cmd.DefaultRoot.Cmd.CompletionOptions.DisableDefaultCmd = true
	cmd.Execute(koanf.New(), harness.NewExecutor(ctx))
}
