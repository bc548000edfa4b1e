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

	"github.com/secretproxy/secretproxy/sidecar/internal/keyvault"
	"github.com/secretproxy/secretproxy/sidecar/internal/keyvault/kvconfig"
	"github.com/secretproxy/secretproxy/sidecar/internal/metrics"
	"github.com/secretproxy/secretproxy/sidecar/internal/source"
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

// sections are the backend's two configuration sections.
type sections struct {
	Vault kvconfig.Vault
	Auth  kvconfig.Auth
}

func vaultConfig(e *kvemulator.Emulator, mode, id string) sections {
	return sections{
		Vault: kvconfig.Vault{URL: e.VaultURL(), DisableChallengeResourceVerification: true},
		Auth:  kvconfig.Auth{Mode: mode, ClientID: id, DisableInstanceDiscovery: true},
	}
}

func newClient(t *testing.T, cfg sections, tr *http.Client) (*keyvault.Client, *metrics.Metrics) {
	t.Helper()
	m := metrics.New(prometheus.NewRegistry(), nil, "test")
	o := keyvault.Options{Metrics: m}
	if tr != nil { // a nil *http.Client in the interface would not be azcore's default
		o.Transport = tr
	}
	c, err := keyvault.New(cfg.Vault, cfg.Auth, o)
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

	c, m := newClient(t, vaultConfig(e, kvconfig.AuthManagedIdentity, clientID(t)), e.HTTPClient())
	got, err := c.Get(t.Context(), "sql-password", "")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	want := source.Secret{Value: "test-password-1", Version: ver, ContentType: "text/plain",
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
	c, _ := newClient(t, vaultConfig(e, kvconfig.AuthDefault, clientID(t)), imdsTransport(e))
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
	if got := kvconfig.Mode(kvconfig.Auth{Mode: kvconfig.AuthDefault}, nil); got != kvconfig.AuthWorkloadIdentity {
		t.Fatalf("default mode with the AKS environment = %q, want workload-identity", got)
	}
	c, m := newClient(t, vaultConfig(e, kvconfig.AuthDefault, ""), e.HTTPClient())
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
	c, m := newClient(t, vaultConfig(e, kvconfig.AuthManagedIdentity, clientID(t)), e.HTTPClient())
	if _, err := c.Get(t.Context(), "ok", ""); err != nil { // token and challenge done
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		secret     string
		fault      kvemulator.Fault
		want       error
		msg        string // the whole message: what the vault answered, in its words
		status     int
		retryAfter time.Duration
		denied     bool
	}{
		{name: "not found", secret: "absent", want: source.ErrNotFound, msg: "secret not found in the vault (404 SecretNotFound)"},
		{name: "disabled", secret: "off", want: source.ErrDisabled, msg: "secret is disabled in the vault (403 SecretDisabled)"},
		{name: "throttled", secret: "ok", fault: kvemulator.Fault{Mode: kvemulator.FaultThrottle, RetryAfter: 30 * time.Second}, status: 429, retryAfter: 30 * time.Second,
			msg: "vault answered 429 Throttled (retry after 30s)"},
		{name: "outage", secret: "ok", fault: kvemulator.Fault{Mode: kvemulator.FaultOutage}, status: 503},
		{name: "rbac forbidden is transient", secret: "ok", fault: kvemulator.Fault{Mode: kvemulator.FaultForbidden}, status: 403, denied: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.SetFault(tt.fault)
			defer e.SetFault(kvemulator.Fault{})
			_, err := c.Get(t.Context(), tt.secret, "")
			if tt.msg != "" && (err == nil || err.Error() != tt.msg) {
				t.Errorf("error %q, want %q", err, tt.msg)
			}
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("Get = %v, want %v", err, tt.want)
				}
				return
			}
			// The core sees a neutral transient error; the vault's detail is beneath it.
			var ne *source.TransientError
			if !errors.As(err, &ne) {
				t.Fatalf("Get = %v (%T), want a *source.TransientError", err, err)
			}
			if errors.Is(err, source.ErrNotFound) || errors.Is(err, source.ErrDisabled) {
				t.Errorf("Get = %v, a transient error must not match a settled answer", err)
			}
			if got := errors.Is(err, source.ErrDenied); got != tt.denied {
				t.Errorf("errors.Is(err, source.ErrDenied) = %v, want %v", got, tt.denied)
			}
			var te *keyvault.TransientError
			if !errors.As(err, &te) {
				t.Fatalf("Get = %v (%T), want *TransientError", err, err)
			}
			if te.Status != tt.status {
				t.Errorf("status = %d, want %d", te.Status, tt.status)
			}
			ra, _ := source.RetryAfter(err)
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
	cfg := sections{
		Vault: kvconfig.Vault{URL: "https://" + addr + "/", DisableChallengeResourceVerification: true},
		Auth:  kvconfig.Auth{Mode: kvconfig.AuthManagedIdentity, ClientID: clientID(t)},
	}
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

// TestTokenRefusalIsDenied: an identity endpoint that refuses the sidecar's
// identity makes the read a transient error that matches source.ErrDenied
// (a role or federation can be fixed later, so it is retried); an endpoint
// that is down is transient and not denied.
func TestTokenRefusalIsDenied(t *testing.T) {
	e := start(t, kvemulator.Options{Secrets: map[string]string{"ok": "test-value"}})
	clearIdentityEnv(t)
	t.Setenv("IDENTITY_ENDPOINT", e.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", e.IdentityHeader())
	tests := []struct {
		name   string
		fault  kvemulator.FaultMode
		denied bool
	}{
		{"identity refused", kvemulator.FaultForbidden, true},
		{"identity endpoint down", kvemulator.FaultOutage, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A client of its own: MSAL caches tokens per client id.
			c, _ := newClient(t, vaultConfig(e, kvconfig.AuthManagedIdentity, clientID(t)), e.HTTPClient())
			e.SetIdentityFault(kvemulator.Fault{Mode: tt.fault})
			defer e.SetIdentityFault(kvemulator.Fault{})
			_, err := c.Get(t.Context(), "ok", "")
			var te *source.TransientError
			if !errors.As(err, &te) {
				t.Fatalf("Get = %v (%T), want a *source.TransientError", err, err)
			}
			if got := errors.Is(err, source.ErrDenied); got != tt.denied {
				t.Errorf("errors.Is(%v, source.ErrDenied) = %v, want %v", err, got, tt.denied)
			}
			if strings.Contains(err.Error(), "test-value") {
				t.Errorf("error %q holds a secret value", err)
			}
		})
	}
}
