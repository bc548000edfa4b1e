package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/secretproxy/secretproxy/e2e/pod"
	"github.com/secretproxy/secretproxy/orderapp/pgtest"
)

// bins are the real programs, built once for the whole suite.
var bins pod.Binaries

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	root, err := pod.RepoRoot(wd)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "secret-proxy-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if bins, err = pod.Build(ctx, root, dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build the binaries:", err)
		return 1
	}
	return m.Run()
}

const (
	dbUser     = "orders_app"
	dbName     = "orders"
	dbPassword = "test-password-1"
	// refreshInterval keeps rotation tests short; the sidecar's jitter is 10%.
	refreshInterval = 2 * time.Second
)

// testPod is one pod's worth of processes, plus the database behind it.
type testPod struct {
	t       *testing.T
	pg      *pgtest.Server
	emu     *pod.Emulator
	sidecar *pod.Process
	app     *pod.Process
	cfgFile string
	socket  string
	opsURL  string
	appURL  string
	appAddr string
}

// shortDir makes a directory whose path is short enough for a unix socket
// (108 bytes), which t.TempDir() under a long test name may not be.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sp-e2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

type podOptions struct {
	appFirst bool // start the app before the sidecar
}

// startPod starts PostgreSQL, kv-emulator, secret-proxy and orderapp, and
// stops them all when the test ends, whatever happens.
func startPod(t *testing.T, opts podOptions) *testPod {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	p := &testPod{t: t}
	p.pg = pgtest.Start(t)
	p.pg.CreateRole(t, dbUser, dbPassword)
	p.pg.CreateDatabase(t, dbName, dbUser)

	dir := shortDir(t)
	var err error
	p.emu, err = pod.StartEmulator(ctx, bins.KVEmulator, dir, "127.0.0.1:0", map[string]string{
		"sql-server-name": p.pg.Addr(),
		"sql-user":        dbUser,
		"sql-password":    dbPassword,
		"sql-database":    dbName,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopOrReport(t, p.emu.Process) })

	p.socket = filepath.Join(dir, "grpc.sock")
	p.cfgFile = filepath.Join(dir, "secret-proxy.yaml")
	opsAddr := mustFreeAddr(t)
	p.opsURL = "http://" + opsAddr
	cfg := pod.SidecarConfig{
		VaultURL: p.emu.VaultURL, Secrets: pod.DatabaseSecrets,
		Unix: p.socket, Ops: opsAddr,
		Interval: refreshInterval, MinInterval: 500 * time.Millisecond,
		LogLevel: "debug",
	}
	if err := cfg.WriteFile(p.cfgFile); err != nil {
		t.Fatal(err)
	}
	p.appAddr = mustFreeAddr(t)
	p.appURL = "http://" + p.appAddr

	if !opts.appFirst {
		p.startSidecar(ctx)
	}
	p.orderapp(ctx, "migrate")
	p.orderapp(ctx, "seed", "--clients", "20", "--orders-per-client", "10")
	p.startApp()
	if opts.appFirst {
		return p
	}
	if err := pod.WaitHTTP(ctx, p.appURL+"/readyz"); err != nil {
		t.Fatalf("orderapp not ready: %v\n%s", err, p.app.Output())
	}
	return p
}

func (p *testPod) appArgs() []string {
	return []string{"--sidecar", "unix://" + p.socket, "--db-driver", "postgres"}
}

func (p *testPod) startSidecar(ctx context.Context) {
	p.t.Helper()
	var err error
	p.sidecar, err = pod.Start(pod.Spec{
		Name: "secret-proxy", Path: bins.SecretProxy, Args: []string{"--config", p.cfgFile},
		Env: append([]string{"PATH=" + os.Getenv("PATH")}, p.emu.ClientEnv()...),
	})
	if err != nil {
		p.t.Fatal(err)
	}
	sc := p.sidecar
	p.t.Cleanup(func() { stopOrReport(p.t, sc) })
	if err := pod.WaitHTTP(ctx, p.opsURL+"/readyz"); err != nil {
		p.t.Fatalf("secret-proxy not ready: %v\n%s", err, p.sidecar.Output())
	}
}

func (p *testPod) startApp() {
	p.t.Helper()
	var err error
	p.app, err = pod.Start(pod.Spec{
		Name: "orderapp", Path: bins.OrderApp,
		Args: append([]string{"serve", "--listen", p.appAddr}, p.appArgs()...),
	})
	if err != nil {
		p.t.Fatal(err)
	}
	app := p.app
	p.t.Cleanup(func() { stopOrReport(p.t, app) })
}

// orderapp runs a one-shot subcommand (migrate, seed) to its end.
func (p *testPod) orderapp(ctx context.Context, args ...string) {
	p.t.Helper()
	if err := pod.Run(ctx, pod.Spec{Name: "orderapp " + args[0], Path: bins.OrderApp, Args: append(args, p.appArgs()...)}); err != nil {
		p.t.Fatal(err)
	}
}

// stopOrReport stops a process and fails the test if it did not exit cleanly
// (a crash during the test is a failure even if every assertion passed).
func stopOrReport(t *testing.T, p *pod.Process) {
	t.Helper()
	select {
	case <-p.Done():
		// Already gone: the test that stopped or killed it has judged that.
		return
	default:
	}
	if err := p.Stop(10 * time.Second); err != nil {
		t.Errorf("%s did not stop cleanly on SIGTERM: %v\n--- its output:\n%s", p.Name, err, tail(p.Output(), 40))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func mustFreeAddr(t *testing.T) string {
	t.Helper()
	a, err := pod.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// get fetches url and returns the status and body.
func get(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw), err
}

// metric reads one sample from a Prometheus text exposition: series is the
// name with its labels as printed, e.g. `secretproxy_secret_stale{secret="db-password"}`.
func metric(t *testing.T, url, series string) float64 {
	t.Helper()
	_, body, err := get(t.Context(), url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return 0 // an unset counter child is absent from the exposition
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("metric %s: %v", series, err)
	}
	return v
}

// eventually polls cond every 100 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// load issues order API requests from workers until stop is closed (or a
// hard limit of count and time), and counts successes and failures.
type load struct {
	ok, failed int
	firstErr   string
}

func runLoad(ctx context.Context, url string, workers int, stop <-chan struct{}) load {
	const maxRequests = 200000
	results := make(chan load, workers)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for range workers {
		go func() {
			var l load
			for l.ok+l.failed < maxRequests/workers {
				select {
				case <-stop:
					results <- l
					return
				case <-ctx.Done():
					results <- l
					return
				default:
				}
				code, body, err := get(ctx, url)
				if err == nil && code == http.StatusOK {
					l.ok++
					continue
				}
				l.failed++
				if l.firstErr == "" {
					l.firstErr = fmt.Sprintf("status %d err %v body %.200s", code, err, body)
				}
			}
			results <- l
		}()
	}
	var total load
	for range workers {
		l := <-results
		total.ok += l.ok
		total.failed += l.failed
		if total.firstErr == "" {
			total.firstErr = l.firstErr
		}
	}
	return total
}
