// Package poll is the order application's one way for a test to wait for
// something it cannot be told about through a channel: ask again every 10 ms
// until it holds, and fail the test after a deadline. Timing never decides a
// pass; the deadline only bounds a failure.
package poll

import (
	"testing"
	"time"
)

// Timeout bounds every wait: generous, since only a failure reaches it.
const Timeout = 15 * time.Second

// Until calls cond every 10 ms until it holds, and fails t (naming what) when
// it has not held within Timeout or t's context ends.
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("not within %s: %s", Timeout, what)
		case <-t.Context().Done():
			t.Fatalf("waiting for %s: %v", what, t.Context().Err())
		}
	}
}
