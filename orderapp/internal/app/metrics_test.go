package app_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/secretproxy/secretproxy/orderapp/internal/app"
	"github.com/secretproxy/secretproxy/orderapp/internal/dialect"
	"github.com/secretproxy/secretproxy/orderapp/internal/secrets"
)

// TestMetricNames pins the metric contract of docs/reference/metrics.md on the
// registry the binary serves: the orderapp_* names, types and label names,
// the rotation results, and the go_sql_*, go_* and process_* collectors.
func TestMetricNames(t *testing.T) {
	mfs, err := gatherServed(t).Gather()
	if err != nil {
		t.Fatal(err)
	}
	type family struct {
		Type   string   // COUNTER, GAUGE, HISTOGRAM
		Labels []string // label names of the first series
		Values []string // values of the label named in valuesOf, over all series
	}
	valuesOf := map[string]string{"orderapp_credential_rotations_total": "result"}
	got := map[string]family{}
	prefixes := map[string]bool{}
	for _, mf := range mfs {
		f := family{Type: mf.GetType().String(), Labels: []string{}}
		for i, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if i == 0 {
					f.Labels = append(f.Labels, l.GetName())
				}
				if l.GetName() == valuesOf[mf.GetName()] {
					f.Values = append(f.Values, l.GetValue())
				}
			}
		}
		sort.Strings(f.Values)
		got[mf.GetName()] = f
		for _, p := range []string{"go_sql_", "go_", "process_"} {
			if strings.HasPrefix(mf.GetName(), p) {
				prefixes[p] = true
			}
		}
	}
	want := map[string]family{
		"orderapp_http_requests_total":           {Type: "COUNTER", Labels: []string{"code", "handler", "method"}},
		"orderapp_http_request_duration_seconds": {Type: "HISTOGRAM", Labels: []string{"handler", "method"}},
		"orderapp_credential_rotations_total":    {Type: "COUNTER", Labels: []string{"result"}, Values: []string{"failure", "success"}},
		"go_sql_open_connections":                {Type: "GAUGE", Labels: []string{"db_name"}},
		"go_sql_wait_count_total":                {Type: "COUNTER", Labels: []string{"db_name"}},
	}
	for name, w := range want {
		t.Run(name, func(t *testing.T) {
			g, ok := got[name]
			if !ok {
				t.Fatalf("%s is not registered", name)
			}
			if diff := cmp.Diff(w, g); diff != "" {
				t.Errorf("%s (-want +got):\n%s", name, diff)
			}
		})
	}
	if diff := cmp.Diff(map[string]bool{"go_sql_": true, "go_": true, "process_": true}, prefixes); diff != "" {
		t.Errorf("collectors (-want +got):\n%s", diff)
	}
}

// gatherServed starts the application on a sqlite pool and answers one
// request, so the HTTP series exist; it returns the registry the binary serves.
func gatherServed(t *testing.T) prometheus.Gatherer {
	t.Helper()
	// The sidecar is dialled lazily and never used here: the pool is applied directly.
	a, err := app.New(app.Config{Sidecar: "127.0.0.1:1", Driver: dialect.SQLite, Names: secrets.DefaultNames()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if err := a.Manager().Apply(t.Context(), secrets.Credentials{Database: filepath.Join(t.TempDir(), "m.db")}); err != nil {
		t.Fatal(err)
	}
	h, err := a.Handler()
	if err != nil {
		t.Fatal(err)
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/livez", nil))
	return a.Registry()
}

// TestMetricsReferenceCoversRegistry fails when a metric family the
// application serves is missing from docs/reference/metrics.md (go_sql_*,
// go_* and process_* are covered by their prefix rows), or when the page
// documents an orderapp_* metric the application does not serve.
func TestMetricsReferenceCoversRegistry(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "reference", "metrics.md"))
	if err != nil {
		t.Fatalf("read the metrics reference: %v", err)
	}
	doc := string(raw)
	mfs, err := gatherServed(t).Gather()
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, mf := range mfs {
		name := mf.GetName()
		served[name] = true
		for _, p := range []string{"go_sql_", "go_", "process_"} {
			if strings.HasPrefix(name, p) {
				name = p + "*"
				break
			}
		}
		if !strings.Contains(doc, "| `"+name+"` |") {
			t.Errorf("metric %s is not documented: add a row \"| `%s` | type | labels | meaning |\" to docs/reference/metrics.md", name, name)
		}
	}
	documented := regexp.MustCompile("(?m)^\\| `(orderapp_[a-z_]+)` \\|").FindAllStringSubmatch(doc, -1)
	if len(documented) < 3 {
		t.Fatalf("found %d orderapp_* rows in docs/reference/metrics.md, want at least 3", len(documented))
	}
	for _, m := range documented {
		if !served[m[1]] {
			t.Errorf("docs/reference/metrics.md documents %s, which the application does not serve", m[1])
		}
	}
}
