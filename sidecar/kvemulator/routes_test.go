package kvemulator_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/secretproxy/secretproxy/sidecar/kvemulator"
)

// TestRoutes pins the answer of every route of both listeners, the wrong methods and unknown
// paths included: status, error shape (Key Vault's {"error":{"code"}} on the vault and admin
// paths, OAuth's {"error":"..."} on the token endpoints) and the kind the request log records.
// The vault's order is Key Vault's: the bearer challenge and the api-version check answer
// before the path is looked at, so an unknown path without a token is a 401, not a 404.
func TestRoutes(t *testing.T) {
	e := start(t, kvemulator.Options{Secrets: map[string]string{"db-user": "test-user-1"}})
	ver := e.SetSecret("db-user", "test-user-2")
	hc := e.HTTPClient()
	status, _, body := do(t, hc, http.MethodGet, e.IdentityEndpoint()+"?api-version=2019-08-01&resource=https://vault.azure.net&client_id=routes",
		map[string]string{"X-IDENTITY-HEADER": e.IdentityHeader()}, "")
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tr); status != 200 || err != nil {
		t.Fatalf("token: %d %s %v", status, body, err)
	}
	bearer := map[string]string{"Authorization": "Bearer " + tr.AccessToken, "Content-Type": "application/json"}
	const api = "?api-version=2026-04-01"
	vault := strings.TrimSuffix(e.VaultURL(), "/")
	identity := "http://" + e.IdentityAddr()
	tenant := e.TenantID()

	tests := []struct {
		name, method, url, body string
		hdr                     map[string]string
		wantStatus              int
		wantCode                string // Key Vault error.code, or OAuth error; "" for a success or a HEAD
		oauth                   bool   // the error body is OAuth's
		wantKind                string
	}{
		{"list", "GET", vault + "/secrets" + api, "", bearer, 200, "", false, "vault"},
		{"list, trailing slash", "GET", vault + "/secrets/" + api, "", bearer, 200, "", false, "vault"},
		{"list with POST", "POST", vault + "/secrets" + api, "", bearer, 405, "MethodNotAllowed", false, "vault"},
		{"get latest", "GET", vault + "/secrets/db-user" + api, "", bearer, 200, "", false, "vault"},
		{"get latest, trailing slash (azsecrets, empty version)", "GET", vault + "/secrets/db-user/" + api, "", bearer, 200, "", false, "vault"},
		{"get a version", "GET", vault + "/secrets/db-user/" + ver + api, "", bearer, 200, "", false, "vault"},
		{"get an unknown version", "GET", vault + "/secrets/db-user/0123" + api, "", bearer, 404, "SecretNotFound", false, "vault"},
		{"get an unknown secret", "GET", vault + "/secrets/nope" + api, "", bearer, 404, "SecretNotFound", false, "vault"},
		{"get a bad name", "GET", vault + "/secrets/bad_name" + api, "", bearer, 400, "BadParameter", false, "vault"},
		{"set", "PUT", vault + "/secrets/new-one" + api, `{"value":"test-value-9"}`, bearer, 200, "", false, "vault"},
		{"set a bad name", "PUT", vault + "/secrets/bad_name" + api, `{"value":"x"}`, bearer, 400, "BadParameter", false, "vault"},
		{"delete a secret", "DELETE", vault + "/secrets/db-user" + api, "", bearer, 405, "MethodNotAllowed", false, "vault"},
		{"HEAD a secret", "HEAD", vault + "/secrets/db-user" + api, "", bearer, 405, "", false, "vault"},
		{"versions", "GET", vault + "/secrets/db-user/versions" + api, "", bearer, 200, "", false, "vault"},
		{"versions of an unknown secret", "GET", vault + "/secrets/nope/versions" + api, "", bearer, 404, "SecretNotFound", false, "vault"},
		{"versions with POST", "POST", vault + "/secrets/db-user/versions" + api, "", bearer, 405, "MethodNotAllowed", false, "vault"},
		{"set a version", "PUT", vault + "/secrets/db-user/" + ver + api, `{"value":"x"}`, bearer, 405, "MethodNotAllowed", false, "vault"},
		{"too deep", "GET", vault + "/secrets/db-user/" + ver + "/more" + api, "", bearer, 404, "NotFound", false, "vault"},
		{"too deep, no token: the challenge first", "GET", vault + "/secrets/a/b/c" + api, "", nil, 401, "Unauthorized", false, "vault"},
		{"wrong method, no token: the challenge first", "DELETE", vault + "/secrets/db-user" + api, "", nil, 401, "Unauthorized", false, "vault"},
		{"too deep, no api-version", "GET", vault + "/secrets/a/b/c", "", bearer, 400, "BadParameter", false, "vault"},

		{"openid configuration", "GET", vault + "/" + tenant + "/v2.0/.well-known/openid-configuration", "", nil, 200, "", false, "token"},
		{"openid configuration with POST", "POST", vault + "/" + tenant + "/v2.0/.well-known/openid-configuration", "", nil, 405, "invalid_request", true, "token"},
		{"token endpoint with GET", "GET", vault + "/" + tenant + "/oauth2/v2.0/token", "", nil, 405, "invalid_request", true, "token"},
		{"unknown path", "GET", vault + "/other", "", nil, 404, "NotFound", false, "token"},
		{"root", "GET", vault + "/", "", nil, 404, "NotFound", false, "token"},
		{"authority too deep", "GET", vault + "/" + tenant + "/oauth2/v2.0/token/x", "", nil, 404, "NotFound", false, "token"},

		{"admin requests", "GET", vault + "/admin/requests", "", nil, 200, "", false, "admin"},
		{"admin requests with PATCH", "PATCH", vault + "/admin/requests", "", nil, 405, "MethodNotAllowed", false, "admin"},
		{"admin requests, trailing slash", "GET", vault + "/admin/requests/", "", nil, 200, "", false, "admin"},
		{"admin enable, trailing slash", "POST", vault + "/admin/secrets/db-user/enable/", "", nil, 200, "", false, "admin"},
		{"admin rate limit", "GET", vault + "/admin/rate-limit", "", nil, 200, "", false, "admin"},
		{"admin tokens with DELETE", "DELETE", vault + "/admin/tokens", "", nil, 405, "MethodNotAllowed", false, "admin"},
		{"admin faults", "GET", vault + "/admin/faults", "", nil, 200, "", false, "admin"},
		{"admin secret with GET", "GET", vault + "/admin/secrets/db-user", "", nil, 405, "MethodNotAllowed", false, "admin"},
		{"admin secret bad name", "PUT", vault + "/admin/secrets/bad_name", `{"value":"x"}`, nil, 400, "BadParameter", false, "admin"},
		{"admin secret bad name, wrong method: the name first", "GET", vault + "/admin/secrets/bad_name", "", nil, 400, "BadParameter", false, "admin"},
		{"admin unknown action", "POST", vault + "/admin/secrets/db-user/rotate", "", nil, 404, "NotFound", false, "admin"},
		{"admin root", "GET", vault + "/admin", "", nil, 404, "NotFound", false, "admin"},
		{"admin root, slash", "GET", vault + "/admin/", "", nil, 404, "NotFound", false, "admin"},

		{"app service with POST", "POST", identity + "/msi/token", "", nil, 405, "invalid_request", true, "token"},
		{"IMDS with POST", "POST", identity + "/metadata/identity/oauth2/token", "", nil, 405, "invalid_request", true, "token"},
		{"identity unknown path", "GET", identity + "/other", "", nil, 404, "invalid_request", true, "token"},
		{"HEAD app service", "HEAD", identity + "/msi/token", "", nil, 405, "", true, "token"},
		{"HEAD IMDS", "HEAD", identity + "/metadata/identity/oauth2/token", "", nil, 405, "", true, "token"},
		{"HEAD openid configuration", "HEAD", vault + "/" + tenant + "/v2.0/.well-known/openid-configuration", "", nil, 405, "", false, "token"},
		{"HEAD unknown path", "HEAD", vault + "/other", "", nil, 404, "", false, "token"},
		{"HEAD versions", "HEAD", vault + "/secrets/db-user/versions" + api, "", bearer, 405, "", false, "vault"},
		{"HEAD list", "HEAD", vault + "/secrets" + api, "", bearer, 405, "", false, "vault"},
		{"versions, trailing slash", "GET", vault + "/secrets/db-user/versions/" + api, "", bearer, 200, "", false, "vault"},
		{"get a version, trailing slash", "GET", vault + "/secrets/db-user/" + ver + "/" + api, "", bearer, 200, "", false, "vault"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.ResetRequests()
			status, _, body := do(t, hc, tc.method, tc.url, tc.hdr, tc.body)
			if status != tc.wantStatus {
				t.Fatalf("status = %d (%s), want %d", status, body, tc.wantStatus)
			}
			if tc.wantCode != "" {
				var got string
				if tc.oauth {
					var b struct {
						Error string `json:"error"`
					}
					if err := json.Unmarshal(body, &b); err != nil {
						t.Fatalf("body %s is not an OAuth error: %v", body, err)
					}
					got = b.Error
				} else {
					var b kvErrorBody
					if err := json.Unmarshal(body, &b); err != nil {
						t.Fatalf("body %s is not a Key Vault error: %v", body, err)
					}
					got = b.Error.Code
				}
				if got != tc.wantCode {
					t.Errorf("error code = %q (%s), want %q", got, body, tc.wantCode)
				}
			}
			reqs := e.Requests()
			if len(reqs) != 1 || reqs[0].Kind != tc.wantKind || reqs[0].Status != tc.wantStatus || reqs[0].Method != tc.method {
				t.Errorf("request log = %+v, want one %s request of kind %q with status %d", reqs, tc.method, tc.wantKind, tc.wantStatus)
			}
		})
	}
}
