package dbconn

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/secretproxy/secretproxy/orderapp/internal/dialect"
	"github.com/secretproxy/secretproxy/orderapp/internal/logbuf"
	"github.com/secretproxy/secretproxy/orderapp/internal/poll"
	"github.com/secretproxy/secretproxy/orderapp/internal/secrets"
	"github.com/secretproxy/secretproxy/orderapp/pgtest"
)

func newManager(t *testing.T, d dialect.Dialect, refresh func(context.Context) (secrets.Credentials, error)) (*Manager, *prometheus.Registry, *logbuf.Buffer) {
	t.Helper()
	logs := &logbuf.Buffer{}
	reg := prometheus.NewRegistry()
	m, err := NewManager(d, Options{
		Logger:     slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: reg,
		Refresh:    refresh,
		Pool:       poolSettings{MaxOpen: 4, MaxIdle: 4, MaxIdleTime: time.Minute, MaxLifetime: time.Hour, PingTimeout: 10 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, reg, logs
}

func rotations(t *testing.T, m *Manager, result string) float64 {
	t.Helper()
	return testutil.ToFloat64(m.rotations.WithLabelValues(result))
}

// waitClosed waits (bounded) until db reports it is closed.
func waitClosed(t *testing.T, db *sql.DB) {
	t.Helper()
	poll.Until(t, "the retired pool closed", func() bool {
		err := db.PingContext(t.Context())
		return err != nil && strings.Contains(err.Error(), "database is closed")
	})
}

func TestManagerSwap(t *testing.T) {
	m, reg, _ := newManager(t, dialect.SQLite, nil)
	ctx := t.Context()
	if err := m.Do(ctx, func(*sql.DB) error { return nil }); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Do before any pool: %v, want ErrNotReady", err)
	}
	if err := m.Ready(ctx); err == nil {
		t.Fatal("Ready before any pool succeeded")
	}
	dir := t.TempDir()
	a := secrets.Credentials{Database: filepath.Join(dir, "a.db"), Version: "a"}
	b := secrets.Credentials{Database: filepath.Join(dir, "b.db"), Version: "b"}
	if err := m.Apply(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := m.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	poolA := m.DB()

	// A call pinned to pool A keeps it usable across the swap.
	pinned := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- m.Do(ctx, func(db *sql.DB) error {
			close(pinned)
			<-release
			var one int
			return db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
		})
	}()
	<-pinned
	if err := m.Apply(ctx, b); err != nil {
		t.Fatal(err)
	}
	if m.DB() == poolA {
		t.Fatal("pool not swapped")
	}
	if err := poolA.PingContext(ctx); err != nil {
		t.Fatalf("the old pool was closed while a call still used it: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("in-flight call across the swap: %v", err)
	}
	waitClosed(t, poolA)

	// Equal credentials change nothing.
	poolB := m.DB()
	if err := m.Apply(ctx, b); err != nil || m.DB() != poolB {
		t.Fatalf("re-applying the same credentials: err %v, pool changed %v", err, m.DB() != poolB)
	}
	// Credentials that cannot connect leave the current pool in place.
	bad := secrets.Credentials{Database: filepath.Join(dir, "missing-dir", "c.db")}
	if err := m.Apply(ctx, bad); err == nil {
		t.Fatal("Apply of unusable credentials succeeded")
	}
	if m.DB() != poolB {
		t.Fatal("a failed Apply replaced the pool")
	}
	if err := m.Ready(ctx); err != nil {
		t.Fatalf("Ready after a failed rotation: %v", err)
	}
	if got := rotations(t, m, "success"); got != 2 {
		t.Errorf("rotations success = %v, want 2", got)
	}
	if got := rotations(t, m, "failure"); got != 1 {
		t.Errorf("rotations failure = %v, want 1", got)
	}
	// go_sql_* statistics follow the current pool.
	n, err := testutil.GatherAndCount(reg, "go_sql_max_open_connections", "orderapp_credential_rotations_total")
	if err != nil || n != 3 {
		t.Errorf("gathered %d series (err %v), want 3 (one pool gauge, two rotation results)", n, err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("metric lint: %v %v", problems, err)
	}
}

// TestLoginFailureRefresh changes the role's password under a live pool: the
// next new connection fails with 28P01, the manager refreshes the credentials
// once, swaps the pool and the call succeeds. Logs never hold a password.
func TestLoginFailureRefresh(t *testing.T) {
	s := pgtest.Start(t)
	s.CreateRole(t, "app", "test-password-1")
	s.CreateDatabase(t, "appdb", "app")
	creds := func(pw string) secrets.Credentials {
		return secrets.Credentials{Server: s.Addr(), User: "app", Password: pw, Database: "appdb"}
	}
	var mu sync.Mutex
	sidecarValue := "test-password-1"
	refreshes := 0
	refresh := func(context.Context) (secrets.Credentials, error) {
		mu.Lock()
		defer mu.Unlock()
		refreshes++
		return creds(sidecarValue), nil
	}
	m, _, logs := newManager(t, dialect.Postgres, refresh)
	ctx := t.Context()
	if err := m.Apply(ctx, creds("test-password-1")); err != nil {
		t.Fatal(err)
	}
	query := func() error {
		return m.Do(ctx, func(db *sql.DB) error {
			var one int
			return db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
		})
	}
	if err := query(); err != nil {
		t.Fatal(err)
	}

	// Rotated in the database and in the vault; this pool has not heard yet.
	s.SetPassword(t, "app", "test-password-2")
	mu.Lock()
	sidecarValue = "test-password-2"
	mu.Unlock()
	old := m.DB()
	old.SetMaxIdleConns(0) // force the next call onto a new connection, which must log in
	if err := query(); err != nil {
		t.Fatalf("call after the password changed: %v", err)
	}
	if refreshes != 1 {
		t.Errorf("refreshes = %d, want 1", refreshes)
	}
	if m.DB() == old {
		t.Error("pool not swapped after the refresh")
	}
	waitClosed(t, old)

	// The sidecar still has a stale password: one refresh, then the login
	// failure comes back to the caller, without the password.
	s.SetPassword(t, "app", "test-password-3")
	m.DB().SetMaxIdleConns(0)
	err := query()
	if !IsLoginFailure(err) {
		t.Fatalf("call with stale credentials: %v, want a login failure", err)
	}
	if refreshes != 2 {
		t.Errorf("refreshes = %d, want 2", refreshes)
	}
	for _, pw := range []string{"test-password-1", "test-password-2", "test-password-3"} {
		if strings.Contains(err.Error(), pw) {
			t.Errorf("error holds a password: %v", err)
		}
		if strings.Contains(logs.String(), pw) {
			t.Errorf("logs hold password %q:\n%s", pw, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "database login failed") {
		t.Errorf("logs do not report the login failure:\n%s", logs.String())
	}
}
