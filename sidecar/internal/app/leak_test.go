package app_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
	"github.com/secretproxy/secretproxy/sidecar/internal/config"
	"github.com/secretproxy/secretproxy/sidecar/kvemulator"
)

// TestNoSecretValueLeaks runs a whole refresh cycle at debug level, with a
// rotation, an outage, throttling, a disabled and a deleted secret and failed
// calls, and fails if a value appears in the logs, the metrics or a status.
func TestNoSecretValueLeaks(t *testing.T) {
	values := []string{"leakcheck-user-0001", "leakcheck-pass-0001", "leakcheck-off-0001", "leakcheck-gone-0001"}
	e := startEmulator(t, map[string]string{"sql-user": values[0], "sql-password": values[1], "off": values[2], "gone": values[3]})
	cfg := baseConfig(e,
		config.Secret{Name: "db-user", VaultSecret: "sql-user"},
		config.Secret{Name: "db-password", VaultSecret: "sql-password"},
		config.Secret{Name: "off"},
		config.Secret{Name: "gone"},
		config.Secret{Name: "never", Optional: true},
	)
	cfg.Refresh.Interval = config.Duration(time.Second)
	cfg.Refresh.Jitter = 0
	v := startApp(t, e, cfg)
	waitReady(t, v)
	c := client(t, v)
	var statuses []string
	record := func(err error) {
		if err != nil {
			statuses = append(statuses, status.Convert(err).Message())
		}
	}

	w, err := c.WatchSecrets(t.Context(), &secretproxyv1.WatchSecretsRequest{Names: []string{"db-user", "db-password"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatal(err)
	}
	// Rotation.
	values = append(values, "leakcheck-pass-0002")
	e.SetSecret("sql-password", values[4])
	if m, err := w.Recv(); err != nil || m.GetSecrets()[0].GetValue() != values[4] {
		t.Fatalf("rotation not pushed: %v", err)
	}
	// Disabled and deleted after the load.
	if err := e.DisableSecret("off"); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteSecret("gone"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the disabled secret to be refused", func() bool {
		_, err := c.GetSecret(callCtx(t), &secretproxyv1.GetSecretRequest{Name: "off"})
		record(err)
		return status.Code(err) == codes.FailedPrecondition
	})
	waitFor(t, "the deleted secret to be stale", func() bool {
		r, err := c.GetSecret(callCtx(t), &secretproxyv1.GetSecretRequest{Name: "gone"})
		return err == nil && r.GetSecret().GetStale()
	})
	// Outage, then throttling, then recovery.
	e.SetFault(kvemulator.Fault{Mode: kvemulator.FaultOutage})
	waitFor(t, "stale during the outage", func() bool {
		r, err := c.GetSecret(callCtx(t), &secretproxyv1.GetSecretRequest{Name: "db-user"})
		return err == nil && r.GetSecret().GetStale()
	})
	e.SetFault(kvemulator.Fault{Mode: kvemulator.FaultThrottle, RetryAfter: time.Second})
	time.Sleep(1100 * time.Millisecond)
	_, err = c.RefreshSecret(callCtx(t), &secretproxyv1.RefreshSecretRequest{Name: "db-password"})
	record(err)
	e.SetFault(kvemulator.Fault{})
	waitFor(t, "recovery", func() bool {
		r, err := c.GetSecret(callCtx(t), &secretproxyv1.GetSecretRequest{Name: "db-user"})
		return err == nil && !r.GetSecret().GetStale()
	})
	// Failed calls of every kind.
	for _, n := range []string{"never", "nope", "bad name!", "off"} {
		_, err := c.GetSecret(callCtx(t), &secretproxyv1.GetSecretRequest{Name: n})
		record(err)
		_, err = c.BatchGetSecrets(callCtx(t), &secretproxyv1.BatchGetSecretsRequest{Names: []string{"db-user", n}})
		record(err)
	}
	if len(statuses) < 5 {
		t.Fatalf("only %d failed calls recorded; the test must exercise errors", len(statuses))
	}
	_, body := get(t, "http://"+v.a.OpsAddr()+"/metrics")
	if err := v.stop(); err != nil {
		t.Fatal(err)
	}
	logs := v.logs.String()
	if !strings.Contains(logs, `"level":"DEBUG"`) || !strings.Contains(logs, "deleted") || !strings.Contains(logs, "throttling") {
		t.Fatalf("the logs do not show the debug lines, the deletion and the throttling; the cycle did not run:\n%s", logs)
	}
	for _, val := range values {
		if strings.Contains(logs, val) {
			t.Errorf("a secret value appears in the logs")
		}
		if strings.Contains(body, val) {
			t.Errorf("a secret value appears in the metrics")
		}
		for _, s := range statuses {
			if strings.Contains(s, val) {
				t.Errorf("a secret value appears in the status message %q", s)
			}
		}
	}
	// The metrics of the cycle, linted.
	problems, err := testutil.GatherAndLint(v.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metrics lint: %s: %s", p.Metric, p.Text)
	}
	for _, line := range []string{
		`grpc_server_handled_total{grpc_code="FailedPrecondition",grpc_method="GetSecret",grpc_service="secretproxy.v1.SecretService",grpc_type="unary"}`,
		`secretproxy_vault_requests_total{code="429",operation="get"}`,
		`secretproxy_vault_requests_total{code="503",operation="get"}`,
		`secretproxy_refresh_total{result="changed",secret="db-password"} 2`,
		`secretproxy_secret_stale{secret="gone"} 1`,
	} {
		if !strings.Contains(body, line) {
			t.Errorf("metrics lack %s", line)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !poll(15*time.Second, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}
