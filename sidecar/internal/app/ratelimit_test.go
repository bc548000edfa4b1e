package app_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/secretproxy/secretproxy/sidecar/internal/app"
	"github.com/secretproxy/secretproxy/sidecar/internal/config"
	"github.com/secretproxy/secretproxy/sidecar/kvemulator"
)

// TestVaultRateLimit runs the sidecar (real azidentity and azsecrets) against
// an emulator whose vault-wide budget is smaller than its start needs: the
// vault answers 429 with Retry-After, the sidecar counts it, sends nothing
// more before Retry-After has passed (the emulator counts reads inside it per
// caller), and is ready once the budget frees.
func TestVaultRateLimit(t *testing.T) {
	secrets := map[string]string{}
	var decl []config.Secret
	for i := range 6 {
		n := fmt.Sprintf("s-%d", i)
		secrets[n] = "test-value-" + n
		decl = append(decl, config.Secret{Name: n})
	}
	// 2 reads per second: the 6 secrets need three windows; Retry-After is
	// then 1 s, so the test takes a few seconds of real time.
	e := startEmulatorWith(t, kvemulator.Options{Secrets: secrets, RateLimit: kvemulator.RateLimit{Reads: 2, Window: time.Second}})
	cfg := baseConfig(e, decl...)
	cfg.Refresh.MinInterval = config.Duration(100 * time.Millisecond)

	v := startAppWith(t, e, cfg, app.Options{ThrottleSpread: 200 * time.Millisecond})
	waitReady(t, v)

	st := e.RateStats()
	if st.Throttled == 0 {
		t.Fatalf("the emulator throttled nothing (%+v): the test does not test the limit", st)
	}
	if st.InsideRetryAfter != 0 {
		t.Errorf("reads sent inside Retry-After = %d, want 0; logs:\n%s", st.InsideRetryAfter, v.logs)
	}
	if st.PeakWindowReads > 2 {
		t.Errorf("peak reads per window = %d, over the limit of 2", st.PeakWindowReads)
	}
	if st.Reads != 6 {
		t.Errorf("vault reads served = %d, want 6 (one per secret)", st.Reads)
	}
	// Every 429 reached the refresher (azcore does not retry 429 itself).
	if got := counterValue(t, v.reg, "secretproxy_vault_throttled_total", "startup"); got != float64(st.Throttled) {
		t.Errorf("secretproxy_vault_throttled_total{phase=startup} = %v, want the emulator's %d", got, st.Throttled)
	}
	if !strings.Contains(v.logs.String(), "vault is throttling") {
		t.Errorf("no throttling warning in the logs:\n%s", v.logs)
	}
}

// counterValue reads one series of a counter in reg by its single label value.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	for _, s := range counterSeries(t, reg, name) {
		if len(s.labels) == 1 && slices.Contains(slices.Collect(maps.Values(s.labels)), label) {
			return s.value
		}
	}
	t.Fatalf("%s{%q} not found", name, label)
	return 0
}
