package cache

import (
	"errors"
	"time"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
	"github.com/secretproxy/secretproxy/sidecar/internal/metrics"
	"github.com/secretproxy/secretproxy/sidecar/internal/source"
)

// applyLocked records one answer of the backend. It returns the secret to
// publish to watchers (see loadedLocked), or nil.
func (c *Cache) applyLocked(e *entry, s source.Secret, err error, took time.Duration) *secretproxyv1.Secret {
	now := time.Now()
	if err == nil {
		return c.loadedLocked(e, s, now, took)
	}
	c.m.Refresh.WithLabelValues(e.decl.Name, metrics.RefreshError).Inc()
	k := kindOf(err)
	c.keepLastGoodLocked(e, k)
	if k == kindTransient {
		c.logRetryLocked(e, err, c.scheduleRetryLocked(e, err, now), now, took)
		return nil
	}
	c.settledLocked(e, k)
	return nil
}

// kindOf classifies a failed read by the backend's neutral errors.
func kindOf(err error) kind {
	switch {
	case errors.Is(err, source.ErrNotFound):
		return kindNotFound
	case errors.Is(err, source.ErrDisabled):
		return kindDisabled
	}
	return kindTransient
}

// loadedLocked records a good answer: a new view, the end of any failures and
// of probing (the vault answers), the secret's gauges. It returns the new
// secret when its version or value changed, or when it is served again after
// a disabled or not-found answer; else nil.
func (c *Cache) loadedLocked(e *entry, s source.Secret, now time.Time, took time.Duration) *secretproxyv1.Secret {
	name := e.decl.Name
	old := e.view.Load()
	changed := old.secret == nil || old.secret.Version != s.Version || old.secret.Value != s.Value
	e.failures, e.nextRetry = 0, time.Time{}
	c.probing, c.throttles = false, 0
	nv := &view{secret: buildSecret(name, &s, now), kind: kindOK, lastSuccess: now, expires: s.Expires, notBefore: s.NotBefore}
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

// keepLastGoodLocked records a failed answer of kind k: the view keeps the
// last good value, if any, marked stale.
func (c *Cache) keepLastGoodLocked(e *entry, k kind) {
	old := e.view.Load()
	nv := &view{secret: old.secret, kind: k, lastSuccess: old.lastSuccess, expires: old.expires, notBefore: old.notBefore}
	if old.secret != nil {
		if !old.secret.GetStale() {
			nv.secret = staleCopy(old.secret)
		}
		c.m.Stale.WithLabelValues(e.decl.Name).Set(1)
	}
	e.view.Store(nv)
}

// retry is what scheduleRetryLocked decided about a transient failure.
type retry struct {
	at        time.Time
	throttled bool // the answer carried a Retry-After
	heldBack  bool // the read was not sent: a Retry-After began while it queued
	newRound  bool // the answer began a new throttled round
}

// scheduleRetryLocked counts a transient failure and schedules e's retry:
// back-off, or the end of the vault's Retry-After when it is later, or when
// the read was throttled (the block's spread already grows round by round,
// and a per-secret back-off on top would leave this pod behind the others of
// its fleet).
func (c *Cache) scheduleRetryLocked(e *entry, err error, now time.Time) retry {
	e.failures++
	r := retry{at: now.Add(c.backoff(e.failures)), heldBack: errors.Is(err, errHeldBack)}
	var ra time.Duration
	ra, r.throttled = source.RetryAfter(err)
	if r.throttled && !r.heldBack {
		r.newRound = c.throttleLocked(now, ra)
	}
	if r.at.Before(c.blockedUntil) || r.throttled {
		r.at = c.blockedUntil
	}
	e.nextRetry = r.at
	return r
}

// logRetryLocked says what a transient failure means for the operator: one
// line per throttled round, a warning that names the fix when the fleet's
// steady reads exceed the vault's limit, one line per other failure.
func (c *Cache) logRetryLocked(e *entry, err error, r retry, now time.Time, took time.Duration) {
	name, loaded, retryIn := e.decl.Name, e.view.Load().secret != nil, r.at.Sub(now)
	switch {
	case r.heldBack:
		// One line per throttle is enough; the read that met it said so.
		c.log.Debug("vault read held back by Retry-After; serving the last good value if any", "secret", name,
			"loaded", loaded, "retryIn", retryIn)
	case r.throttled && r.newRound && c.allLoadedLocked():
		// Every secret is loaded, so this is a refresh, not a start:
		// the fleet's steady reads exceed what the vault allows.
		c.log.Warn("vault is throttling refreshes in steady state: the reads of every pod on this vault exceed its limit; "+
			"serving the cached values; lengthen refresh.interval or split the secrets over more vaults (docs/scale.md)",
			"secret", name, "error", err.Error(), "throttledRounds", c.throttles, "retryIn", retryIn)
	case r.throttled:
		c.log.Warn("vault is throttling; no vault read before Retry-After (plus a random spread) has passed; serving the last good value if any",
			"secret", name, "loaded", loaded, "error", err.Error(), "throttledRounds", c.throttles, "retryIn", retryIn, "duration", took)
	default:
		c.log.Warn("vault read failed; serving the last good value if any", "secret", name, "loaded", loaded,
			"error", err.Error(), "failures", e.failures, "retryIn", retryIn, "duration", took)
	}
}

// settledLocked records a not-found or disabled answer. They are settled
// answers, not failures to retry: the next pass checks again. The vault
// answered, so probing ends.
func (c *Cache) settledLocked(e *entry, k kind) {
	e.failures, e.nextRetry = 0, time.Time{}
	c.probing, c.throttles = false, 0
	name, last := e.decl.Name, e.view.Load().secret
	switch {
	case k == kindNotFound && last != nil:
		c.log.Error("secret was deleted from the vault; serving its last good value marked stale", "secret", name, "version", last.Version)
	case k == kindNotFound:
		c.log.Error("declared secret is absent from the vault", "secret", name, "vaultSecret", e.decl.VaultName())
	default:
		c.log.Error("secret is disabled in the vault; reads answer FAILED_PRECONDITION", "secret", name)
	}
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
		if e.view.Load().secret == nil && !e.decl.Optional {
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
