package dbconn

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/secretproxy/secretproxy/orderapp/internal/secrets"
)

// Why the manager has no pool, or why the database does not answer: a closed
// set, so /readyz can say why it waits without quoting a driver message (which
// may name a credential value).
const (
	reasonWaitingForCredentials = "waiting_for_credentials"
	reasonCredentialsRejected   = "credentials_rejected"
	reasonDatabaseUnreachable   = "database_unreachable"
	reasonDatabaseError         = "database_error"
)

// Reason classifies a connection error into one of the Reason* words.
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrNotReady):
		var nre *NotReadyError
		if errors.As(err, &nre) {
			return nre.Reason
		}
		return reasonWaitingForCredentials
	case IsLoginFailure(err):
		return reasonCredentialsRejected
	case IsConnectionFailure(err), errors.Is(err, context.DeadlineExceeded):
		return reasonDatabaseUnreachable
	default:
		return reasonDatabaseError
	}
}

var reasonText = map[string]string{
	reasonWaitingForCredentials: "waiting for the database credentials from the sidecar",
	reasonCredentialsRejected:   "the database refused the login with the credentials from the sidecar",
	reasonDatabaseUnreachable:   "the database is unreachable",
	reasonDatabaseError:         "the database refused the connection (the application's log has the error)",
}

// ReasonText is a sentence for a Reason word, safe to show to any caller.
func ReasonText(reason string) string {
	if s, ok := reasonText[reason]; ok {
		return s
	}
	return reasonText[reasonDatabaseError]
}

// NotReadyError is ErrNotReady with the reason the manager still has no pool.
// Its message holds no credential value and no driver text.
type NotReadyError struct {
	Reason   string
	Attempts int           // failed attempts of the current credential set
	RetryIn  time.Duration // until the next attempt; 0 when none is scheduled
}

func (e *NotReadyError) Error() string {
	msg := "the database connection is not ready yet: " + ReasonText(e.Reason)
	if e.Attempts > 0 {
		msg += fmt.Sprintf("; %d failed attempts", e.Attempts)
	}
	if e.RetryIn > 0 {
		msg += fmt.Sprintf(", next in %s", e.RetryIn.Round(100*time.Millisecond))
	}
	return msg
}

// Is makes errors.Is(err, ErrNotReady) hold.
func (e *NotReadyError) Is(target error) bool { return target == ErrNotReady }

// waitState is what the manager knows about its attempts while it has no pool.
type waitState struct {
	mu       sync.Mutex
	reason   string
	attempts int
	retryAt  time.Time
}

func (w *waitState) failed(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reason = Reason(err)
	w.attempts++
	w.retryAt = time.Time{}
}

func (w *waitState) scheduled(at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.retryAt = at
}

func (w *waitState) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reason, w.attempts, w.retryAt = "", 0, time.Time{}
}

func (w *waitState) notReady() *NotReadyError {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := &NotReadyError{Reason: w.reason, Attempts: w.attempts}
	if e.Reason == "" {
		e.Reason = reasonWaitingForCredentials
	}
	if d := time.Until(w.retryAt); !w.retryAt.IsZero() && d > 0 {
		e.RetryIn = d
	}
	return e
}

// Backoff bounds the wait between two attempts of a credential set that
// failed: it starts at Min and doubles up to Max, with jitter.
type Backoff struct {
	Min, Max time.Duration
}

// DefaultBackoff retries after 1 s, then up to every 30 s: a database that is
// starting or a role created minutes later is picked up without hammering a
// server that refuses.
func DefaultBackoff() Backoff { return Backoff{Min: time.Second, Max: 30 * time.Second} }

func (b Backoff) valid() Backoff {
	if b.Min <= 0 {
		b = DefaultBackoff()
	}
	if b.Max < b.Min {
		b.Max = b.Min
	}
	return b
}

// jittered is d minus up to a fifth: replicas that failed together spread out.
func jittered(d time.Duration) time.Duration {
	return d - rand.N(d/5+1)
}

// Follower applies the credential sets it is offered and retries a set that
// fails, with back-off, until it works or a newer set replaces it. Without it,
// a first set that fails because the database is still starting or the role
// does not exist yet would leave the application unready for ever, since the
// sidecar sends a set again only when a secret changes.
type Follower struct {
	m    *Manager
	b    Backoff
	mu   sync.Mutex
	next *secrets.Credentials
	wake chan struct{}
}

// NewFollower returns a follower that applies sets to m.
func (m *Manager) NewFollower(b Backoff) *Follower {
	return &Follower{m: m, b: b.valid(), wake: make(chan struct{}, 1)}
}

// Offer hands over a new set, replacing one not yet applied. It never blocks,
// so the watch that calls it keeps reading.
func (f *Follower) Offer(_ context.Context, c secrets.Credentials) error {
	f.mu.Lock()
	f.next = &c
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
	return nil
}

func (f *Follower) take() *secrets.Credentials {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.next
	f.next = nil
	return c
}

// Run applies offered sets until ctx ends.
func (f *Follower) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
		}
		for c := f.take(); c != nil; {
			// A newer set interrupts the retries of a failing one.
			if f.m.applyRetrying(ctx, *c, f.b, f.wake) == nil || ctx.Err() != nil {
				break
			}
			c = f.take()
		}
	}
}

// ApplyRetrying applies c, retrying with back-off until it works or ctx ends
// (then it returns the last failure joined with the context's error). For the
// one-shot commands, which wait for the database up to their timeout.
func (m *Manager) ApplyRetrying(ctx context.Context, c secrets.Credentials, b Backoff) error {
	return m.applyRetrying(ctx, c, b.valid(), nil)
}

var errSuperseded = errors.New("a newer credential set arrived")

// applyRetrying tries c until it works, ctx ends, or interrupt fires
// (errSuperseded).
func (m *Manager) applyRetrying(ctx context.Context, c secrets.Credentials, b Backoff, interrupt <-chan struct{}) error {
	delay := b.Min
	for {
		err := m.Apply(ctx, c)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return errors.Join(err, ctx.Err())
		}
		wait := jittered(delay)
		m.wait.scheduled(time.Now().Add(wait))
		m.log.WarnContext(ctx, "database credentials not applied; trying the same set again",
			"credentials", c, "reason", Reason(err), "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-interrupt:
			t.Stop()
			return errSuperseded
		case <-t.C:
		}
		delay = min(2*delay, b.Max)
	}
}
