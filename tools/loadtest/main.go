// Command loadtest measures secret-proxy's GetSecret cache-hit path over
// loopback against a bare grpc-go server that answers the same bytes, with ghz
// as the load generator. It starts kv-emulator and secret-proxy as processes
// through e2e/pod, the repository's one process harness (100 declared
// secrets), and itself again as the bare server, so that each server's CPU
// time can be read from /proc/<pid>/stat.
//
//	loadtest run --bin ../../bin [--duration 10s] [--rounds 2] [--levels 1,8,64] [--before DIR] [--profile DIR]
//	loadtest idle --bin ../../bin [--secrets 100,200] [--interval 10s] [--window 30s] [--profile DIR]
//
// `idle` states what each extra 1,000 declared secrets cost a sidecar that
// serves no calls: idle RSS, and the CPU of refreshing them. --profile needs a
// secret-proxy built with -tags grpcnotrace,pprof; it writes CPU profiles of
// the sidecar under load and heap profiles at idle into DIR.
//
// The report (markdown) goes to standard output; progress goes to standard error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, os.Args[1:], logger); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, logger *slog.Logger) error {
	if len(args) == 0 {
		return errors.New("usage: loadtest run|idle|bare [flags]")
	}
	switch args[0] {
	case "bare":
		fs := flag.NewFlagSet("bare", flag.ContinueOnError)
		listen := fs.String("listen", "127.0.0.1:0", "address to listen on (loopback)")
		respFile := fs.String("response", "", "file holding the serialized GetSecretResponse to answer with")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return serveBare(ctx, *listen, *respFile)
	case "run":
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		var cfg runConfig
		fs.StringVar(&cfg.binDir, "bin", "bin", "directory holding secret-proxy and kv-emulator")
		fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "load duration per level and server")
		fs.IntVar(&cfg.rounds, "rounds", 2, "interleaved rounds")
		levels := fs.String("levels", "1,8,64", "concurrency levels")
		fs.IntVar(&cfg.secrets, "secrets", 100, "declared secrets")
		fs.StringVar(&cfg.beforeDir, "before", "", "a second bin directory whose secret-proxy is measured in the same rounds, as \"before\" (a before/after comparison under the same machine load)")
		fs.StringVar(&cfg.profileDir, "profile", "", "write the sidecar's CPU profiles under load and its idle heap profile into this directory (a -tags pprof build)")
		verbose := fs.Bool("v", false, "copy the programs' output to standard error")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *verbose {
			cfg.output = os.Stderr
		}
		if cfg.secrets < 43 {
			return errors.New("--secrets: want at least 43 (the calls ask for secret-042)")
		}
		for _, l := range strings.Split(*levels, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(l))
			if err != nil || n < 1 || n > 1024 {
				return fmt.Errorf("--levels: %q is not a concurrency between 1 and 1024", l)
			}
			cfg.levels = append(cfg.levels, n)
		}
		if cfg.rounds < 1 || cfg.rounds > 10 {
			return errors.New("--rounds: want 1..10")
		}
		if cfg.duration < time.Second || cfg.duration > 2*time.Minute {
			return errors.New("--duration: want 1s..2m")
		}
		if err := mkProfileDir(cfg.profileDir); err != nil {
			return err
		}
		return runLoad(ctx, cfg, logger)
	case "idle":
		fs := flag.NewFlagSet("idle", flag.ContinueOnError)
		var cfg idleConfig
		fs.StringVar(&cfg.binDir, "bin", "bin", "directory holding secret-proxy and kv-emulator")
		counts := fs.String("secrets", "100,200", "declared secrets, one pod per count and round (config allows at most 200 per pod; the report scales the difference to 1,000)")
		fs.IntVar(&cfg.rounds, "rounds", 2, "interleaved rounds")
		fs.DurationVar(&cfg.interval, "interval", 10*time.Second, "refresh.interval of the sidecar")
		fs.DurationVar(&cfg.window, "window", 30*time.Second, "how long refresh CPU is measured")
		fs.StringVar(&cfg.profileDir, "profile", "", "write idle heap profiles into this directory (a -tags pprof build)")
		verbose := fs.Bool("v", false, "copy the programs' output to standard error")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *verbose {
			cfg.output = os.Stderr
		}
		for _, c := range strings.Split(*counts, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(c))
			if err != nil || n < 1 {
				return fmt.Errorf("--secrets: %q is not a positive count", c)
			}
			cfg.counts = append(cfg.counts, n)
		}
		if cfg.rounds < 1 || cfg.rounds > 10 {
			return errors.New("--rounds: want 1..10")
		}
		if cfg.interval < time.Second || cfg.window < cfg.interval || cfg.window > 10*time.Minute {
			return errors.New("--interval and --window: want interval >= 1s and interval <= window <= 10m")
		}
		if err := mkProfileDir(cfg.profileDir); err != nil {
			return err
		}
		return runIdle(ctx, cfg, logger)
	}
	return fmt.Errorf("unknown subcommand %q: want run, idle or bare", args[0])
}

func mkProfileDir(dir string) error {
	if dir == "" {
		return nil
	}
	return os.MkdirAll(dir, 0o755)
}
