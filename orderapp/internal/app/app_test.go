package app_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/secretproxy/secretproxy/orderapp/internal/app"
	"github.com/secretproxy/secretproxy/orderapp/internal/counter"
	"github.com/secretproxy/secretproxy/orderapp/internal/dbconn"
	"github.com/secretproxy/secretproxy/orderapp/internal/dbtest"
	"github.com/secretproxy/secretproxy/orderapp/internal/dialect"
	"github.com/secretproxy/secretproxy/orderapp/internal/logbuf"
	"github.com/secretproxy/secretproxy/orderapp/internal/poll"
	"github.com/secretproxy/secretproxy/orderapp/internal/secrets"
	"github.com/secretproxy/secretproxy/orderapp/pgtest"
	"github.com/secretproxy/secretproxy/proto/secretproxytest"
)

const (
	pw1      = "test-password-1"
	pw2      = "test-password-2;{x} =y"
	wrongPW  = "wrong-password-9"
	appUser  = "orders_app"
	database = "orders"
)

type harness struct {
	pg   *pgtest.Server
	sc   *secretproxytest.Server
	app  *app.App
	base string
	logs *logbuf.Buffer
}

// start runs the whole application (real client, watcher, pool manager, HTTP
// server on loopback) against a fake sidecar and a private PostgreSQL whose
// role has password pw1; the sidecar serves password sidecarPW.
func start(t *testing.T, sidecarPW string) *harness {
	t.Helper()
	pg := pgtest.Start(t)
	createOrders(t, pg)
	return startApp(t, pg, sidecarPW)
}

// createOrders creates the application's role (password pw1) and its loaded database.
func createOrders(t *testing.T, pg *pgtest.Server) {
	t.Helper()
	db := dbtest.PostgresOn(t, pg, appUser, pw1, database)
	dbtest.Load(t, db)
	db.DB.Close()
}

// startApp runs the application against pg as start does, whatever state pg is in.
func startApp(t *testing.T, pg *pgtest.Server, sidecarPW string) *harness {
	t.Helper()
	sc := secretproxytest.Start(t, map[string]string{
		"db-server": pg.Addr(), "db-user": appUser, "db-password": sidecarPW, "db-name": database,
	})
	logs := &logbuf.Buffer{}
	a, err := app.New(testConfig(sc, logs))
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, a, pg, sc, logs)
}

// testConfig is the configuration every harness starts from: the fake
// sidecar, PostgreSQL, a debug JSON log into logs, and short back-offs.
func testConfig(sc *secretproxytest.Server, logs *logbuf.Buffer) app.Config {
	return app.Config{
		Sidecar: sc.Target(), Driver: dialect.Postgres, Names: secrets.DefaultNames(),
		Logger:            slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		SidecarBackoffMin: 50 * time.Millisecond, SidecarBackoffMax: 500 * time.Millisecond,
		DBRetry: dbconn.Backoff{Min: 50 * time.Millisecond, Max: 500 * time.Millisecond},
	}
}

// serve runs a on a loopback port until the test ends, and wraps it in a harness.
func serve(t *testing.T, a *app.App, pg *pgtest.Server, sc *secretproxytest.Server, logs *logbuf.Buffer) *harness {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		a.Close()
	})
	return &harness{pg: pg, sc: sc, app: a, base: "http://" + ln.Addr().String(), logs: logs}
}

func (h *harness) get(ctx context.Context, path string) (int, error) {
	code, _, err := h.getBody(ctx, path)
	return code, err
}

func (h *harness) getBody(ctx context.Context, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.base+path, nil)
	if err != nil {
		return 0, "", err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return res.StatusCode, string(body), err
}

func (h *harness) waitReady(t *testing.T) {
	t.Helper()
	poll.Until(t, "/readyz 200", func() bool {
		code, err := h.get(t.Context(), "/readyz")
		return err == nil && code == http.StatusOK
	})
}

func rotations(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	return counter.Value(t, reg, "orderapp_credential_rotations_total", map[string]string{"result": result})
}

func isClosed(db *sql.DB) bool {
	err := db.Ping()
	return err != nil && strings.Contains(err.Error(), "database is closed")
}

// load issues requests from several goroutines until stop is closed and counts
// the answers that were not 200.
type load struct {
	h          *harness
	ok, failed atomic.Int64
	firstErr   atomic.Value
	wg         sync.WaitGroup
	stop       chan struct{}
}

func startLoad(h *harness, workers int) *load {
	l := &load{h: h, stop: make(chan struct{})}
	paths := []string{"/api/v1/clients/1/orders?limit=3", "/api/v1/orders/101", "/api/v1/clients/1/summary", "/readyz"}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; i < 1_000_000; i++ { // bounded; stop ends it long before
				select {
				case <-l.stop:
					return
				default:
				}
				code, body, err := h.getBody(context.Background(), paths[(w+i)%len(paths)])
				if err == nil && code == http.StatusOK {
					l.ok.Add(1)
					continue
				}
				l.failed.Add(1)
				l.firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: code %d err %v body %.300s", paths[(w+i)%len(paths)], code, err, body))
			}
		}()
	}
	return l
}

func (l *load) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed during the rotation; first: %v", n, n+l.ok.Load(), l.firstErr.Load())
		// The app's own account of why it answered 503 (reason and error;
		// credentials never reach its log, which the tests check).
		shown := 0
		for line := range strings.Lines(l.h.logs.String()) {
			if strings.Contains(line, "not ready") && shown < 3 {
				t.Logf("app log: %s", strings.TrimSpace(line))
				shown++
			}
		}
		return
	}
	t.Logf("%d requests, all answered 200", l.ok.Load())
}

func assertNoSecrets(t *testing.T, h *harness, text string, what string) {
	t.Helper()
	for _, pw := range []string{pw1, pw2, wrongPW} {
		if strings.Contains(text, pw) {
			t.Errorf("%s holds a password (%q)", what, pw)
		}
	}
}

// TestRotation: the password changes in the database and the new one is
// published by the sidecar while requests keep coming. Every request
// succeeds, the pool is swapped and the old pool closed.
func TestRotation(t *testing.T) {
	h := start(t, pw1)
	h.waitReady(t)
	reg := h.app.Registry()
	old := h.app.Manager().DB()
	if old == nil {
		t.Fatal("no pool although ready")
	}

	l := startLoad(h, 4)
	poll.Until(t, "some requests before the rotation", func() bool { return l.ok.Load() >= 40 })
	// The rotation as it happens in production: the new value goes into the
	// vault, the database password changes, the sidecar's refresh publishes it.
	h.sc.SetVault("db-password", pw2)
	h.pg.SetPassword(t, appUser, pw2)
	before := l.ok.Load()
	h.sc.Publish(map[string]string{"db-password": pw2})
	poll.Until(t, "the new pool", func() bool { return h.app.Manager().DB() != old })
	poll.Until(t, "requests on the new pool", func() bool { return l.ok.Load() >= before+80 })
	l.finish(t)

	poll.Until(t, "the old pool closed", func() bool { return isClosed(old) })
	if got := rotations(t, reg, "success"); got != 2 {
		t.Errorf("rotations success = %v, want 2 (first pool, rotation)", got)
	}
	if got := rotations(t, reg, "failure"); got != 0 {
		t.Errorf("rotations failure = %v, want 0", got)
	}
	// The new pool logs in with the new password: a fresh connection works.
	h.app.Manager().DB().SetMaxIdleConns(0)
	if code, err := h.get(t.Context(), "/api/v1/orders/101"); err != nil || code != 200 {
		t.Errorf("request on a fresh connection after the rotation: %d %v", code, err)
	}
	assertNoSecrets(t, h, h.logs.String(), "the log")
}

// TestWrongPassword: a wrong password published by the sidecar is rejected:
// the old pool keeps serving, the failure is counted and logged, without it.
func TestWrongPassword(t *testing.T) {
	h := start(t, pw1)
	h.waitReady(t)
	reg := h.app.Registry()
	old := h.app.Manager().DB()
	l := startLoad(h, 2)
	poll.Until(t, "some requests", func() bool { return l.ok.Load() >= 20 })
	h.sc.Publish(map[string]string{"db-password": wrongPW})
	// The rejected set is retried with back-off (it may work once the
	// database has the new password), so each attempt counts.
	poll.Until(t, "the failure counted", func() bool { return rotations(t, reg, "failure") >= 1 })
	before := l.ok.Load()
	poll.Until(t, "requests after the failure", func() bool { return l.ok.Load() >= before+40 })
	l.finish(t)
	if h.app.Manager().DB() != old {
		t.Error("the pool was replaced by one with a wrong password")
	}
	if isClosed(old) {
		t.Error("the working pool was closed")
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "database credentials rejected") || !strings.Contains(logs, "28P01") {
		t.Errorf("the log does not report the rejected credentials:\n%s", logs)
	}
	assertNoSecrets(t, h, logs, "the log")
	// The user and the server are vault secrets too; pgx names both in its
	// connection errors, which the log must show scrubbed.
	for _, v := range []string{appUser, h.pg.Addr()} {
		if strings.Contains(logs, v) {
			t.Errorf("the log holds the credential value %q:\n%s", v, logs)
		}
	}
	res, err := http.Get(h.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !regexp.MustCompile(`orderapp_credential_rotations_total\{result="failure"\} [1-9]`).Match(body) {
		t.Errorf("/metrics lacks the failure count")
	}
	assertNoSecrets(t, h, string(body), "/metrics")
}

// TestReadyWaitsForWorkingCredentials: /readyz and the API answer 503 until
// the first credentials work.
func TestReadyWaitsForWorkingCredentials(t *testing.T) {
	h := start(t, wrongPW)
	reg := h.app.Registry()
	poll.Until(t, "the first attempt to fail", func() bool { return rotations(t, reg, "failure") >= 1 })
	for _, p := range []string{"/readyz", "/api/v1/clients/1/orders"} {
		if code, err := h.get(t.Context(), p); err != nil || code != http.StatusServiceUnavailable {
			t.Errorf("%s without working credentials: %d %v, want 503", p, code, err)
		}
	}
	if code, err := h.get(t.Context(), "/livez"); err != nil || code != http.StatusOK {
		t.Errorf("/livez: %d %v, want 200", code, err)
	}
	h.sc.Publish(map[string]string{"db-password": pw1})
	h.waitReady(t)
	if code, err := h.get(t.Context(), "/api/v1/clients/1/orders"); err != nil || code != http.StatusOK {
		t.Errorf("API after the credentials work: %d %v", code, err)
	}
	assertNoSecrets(t, h, h.logs.String(), "the log")
}

// TestLoginFailureRefreshesThroughSidecar: the password changed in the vault
// and the database but no watch message came; the first login failure makes
// the application call RefreshSecret and retry, and the request succeeds.
func TestLoginFailureRefreshesThroughSidecar(t *testing.T) {
	h := start(t, pw1)
	h.waitReady(t)
	old := h.app.Manager().DB()
	h.sc.SetVault("db-password", pw2)
	h.pg.SetPassword(t, appUser, pw2)
	old.SetMaxIdleConns(0) // the next query needs a new connection, which must log in
	if code, err := h.get(t.Context(), "/api/v1/clients/1/summary"); err != nil || code != http.StatusOK {
		t.Fatalf("request after the password changed: %d %v", code, err)
	}
	if got := h.sc.Calls("RefreshSecret"); got < 1 {
		t.Errorf("RefreshSecret calls = %d, want at least 1", got)
	}
	if h.app.Manager().DB() == old {
		t.Error("pool not swapped after the refresh")
	}
	poll.Until(t, "the old pool closed", func() bool { return isClosed(old) })
	if !strings.Contains(h.logs.String(), "database login failed") {
		t.Error("the log does not report the login failure")
	}
	assertNoSecrets(t, h, h.logs.String(), "the log")
}

// TestRotateUserAndPassword: a new login (user and password) arrives in one
// watch message, as the sidecar sends changes found together; the application
// switches to it without a failed request, and the old pool is closed.
func TestRotateUserAndPassword(t *testing.T) {
	h := start(t, pw1)
	h.waitReady(t)
	old := h.app.Manager().DB()
	const userB, pwB = "orders_app_b", "test-password-b"
	h.pg.CreateRole(t, userB, pwB)
	h.pg.Exec(t, fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s", database, userB))
	grant := dbtest.PostgresConn(t, h.pg, appUser, pw1, database)
	if _, err := grant.ExecContext(t.Context(), "GRANT SELECT ON ALL TABLES IN SCHEMA public TO "+userB); err != nil {
		t.Fatal(err)
	}
	l := startLoad(h, 4)
	poll.Until(t, "some requests", func() bool { return l.ok.Load() >= 40 })
	h.sc.Publish(map[string]string{"db-user": userB, "db-password": pwB})
	poll.Until(t, "the new pool", func() bool { return h.app.Manager().DB() != old })
	before := l.ok.Load()
	poll.Until(t, "requests on the new pool", func() bool { return l.ok.Load() >= before+80 })
	l.finish(t)
	poll.Until(t, "the old pool closed", func() bool { return isClosed(old) })
	var user string
	if err := h.app.Manager().DB().QueryRowContext(t.Context(), "SELECT current_user").Scan(&user); err != nil || user != userB {
		t.Errorf("current_user = %q (%v), want %q", user, err, userB)
	}
	if got := rotations(t, h.app.Registry(), "failure"); got != 0 {
		t.Errorf("rotation failures = %v, want 0", got)
	}
}
