package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	cmd "github.com/krakend/krakend-cobra/v2"
	"github.com/luraproject/lura/v2/logging"
	proxyplugin "github.com/luraproject/lura/v2/proxy/plugin"
	clientplugin "github.com/luraproject/lura/v2/transport/http/client/plugin"
	serverplugin "github.com/luraproject/lura/v2/transport/http/server/plugin"
	"github.com/spf13/cobra"
)

// LoadPlugins loads every plugin in folder whose file name contains pattern, with lura's three
// loaders in KrakenD CE's order. Like KrakenD CE, it never fails: load errors are logged at DEBUG,
// only the count of loaded plugins is logged at INFO, and the gateway starts regardless.
func LoadPlugins(ctx context.Context, folder, pattern string, logger logging.Logger) {
	logger.Debug("[SERVICE: Plugin Loader] Starting loading process")
	n, err := clientplugin.LoadWithLogger(folder, pattern, clientplugin.RegisterClient, logger)
	logLoadErrors(logger, "[SERVICE: Executor Plugin]", n, err)
	n, err = serverplugin.LoadWithLogger(folder, pattern, serverplugin.RegisterHandler, logger)
	logLoadErrors(logger, "[SERVICE: Handler Plugin]", n, err)
	n, err = proxyplugin.LoadWithLoggerAndContext(ctx, folder, pattern, proxyplugin.RegisterModifier, logger)
	logLoadErrors(logger, "[SERVICE: Modifier Plugin]", n, err)
	logger.Debug("[SERVICE: Plugin Loader] Loading process completed")
}

type multiError interface{ Errs() []error }

func errorTexts(err error) []string {
	if m, ok := err.(multiError); ok {
		out := make([]string, 0, len(m.Errs()))
		for _, e := range m.Errs() {
			out = append(out, e.Error())
		}
		return out
	}
	return []string{err.Error()}
}

func logLoadErrors(logger logging.Logger, tag string, n int, err error) {
	if err != nil {
		for _, t := range errorTexts(err) {
			logger.Debug(tag, t)
		}
	}
	if n > 0 {
		logger.Info(tag, "Total plugins loaded:", n)
	}
}

var modifierExpected bool

// NewTestPluginCmd is `test-plugin -m FILE.so ...`, as KrakenD CE's: each file is really loaded
// with lura's modifier loader; [OK]/[KO] per file, exit 1 if any failed. (The harness's plugins
// are request/response modifiers only, so -m is the one kind it tests.)
func NewTestPluginCmd() cmd.Command {
	c := &cobra.Command{
		Use:     "test-plugin [flags] [artifacts]",
		Short:   "Tests that one or more plugins are loadable into the gateway.",
		Example: "gateway-harness test-plugin -m ./out/plugins/simpaisa-plugin-filter-bridge.so",
		Run:     testPlugins,
	}
	return cmd.NewCommand(c, cmd.BoolFlagBuilder(&modifierExpected, "modifier", "m", false, "The artifact should contain a Req/Resp Modifier Plugin."))
}

func testPlugins(c *cobra.Command, args []string) {
	if len(args) == 0 {
		c.Println("At least one plugin is required.")
		os.Exit(1)
	}
	if !modifierExpected {
		c.Println("You must declare the expected type of the plugin.")
		os.Exit(1)
	}
	start := time.Now()
	failed := 0
	for _, path := range args {
		if _, err := os.Stat(path); err != nil {
			c.Println(fmt.Sprintf("[KO] Unable to open the plugin %s.", path))
			failed++
			continue
		}
		name, folder := filepath.Base(path), filepath.Dir(path)
		n, err := proxyplugin.LoadWithLoggerAndContext(context.Background(), folder, name, proxyplugin.RegisterModifier, logging.NoOp)
		switch {
		case err != nil:
			c.Println(fmt.Sprintf("[KO] MODIFIER\t%s: %s", name, strings.Join(errorTexts(err), "; ")))
			failed++
		case n == 0:
			c.Println(fmt.Sprintf("[KO] MODIFIER\t%s: no modifier plugin loaded", name))
			failed++
		default:
			c.Println(fmt.Sprintf("[OK] MODIFIER\t%s", name))
		}
	}
	if failed > 0 {
		c.Println(fmt.Sprintf("[KO] %d tested plugin(s) in %s.\n%d plugin(s) failed.", len(args), time.Since(start), failed))
		os.Exit(1)
	}
	c.Println(fmt.Sprintf("[OK] %d tested plugin(s) in %s", len(args), time.Since(start)))
}
