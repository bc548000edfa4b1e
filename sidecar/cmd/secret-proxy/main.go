// Command secret-proxy serves Azure Key Vault secrets, cached and refreshed,
// to the application in the same pod over localhost gRPC.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/secretproxy/secretproxy/sidecar/internal/app"
	"github.com/secretproxy/secretproxy/sidecar/internal/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	tuneRuntime(os.LookupEnv)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, code, done := parseFlags(args, stdout, stderr)
	if done {
		return code
	}
	// Every configuration problem at once, the file's and the environment's
	// alike; all of them exit 2.
	cfg, err := config.Load(config.Source{Path: f.config, Overrides: f.overrides, FileOnly: f.configOnly})
	if err != nil {
		fmt.Fprintf(stderr, "secret-proxy: %s: %v\n", f.config, err)
		return 2
	}
	if f.check {
		what := "configuration is valid"
		if f.configOnly {
			what = "configuration file is valid (its files and environment not checked)"
		}
		fmt.Fprintf(stdout, "%s: %s (%d secrets declared)\n", f.config, what, len(cfg.Secrets))
		return 0
	}
	a, err := app.New(cfg, app.Options{Version: version})
	if err != nil {
		fmt.Fprintf(stderr, "secret-proxy: %v\n", err)
		// Every configuration error exits 2, also one found only now (the
		// environment changed since the load above).
		if errors.Is(err, config.ErrInvalid) {
			return 2
		}
		return 1
	}
	if err := a.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "secret-proxy: %v\n", err)
		return 1
	}
	return 0
}

// flags are the command line.
type flags struct {
	config            string
	check, configOnly bool
	overrides         config.Overrides
}

// parseFlags reads the command line. done says run has nothing more to do and
// should exit with code: --help, --version, or a usage error it reported.
func parseFlags(args []string, stdout, stderr io.Writer) (f flags, code int, done bool) {
	fs := flag.NewFlagSet("secret-proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "config", "", "configuration file (YAML)")
	fs.BoolVar(&f.check, "check", false, "validate the configuration, report every problem, and exit")
	fs.BoolVar(&f.configOnly, "config-only", false, "with --check: check the file alone, not the socket directory, token file and environment it needs (for CI, away from the pod)")
	showVersion := fs.Bool("version", false, "print the build information and exit")
	o := &f.overrides
	optString(fs, &o.VaultURL, "vault-url", "override vault.url")
	optString(fs, &o.GRPCListen, "grpc-listen", `override listen.grpc ("" turns TCP off)`)
	optString(fs, &o.UnixSocket, "unix-socket", "override listen.unix")
	optString(fs, &o.OpsListen, "ops-listen", "override listen.ops")
	optString(fs, &o.LogLevel, "log-level", "override log.level (debug, info, warn, error)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return f, 0, true
		}
		return f, 2, true
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "secret-proxy: unexpected arguments %q\n", fs.Args())
		return f, 2, true
	case *showVersion:
		fmt.Fprintf(stdout, "secret-proxy %s %s %s/%s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return f, 0, true
	case f.config == "":
		fmt.Fprintln(stderr, "secret-proxy: --config FILE is required")
		return f, 2, true
	case f.configOnly && !f.check:
		fmt.Fprintln(stderr, "secret-proxy: --config-only goes with --check")
		return f, 2, true
	}
	return f, 0, false
}

// optString defines a string flag that is nil unless given, so that an empty
// value (--grpc-listen "") can still override the file.
func optString(fs *flag.FlagSet, dst **string, name, usage string) {
	fs.Func(name, usage, func(v string) error {
		*dst = &v
		return nil
	})
}
