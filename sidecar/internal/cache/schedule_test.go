package cache

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/secretproxy/secretproxy/sidecar/internal/config"
)

// TestSchedule checks the refresher's arithmetic (docs/reference/config.md, "The refresher"): a pass
// every interval shortened by up to jitter (never longer: a rotation reaches
// every pod within one interval), and back-off after failures from minInterval,
// doubling, up to the interval, with jitter only upward.
func TestSchedule(t *testing.T) {
	cfg := testConfig(config.Secret{Name: "a"}) // interval 5m, minInterval 10s
	cfg.Refresh.Jitter = 0.1
	tests := []struct {
		name     string
		rand     float64
		interval time.Duration
		backoff  map[int]time.Duration // failures -> delay
	}{
		{"lowest draw", 0, 5 * time.Minute, map[int]time.Duration{
			1: 10 * time.Second, 2: 20 * time.Second, 3: 40 * time.Second, 5: 160 * time.Second, 6: 5 * time.Minute, 30: 5 * time.Minute,
		}},
		{"middle draw", 0.5, 285 * time.Second, map[int]time.Duration{
			1: 11 * time.Second, 2: 22 * time.Second, 6: 330 * time.Second,
		}},
		{"three-quarter draw", 0.75, 277500 * time.Millisecond, map[int]time.Duration{
			1: 11500 * time.Millisecond, 6: 345 * time.Second,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(cfg, newFakeSource(nil), Options{Rand: func() float64 { return tt.rand }})
			t.Cleanup(c.cancel)
			if got := c.interval(); got != tt.interval {
				t.Errorf("interval() = %s, want %s", got, tt.interval)
			}
			for failures, want := range tt.backoff {
				if got := c.backoff(failures); got != want {
					t.Errorf("backoff(%d) = %s, want %s", failures, got, want)
				}
			}
		})
	}
}

// A read waiting for a first load gives up 100 ms before the caller's
// deadline with ErrUnavailable (UNAVAILABLE at the API), so the caller never
// sees DEADLINE_EXCEEDED from the server's side.
func TestWaitEndsBeforeDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v := newFakeSource(map[string]string{"a": "test-value-a"})
		v.setAll(errOutage)
		h := newHarness(t, testConfig(config.Secret{Name: "a"}), v)
		h.c.Pass(t.Context(), AllSecrets)

		// The deadline and the read's timer are both on the bubble's clock,
		// so nothing here depends on how fast the machine is.
		ctx, cancel := context.WithTimeout(t.Context(), time.Hour)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			_, err := h.c.Get(ctx, "a")
			done <- err
		}()
		unavailableAt(t, done, time.Hour-100*time.Millisecond, "100 ms ahead of the caller's deadline")
		if ctx.Err() != nil {
			t.Error("the caller's deadline passed: the read must answer before it")
		}
	})
}
