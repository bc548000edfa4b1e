package cache

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
)

// Run prefetches every declared secret at once, then refreshes them every
// interval (with jitter; the first pass after the prefetch anywhere in the
// interval) and retries failures, until ctx ends. Vault reads in
// flight are cancelled when it returns.
func (c *Cache) Run(ctx context.Context) error {
	defer c.cancel()
	nextPass := c.clk.Now()
	first := true
	for {
		now := c.clk.Now()
		c.mu.Lock()
		blocked := now.Before(c.blockedUntil)
		c.mu.Unlock()
		if !blocked {
			if !now.Before(nextPass) {
				c.Pass(ctx, true)
				if first {
					nextPass = c.clk.Now().Add(c.firstInterval())
					first = false
				} else {
					nextPass = c.clk.Now().Add(c.interval())
				}
			} else {
				c.Pass(ctx, false)
			}
		}

		c.mu.Lock()
		wake := nextPass
		for _, e := range c.entries {
			if !e.nextRetry.IsZero() && e.nextRetry.Before(wake) {
				wake = e.nextRetry
			}
		}
		if wake.Before(c.blockedUntil) {
			wake = c.blockedUntil
		}
		c.mu.Unlock()

		t := c.clk.NewTimer(wake.Sub(c.clk.Now()))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C():
		case <-c.wake:
			t.Stop()
		}
	}
}

// Pass reads, together, every declared secret (all) or those whose retry is
// due, waits for the answers, and publishes what changed in one message.
// Secrets read less than minInterval ago are left alone, and nothing is read
// while the vault's Retry-After lasts.
func (c *Cache) Pass(ctx context.Context, all bool) {
	c.mu.Lock()
	now := c.clk.Now()
	var started []*flight
	for _, e := range c.entries {
		if !all && (e.nextRetry.IsZero() || e.nextRetry.After(now)) {
			continue
		}
		if e.flight != nil {
			continue // someone else's read answers for this pass and publishes itself
		}
		fl := c.startLocked(e, true)
		if fl == nil {
			// Read recently or throttled: push a due retry past the floor so the
			// refresher sleeps instead of spinning.
			if !e.nextRetry.IsZero() && !e.nextRetry.After(now) {
				next := e.lastRead.Add(c.cfg.MinInterval.D())
				if next.Before(c.blockedUntil) {
					next = c.blockedUntil
				}
				if !next.After(now) {
					next = now.Add(c.cfg.MinInterval.D())
				}
				e.nextRetry = next
			}
			continue
		}
		started = append(started, fl)
	}
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

// discardRegisterer lets a cache built without metrics register nothing.
type discardRegisterer struct{}

func (discardRegisterer) Register(prometheus.Collector) error  { return nil }
func (discardRegisterer) MustRegister(...prometheus.Collector) {}
func (discardRegisterer) Unregister(prometheus.Collector) bool { return true }
