// Command fleet measures a fleet of real secret-proxy processes against one
// kv-emulator whose vault-wide rate limit is scaled so that the fleet needs
// several 10 s budgets to load (`make fleet`; docs/scale.md has the results).
//
//	fleet --bin bin --dir .fleet [--pods 200] [--secrets 4] [--interval 2m] [--svg fleet.svg]
//
// Phases: rollout (every sidecar started within --rollout), steady state for
// two refresh intervals with a rotation at its start, a vault outage, then
// memory. It prints a table and writes an SVG chart of the vault's requests
// per second against the limit. Every process it starts is stopped at the end
// (and, through Pdeathsig, if it dies).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

type options struct {
	bin, dir, svg, table  string
	pods, secrets, factor int
	interval, minInterval time.Duration
	rollout, outage       time.Duration
	timeout               time.Duration
	poll                  time.Duration
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.bin, "bin", "bin", "directory holding secret-proxy and kv-emulator (make build)")
	fs.StringVar(&o.dir, "dir", ".fleet", "working directory (configuration files and sockets); emptied first")
	fs.StringVar(&o.svg, "svg", "", "write the chart here (default DIR/fleet.svg)")
	fs.StringVar(&o.table, "table", "", "also write the table (Markdown) here")
	fs.IntVar(&o.pods, "pods", 200, "sidecar processes")
	fs.IntVar(&o.secrets, "secrets", 4, "secrets each sidecar declares")
	fs.IntVar(&o.factor, "budget-factor", 5, "the vault's 10 s budget is pods x secrets / this: the fleet needs this many budgets to load")
	fs.DurationVar(&o.interval, "interval", 2*time.Minute, "refresh.interval of every sidecar")
	fs.DurationVar(&o.minInterval, "min-interval", 5*time.Second, "refresh.minInterval (the first back-off step)")
	fs.DurationVar(&o.rollout, "rollout", 10*time.Second, "start every sidecar within this time")
	fs.DurationVar(&o.outage, "outage", 30*time.Second, "how long the vault is down")
	fs.DurationVar(&o.timeout, "timeout", 20*time.Minute, "give up (and stop everything) after this long")
	fs.DurationVar(&o.poll, "poll", time.Second, "how often every sidecar is asked (ListSecrets) during rotation and recovery")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var problems []error
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Errorf("unexpected arguments %q: every option is a flag", fs.Args()))
	}
	if o.pods < 1 || o.pods > 5000 {
		problems = append(problems, fmt.Errorf("--pods %d: want 1 to 5000", o.pods))
	}
	if o.secrets < 1 || o.secrets > 100 {
		problems = append(problems, fmt.Errorf("--secrets %d: want 1 to 100", o.secrets))
	}
	if o.factor < 1 {
		problems = append(problems, fmt.Errorf("--budget-factor %d: want at least 1", o.factor))
	}
	if o.interval < 10*time.Second || o.minInterval <= 0 || o.minInterval > o.interval {
		problems = append(problems, fmt.Errorf("--interval %s / --min-interval %s: want an interval of at least 10s and 0 < min-interval <= interval", o.interval, o.minInterval))
	}
	if o.rollout < 0 || o.outage <= 0 || o.poll <= 0 || o.timeout <= 0 {
		problems = append(problems, errors.New("--rollout, --outage, --poll and --timeout must be positive"))
	}
	if o.svg == "" {
		o.svg = filepath.Join(o.dir, "fleet.svg")
	}
	return o, errors.Join(problems...)
}

// limit is the vault's budget per 10 s: the fleet's first load needs factor of them.
func (o options) limit() int {
	return max(1, (o.pods*o.secrets+o.factor-1)/o.factor)
}

func run(ctx context.Context, args []string, out io.Writer) error {
	o, err := parseFlags(args, os.Stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	f, err := startFleet(ctx, o, out)
	if f != nil {
		defer f.stop(out)
	}
	if err != nil {
		return err
	}
	rep, err := f.measure(ctx)
	if err != nil {
		return err
	}
	table := rep.table()
	fmt.Fprintln(out)
	fmt.Fprint(out, table)
	if o.table != "" {
		if err := os.WriteFile(o.table, []byte(table), 0o644); err != nil {
			return fmt.Errorf("write --table: %w", err)
		}
	}
	if err := os.WriteFile(o.svg, []byte(rep.svg()), 0o644); err != nil {
		return fmt.Errorf("write the chart: %w", err)
	}
	fmt.Fprintf(out, "\nchart: %s\n", o.svg)
	return nil
}
