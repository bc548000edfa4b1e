package ops

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "test_total", Help: "A test counter."})
	reg.MustRegister(c)
	c.Inc()
	ready, reason := false, "waiting for secrets: db-password"
	h := Handler(reg, func() (bool, string) { return ready, reason })

	tests := []struct {
		name   string
		method string
		path   string
		ready  bool
		code   int
		body   string
	}{
		{"livez", "GET", "/livez", false, 200, "ok"},
		{"readyz not ready", "GET", "/readyz", false, 503, "not ready: waiting for secrets: db-password"},
		{"readyz ready", "GET", "/readyz", true, 200, "ok"},
		{"metrics", "GET", "/metrics", false, 200, "test_total 1"},
		{"unknown path", "GET", "/secrets", false, 404, ""},
		{"wrong method", "POST", "/readyz", true, 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ready = tt.ready
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			body, _ := io.ReadAll(rec.Result().Body)
			if rec.Code != tt.code || !strings.Contains(string(body), tt.body) {
				t.Errorf("%s %s = %d %q, want %d containing %q", tt.method, tt.path, rec.Code, body, tt.code, tt.body)
			}
		})
	}
}
