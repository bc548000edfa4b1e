// Command loadtest measures secret-proxy's GetSecret cache-hit path over
// loopback against a bare grpc-go server that answers the same bytes, with ghz
// as the load generator. It starts kv-emulator and secret-proxy as processes
// (100 declared secrets), and itself again as the bare server, so that each
// server's CPU time can be read from /proc/<pid>/stat.
//
//	loadtest run --bin ../../bin [--duration 10s] [--rounds 2] [--levels 1,8,64]
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
		return errors.New("usage: loadtest run|bare [flags]")
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
		if err := fs.Parse(args[1:]); err != nil {
			return err
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
		return runLoad(ctx, cfg, logger)
	}
	return fmt.Errorf("unknown subcommand %q: want run or bare", args[0])
}
