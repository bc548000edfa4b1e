package dbconn

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secretproxy/secretproxy/orderapp/internal/dialect"
	"github.com/secretproxy/secretproxy/orderapp/internal/poll"
	"github.com/secretproxy/secretproxy/orderapp/internal/secrets"
)

func notReady(t *testing.T, m *Manager) *NotReadyError {
	t.Helper()
	var nre *NotReadyError
	if err := m.Ready(t.Context()); !errors.As(err, &nre) {
		return nil
	}
	return nre
}

var fastRetry = Backoff{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond}

// TestFollowerRetriesUntilItWorks: a set that cannot connect (its SQLite
// directory does not exist yet) is tried again and again, and applied once it
// can connect, with no new offer. Meanwhile Ready says why, without the path.
func TestFollowerRetriesUntilItWorks(t *testing.T) {
	m, _, _ := newManager(t, dialect.SQLite, nil)
	if nre := notReady(t, m); nre == nil || nre.Reason != reasonWaitingForCredentials {
		t.Fatalf("Ready before any set = %v, want reason %s", nre, reasonWaitingForCredentials)
	}
	dir := filepath.Join(t.TempDir(), "later")
	f := m.NewFollower(fastRetry)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	_ = f.Offer(ctx, secrets.Credentials{Database: filepath.Join(dir, "orders.db"), Version: "a"})
	poll.Until(t, "three failed attempts", func() bool {
		nre := notReady(t, m)
		return nre != nil && nre.Attempts >= 3
	})
	nre := notReady(t, m)
	if nre.Reason != reasonDatabaseError {
		t.Errorf("reason = %q, want %q", nre.Reason, reasonDatabaseError)
	}
	if msg := nre.Error(); msg == "" || containsAny(msg, dir, "orders.db") {
		t.Errorf("not-ready message %q is empty or names the database", msg)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the set applied", func() bool { return m.Ready(t.Context()) == nil })
	if got := rotations(t, m, "success"); got != 1 {
		t.Errorf("rotations success = %v, want 1", got)
	}
}

// TestFollowerNewerSetReplacesFailing: a newer set ends the retries of a
// failing one and is applied at once.
func TestFollowerNewerSetReplacesFailing(t *testing.T) {
	m, _, _ := newManager(t, dialect.SQLite, nil)
	f := m.NewFollower(Backoff{Min: time.Hour, Max: time.Hour}) // only a new offer can end the wait
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	dir := t.TempDir()
	_ = f.Offer(ctx, secrets.Credentials{Database: filepath.Join(dir, "missing", "a.db"), Version: "bad"})
	// The failure is counted just before the retry is scheduled.
	poll.Until(t, "the bad set to fail with a retry scheduled", func() bool {
		nre := notReady(t, m)
		return nre != nil && nre.Attempts == 1 && nre.RetryIn > 0
	})
	_ = f.Offer(ctx, secrets.Credentials{Database: filepath.Join(dir, "b.db"), Version: "good"})
	poll.Until(t, "the good set applied", func() bool { return m.Ready(t.Context()) == nil })
	if v := m.current().creds.Version; v != "good" {
		t.Errorf("current set %q, want good", v)
	}
}

// TestApplyRetryingGivesUpWithContext: the one-shot commands wait up to their
// timeout, then report the last failure with the context's error.
func TestApplyRetryingGivesUpWithContext(t *testing.T) {
	m, _, _ := newManager(t, dialect.SQLite, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err := m.ApplyRetrying(ctx, secrets.Credentials{Database: filepath.Join(t.TempDir(), "missing", "a.db")}, fastRetry)
	if !errors.Is(err, context.DeadlineExceeded) || rotations(t, m, "failure") < 2 {
		t.Errorf("ApplyRetrying = %v after %v failures, want several failures then the deadline", err, rotations(t, m, "failure"))
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{ErrNotReady, reasonWaitingForCredentials},
		{&NotReadyError{Reason: reasonCredentialsRejected}, reasonCredentialsRejected},
		{context.DeadlineExceeded, reasonDatabaseUnreachable},
		{errors.New("database \"x\" does not exist"), reasonDatabaseError},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := Reason(tt.err); got != tt.want {
				t.Errorf("Reason(%v) = %q, want %q", tt.err, got, tt.want)
			}
			if ReasonText(tt.want) == "" {
				t.Errorf("no text for %q", tt.want)
			}
		})
	}
}

func containsAny(s string, subs ...string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}
