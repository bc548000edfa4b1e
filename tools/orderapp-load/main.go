// Command orderapp-load measures the order application end to end: it starts a
// fake sidecar (proto/secretproxytest) that serves SQLite credentials, runs the
// real orderapp binary (through e2e/pod, the one process harness) to migrate,
// seed, export and serve, and attacks
// GET /api/v1/clients/{id}/orders?limit=100 with vegeta. It reports seed speed,
// export memory, throughput and latency percentiles, and how many sidecar calls
// the attack caused (none: credentials are read once per rotation, not per query).
//
//	go build -o bin/orderapp ./orderapp/cmd/orderapp
//	cd tools/orderapp-load && GOWORK=off go run . -bin ../../bin/orderapp
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/secretproxy/secretproxy/e2e/pod"
	"github.com/secretproxy/secretproxy/proto/secretproxytest"
)

type options struct {
	bin          string
	clients      int
	orders       int
	duration     time.Duration
	rate         int
	workers      uint64
	limit        int
	exportOrders int
	dir          string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/orderapp", "the orderapp binary")
	flag.IntVar(&o.clients, "clients", 10000, "clients to seed")
	flag.IntVar(&o.orders, "orders-per-client", 100, "orders per client")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "attack duration (keep it at most 60s on a shared machine)")
	flag.IntVar(&o.rate, "rate", 0, "requests per second; 0: as fast as the workers go")
	flag.Uint64Var(&o.workers, "workers", 16, "concurrent vegeta workers")
	flag.IntVar(&o.limit, "limit", 100, "limit parameter of the request")
	flag.IntVar(&o.exportOrders, "export-orders", 0, "also measure an export of one client with this many orders (0: skip)")
	flag.StringVar(&o.dir, "dir", "", "work directory (default: a new temporary one, removed at the end)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "orderapp-load:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.duration <= 0 || o.duration > 60*time.Second {
		return errors.New("-duration must be between 0 and 60s")
	}
	dir := o.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "orderapp-load-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return err
	}
	if o.exportOrders > 0 {
		if err := measureExport(bin, dir, o.exportOrders); err != nil {
			return err
		}
	}

	sc, common, st, seedTime, err := seedDatabase(bin, dir, "orders", o.clients, o.orders)
	if err != nil {
		return err
	}
	defer sc.Stop()
	fmt.Printf("seed: %d clients, %d orders, %d order lines in %s (%.0f lines/s, whole process)\n",
		st.Clients, st.Orders, st.Lines, seedTime.Round(time.Millisecond), float64(st.Lines)/seedTime.Seconds())

	addr, err := pod.FreeAddr()
	if err != nil {
		return err
	}
	base := "http://" + addr
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	serve, err := pod.StartReady(ctx, pod.Spec{
		Name: "orderapp", Path: bin, Env: os.Environ(), Output: os.Stderr,
		Args: append([]string{"serve", "--listen", addr, "--log-level", "warn"}, common...),
	}, base+"/readyz")
	cancel()
	if err != nil {
		return err
	}
	defer serve.Stop(10 * time.Second)

	before := calls(sc)
	rng := rand.New(rand.NewPCG(1, 2))
	targeter := func(t *vegeta.Target) error {
		t.Method = http.MethodGet
		t.URL = fmt.Sprintf("%s/api/v1/clients/%d/orders?limit=%d", base, 1+rng.IntN(o.clients), o.limit)
		return nil
	}
	attacker := vegeta.NewAttacker(vegeta.Workers(o.workers), vegeta.MaxWorkers(o.workers), vegeta.KeepAlive(true), vegeta.Timeout(10*time.Second))
	var m vegeta.Metrics
	for res := range attacker.Attack(targeter, vegeta.Rate{Freq: o.rate, Per: time.Second}, o.duration, "orders") {
		m.Add(res)
	}
	m.Close()
	after := calls(sc)

	fmt.Printf("attack: GET /api/v1/clients/{random 1..%d}/orders?limit=%d, %d workers, rate %s, %s\n",
		o.clients, o.limit, o.workers, rateText(o.rate), o.duration)
	fmt.Printf("requests %d, throughput %.1f/s, success %.2f%%, status codes %v\n", m.Requests, m.Throughput, m.Success*100, m.StatusCodes)
	fmt.Printf("latency mean %s, p50 %s, p90 %s, p95 %s, p99 %s, max %s\n",
		m.Latencies.Mean.Round(time.Microsecond), m.Latencies.P50.Round(time.Microsecond), m.Latencies.P90.Round(time.Microsecond),
		m.Latencies.P95.Round(time.Microsecond), m.Latencies.P99.Round(time.Microsecond), m.Latencies.Max.Round(time.Microsecond))
	fmt.Printf("bytes in mean %.0f per response\n", m.BytesIn.Mean)
	fmt.Printf("sidecar calls during the attack: GetSecret %d, RefreshSecret %d, WatchSecrets (new streams) %d; open watch streams %d\n",
		after["GetSecret"]-before["GetSecret"], after["RefreshSecret"]-before["RefreshSecret"], after["WatchSecrets"]-before["WatchSecrets"], sc.Watchers())
	if len(m.Errors) > 0 {
		fmt.Printf("errors: %v\n", m.Errors)
	}
	return nil
}

func rateText(r int) string {
	if r == 0 {
		return "unlimited"
	}
	return strconv.Itoa(r) + "/s"
}

func calls(sc *secretproxytest.Server) map[string]int {
	out := map[string]int{}
	for _, m := range []string{"GetSecret", "RefreshSecret", "WatchSecrets"} {
		out[m] = sc.Calls(m)
	}
	return out
}

// orderapp runs a one-shot command to its end and returns it: its log is
// Output(); its standard output (an export's data) is discarded.
func orderapp(bin string, args ...string) (*pod.Process, error) {
	p, err := pod.Start(pod.Spec{Name: "orderapp " + args[0], Path: bin, Args: args, Env: os.Environ(), Stdout: io.Discard})
	if err != nil {
		return nil, err
	}
	if err := p.ExitErr(); err != nil {
		return nil, fmt.Errorf("orderapp %s: %w\n%s", args[0], err, pod.Tail(p.Output(), 40))
	}
	return p, nil
}

type seedStats struct{ Clients, Orders, Lines int64 }

func seeded(logs string) seedStats {
	var st seedStats
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line struct {
			Msg                    string
			Clients, Orders, Lines int64
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "seeded" {
			st = seedStats{line.Clients, line.Orders, line.Lines}
		}
	}
	return st
}

// measureExport seeds one client with n orders in its own database and
// compares the peak memory of exporting all of them with exporting a few.
func measureExport(bin, dir string, n int) error {
	sc, common, st, seedTime, err := seedDatabase(bin, dir, "export", 1, n)
	if err != nil {
		return err
	}
	defer sc.Stop()
	fmt.Printf("export seed: 1 client, %d orders, %d lines in %s\n", st.Orders, st.Lines, seedTime.Round(time.Millisecond))
	for _, c := range []struct {
		name string
		args []string
	}{
		{"one day", []string{"--from", "2024-06-01", "--to", "2024-06-01"}},
		{"all", nil},
	} {
		for _, format := range []string{"csv", "json"} {
			args := append([]string{"export", "--client", "1", "--format", format}, append(c.args, common...)...)
			start := time.Now()
			p, err := orderapp(bin, args...)
			if err != nil {
				return err
			}
			var exported int64
			sc := bufio.NewScanner(strings.NewReader(p.Output()))
			for sc.Scan() {
				var line struct {
					Msg    string
					Orders int64
				}
				if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "exported" {
					exported = line.Orders
				}
			}
			fmt.Printf("export %s (%s): %d orders in %s, peak RSS %d MiB\n", format, c.name, exported, time.Since(start).Round(time.Millisecond), p.PeakRSS()>>20)
		}
	}
	return nil
}

// seedDatabase creates the sqlite database dir/<name>.db behind a fake sidecar
// on dir/<name>.sock, migrates and seeds it with the real orderapp binary, and
// returns the sidecar (the caller stops it), the flags that reach it, and what
// the seed wrote and how long it took.
func seedDatabase(bin, dir, name string, clients, orders int) (*secretproxytest.Server, []string, seedStats, time.Duration, error) {
	sc := secretproxytest.New(sqliteCredentials(filepath.Join(dir, name+".db")))
	if err := sc.Listen(filepath.Join(dir, name+".sock")); err != nil {
		return nil, nil, seedStats{}, 0, err
	}
	common := []string{"--sidecar", sc.Target(), "--db-driver", "sqlite"}
	if _, err := orderapp(bin, append([]string{"migrate"}, common...)...); err != nil {
		sc.Stop()
		return nil, nil, seedStats{}, 0, err
	}
	start := time.Now()
	p, err := orderapp(bin, append([]string{"seed", "--clients", strconv.Itoa(clients), "--orders-per-client", strconv.Itoa(orders)}, common...)...)
	if err != nil {
		sc.Stop()
		return nil, nil, seedStats{}, 0, err
	}
	return sc, common, seeded(p.Output()), time.Since(start), nil
}

// sqliteCredentials are the four secrets the app watches; sqlite uses only
// the database path (load-test data, not credentials).
func sqliteCredentials(dbFile string) map[string]string {
	return map[string]string{"db-server": "localhost", "db-user": "orders_app", "db-password": "load-test-password", "db-name": dbFile}
}
