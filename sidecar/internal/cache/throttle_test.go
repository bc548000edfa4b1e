package cache

import (
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/secretproxy/secretproxy/sidecar/internal/config"
	"github.com/secretproxy/secretproxy/sidecar/internal/logbuf"
	"github.com/secretproxy/secretproxy/sidecar/internal/metrics"
)

func (c *Cache) blockedFor() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Until(c.blockedUntil)
}

// TestThrottleSpreadDoubles: each throttled round blocks the vault for
// Retry-After plus a random part of a spread. While starting, the spread is
// 10 s, doubling each round up to 40 s, and an answer without a 429 starts it
// again; once every secret is loaded it is half the interval.
func TestThrottleSpreadDoubles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v := newFakeSource(map[string]string{"a": "test-value-a", "b": "test-value-b"})
		h := newHarness(t, testConfig(config.Secret{Name: "a"}, config.Secret{Name: "b"}), v) // interval 5m, Rand 0.5
		v.setAll(errThrottle)                                                                 // 429, Retry-After: 30

		// maxReads is 1 while probing; a pass that is not probing sends its
		// reads together, and the second may be out before the first 429 is back.
		roundOf := func(what string, maxReads int, want time.Duration) {
			t.Helper()
			before := v.count()
			h.c.Pass(t.Context(), AllSecrets)
			if got := v.count() - before; got < 1 || got > maxReads {
				t.Fatalf("%s: %d vault reads, want 1 to %d (reads that went out before the 429 came back; the rest held back)", what, got, maxReads)
			}
			if got := h.c.blockedFor(); got != want {
				t.Errorf("%s: blocked for %s, want %s", what, got, want)
			}
			time.Sleep(want)
		}
		round := func(what string, want time.Duration) { t.Helper(); roundOf(what, 1, want) }
		// Retry-After + 0.5 x spread.
		round("round 1", 30*time.Second+5*time.Second)
		round("round 2", 30*time.Second+10*time.Second)
		round("round 3", 30*time.Second+20*time.Second)
		round("round 4", 30*time.Second+20*time.Second) // the spread stops at 40 s
		round("round 5", 30*time.Second+20*time.Second)

		// a is answered (b is not: the vault fails it), which starts the rounds again.
		v.setAll(nil)
		v.setErr("b", errOutage)
		h.c.Pass(t.Context(), AllSecrets)
		v.setAll(errThrottle)
		time.Sleep(time.Minute)
		roundOf("first round after an answer", 2, 30*time.Second+5*time.Second)

		// Loaded: a refresh meets the 429 and waits up to half an interval more.
		v.setAll(nil)
		v.setErr("b", nil)
		h.c.Pass(t.Context(), AllSecrets)
		if ok, waiting := h.c.Ready(); !ok {
			t.Fatalf("not ready once the vault answers: %v", waiting)
		}
		v.setAll(errThrottle)
		time.Sleep(5 * time.Minute)
		h.c.Pass(t.Context(), AllSecrets)
		if got, want := h.c.blockedFor(), 30*time.Second+75*time.Second; got != want {
			t.Errorf("throttled in steady state: blocked for %s, want %s (Retry-After + 0.5 x half the interval)", got, want)
		}
	})
}

// TestProbingSendsOneReadAtATime: a sidecar's first read, and the first read
// after a 429, goes alone; the others follow only once the vault answered it
// without a 429, so a throttled fleet spends one request per pod per round.
func TestProbingSendsOneReadAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		values := map[string]string{"a": "test-value-a", "b": "test-value-b", "c": "test-value-c", "d": "test-value-d"}
		var secrets []config.Secret
		for _, n := range []string{"a", "b", "c", "d"} {
			secrets = append(secrets, config.Secret{Name: n})
		}
		v := newFakeSource(values)
		h := newHarness(t, testConfig(secrets...), v)

		onlyOneInFlight := func(what string, total int) {
			t.Helper()
			v.mu.Lock()
			v.gate = make(chan struct{})
			v.mu.Unlock()
			before := v.count()
			done := make(chan struct{})
			go func() {
				h.c.Pass(t.Context(), AllSecrets)
				close(done)
			}()
			// Every read that can go out has gone out and waits at the gate.
			synctest.Wait()
			if n := v.count() - before; n != 1 {
				t.Fatalf("%s: %d reads in flight before the first was answered, want 1", what, n)
			}
			v.mu.Lock()
			close(v.gate)
			v.gate = nil
			v.mu.Unlock()
			<-done
			if n := v.count() - before; n != total {
				t.Fatalf("%s: %d reads in the pass, want %d", what, n, total)
			}
		}

		onlyOneInFlight("start", 4)
		if ok, waiting := h.c.Ready(); !ok {
			t.Fatalf("not ready after the first pass: %v", waiting)
		}

		// A pass in steady state sends its reads together; those that had not
		// gone out when the first 429 came are held back.
		v.setAll(errThrottle)
		time.Sleep(5 * time.Minute)
		h.c.Pass(t.Context(), AllSecrets)
		// The next round probes: one read meets the 429, three are held back.
		time.Sleep(h.c.blockedFor())
		before := v.count()
		h.c.Pass(t.Context(), DueRetries)
		if n := v.count() - before; n != 1 {
			t.Fatalf("retry into a throttled vault: %d reads, want 1 (the probe)", n)
		}
		v.setAll(nil)
		time.Sleep(h.c.blockedFor())
		onlyOneInFlight("after the throttle", 4)
	})
}

// TestThrottleWarnsInSteadyState: a 429 during the start counts as startup; a
// 429 once every secret is loaded counts as steady and logs one warning per
// round that says what to do.
func TestThrottleWarnsInSteadyState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs logbuf.Buffer
		v := newFakeSource(map[string]string{"a": "test-value-a", "b": "test-value-b"})
		cfg := testConfig(config.Secret{Name: "a"}, config.Secret{Name: "b"})
		h := newHarness(t, cfg, v)
		h.c.log = slog.New(slog.NewTextHandler(&logs, nil))
		throttled := func(phase string) float64 {
			return testutil.ToFloat64(h.m.VaultThrottled.WithLabelValues(phase))
		}

		v.setAll(errThrottle)
		h.c.Pass(t.Context(), AllSecrets)
		if s, st := throttled(metrics.PhaseStartup), throttled(metrics.PhaseSteady); s != 1 || st != 0 {
			t.Errorf("after a 429 at start: startup %v steady %v, want 1 and 0 (the held-back read is not a 429)", s, st)
		}
		if strings.Contains(logs.String(), "steady state") {
			t.Error("a 429 at start logged the steady-state warning")
		}

		v.setAll(nil)
		time.Sleep(h.c.blockedFor())
		h.c.Pass(t.Context(), AllSecrets)
		v.setAll(errThrottle)
		time.Sleep(5 * time.Minute)
		h.c.Pass(t.Context(), AllSecrets)
		// A steady pass sends both reads together: one or both may meet the 429,
		// and the counter counts 429 answers; the warning is once per round.
		if s, st := throttled(metrics.PhaseStartup), throttled(metrics.PhaseSteady); s != 1 || st < 1 || st > 2 {
			t.Errorf("after a 429 in steady state: startup %v steady %v, want 1 and 1 to 2", s, st)
		}
		out := logs.String()
		if n := strings.Count(out, "throttling refreshes in steady state"); n != 1 {
			t.Errorf("steady-state warnings = %d, want 1:\n%s", n, out)
		}
		if !strings.Contains(out, "lengthen refresh.interval") || strings.Contains(out, "test-value") {
			t.Errorf("the warning must say what to do and hold no value:\n%s", out)
		}
	})
}

// TestFirstPassSpreadsTheFleet: the first pass after the prefetch comes
// anywhere from minInterval to the interval, so pods that loaded in one burst
// do not refresh in one burst.
func TestFirstPassSpreadsTheFleet(t *testing.T) {
	cfg := testConfig(config.Secret{Name: "a"}) // interval 5m, minInterval 10s
	for _, tt := range []struct {
		rand float64
		want time.Duration
	}{{0, 5 * time.Minute}, {0.5, 150 * time.Second}, {0.99, 10 * time.Second}} {
		c := New(cfg, newFakeSource(nil), Options{Rand: func() float64 { return tt.rand }})
		if got := c.firstInterval(); got != tt.want {
			t.Errorf("firstInterval() with draw %v = %s, want %s", tt.rand, got, tt.want)
		}
		c.cancel()
	}
}
