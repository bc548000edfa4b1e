package check

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeApp answers like orderapp: /readyz 503 for the first notReady calls, then
// 200; the orders of client 1 (and 404 for any other client).
func fakeApp(t *testing.T, notReady int32, ordersBody string) *httptest.Server {
	t.Helper()
	var calls atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) <= notReady {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"error":{"code":"unavailable","message":"no database credentials yet"}}`)
			return
		}
		fmt.Fprint(w, `{"status":"ready"}`)
	})
	mux.HandleFunc("GET /api/v1/clients/{id}/orders", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "1" {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"error":{"code":"not_found","message":"client %s: not found"}}`, r.PathValue("id"))
			return
		}
		fmt.Fprint(w, ordersBody)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

const twoOrders = `{"orders":[{"orderId":10,"clientId":1},{"orderId":11,"clientId":1}]}`

// fakeSidecar serves /readyz with the given status and /metrics with the text.
func fakeSidecar(t *testing.T, ready int, metrics string) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(ready)
		if ready != http.StatusOK {
			fmt.Fprintln(w, "not ready: db-password not loaded")
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, metrics)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func metricsText(lastSuccess map[string]float64, stale map[string]float64) string {
	var b strings.Builder
	b.WriteString("# HELP secretproxy_secret_last_success_timestamp_seconds Unix time the vault last confirmed the secret's value.\n")
	b.WriteString("# TYPE secretproxy_secret_last_success_timestamp_seconds gauge\n")
	for n, v := range lastSuccess {
		fmt.Fprintf(&b, "secretproxy_secret_last_success_timestamp_seconds{secret=%q} %g\n", n, v)
	}
	b.WriteString("# HELP secretproxy_secret_stale 1 when stale.\n# TYPE secretproxy_secret_stale gauge\n")
	for n, v := range stale {
		fmt.Fprintf(&b, "secretproxy_secret_stale{secret=%q} %g\n", n, v)
	}
	return b.String()
}

// opsOf points the check's ops host at a test server: the name resolves to
// 127.0.0.1 as a headless Service resolves to the pods.
func opsOf(t *testing.T, srv *httptest.Server) (string, func(context.Context, string) ([]string, error)) {
	t.Helper()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(_ context.Context, host string) ([]string, error) {
		if host != "orders-orderapp-ops.shop.svc" {
			return nil, fmt.Errorf("lookup %s: no such host", host)
		}
		return []string{"127.0.0.1"}, nil
	}
	return "orders-orderapp-ops.shop.svc:" + port, lookup
}

var secrets = []string{"db-server", "db-user", "db-password", "db-name"}

func allLoaded() map[string]float64 {
	m := map[string]float64{}
	for _, s := range secrets {
		m[s] = 1.7e9
	}
	return m
}

func allFresh() map[string]float64 {
	m := map[string]float64{}
	for _, s := range secrets {
		m[s] = 0
	}
	return m
}

func TestRun(t *testing.T) {
	tests := []struct {
		name        string
		notReady    int32 // /readyz answers 503 this many times first
		timeout     time.Duration
		client      int64
		orders      string
		sidecarCode int
		last, stale map[string]float64
		wantErr     string // empty: the check passes
		wantOut     []string
	}{
		{name: "passes after the app warms up", notReady: 3, timeout: 30 * time.Second, client: 1, orders: twoOrders,
			sidecarCode: 200, last: allLoaded(), stale: allFresh(),
			wantOut: []string{"ok: application ready", "ok: client orders served", "2 orders", "ok: sidecars loaded", "1 pods", "4 secrets"}},
		{name: "app never ready", notReady: 1 << 30, timeout: 100 * time.Millisecond, client: 1, orders: twoOrders,
			sidecarCode: 200, last: allLoaded(), stale: allFresh(),
			wantErr: "application ready: still failing when the check timed out: GET http://127.0.0.1"},
		{name: "unknown client", timeout: 100 * time.Millisecond, client: 7, orders: twoOrders,
			sidecarCode: 200, last: allLoaded(), stale: allFresh(),
			wantErr: "client 7 does not exist"},
		{name: "orders of another client", timeout: 100 * time.Millisecond, client: 1,
			orders:      `{"orders":[{"orderId":10,"clientId":2}]}`,
			sidecarCode: 200, last: allLoaded(), stale: allFresh(),
			wantErr: "order 10 belongs to client 2, not 1"},
		{name: "not an orders page", timeout: 100 * time.Millisecond, client: 1, orders: `{"items":[]}`,
			sidecarCode: 200, last: allLoaded(), stale: allFresh(),
			wantErr: "not an orders page"},
		{name: "sidecar not ready", timeout: 100 * time.Millisecond, client: 1, orders: twoOrders,
			sidecarCode: 503, last: allLoaded(), stale: allFresh(),
			wantErr: "/readyz status 503: not ready: db-password not loaded"},
		{name: "secret never loaded", timeout: 100 * time.Millisecond, client: 1, orders: twoOrders,
			sidecarCode: 200, last: map[string]float64{"db-server": 1.7e9, "db-user": 1.7e9, "db-name": 1.7e9}, stale: allFresh(),
			wantErr: "db-password never loaded"},
		{name: "stale secret", timeout: 100 * time.Millisecond, client: 1, orders: twoOrders,
			sidecarCode: 200, last: allLoaded(), stale: map[string]float64{"db-server": 0, "db-user": 1, "db-password": 0, "db-name": 0},
			wantErr: "db-user is stale"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := fakeApp(t, tt.notReady, tt.orders)
			side := fakeSidecar(t, tt.sidecarCode, metricsText(tt.last, tt.stale))
			ops, lookup := opsOf(t, side)
			var out bytes.Buffer
			err := Run(t.Context(), Config{
				AppURL: app.URL, ClientID: tt.client, SidecarOps: ops, Secrets: secrets,
				Timeout: tt.timeout, Interval: time.Millisecond, LookupHost: lookup, Out: &out,
			})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Run: %v\noutput:\n%s", err, out.String())
				}
				for _, w := range tt.wantOut {
					if !strings.Contains(out.String(), w) {
						t.Errorf("output does not contain %q:\n%s", w, out.String())
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Run error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestRunWithoutSidecarCheck: an empty --sidecar-ops checks the application only.
func TestRunWithoutSidecarCheck(t *testing.T) {
	app := fakeApp(t, 0, twoOrders)
	var out bytes.Buffer
	if err := Run(t.Context(), Config{AppURL: app.URL, ClientID: 1, Timeout: 10 * time.Second, Interval: time.Millisecond, Out: &out}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "sidecars") {
		t.Errorf("sidecars checked without --sidecar-ops:\n%s", out.String())
	}
}

// TestRunResolveFails: a headless Service with no ready pod resolves to nothing.
func TestRunResolveFails(t *testing.T) {
	app := fakeApp(t, 0, twoOrders)
	err := Run(t.Context(), Config{
		AppURL: app.URL, ClientID: 1, SidecarOps: "missing-ops.shop.svc:9090", Secrets: secrets,
		Timeout: 100 * time.Millisecond, Interval: time.Millisecond,
		LookupHost: func(context.Context, string) ([]string, error) { return nil, nil },
	})
	if err == nil || !strings.Contains(err.Error(), "no ready pod behind it") {
		t.Fatalf("Run error = %v, want no ready pod", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"everything wrong", Config{AppURL: "orders:80", SidecarOps: "ops", Secrets: []string{" "}},
			[]string{"--url", "--client", "--sidecar-ops", "--secret", "--timeout"}},
		{"ftp url", Config{AppURL: "ftp://x", ClientID: 1, Timeout: time.Second}, []string{"--url"}},
		{"valid", Config{AppURL: "http://orders-orderapp.shop.svc:80", ClientID: 1, SidecarOps: "ops.shop.svc:9090", Secrets: secrets, Timeout: time.Second}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted an invalid config")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
		})
	}
}
