package kvemulator_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/google/go-cmp/cmp"

	"github.com/secretproxy/secretproxy/sidecar/kvemulator"
)

// appServiceCredential points the real ManagedIdentityCredential at the
// emulator through IDENTITY_ENDPOINT and IDENTITY_HEADER.
func appServiceCredential(t *testing.T, e *kvemulator.Emulator) azcore.TokenCredential {
	t.Helper()
	t.Setenv("IDENTITY_ENDPOINT", e.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", e.IdentityHeader())
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ID:            azidentity.ClientID(uniqueClientID(t)),
		ClientOptions: azcore.ClientOptions{Transport: e.HTTPClient()},
	})
	if err != nil {
		t.Fatalf("NewManagedIdentityCredential: %v", err)
	}
	return cred
}

func TestGetSecretWithAppServiceManagedIdentity(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e := start(t, kvemulator.Options{
		Secrets: map[string]string{"db-password": "test-password-1"},
		Now:     func() time.Time { return created },
	})
	client := newSecretsClient(t, e, appServiceCredential(t, e))
	ctx := t.Context()

	first, err := client.GetSecret(ctx, "db-password", "", nil)
	if err != nil {
		t.Fatalf("GetSecret latest: %v", err)
	}
	if got := *first.Value; got != "test-password-1" {
		t.Errorf("latest value = %q, want the seeded value", got)
	}
	firstVersion := first.ID.Version()
	if len(firstVersion) != 32 {
		t.Errorf("version %q is not 32 hex characters", firstVersion)
	}
	if got, want := string(*first.ID), e.VaultURL()+"secrets/db-password/"+firstVersion; got != want {
		t.Errorf("id = %q, want %q", got, want)
	}
	if got := *first.Attributes.Created; !got.Equal(created) {
		t.Errorf("created = %v, want %v (from the Now option)", got, created)
	}
	if !*first.Attributes.Enabled {
		t.Error("enabled = false, want true")
	}
	if got := *first.Attributes.RecoveryLevel; got != "Recoverable+Purgeable" {
		t.Errorf("recoveryLevel = %q", got)
	}

	exp := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	nbf := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	second := e.SetSecret("db-password", "test-password-2",
		kvemulator.WithContentType("text/plain"), kvemulator.WithExpires(exp),
		kvemulator.WithNotBefore(nbf), kvemulator.WithTags(map[string]string{"owner": "tests"}))
	if second == firstVersion {
		t.Fatal("SetSecret returned the old version id")
	}

	latest, err := client.GetSecret(ctx, "db-password", "", nil)
	if err != nil {
		t.Fatalf("GetSecret latest after SetSecret: %v", err)
	}
	type view struct {
		Value, Version, ContentType string
		Exp, Nbf                    time.Time
		Tags                        map[string]string
	}
	got := view{*latest.Value, latest.ID.Version(), *latest.ContentType, *latest.Attributes.Expires,
		*latest.Attributes.NotBefore, map[string]string{"owner": *latest.Tags["owner"]}}
	want := view{"test-password-2", second, "text/plain", exp, nbf, map[string]string{"owner": "tests"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("latest after SetSecret (-want +got):\n%s", d)
	}

	pinned, err := client.GetSecret(ctx, "db-password", firstVersion, nil)
	if err != nil {
		t.Fatalf("GetSecret pinned: %v", err)
	}
	if *pinned.Value != "test-password-1" || pinned.ID.Version() != firstVersion {
		t.Errorf("pinned = %q version %q, want the first value and version %q", *pinned.Value, pinned.ID.Version(), firstVersion)
	}

	// Key Vault names are case-insensitive.
	if _, err := client.GetSecret(ctx, "DB-Password", "", nil); err != nil {
		t.Errorf("GetSecret with other case: %v", err)
	}
}

func TestVaultErrors(t *testing.T) {
	e := start(t, kvemulator.Options{Secrets: map[string]string{"db-user": "test-user-1", "api-key": "test-key-1"}})
	client := newSecretsClient(t, e, appServiceCredential(t, e))
	// Authenticate once so every case below starts from a known token.
	if _, err := client.GetSecret(t.Context(), "db-user", "", nil); err != nil {
		t.Fatalf("warm-up GetSecret: %v", err)
	}

	tests := []struct {
		name       string
		setup      func(t *testing.T)
		secret     string
		version    string
		wantStatus int
		wantCode   string
		wantInner  string
		wantRetry  string
	}{
		{name: "missing secret", secret: "nope", wantStatus: 404, wantCode: "SecretNotFound"},
		{name: "missing version", secret: "db-user", version: "0123456789abcdef0123456789abcdef", wantStatus: 404, wantCode: "SecretNotFound"},
		{
			name:   "disabled",
			secret: "api-key",
			setup: func(t *testing.T) {
				if err := e.DisableSecret("api-key"); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = e.EnableSecret("api-key") })
			},
			wantStatus: 403, wantCode: "Forbidden", wantInner: "SecretDisabled",
		},
		{
			name:   "deleted",
			secret: "api-key",
			setup: func(t *testing.T) {
				if err := e.DeleteSecret("api-key"); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { e.SetSecret("api-key", "test-key-1") })
			},
			wantStatus: 404, wantCode: "SecretNotFound",
		},
		{
			name:   "throttled",
			secret: "db-user",
			setup: func(t *testing.T) {
				e.SetFault(kvemulator.Fault{Mode: kvemulator.FaultThrottle, RetryAfter: 4 * time.Second})
				t.Cleanup(func() { e.SetFault(kvemulator.Fault{}) })
			},
			wantStatus: 429, wantCode: "Throttled", wantRetry: "4",
		},
		{
			name:   "outage",
			secret: "db-user",
			setup: func(t *testing.T) {
				e.SetFault(kvemulator.Fault{Mode: kvemulator.FaultOutage})
				t.Cleanup(func() { e.SetFault(kvemulator.Fault{}) })
			},
			wantStatus: 503, wantCode: "ServiceUnavailable",
		},
		{
			name:   "rbac forbidden",
			secret: "db-user",
			setup: func(t *testing.T) {
				e.SetFault(kvemulator.Fault{Mode: kvemulator.FaultForbidden})
				t.Cleanup(func() { e.SetFault(kvemulator.Fault{}) })
			},
			wantStatus: 403, wantCode: "Forbidden", wantInner: "ForbiddenByRbac",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup(t)
			}
			_, err := client.GetSecret(t.Context(), tc.secret, tc.version, nil)
			if err == nil {
				t.Fatal("GetSecret succeeded, want an error")
			}
			re := respErr(t, err)
			body := decodeKVError(t, re.RawResponse)
			type view struct {
				Status          int
				Code, Inner     string
				BodyCode, Retry string
				MessageNonEmpty bool
			}
			got := view{re.StatusCode, re.ErrorCode, innerCode(body), body.Error.Code, re.RawResponse.Header.Get("Retry-After"), body.Error.Message != ""}
			want := view{tc.wantStatus, tc.wantCode, tc.wantInner, tc.wantCode, tc.wantRetry, true}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("error (-want +got):\n%s", d)
			}
		})
	}

	t.Run("disabled message", func(t *testing.T) {
		if err := e.DisableSecret("db-user"); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = e.EnableSecret("db-user") }()
		_, err := client.GetSecret(t.Context(), "db-user", "", nil)
		body := decodeKVError(t, respErr(t, err).RawResponse)
		if got, want := body.Error.Message, "Operation get is not allowed on a disabled secret."; got != want {
			t.Errorf("message = %q, want %q", got, want)
		}
	})

	t.Run("counted fault clears itself", func(t *testing.T) {
		e.SetFault(kvemulator.Fault{Mode: kvemulator.FaultThrottle, RetryAfter: 30 * time.Second, Count: 1})
		if _, err := client.GetSecret(t.Context(), "db-user", "", nil); respErr(t, err).StatusCode != 429 {
			t.Fatalf("first read: %v, want 429", err)
		}
		if _, err := client.GetSecret(t.Context(), "db-user", "", nil); err != nil {
			t.Fatalf("second read after a Count:1 fault: %v", err)
		}
	})

	t.Run("outage retried once by azcore", func(t *testing.T) {
		e.ResetRequests()
		e.SetFault(kvemulator.Fault{Mode: kvemulator.FaultOutage})
		defer e.SetFault(kvemulator.Fault{})
		_, _ = client.GetSecret(t.Context(), "db-user", "", nil)
		var statuses []int
		for _, r := range e.Requests() {
			if r.Kind == "vault" {
				statuses = append(statuses, r.Status)
			}
		}
		if d := cmp.Diff([]int{503, 503}, statuses); d != "" {
			t.Errorf("vault requests recorded (-want +got):\n%s", d)
		}
	})
}

func TestGetSecretWithIMDSManagedIdentity(t *testing.T) {
	e := start(t, kvemulator.Options{Secrets: map[string]string{"db-name": "orders"}})
	// Make sure MSAL picks IMDS: no App Service, Cloud Shell or Arc variables.
	for _, k := range []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT", "IDENTITY_SERVER_THUMBPRINT"} {
		t.Setenv(k, "")
	}
	hc := imdsClient(e)
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ID:            azidentity.ClientID(uniqueClientID(t)),
		ClientOptions: azcore.ClientOptions{Transport: hc},
	})
	if err != nil {
		t.Fatalf("NewManagedIdentityCredential: %v", err)
	}
	opts := clientOptions(e)
	opts.Transport = hc
	client, err := azsecrets.NewClient(e.VaultURL(), cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := client.GetSecret(t.Context(), "db-name", "", nil)
	if err != nil {
		t.Fatalf("GetSecret: %v", err)
	}
	if *got.Value != "orders" {
		t.Errorf("value = %q, want %q", *got.Value, "orders")
	}
	// The challenge flow as the SDK runs it: a bare request (401), one IMDS
	// token request, the same request with the token; GetSecret with no
	// version keeps the trailing slash.
	type seen struct {
		Kind, Path string
		Status     int
	}
	var got2 []seen
	for _, r := range e.Requests() {
		got2 = append(got2, seen{r.Kind, r.Path, r.Status})
	}
	want := []seen{
		{"vault", "/secrets/db-name/", 401},
		{"token", "/metadata/identity/oauth2/token", 200},
		{"vault", "/secrets/db-name/", 200},
	}
	if d := cmp.Diff(want, got2); d != "" {
		t.Errorf("requests (-want +got):\n%s", d)
	}
}

func TestGetSecretWithWorkloadIdentity(t *testing.T) {
	e := start(t, kvemulator.Options{
		Secrets:  map[string]string{"db-server": "127.0.0.1:5432"},
		TenantID: "72f988bf-0000-0000-0000-00000000abcd",
	})
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	bad := filepath.Join(dir, "wrong-token")
	if err := os.WriteFile(good, []byte(e.FederatedToken()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("not-the-federated-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AZURE_AUTHORITY_HOST", e.AuthorityHost())
	t.Setenv("AZURE_TENANT_ID", e.TenantID())

	newCred := func(t *testing.T, file string) azcore.TokenCredential {
		t.Helper()
		cred, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions:            azcore.ClientOptions{Transport: e.HTTPClient()},
			ClientID:                 uniqueClientID(t),
			TokenFilePath:            file,
			DisableInstanceDiscovery: true,
		})
		if err != nil {
			t.Fatalf("NewWorkloadIdentityCredential: %v", err)
		}
		return cred
	}

	t.Run("federated token accepted", func(t *testing.T) {
		client := newSecretsClient(t, e, newCred(t, good))
		got, err := client.GetSecret(t.Context(), "db-server", "", nil)
		if err != nil {
			t.Fatalf("GetSecret: %v", err)
		}
		if *got.Value != "127.0.0.1:5432" {
			t.Errorf("value = %q", *got.Value)
		}
	})

	t.Run("wrong assertion refused", func(t *testing.T) {
		client := newSecretsClient(t, e, newCred(t, bad))
		_, err := client.GetSecret(t.Context(), "db-server", "", nil)
		var afe *azidentity.AuthenticationFailedError
		if !errors.As(err, &afe) {
			t.Fatalf("error %v (%T), want *azidentity.AuthenticationFailedError", err, err)
		}
		if afe.RawResponse == nil {
			t.Fatalf("no raw response in %v", afe)
		}
		if afe.RawResponse.StatusCode != http.StatusBadRequest || !strings.Contains(err.Error(), "AADSTS70021") {
			t.Errorf("status %d, error %q; want 400 with AADSTS70021", afe.RawResponse.StatusCode, err)
		}
	})
}

func TestVaultRefusesForeignTokens(t *testing.T) {
	e := start(t, kvemulator.Options{Secrets: map[string]string{"db-user": "test-user-1"}})
	hc := e.HTTPClient()
	url := e.VaultURL() + "secrets/db-user/?api-version=2026-04-01"
	wantChallenge := `Bearer authorization="https://login.microsoftonline.com/` + e.TenantID() + `", resource="https://vault.azure.net"`

	token := func(t *testing.T, resource string) string {
		t.Helper()
		status, _, body := do(t, hc, http.MethodGet,
			e.IdentityEndpoint()+"?api-version=2019-08-01&resource="+resource+"&client_id=raw",
			map[string]string{"X-IDENTITY-HEADER": e.IdentityHeader()}, "")
		if status != 200 {
			t.Fatalf("token request: %d %s", status, body)
		}
		var tr struct {
			AccessToken string `json:"access_token"`
			ExpiresOn   string `json:"expires_on"`
		}
		if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" || tr.ExpiresOn == "" {
			t.Fatalf("token answer %s: %v", body, err)
		}
		return tr.AccessToken
	}

	tests := []struct {
		name       string
		authz      func(t *testing.T) string
		wantStatus int
	}{
		{"no token", func(*testing.T) string { return "" }, 401},
		{"forged token", func(*testing.T) string { return "Bearer kvemu.0000" }, 401},
		{"token for another resource", func(t *testing.T) string { return "Bearer " + token(t, "https://management.azure.com") }, 401},
		{"not a bearer token", func(t *testing.T) string { return "Basic " + token(t, "https://vault.azure.net") }, 401},
		{"vault token", func(t *testing.T) string { return "Bearer " + token(t, "https://vault.azure.net") }, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if a := tc.authz(t); a != "" {
				hdr["Authorization"] = a
			}
			status, h, body := do(t, hc, http.MethodGet, url, hdr, "")
			if status != tc.wantStatus {
				t.Fatalf("status = %d (%s), want %d", status, body, tc.wantStatus)
			}
			if status == 401 {
				if got := h.Get("WWW-Authenticate"); got != wantChallenge {
					t.Errorf("WWW-Authenticate = %q, want %q", got, wantChallenge)
				}
			}
		})
	}

	t.Run("sdk with a foreign token gets 401", func(t *testing.T) {
		client := newSecretsClient(t, e, staticToken("kvemu.not-issued-here"))
		_, err := client.GetSecret(t.Context(), "db-user", "", nil)
		if re := respErr(t, err); re.StatusCode != 401 {
			t.Errorf("status = %d, want 401", re.StatusCode)
		}
	})
}

func TestIdentityEndpointsRefuseBadRequests(t *testing.T) {
	e := start(t, kvemulator.Options{Secrets: map[string]string{"db-user": "test-user-1"}})
	hc := &http.Client{}
	app := e.IdentityEndpoint() + "?api-version=2019-08-01&resource=https://vault.azure.net&client_id=x"
	imds := "http://" + e.IdentityAddr() + "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net"
	tests := []struct {
		name   string
		url    string
		hdr    map[string]string
		status int
	}{
		{"app service without header", app, nil, 401},
		{"app service wrong header", app, map[string]string{"X-IDENTITY-HEADER": "wrong"}, 401},
		{"app service right header", app, map[string]string{"X-IDENTITY-HEADER": e.IdentityHeader()}, 200},
		{"app service wrong api-version", strings.Replace(app, "2019-08-01", "2017-09-01", 1), map[string]string{"X-IDENTITY-HEADER": e.IdentityHeader()}, 400},
		{"app service no resource", e.IdentityEndpoint() + "?api-version=2019-08-01", map[string]string{"X-IDENTITY-HEADER": e.IdentityHeader()}, 400},
		{"imds without Metadata header", imds, nil, 400},
		{"imds with Metadata header", imds, map[string]string{"Metadata": "true"}, 200},
		{"unknown path", "http://" + e.IdentityAddr() + "/other", nil, 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := do(t, hc, http.MethodGet, tc.url, tc.hdr, "")
			if status != tc.status {
				t.Errorf("status = %d (%s), want %d", status, body, tc.status)
			}
		})
	}

	t.Run("sdk with wrong IDENTITY_HEADER fails", func(t *testing.T) {
		t.Setenv("IDENTITY_ENDPOINT", e.IdentityEndpoint())
		t.Setenv("IDENTITY_HEADER", "not-the-header")
		cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
			ID:            azidentity.ClientID(uniqueClientID(t)),
			ClientOptions: azcore.ClientOptions{Transport: e.HTTPClient()},
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = newSecretsClient(t, e, cred).GetSecret(t.Context(), "db-user", "", nil)
		var afe *azidentity.AuthenticationFailedError
		if !errors.As(err, &afe) {
			t.Fatalf("error %v (%T), want *azidentity.AuthenticationFailedError", err, err)
		}
	})
}

func TestListPaging(t *testing.T) {
	seed := map[string]string{}
	var want []string
	for i := range 30 {
		name := "secret-" + string(rune('a'+i/10)) + string(rune('a'+i%10))
		seed[name] = "test-value"
		want = append(want, name)
	}
	e := start(t, kvemulator.Options{Secrets: seed})
	for range 29 {
		e.SetSecret("secret-aa", "test-value-next")
	}
	client := newSecretsClient(t, e, appServiceCredential(t, e))

	var names []string
	pages := 0
	pager := client.NewListSecretPropertiesPager(nil)
	for pager.More() && pages < 10 {
		page, err := pager.NextPage(t.Context())
		if err != nil {
			t.Fatalf("list secrets page %d: %v", pages, err)
		}
		pages++
		for _, p := range page.Value {
			names = append(names, p.ID.Name())
		}
	}
	slices.Sort(names)
	if d := cmp.Diff(want, names); d != "" {
		t.Errorf("listed names (-want +got):\n%s", d)
	}
	if pages != 2 {
		t.Errorf("pages = %d, want 2 (25 + 5)", pages)
	}

	versions := map[string]bool{}
	vp := client.NewListSecretPropertiesVersionsPager("secret-aa", &azsecrets.ListSecretPropertiesVersionsOptions{})
	for i := 0; vp.More() && i < 10; i++ {
		page, err := vp.NextPage(t.Context())
		if err != nil {
			t.Fatalf("list versions: %v", err)
		}
		for _, p := range page.Value {
			versions[p.ID.Version()] = true
		}
	}
	if len(versions) != 30 {
		t.Errorf("listed %d distinct versions, want 30", len(versions))
	}
}

func TestSetSecretThroughSDK(t *testing.T) {
	e := start(t, kvemulator.Options{})
	client := newSecretsClient(t, e, appServiceCredential(t, e))
	resp, err := client.SetSecret(t.Context(), "new-secret", azsecrets.SetSecretParameters{
		Value: to.Ptr("test-value-3"), ContentType: to.Ptr("text/plain"),
	}, nil)
	if err != nil {
		t.Fatalf("SetSecret: %v", err)
	}
	got, err := client.GetSecret(t.Context(), "new-secret", resp.ID.Version(), nil)
	if err != nil {
		t.Fatalf("GetSecret: %v", err)
	}
	if *got.Value != "test-value-3" || *got.ContentType != "text/plain" {
		t.Errorf("got %q %q", *got.Value, *got.ContentType)
	}
}
