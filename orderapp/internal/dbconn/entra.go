package dbconn

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	mssql "github.com/microsoft/go-mssqldb"
	sqlite "modernc.org/sqlite"

	"github.com/secretproxy/secretproxy/orderapp/internal/dialect"
	"github.com/secretproxy/secretproxy/orderapp/internal/secrets"
)

// Token is a Microsoft Entra access token handed over by the sidecar. It
// prints without its value.
type Token struct {
	Value   string
	Expires time.Time
}

// String hides the value.
func (t Token) String() string {
	return "access token (redacted), expires " + t.Expires.UTC().Format(time.RFC3339)
}

// GoString hides the value from %#v too.
func (t Token) GoString() string { return t.String() }

// tokenSource asks the sidecar for a token of the database's scope
// (GetAccessToken). It is called for every new connection.
type tokenSource func(ctx context.Context) (Token, error)

// lifetimeMargin is taken off a token's remaining life when bounding the
// pool's connection lifetime: the connection is created a moment after the
// token was fetched, and clocks drift.
const lifetimeMargin = 5 * time.Second

// entraDSN builds the connection string of dialect d for a login with an
// access token: no password. sqlserver needs no user either (the token names
// the identity); postgres logs in as the user named in the vault (Azure
// Database for PostgreSQL maps the role to the identity).
func entraDSN(d dialect.Dialect, c secrets.Credentials) (string, error) {
	switch d {
	case dialect.SQLServer:
		host, port, err := splitServer(c.Server, sqlServerPort)
		if err != nil {
			return "", err
		}
		if c.Database == "" {
			return "", errors.New("db-name is empty")
		}
		q := url.Values{}
		q.Set("database", c.Database)
		q.Set("encrypt", "true")
		q.Set("TrustServerCertificate", "false")
		q.Set("app name", "orderapp")
		q.Set("dial timeout", "15")
		u := url.URL{Scheme: "sqlserver", Host: net.JoinHostPort(host, strconv.Itoa(port)), RawQuery: q.Encode()}
		return u.String(), nil
	case dialect.Postgres:
		host, port, err := splitServer(c.Server, postgresPort)
		if err != nil {
			return "", err
		}
		var probs []string
		if c.User == "" {
			probs = append(probs, "db-user is empty")
		}
		if c.Database == "" {
			probs = append(probs, "db-name is empty")
		}
		if len(probs) > 0 {
			return "", errors.New(strings.Join(probs, "; "))
		}
		q := url.Values{}
		// prefer, as in password mode: Azure Database for PostgreSQL
		// requires TLS and so gets it; the local test server offers none.
		q.Set("sslmode", "prefer")
		q.Set("application_name", "orderapp")
		q.Set("connect_timeout", "10")
		u := url.URL{Scheme: "postgres", User: url.User(c.User), Host: net.JoinHostPort(host, strconv.Itoa(port)), Path: "/" + c.Database, RawQuery: q.Encode()}
		return u.String(), nil
	case dialect.SQLite:
		return sqliteDSN(c)
	}
	return "", fmt.Errorf("unknown database driver %q", d)
}

// tokenKey carries the token of one connection attempt to the driver's hook.
type tokenKey struct{}

func tokenFrom(ctx context.Context) (string, error) {
	t, ok := ctx.Value(tokenKey{}).(Token)
	if !ok || t.Value == "" {
		return "", errors.New("no access token for this connection attempt")
	}
	return t.Value, nil
}

// newEntraConnector returns a connector that asks tokens for an access token
// before each new connection and logs in with it: go-mssqldb's access token
// connector for sqlserver (no Azure SDK), the token as the password for
// postgres, nothing for sqlite (no login; the token is fetched anyway so the
// demo shows the sidecar serving it). A login the server refuses costs one more
// token request and one retry.
func newEntraConnector(d dialect.Dialect, dsn string, tokens tokenSource) (driver.Connector, error) {
	var inner driver.Connector
	switch d {
	case dialect.SQLServer:
		c, err := mssql.NewConnectorWithAccessTokenProvider(dsn, tokenFrom)
		if err != nil {
			return nil, fmt.Errorf("sqlserver access token connector: %w", err)
		}
		inner = c
	case dialect.Postgres:
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			return nil, fmt.Errorf("parse the postgres connection string: %w", err)
		}
		inner = stdlib.GetConnector(*cfg, stdlib.OptionBeforeConnect(func(ctx context.Context, cc *pgx.ConnConfig) error {
			tok, err := tokenFrom(ctx)
			if err != nil {
				return err
			}
			cc.Password = tok
			return nil
		}))
	case dialect.SQLite:
		inner = dsnConnector{dsn: dsn, drv: &sqlite.Driver{}}
	default:
		return nil, fmt.Errorf("unknown database driver %q", d)
	}
	return &entraConnector{inner: inner, tokens: tokens}, nil
}

// dsnConnector is database/sql's own DSN connector, for a driver without one.
type dsnConnector struct {
	dsn string
	drv driver.Driver
}

func (c dsnConnector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }
func (c dsnConnector) Driver() driver.Driver                        { return c.drv }

// entraConnector fetches a token per connection and bounds the pool's
// connection lifetime by the tokens it hands out.
type entraConnector struct {
	inner  driver.Connector
	tokens tokenSource
	now    func() time.Time

	mu       sync.Mutex
	db       *sql.DB
	lifetime time.Duration // the pool's current ConnMaxLifetime; only ever lowered
}

// bind gives the connector its pool, whose ConnMaxLifetime starts at max.
func (c *entraConnector) bind(db *sql.DB, max time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.db, c.lifetime = db, max
	db.SetConnMaxLifetime(max)
}

// bound lowers the pool's ConnMaxLifetime below tok's remaining life, so that
// database/sql closes every connection before the token it logged in with
// expires. database/sql has one lifetime per pool, so the bound is only ever
// lowered: a connection made earlier with a shorter-lived token keeps the
// bound that protects it.
func (c *entraConnector) bound(tok Token) error {
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	left := tok.Expires.Sub(now()) - lifetimeMargin
	if left <= 0 {
		return fmt.Errorf("the sidecar handed out a token that expires at %s: too late to log in with it", tok.Expires.UTC().Format(time.RFC3339))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.db != nil && left < c.lifetime {
		c.lifetime = left
		c.db.SetConnMaxLifetime(left)
	}
	return nil
}

// Lifetime is the pool's current connection lifetime bound.
func (c *entraConnector) Lifetime() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lifetime
}

func (c *entraConnector) Driver() driver.Driver { return c.inner.Driver() }

func (c *entraConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, tok, err := c.attempt(ctx)
	if err == nil || !IsLoginFailure(err) {
		return conn, err
	}
	// The server refused the token (not yet valid there, revoked, or the
	// role's mapping changed): one more token and one retry.
	conn, tok2, err := c.attempt(ctx)
	return conn, scrubTokens(err, tok, tok2)
}

func (c *entraConnector) attempt(ctx context.Context) (driver.Conn, Token, error) {
	tok, err := c.tokens(ctx)
	if err != nil {
		return nil, Token{}, fmt.Errorf("get a database access token from the sidecar: %w", err)
	}
	if err := c.bound(tok); err != nil {
		return nil, tok, err
	}
	conn, err := c.inner.Connect(context.WithValue(ctx, tokenKey{}, tok))
	return conn, tok, scrubTokens(err, tok)
}

// scrubTokens removes token values from err's message (no driver is known to
// quote one, but a message may reach a log), keeping the cause for errors.As.
func scrubTokens(err error, toks ...Token) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	changed := false
	for _, t := range toks {
		if t.Value != "" && strings.Contains(msg, t.Value) {
			msg = strings.ReplaceAll(msg, t.Value, "[redacted]")
			changed = true
		}
	}
	if !changed {
		return err
	}
	return &redactedError{msg: msg, cause: err}
}
