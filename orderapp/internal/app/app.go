// Package app assembles the order application from its parts: the sidecar
// client, the credential watcher, the pool manager, the repository and the HTTP
// API. Each subcommand of cmd/orderapp is one function here.
package app

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/secretproxy/secretproxy/proto/client"

	"github.com/secretproxy/secretproxy/orderapp/internal/dbconn"
	"github.com/secretproxy/secretproxy/orderapp/internal/dialect"
	"github.com/secretproxy/secretproxy/orderapp/internal/export"
	"github.com/secretproxy/secretproxy/orderapp/internal/httpapi"
	"github.com/secretproxy/secretproxy/orderapp/internal/migrate"
	"github.com/secretproxy/secretproxy/orderapp/internal/orders"
	"github.com/secretproxy/secretproxy/orderapp/internal/secrets"
	"github.com/secretproxy/secretproxy/orderapp/internal/seed"
)

// Config is what every subcommand shares: where the sidecar is and which
// secrets hold the database credentials. It holds no secret itself.
type Config struct {
	Sidecar          string // unix:///path/grpc.sock or host:port
	SidecarTokenFile string // optional bearer token for the sidecar
	Driver           dialect.Dialect
	Names            secrets.Names
	// DBAuth is how the application logs in: AuthPassword (the four
	// secrets) or AuthEntra (an access token from the sidecar per connection).
	DBAuth string
	// TokenScope is the scope of the database's access tokens; "" takes the
	// driver's (defaultTokenScope).
	TokenScope string
	Logger     *slog.Logger
	// SidecarBackoff bounds the watch's reconnect delay (zero: the client's default).
	SidecarBackoffMin, SidecarBackoffMax time.Duration
	// DBRetry bounds the wait between attempts of a credential set the
	// database refused or could not be reached with (zero: dbconn.DefaultBackoff).
	DBRetry dbconn.Backoff
}

// Database login modes (--db-auth).
const (
	AuthPassword = "password"
	AuthEntra    = "entra"
)

// defaultTokenScope is the Entra scope of a driver's database: Azure
// Database for PostgreSQL's for postgres, Azure SQL's otherwise (sqlite
// stands in for Azure SQL in the demo).
func defaultTokenScope(d dialect.Dialect) string {
	if d == dialect.Postgres {
		return client.ScopeAzurePostgres
	}
	return client.ScopeAzureSQL
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var probs []string
	if c.Sidecar == "" {
		probs = append(probs, "--sidecar must not be empty")
	}
	if _, err := dialect.Parse(string(c.Driver)); err != nil {
		probs = append(probs, "--db-driver: "+err.Error())
	}
	if err := c.Names.Validate(); err != nil {
		probs = append(probs, err.Error())
	}
	switch c.DBAuth {
	case "", AuthPassword:
		if c.TokenScope != "" {
			probs = append(probs, "--db-token-scope is for --db-auth entra only")
		}
	case AuthEntra:
		if s := c.TokenScope; s != "" && (!strings.HasSuffix(s, "/.default") || strings.ContainsAny(s, " \t\r\n") || len(s) > 256) {
			probs = append(probs, fmt.Sprintf("--db-token-scope %q: want a scope ending in /.default, e.g. %s", s, client.ScopeAzureSQL))
		}
	default:
		probs = append(probs, fmt.Sprintf("--db-auth %q: use password or entra", c.DBAuth))
	}
	if len(probs) > 0 {
		return errors.New(strings.Join(probs, "; "))
	}
	return nil
}

// App is one running instance: connected to the sidecar, with a pool once the
// first credentials work.
type App struct {
	cfg      Config
	log      *slog.Logger
	client   *client.Client
	watcher  *secrets.Watcher
	manager  *dbconn.Manager
	repo     *orders.Repo
	registry *prometheus.Registry
}

// New dials the sidecar (lazily: nothing is read until Connect or Serve) and
// builds the parts.
func New(cfg Config) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	opts := []client.Option{client.WithLogger(cfg.Logger)}
	if cfg.SidecarTokenFile != "" {
		opts = append(opts, client.WithTokenFile(cfg.SidecarTokenFile))
	}
	if cfg.SidecarBackoffMin > 0 {
		opts = append(opts, client.WithBackoff(cfg.SidecarBackoffMin, cfg.SidecarBackoffMax))
	}
	c, err := client.Dial(cfg.Sidecar, opts...)
	if err != nil {
		return nil, fmt.Errorf("sidecar: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	w := secrets.NewWatcher(c, cfg.Names, cfg.Logger)
	mo := dbconn.Options{Logger: cfg.Logger, Registerer: reg, Refresh: w.Refresh}
	if cfg.DBAuth == AuthEntra {
		scope := cfg.TokenScope
		if scope == "" {
			scope = defaultTokenScope(cfg.Driver)
		}
		// No password secret is declared or read: the sidecar's
		// identity logs in, with a token fetched per new connection.
		w = secrets.NewWatcherOf(c, cfg.Names, cfg.Names.Entra(cfg.Driver == dialect.Postgres), cfg.Logger)
		mo.Refresh = w.Refresh
		mo.Tokens = func(ctx context.Context) (dbconn.Token, error) {
			t, err := c.AccessToken(ctx, scope)
			return dbconn.Token{Value: t.Token, Expires: t.Expires}, err
		}
		if cfg.Driver == dialect.SQLite {
			cfg.Logger.Info("sqlite has no login: --db-auth entra fetches an access token from the sidecar for every new connection and does not use it", "scope", scope)
		}
	}
	m, err := dbconn.NewManager(cfg.Driver, mo)
	if err != nil {
		c.Close()
		return nil, err
	}
	return &App{cfg: cfg, log: cfg.Logger, client: c, watcher: w, manager: m,
		repo: orders.New(m, cfg.Driver), registry: reg}, nil
}

// Close closes the pool and the sidecar connection.
func (a *App) Close() error {
	return errors.Join(a.manager.Close(), a.client.Close())
}

// Manager is the pool manager (tests look at the current pool).
func (a *App) Manager() *dbconn.Manager { return a.manager }

// Registry holds the application's metrics.
func (a *App) Registry() *prometheus.Registry { return a.registry }

// Connect reads the credentials once and opens the pool, for the one-shot
// commands. It gives up when ctx ends.
func (a *App) Connect(ctx context.Context) error {
	creds, err := a.watcher.First(ctx)
	if err != nil {
		return err
	}
	// The database may still be starting, or the role not created yet: try
	// again until ctx (--connect-timeout) ends.
	return a.manager.ApplyRetrying(ctx, creds, a.cfg.DBRetry)
}

// Handler is the HTTP API.
func (a *App) Handler() (http.Handler, error) {
	return httpapi.New(httpapi.Config{Store: a.repo, Ready: a.manager.Ready, Registerer: a.registry, Gatherer: a.registry, Logger: a.log})
}

// Serve serves the HTTP API on ln while watching the credentials, until ctx
// ends; then it stops accepting, lets requests finish (up to 10 s) and returns
// nil. /readyz is 503, with the reason, until the first credentials work.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	h, err := a.Handler()
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	g, gctx := errgroup.WithContext(ctx)
	// The follower applies each set the watch hands over and retries one that
	// fails (database starting, role not created yet) until it works or a
	// newer set replaces it; the watch never waits for the database.
	follower := a.manager.NewFollower(a.cfg.DBRetry)
	g.Go(func() error {
		follower.Run(gctx)
		return nil
	})
	g.Go(func() error {
		// Only a configuration error ends the watch before ctx (the client
		// retries everything else); the application cannot work without it.
		return a.watcher.Run(gctx, follower.Offer)
	})
	g.Go(func() error {
		a.log.Info("serving the order API", "addr", ln.Addr().String(), "driver", string(a.cfg.Driver))
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	return g.Wait()
}

// Migrate applies the schema migrations and logs what it did.
func (a *App) Migrate(ctx context.Context) error {
	return a.manager.Do(ctx, func(db *sql.DB) error {
		done, err := migrate.Apply(ctx, db, a.cfg.Driver)
		if err != nil {
			return err
		}
		if len(done) == 0 {
			a.log.Info("schema is up to date")
		} else {
			a.log.Info("migrations applied", "versions", strings.Join(done, ","))
		}
		return nil
	})
}

// Seed writes deterministic demo data.
func (a *App) Seed(ctx context.Context, o seed.Options) error {
	start := time.Now()
	return a.manager.Do(ctx, func(db *sql.DB) error {
		st, err := seed.Run(ctx, db, a.cfg.Driver, o)
		if err != nil {
			return err
		}
		a.log.Info("seeded", "clients", st.Clients, "orders", st.Orders, "lines", st.Lines, "duration", time.Since(start).Round(time.Millisecond))
		return nil
	})
}

// Export streams a client's orders to w.
func (a *App) Export(ctx context.Context, w io.Writer, format string, clientID int64, f orders.Filter) error {
	n, err := export.Write(ctx, a.repo, w, format, clientID, f)
	if err != nil {
		return err
	}
	a.log.Info("exported", "client", clientID, "orders", n)
	return nil
}
