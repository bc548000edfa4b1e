package cache

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/secretproxy/secretproxy/sidecar/internal/config"
	"github.com/secretproxy/secretproxy/sidecar/internal/source"
)

// TestSecretGauges checks the per-secret gauges of docs/reference/metrics.md:
// last success is the time of the last good vault answer, expiry exists only
// while the cached version has an exp, stale follows the last answer.
func TestSecretGauges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		exp := t0.Add(48 * time.Hour)
		v := newFakeSource(nil)
		v.setSecret("a", source.Secret{Value: "test-value-1", Version: "v1", Expires: exp})
		h := newHarness(t, testConfig(config.Secret{Name: "a"}), v)

		steps := []struct {
			name        string
			vault       func()
			lastSuccess time.Time
			expiry      float64 // 0: no series
			stale       float64
		}{
			{"first load, with exp", func() {}, t0, float64(exp.Unix()), 0},
			{"outage", func() { v.setAll(errOutage) }, t0, float64(exp.Unix()), 1},
			{"rotation without exp", func() {
				v.setAll(nil)
				v.set("a", "test-value-2", "v2")
			}, t0.Add(10 * time.Minute), 0, 0},
		}
		// The steps share one cache and one bubble, so they are not subtests;
		// each failure names its step.
		for i, st := range steps {
			func() {
				st.vault()
				if i > 0 {
					time.Sleep(5 * time.Minute)
				}
				h.c.Pass(t.Context(), AllSecrets)
				if got := testutil.ToFloat64(h.m.LastSuccess.WithLabelValues("a")); got != float64(st.lastSuccess.Unix()) {
					t.Errorf("%s: last success = %v, want %v", st.name, got, st.lastSuccess.Unix())
				}
				n := testutil.CollectAndCount(h.m.Expiry)
				switch {
				case st.expiry == 0 && n != 0:
					t.Errorf("%s: expiry series = %d, want none when the version has no exp", st.name, n)
				case st.expiry != 0 && (n != 1 || testutil.ToFloat64(h.m.Expiry.WithLabelValues("a")) != st.expiry):
					t.Errorf("%s: expiry = %d series, want 1 of %v", st.name, n, st.expiry)
				}
				if got := testutil.ToFloat64(h.m.Stale.WithLabelValues("a")); got != st.stale {
					t.Errorf("%s: stale = %v, want %v", st.name, got, st.stale)
				}
			}()
		}
	})
}
