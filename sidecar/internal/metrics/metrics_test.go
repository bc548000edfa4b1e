package metrics

import (
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
)

func TestPreinitialisedSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, []string{"db-password", "db-user"}, "v1.2.3")
	m.ReadHitCounter.Inc()
	m.ReadHitCounter.Inc()
	m.ReadCoalescedCounter.Inc()
	m.Refresh.WithLabelValues("db-user", RefreshChanged).Inc()
	m.Stale.WithLabelValues("db-password").Set(1)

	want := `
# HELP secretproxy_build_info Always 1; version is the secret-proxy build, goversion the Go toolchain.
# TYPE secretproxy_build_info gauge
secretproxy_build_info{goversion="` + runtime.Version() + `",version="v1.2.3"} 1
# HELP secretproxy_cache_reads_total Secret reads by the API, by result: hit (served from the cache at once), wait (waited for a first load), coalesced (joined a vault read already in flight).
# TYPE secretproxy_cache_reads_total counter
secretproxy_cache_reads_total{result="coalesced"} 1
secretproxy_cache_reads_total{result="hit"} 2
secretproxy_cache_reads_total{result="wait"} 0
# HELP secretproxy_refresh_total Vault reads of a declared secret, by secret (declared name) and result (changed, unchanged, error).
# TYPE secretproxy_refresh_total counter
secretproxy_refresh_total{result="changed",secret="db-password"} 0
secretproxy_refresh_total{result="changed",secret="db-user"} 1
secretproxy_refresh_total{result="error",secret="db-password"} 0
secretproxy_refresh_total{result="error",secret="db-user"} 0
secretproxy_refresh_total{result="unchanged",secret="db-password"} 0
secretproxy_refresh_total{result="unchanged",secret="db-user"} 0
# HELP secretproxy_secret_stale 1 when the last refresh of the secret failed and the last good value is served, else 0, by secret (declared name).
# TYPE secretproxy_secret_stale gauge
secretproxy_secret_stale{secret="db-password"} 1
secretproxy_secret_stale{secret="db-user"} 0
# HELP secretproxy_token_requests_total Calls to the credential's GetToken by the Key Vault client, by result (success, error).
# TYPE secretproxy_token_requests_total counter
secretproxy_token_requests_total{result="error"} 0
secretproxy_token_requests_total{result="success"} 0
# HELP secretproxy_watchers Open WatchSecrets streams.
# TYPE secretproxy_watchers gauge
secretproxy_watchers 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"secretproxy_build_info", "secretproxy_cache_reads_total", "secretproxy_refresh_total",
		"secretproxy_secret_stale", "secretproxy_token_requests_total", "secretproxy_watchers"); err != nil {
		t.Error(err)
	}
}

func TestGRPCMethodSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, nil, "test")
	m.InitMethod("/secretproxy.v1.SecretService/GetSecret", false)
	m.Method("/secretproxy.v1.SecretService/GetSecret").Done(codes.PermissionDenied, 0.001)
	if m.Method("/nope/Nope") != nil {
		t.Error("an unknown method has series")
	}
	if n := testutil.CollectAndCount(m.GRPCHandled); n != int(codes.Unauthenticated)+1 {
		t.Errorf("grpc_server_handled_total series = %d, want one per code (%d)", n, codes.Unauthenticated+1)
	}
	got := testutil.ToFloat64(m.GRPCHandled.WithLabelValues("unary", "secretproxy.v1.SecretService", "GetSecret", "PermissionDenied"))
	if got != 1 {
		t.Errorf("handled{PermissionDenied} = %v, want 1", got)
	}
}

func TestLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, []string{"a"}, "test")
	m.InitMethod("/secretproxy.v1.SecretService/WatchSecrets", true)
	m.Expiry.WithLabelValues("a").Set(1767225600)
	m.LastSuccess.WithLabelValues("a").Set(1767225600)
	m.VaultRequests.WithLabelValues("get", "200").Inc()
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestSplitMethod(t *testing.T) {
	s, m := splitMethod("/secretproxy.v1.SecretService/GetSecret")
	if s != "secretproxy.v1.SecretService" || m != "GetSecret" {
		t.Errorf("splitMethod = %q %q", s, m)
	}
}
