package dbconn

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	// The drivers of the three dialects. go-mssqldb's azuread subpackage is
	// deliberately not imported: the binary must not link the Azure SDK.
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/microsoft/go-mssqldb"
	_ "modernc.org/sqlite"

	"github.com/secretproxy/secretproxy/orderapp/internal/dialect"
	"github.com/secretproxy/secretproxy/orderapp/internal/secrets"
)

// ErrNotReady means no pool has been opened yet (no working credentials so far).
var ErrNotReady = errors.New("the database connection is not ready yet: waiting for working credentials from the sidecar")

// poolSettings size a pool.
type poolSettings struct {
	MaxOpen     int
	MaxIdle     int
	MaxIdleTime time.Duration
	MaxLifetime time.Duration
	PingTimeout time.Duration
}

// defaultPoolSettings suit one application replica.
func defaultPoolSettings() poolSettings {
	return poolSettings{MaxOpen: 20, MaxIdle: 20, MaxIdleTime: 5 * time.Minute, MaxLifetime: 30 * time.Minute, PingTimeout: 10 * time.Second}
}

// Options configure a Manager.
type Options struct {
	Logger *slog.Logger
	// Registerer receives orderapp_credential_rotations_total and the go_sql_*
	// statistics of whichever pool is current. Nil registers nothing.
	Registerer prometheus.Registerer
	Pool       poolSettings
	// Refresh re-reads the credentials after a login failure (the sidecar's
	// RefreshSecret). Nil: a login failure is returned as is.
	Refresh func(context.Context) (secrets.Credentials, error)
	// Open opens a pool; tests replace it. Default: sql.Open.
	Open func(driverName, dsn string) (*sql.DB, error)
	// Tokens, when set, switches to passwordless logins (--db-auth entra):
	// every new connection logs in with an access token from it, and no
	// password is used. Open is then not used.
	Tokens tokenSource
}

// pool is one generation of connections. inflight counts the calls using it,
// so that a retired pool is closed only when they have all returned.
type pool struct {
	db       *sql.DB
	creds    secrets.Credentials
	inflight sync.WaitGroup

	// refresh is this pool's latest credential refresh after a login failure
	// (nil: none yet); every call failing on this pool joins it (see recoverLogin).
	refreshMu sync.Mutex
	refresh   *refreshCall
}

// refreshCall is one refresh of the credentials, shared by the calls that
// wait for it.
type refreshCall struct {
	done chan struct{}
	err  error     // set before done is closed
	end  time.Time // when it ended; guarded by the pool's refreshMu
}

// refreshCooldown is how long a finished refresh answers for further login
// failures on the same pool: a burst of failing calls costs one refresh. It
// matches the sidecar's default refresh.minInterval, within which a second
// RefreshSecret would not read the vault again anyway.
const refreshCooldown = 10 * time.Second

// refreshTimeout bounds one refresh, which runs apart from the caller that
// started it so that its cancellation does not fail the calls that joined.
const refreshTimeout = 30 * time.Second

// Manager owns the current pool. It is safe for concurrent use.
type Manager struct {
	d   dialect.Dialect
	opt Options
	log *slog.Logger

	// mu guards cur. Readers take it only to pin the pool (inflight.Add), so a
	// swap never waits for queries, and no query can start on a pool after the
	// swap has retired it.
	mu  sync.RWMutex
	cur *pool

	applyMu   sync.Mutex // one Apply at a time: rotations are rare and ordered
	retiring  sync.WaitGroup
	refreshes sync.WaitGroup // refreshes running apart from their callers
	rotations *prometheus.CounterVec
	closed    bool
	wait      waitState // why there is no pool yet, for /readyz
}

// NewManager returns a manager for dialect d with no pool yet.
func NewManager(d dialect.Dialect, opt Options) (*Manager, error) {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Pool == (poolSettings{}) {
		opt.Pool = defaultPoolSettings()
	}
	if opt.Open == nil {
		opt.Open = sql.Open
	}
	m := &Manager{d: d, opt: opt, log: opt.Logger}
	m.rotations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "orderapp",
		Name:      "credential_rotations_total",
		Help:      "Database credential sets applied from the sidecar, by result: success (a new pool opened, pinged and swapped in) or failure (the current pool kept).",
	}, []string{"result"})
	m.rotations.WithLabelValues("success")
	m.rotations.WithLabelValues("failure")
	if opt.Registerer != nil {
		if err := opt.Registerer.Register(m.rotations); err != nil {
			return nil, fmt.Errorf("register rotation metric: %w", err)
		}
		if err := opt.Registerer.Register(poolStats{m: m}); err != nil {
			return nil, fmt.Errorf("register pool metrics: %w", err)
		}
	}
	return m, nil
}

// Dialect is the manager's dialect.
func (m *Manager) Dialect() dialect.Dialect { return m.d }

// Apply makes creds current: it opens a new pool, pings it, swaps it in and
// retires the old pool, which is closed in the background once its in-flight
// calls have returned. Credentials equal to the current ones change nothing.
// On failure the current pool stays, the failure is counted, and the returned
// error never contains the password.
func (m *Manager) Apply(ctx context.Context, creds secrets.Credentials) error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	if m.closed {
		return errors.New("database manager is closed")
	}
	if cur := m.current(); cur != nil && sameLogin(cur.creds, creds) {
		return nil
	}
	start := time.Now()
	p, err := m.open(ctx, creds)
	if err != nil {
		m.rotations.WithLabelValues("failure").Inc()
		m.wait.failed(err)
		m.log.ErrorContext(ctx, "database credentials rejected; keeping the current pool",
			"credentials", creds, "err", err)
		return err
	}
	m.mu.Lock()
	old := m.cur
	m.cur = p
	m.mu.Unlock()
	m.rotations.WithLabelValues("success").Inc()
	m.wait.reset()
	m.log.InfoContext(ctx, "database pool swapped in", "credentials", creds, "first", old == nil, "duration", time.Since(start))
	if old != nil {
		m.retire(old)
	}
	return nil
}

func sameLogin(a, b secrets.Credentials) bool {
	return a.Server == b.Server && a.User == b.User && a.Password == b.Password && a.Database == b.Database
}

// retire closes old once nobody uses it. sql.DB.Close would itself wait for
// running queries, but a call that pinned the pool and has not started its
// query yet would then fail with "database is closed"; the wait group covers it.
func (m *Manager) retire(old *pool) {
	m.retiring.Add(1)
	go func() {
		defer m.retiring.Done()
		old.inflight.Wait()
		if err := old.db.Close(); err != nil {
			m.log.Warn("closing the retired database pool", "err", err)
			return
		}
		m.log.Info("retired database pool closed", "credentials", old.creds)
	}()
}

func (m *Manager) open(ctx context.Context, creds secrets.Credentials) (*pool, error) {
	ps := m.opt.Pool
	var db *sql.DB
	if m.opt.Tokens != nil {
		dsn, err := entraDSN(m.d, creds)
		if err != nil {
			return nil, redact(fmt.Errorf("build connection string: %w", err), creds)
		}
		conn, err := newEntraConnector(m.d, dsn, m.opt.Tokens)
		if err != nil {
			return nil, redact(fmt.Errorf("open database: %w", err), creds)
		}
		db = sql.OpenDB(conn)
		// Never keep a connection past its token's expiry.
		conn.(*entraConnector).bind(db, ps.MaxLifetime)
	} else {
		dsn, err := DSN(m.d, creds)
		if err != nil {
			return nil, redact(fmt.Errorf("build connection string: %w", err), creds)
		}
		if db, err = m.opt.Open(m.d.DriverName(), dsn); err != nil {
			return nil, redact(fmt.Errorf("open database: %w", err), creds)
		}
		db.SetConnMaxLifetime(ps.MaxLifetime)
	}
	db.SetMaxOpenConns(ps.MaxOpen)
	db.SetMaxIdleConns(ps.MaxIdle)
	db.SetConnMaxIdleTime(ps.MaxIdleTime)
	pctx, cancel := context.WithTimeout(ctx, ps.PingTimeout)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, redact(fmt.Errorf("ping database: %w", err), creds)
	}
	return &pool{db: db, creds: creds}, nil
}

func (m *Manager) current() *pool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.cur
}

// acquire pins the current pool; the caller must call inflight.Done.
func (m *Manager) acquire() *pool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.cur != nil {
		m.cur.inflight.Add(1)
	}
	return m.cur
}

// Do runs fn with the current pool, which stays open until fn returns even if
// a rotation retires it meanwhile. When fn fails because the server refused
// the login, Do refreshes the credentials once (unless another call already
// swapped the pool) and runs fn once more.
//
// Every error it returns is scrubbed of the pool's credential values: callers
// log them, and a connection error may quote any of the four.
func (m *Manager) Do(ctx context.Context, fn func(*sql.DB) error) error {
	p, err := m.run(fn)
	if err == nil {
		return nil
	}
	if !IsLoginFailure(err) || m.opt.Tokens != nil {
		// With access tokens, the connector has already asked for a new
		// token and retried the login once; there is no password to refresh.
		return redactFor(err, p)
	}
	m.log.WarnContext(ctx, "database login failed; refreshing the credentials from the sidecar", "credentials", p.creds)
	if rerr := m.recoverLogin(ctx, p); rerr != nil {
		return errors.Join(redact(err, p.creds), rerr)
	}
	p, err = m.run(fn)
	if err == nil {
		return nil
	}
	return redactFor(err, p)
}

// redactFor scrubs err of the credentials of p (nil: no pool, nothing to scrub).
func redactFor(err error, p *pool) error {
	if p == nil {
		return err
	}
	return redact(err, p.creds)
}

// run calls fn with the pinned current pool and says which pool it was.
func (m *Manager) run(fn func(*sql.DB) error) (*pool, error) {
	p := m.acquire()
	if p == nil {
		return nil, m.wait.notReady()
	}
	defer p.inflight.Done()
	return p, fn(p.db)
}

// recoverLogin refreshes the credentials once for a burst of login failures
// on one pool: nothing when the pool that failed has been replaced already;
// otherwise the first failing call starts a refresh and every other call that
// fails on the same pool, while it runs or up to refreshCooldown after it
// ended, waits for that one and shares its outcome.
func (m *Manager) recoverLogin(ctx context.Context, failed *pool) error {
	if m.opt.Refresh == nil || m.current() != failed {
		return nil
	}
	failed.refreshMu.Lock()
	rc := failed.refresh
	if rc == nil || (!rc.end.IsZero() && time.Since(rc.end) > refreshCooldown) {
		rc = &refreshCall{done: make(chan struct{})}
		failed.refresh = rc
		m.refreshes.Add(1)
		go func() {
			defer m.refreshes.Done()
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
			defer cancel()
			err := m.refreshAndApply(rctx)
			failed.refreshMu.Lock()
			rc.err, rc.end = err, time.Now()
			failed.refreshMu.Unlock()
			close(rc.done)
		}()
	}
	failed.refreshMu.Unlock()
	select {
	case <-rc.done:
		return rc.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *Manager) refreshAndApply(ctx context.Context) error {
	creds, err := m.opt.Refresh(ctx)
	if err != nil {
		return fmt.Errorf("refresh credentials after a login failure: %w", err)
	}
	if err := m.Apply(ctx, creds); err != nil {
		return fmt.Errorf("apply refreshed credentials: %w", err)
	}
	return nil
}

// DB returns the current pool, or nil before the first one. The pool may be
// retired and closed at any time: use Do for queries.
func (m *Manager) DB() *sql.DB {
	if p := m.current(); p != nil {
		return p.db
	}
	return nil
}

// Ready pings the current pool: nil when the database answers.
func (m *Manager) Ready(ctx context.Context) error {
	return m.Do(ctx, func(db *sql.DB) error { return db.PingContext(ctx) })
}

// Close closes the current pool and waits for retired pools to close.
func (m *Manager) Close() error {
	m.applyMu.Lock()
	m.closed = true
	m.mu.Lock()
	p := m.cur
	m.cur = nil
	m.mu.Unlock()
	m.applyMu.Unlock()
	if p != nil {
		m.retire(p)
	}
	m.refreshes.Wait()
	m.retiring.Wait()
	return nil
}

// redactedError replaces the credential values in a message (drivers quote
// parts of a DSN when they fail to parse it, and name the user, database and
// server when a connection fails) while keeping the cause for errors.As.
type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.cause }

func redact(err error, c secrets.Credentials) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, form := range secretForms(c) {
		msg = strings.ReplaceAll(msg, form, "[redacted]")
	}
	return &redactedError{msg: msg, cause: err}
}

// poolStats reports client_golang's go_sql_* statistics for whichever pool is
// current at scrape time, so the series survive a rotation.
type poolStats struct{ m *Manager }

const poolStatsName = "orderapp"

func (s poolStats) Describe(ch chan<- *prometheus.Desc) {
	collectors.NewDBStatsCollector(nil, poolStatsName).Describe(ch)
}

func (s poolStats) Collect(ch chan<- prometheus.Metric) {
	p := s.m.acquire()
	if p == nil {
		return
	}
	defer p.inflight.Done()
	collectors.NewDBStatsCollector(p.db, poolStatsName).Collect(ch)
}
