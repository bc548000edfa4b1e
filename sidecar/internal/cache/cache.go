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
	"github.com/secretproxy/secretproxy/sidecar/internal/clock"
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
type Options struct {
	Clock   clock.Clock
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

type entry struct {
	decl config.Secret
	view atomic.Pointer[view]

	// Guarded by Cache.mu.
	flight    *flight
	lastRead  time.Time // when the last vault read started
	failures  int       // consecutive transient failures
	nextRetry time.Time // zero: no retry scheduled
	value     *source.Secret
}

type flight struct {
	done  chan struct{}
	batch bool                  // started by a pass, which publishes its changes together
	found *secretproxyv1.Secret // set when the read changed the version or value
}

// Cache holds the declared secrets.
type Cache struct {
	cfg  config.Refresh
	src  source.Source
	clk  clock.Clock
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
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
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
		cfg: cfg.Refresh, src: src, clk: o.Clock, m: o.Metrics, log: o.Logger, rnd: o.Rand, opts: o,
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
	return c.wait(ctx, e, false)
}

// Refresh reads a declared secret from the vault now, unless it was read less
// than refresh.minInterval ago, and returns it as Get would.
func (c *Cache) Refresh(ctx context.Context, name string) (*secretproxyv1.Secret, error) {
	e := c.byName[name]
	if e == nil {
		return nil, ErrUndeclared
	}
	return c.wait(ctx, e, true)
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
	if c.cfg.MaxStale > 0 && v.kind != kindOK && c.clk.Now().Sub(v.lastSuccess) > c.cfg.MaxStale.D() {
		return nil, ErrTooStale
	}
	if c.cfg.RefuseExpired {
		now := c.clk.Now()
		if !v.expires.IsZero() && !now.Before(v.expires) {
			return nil, ErrExpired
		}
		if !v.notBefore.IsZero() && now.Before(v.notBefore) {
			return nil, ErrNotYetValid
		}
	}
	return v.secret, nil
}

// wait is the slow path. With refresh, it first joins or starts a vault read
// (unless minInterval or Retry-After forbid one) and waits for its answer;
// then, like Get, it answers from the cache, waiting for a first load if needed.
func (c *Cache) wait(ctx context.Context, e *entry, refresh bool) (*secretproxyv1.Secret, error) {
	d := c.opts.DefaultWait
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl) - 100*time.Millisecond
	}
	if d <= 0 {
		d = time.Millisecond
	}
	timer := c.clk.NewTimer(d)
	defer timer.Stop()

	if refresh {
		c.mu.Lock()
		fl := e.flight
		if fl == nil {
			fl = c.startLocked(e, false)
		}
		c.mu.Unlock()
		if fl != nil {
			select {
			case <-fl.done:
			case <-timer.C():
				return c.serveOrUnavailable(e)
			case <-ctx.Done():
				return nil, ErrUnavailable
			case <-c.draining:
				// A unary call in flight at shutdown finishes: with the
				// cached value if there is one.
				s, err := c.serveOrUnavailable(e)
				if errors.Is(err, ErrUnavailable) {
					err = ErrShuttingDown
				}
				return s, err
			}
		}
	}

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
			c.startLocked(e, false)
		}
		if first && !refresh {
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
		case <-timer.C():
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

// startLocked starts a vault read of e unless one is in flight, the vault is
// throttled, or (unless force) e was read less than minInterval ago. It
// returns the flight in progress, or nil.
func (c *Cache) startLocked(e *entry, batch bool) *flight {
	if e.flight != nil {
		return e.flight
	}
	now := c.clk.Now()
	if now.Before(c.blockedUntil) {
		return nil
	}
	if !e.lastRead.IsZero() && now.Sub(e.lastRead) < c.cfg.MinInterval.D() {
		return nil
	}
	fl := &flight{done: make(chan struct{}), batch: batch}
	e.flight = fl
	e.lastRead = now
	go c.fetch(e, fl)
	return fl
}

func (c *Cache) fetch(e *entry, fl *flight) {
	s, took, release, err := c.read(e)

	c.mu.Lock()
	found := c.applyLocked(e, s, err, took)
	e.flight = nil
	fl.found = found
	if found != nil && !fl.batch {
		c.publishLocked([]*secretproxyv1.Secret{found})
	}
	c.broadcastLocked()
	c.mu.Unlock()
	// Released only now that a Retry-After in the answer is recorded, so
	// the next queued read sees it.
	release()
	close(fl.done)
	if !fl.batch {
		// A read outside a pass may have scheduled a retry earlier than the
		// refresher's timer; a pass's own reads are seen when it returns.
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// read takes a slot and, while probing, the probe; then it reads e from the
// vault unless a Retry-After began while it waited. release gives back what
// it took; call it once the answer is recorded.
func (c *Cache) read(e *entry) (s source.Secret, took time.Duration, release func(), err error) {
	release = func() {}
	select {
	case c.readSlots <- struct{}{}:
	case <-c.ctx.Done():
		return s, 0, release, &source.TransientError{Err: c.ctx.Err()}
	}
	release = func() { <-c.readSlots }
	c.mu.Lock()
	probing := c.probing
	c.mu.Unlock()
	if probing {
		select {
		case c.probe <- struct{}{}:
		case <-c.ctx.Done():
			return s, 0, release, &source.TransientError{Err: c.ctx.Err()}
		}
		c.mu.Lock()
		probing = c.probing // the probe ahead of this read may have ended it
		c.mu.Unlock()
		if probing {
			release = func() { <-c.probe; <-c.readSlots }
		} else {
			<-c.probe
		}
	}
	// A 429 answered while this read queued holds it too: Key Vault
	// throttles per vault, so no read may go out before Retry-After has
	// passed. It ends as if it had gone out and been throttled, so the
	// outcome does not depend on which read won the race for a slot.
	c.mu.Lock()
	until := c.blockedUntil
	c.mu.Unlock()
	if now := c.clk.Now(); now.Before(until) {
		return s, 0, release, &source.TransientError{RetryAfter: until.Sub(now), Err: errHeldBack}
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.FetchTimeout)
	defer cancel()
	start := time.Now()
	s, err = c.src.Get(ctx, e.decl.VaultName(), e.decl.Version)
	return s, time.Since(start), release, err
}

// applyLocked records one vault answer. It returns the new secret when its
// version or value changed, or when it is served again after a disabled or
// not-found answer; else nil.
func (c *Cache) applyLocked(e *entry, s source.Secret, err error, took time.Duration) *secretproxyv1.Secret {
	now := c.clk.Now()
	name := e.decl.Name
	old := e.view.Load()
	if err == nil {
		changed := e.value == nil || e.value.Version != s.Version || e.value.Value != s.Value
		e.value = &s
		e.failures = 0
		e.nextRetry = time.Time{}
		c.probing, c.throttles = false, 0
		nv := &view{secret: buildSecret(name, &s, now, false), kind: kindOK, lastSuccess: now, expires: s.Expires, notBefore: s.NotBefore}
		e.view.Store(nv)
		c.m.LastSuccess.WithLabelValues(name).Set(float64(now.Unix()))
		c.m.Stale.WithLabelValues(name).Set(0)
		if !s.Expires.IsZero() {
			c.m.Expiry.WithLabelValues(name).Set(float64(s.Expires.Unix()))
		} else {
			c.m.Expiry.DeleteLabelValues(name)
		}
		if changed {
			c.m.Refresh.WithLabelValues(name, metrics.RefreshChanged).Inc()
			c.log.Info("secret loaded", "secret", name, "version", s.Version, "changed", true, "duration", took)
			return nv.secret
		}
		c.m.Refresh.WithLabelValues(name, metrics.RefreshUnchanged).Inc()
		c.log.Info("secret confirmed", "secret", name, "version", s.Version, "changed", false, "duration", took)
		if old.kind == kindDisabled || old.kind == kindNotFound {
			// Enabled again: a stream that left it out of its first message
			// (an optional secret disabled at the time) has never seen this
			// value. Streams that have seen it filter it out.
			return nv.secret
		}
		return nil
	}

	c.m.Refresh.WithLabelValues(name, metrics.RefreshError).Inc()
	k := kindTransient
	switch {
	case errors.Is(err, source.ErrNotFound):
		k = kindNotFound
	case errors.Is(err, source.ErrDisabled):
		k = kindDisabled
	}
	nv := &view{kind: k, lastSuccess: old.lastSuccess, expires: old.expires, notBefore: old.notBefore}
	if e.value != nil {
		nv.secret = old.secret
		if !old.secret.GetStale() {
			nv.secret = buildSecret(name, e.value, old.lastSuccess, true)
		}
		c.m.Stale.WithLabelValues(name).Set(1)
	}
	e.view.Store(nv)

	if k == kindTransient {
		e.failures++
		retry := now.Add(c.backoff(e.failures))
		ra, throttled := source.RetryAfter(err)
		heldBack := errors.Is(err, errHeldBack)
		newRound := false
		if throttled && !heldBack {
			newRound = c.throttleLocked(now, ra)
		}
		if retry.Before(c.blockedUntil) || throttled {
			// A throttled read is retried when the vault's block ends:
			// the block's spread already grows round by round, and a
			// per-secret back-off on top would leave this pod behind
			// the others of its fleet.
			retry = c.blockedUntil
		}
		e.nextRetry = retry
		switch {
		case heldBack:
			// One line per throttle is enough; the read that met it said so.
			c.log.Debug("vault read held back by Retry-After; serving the last good value if any", "secret", name,
				"loaded", e.value != nil, "retryIn", retry.Sub(now))
		case throttled && newRound && c.allLoadedLocked():
			// Every secret is loaded, so this is a refresh, not a start:
			// the fleet's steady reads exceed what the vault allows.
			c.log.Warn("vault is throttling refreshes in steady state: the reads of every pod on this vault exceed its limit; "+
				"serving the cached values; lengthen refresh.interval or split the secrets over more vaults (docs/scale.md)",
				"secret", name, "error", err.Error(), "throttledRounds", c.throttles, "retryIn", retry.Sub(now))
		case throttled:
			c.log.Warn("vault is throttling; no vault read before Retry-After (plus a random spread) has passed; serving the last good value if any",
				"secret", name, "loaded", e.value != nil, "error", err.Error(), "throttledRounds", c.throttles, "retryIn", retry.Sub(now), "duration", took)
		default:
			c.log.Warn("vault read failed; serving the last good value if any", "secret", name, "loaded", e.value != nil,
				"error", err.Error(), "failures", e.failures, "retryIn", retry.Sub(now), "duration", took)
		}
		return nil
	}
	// Not found and disabled are settled answers: the next pass checks again.
	e.failures = 0
	e.nextRetry = time.Time{}
	c.probing, c.throttles = false, 0
	switch {
	case k == kindNotFound && e.value != nil:
		c.log.Error("secret was deleted from the vault; serving its last good value marked stale", "secret", name, "version", e.value.Version)
	case k == kindNotFound:
		c.log.Error("declared secret is absent from the vault", "secret", name, "vaultSecret", e.decl.VaultName())
	default:
		c.log.Error("secret is disabled in the vault; reads answer FAILED_PRECONDITION", "secret", name)
	}
	return nil
}

// throttleLocked records a 429 with Retry-After ra answered at now, and
// reports whether it began a new throttled round (the previous Retry-After,
// if any, had passed). A new round blocks every read until Retry-After plus a
// random part of the spread (spreadLocked). Every sidecar of a fleet that met the same full vault gets about
// the same Retry-After; without the spread they would all come back in the
// same second and be throttled again. Doubling the spread each round finds,
// without any coordination, a pace the vault can serve. Until a read is
// answered without a 429, reads go out one at a time (probing).
func (c *Cache) throttleLocked(now time.Time, ra time.Duration) bool {
	c.m.VaultThrottled.WithLabelValues(c.phaseLocked()).Inc()
	c.probing = true
	if now.Before(c.blockedUntil) {
		// Another read of the same round: honour the later Retry-After,
		// without a second spread.
		if until := now.Add(ra); until.After(c.blockedUntil) {
			c.blockedUntil = until
		}
		return false
	}
	c.throttles++
	c.blockedUntil = now.Add(ra + time.Duration(float64(c.spreadLocked())*c.rnd()))
	return true
}

// spreadLocked is the spread of the current throttled round. While some
// secret is not loaded, it starts at ThrottleSpread and doubles each round up
// to 4 x ThrottleSpread (a longer one would let the pods throttled first
// starve behind those that came later). Once everything is loaded, a refresh
// can wait, the cached values being served: the spread is half the interval,
// which leaves the vault's budget to the pods that are still starting.
func (c *Cache) spreadLocked() time.Duration {
	interval := c.cfg.Interval.D()
	if c.allLoadedLocked() {
		return interval / 2
	}
	limit := min(4*c.opts.ThrottleSpread, interval)
	spread := c.opts.ThrottleSpread
	for i := 1; i < c.throttles && spread < limit; i++ {
		spread *= 2
	}
	return min(spread, limit)
}

// allLoadedLocked reports whether every declared secret has a value: the
// sidecar is past its start.
func (c *Cache) allLoadedLocked() bool {
	for _, e := range c.entries {
		if e.value == nil && !e.decl.Optional {
			return false
		}
	}
	return true
}

// phaseLocked is the phase label of secretproxy_vault_throttled_total.
func (c *Cache) phaseLocked() string {
	if c.allLoadedLocked() {
		return metrics.PhaseSteady
	}
	return metrics.PhaseStartup
}

// backoff is exponential from minInterval up to interval, with +0-20% jitter.
func (c *Cache) backoff(failures int) time.Duration {
	d := c.cfg.MinInterval.D()
	for i := 1; i < failures && d < c.cfg.Interval.D(); i++ {
		d *= 2
	}
	d = min(d, c.cfg.Interval.D())
	return d + time.Duration(float64(d)*0.2*c.rnd())
}

// interval is the time to the next pass: the interval shortened by up to
// jitter x interval at random. The jitter only shortens, so that every secret
// is read at least once per interval (a rotated secret reaches every pod
// within one interval), while a fleet's passes still drift apart.
// firstInterval is the time from the prefetch to the first pass: anywhere
// from minInterval to the interval, at random. The pods of a rollout load
// in bursts (as fast as the vault lets them); if their passes followed one
// interval later, each burst would come back every interval. Drawing the
// first pass over the whole interval spreads a fleet's passes evenly, for
// the price of one early pass per start.
func (c *Cache) firstInterval() time.Duration {
	d := c.cfg.Interval.D()
	return max(c.cfg.MinInterval.D(), d-time.Duration(float64(d)*c.rnd()))
}

func (c *Cache) interval() time.Duration {
	d := c.cfg.Interval.D()
	return d - time.Duration(float64(d)*c.cfg.Jitter*c.rnd())
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
	now := c.clk.Now()
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

func buildSecret(name string, s *source.Secret, refreshed time.Time, stale bool) *secretproxyv1.Secret {
	p := &secretproxyv1.Secret{
		Name:        name,
		Value:       s.Value,
		Version:     s.Version,
		ContentType: s.ContentType,
		Tags:        s.Tags,
		RefreshTime: timestamppb.New(refreshed),
		Stale:       stale,
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

// Drain ends every watch stream with ErrShuttingDown and makes waiting reads
// give up; reads of loaded secrets keep working.
func (c *Cache) Drain() {
	c.drainMu.Do(func() { close(c.draining) })
}
