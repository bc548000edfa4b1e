package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/testing/protocmp"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
	"github.com/secretproxy/secretproxy/sidecar/internal/config"
	"github.com/secretproxy/secretproxy/sidecar/internal/metrics"
	"github.com/secretproxy/secretproxy/sidecar/internal/source"
)

func TestColdReadsShareOneVaultRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v := newFakeSource(map[string]string{"db-password": "test-password-1"})
		v.gate = make(chan struct{})
		h := newHarness(t, testConfig(config.Secret{Name: "db-password"}), v)

		const readers = 100
		var wg sync.WaitGroup
		got := make([]*secretproxyv1.Secret, readers)
		errs := make([]error, readers)
		for i := range readers {
			wg.Go(func() { got[i], errs[i] = h.c.Get(t.Context(), "db-password") })
		}
		synctest.Wait() // every reader waits, the one vault read at the gate
		if n := testutil.ToFloat64(h.m.ReadWaitCounter) + testutil.ToFloat64(h.m.ReadCoalescedCounter); n != readers {
			t.Fatalf("readers waiting = %v, want %d", n, readers)
		}
		close(v.gate)
		wg.Wait()

		for i := range readers {
			if errs[i] != nil || got[i].GetValue() != "test-password-1" {
				t.Fatalf("reader %d: %v, value ok=%v", i, errs[i], got[i].GetValue() == "test-password-1")
			}
		}
		if n := v.count(); n != 1 {
			t.Errorf("vault reads = %d, want 1", n)
		}
		if w, c := testutil.ToFloat64(h.m.ReadWaitCounter), testutil.ToFloat64(h.m.ReadCoalescedCounter); w != 1 || c != readers-1 {
			t.Errorf("cache reads wait=%v coalesced=%v, want 1 and %d", w, c, readers-1)
		}
		// Now it is a hit, without a vault read.
		if _, err := h.c.Get(t.Context(), "db-password"); err != nil {
			t.Fatal(err)
		}
		if n, hits := v.count(), testutil.ToFloat64(h.m.ReadHitCounter); n != 1 || hits != 1 {
			t.Errorf("after a hit: vault reads %d (want 1), hits %v (want 1)", n, hits)
		}
	})
}

func TestReadStates(t *testing.T) {
	exp := t0.Add(time.Hour)
	tests := []struct {
		name     string
		cfg      func(*config.Config)
		before   func(v *fakeSource) // state of the vault at the first load
		after    func(v *fakeSource) // state at a later pass (nil: no second pass)
		advance  time.Duration       // fake time between the passes and the read
		want     error
		wantSt   bool // stale
		wantVal  string
		wantMsgs []string
	}{
		{name: "loaded", want: nil, wantVal: "test-password-1"},
		{name: "never loaded, not found", before: func(v *fakeSource) { v.setErr("db-password", source.ErrNotFound) }, want: ErrNotFound},
		{name: "never loaded, disabled", before: func(v *fakeSource) { v.setErr("db-password", source.ErrDisabled) }, want: ErrDisabled},
		{name: "loaded, then outage", after: func(v *fakeSource) { v.setAll(errOutage) }, wantVal: "test-password-1", wantSt: true},
		{name: "loaded, then throttled", after: func(v *fakeSource) { v.setAll(errThrottle) }, wantVal: "test-password-1", wantSt: true},
		{name: "loaded, then deleted", after: func(v *fakeSource) { v.setErr("db-password", source.ErrNotFound) }, wantVal: "test-password-1", wantSt: true},
		{name: "loaded, then disabled", after: func(v *fakeSource) { v.setErr("db-password", source.ErrDisabled) }, want: ErrDisabled},
		{
			name: "outage within maxStale", cfg: func(c *config.Config) { c.Refresh.MaxStale = config.Duration(time.Hour) },
			after: func(v *fakeSource) { v.setAll(errOutage) }, advance: 30 * time.Minute, wantVal: "test-password-1", wantSt: true,
		},
		{
			name: "outage beyond maxStale", cfg: func(c *config.Config) { c.Refresh.MaxStale = config.Duration(time.Hour) },
			after: func(v *fakeSource) { v.setAll(errOutage) }, advance: 2 * time.Hour, want: ErrTooStale,
		},
		{
			name: "deleted within maxStale", cfg: func(c *config.Config) { c.Refresh.MaxStale = config.Duration(time.Hour) },
			after: func(v *fakeSource) { v.setErr("db-password", source.ErrNotFound) }, advance: 30 * time.Minute, wantVal: "test-password-1", wantSt: true,
		},
		{
			// maxStale bounds any last good value the vault no longer confirms.
			name: "deleted beyond maxStale", cfg: func(c *config.Config) { c.Refresh.MaxStale = config.Duration(time.Hour) },
			after: func(v *fakeSource) { v.setErr("db-password", source.ErrNotFound) }, advance: 2 * time.Hour, want: ErrTooStale,
		},
		{
			name: "expired, refuseExpired", cfg: func(c *config.Config) { c.Refresh.RefuseExpired = true },
			before: func(v *fakeSource) {
				v.setSecret("db-password", source.Secret{Value: "test-password-1", Version: "v1", Expires: exp})
			},
			advance: 2 * time.Hour, want: ErrExpired,
		},
		{
			name: "expired, served when refuseExpired is off",
			before: func(v *fakeSource) {
				v.setSecret("db-password", source.Secret{Value: "test-password-1", Version: "v1", Expires: exp})
			},
			advance: 2 * time.Hour, wantVal: "test-password-1",
		},
		{
			name: "not before, refuseExpired", cfg: func(c *config.Config) { c.Refresh.RefuseExpired = true },
			before: func(v *fakeSource) {
				v.setSecret("db-password", source.Secret{Value: "test-password-1", Version: "v1", NotBefore: t0.Add(time.Hour)})
			},
			want: ErrNotYetValid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig(config.Secret{Name: "db-password"})
				if tt.cfg != nil {
					tt.cfg(&cfg)
				}
				v := newFakeSource(map[string]string{"db-password": "test-password-1"})
				if tt.before != nil {
					tt.before(v)
				}
				h := newHarness(t, cfg, v)
				h.c.Pass(t.Context(), AllSecrets)
				if tt.after != nil {
					tt.after(v)
					time.Sleep(cfg.Refresh.Interval.D())
					h.c.Pass(t.Context(), AllSecrets)
				}
				time.Sleep(tt.advance)
				ctx, cancel := context.WithTimeout(t.Context(), time.Second)
				defer cancel()
				got, err := h.c.Get(ctx, "db-password")
				if !errors.Is(err, tt.want) {
					t.Fatalf("Get error = %v, want %v", err, tt.want)
				}
				if tt.want != nil {
					return
				}
				if got.GetValue() != tt.wantVal || got.GetStale() != tt.wantSt {
					t.Errorf("Get = value ok %v, stale %v; want value ok, stale %v", got.GetValue() == tt.wantVal, got.GetStale(), tt.wantSt)
				}
				stale := testutil.ToFloat64(h.m.Stale.WithLabelValues("db-password"))
				if (stale == 1) != tt.wantSt {
					t.Errorf("secretproxy_secret_stale = %v, want stale %v", stale, tt.wantSt)
				}
			})
		})
	}
}

func TestUndeclared(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, testConfig(config.Secret{Name: "a"}), newFakeSource(nil))
		if _, err := h.c.Get(t.Context(), "nope"); !errors.Is(err, ErrUndeclared) {
			t.Errorf("Get = %v, want ErrUndeclared", err)
		}
		if _, err := h.c.Refresh(t.Context(), "nope"); !errors.Is(err, ErrUndeclared) {
			t.Errorf("Refresh = %v, want ErrUndeclared", err)
		}
		if h.c.Declared("A") {
			t.Error("names must match case-sensitively")
		}
	})
}

func TestNeverLoadedWaitsThenUnavailable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v := newFakeSource(map[string]string{"a": "test-value-a"})
		v.setAll(errOutage)
		h := newHarness(t, testConfig(config.Secret{Name: "a"}), v)
		h.c.Pass(t.Context(), AllSecrets)

		done := make(chan error, 1)
		go func() {
			_, err := h.c.Get(context.Background(), "a") // no deadline: waits DefaultWait
			done <- err
		}()
		unavailableAt(t, done, 5*time.Second, "the end of DefaultWait (5 s)") // the read waits on its timer
		if n := v.count(); n != 1 {
			t.Errorf("vault reads = %d, want 1 (a read within minInterval of the last must not call the vault)", n)
		}
	})
}

func TestOutageServesStaleAndRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v := newFakeSource(map[string]string{"a": "test-value-a"})
		h := newHarness(t, testConfig(config.Secret{Name: "a"}), v)
		h.run(t)
		if ok, _ := h.c.Ready(); !ok {
			t.Fatal("not ready after the prefetch")
		}

		v.setAll(errOutage)
		advance(firstPass) // the next pass fails
		got, err := h.c.Get(t.Context(), "a")
		if err != nil || !got.GetStale() || got.GetValue() != "test-value-a" {
			t.Fatalf("during the outage: err %v stale %v", err, got.GetStale())
		}
		if ok, _ := h.c.Ready(); !ok {
			t.Error("an outage must not make the cache unready")
		}
		// Back-off: the first retry comes minInterval (+ jitter: 20 % x the
		// harness's draw 0.5) later, the second twice that.
		before := v.count()
		advance(11*time.Second - time.Nanosecond)
		if v.count() != before {
			t.Fatalf("vault reads before the first retry: %d, want none", v.count()-before)
		}
		advance(time.Nanosecond)
		if v.count() != before+1 {
			t.Fatalf("vault reads at the first retry (11s: minInterval 10s + 10%%): %d, want 1", v.count()-before)
		}
		advance(22*time.Second - time.Nanosecond)
		if v.count() != before+1 {
			t.Fatalf("vault reads before the second retry: %d, want 1", v.count()-before)
		}
		v.setAll(nil)
		advance(time.Nanosecond)
		if v.count() != before+2 {
			t.Fatalf("vault reads at the second retry (22s: doubled + 10%%): %d, want 2", v.count()-before)
		}
		got, err = h.c.Get(t.Context(), "a")
		if err != nil || got.GetStale() {
			t.Fatalf("after recovery: err %v stale %v, want fresh", err, got.GetStale())
		}
		if s := testutil.ToFloat64(h.m.Stale.WithLabelValues("a")); s != 0 {
			t.Errorf("secretproxy_secret_stale = %v after recovery, want 0", s)
		}
	})
}

// firstPass is when the harness's first pass after the prefetch comes: the
// interval (5m) less the draw (0.5) of it, see firstInterval.
const firstPass = 150 * time.Second

func TestRetryAfterHoldsEveryRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v := newFakeSource(map[string]string{"a": "test-value-a", "b": "test-value-b"})
		h := newHarness(t, testConfig(config.Secret{Name: "a"}, config.Secret{Name: "b"}), v)
		h.run(t)
		if ok, _ := h.c.Ready(); !ok {
			t.Fatal("not ready after the prefetch")
		}

		v.setAll(errThrottle) // 429, Retry-After: 30
		advance(firstPass)
		calls := v.count()
		v.setAll(nil)

		// The refresher sleeps until Retry-After 30 s plus the spread:
		// everything is loaded, so the spread is half the interval, of which
		// the harness draws 0.5: 105 s. Until then nothing reads the vault: not
		// the refresher, not RefreshSecret, not a read of a loaded secret.
		for range 104 {
			advance(time.Second)
			if s, err := h.c.Refresh(t.Context(), "a"); err != nil || !s.GetStale() {
				t.Fatalf("RefreshSecret while throttled: err %v stale %v, want the stale cached value", err, s.GetStale())
			}
			if _, err := h.c.Get(t.Context(), "b"); err != nil {
				t.Fatalf("Get while throttled: %v", err)
			}
		}
		advance(time.Second - time.Nanosecond)
		if got := v.count(); got != calls {
			t.Fatalf("vault reads during Retry-After: %d, want 0", got-calls)
		}
		advance(time.Nanosecond)
		if got := v.count(); got != calls+2 {
			t.Errorf("vault reads when Retry-After and spread (105 s) have passed: %d, want 2 (both secrets)", got-calls)
		}
		if s, _ := h.c.Get(t.Context(), "a"); s.GetStale() {
			t.Error("still stale after the vault answered again")
		}
	})
}

func TestRefreshSecretMinInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v := newFakeSource(map[string]string{"a": "test-value-a"})
		h := newHarness(t, testConfig(config.Secret{Name: "a"}), v)
		h.c.Pass(t.Context(), AllSecrets)
		first, _ := h.c.Get(t.Context(), "a")

		v.set("a", "test-value-a2", "v2")
		time.Sleep(5 * time.Second)
		got, err := h.c.Refresh(t.Context(), "a")
		if err != nil || got.GetVersion() != "v1" || v.count() != 1 {
			t.Fatalf("Refresh within minInterval: err %v version %q reads %d; want cached v1 and no read", err, got.GetVersion(), v.count())
		}
		if !got.GetRefreshTime().AsTime().Equal(first.GetRefreshTime().AsTime()) {
			t.Error("refresh_time must say when the vault last confirmed the value")
		}
		time.Sleep(5 * time.Second)
		got, err = h.c.Refresh(t.Context(), "a")
		if err != nil || got.GetVersion() != "v2" || v.count() != 2 {
			t.Fatalf("Refresh after minInterval: err %v version %q reads %d; want v2 and one more read", err, got.GetVersion(), v.count())
		}
		if want := t0.Add(10 * time.Second); !got.GetRefreshTime().AsTime().Equal(want) {
			t.Errorf("refresh_time = %s, want %s", got.GetRefreshTime().AsTime(), want)
		}
	})
}

// watch starts a watcher and returns its messages.
func watch(t *testing.T, c *Cache, names ...string) (<-chan []*secretproxyv1.Secret, <-chan error) {
	t.Helper()
	msgs := make(chan []*secretproxyv1.Secret, 16)
	errc := make(chan error, 1)
	go func() {
		errc <- c.Watch(t.Context(), names, func(s []*secretproxyv1.Secret) error {
			msgs <- s
			return nil
		})
	}()
	return msgs, errc
}

func recv(t *testing.T, msgs <-chan []*secretproxyv1.Secret) map[string]string {
	t.Helper()
	select {
	case m := <-msgs:
		out := map[string]string{}
		for _, s := range m {
			out[s.GetName()] = s.GetVersion() + "=" + s.GetValue()
		}
		return out
	case <-time.After(10 * time.Second):
		t.Fatal("no watch message")
		return nil
	}
}

func TestWatchRotationInOneMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v := newFakeSource(map[string]string{"db-user": "test-user-1", "db-password": "test-password-1", "other": "test-other"})
		h := newHarness(t, testConfig(config.Secret{Name: "db-user"}, config.Secret{Name: "db-password"}, config.Secret{Name: "other"}), v)
		msgs, _ := watch(t, h.c, "db-user", "db-password")
		h.run(t)

		if diff := cmp.Diff(map[string]string{"db-user": "v1=test-user-1", "db-password": "v1=test-password-1"}, recv(t, msgs)); diff != "" {
			t.Errorf("first message (-want +got):\n%s", diff)
		}
		if n := testutil.ToFloat64(h.m.Watchers); n != 1 {
			t.Errorf("secretproxy_watchers = %v, want 1", n)
		}
		// Rotate user and password; an unwatched secret changes too.
		v.set("db-user", "test-user-2", "v2")
		v.set("db-password", "test-password-2", "v2")
		v.set("other", "test-other-2", "v2")
		advance(firstPass)
		if diff := cmp.Diff(map[string]string{"db-user": "v2=test-user-2", "db-password": "v2=test-password-2"}, recv(t, msgs)); diff != "" {
			t.Errorf("rotation message (-want +got):\n%s", diff)
		}
		// An unchanged pass and a stale-only change send nothing.
		advance(5 * time.Minute)
		v.setAll(errOutage)
		advance(5 * time.Minute)
		noMessage(t, msgs, "an unchanged pass and a stale-only change send nothing")
		if got := testutil.ToFloat64(h.m.Refresh.WithLabelValues("db-user", metrics.RefreshChanged)); got != 2 {
			t.Errorf("refresh_total{changed} = %v, want 2", got)
		}
		if got := testutil.ToFloat64(h.m.Refresh.WithLabelValues("db-user", metrics.RefreshError)); got == 0 {
			t.Error("refresh_total{error} = 0: the stale-only change never happened")
		}
	})
}

func TestWatchRefreshSecretChangeIsPushed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v := newFakeSource(map[string]string{"a": "test-value-1"})
		h := newHarness(t, testConfig(config.Secret{Name: "a"}), v)
		h.c.Pass(t.Context(), AllSecrets)
		msgs, _ := watch(t, h.c)
		recv(t, msgs)
		v.set("a", "test-value-2", "v2")
		time.Sleep(time.Minute)
		if _, err := h.c.Refresh(t.Context(), "a"); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(map[string]string{"a": "v2=test-value-2"}, recv(t, msgs)); diff != "" {
			t.Errorf("message after RefreshSecret (-want +got):\n%s", diff)
		}
	})
}

func TestWatchSettling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v := newFakeSource(map[string]string{"a": "test-value-a"})
		v.setErr("gone", source.ErrNotFound)
		v.setErr("off", source.ErrDisabled)
		cfg := testConfig(config.Secret{Name: "a"}, config.Secret{Name: "gone", Optional: true}, config.Secret{Name: "off"})
		h := newHarness(t, cfg, v)
		h.c.Pass(t.Context(), AllSecrets)

		tests := []struct {
			names []string
			want  error
		}{
			{[]string{"a", "gone"}, nil},
			{[]string{"a", "off"}, ErrDisabled},
			{nil, ErrDisabled},
			{[]string{"nope"}, ErrUndeclared},
		}
		for _, tt := range tests {
			msgs, errc := watch(t, h.c, tt.names...)
			if tt.want == nil {
				if diff := cmp.Diff(map[string]string{"a": "v1=test-value-a"}, recv(t, msgs)); diff != "" {
					t.Errorf("%v: first message (-want +got):\n%s", tt.names, diff)
				}
				continue
			}
			err := <-errc
			var ne *NameError
			if !errors.Is(err, tt.want) || !errors.As(err, &ne) {
				t.Errorf("%v: Watch = %v, want %v naming the secret", tt.names, err, tt.want)
			}
		}
	})
}

func TestDrainEndsWatchers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v := newFakeSource(map[string]string{"a": "test-value-a"})
		h := newHarness(t, testConfig(config.Secret{Name: "a"}), v)
		h.c.Pass(t.Context(), AllSecrets)
		msgs, errc := watch(t, h.c)
		recv(t, msgs)
		h.c.Drain()
		if err := <-errc; !errors.Is(err, ErrShuttingDown) {
			t.Fatalf("Watch after Drain = %v, want ErrShuttingDown", err)
		}
		if _, err := h.c.Get(t.Context(), "a"); err != nil {
			t.Errorf("a loaded secret must still be served while draining: %v", err)
		}
	})
}

func TestReadiness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v := newFakeSource(map[string]string{"a": "test-value-a"})
		v.setAll(errOutage)
		cfg := testConfig(config.Secret{Name: "a"}, config.Secret{Name: "opt", Optional: true})
		cfg.Refresh.MaxStale = config.Duration(time.Hour)
		h := newHarness(t, cfg, v)
		h.c.Pass(t.Context(), AllSecrets)
		if ok, waiting := h.c.Ready(); ok || !cmp.Equal(waiting, []string{"a"}) {
			t.Fatalf("Ready = %v %v, want false [a]", ok, waiting)
		}
		v.setAll(nil)
		time.Sleep(time.Minute)
		h.c.Pass(t.Context(), AllSecrets)
		if ok, waiting := h.c.Ready(); !ok {
			t.Fatalf("Ready = false %v; the optional secret must not hold readiness back", waiting)
		}
		v.setAll(errOutage)
		time.Sleep(time.Minute)
		h.c.Pass(t.Context(), AllSecrets)
		if ok, _ := h.c.Ready(); !ok {
			t.Error("unready during an outage within maxStale")
		}
		time.Sleep(2 * time.Hour)
		if ok, _ := h.c.Ready(); ok {
			t.Error("still ready beyond maxStale")
		}
	})
}

func TestListHasNoValues(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v := newFakeSource(map[string]string{"a": "test-value-a"})
		h := newHarness(t, testConfig(config.Secret{Name: "a"}, config.Secret{Name: "b"}), v)
		h.c.Pass(t.Context(), AllSecrets)
		got := h.c.List()
		want := []*secretproxyv1.Secret{
			{Name: "a", Version: "v1", UpdateTime: timestamp(time.Unix(1_700_000_000, 0)), RefreshTime: timestamp(t0)},
			{Name: "b"}, // absent from the vault: no value, so not stale
		}
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Errorf("List (-want +got):\n%s", diff)
		}
	})
}

func TestVaultReadsAreBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		values := map[string]string{}
		var secrets []config.Secret
		for i := range 20 {
			n := fmt.Sprintf("s-%02d", i)
			values[n] = "test-value-" + n
			secrets = append(secrets, config.Secret{Name: n})
		}
		v := newFakeSource(values)
		v.gate = make(chan struct{})
		cfg := testConfig(secrets...)
		c := New(cfg, v, Options{MaxConcurrentReads: 3})
		t.Cleanup(c.cancel)
		// The first read of a sidecar goes alone (probing); once the vault has
		// answered it, reads go out up to the bound.
		close(v.gate)
		if _, err := c.Get(t.Context(), "s-00"); err != nil {
			t.Fatalf("first read: %v", err)
		}
		v.mu.Lock()
		v.gate = make(chan struct{})
		v.mu.Unlock()
		done := make(chan struct{})
		go func() {
			c.Pass(t.Context(), AllSecrets) // s-00 was read less than minInterval ago: 19 reads
			close(done)
		}()
		synctest.Wait() // every read that can start has started and waits at the gate
		if n := v.count(); n != 4 {
			t.Fatalf("vault reads in flight = %d, want at most 3", n-1)
		}
		close(v.gate)
		<-done
		if n := v.count(); n != 20 {
			t.Errorf("vault reads after the pass = %d, want 20", n)
		}
		if ok, waiting := c.Ready(); !ok {
			t.Errorf("not ready after the pass: %v", waiting)
		}
	})
}

func TestRefreshSecretJoinsReadInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v := newFakeSource(map[string]string{"a": "test-value-1"})
		h := newHarness(t, testConfig(config.Secret{Name: "a"}), v)
		h.c.Pass(t.Context(), AllSecrets)
		v.set("a", "test-value-2", "v2")
		v.mu.Lock()
		v.gate = make(chan struct{})
		v.mu.Unlock()
		time.Sleep(time.Minute)

		passDone := make(chan struct{})
		go func() {
			h.c.Pass(t.Context(), AllSecrets)
			close(passDone)
		}()
		synctest.Wait() // the pass's read waits at the gate
		if n := v.count(); n != 2 {
			t.Fatalf("vault reads with the pass's in flight = %d, want 2", n)
		}
		got := make(chan *secretproxyv1.Secret, 1)
		go func() {
			s, _ := h.c.Refresh(t.Context(), "a")
			got <- s
		}()
		close(v.gate)
		<-passDone
		s := <-got
		if s.GetVersion() != "v2" {
			t.Errorf("RefreshSecret = version %q, want v2 from the read in flight", s.GetVersion())
		}
		if n := v.count(); n != 2 {
			t.Errorf("vault reads = %d, want 2 (the RefreshSecret joined the pass's read)", n)
		}
	})
}

// A 429 holds the reads that were queued for a slot when it came, not only
// the reads started after it: Key Vault's Retry-After is for the whole vault.
func TestRetryAfterHoldsQueuedReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v := newFakeSource(map[string]string{"a": "test-value-a", "b": "test-value-b", "c": "test-value-c"})
		cfg := testConfig(config.Secret{Name: "a"}, config.Secret{Name: "b"}, config.Secret{Name: "c"})
		// Rand 0: no spread after Retry-After, so the retries are due at 30 s.
		c := New(cfg, v, Options{MaxConcurrentReads: 1, Rand: func() float64 { return 0 }})
		t.Cleanup(c.cancel)
		v.gate = make(chan struct{})
		v.setAll(errThrottle) // 429, Retry-After: 30
		done := make(chan struct{})
		go func() {
			c.Pass(t.Context(), AllSecrets)
			close(done)
		}()
		synctest.Wait() // the first read waits at the gate, the others for its slot
		if n := v.count(); n != 1 {
			t.Fatalf("vault reads in flight = %d, want 1", n)
		}
		close(v.gate)
		<-done
		if n := v.count(); n != 1 {
			t.Fatalf("vault reads after a 429 = %d, want 1: the reads queued behind it must wait for Retry-After", n)
		}

		v.setAll(nil)
		time.Sleep(29 * time.Second)
		c.Pass(t.Context(), DueRetries)
		if n := v.count(); n != 1 {
			t.Fatalf("vault reads 29 s into Retry-After: 30 = %d, want 1", n)
		}
		time.Sleep(time.Second)
		c.Pass(t.Context(), DueRetries)
		if n := v.count(); n != 4 {
			t.Errorf("vault reads once Retry-After has passed = %d, want 4 (each postponed read is retried)", n)
		}
		if ok, waiting := c.Ready(); !ok {
			t.Errorf("not ready after the retries: %v", waiting)
		}
	})
}

// An optional secret disabled when a stream starts is left out of its first
// message; enabled again (same version, same value), it must reach that
// stream, and a stream that already has it must get nothing.
func TestWatchGetsOptionalSecretEnabledAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v := newFakeSource(map[string]string{"a": "test-value-a", "opt": "test-value-opt"})
		h := newHarness(t, testConfig(config.Secret{Name: "a"}, config.Secret{Name: "opt", Optional: true}), v)
		h.c.Pass(t.Context(), AllSecrets)
		early, _ := watch(t, h.c, "a", "opt")
		if diff := cmp.Diff(map[string]string{"a": "v1=test-value-a", "opt": "v1=test-value-opt"}, recv(t, early)); diff != "" {
			t.Errorf("first message before the disable (-want +got):\n%s", diff)
		}

		v.setErr("opt", source.ErrDisabled)
		time.Sleep(5 * time.Minute)
		h.c.Pass(t.Context(), AllSecrets)
		late, _ := watch(t, h.c, "a", "opt")
		if diff := cmp.Diff(map[string]string{"a": "v1=test-value-a"}, recv(t, late)); diff != "" {
			t.Errorf("first message while opt is disabled (-want +got):\n%s", diff)
		}

		v.setErr("opt", nil)
		time.Sleep(5 * time.Minute)
		h.c.Pass(t.Context(), AllSecrets)
		if diff := cmp.Diff(map[string]string{"opt": "v1=test-value-opt"}, recv(t, late)); diff != "" {
			t.Errorf("message after opt is enabled again (-want +got):\n%s", diff)
		}
		noMessage(t, early, "a stream that already had opt")
		if got := testutil.ToFloat64(h.m.Refresh.WithLabelValues("opt", metrics.RefreshUnchanged)); got != 1 {
			t.Errorf("refresh_total{opt,unchanged} = %v, want 1: enabling again does not change the value", got)
		}
	})
}

// Readiness under maxStale, by the vault's answer after the first load: any
// non-optional secret the vault has not confirmed for longer than maxStale
// holds readiness back, whatever the reason; within it the pod stays ready.
func TestReadinessMaxStaleByAnswer(t *testing.T) {
	tests := []struct {
		name    string
		answer  error
		advance time.Duration
		ready   bool
	}{
		{"outage within maxStale", errOutage, 30 * time.Minute, true},
		{"outage beyond maxStale", errOutage, 2 * time.Hour, false},
		{"deleted within maxStale", source.ErrNotFound, 30 * time.Minute, true},
		{"deleted beyond maxStale", source.ErrNotFound, 2 * time.Hour, false},
		{"disabled within maxStale", source.ErrDisabled, 30 * time.Minute, true},
		{"disabled beyond maxStale", source.ErrDisabled, 2 * time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				v := newFakeSource(map[string]string{"a": "test-value-a"})
				cfg := testConfig(config.Secret{Name: "a"})
				cfg.Refresh.MaxStale = config.Duration(time.Hour)
				h := newHarness(t, cfg, v)
				h.c.Pass(t.Context(), AllSecrets)
				v.setErr("a", tt.answer)
				time.Sleep(5 * time.Minute)
				h.c.Pass(t.Context(), AllSecrets)
				time.Sleep(tt.advance)
				if ok, waiting := h.c.Ready(); ok != tt.ready {
					t.Errorf("Ready = %v %v, want %v", ok, waiting, tt.ready)
				}
			})
		})
	}
}

// A RefreshSecret waiting on a vault read when shutdown starts finishes with
// the cached value (in-flight unary calls finish); one of a secret never
// loaded gives up with ErrShuttingDown.
func TestRefreshAtDrain(t *testing.T) {
	tests := []struct {
		name    string
		preload bool
		want    error
	}{
		{"loaded: the cached value", true, nil},
		{"never loaded: shutting down", false, ErrShuttingDown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				v := newFakeSource(map[string]string{"a": "test-value-a"})
				h := newHarness(t, testConfig(config.Secret{Name: "a"}), v)
				if tt.preload {
					h.c.Pass(t.Context(), AllSecrets)
				}
				reads := v.count()
				v.mu.Lock()
				v.gate = make(chan struct{})
				v.mu.Unlock()
				t.Cleanup(func() { close(v.gate) })
				time.Sleep(time.Minute)
				type result struct {
					s   *secretproxyv1.Secret
					err error
				}
				done := make(chan result, 1)
				go func() {
					s, err := h.c.Refresh(context.Background(), "a")
					done <- result{s, err}
				}()
				synctest.Wait() // the RefreshSecret's vault read waits at the gate
				if n := v.count(); n != reads+1 {
					t.Fatalf("vault reads = %d, want %d (the RefreshSecret's)", n, reads+1)
				}
				h.c.Drain()
				r := <-done
				if !errors.Is(r.err, tt.want) {
					t.Fatalf("Refresh at drain = %v, want %v", r.err, tt.want)
				}
				if tt.want == nil && r.s.GetValue() != "test-value-a" {
					t.Errorf("Refresh at drain served value ok %v, want the cached value", r.s.GetValue() == "test-value-a")
				}
			})
		})
	}
}

// With refuseExpired on, the first watch message answers as a read would: an
// expired or not-yet-valid secret ends the stream (non-optional) or is left
// out (optional). With it off, the value is sent.
func TestWatchFirstMessageRefuseExpired(t *testing.T) {
	expired := source.Secret{Value: "test-value-old", Version: "v1", Expires: t0.Add(-time.Hour)}
	early := source.Secret{Value: "test-value-early", Version: "v1", NotBefore: t0.Add(time.Hour)}
	tests := []struct {
		name     string
		refuse   bool
		s        source.Secret
		optional bool
		want     error
		first    map[string]string
	}{
		{"expired, refused", true, expired, false, ErrExpired, nil},
		{"not yet valid, refused", true, early, false, ErrNotYetValid, nil},
		{"expired optional, left out", true, expired, true, nil, map[string]string{"a": "v1=test-value-a"}},
		{"expired, refuseExpired off", false, expired, false, nil, map[string]string{"a": "v1=test-value-a", "x": "v1=test-value-old"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				v := newFakeSource(map[string]string{"a": "test-value-a"})
				v.setSecret("x", tt.s)
				cfg := testConfig(config.Secret{Name: "a"}, config.Secret{Name: "x", Optional: tt.optional})
				cfg.Refresh.RefuseExpired = tt.refuse
				h := newHarness(t, cfg, v)
				h.c.Pass(t.Context(), AllSecrets)
				msgs, errc := watch(t, h.c)
				if tt.want != nil {
					select {
					case err := <-errc:
						var ne *NameError
						if !errors.Is(err, tt.want) || !errors.As(err, &ne) || ne.Name != "x" {
							t.Fatalf("Watch = %v, want %v naming x", err, tt.want)
						}
					case m := <-msgs:
						t.Fatalf("Watch sent a first message of %d secrets, want %v", len(m), tt.want)
					case <-time.After(10 * time.Second):
						t.Fatal("Watch neither sent nor ended")
					}
					return
				}
				if diff := cmp.Diff(tt.first, recv(t, msgs)); diff != "" {
					t.Errorf("first message (-want +got):\n%s", diff)
				}
			})
		})
	}
}
