package cache

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
	"github.com/secretproxy/secretproxy/sidecar/internal/config"
	"github.com/secretproxy/secretproxy/sidecar/internal/metrics"
	"github.com/secretproxy/secretproxy/sidecar/internal/source"
)

// fakeSource is a hand-written source.Source, the backend of these tests: the
// cache speaks only the neutral words of package source, so a backend is
// whatever answers them. The Key Vault backend (the real SDK against the
// emulator) is tested in the keyvault and app packages.
type fakeSource struct {
	mu      sync.Mutex
	secrets map[string]source.Secret
	errs    map[string]error // per vault name
	all     error            // every read fails with it
	calls   int
	byName  map[string]int
	gate    chan struct{} // when set, reads block until it is closed
}

func newFakeSource(values map[string]string) *fakeSource {
	v := &fakeSource{secrets: map[string]source.Secret{}, errs: map[string]error{}, byName: map[string]int{}}
	for k, val := range values {
		v.set(k, val, "v1")
	}
	return v
}

func (v *fakeSource) set(name, value, version string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.secrets[name] = source.Secret{Value: value, Version: version, Updated: time.Unix(1_700_000_000, 0)}
}

func (v *fakeSource) setSecret(name string, s source.Secret) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.secrets[name] = s
}

func (v *fakeSource) setErr(name string, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err == nil {
		delete(v.errs, name)
	} else {
		v.errs[name] = err
	}
}

func (v *fakeSource) setAll(err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.all = err
}

func (v *fakeSource) count() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.calls
}

func (v *fakeSource) Get(ctx context.Context, name, version string) (source.Secret, error) {
	v.mu.Lock()
	v.calls++
	v.byName[name]++
	gate := v.gate
	v.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return source.Secret{}, &source.TransientError{Err: ctx.Err()}
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.all != nil {
		return source.Secret{}, v.all
	}
	if err := v.errs[name]; err != nil {
		return source.Secret{}, err
	}
	s, ok := v.secrets[name]
	if !ok {
		return source.Secret{}, source.ErrNotFound
	}
	return s, nil
}

var (
	errOutage   = &source.TransientError{Err: errors.New("backend answered 503")}
	errThrottle = &source.TransientError{Err: errors.New("backend answered 429"), RetryAfter: 30 * time.Second}
)

// t0 is when every test starts: a testing/synctest bubble's clock starts at
// midnight UTC, 2000-01-01, and moves only when every goroutine of the bubble
// waits (time.Sleep in a bubble is no real sleep).
var t0 = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

type harness struct {
	c   *Cache
	v   *fakeSource
	reg *prometheus.Registry
	m   *metrics.Metrics
}

func testConfig(secrets ...config.Secret) config.Config {
	cfg := config.Default()
	cfg.Vault.URL = "https://test.vault.azure.net/"
	cfg.Secrets = secrets
	cfg.Refresh.Interval = config.Duration(5 * time.Minute)
	cfg.Refresh.MinInterval = config.Duration(10 * time.Second)
	return cfg
}

// newHarness builds a cache over v; call it inside synctest.Test, at t0.
func newHarness(t *testing.T, cfg config.Config, v *fakeSource) *harness {
	t.Helper()
	if now := time.Now(); !now.Equal(t0) {
		t.Fatalf("the harness is built at %s, want t0 %s: call it first thing inside synctest.Test", now, t0)
	}
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, cfg.DeclaredNames(), "test")
	c := New(cfg, v, Options{Metrics: m, Rand: func() float64 { return 0.5 }})
	t.Cleanup(c.cancel)
	return &harness{c: c, v: v, reg: reg, m: m}
}

// run starts the refresher, lets it prefetch, and stops it at the end of the
// test. When run returns, the prefetch is done and the refresher sleeps.
func (h *harness) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	synctest.Wait()
}

// advance moves the bubble's clock by d, firing every timer due on the way at
// its own time, and returns once every goroutine waits again.
func advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// unavailableAt checks that a Get reporting on done gives up exactly after d:
// still waiting a nanosecond before, ErrUnavailable at d. what names the
// deadline for the failure message.
func unavailableAt(t *testing.T, done <-chan error, d time.Duration, what string) {
	t.Helper()
	advance(d - time.Nanosecond)
	select {
	case err := <-done:
		t.Fatalf("Get returned %v before %s", err, what)
	default:
	}
	advance(time.Nanosecond)
	select {
	case err := <-done:
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Get = %v, want ErrUnavailable", err)
		}
	default:
		t.Fatalf("Get still waits at %s", what)
	}
}

// noMessage checks that nothing is waiting on msgs; call it after advance or
// synctest.Wait, when every message due would already be there.
func noMessage(t *testing.T, msgs <-chan []*secretproxyv1.Secret, why string) {
	t.Helper()
	select {
	case m := <-msgs:
		t.Errorf("%s: got %v", why, m)
	default:
	}
}
