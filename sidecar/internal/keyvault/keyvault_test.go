package keyvault_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/secretproxy/secretproxy/sidecar/internal/config"
	"github.com/secretproxy/secretproxy/sidecar/internal/keyvault"
	"github.com/secretproxy/secretproxy/sidecar/internal/metrics"
	"github.com/secretproxy/secretproxy/sidecar/kvemulator"
)

func start(t *testing.T, opts kvemulator.Options) *kvemulator.Emulator {
	t.Helper()
	e, err := kvemulator.Start(opts)
	if err != nil {
		t.Fatalf("start emulator: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

var seq atomic.Int64

// clientID is unique per test: MSAL's managed identity token cache is global
// to the process.
func clientID(t *testing.T) string {
	return fmt.Sprintf("kv-%d-%s", seq.Add(1), strings.ReplaceAll(t.Name(), "/", "-"))
}

func clearIdentityEnv(t *testing.T) {
	for _, k := range []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT",
		"IDENTITY_SERVER_THUMBPRINT", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_ID", "AZURE_TENANT_ID"} {
		t.Setenv(k, "")
	}
}

func vaultConfig(e *kvemulator.Emulator, mode, id string) config.Config {
	cfg := config.Default()
	cfg.Vault = config.Vault{URL: e.VaultURL(), DisableChallengeResourceVerification: true}
	cfg.Auth = config.Auth{Mode: mode, ClientID: id, DisableInstanceDiscovery: true}
	return cfg
}

func newClient(t *testing.T, cfg config.Config, tr *http.Client) (*keyvault.Client, *metrics.Metrics) {
	t.Helper()
	m := metrics.New(prometheus.NewRegistry(), nil, "test")
	o := keyvault.Options{Metrics: m}
	if tr != nil { // a nil *http.Client in the interface would not be azcore's default
		o.Transport = tr
	}
	c, err := keyvault.New(cfg, o)
	if err != nil {
		t.Fatalf("keyvault.New: %v", err)
	}
	return c, m
}

func TestManagedIdentityAppService(t *testing.T) {
	e := start(t, kvemulator.Options{})
	exp := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	ver := e.SetSecret("sql-password", "test-password-1", kvemulator.WithContentType("text/plain"),
		kvemulator.WithTags(map[string]string{"owner": "orders"}), kvemulator.WithExpires(exp))
	clearIdentityEnv(t)
	t.Setenv("IDENTITY_ENDPOINT", e.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", e.IdentityHeader())

	c, m := newClient(t, vaultConfig(e, config.AuthManagedIdentity, clientID(t)), e.HTTPClient())
	got, err := c.Get(t.Context(), "sql-password", "")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	want := keyvault.Secret{Value: "test-password-1", Version: ver, ContentType: "text/plain",
		Tags: map[string]string{"owner": "orders"}, Expires: exp}
	got.Updated = time.Time{}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
		t.Errorf("secret (-want +got):\n%s", diff)
	}
	// A pinned version reads that version.
	e.SetSecret("sql-password", "test-password-2")
	if old, err := c.Get(t.Context(), "sql-password", ver); err != nil || old.Value != "test-password-1" {
		t.Errorf("Get pinned version: %v, right value %v", err, old.Value == "test-password-1")
	}
	// Every try is counted: the 401 challenge, then two 200s; one token request.
	if err := testutil.CollectAndCompare(m.VaultRequests, strings.NewReader(`
# HELP secretproxy_vault_requests_total Key Vault HTTP requests, one per try (the 401 challenge and each retry included); operation is the vault call (get), code the HTTP status or 'error' when no response came.
# TYPE secretproxy_vault_requests_total counter
secretproxy_vault_requests_total{code="200",operation="get"} 2
secretproxy_vault_requests_total{code="401",operation="get"} 1
`)); err != nil {
		t.Error(err)
	}
	if n := testutil.ToFloat64(m.TokenRequests.WithLabelValues("success")); n != 1 {
		t.Errorf("token requests = %v, want 1", n)
	}
}

// imdsTransport dials the emulator whenever the SDK dials the IMDS address,
// which MSAL hard-codes.
func imdsTransport(e *kvemulator.Emulator) *http.Client {
	tr := e.HTTPClient().Transport.(*http.Transport).Clone()
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == "169.254.169.254:80" {
			addr = e.IdentityAddr()
		}
		return d.DialContext(ctx, network, addr)
	}
	tr.TLSClientConfig = &tls.Config{RootCAs: e.CertPool(), MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}
}

func TestManagedIdentityIMDS(t *testing.T) {
	e := start(t, kvemulator.Options{Secrets: map[string]string{"db-name": "orders"}})
	clearIdentityEnv(t)
	// auth.mode default without the workload identity environment is managed identity.
	c, _ := newClient(t, vaultConfig(e, config.AuthDefault, clientID(t)), imdsTransport(e))
	got, err := c.Get(t.Context(), "db-name", "")
	if err != nil || got.Value != "orders" {
		t.Fatalf("Get over IMDS: %v, right value %v", err, got.Value == "orders")
	}
	var imds int
	for _, r := range e.Requests() {
		if r.Path == "/metadata/identity/oauth2/token" && r.Status == 200 {
			imds++
		}
	}
	if imds != 1 {
		t.Errorf("IMDS token requests = %d, want 1", imds)
	}
}

func TestWorkloadIdentity(t *testing.T) {
	e := start(t, kvemulator.Options{Secrets: map[string]string{"db-server": "127.0.0.1:5432"}, TenantID: "72f988bf-0000-0000-0000-00000000abcd"})
	clearIdentityEnv(t)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(e.FederatedToken()), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AZURE_AUTHORITY_HOST", e.AuthorityHost())
	t.Setenv("AZURE_TENANT_ID", e.TenantID())
	t.Setenv("AZURE_CLIENT_ID", clientID(t))
	t.Setenv("AZURE_FEDERATED_TOKEN_FILE", file)
	if got := keyvault.Mode(config.Auth{Mode: config.AuthDefault}, nil); got != config.AuthWorkloadIdentity {
		t.Fatalf("default mode with the AKS environment = %q, want workload-identity", got)
	}
	c, m := newClient(t, vaultConfig(e, config.AuthDefault, ""), e.HTTPClient())
	got, err := c.Get(t.Context(), "db-server", "")
	if err != nil || got.Value != "127.0.0.1:5432" {
		t.Fatalf("Get with workload identity: %v, right value %v", err, got.Value == "127.0.0.1:5432")
	}
	if n := testutil.ToFloat64(m.TokenRequests.WithLabelValues("success")); n != 1 {
		t.Errorf("token requests = %v, want 1", n)
	}
}

func TestClassification(t *testing.T) {
	e := start(t, kvemulator.Options{Secrets: map[string]string{"ok": "test-value", "off": "test-value-off"}})
	if err := e.DisableSecret("off"); err != nil {
		t.Fatal(err)
	}
	clearIdentityEnv(t)
	t.Setenv("IDENTITY_ENDPOINT", e.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", e.IdentityHeader())
	c, m := newClient(t, vaultConfig(e, config.AuthManagedIdentity, clientID(t)), e.HTTPClient())
	if _, err := c.Get(t.Context(), "ok", ""); err != nil { // token and challenge done
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		secret     string
		fault      kvemulator.Fault
		want       error
		status     int
		retryAfter time.Duration
	}{
		{name: "not found", secret: "absent", want: keyvault.ErrNotFound},
		{name: "disabled", secret: "off", want: keyvault.ErrDisabled},
		{name: "throttled", secret: "ok", fault: kvemulator.Fault{Mode: kvemulator.FaultThrottle, RetryAfter: 30 * time.Second}, status: 429, retryAfter: 30 * time.Second},
		{name: "outage", secret: "ok", fault: kvemulator.Fault{Mode: kvemulator.FaultOutage}, status: 503},
		{name: "rbac forbidden is transient", secret: "ok", fault: kvemulator.Fault{Mode: kvemulator.FaultForbidden}, status: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.SetFault(tt.fault)
			defer e.SetFault(kvemulator.Fault{})
			_, err := c.Get(t.Context(), tt.secret, "")
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("Get = %v, want %v", err, tt.want)
				}
				return
			}
			var te *keyvault.TransientError
			if !errors.As(err, &te) {
				t.Fatalf("Get = %v (%T), want *TransientError", err, err)
			}
			if te.Status != tt.status {
				t.Errorf("status = %d, want %d", te.Status, tt.status)
			}
			ra, _ := keyvault.RetryAfter(err)
			if ra != tt.retryAfter {
				t.Errorf("RetryAfter = %s, want %s", ra, tt.retryAfter)
			}
			if strings.Contains(err.Error(), "test-value") {
				t.Errorf("error %q holds a secret value", err)
			}
		})
	}
	// A 429 whose Retry-After exceeds azcore's MaxRetryDelay comes back at once:
	// one try, no retry, so the refresher owns the wait.
	if n := testutil.ToFloat64(m.VaultRequests.WithLabelValues("get", "429")); n != 1 {
		t.Errorf("429 tries = %v, want 1", n)
	}
	// The outage is retried once by azcore (MaxRetries: 1), not three times.
	if n := testutil.ToFloat64(m.VaultRequests.WithLabelValues("get", "503")); n != 2 {
		t.Errorf("503 tries = %v, want 2", n)
	}
}

func TestNoResponseCountsAsError(t *testing.T) {
	clearIdentityEnv(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	cfg := config.Default()
	cfg.Vault = config.Vault{URL: "https://" + addr + "/", DisableChallengeResourceVerification: true}
	cfg.Auth = config.Auth{Mode: config.AuthManagedIdentity, ClientID: clientID(t)}
	c, m := newClient(t, cfg, nil)
	_, err = c.Get(t.Context(), "a", "")
	var te *keyvault.TransientError
	if !errors.As(err, &te) || te.Status != 0 {
		t.Fatalf("Get = %v, want a TransientError without status", err)
	}
	if n := testutil.ToFloat64(m.VaultRequests.WithLabelValues("get", "error")); n != 2 {
		t.Errorf("vault_requests_total{code=error} = %v, want 2 (the try and azcore's one retry)", n)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		h    http.Header
		want time.Duration
	}{
		{"seconds", http.Header{"Retry-After": {"30"}}, 30 * time.Second},
		{"date", http.Header{"Retry-After": {now.Add(time.Minute).Format(http.TimeFormat)}}, time.Minute},
		{"ms header wins", http.Header{"Retry-After": {"30"}, "Retry-After-Ms": {"1500"}}, 1500 * time.Millisecond},
		{"past date", http.Header{"Retry-After": {now.Add(-time.Minute).Format(http.TimeFormat)}}, 0},
		{"garbage", http.Header{"Retry-After": {"soon"}}, 0},
		{"absent", http.Header{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := keyvault.ParseRetryAfter(tt.h, now); got != tt.want {
				t.Errorf("ParseRetryAfter = %s, want %s", got, tt.want)
			}
		})
	}
}

// auth.mode default is workload identity only when all three variables the
// AKS webhook injects are set; an explicit mode ignores the environment.
func TestModeSelection(t *testing.T) {
	all := map[string]string{
		keyvault.EnvFederatedTokenFile: "/var/run/secrets/azure/tokens/azure-identity-token",
		keyvault.EnvClientID:           "00000000-0000-0000-0000-000000000001",
		keyvault.EnvTenantID:           "00000000-0000-0000-0000-000000000002",
	}
	without := func(key string) map[string]string {
		m := map[string]string{}
		for k, v := range all {
			if k != key {
				m[k] = v
			}
		}
		return m
	}
	tests := []struct {
		name string
		mode string
		env  map[string]string
		want string
	}{
		{"default, all three set", config.AuthDefault, all, config.AuthWorkloadIdentity},
		{"default, no token file", config.AuthDefault, without(keyvault.EnvFederatedTokenFile), config.AuthManagedIdentity},
		{"default, no client id", config.AuthDefault, without(keyvault.EnvClientID), config.AuthManagedIdentity},
		{"default, no tenant id", config.AuthDefault, without(keyvault.EnvTenantID), config.AuthManagedIdentity},
		{"default, nothing set", config.AuthDefault, nil, config.AuthManagedIdentity},
		{"managed identity ignores the environment", config.AuthManagedIdentity, all, config.AuthManagedIdentity},
		{"workload identity without the environment", config.AuthWorkloadIdentity, nil, config.AuthWorkloadIdentity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := keyvault.Mode(config.Auth{Mode: tt.mode}, func(k string) string { return tt.env[k] })
			if got != tt.want {
				t.Errorf("Mode(%q) = %q, want %q", tt.mode, got, tt.want)
			}
		})
	}
}
