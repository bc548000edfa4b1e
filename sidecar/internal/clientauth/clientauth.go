// Package clientauth holds the bearer token callers must send
// (clientAuth.tokenFile) and follows its rotation. Kubernetes updates a
// mounted Secret in place, by an atomic swap of the volume's "..data"
// symlink, and restarts nothing: the file is polled, and the previous token
// stays valid for a short overlap so that a caller still holding it is not
// refused while its own copy catches up.
package clientauth

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// pollInterval is how often the token file is read again. The kubelet
	// itself takes up to a minute or two to update a Secret volume.
	pollInterval = 2 * time.Second
	// overlap is how long the previous token is still accepted after the
	// sidecar saw a new one: long enough for a caller that read its copy
	// just before the swap, and for its retries, short enough that a leaked
	// token rotated away stops working within minutes.
	overlap = 2 * time.Minute
	// reloadOnMismatch bounds how often a wrong token makes the file be read
	// again, so that a caller sending garbage cannot make the sidecar read
	// the file on every call.
	reloadOnMismatch = 100 * time.Millisecond
)

// Options configure Tokens. Time is the wall clock: the tests run in
// testing/synctest bubbles.
type Options struct {
	Logger *slog.Logger
}

// Tokens is the accepted bearer token, and the previous one during the overlap.
type Tokens struct {
	path string
	log  *slog.Logger

	mu            sync.RWMutex
	current       []byte // "Bearer <token>"
	previous      []byte
	previousUntil time.Time
	// lastMismatchRead is when a wrong token last made the file be read;
	// the poll does not move it, so a caller with a fresh token right after
	// a poll still gets its re-read.
	lastMismatchRead time.Time

	generation atomic.Int64
	reads      atomic.Int64
}

// errEmpty is a token file holding nothing but white space.
var errEmpty = errors.New("is empty: put the bearer token callers must send in it")

// New reads the token file; a missing, unreadable or empty file is an error.
func New(path string, o Options) (*Tokens, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	t := &Tokens{path: path, log: o.Logger}
	tok, err := t.read()
	if err != nil {
		return nil, err
	}
	t.current = tok
	return t, nil
}

func (t *Tokens) read() ([]byte, error) {
	t.reads.Add(1)
	b, err := os.ReadFile(t.path)
	if err != nil {
		return nil, fmt.Errorf("read clientAuth.tokenFile: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return nil, fmt.Errorf("clientAuth.tokenFile %s %w", t.path, errEmpty)
	}
	return []byte("Bearer " + tok), nil
}

// Reload reads the file again. A new token becomes current and the old one
// is accepted for Overlap more; a file that cannot be read or is empty keeps
// the token in force (an error, logged by Run), since locking every caller
// out would be worse than a token kept a little longer.
func (t *Tokens) Reload() error {
	tok, err := t.read()
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(tok, t.current) == 1 {
		return nil
	}
	t.previous, t.current = t.current, tok
	t.previousUntil = now.Add(overlap)
	t.generation.Add(1)
	t.log.Info("bearer token changed in clientAuth.tokenFile; the previous one is accepted for the overlap",
		"overlap", overlap, "previousUntil", t.previousUntil)
	return nil
}

// Generation is how many times the token changed since New.
func (t *Tokens) Generation() int64 { return t.generation.Load() }

// Allow reports whether authorization (the whole header value) carries the
// current token, or the previous one within the overlap. On a mismatch the
// file is read again first (at most every 100 ms), so that a caller whose
// copy changed before the poll noticed is not refused.
func (t *Tokens) Allow(authorization string) bool {
	if t.match([]byte(authorization)) {
		return true
	}
	now := time.Now()
	t.mu.Lock()
	due := t.lastMismatchRead.IsZero() || now.Sub(t.lastMismatchRead) >= reloadOnMismatch
	if due {
		t.lastMismatchRead = now
	}
	t.mu.Unlock()
	if !due {
		return false
	}
	if err := t.Reload(); err != nil {
		return false
	}
	return t.match([]byte(authorization))
}

func (t *Tokens) match(got []byte) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if subtle.ConstantTimeCompare(got, t.current) == 1 {
		return true
	}
	return t.previous != nil && time.Now().Before(t.previousUntil) &&
		subtle.ConstantTimeCompare(got, t.previous) == 1
}

// Run polls the file every pollInterval until stop is closed.
func (t *Tokens) Run(stop <-chan struct{}) {
	failing := false
	for {
		tm := time.NewTimer(pollInterval)
		select {
		case <-stop:
			tm.Stop()
			return
		case <-tm.C:
		}
		err := t.Reload()
		switch {
		case err != nil && !failing:
			// Once per episode: the error names the file, never its content.
			t.log.Warn("cannot re-read clientAuth.tokenFile; the current token stays in force", "error", err)
			failing = true
		case err == nil && failing:
			t.log.Info("clientAuth.tokenFile readable again")
			failing = false
		}
	}
}
