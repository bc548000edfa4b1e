package app_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/secretproxy/secretproxy/orderapp/internal/app"
	"github.com/secretproxy/secretproxy/orderapp/internal/dbconn"
	"github.com/secretproxy/secretproxy/orderapp/internal/logbuf"
	"github.com/secretproxy/secretproxy/orderapp/internal/poll"
	"github.com/secretproxy/secretproxy/orderapp/pgtest"
	"github.com/secretproxy/secretproxy/proto/client"
	"github.com/secretproxy/secretproxy/proto/secretproxytest"
)

// startEntra runs the application with --db-auth entra against a fake sidecar
// that holds no password secret at all, and a private PostgreSQL whose role's
// password is the access token the sidecar hands out, valid for life from the
// moment the database is ready (as Azure Database for PostgreSQL takes an
// Entra token as the password). It returns the token's expiry.
func startEntra(t *testing.T, token string, life time.Duration) (*harness, time.Time) {
	t.Helper()
	pg := pgtest.Start(t)
	createOrders(t, pg)
	exp := time.Now().Add(life)
	pg.SetPasswordUntil(t, appUser, token, exp)
	sc := secretproxytest.Start(t, map[string]string{"db-server": pg.Addr(), "db-user": appUser, "db-name": database})
	sc.SetToken(client.ScopeAzurePostgres, token, exp)
	logs := &logbuf.Buffer{}
	cfg := testConfig(sc, logs)
	cfg.DBAuth = app.AuthEntra
	cfg.DBRetry = dbconn.Backoff{} // the application's own default
	a, err := app.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, a, pg, sc, logs), exp
}

// TestEntraServesOrders: in entra mode the application reads no password
// (the sidecar has none), asks for a token of Azure Database for
// PostgreSQL's scope, and PostgreSQL accepts exactly that token.
func TestEntraServesOrders(t *testing.T) {
	const token = "test-token-entra-1"
	h, _ := startEntra(t, token, time.Hour)
	h.waitReady(t)
	if code, err := h.get(t.Context(), "/api/v1/orders/101"); err != nil || code != http.StatusOK {
		t.Fatalf("GET order: %d %v", code, err)
	}
	if n := h.sc.TokenCalls(client.ScopeAzurePostgres); n < 1 {
		t.Errorf("GetAccessToken calls for the postgres scope = %d, want at least 1", n)
	}
	if n := h.sc.Calls("GetSecret") + h.sc.Calls("RefreshSecret"); n != 0 {
		t.Errorf("%d GetSecret/RefreshSecret calls, want none (the watch carries server, user and database)", n)
	}
	if strings.Contains(h.logs.String(), token) {
		t.Error("the access token appears in the log")
	}
}

// TestEntraTokenChangesAndExpiresUnderLoad: under continuous requests the
// identity's token changes every 2 s (PostgreSQL switching to the new token at
// the same moment, as a new Entra token becomes valid) and each token lives
// only 10 s, so that the pool must drop connections before their token
// expires and log in again with the current one. No request fails; the first
// token is really dead by the end; no session outlives its token.
//
// The fake sidecar renews a token itself when it has less than renewBefore
// left, as the real one never hands out a token in its last minute: the
// application rightly refuses a token too close to its expiry to bound a
// connection's lifetime by, and on a loaded machine the test's goroutine
// that rotates every 2 s can be held up for seconds (it once failed 5 of
// 10091 requests that way). The third rotation here is held up on purpose
// until the sidecar has renewed the token itself, so the renewal is always
// exercised.
func TestEntraTokenChangesAndExpiresUnderLoad(t *testing.T) {
	const (
		life        = 10 * time.Second
		renewBefore = 6 * time.Second // dbconn's lifetimeMargin (5 s) and a second to log in
		gap         = 2 * time.Second
	)
	h, exp0 := startEntra(t, "test-token-rot-0", life)
	h.waitReady(t)
	var (
		made          atomic.Int64 // tokens made after the first, by the test or the sidecar
		firstRotation atomic.Value // time.Time: token 1 made, token 0 refused from then on
	)
	// next makes PostgreSQL switch to a new token; it runs under the fake
	// sidecar's token lock, on the test's goroutine or the sidecar's.
	next := func() (string, time.Time) {
		i := made.Add(1)
		tok, exp := fmt.Sprintf("test-token-rot-%d", i), time.Now().Add(life)
		if err := h.pg.AlterPasswordUntil(context.Background(), appUser, tok, exp); err != nil {
			t.Errorf("token %d: %v", i, err)
		}
		if i == 1 {
			firstRotation.Store(time.Now())
		}
		return tok, exp
	}
	h.sc.RenewTokenBefore(client.ScopeAzurePostgres, renewBefore, next)
	l := startLoad(h, 4)
	rotated := 0
	last := time.Now()
	// Rotate until the first token has been dead for 3 s (bounded: 20).
	for i := 1; i <= 20 && time.Now().Before(exp0.Add(3*time.Second)); i++ {
		before := l.ok.Load()
		poll.Until(t, fmt.Sprintf("requests before rotation %d", i), func() bool {
			return l.ok.Load() >= before+30 && time.Since(last) >= gap
		})
		if i == 3 {
			// Held up: the token ages until the application, needing new
			// connections as the old ones reach their lifetime, gets one
			// renewed by the sidecar.
			made0 := made.Load()
			poll.Until(t, "the sidecar renewing the token while the rotation is held up", func() bool {
				return made.Load() > made0
			})
		}
		h.sc.RenewToken(client.ScopeAzurePostgres)
		rotated, last = i, time.Now()
	}
	before := l.ok.Load()
	poll.Until(t, "requests after the last rotation", func() bool { return l.ok.Load() >= before+30 })
	l.finish(t)
	if rotated < 4 {
		t.Fatalf("only %d rotations", rotated)
	}

	if n := h.sc.TokenCalls(client.ScopeAzurePostgres); n < 6 {
		t.Errorf("GetAccessToken calls = %d, want one per new connection (at least 6: the pool's lifetime follows the 6 s tokens)", n)
	}
	// PostgreSQL refuses the first token now: it did expire.
	conn, err := pgx.Connect(t.Context(), h.pg.DSN(appUser, "test-token-rot-0", database))
	if err == nil {
		conn.Close(t.Context())
		t.Error("the first token still logs in: the test did not make it expire")
	}
	// No session that logged in with the first token (before the first
	// rotation) is still open: each was closed before that token expired.
	admin, err := pgx.Connect(t.Context(), h.pg.AdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(t.Context())
	var stale int
	if err := admin.QueryRow(t.Context(), "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND backend_start < $2", appUser, firstRotation.Load()).Scan(&stale); err != nil {
		t.Fatal(err)
	}
	if stale != 0 {
		t.Errorf("%d sessions logged in with the first token are still open after it expired", stale)
	}
	for i := range made.Load() + 1 {
		if strings.Contains(h.logs.String(), fmt.Sprintf("test-token-rot-%d", i)) {
			t.Errorf("token %d appears in the log", i)
		}
	}
}
