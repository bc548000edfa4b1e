// Command orderapp serves client orders from the orders database. It holds no
// database credential: every subcommand reads them from the secret-proxy
// sidecar and follows their rotation.
//
//	orderapp serve   [common flags] [--listen 127.0.0.1:8080]
//	orderapp migrate [common flags]
//	orderapp seed    [common flags] --clients N --orders-per-client M [--seed S]
//	orderapp export  [common flags] --client ID [--from YYYY-MM-DD] [--to YYYY-MM-DD] --format csv|json
//	orderapp check   --url URL --client ID [--sidecar-ops HOST:PORT --secret NAME ...] [--timeout D]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/secretproxy/secretproxy/proto/client"

	"github.com/secretproxy/secretproxy/orderapp/internal/app"
	"github.com/secretproxy/secretproxy/orderapp/internal/check"
	"github.com/secretproxy/secretproxy/orderapp/internal/dialect"
	"github.com/secretproxy/secretproxy/orderapp/internal/export"
	"github.com/secretproxy/secretproxy/orderapp/internal/orders"
	"github.com/secretproxy/secretproxy/orderapp/internal/secrets"
	"github.com/secretproxy/secretproxy/orderapp/internal/seed"
)

const usage = `usage: orderapp <serve|migrate|seed|export|check> [flags]

Credentials come only from the secret-proxy sidecar (--sidecar). "check"
verifies a deployment from outside (the chart's helm test) and needs none. Run
"orderapp <command> -h" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "orderapp:", err)
		os.Exit(1)
	}
}

// common are the flags every subcommand takes.
type common struct {
	sidecar, tokenFile, driver string
	dbAuth, tokenScope         string
	names                      secrets.Names
	logLevel, logFormat        string
	timeout                    time.Duration
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.sidecar, "sidecar", "127.0.0.1:50051", "the sidecar's gRPC address: unix:///path/grpc.sock or host:port")
	fs.StringVar(&c.tokenFile, "sidecar-token-file", "", "file holding the sidecar's bearer token (optional)")
	fs.StringVar(&c.driver, "db-driver", "sqlserver", "database driver: sqlserver, postgres or sqlite (sqlite has no login)")
	fs.StringVar(&c.dbAuth, "db-auth", app.AuthPassword, "database login: password (db-user and db-password from the sidecar) or entra (an access token of the pod's identity from the sidecar per connection; no password secret)")
	fs.StringVar(&c.tokenScope, "db-token-scope", "", "with --db-auth entra: the token scope (default: the driver's, "+client.ScopeAzureSQL+" or for postgres "+client.ScopeAzurePostgres+")")
	d := secrets.DefaultNames()
	fs.StringVar(&c.names.Server, "secret-server", d.Server, "sidecar secret holding the database server (host or host:port)")
	fs.StringVar(&c.names.User, "secret-user", d.User, "sidecar secret holding the database user")
	fs.StringVar(&c.names.Password, "secret-password", d.Password, "sidecar secret holding the database password")
	fs.StringVar(&c.names.Database, "secret-name", d.Database, "sidecar secret holding the database name (for sqlite: the file path)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "json", "json or text")
	fs.DurationVar(&c.timeout, "connect-timeout", 2*time.Minute, "one-shot commands: how long to wait for working credentials")
}

func (c *common) config(stderr io.Writer) (app.Config, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.logLevel)); err != nil {
		return app.Config{}, fmt.Errorf("--log-level %q: use debug, info, warn or error", c.logLevel)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler
	switch c.logFormat {
	case "json":
		h = slog.NewJSONHandler(stderr, opts)
	case "text":
		h = slog.NewTextHandler(stderr, opts)
	default:
		return app.Config{}, fmt.Errorf("--log-format %q: use json or text", c.logFormat)
	}
	d, err := dialect.Parse(c.driver)
	if err != nil {
		return app.Config{}, fmt.Errorf("--db-driver: %w", err)
	}
	cfg := app.Config{Sidecar: c.sidecar, SidecarTokenFile: c.tokenFile, Driver: d, Names: c.names,
		DBAuth: c.dbAuth, TokenScope: c.tokenScope, Logger: slog.New(h)}
	return cfg, cfg.Validate()
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("missing command")
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("orderapp "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if cmd == "check" {
		// No database and no sidecar socket: check talks HTTP to the Service
		// and to the sidecars' ops ports, so it takes none of the common flags.
		return runCheck(ctx, fs, args, stdout)
	}
	var c common
	c.register(fs)
	switch cmd {
	case "serve":
		listen := fs.String("listen", "127.0.0.1:8080", "HTTP listen address")
		if err := parse(fs, args); err != nil {
			return err
		}
		return withApp(c, stderr, func(a *app.App) error {
			ln, err := net.Listen("tcp", *listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", *listen, err)
			}
			return a.Serve(ctx, ln)
		})
	case "migrate":
		if err := parse(fs, args); err != nil {
			return err
		}
		return oneShot(ctx, c, stderr, func(ctx context.Context, a *app.App) error { return a.Migrate(ctx) })
	case "seed":
		var o seed.Options
		fs.IntVar(&o.Clients, "clients", 100, "number of clients")
		fs.IntVar(&o.OrdersPerClient, "orders-per-client", 20, "orders per client (1 to 5 lines each)")
		fs.Uint64Var(&o.Seed, "seed", 1, "random seed: the same seed writes the same data")
		if err := parse(fs, args); err != nil {
			return err
		}
		if err := o.Validate(); err != nil {
			return err
		}
		return oneShot(ctx, c, stderr, func(ctx context.Context, a *app.App) error { return a.Seed(ctx, o) })
	case "export":
		client := fs.Int64("client", 0, "client id (required)")
		from := fs.String("from", "", "first order date, inclusive (YYYY-MM-DD)")
		to := fs.String("to", "", "last order date, inclusive (YYYY-MM-DD)")
		// No default: docs/reference/orderapp.md makes --format required, so a
		// pipeline never gets a format it did not ask for.
		format := fs.String("format", "", "csv or json (one object per line); required")
		if err := parse(fs, args); err != nil {
			return err
		}
		f, err := exportArgs(*client, *from, *to, *format)
		if err != nil {
			return err
		}
		return oneShot(ctx, c, stderr, func(ctx context.Context, a *app.App) error {
			return a.Export(ctx, stdout, *format, *client, f)
		})
	case "-h", "--help", "help":
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

// EnvPrefix names the environment variables that set flags: ORDERAPP_DB_AUTH
// sets --db-auth. A flag on the command line wins over its variable.
const EnvPrefix = "ORDERAPP_"

// envName is the variable of a flag: --db-auth is ORDERAPP_DB_AUTH.
func envName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets every flag whose variable is set and not empty.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", envName(f.Name), err))
			}
		}
	})
	return errors.Join(errs...)
}

// runCheck is `orderapp check`, the chart's helm test (charts/orderapp/templates/tests).
func runCheck(ctx context.Context, fs *flag.FlagSet, args []string, stdout io.Writer) error {
	var cfg check.Config
	var secretList stringList
	fs.StringVar(&cfg.AppURL, "url", "", "the application's base URL through its Service, e.g. http://orders-orderapp.shop.svc:80 (required)")
	fs.Int64Var(&cfg.ClientID, "client", 1, "a client whose orders must be served")
	fs.StringVar(&cfg.SidecarOps, "sidecar-ops", "", "host:port resolving to every pod's sidecar ops listener (a headless Service); empty skips the sidecar check")
	fs.Var(&secretList, "secret", "a declared secret every sidecar must have loaded and not stale (repeat the flag)")
	fs.DurationVar(&cfg.Timeout, "timeout", 2*time.Minute, "how long to retry before failing")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg.Secrets = secretList
	cfg.Out = stdout
	if err := check.Run(ctx, cfg); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "check passed")
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := applyEnv(fs, os.Getenv); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return nil
}

func exportArgs(client int64, from, to, format string) (orders.Filter, error) {
	var probs []string
	var f orders.Filter
	if client <= 0 {
		probs = append(probs, "--client must be a positive client id")
	}
	if format == "" {
		probs = append(probs, "--format is required: csv or json")
	} else if _, err := export.ParseFormat(format); err != nil {
		probs = append(probs, "--format: "+err.Error())
	}
	for _, p := range []struct {
		flag, v string
		dst     *orders.Date
	}{{"--from", from, &f.From}, {"--to", to, &f.To}} {
		if p.v == "" {
			continue
		}
		d, err := orders.ParseBound(p.v)
		if err != nil {
			probs = append(probs, p.flag+" must be a date as YYYY-MM-DD, from 0001-01-02")
			continue
		}
		*p.dst = d
	}
	if len(probs) == 0 {
		if err := f.Validate(); err != nil {
			probs = append(probs, err.Error())
		}
	}
	if len(probs) > 0 {
		return f, errors.New(strings.Join(probs, "; "))
	}
	return f, nil
}

func withApp(c common, stderr io.Writer, fn func(*app.App) error) error {
	cfg, err := c.config(stderr)
	if err != nil {
		return err
	}
	a, err := app.New(cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	return fn(a)
}

// oneShot connects (bounded by --connect-timeout) and runs fn.
func oneShot(ctx context.Context, c common, stderr io.Writer, fn func(context.Context, *app.App) error) error {
	return withApp(c, stderr, func(a *app.App) error {
		cctx, cancel := context.WithTimeout(ctx, c.timeout)
		err := a.Connect(cctx)
		cancel()
		if err != nil {
			return fmt.Errorf("connect to the database: %w", err)
		}
		return fn(ctx, a)
	})
}
