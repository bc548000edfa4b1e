package dbconn

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
	"github.com/microsoft/go-mssqldb/msdsn"

	"github.com/secretproxy/secretproxy/orderapp/internal/dialect"
	"github.com/secretproxy/secretproxy/orderapp/internal/secrets"
	"github.com/secretproxy/secretproxy/orderapp/pgtest"
)

// tokenQueue hands out its tokens in order (the last one repeats) and counts
// the requests.
type tokenQueue struct {
	mu    sync.Mutex
	toks  []Token
	calls int
}

func (q *tokenQueue) next(context.Context) (Token, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.calls++
	t := q.toks[0]
	if len(q.toks) > 1 {
		q.toks = q.toks[1:]
	}
	return t, nil
}

func TestEntraDSN(t *testing.T) {
	creds := secrets.Credentials{Server: "orders.database.windows.net", User: "orders-app-identity", Database: "orders"}
	dsn, err := entraDSN(dialect.SQLServer, creds)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := msdsn.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.User != "" || cfg.Password != "" || cfg.Host != "orders.database.windows.net" || cfg.Port != 1433 || cfg.Database != "orders" || cfg.Encryption != msdsn.EncryptionRequired {
		t.Errorf("sqlserver DSN %s: user %q host %q port %d database %q encryption %v; want no user or password, TLS required", dsn, cfg.User, cfg.Host, cfg.Port, cfg.Database, cfg.Encryption)
	}
	dsn, err = entraDSN(dialect.Postgres, creds)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, has := u.User.Password(); has || u.User.Username() != "orders-app-identity" || u.Path != "/orders" {
		t.Errorf("postgres DSN %s: want the vault's user, no password", dsn)
	}
	for _, tc := range []struct {
		d     dialect.Dialect
		creds secrets.Credentials
		want  string
	}{
		{dialect.SQLServer, secrets.Credentials{Server: "s"}, "db-name is empty"},
		{dialect.Postgres, secrets.Credentials{Server: "s", Database: "d"}, "db-user is empty"},
		{dialect.Postgres, secrets.Credentials{Database: "d", User: "u"}, "db-server is empty"},
	} {
		if _, err := entraDSN(tc.d, tc.creds); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("entraDSN(%s, %+v) = %v, want %q", tc.d, tc.creds, err, tc.want)
		}
	}
}

// TestLifetimeBound: the pool's connection lifetime only ever goes down, to
// the remaining life of the shortest-lived token handed out, less the margin.
func TestLifetimeBound(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	c := &entraConnector{now: func() time.Time { return now }}
	db := sql.OpenDB(c)
	defer db.Close()
	c.bind(db, 30*time.Minute)
	steps := []struct {
		left, want time.Duration
	}{
		{time.Hour, 30 * time.Minute}, // longer than the pool's bound: unchanged
		{10 * time.Minute, 10*time.Minute - lifetimeMargin},
		{5 * time.Minute, 5*time.Minute - lifetimeMargin},
		{time.Hour, 5*time.Minute - lifetimeMargin}, // never raised again
	}
	for _, s := range steps {
		if err := c.bound(Token{Value: "test-token", Expires: now.Add(s.left)}); err != nil {
			t.Fatal(err)
		}
		if got := c.Lifetime(); got != s.want {
			t.Errorf("after a token with %s left: lifetime %s, want %s", s.left, got, s.want)
		}
	}
	if err := c.bound(Token{Value: "test-token", Expires: now.Add(time.Second)}); err == nil || !strings.Contains(err.Error(), "too late") {
		t.Errorf("a token expiring within the margin: %v, want refused", err)
	}
}

// TestEntraConnectorPostgres: against a real PostgreSQL whose role's password
// is the current token, a refused token costs exactly one more token request
// and one retry; two refusals fail with the login error, token-free.
func TestEntraConnectorPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	pg.CreateRole(t, "orders_app", "test-token-good")
	pg.CreateDatabase(t, "orders", "orders_app")
	dsn, err := entraDSN(dialect.Postgres, secrets.Credentials{Server: pg.Addr(), User: "orders_app", Database: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name      string
		toks      []string
		wantCalls int
		wantErr   bool
	}{
		{"accepted", []string{"test-token-good"}, 1, false},
		{"refused then accepted", []string{"test-token-old", "test-token-good"}, 2, false},
		{"refused twice", []string{"test-token-bad"}, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &tokenQueue{}
			for _, v := range tc.toks {
				q.toks = append(q.toks, Token{Value: v, Expires: exp})
			}
			c, err := newEntraConnector(dialect.Postgres, dsn, q.next)
			if err != nil {
				t.Fatal(err)
			}
			db := sql.OpenDB(c)
			defer db.Close()
			err = db.PingContext(t.Context())
			if q.calls != tc.wantCalls {
				t.Errorf("token requests = %d, want %d", q.calls, tc.wantCalls)
			}
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("ping: %v", err)
				}
				return
			}
			if !IsLoginFailure(err) {
				t.Fatalf("err = %v, want the server's login failure", err)
			}
			if strings.Contains(err.Error(), "test-token-bad") {
				t.Errorf("the error holds the token: %v", err)
			}
		})
	}
}

// TestEntraConnectorSQLServer checks what can be checked without a SQL Server:
// the connector is go-mssqldb's access-token connector (no Azure SDK), the
// token for the right scope is requested before each connection, and the
// token the driver's provider is given is that one. What could not run here:
// the TDS login itself (FEDAUTH in LOGIN7) against Azure SQL or a SQL Server.
func TestEntraConnectorSQLServer(t *testing.T) {
	dsn, err := entraDSN(dialect.SQLServer, secrets.Credentials{Server: "127.0.0.1:1", Database: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	var scopes []string
	src := func(scope string) tokenSource {
		return func(context.Context) (Token, error) {
			scopes = append(scopes, scope)
			return Token{Value: "test-token-sql", Expires: time.Now().Add(time.Hour)}, nil
		}
	}
	c, err := newEntraConnector(dialect.SQLServer, dsn, src("https://database.windows.net/.default"))
	if err != nil {
		t.Fatal(err)
	}
	ec := c.(*entraConnector)
	if _, ok := ec.inner.(*mssql.Connector); !ok {
		t.Fatalf("inner connector %T, want *mssql.Connector", ec.inner)
	}
	// Port 1 refuses at once: the dial fails after the token was requested.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx); err == nil {
		t.Fatal("connected to port 1")
	}
	if fmt.Sprint(scopes) != "[https://database.windows.net/.default]" {
		t.Errorf("token requests %v, want one for Azure SQL's scope", scopes)
	}
	// The provider go-mssqldb calls during the login reads the token of
	// this connection attempt from the context the connector passes down.
	got, err := tokenFrom(context.WithValue(ctx, tokenKey{}, Token{Value: "test-token-sql"}))
	if err != nil || got != "test-token-sql" {
		t.Errorf("provider gives %q, %v", got, err)
	}
	if _, err := tokenFrom(ctx); err == nil {
		t.Error("provider without a token: no error")
	}
}

func TestEntraConnectorTokenError(t *testing.T) {
	dsn, _ := entraDSN(dialect.SQLite, secrets.Credentials{Database: t.TempDir() + "/x.db"})
	c, err := newEntraConnector(dialect.SQLite, dsn, func(context.Context) (Token, error) {
		return Token{}, errors.New("rpc error: code = PermissionDenied desc = scope not in accessTokens.scopes")
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Connect(t.Context())
	if err == nil || !strings.Contains(err.Error(), "get a database access token from the sidecar") || !strings.Contains(err.Error(), "accessTokens.scopes") {
		t.Errorf("err = %v, want the sidecar's answer", err)
	}
}
