package kvemulator_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/google/go-cmp/cmp"

	"github.com/secretproxy/secretproxy/sidecar/kvemulator"
)

func TestExpiredTokenRefused(t *testing.T) {
	e := start(t, kvemulator.Options{Secrets: map[string]string{"db-user": "test-user-1"}, TokenLifetime: 2 * time.Hour})
	now := time.Now()
	var mu sync.Mutex
	kvemulator.SetTokenClock(e, func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	hc := e.HTTPClient()
	status, _, body := do(t, hc, http.MethodGet, e.IdentityEndpoint()+"?api-version=2019-08-01&resource=https://vault.azure.net&client_id=exp",
		map[string]string{"X-IDENTITY-HEADER": e.IdentityHeader()}, "")
	var tr struct {
		AccessToken string `json:"access_token"`
		ExpiresOn   string `json:"expires_on"`
	}
	if err := json.Unmarshal(body, &tr); status != 200 || err != nil {
		t.Fatalf("token: %d %s %v", status, body, err)
	}
	if got, want := tr.ExpiresOn, strconv.FormatInt(now.Add(2*time.Hour).Unix(), 10); got != want {
		t.Errorf("expires_on = %s, want %s (issue time + TokenLifetime, Unix seconds as a string)", got, want)
	}
	get := func() int {
		s, _, _ := do(t, hc, http.MethodGet, e.VaultURL()+"secrets/db-user?api-version=2026-04-01",
			map[string]string{"Authorization": "Bearer " + tr.AccessToken}, "")
		return s
	}
	if s := get(); s != 200 {
		t.Fatalf("fresh token: status %d", s)
	}
	mu.Lock()
	now = now.Add(2*time.Hour + time.Second)
	mu.Unlock()
	if s := get(); s != 401 {
		t.Errorf("expired token: status %d, want 401", s)
	}
}

func TestAuthorityEndpoints(t *testing.T) {
	e := start(t, kvemulator.Options{})
	hc := e.HTTPClient()
	base := e.AuthorityHost() + e.TenantID()

	t.Run("openid configuration", func(t *testing.T) {
		status, _, body := do(t, hc, http.MethodGet, base+"/v2.0/.well-known/openid-configuration", nil, "")
		var got struct {
			Issuer        string `json:"issuer"`
			TokenEndpoint string `json:"token_endpoint"`
			Authorization string `json:"authorization_endpoint"`
		}
		if err := json.Unmarshal(body, &got); status != 200 || err != nil {
			t.Fatalf("%d %s %v", status, body, err)
		}
		want := struct {
			Issuer        string `json:"issuer"`
			TokenEndpoint string `json:"token_endpoint"`
			Authorization string `json:"authorization_endpoint"`
		}{base + "/v2.0", base + "/oauth2/v2.0/token", base + "/oauth2/v2.0/authorize"}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("(-want +got):\n%s", d)
		}
	})

	good := url.Values{
		"grant_type":            {"client_credentials"},
		"client_id":             {"app-1"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {e.FederatedToken()},
		"scope":                 {"https://vault.azure.net/.default openid offline_access profile"},
	}
	with := func(k, v string) url.Values {
		u := url.Values{}
		for kk, vv := range good {
			u[kk] = vv
		}
		if v == "" {
			u.Del(k)
		} else {
			u.Set(k, v)
		}
		return u
	}
	tests := []struct {
		name    string
		tenant  string
		form    url.Values
		status  int
		errCode string
		aadsts  int
	}{
		{"accepted", e.TenantID(), good, 200, "", 0},
		{"wrong assertion", e.TenantID(), with("client_assertion", "x.y.z"), 400, "invalid_request", 70021},
		{"no assertion", e.TenantID(), with("client_assertion", ""), 400, "invalid_client", 7000216},
		{"wrong assertion type", e.TenantID(), with("client_assertion_type", "other"), 400, "invalid_request", 50027},
		{"password grant", e.TenantID(), with("grant_type", "password"), 400, "unsupported_grant_type", 70003},
		{"no client id", e.TenantID(), with("client_id", ""), 400, "invalid_request", 900144},
		{"scope without .default", e.TenantID(), with("scope", "https://vault.azure.net"), 400, "invalid_scope", 1002012},
		{"unknown tenant", "other-tenant", good, 400, "invalid_tenant", 90002},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := do(t, hc, http.MethodPost, e.AuthorityHost()+tc.tenant+"/oauth2/v2.0/token",
				map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, tc.form.Encode())
			if status != tc.status {
				t.Fatalf("status %d (%s), want %d", status, body, tc.status)
			}
			var got struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
				Codes       []int  `json:"error_codes"`
				AccessToken string `json:"access_token"`
				ExpiresIn   int    `json:"expires_in"`
			}
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			if tc.status == 200 {
				if got.AccessToken == "" || got.ExpiresIn < 3500 {
					t.Errorf("token answer %s: want a token valid about an hour", body)
				}
				return
			}
			if got.Error != tc.errCode || !strings.HasPrefix(got.Description, "AADSTS"+strconv.Itoa(tc.aadsts)+":") ||
				!cmp.Equal(got.Codes, []int{tc.aadsts}) {
				t.Errorf("error body %s, want %s AADSTS%d", body, tc.errCode, tc.aadsts)
			}
			if strings.Contains(string(body), e.FederatedToken()) {
				t.Error("error body echoes the federated token")
			}
		})
	}
}

func TestCertificateNamesLocalhost(t *testing.T) {
	e := start(t, kvemulator.Options{})
	port := e.VaultURL()[strings.LastIndex(e.VaultURL()[:len(e.VaultURL())-1], ":")+1 : len(e.VaultURL())-1]
	status, h, _ := do(t, e.HTTPClient(), http.MethodGet, "https://localhost:"+port+"/secrets/x?api-version=2026-04-01", nil, "")
	if status != 401 || h.Get("WWW-Authenticate") == "" {
		t.Errorf("via localhost: status %d, want the 401 challenge", status)
	}
	if _, err := http.Get(e.VaultURL()); err == nil {
		t.Error("the default client trusted the emulator's certificate")
	}
}

// TestConcurrentUse runs reads, writes and admin changes together, for the
// race detector.
func TestConcurrentUse(t *testing.T) {
	e := start(t, kvemulator.Options{Secrets: map[string]string{"db-user": "test-user-1"}})
	client := newSecretsClient(t, e, appServiceCredential(t, e))
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				if i == 0 {
					e.SetSecret("db-user", "test-user-"+strconv.Itoa(j))
					_ = e.DisableSecret("db-user")
					_ = e.EnableSecret("db-user")
					e.ResetRequests()
					continue
				}
				if _, err := client.GetSecret(t.Context(), "db-user", "", nil); err != nil {
					// A read may land between disable and enable.
					if !strings.Contains(err.Error(), "SecretDisabled") {
						errs <- err
					}
				}
				_ = e.Requests()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent read: %v", err)
	}
}

func TestIdentityFaults(t *testing.T) {
	e := start(t, kvemulator.Options{Secrets: map[string]string{"db-user": "test-user-1"}})
	tests := []struct {
		name       string
		fault      kvemulator.Fault
		wantStatus int
		wantRetry  string
	}{
		{"outage", kvemulator.Fault{Mode: kvemulator.FaultOutage}, 503, ""},
		{"throttle", kvemulator.Fault{Mode: kvemulator.FaultThrottle, RetryAfter: 9 * time.Second}, 429, "9"},
		{"identity not found", kvemulator.Fault{Mode: kvemulator.FaultForbidden}, 400, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.SetIdentityFault(tc.fault)
			defer e.SetIdentityFault(kvemulator.Fault{})
			t.Setenv("IDENTITY_ENDPOINT", e.IdentityEndpoint())
			t.Setenv("IDENTITY_HEADER", e.IdentityHeader())
			cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
				ID: azidentity.ClientID(uniqueClientID(t)),
				ClientOptions: azcore.ClientOptions{
					Transport: e.HTTPClient(),
					Retry:     policy.RetryOptions{MaxRetries: 1, RetryDelay: time.Millisecond, MaxRetryDelay: 10 * time.Millisecond},
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			_, err = newSecretsClient(t, e, cred).GetSecret(t.Context(), "db-user", "", nil)
			var afe *azidentity.AuthenticationFailedError
			if !errors.As(err, &afe) || afe.RawResponse == nil {
				t.Fatalf("error %v (%T), want *azidentity.AuthenticationFailedError with a response", err, err)
			}
			if afe.RawResponse.StatusCode != tc.wantStatus || afe.RawResponse.Header.Get("Retry-After") != tc.wantRetry {
				t.Errorf("token response %d Retry-After %q, want %d %q", afe.RawResponse.StatusCode,
					afe.RawResponse.Header.Get("Retry-After"), tc.wantStatus, tc.wantRetry)
			}
		})
	}

	t.Run("counted fault then success, vault unaffected", func(t *testing.T) {
		e.SetIdentityFault(kvemulator.Fault{Mode: kvemulator.FaultOutage, Count: 1})
		hc := e.HTTPClient()
		url := e.IdentityEndpoint() + "?api-version=2019-08-01&resource=https://vault.azure.net&client_id=count"
		hdr := map[string]string{"X-IDENTITY-HEADER": e.IdentityHeader()}
		var got []int
		for range 2 {
			s, _, _ := do(t, hc, http.MethodGet, url, hdr, "")
			got = append(got, s)
		}
		if d := cmp.Diff([]int{503, 200}, got); d != "" {
			t.Errorf("statuses (-want +got):\n%s", d)
		}
		e.SetIdentityFault(kvemulator.Fault{Mode: kvemulator.FaultOutage})
		defer e.SetIdentityFault(kvemulator.Fault{})
		if s, _, _ := do(t, hc, http.MethodGet, e.VaultURL()+"secrets/db-user?api-version=2026-04-01", nil, ""); s != 401 {
			t.Errorf("vault with an identity outage: %d, want the normal 401 challenge", s)
		}
		s, _, _ := do(t, hc, http.MethodPut, e.VaultURL()+"admin/identity-faults", nil, `{"mode":"none"}`)
		if s != 200 {
			t.Fatalf("admin identity-faults: %d", s)
		}
		if s, _, _ := do(t, hc, http.MethodGet, url, hdr, ""); s != 200 {
			t.Errorf("after clearing via admin: %d", s)
		}
	})
}
