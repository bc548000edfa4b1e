package cache

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
)

// Scope says which secrets a Pass reads.
type Scope uint8

const (
	// AllSecrets reads every declared secret: the prefetch and each
	// interval's pass.
	AllSecrets Scope = iota
	// DueRetries reads the secrets whose retry is due.
	DueRetries
)

// Run prefetches every declared secret at once, then refreshes them every
// interval (with jitter; the first pass after the prefetch anywhere in the
// interval) and retries failures, until ctx ends. Vault reads in
// flight are cancelled when it returns.
func (c *Cache) Run(ctx context.Context) error {
	defer c.cancel()
	nextPass := time.Now()
	first := true
	for {
		if now := time.Now(); !c.blocked(now) {
			if now.Before(nextPass) {
				c.Pass(ctx, DueRetries)
			} else {
				c.Pass(ctx, AllSecrets)
				if first {
					nextPass = time.Now().Add(c.firstInterval())
					first = false
				} else {
					nextPass = time.Now().Add(c.interval())
				}
			}
		}
		t := time.NewTimer(time.Until(c.nextWake(nextPass)))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		case <-c.wake:
			t.Stop()
		}
	}
}

// blocked reports whether the vault's Retry-After holds every read at now.
func (c *Cache) blocked(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return now.Before(c.blockedUntil)
}

// nextWake is when the refresher has something to do: the next pass, an
// earlier retry, but never before the vault's Retry-After ends.
func (c *Cache) nextWake(nextPass time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	wake := nextPass
	for _, e := range c.entries {
		if !e.nextRetry.IsZero() && e.nextRetry.Before(wake) {
			wake = e.nextRetry
		}
	}
	if wake.Before(c.blockedUntil) {
		wake = c.blockedUntil
	}
	return wake
}

// Pass reads, together, the secrets of its scope, waits for the answers, and
// publishes what changed in one message. Secrets read less than minInterval
// ago are left alone, and nothing is read while the vault's Retry-After lasts.
func (c *Cache) Pass(ctx context.Context, scope Scope) {
	c.mu.Lock()
	started := c.startPassLocked(scope)
	c.mu.Unlock()

	var found []*secretproxyv1.Secret
	for _, fl := range started {
		select {
		case <-fl.done:
		case <-ctx.Done():
			return
		}
		if fl.found != nil {
			found = append(found, fl.found)
		}
	}
	if len(found) > 0 {
		c.mu.Lock()
		c.publishLocked(found)
		c.mu.Unlock()
	}
}

// startPassLocked starts the reads of a pass and returns their flights.
func (c *Cache) startPassLocked(scope Scope) []*flight {
	now := time.Now()
	var started []*flight
	for _, e := range c.entries {
		if scope == DueRetries && (e.nextRetry.IsZero() || e.nextRetry.After(now)) {
			continue
		}
		if e.flight != nil {
			continue // someone else's read answers for this pass and publishes itself
		}
		fl := c.startLocked(e, byPass)
		if fl == nil {
			c.postponeRetryLocked(e, now)
			continue
		}
		started = append(started, fl)
	}
	return started
}

// postponeRetryLocked moves a due retry of e, which could not start (read
// recently or throttled), past the floor, so the refresher sleeps instead of
// spinning.
func (c *Cache) postponeRetryLocked(e *entry, now time.Time) {
	if e.nextRetry.IsZero() || e.nextRetry.After(now) {
		return
	}
	next := e.lastRead.Add(c.cfg.MinInterval.D())
	if next.Before(c.blockedUntil) {
		next = c.blockedUntil
	}
	if !next.After(now) {
		next = now.Add(c.cfg.MinInterval.D())
	}
	e.nextRetry = next
}

// discardRegisterer lets a cache built without metrics register nothing.
type discardRegisterer struct{}

func (discardRegisterer) Register(prometheus.Collector) error  { return nil }
func (discardRegisterer) MustRegister(...prometheus.Collector) {}
func (discardRegisterer) Unregister(prometheus.Collector) bool { return true }
