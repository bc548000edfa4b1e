package cache

import (
	"context"
	"time"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
	"github.com/secretproxy/secretproxy/sidecar/internal/source"
)

// origin says who started a vault read, which decides who publishes its change.
type origin uint8

const (
	// byCaller: a read for a Get or a RefreshSecret, outside a pass. It
	// publishes its change at once and wakes the refresher, since it may have
	// scheduled a retry earlier than the refresher's timer.
	byCaller origin = iota
	// byPass: a read of a pass, which publishes the changes of all its reads
	// together (a user name and a password rotated together reach a stream in
	// one message) and sees their retries when it returns.
	byPass
)

// flight is one vault read in progress; callers of the same secret join it.
type flight struct {
	done   chan struct{}
	origin origin
	found  *secretproxyv1.Secret // set when the read changed the version or value
}

// startLocked starts a vault read of e unless one is in flight, the vault is
// throttled, or e was read less than minInterval ago. It returns the flight
// in progress, or nil.
func (c *Cache) startLocked(e *entry, o origin) *flight {
	if e.flight != nil {
		return e.flight
	}
	now := time.Now()
	if now.Before(c.blockedUntil) {
		return nil
	}
	if !e.lastRead.IsZero() && now.Sub(e.lastRead) < c.cfg.MinInterval.D() {
		return nil
	}
	fl := &flight{done: make(chan struct{}), origin: o}
	e.flight = fl
	e.lastRead = now
	go c.fetch(e, fl)
	return fl
}

// fetch runs one flight: the read, then its answer recorded, broadcast and,
// for a caller's read, published.
func (c *Cache) fetch(e *entry, fl *flight) {
	release, err := c.acquire()
	var s source.Secret
	var took time.Duration
	if err == nil {
		s, took, err = c.read(e)
	}

	c.mu.Lock()
	found := c.applyLocked(e, s, err, took)
	e.flight = nil
	fl.found = found
	if found != nil && fl.origin == byCaller {
		c.publishLocked([]*secretproxyv1.Secret{found})
	}
	c.broadcastLocked()
	c.mu.Unlock()
	// Released only now that a Retry-After in the answer is recorded, so
	// the next queued read sees it.
	release()
	close(fl.done)
	if fl.origin == byCaller {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// acquire takes a read slot and, while probing, the probe. release gives back
// what it took; call it once the answer is recorded. err is transient: the
// cache is closing.
func (c *Cache) acquire() (release func(), err error) {
	release = func() {}
	select {
	case c.readSlots <- struct{}{}:
	case <-c.ctx.Done():
		return release, &source.TransientError{Err: c.ctx.Err()}
	}
	release = func() { <-c.readSlots }
	if !c.isProbing() {
		return release, nil
	}
	select {
	case c.probe <- struct{}{}:
	case <-c.ctx.Done():
		release()
		return func() {}, &source.TransientError{Err: c.ctx.Err()}
	}
	if !c.isProbing() { // the probe ahead of this read ended it
		<-c.probe
		return release, nil
	}
	return func() { <-c.probe; <-c.readSlots }, nil
}

func (c *Cache) isProbing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.probing
}

// read reads e from the vault, unless a Retry-After began while it waited for
// a slot. Key Vault throttles per vault, so no read may go out before
// Retry-After has passed: such a read ends as if it had gone out and been
// throttled (errHeldBack), so the outcome does not depend on which read won
// the race for a slot.
func (c *Cache) read(e *entry) (s source.Secret, took time.Duration, err error) {
	c.mu.Lock()
	until := c.blockedUntil
	c.mu.Unlock()
	if now := time.Now(); now.Before(until) {
		return s, 0, &source.TransientError{RetryAfter: until.Sub(now), Err: errHeldBack}
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.FetchTimeout)
	defer cancel()
	start := time.Now()
	s, err = c.src.Get(ctx, e.decl.VaultName(), e.decl.Version)
	return s, time.Since(start), err
}
