package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
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
	entra   bool
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
	// entraToken, when set, makes the pod passwordless: no password secret
	// exists, the emulator issues this token for PostgreSQL's scope, the
	// sidecar serves it over GetAccessToken, orderapp runs with --db-auth
	// entra, and the database role's password is the token.
	entraToken string
}

// startPod starts PostgreSQL, kv-emulator, secret-proxy and orderapp (after
// migrate and seed), and stops them all when the test ends, whatever happens.
func startPod(t *testing.T, opts podOptions) *testPod {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	p := &testPod{t: t, entra: opts.entraToken != ""}
	rolePassword := dbPassword
	if p.entra {
		rolePassword = opts.entraToken
	}
	p.pg = pgtest.Start(t)
	p.pg.CreateRole(t, dbUser, rolePassword)
	p.pg.CreateDatabase(t, dbName, dbUser)

	vault := map[string]string{"sql-server-name": p.pg.Addr(), "sql-user": dbUser, "sql-database": dbName}
	cfg := pod.SidecarConfig{
		Interval: refreshInterval, MinInterval: 500 * time.Millisecond,
		LogLevel: "debug",
	}
	for _, s := range pod.DatabaseSecrets {
		if s.Name == "db-password" && p.entra {
			continue
		}
		cfg.Secrets = append(cfg.Secrets, s)
	}
	if p.entra {
		cfg.AccessTokenScopes = []string{pgScope}
	} else {
		vault["sql-password"] = dbPassword
	}

	dir := shortDir(t)
	var err error
	p.emu, err = pod.StartEmulator(ctx, bins.KVEmulator, dir, "127.0.0.1:0", vault, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopOrReport(t, p.emu.Process) })
	if p.entra {
		if err := p.emu.IssueNext(ctx, pgScope, opts.entraToken); err != nil {
			t.Fatal(err)
		}
	}

	p.socket = filepath.Join(dir, "grpc.sock")
	p.cfgFile = filepath.Join(dir, "secret-proxy.yaml")
	opsAddr := mustFreeAddr(t)
	p.opsURL = "http://" + opsAddr
	cfg.VaultURL, cfg.Unix, cfg.Ops = p.emu.VaultURL, p.socket, opsAddr
	if err := cfg.WriteFile(p.cfgFile); err != nil {
		t.Fatal(err)
	}
	p.appAddr = mustFreeAddr(t)
	p.appURL = "http://" + p.appAddr

	p.startSidecar(ctx)
	p.orderapp(ctx, "migrate")
	p.orderapp(ctx, "seed", "--clients", "20", "--orders-per-client", "10")
	p.startReadyApp(ctx)
	return p
}

func (p *testPod) appArgs() []string {
	args := []string{"--sidecar", "unix://" + p.socket, "--db-driver", "postgres"}
	if p.entra {
		args = append(args, "--db-auth", "entra")
	}
	return args
}

// startSidecar starts secret-proxy and waits until its /readyz answers 200.
func (p *testPod) startSidecar(ctx context.Context) {
	p.t.Helper()
	p.sidecar = startReady(p.t, ctx, p.emu.SidecarSpec(bins.SecretProxy, p.cfgFile), p.opsURL+"/readyz")
}

func (p *testPod) appSpec() pod.Spec {
	return pod.Spec{
		Name: "orderapp", Path: bins.OrderApp,
		Args: append([]string{"serve", "--listen", p.appAddr}, p.appArgs()...),
	}
}

// startApp starts orderapp without waiting for anything.
func (p *testPod) startApp() {
	p.t.Helper()
	var err error
	p.app, err = pod.Start(p.appSpec())
	if err != nil {
		p.t.Fatal(err)
	}
	app := p.app
	p.t.Cleanup(func() { stopOrReport(p.t, app) })
}

// startReadyApp starts orderapp and waits until its /readyz answers 200.
func (p *testPod) startReadyApp(ctx context.Context) {
	p.t.Helper()
	p.app = startReady(p.t, ctx, p.appSpec(), p.appURL+"/readyz")
}

// startReady starts a server program, waits until readyURL answers 200, and
// stops it when the test ends (stopOrReport).
func startReady(t *testing.T, ctx context.Context, spec pod.Spec, readyURL string) *pod.Process {
	t.Helper()
	proc, err := pod.StartReady(ctx, spec, readyURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopOrReport(t, proc) })
	return proc
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
		t.Errorf("%s did not stop cleanly on SIGTERM: %v\n--- its output:\n%s", p.Name, err, pod.Tail(p.Output(), 40))
	}
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

// metric reads one sample from a Prometheus text exposition (pod.Metric).
func metric(t *testing.T, url, series string) float64 {
	t.Helper()
	v, err := pod.Metric(t.Context(), url, series)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// eventually polls cond every 100 ms until it holds or timeout passes: the
// module's one wait for something to happen.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, what)
		}
		select {
		case <-tick.C:
		case <-t.Context().Done():
			t.Fatalf("%s: %v", what, t.Context().Err())
		}
	}
}

// throughout runs check every pace for d (and at least once): for what must
// hold during a period, where the period itself is under test (a vault
// outage, a sidecar down), not a wait for something to happen.
func throughout(t *testing.T, d, pace time.Duration, check func()) {
	t.Helper()
	end := time.Now().Add(d)
	tick := time.NewTicker(pace)
	defer tick.Stop()
	for {
		check()
		if !time.Now().Before(end) {
			return
		}
		select {
		case <-tick.C:
		case <-t.Context().Done():
			t.Fatalf("cut short: %v", t.Context().Err())
		}
	}
}

// load issues order API requests from workers until stop is closed (or a
// hard limit of count and time), and counts successes and failures.
type load struct {
	ok, failed int
	firstErr   string
}

// ok, when not nil, counts the successes as they come, for a test that waits
// for progress.
func runLoad(ctx context.Context, url string, workers int, stop <-chan struct{}, ok *atomic.Int64) load {
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
					if ok != nil {
						ok.Add(1)
					}
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
