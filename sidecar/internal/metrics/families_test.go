package metrics

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
)

// TestMetricFamilies checks every metric of docs/reference/metrics.md: its name,
// type and label names, and that its help text is not empty, once each
// metric has a series.
func TestMetricFamilies(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, []string{"a"}, "v1.2.3")
	m.InitMethod("/secretproxy.v1.SecretService/GetSecret", false)
	m.Method("/secretproxy.v1.SecretService/GetSecret").Done(codes.OK, 0.001)
	m.VaultRequests.WithLabelValues("get", "200").Inc()
	m.VaultDuration.WithLabelValues("get").Observe(0.01)
	m.LastSuccess.WithLabelValues("a").Set(1767225600)
	m.Expiry.WithLabelValues("a").Set(1767225600)
	m.InitScopes([]string{"https://database.windows.net/.default"})
	m.AccessTokenExpiry.WithLabelValues("https://database.windows.net/.default").Set(1767225600)

	type family struct {
		Type   string
		Labels []string
	}
	want := map[string]family{
		"secretproxy_vault_requests_total":                  {"COUNTER", []string{"code", "operation"}},
		"secretproxy_vault_request_duration_seconds":        {"HISTOGRAM", []string{"operation"}},
		"secretproxy_refresh_total":                         {"COUNTER", []string{"result", "secret"}},
		"secretproxy_secret_last_success_timestamp_seconds": {"GAUGE", []string{"secret"}},
		"secretproxy_secret_expiry_timestamp_seconds":       {"GAUGE", []string{"secret"}},
		"secretproxy_secret_stale":                          {"GAUGE", []string{"secret"}},
		"secretproxy_cache_reads_total":                     {"COUNTER", []string{"result"}},
		"secretproxy_watchers":                              {"GAUGE", nil},
		"secretproxy_token_requests_total":                  {"COUNTER", []string{"result"}},
		"grpc_server_handled_total":                         {"COUNTER", []string{"grpc_code", "grpc_method", "grpc_service", "grpc_type"}},
		"grpc_server_handling_seconds":                      {"HISTOGRAM", []string{"grpc_method", "grpc_service", "grpc_type"}},
		"secretproxy_build_info":                            {"GAUGE", []string{"goversion", "version"}},
		// Issue 11 (GetAccessToken).
		"secretproxy_access_token_fetches_total":            {"COUNTER", []string{"result", "scope"}},
		"secretproxy_access_token_expiry_timestamp_seconds": {"GAUGE", []string{"scope"}},
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]family{}
	var goSeen, processSeen bool
	for _, mf := range mfs {
		name := mf.GetName()
		goSeen = goSeen || len(name) > 3 && name[:3] == "go_"
		processSeen = processSeen || len(name) > 8 && name[:8] == "process_"
		if _, ok := want[name]; !ok {
			continue
		}
		if mf.GetHelp() == "" {
			t.Errorf("%s has no help text", name)
		}
		got[name] = family{Type: mf.GetType().String(), Labels: labelNames(mf)}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metric families (-want +got):\n%s", diff)
	}
	if !goSeen || !processSeen {
		t.Errorf("standard collectors: go_* %v, process_* %v, want both", goSeen, processSeen)
	}
}

func labelNames(mf *dto.MetricFamily) []string {
	var names []string
	for _, metric := range mf.GetMetric() {
		for _, lp := range metric.GetLabel() {
			if !slices.Contains(names, lp.GetName()) {
				names = append(names, lp.GetName())
			}
		}
	}
	slices.Sort(names)
	return names
}
