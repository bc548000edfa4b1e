package kvemulator_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/google/go-cmp/cmp"

	"github.com/secretproxy/secretproxy/sidecar/kvemulator"
)

const pgScope = "https://ossrdbms-aad.database.windows.net/.default"

// TestIssueNextAndLifetime: the real azidentity credentials get, for a
// database scope, exactly the queued tokens in order, then random ones, with
// the lifetime the admin set; a token queued for one resource is not issued
// for another (the vault's own token stays random).
func TestIssueNextAndLifetime(t *testing.T) {
	e := start(t, kvemulator.Options{})
	dir := t.TempDir()
	fed := filepath.Join(dir, "token")
	if err := os.WriteFile(fed, []byte(e.FederatedToken()), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AZURE_AUTHORITY_HOST", e.AuthorityHost())
	creds := map[string]func(t *testing.T) azcore.TokenCredential{
		"app service": func(t *testing.T) azcore.TokenCredential { return appServiceCredential(t, e) },
		"imds": func(t *testing.T) azcore.TokenCredential {
			for _, k := range []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT"} {
				t.Setenv(k, "")
			}
			c, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
				ID: azidentity.ClientID(uniqueClientID(t)), ClientOptions: azcore.ClientOptions{Transport: imdsClient(e)},
			})
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		"workload identity": func(t *testing.T) azcore.TokenCredential {
			c, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
				ClientOptions: azcore.ClientOptions{Transport: e.HTTPClient()},
				ClientID:      uniqueClientID(t), TenantID: e.TenantID(), TokenFilePath: fed, DisableInstanceDiscovery: true,
			})
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
	}
	for name, newCred := range creds {
		t.Run(name, func(t *testing.T) {
			// Under MSAL's 5-minute margin every GetToken goes to the endpoint.
			if err := e.SetTokenLifetime(4 * time.Minute); err != nil {
				t.Fatal(err)
			}
			if err := e.IssueNext("https://ossrdbms-aad.database.windows.net/", "test-token-"+strings.ReplaceAll(name, " ", "-")+"-1", "test-token-2"); err != nil {
				t.Fatal(err)
			}
			cred := newCred(t)
			var got []string
			for range 3 {
				start := time.Now()
				tok, err := cred.GetToken(t.Context(), policy.TokenRequestOptions{Scopes: []string{pgScope}})
				if err != nil {
					t.Fatalf("GetToken: %v", err)
				}
				got = append(got, tok.Token)
				if life := tok.ExpiresOn.Sub(start); life < 3*time.Minute || life > 4*time.Minute+time.Second {
					t.Errorf("lifetime %s, want about 4m", life)
				}
			}
			if got[0] != "test-token-"+strings.ReplaceAll(name, " ", "-")+"-1" || got[1] != "test-token-2" || !strings.HasPrefix(got[2], "kvemu.") {
				t.Errorf("tokens = %q, want the two queued ones then a random one", got)
			}
			vault, err := cred.GetToken(t.Context(), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
			if err != nil || !strings.HasPrefix(vault.Token, "kvemu.") {
				t.Errorf("vault token %v, want a random one", err)
			}
		})
	}
}

func TestAdminTokens(t *testing.T) {
	e := start(t, kvemulator.Options{})
	hc := e.HTTPClient()
	url := e.VaultURL() + "admin/tokens"
	for _, tc := range []struct {
		name, method, body string
		want               int
	}{
		{"set both", http.MethodPut, `{"lifetimeSeconds":120,"next":[{"resource":"https://database.windows.net/.default","token":"test-token-a"}]}`, 200},
		{"lifetime only", http.MethodPut, `{"lifetimeSeconds":90}`, 200},
		{"lifetime too long", http.MethodPut, `{"lifetimeSeconds":86401}`, 400},
		{"lifetime negative", http.MethodPut, `{"lifetimeSeconds":-1}`, 400},
		{"token with a space", http.MethodPut, `{"next":[{"resource":"https://database.windows.net","token":"a b"}]}`, 400},
		{"no resource", http.MethodPut, `{"next":[{"resource":"","token":"test-token-b"}]}`, 400},
		{"unknown field", http.MethodPut, `{"lifetime":90}`, 400},
		{"read", http.MethodGet, "", 200},
		{"delete", http.MethodDelete, "", 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := do(t, hc, tc.method, url, map[string]string{"Content-Type": "application/json"}, tc.body)
			if status != tc.want {
				t.Fatalf("status %d (%s), want %d", status, body, tc.want)
			}
			if strings.Contains(string(body), "test-token-a") {
				t.Errorf("answer shows a queued token: %s", body)
			}
		})
	}
	// The failed requests changed nothing: one token queued, lifetime 90 s.
	_, _, body := do(t, hc, http.MethodGet, url, nil, "")
	var st struct {
		LifetimeSeconds int64          `json:"lifetimeSeconds"`
		Queued          map[string]int `json:"queued"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"https://database.windows.net": 1}
	if st.LifetimeSeconds != 90 || !cmp.Equal(want, st.Queued) {
		t.Errorf("state = %+v, want lifetime 90 and %v", st, want)
	}
}
