// Package accesstoken holds the access tokens GetAccessToken serves: one
// cached token per scope of accessTokens.scopes, fetched with the sidecar's own
// credential, one fetch per scope at a time, refreshed in the background
// before it expires, and never served in its last minute.
//
// A token value appears in no log, metric or error: Token prints redacted, and
// fetch errors carry only the identity endpoint's status and error code.
package accesstoken

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
	"github.com/secretproxy/secretproxy/sidecar/internal/config"
	"github.com/secretproxy/secretproxy/sidecar/internal/metrics"
)

// MinValidity is how long a token must still be valid to be served: a caller
// needs time to open a connection with it, and clocks drift.
const MinValidity = time.Minute

// defaultFetchTimeout bounds one fetch; the credential retries inside it.
const defaultFetchTimeout = 30 * time.Second

// Back-off after a failed fetch, per scope: while it lasts, callers get the
// last failure at once instead of each starting a fetch against an endpoint
// that just failed.
const (
	minBackoff = time.Second
	maxBackoff = 30 * time.Second
)

// Sentinel errors; the gRPC layer maps them to status codes.
var (
	// ErrMalformed: the scope is not a scope at all (config.ValidScope).
	ErrMalformed = errors.New("malformed scope")
	// ErrUndeclared: a well-formed scope that is not in accessTokens.scopes.
	ErrUndeclared = errors.New("scope not in accessTokens.scopes")
	// ErrUnavailable: no valid token is cached and fetching one failed.
	ErrUnavailable = errors.New("no valid access token")
	// ErrShuttingDown: the sidecar is stopping.
	ErrShuttingDown = errors.New("shutting down")
)

// Token is an access token and its expiry. It prints without its value.
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

// LogValue logs the expiry only.
func (t Token) LogValue() slog.Value { return slog.GroupValue(slog.Time("expires", t.Expires)) }

// Source fetches a token for one scope. Errors must not hold a token.
type Source interface {
	Fetch(ctx context.Context, scope string) (Token, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context, scope string) (Token, error)

// Fetch calls f.
func (f SourceFunc) Fetch(ctx context.Context, scope string) (Token, error) { return f(ctx, scope) }

// FetchError is a failed fetch; Reason says why in words safe to show a
// caller (no token, no response body).
type FetchError struct {
	Scope  string
	Reason string
}

func (e *FetchError) Error() string {
	return fmt.Sprintf("%v for scope %q: %s", ErrUnavailable, e.Scope, e.Reason)
}

func (e *FetchError) Unwrap() error { return ErrUnavailable }

// Options configure a Cache. Time is the wall clock: the tests run the cache
// in testing/synctest bubbles.
type Options struct {
	Scopes        []string
	RefreshBefore time.Duration
	Metrics       *metrics.Metrics
	Logger        *slog.Logger
	FetchTimeout  time.Duration
	// Reason turns a Source error into a message for callers; nil uses the
	// first line of err.Error(), at most 300 bytes.
	Reason func(error) string
}

// Cache is the per-scope token cache. Get is safe for concurrent use.
type Cache struct {
	src     Source
	o       Options
	entries map[string]*entry
	order   []string
	changed chan struct{} // a fetch ended: Run recomputes its wake-up
	drained chan struct{}
	drainMu sync.Once

	fetchCtx    context.Context
	cancelFetch context.CancelFunc
}

// served is one fetched token and the response built for it once, so that a
// hit allocates nothing.
type served struct {
	tok  Token
	resp *secretproxyv1.GetAccessTokenResponse
}

type entry struct {
	scope string
	cur   atomic.Pointer[served]

	mu        sync.Mutex
	call      *call // the fetch in flight, nil when none
	lastErr   *FetchError
	failures  int       // consecutive failed fetches
	retryAt   time.Time // no new fetch on demand before this after a failure
	refreshAt time.Time // when Run fetches the next token

	success, failure interface{ Inc() }
	expiry           interface{ Set(float64) }
}

type call struct {
	done chan struct{}
	res  *served
	err  *FetchError
}

// New returns a cache for the allowlist o.Scopes (validated by config).
func New(src Source, o Options) *Cache {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = defaultFetchTimeout
	}
	if o.RefreshBefore <= 0 {
		o.RefreshBefore = config.Default().AccessTokens.RefreshBefore.D()
	}
	if o.Reason == nil {
		o.Reason = FirstLine
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cache{src: src, o: o, entries: make(map[string]*entry, len(o.Scopes)),
		changed: make(chan struct{}, 1), drained: make(chan struct{}), fetchCtx: ctx, cancelFetch: cancel}
	if o.Metrics != nil {
		o.Metrics.InitScopes(o.Scopes)
	}
	for _, s := range o.Scopes {
		e := &entry{scope: s, success: nopCounter{}, failure: nopCounter{}, expiry: nopGauge{}}
		if m := o.Metrics; m != nil {
			e.success = m.AccessTokenFetches.WithLabelValues(s, metrics.FetchSuccess)
			e.failure = m.AccessTokenFetches.WithLabelValues(s, metrics.FetchError)
			e.expiry = m.AccessTokenExpiry.WithLabelValues(s)
		}
		c.entries[s] = e
		c.order = append(c.order, s)
	}
	return c
}

type nopCounter struct{}

func (nopCounter) Inc() {}

type nopGauge struct{}

func (nopGauge) Set(float64) {}

// Enabled reports whether any scope is declared.
func (c *Cache) Enabled() bool { return len(c.order) > 0 }

// Scopes returns the allowlist in configuration order.
func (c *Cache) Scopes() []string { return append([]string(nil), c.order...) }

// Get returns a token for scope valid for at least MinValidity, from the
// cache or, failing that, from a fetch it starts or joins. Errors wrap
// ErrMalformed, ErrUndeclared, ErrUnavailable (a *FetchError) or
// ErrShuttingDown, or are ctx's error.
func (c *Cache) Get(ctx context.Context, scope string) (*secretproxyv1.GetAccessTokenResponse, error) {
	e := c.entries[scope]
	if e == nil {
		if !config.ValidScope(scope) {
			return nil, ErrMalformed
		}
		return nil, ErrUndeclared
	}
	if s := e.cur.Load(); s != nil && c.usable(s) {
		return s.resp, nil
	}
	return c.wait(ctx, e)
}

// usable reports whether s may be served now.
func (c *Cache) usable(s *served) bool {
	return time.Now().Before(s.tok.Expires.Add(-MinValidity))
}

func (c *Cache) wait(ctx context.Context, e *entry) (*secretproxyv1.GetAccessTokenResponse, error) {
	e.mu.Lock()
	if s := e.cur.Load(); s != nil && c.usable(s) {
		e.mu.Unlock()
		return s.resp, nil
	}
	cl := e.call
	if cl == nil {
		if e.lastErr != nil && time.Now().Before(e.retryAt) {
			err := e.lastErr
			e.mu.Unlock()
			return nil, err
		}
		cl = c.startLocked(e)
	}
	e.mu.Unlock()
	select {
	case <-cl.done:
		if cl.err != nil {
			return nil, cl.err
		}
		if !c.usable(cl.res) {
			return nil, &FetchError{Scope: e.scope, Reason: fmt.Sprintf("the identity endpoint issued a token that expires at %s, within the %s the sidecar keeps in hand", cl.res.tok.Expires.UTC().Format(time.RFC3339), MinValidity)}
		}
		return cl.res.resp, nil
	case <-c.drained:
		return nil, ErrShuttingDown
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// startLocked starts a fetch for e; e.mu must be held and no fetch in flight.
func (c *Cache) startLocked(e *entry) *call {
	cl := &call{done: make(chan struct{})}
	e.call = cl
	go c.fetch(e, cl)
	return cl
}

// fetch runs one fetch, detached from any caller's context (a caller that
// gives up must not cancel the fetch others joined), bounded by FetchTimeout.
func (c *Cache) fetch(e *entry, cl *call) {
	ctx, cancel := context.WithTimeout(c.fetchCtx, c.o.FetchTimeout)
	start := time.Now()
	tok, err := c.src.Fetch(ctx, e.scope)
	timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
	cancel()
	now := time.Now()

	e.mu.Lock()
	if err != nil {
		e.failures++
		e.failure.Inc()
		reason := c.o.Reason(err)
		if timedOut {
			reason = fmt.Sprintf("the identity endpoint did not answer within %s", c.o.FetchTimeout)
		}
		cl.err = &FetchError{Scope: e.scope, Reason: reason}
		e.lastErr = cl.err
		b := backoff(e.failures)
		e.retryAt = now.Add(b)
		e.refreshAt = now.Add(b)
		c.o.Logger.Warn("access token fetch failed", "scope", e.scope, "reason", reason, "failures", e.failures, "retryIn", b)
	} else {
		s := &served{tok: tok, resp: &secretproxyv1.GetAccessTokenResponse{Token: tok.Value, ExpireTime: timestamppb.New(tok.Expires)}}
		cl.res = s
		e.success.Inc()
		e.failures, e.lastErr = 0, nil
		if old := e.cur.Load(); old == nil || !tok.Expires.Before(old.tok.Expires) {
			e.cur.Store(s)
			e.expiry.Set(float64(tok.Expires.Unix()))
		}
		e.refreshAt = c.nextRefresh(now, e.cur.Load().tok.Expires)
		c.o.Logger.Debug("access token fetched", "scope", e.scope, "token", tok, "duration", now.Sub(start), "refreshAt", e.refreshAt)
	}
	e.call = nil
	e.mu.Unlock()
	close(cl.done)
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// nextRefresh is when to fetch the token after one expiring at exp:
// refreshBefore ahead of expiry, but not before half of the remaining
// lifetime has passed, so that a short-lived token (or a credential that
// hands back its own cached token until it is nearly expired) does not make
// the refresher spin; and at least a second from now.
func (c *Cache) nextRefresh(now, exp time.Time) time.Time {
	at := exp.Add(-c.o.RefreshBefore)
	if half := now.Add(exp.Sub(now) / 2); at.Before(half) {
		at = half
	}
	if floor := now.Add(minBackoff); at.Before(floor) {
		at = floor
	}
	return at
}

func backoff(failures int) time.Duration {
	d := minBackoff
	for i := 1; i < failures && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

// Run fetches every scope's first token, then refreshes each one before it
// expires, until ctx ends. A failed refresh is retried with back-off; the
// token in hand is served meanwhile until its last minute.
func (c *Cache) Run(ctx context.Context) error {
	defer c.cancelFetch()
	if len(c.order) == 0 {
		<-ctx.Done()
		return nil
	}
	for _, s := range c.order {
		e := c.entries[s]
		e.mu.Lock()
		if e.call == nil {
			c.startLocked(e)
		}
		e.mu.Unlock()
	}
	for {
		now := time.Now()
		next := time.Time{}
		for _, s := range c.order {
			e := c.entries[s]
			e.mu.Lock()
			switch {
			case e.call != nil:
				// In flight: its end signals changed.
			case !now.Before(e.refreshAt):
				c.startLocked(e)
			case next.IsZero() || e.refreshAt.Before(next):
				next = e.refreshAt
			}
			e.mu.Unlock()
		}
		var wake <-chan time.Time
		var t *time.Timer
		if !next.IsZero() {
			t = time.NewTimer(next.Sub(now))
			wake = t.C
		}
		select {
		case <-ctx.Done():
		case <-c.changed:
		case <-wake:
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// Drain makes callers waiting for a fetch give up with ErrShuttingDown.
func (c *Cache) Drain() {
	c.drainMu.Do(func() { close(c.drained) })
}

// FirstLine is the default Reason: the first line of the error, bounded, so
// that a multi-line message (a quoted response body) never reaches a caller.
// A Source's own Reason falls back to it.
func FirstLine(err error) string {
	s := err.Error()
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' || s[i] == '\r' {
			s = s[:i]
			break
		}
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
