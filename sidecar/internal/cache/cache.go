// Package cache keeps every declared secret in memory: it prefetches them,
// refreshes them in passes with jitter, retries failures with back-off that
// honours the vault's Retry-After, shares one vault read per secret between all
// callers (single-flight), and pushes changes to watchers.
//
// The read path of a loaded secret takes no lock and allocates nothing: each
// secret's state is an immutable view behind an atomic pointer, with its
// response message built once per vault read.
package cache

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
	"github.com/secretproxy/secretproxy/sidecar/internal/config"
	"github.com/secretproxy/secretproxy/sidecar/internal/metrics"
	"github.com/secretproxy/secretproxy/sidecar/internal/source"
)

// Errors of a read. None of them holds a value.
var (
	ErrUndeclared   = errors.New("secret is not declared for this pod")
	ErrNotFound     = errors.New("secret is absent from the vault")
	ErrDisabled     = errors.New("secret is disabled in the vault")
	ErrExpired      = errors.New("secret has expired")
	ErrNotYetValid  = errors.New("secret is not valid yet")
	ErrUnavailable  = errors.New("secret is not loaded and the vault cannot be reached")
	ErrTooStale     = errors.New("secret's last good value is older than refresh.maxStale")
	ErrShuttingDown = errors.New("secret-proxy is shutting down")
)

// errNotLoaded is internal: the read must wait for a first load.
var errNotLoaded = errors.New("not loaded yet")

// errHeldBack is the cause of a read that was not sent because the vault's
// Retry-After began while it waited for a slot.
var errHeldBack = errors.New("held back by the vault's Retry-After: not sent")

// Options are the cache's collaborators; zero values get defaults.
//
// Time is the wall clock (time.Now, time.NewTimer): the tests run the cache
// in testing/synctest bubbles, whose fake clock moves only when every
// goroutine of the bubble waits, so no clock is injected.
type Options struct {
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	// Rand returns a number in [0, 1) for jitter.
	Rand func() float64
	// FetchTimeout bounds one vault read, token included. Default 20 s.
	FetchTimeout time.Duration
	// DefaultWait is how long a read without a deadline waits for a first load. Default 5 s.
	DefaultWait time.Duration
	// MaxConcurrentReads bounds the vault reads in flight at once. Default 8.
	MaxConcurrentReads int
	// ThrottleSpread is the first spread added at random to a Retry-After
	// (see Cache.throttleLocked). Default 10 s, Key Vault's limit window.
	ThrottleSpread time.Duration
}

type kind uint8

const (
	kindNone      kind = iota // no vault answer yet
	kindOK                    // the last read succeeded
	kindTransient             // the last read failed and may succeed later
	kindNotFound              // the vault said SecretNotFound
	kindDisabled              // the vault said SecretDisabled
)

// view is the immutable state of one secret, swapped whole on every vault answer.
type view struct {
	secret      *secretproxyv1.Secret // the last good value; nil if never loaded
	kind        kind
	lastSuccess time.Time
	expires     time.Time
	notBefore   time.Time
}

// entry is one declared secret. Its last good value lives in one place, the
// view's message: a failed answer keeps it (marked stale), a good one
// replaces it.
type entry struct {
	decl config.Secret
	view atomic.Pointer[view]

	// Guarded by Cache.mu.
	flight    *flight
	lastRead  time.Time // when the last vault read started
	failures  int       // consecutive transient failures
	nextRetry time.Time // zero: no retry scheduled
}

// Cache holds the declared secrets.
type Cache struct {
	cfg  config.Refresh
	src  source.Source
	m    *metrics.Metrics
	log  *slog.Logger
	rnd  func() float64
	opts Options

	entries []*entry
	byName  map[string]*entry

	ctx    context.Context // lifetime of vault reads
	cancel context.CancelFunc

	draining chan struct{}
	drainMu  sync.Once

	// readSlots bounds concurrent vault reads: a pass over 100 secrets would
	// otherwise open 100 TLS connections at once, costing memory here and
	// throttling budget at the vault.
	readSlots chan struct{}

	// probe admits one read at a time while probing: a sidecar that starts,
	// or that the vault has just throttled, sends one read and waits for
	// its answer before sending the rest, so a fleet meeting a throttled
	// vault spends one request per sidecar per round instead of eight.
	probe chan struct{}

	mu           sync.Mutex
	blockedUntil time.Time     // Retry-After (plus spread) for the whole vault
	probing      bool          // reads go out one at a time (see probe)
	throttles    int           // consecutive throttled rounds; 0 once the vault answers
	changed      chan struct{} // closed and replaced on every state change
	watchers     map[*watcher]struct{}
	wake         chan struct{}
}

// New builds a cache for the declared secrets. Call Run to prefetch and refresh.
func New(cfg config.Config, src source.Source, o Options) *Cache {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = 20 * time.Second
	}
	if o.DefaultWait <= 0 {
		o.DefaultWait = 5 * time.Second
	}
	if o.MaxConcurrentReads <= 0 {
		o.MaxConcurrentReads = 8
	}
	if o.ThrottleSpread <= 0 {
		o.ThrottleSpread = 10 * time.Second
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New(discardRegisterer{}, nil, "")
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cache{
		cfg: cfg.Refresh, src: src, m: o.Metrics, log: o.Logger, rnd: o.Rand, opts: o,
		byName:   make(map[string]*entry, len(cfg.Secrets)),
		ctx:      ctx,
		cancel:   cancel,
		draining: make(chan struct{}),
		changed:  make(chan struct{}),
		watchers: map[*watcher]struct{}{},
		wake:     make(chan struct{}, 1),

		readSlots: make(chan struct{}, o.MaxConcurrentReads),
		probe:     make(chan struct{}, 1),
		probing:   true,
	}
	for _, s := range cfg.Secrets {
		e := &entry{decl: s}
		e.view.Store(&view{})
		c.entries = append(c.entries, e)
		c.byName[s.Name] = e
	}
	return c
}

// Declared reports whether name is declared.
func (c *Cache) Declared(name string) bool {
	_, ok := c.byName[name]
	return ok
}

// caller says who waits for a first load in awaitLoad.
type caller uint8

const (
	// callerGet counts its wait in the read metrics (waited or coalesced).
	callerGet caller = iota
	// callerRefresh has already waited for its own read; its wait is not
	// a cold read and is not counted.
	callerRefresh
)

// Get returns a declared secret, waiting for a first load up to 100 ms before
// ctx's deadline (DefaultWait without one). The returned message is shared and
// must not be modified.
func (c *Cache) Get(ctx context.Context, name string) (*secretproxyv1.Secret, error) {
	e := c.byName[name]
	if e == nil {
		return nil, ErrUndeclared
	}
	// The hot path: a loaded secret, no lock, no allocation.
	s, err := c.serve(e.view.Load())
	if err != errNotLoaded {
		if err == nil {
			c.m.ReadHitCounter.Inc()
		}
		return s, err
	}
	timer := c.newWaitTimer(ctx)
	defer timer.Stop()
	return c.awaitLoad(ctx, e, timer, callerGet)
}

// Refresh reads a declared secret from the vault now, unless it was read less
// than refresh.minInterval ago or the vault's Retry-After holds every read,
// and returns it as Get would.
func (c *Cache) Refresh(ctx context.Context, name string) (*secretproxyv1.Secret, error) {
	e := c.byName[name]
	if e == nil {
		return nil, ErrUndeclared
	}
	timer := c.newWaitTimer(ctx)
	defer timer.Stop()
	if answered, s, err := c.awaitRead(ctx, e, timer); answered {
		return s, err
	}
	return c.awaitLoad(ctx, e, timer, callerRefresh)
}

// serve applies the table of docs/reference/api.md ("What a read answers") to one view.
func (c *Cache) serve(v *view) (*secretproxyv1.Secret, error) {
	if v.secret == nil {
		switch v.kind {
		case kindNotFound:
			return nil, ErrNotFound
		case kindDisabled:
			return nil, ErrDisabled
		}
		return nil, errNotLoaded
	}
	if v.kind == kindDisabled {
		return nil, ErrDisabled
	}
	if c.cfg.MaxStale > 0 && v.kind != kindOK && time.Since(v.lastSuccess) > c.cfg.MaxStale.D() {
		return nil, ErrTooStale
	}
	if c.cfg.RefuseExpired {
		now := time.Now()
		if !v.expires.IsZero() && !now.Before(v.expires) {
			return nil, ErrExpired
		}
		if !v.notBefore.IsZero() && now.Before(v.notBefore) {
			return nil, ErrNotYetValid
		}
	}
	return v.secret, nil
}

// newWaitTimer bounds a slow read: it fires 100 ms before ctx's deadline, so
// the caller gets UNAVAILABLE rather than DEADLINE_EXCEEDED, or after
// DefaultWait without one.
func (c *Cache) newWaitTimer(ctx context.Context) *time.Timer {
	d := c.opts.DefaultWait
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl) - 100*time.Millisecond
	}
	if d <= 0 {
		d = time.Millisecond
	}
	return time.NewTimer(d)
}

// awaitRead joins or starts a vault read of e (unless minInterval or
// Retry-After forbid one) and waits for its answer. answered is true when
// the wait itself decided the answer (the timer fired, ctx ended, or the
// sidecar is draining); otherwise the caller answers from the cache.
func (c *Cache) awaitRead(ctx context.Context, e *entry, timer *time.Timer) (answered bool, s *secretproxyv1.Secret, err error) {
	c.mu.Lock()
	fl := c.startLocked(e, byCaller)
	c.mu.Unlock()
	if fl == nil {
		return false, nil, nil
	}
	select {
	case <-fl.done:
		return false, nil, nil
	case <-timer.C:
		s, err = c.serveOrUnavailable(e)
	case <-ctx.Done():
		err = ErrUnavailable
	case <-c.draining:
		// A unary call in flight at shutdown finishes: with the cached
		// value if there is one.
		s, err = c.serveOrUnavailable(e)
		if errors.Is(err, ErrUnavailable) {
			err = ErrShuttingDown
		}
	}
	return true, s, err
}

// awaitLoad answers e from the cache, waiting for a first load if needed (and
// starting a vault read if none is in flight) until the timer fires, ctx ends
// or the sidecar drains.
func (c *Cache) awaitLoad(ctx context.Context, e *entry, timer *time.Timer, who caller) (*secretproxyv1.Secret, error) {
	first := true
	for {
		// Checked under the lock that also guards every view change and
		// broadcast, so no change slips between the check and the wait.
		c.mu.Lock()
		if s, err := c.serve(e.view.Load()); err != errNotLoaded {
			c.mu.Unlock()
			return s, err
		}
		coalesced := e.flight != nil
		if !coalesced {
			c.startLocked(e, byCaller)
		}
		if first && who == callerGet {
			if coalesced {
				c.m.ReadCoalescedCounter.Inc()
			} else {
				c.m.ReadWaitCounter.Inc()
			}
		}
		first = false
		ch := c.changed
		c.mu.Unlock()

		select {
		case <-ch: // a vault answer (every one broadcasts)
		case <-timer.C:
			return nil, ErrUnavailable
		case <-ctx.Done():
			return nil, ErrUnavailable
		case <-c.draining:
			return nil, ErrShuttingDown
		}
	}
}

func (c *Cache) serveOrUnavailable(e *entry) (*secretproxyv1.Secret, error) {
	s, err := c.serve(e.view.Load())
	if err == errNotLoaded {
		return nil, ErrUnavailable
	}
	return s, err
}

func (c *Cache) broadcastLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Changed returns a channel closed at the next change of any secret's state.
func (c *Cache) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// Ready reports whether every non-optional secret has been loaded once and
// none is older than maxStale; notReady names the ones holding readiness back.
func (c *Cache) Ready() (ready bool, notReady []string) {
	now := time.Now()
	for _, e := range c.entries {
		if e.decl.Optional {
			continue
		}
		v := e.view.Load()
		if v.secret == nil || (c.cfg.MaxStale > 0 && v.kind != kindOK && now.Sub(v.lastSuccess) > c.cfg.MaxStale.D()) {
			notReady = append(notReady, e.decl.Name)
		}
	}
	return len(notReady) == 0, notReady
}

// List describes every declared secret, without values.
func (c *Cache) List() []*secretproxyv1.Secret {
	out := make([]*secretproxyv1.Secret, 0, len(c.entries))
	for _, e := range c.entries {
		v := e.view.Load()
		s := &secretproxyv1.Secret{Name: e.decl.Name, Stale: v.secret != nil && v.kind != kindOK}
		if v.secret != nil {
			src := v.secret
			s.Version, s.ContentType, s.Tags = src.Version, src.ContentType, src.Tags
			s.UpdateTime, s.ExpireTime, s.NotBeforeTime, s.RefreshTime = src.UpdateTime, src.ExpireTime, src.NotBeforeTime, src.RefreshTime
		}
		out = append(out, s)
	}
	return out
}

// buildSecret builds the response message of a good answer, once per vault read.
func buildSecret(name string, s *source.Secret, refreshed time.Time) *secretproxyv1.Secret {
	p := &secretproxyv1.Secret{
		Name:        name,
		Value:       s.Value,
		Version:     s.Version,
		ContentType: s.ContentType,
		Tags:        s.Tags,
		RefreshTime: timestamppb.New(refreshed),
	}
	if !s.Updated.IsZero() {
		p.UpdateTime = timestamppb.New(s.Updated)
	}
	if !s.Expires.IsZero() {
		p.ExpireTime = timestamppb.New(s.Expires)
	}
	if !s.NotBefore.IsZero() {
		p.NotBeforeTime = timestamppb.New(s.NotBefore)
	}
	return p
}

// staleCopy is s marked stale: the last good value, served while the vault
// does not confirm it.
func staleCopy(s *secretproxyv1.Secret) *secretproxyv1.Secret {
	return &secretproxyv1.Secret{
		Name: s.Name, Value: s.Value, Version: s.Version, ContentType: s.ContentType, Tags: s.Tags,
		UpdateTime: s.UpdateTime, ExpireTime: s.ExpireTime, NotBeforeTime: s.NotBeforeTime, RefreshTime: s.RefreshTime,
		Stale: true,
	}
}

// Drain ends every watch stream with ErrShuttingDown and makes waiting reads
// give up; reads of loaded secrets keep working.
func (c *Cache) Drain() {
	c.drainMu.Do(func() { close(c.draining) })
}
