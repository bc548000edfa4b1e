package client_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/secretproxy/secretproxy/proto/client"
	"github.com/secretproxy/secretproxy/proto/secretproxytest"
)

// gatedDialer dials socket unless down is set, when it refuses, as a sidecar
// that is not listening would; refusedEnough is closed at the refusals-th
// refusal.
type gatedDialer struct {
	socket        string
	refusals      int64
	down          atomic.Bool
	refused       atomic.Int64
	refusedEnough chan struct{}
}

func (g *gatedDialer) dial(ctx context.Context, _ string) (net.Conn, error) {
	if g.down.Load() {
		if g.refused.Add(1) == g.refusals {
			close(g.refusedEnough)
		}
		return nil, &net.OpError{Op: "dial", Net: "unix", Err: syscall.ECONNREFUSED}
	}
	var d net.Dialer
	return d.DialContext(ctx, "unix", g.socket)
}

// restart brings a stopped fake sidecar back on its socket with a rotation
// (db-password's next version) made while it was down.
func restart(t *testing.T, f *secretproxytest.Server) {
	t.Helper()
	f.Publish(map[string]string{"db-password": "test-value-rotated"})
	if err := f.Listen(f.Socket()); err != nil {
		t.Fatal(err)
	}
}

// TestWatchBackSoonAfterLongOutage: the sidecar stays away until the client has
// failed to connect 7 times (counted, not timed), then comes back. gRPC's own
// connect back-off would by then wait 13 s or more before its next attempt
// (1 s doubling by 1.6 up to 120 s); with the client's bounds (here 10 to
// 100 ms) the watch is back at once. The 10 s deadline is only a generous
// bound between the two.
func TestWatchBackSoonAfterLongOutage(t *testing.T) {
	f := secretproxytest.Start(t, map[string]string{"db-password": "test-value-1"})
	const refusals = 7
	g := &gatedDialer{socket: f.Socket(), refusals: refusals, refusedEnough: make(chan struct{})}
	c := dial(t, f, client.WithBackoff(10*time.Millisecond, 100*time.Millisecond),
		client.WithDialOptions(grpc.WithContextDialer(g.dial)))
	updates, _, _ := collect(t, c, nil)
	next(t, updates)

	g.down.Store(true)
	f.Stop()
	select {
	case <-g.refusedEnough:
	case <-time.After(2 * time.Minute):
		t.Fatalf("only %d connection attempts in 2 minutes, want %d", g.refused.Load(), refusals)
	}
	restart(t, f)
	back := time.Now()
	g.down.Store(false)
	select {
	case u := <-updates:
		if !u.Initial || versions(u)[0] != "db-password@v2" {
			t.Errorf("first update after the outage = %v (initial %v), want the new snapshot", versions(u), u.Initial)
		}
		t.Logf("watch back %v after the sidecar", time.Since(back).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatalf("watch not back 10 s after the sidecar (after %d refused connects): the connection's back-off is not bounded", g.refused.Load())
	}
}

// outageEnv lists the outages TestMeasureWatchRecovery runs (Go durations,
// comma-separated), e.g. SECRETPROXY_OUTAGES=10s,60s,180s; unset, one short
// outage runs.
const outageEnv = "SECRETPROXY_OUTAGES"

// TestMeasureWatchRecovery stops the sidecar for real for each outage, starts
// it again and reports how long the watch took to deliver the new snapshot
// after the sidecar was back. With SECRETPROXY_OUTAGE_BASELINE=1 it also runs
// each outage with gRPC's default connect back-off, for comparison. Time
// decides nothing here except a generous deadline for coming back at all; the
// numbers go to docs/benchmarks.md.
func TestMeasureWatchRecovery(t *testing.T) {
	outages := []time.Duration{time.Second}
	if v := os.Getenv(outageEnv); v != "" {
		outages = nil
		for _, s := range strings.Split(v, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(s))
			if err != nil || d <= 0 {
				t.Fatalf("%s: %q is not a positive duration", outageEnv, s)
			}
			outages = append(outages, d)
		}
	}
	type variant struct {
		name string
		opts []client.Option
	}
	variants := []variant{{name: "client"}}
	if os.Getenv("SECRETPROXY_OUTAGE_BASELINE") == "1" {
		variants = append(variants, variant{name: "grpc-default", opts: []client.Option{client.WithDialOptions(
			grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.DefaultConfig, MinConnectTimeout: 20 * time.Second}))}})
	}
	var mu sync.Mutex
	var report []string
	t.Cleanup(func() {
		for _, r := range report {
			t.Log(r)
		}
	})
	for _, o := range outages {
		for _, v := range variants {
			t.Run(v.name+"/"+o.String(), func(t *testing.T) {
				t.Parallel()
				f := secretproxytest.Start(t, map[string]string{"db-password": "test-value-1"})
				// The client's defaults (100 ms to 5 s), not the test helper's.
				opts := append([]client.Option{client.WithLogger(slog.New(slog.DiscardHandler))}, v.opts...)
				c, err := client.Dial(f.Target(), opts...)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				updates, _, _ := collect(t, c, nil)
				next(t, updates)
				f.Stop()
				// The outage itself is what this measures: a real wait.
				select {
				case <-time.After(o):
				case <-t.Context().Done():
					return
				}
				restart(t, f)
				back := time.Now()
				select {
				case <-updates:
				case <-time.After(5 * time.Minute):
					t.Fatalf("watch not back 5 minutes after a %v outage", o)
				}
				took := time.Since(back)
				mu.Lock()
				report = append(report, v.name+": outage "+o.String()+": watch back "+took.Round(10*time.Millisecond).String()+" after the sidecar")
				mu.Unlock()
			})
		}
	}
}
