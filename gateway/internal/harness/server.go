package harness

import (
	"context"
	"fmt"
	ratelimitgin "github.com/krakendio/krakend-ratelimit/v3/router/gin"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/luraproject/lura/v2/config"
	"github.com/luraproject/lura/v2/logging"
	"github.com/luraproject/lura/v2/proxy"
	luragin "github.com/luraproject/lura/v2/router/gin"
	"github.com/luraproject/lura/v2/transport/http/server"

	"github.com/gin-gonic/gin"
)

// Options are the command-line overrides of the harness.
type Options struct {
	// Listen overrides listen_ip:port from the config (e.g. "127.0.0.1:0" in tests).
	Listen string
	// AddrFile, when set, receives the bound address once the listener is open.
	AddrFile string
}

// Run builds the lura gin router (the one KrakenD CE uses) for cfg and serves until ctx is done.
// Plugins must already be loaded and checked.
func Run(ctx context.Context, cfg config.ServiceConfig, ready *Readiness, opts Options, logger logging.Logger) error {
	engine := luragin.NewEngine(cfg, luragin.EngineOptions{Logger: logger, Writer: os.Stdout, Formatter: AccessLogFormatter})
	// gin trusts X-Forwarded-For from any peer by default, and lura sends gin's ClientIP to the plugin
	// as X-Forwarded-For: a client could then choose the IP that rate limits and CIDR allow-lists
	// see. Unless the router block says otherwise, the harness uses the TCP peer address.
	if !routerOptionSet(cfg, "forwarded_by_client_ip") {
		engine.ForwardedByClientIP = false
	}
	engine.GET(ready.Path, gin.WrapH(ready))

	runErr := make(chan error, 1)
	run := func(ctx context.Context, cfg config.ServiceConfig, h http.Handler) error {
		s := server.NewServerWithLogger(cfg, h, logger)
		addr := opts.Listen
		if addr == "" {
			addr = net.JoinHostPort(cfg.Address, strconv.Itoa(cfg.Port))
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			runErr <- err
			return err
		}
		if opts.AddrFile != "" {
			// Write to a temp file and rename, so a reader never sees a partial address.
			tmp := opts.AddrFile + ".tmp"
			if err := os.WriteFile(tmp, []byte(ln.Addr().String()), 0o644); err != nil {
				ln.Close()
				runErr <- err
				return err
			}
			if err := os.Rename(tmp, opts.AddrFile); err != nil {
				ln.Close()
				runErr <- err
				return err
			}
		}
		logger.Info(fmt.Sprintf("[HARNESS] listening on %s", ln.Addr()))
		done := make(chan error, 1)
		go func() { done <- s.Serve(ln) }()
		select {
		case err := <-done:
			runErr <- err
			return err
		case <-ctx.Done():
			shutdownCtx := context.Background()
			if cfg.MaxShutdownDuration > 0 {
				var cancel context.CancelFunc
				shutdownCtx, cancel = context.WithTimeout(shutdownCtx, cfg.MaxShutdownDuration)
				defer cancel()
			}
			err := s.Shutdown(shutdownCtx)
			runErr <- nil
			return err
		}
	}

	factory := luragin.NewFactory(luragin.Config{
		Engine:      engine,
		Middlewares: []gin.HandlerFunc{},
		// KrakenD CE's qos/ratelimit/router (krakend-ratelimit), wrapped around lura's endpoint handler
		// as KrakenD CE does; endpoints without that extra_config are passed through unchanged.
		HandlerFactory: ratelimitgin.NewRateLimiterMw(logger, luragin.CustomErrorEndpointHandler(logger, server.DefaultToHTTPError)),
		ProxyFactory:   proxy.DefaultFactory(logger),
		Logger:         logger,
		RunServer:      run,
	})
	factory.NewWithContext(ctx).Run(cfg)
	select {
	case err := <-runErr:
		if err == http.ErrServerClosed {
			return nil
		}
		return err
	default:
		return nil
	}
}

// AccessLogFormatter is gin's access-log line without the query string: query parameters of a
// payments API can carry personal or payment data (STD-API-034: no PII, tokens or payment data in
// logs), and the path, method, status, latency and client IP are what operations need.
func AccessLogFormatter(p gin.LogFormatterParams) string {
	path := p.Path
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i] + "?<query omitted>"
	}
	return fmt.Sprintf("[GIN] %s | %3d | %13v | %15s | %-7s %q\n",
		p.TimeStamp.Format("2006/01/02 - 15:04:05"), p.StatusCode, p.Latency, p.ClientIP, p.Method, path)
}

func routerOptionSet(cfg config.ServiceConfig, key string) bool {
	m, ok := cfg.ExtraConfig[luragin.Namespace].(map[string]interface{})
	if !ok {
		return false
	}
	_, ok = m[key]
	return ok
}
