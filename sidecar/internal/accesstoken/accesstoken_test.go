package accesstoken

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/secretproxy/secretproxy/sidecar/internal/metrics"
)

const (
	sqlScope = "https://database.windows.net/.default"
	pgScope  = "https://ossrdbms-aad.database.windows.net/.default"
)

// t0 is when a test starts: the tests that fetch run in testing/synctest
// bubbles, whose clock starts at midnight UTC, 2000-01-01, and moves only
// when every goroutine of the bubble waits (time.Sleep there is no real sleep).
var t0 = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// fakeSource is a hand-written identity endpoint: each fetch takes the next
// answer of its scope's queue (the last one repeats), and can be held until
// the test releases it.
type fakeSource struct {
	mu      sync.Mutex
	answers map[string][]answer
	calls   map[string]int
	started chan string // receives the scope of every fetch, if not nil
	hold    chan struct{}
}

type answer struct {
	tok Token
	err error
}

func newFakeSource() *fakeSource {
	return &fakeSource{answers: map[string][]answer{}, calls: map[string]int{}}
}

func (f *fakeSource) queue(scope string, as ...answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[scope] = append(f.answers[scope], as...)
}

func (f *fakeSource) Fetch(ctx context.Context, scope string) (Token, error) {
	f.mu.Lock()
	f.calls[scope]++
	q := f.answers[scope]
	var a answer
	switch len(q) {
	case 0:
		a = answer{err: errors.New("no answer queued")}
	case 1:
		a = q[0]
	default:
		a, f.answers[scope] = q[0], q[1:]
	}
	started, hold := f.started, f.hold
	f.mu.Unlock()
	if started != nil {
		started <- scope
	}
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return Token{}, ctx.Err()
		}
	}
	return a.tok, a.err
}

func (f *fakeSource) count(scope string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[scope]
}

func tok(v string, exp time.Time) answer { return answer{tok: Token{Value: v, Expires: exp}} }

type fixture struct {
	c   *Cache
	src *fakeSource
	m   *metrics.Metrics
	log *bytes.Buffer
}

func newFixture(t *testing.T, scopes ...string) *fixture {
	t.Helper()
	f := &fixture{src: newFakeSource(), log: &bytes.Buffer{}}
	f.m = metrics.New(prometheus.NewRegistry(), nil, "test")
	f.c = New(f.src, Options{
		Scopes: scopes, RefreshBefore: 5 * time.Minute, Metrics: f.m,
		Logger: slog.New(slog.NewJSONHandler(&syncWriter{w: f.log}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	return f
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (f *fixture) get(t *testing.T, scope string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, err := f.c.Get(ctx, scope)
	if err != nil {
		return "", err
	}
	if !resp.GetExpireTime().IsValid() {
		t.Errorf("response has no expire_time")
	}
	return resp.GetToken(), nil
}

func TestGetFetchesOnceThenHits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, sqlScope)
		f.src.queue(sqlScope, tok("test-token-a", t0.Add(time.Hour)))
		for i := range 3 {
			got, err := f.get(t, sqlScope)
			if err != nil || got != "test-token-a" {
				t.Fatalf("get %d = %q, %v; want test-token-a", i, got, err)
			}
		}
		if n := f.src.count(sqlScope); n != 1 {
			t.Errorf("fetches = %d, want 1", n)
		}
		if n := testing.AllocsPerRun(100, func() { f.c.Get(context.Background(), sqlScope) }); n != 0 {
			t.Errorf("a hit allocates %v times, want 0", n)
		}
		if got := testutil.ToFloat64(f.m.AccessTokenFetches.WithLabelValues(sqlScope, "success")); got != 1 {
			t.Errorf("fetches{success} = %v, want 1", got)
		}
		if got := testutil.ToFloat64(f.m.AccessTokenExpiry.WithLabelValues(sqlScope)); got != float64(t0.Add(time.Hour).Unix()) {
			t.Errorf("expiry gauge = %v, want %d", got, t0.Add(time.Hour).Unix())
		}
	})
}

func TestScopeChecks(t *testing.T) {
	f := newFixture(t, sqlScope)
	for _, tc := range []struct {
		scope string
		want  error
	}{
		{pgScope, ErrUndeclared},
		{"https://database.windows.net/", ErrMalformed},
		{"", ErrMalformed},
		{"https://database.windows.net/.default ", ErrMalformed},
	} {
		t.Run(tc.scope, func(t *testing.T) {
			if _, err := f.c.Get(t.Context(), tc.scope); !errors.Is(err, tc.want) {
				t.Errorf("Get(%q) = %v, want %v", tc.scope, err, tc.want)
			}
		})
	}
	empty := newFixture(t)
	if _, err := empty.c.Get(t.Context(), sqlScope); !errors.Is(err, ErrUndeclared) {
		t.Errorf("empty allowlist: %v, want ErrUndeclared", err)
	}
	if f.src.count(pgScope)+empty.src.count(sqlScope) != 0 {
		t.Error("a refused scope was fetched")
	}
}

// TestSingleFlight: concurrent callers of a cold scope share one fetch.
func TestSingleFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, sqlScope)
		f.src.queue(sqlScope, tok("test-token-a", t0.Add(time.Hour)))
		f.src.started = make(chan string, 10)
		f.src.hold = make(chan struct{})
		const callers = 8
		errs := make(chan error, callers)
		for range callers {
			go func() {
				got, err := f.get(t, sqlScope)
				if err == nil && got != "test-token-a" {
					err = fmt.Errorf("got %q", got)
				}
				errs <- err
			}()
		}
		<-f.src.started
		close(f.src.hold)
		for range callers {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		if n := f.src.count(sqlScope); n != 1 {
			t.Errorf("fetches = %d, want 1 for %d concurrent callers", n, callers)
		}
	})
}

// TestNeverServedInLastMinute: a token is served until one minute before its
// expiry, then a fetch replaces it.
func TestNeverServedInLastMinute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, sqlScope)
		f.src.queue(sqlScope, tok("test-token-a", t0.Add(10*time.Minute)), tok("test-token-b", t0.Add(70*time.Minute)))
		if got, _ := f.get(t, sqlScope); got != "test-token-a" {
			t.Fatalf("first = %q", got)
		}
		time.Sleep(9*time.Minute - time.Second) // 61 s left
		if got, _ := f.get(t, sqlScope); got != "test-token-a" {
			t.Fatalf("with 61 s left = %q, want the cached token", got)
		}
		time.Sleep(time.Second) // 60 s left: not served
		if got, _ := f.get(t, sqlScope); got != "test-token-b" {
			t.Fatalf("with 60 s left = %q, want a new token", got)
		}
		if n := f.src.count(sqlScope); n != 2 {
			t.Errorf("fetches = %d, want 2", n)
		}
	})
}

// TestUnavailableWithReason: no valid token and a failing endpoint is
// ErrUnavailable with the endpoint's reason; callers within the back-off get
// the same answer without a new fetch.
func TestUnavailableWithReason(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, sqlScope)
		f.src.queue(sqlScope,
			answer{err: errors.New("the identity endpoint answered HTTP 503 temporarily_unavailable\nmore detail")},
			tok("test-token-b", t0.Add(time.Hour)))
		_, err := f.get(t, sqlScope)
		var fe *FetchError
		if !errors.As(err, &fe) || !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v, want a FetchError", err)
		}
		if fe.Reason != "the identity endpoint answered HTTP 503 temporarily_unavailable" {
			t.Errorf("reason = %q, want the first line of the source's error", fe.Reason)
		}
		if _, err := f.get(t, sqlScope); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("second = %v", err)
		}
		if n := f.src.count(sqlScope); n != 1 {
			t.Errorf("fetches within the back-off = %d, want 1", n)
		}
		time.Sleep(minBackoff)
		if got, err := f.get(t, sqlScope); err != nil || got != "test-token-b" {
			t.Fatalf("after the back-off = %q, %v", got, err)
		}
		if got := testutil.ToFloat64(f.m.AccessTokenFetches.WithLabelValues(sqlScope, "error")); got != 1 {
			t.Errorf("fetches{error} = %v, want 1", got)
		}
	})
}

func TestShortLivedTokenRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, sqlScope)
		f.src.queue(sqlScope, tok("test-token-a", t0.Add(30*time.Second)))
		_, err := f.get(t, sqlScope)
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "within the 1m0s") {
			t.Fatalf("err = %v, want unavailable naming the 1-minute rule", err)
		}
	})
}

func TestBackoff(t *testing.T) {
	for failures, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 5: 16 * time.Second, 6: 30 * time.Second, 50: 30 * time.Second} {
		if got := backoff(failures); got != want {
			t.Errorf("backoff(%d) = %s, want %s", failures, got, want)
		}
	}
}

func TestNextRefresh(t *testing.T) {
	c := New(nil, Options{RefreshBefore: 5 * time.Minute})
	for _, tc := range []struct {
		name     string
		lifetime time.Duration
		want     time.Duration
	}{
		{"an hour: refreshBefore ahead", time.Hour, 55 * time.Minute},
		{"eight minutes: half way", 8 * time.Minute, 4 * time.Minute},
		{"a second: the floor", time.Second, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := c.nextRefresh(t0, t0.Add(tc.lifetime)).Sub(t0); got != tc.want {
				t.Errorf("refresh after %s, want %s", got, tc.want)
			}
		})
	}
}

// runCache runs f.c until the test ends; when it returns, the prefetch is
// done and Run sleeps.
func runCache(t *testing.T, f *fixture) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	synctest.Wait()
}

// advance moves the bubble's clock by d, firing every timer due on the way,
// and returns once every goroutine waits again.
func advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// TestBackgroundRefresh: Run prefetches, then fetches the next token
// refreshBefore ahead of expiry, so that callers never wait; a failed refresh
// keeps the token in hand and is retried.
func TestBackgroundRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, sqlScope)
		f.src.queue(sqlScope,
			tok("test-token-a", t0.Add(time.Hour)),
			answer{err: errors.New("the identity endpoint answered HTTP 503")},
			tok("test-token-b", t0.Add(2*time.Hour)))
		runCache(t, f)
		if n := f.src.count(sqlScope); n != 1 {
			t.Fatalf("prefetch: %d fetches, want 1", n)
		}
		// The next refresh comes 5 minutes before expiry, not a nanosecond sooner.
		advance(55*time.Minute - time.Nanosecond)
		if n := f.src.count(sqlScope); n != 1 {
			t.Fatalf("%d fetches before the refresh, want 1: the next refresh must be 5 minutes before expiry", n)
		}
		advance(time.Nanosecond) // the refresh fails
		if n := f.src.count(sqlScope); n != 2 {
			t.Fatalf("%d fetches at 5 minutes before expiry, want 2", n)
		}
		if got, err := f.get(t, sqlScope); err != nil || got != "test-token-a" {
			t.Fatalf("after a failed refresh = %q, %v; want the token in hand", got, err)
		}
		advance(time.Second) // the retry after back-off succeeds
		if got, err := f.get(t, sqlScope); err != nil || got != "test-token-b" {
			t.Fatalf("after the retry = %q, %v; want the new token", got, err)
		}
		if n := f.src.count(sqlScope); n != 3 {
			t.Errorf("fetches = %d, want 3 (prefetch, failed refresh, retry)", n)
		}
	})
}

// TestCredentialCachedTokenDoesNotSpin: a credential that hands back the same
// token (its own cache) moves the next refresh half way to expiry each time
// instead of fetching in a loop.
func TestCredentialCachedTokenDoesNotSpin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, sqlScope)
		f.src.queue(sqlScope, tok("test-token-a", t0.Add(time.Hour)))
		runCache(t, f)
		advance(55 * time.Minute)
		if n := f.src.count(sqlScope); n != 2 {
			t.Fatalf("fetches = %d, want 2", n)
		}
		// Half of the 5 minutes left: the next refresh 150 s later, not sooner.
		advance(150*time.Second - time.Nanosecond)
		if n := f.src.count(sqlScope); n != 2 {
			t.Errorf("fetches = %d before half of the 5 minutes left, want 2", n)
		}
		advance(time.Nanosecond)
		if n := f.src.count(sqlScope); n != 3 {
			t.Errorf("fetches = %d at half of the 5 minutes left, want 3", n)
		}
	})
}

func TestDrainReleasesWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, sqlScope)
		f.src.queue(sqlScope, tok("test-token-a", t0.Add(time.Hour)))
		f.src.started = make(chan string, 1)
		f.src.hold = make(chan struct{})
		defer close(f.src.hold)
		errc := make(chan error, 1)
		go func() { _, err := f.c.Get(context.Background(), sqlScope); errc <- err }()
		<-f.src.started
		f.c.Drain()
		if err := <-errc; !errors.Is(err, ErrShuttingDown) {
			t.Errorf("err = %v, want ErrShuttingDown", err)
		}
	})
}

// TestTokenNeverPrintedOrLogged: the token value appears in no log line, no
// error and no formatting of Token.
func TestTokenNeverPrintedOrLogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const secret = "test-token-SECRETVALUE"
		f := newFixture(t, sqlScope, pgScope)
		f.src.queue(sqlScope, tok(secret, t0.Add(time.Hour)))
		f.src.queue(pgScope, tok(secret, t0.Add(30*time.Second)))
		if _, err := f.get(t, sqlScope); err != nil {
			t.Fatal(err)
		}
		_, err := f.get(t, pgScope)
		tk := Token{Value: secret, Expires: t0}
		for _, s := range []string{f.log.String(), fmt.Sprint(err), fmt.Sprintf("%v %+v %#v %s", tk, tk, tk, tk)} {
			if strings.Contains(s, secret) {
				t.Errorf("token value printed: %s", s)
			}
		}
		if !strings.Contains(f.log.String(), "access token fetched") {
			t.Errorf("no fetch logged at debug: %s", f.log.String())
		}
	})
}

func TestFirstLine(t *testing.T) {
	long := strings.Repeat("x", 400)
	tests := []struct{ name, err, want string }{
		{"one line", "token endpoint down", "token endpoint down"},
		{"body on the next line", "request failed\nRESPONSE 400: {\"error\":\"x\"}", "request failed"},
		{"carriage return", "request failed\r\nbody", "request failed"},
		{"bounded", long, long[:300] + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FirstLine(errors.New(tt.err)); got != tt.want {
				t.Errorf("FirstLine(%q) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}
