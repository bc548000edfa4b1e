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
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("secret-proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	check := fs.Bool("check", false, "validate the configuration, report every problem, and exit")
	configOnly := fs.Bool("config-only", false, "with --check: check the file alone, not the socket directory, token file and environment it needs (for CI, away from the pod)")
	showVersion := fs.Bool("version", false, "print the build information and exit")
	var o config.Overrides
	optString(fs, &o.VaultURL, "vault-url", "override vault.url")
	optString(fs, &o.GRPCListen, "grpc-listen", `override listen.grpc ("" turns TCP off)`)
	optString(fs, &o.UnixSocket, "unix-socket", "override listen.unix")
	optString(fs, &o.OpsListen, "ops-listen", "override listen.ops")
	optString(fs, &o.LogLevel, "log-level", "override log.level (debug, info, warn, error)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "secret-proxy: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *showVersion {
		fmt.Fprintf(stdout, "secret-proxy %s %s %s/%s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	}
	if *cfgPath == "" {
		fmt.Fprintln(stderr, "secret-proxy: --config FILE is required")
		return 2
	}
	cfg, err := config.LoadFile(*cfgPath)
	if err == nil {
		o.Apply(&cfg)
		err = cfg.Validate()
	} else if ps, ok := err.(config.Problems); ok {
		// Report the file's problems and the validation's together.
		o.Apply(&cfg)
		if verr := cfg.Validate(); verr != nil {
			ps = append(ps, verr.(config.Problems)...)
		}
		err = ps
	}
	if err == nil && !(*check && *configOnly) {
		// What start would refuse about files and the environment, --check
		// reports too.
		err = cfg.CheckEnvironment(os.Getenv)
	}
	if err != nil {
		fmt.Fprintf(stderr, "secret-proxy: %s: %v\n", *cfgPath, err)
		return 2
	}
	if *check {
		what := "configuration is valid"
		if *configOnly {
			what = "configuration file is valid (its files and environment not checked)"
		}
		fmt.Fprintf(stdout, "%s: %s (%d secrets declared)\n", *cfgPath, what, len(cfg.Secrets))
		return 0
	}
	if *configOnly {
		fmt.Fprintln(stderr, "secret-proxy: --config-only goes with --check")
		return 2
	}
	a, err := app.New(cfg, app.Options{Version: version})
	if err != nil {
		fmt.Fprintf(stderr, "secret-proxy: %v\n", err)
		// Every configuration error exits 2, also one found only now (a
		// file that changed since the check above).
		var ps config.Problems
		if errors.As(err, &ps) {
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

// optString defines a string flag that is nil unless given, so that an empty
// value (--grpc-listen "") can still override the file.
func optString(fs *flag.FlagSet, dst **string, name, usage string) {
	fs.Func(name, usage, func(v string) error {
		*dst = &v
		return nil
	})
}
