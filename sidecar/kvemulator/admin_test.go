package kvemulator_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/secretproxy/secretproxy/sidecar/kvemulator"
)

func TestAdminAPI(t *testing.T) {
	e := start(t, kvemulator.Options{Secrets: map[string]string{"db-user": "test-user-1"}})
	hc := e.HTTPClient()
	admin := e.VaultURL() + "admin/"

	tests := []struct {
		name, method, path, body string
		wantStatus               int
		wantCode                 string // error.code for failures
	}{
		{"set secret", http.MethodPut, "secrets/new-one", `{"value":"test-value-1","contentType":"text/plain","exp":1767225600,"nbf":1735689600,"tags":{"a":"b"}}`, 200, ""},
		{"set secret bad name", http.MethodPut, "secrets/bad_name", `{"value":"x"}`, 400, "BadParameter"},
		{"set secret too long name", http.MethodPut, "secrets/" + strings.Repeat("a", 128), `{"value":"x"}`, 400, "BadParameter"},
		{"set secret bad json", http.MethodPut, "secrets/new-one", `{"value":`, 400, "BadParameter"},
		{"set secret unknown field", http.MethodPut, "secrets/new-one", `{"value":"x","expires":1}`, 400, "BadParameter"},
		{"set secret without value", http.MethodPut, "secrets/new-one", `{"contentType":"text/plain"}`, 400, "BadParameter"},
		{"set secret value not a string", http.MethodPut, "secrets/new-one", `{"value":42}`, 400, "BadParameter"},
		{"set secret nbf after exp", http.MethodPut, "secrets/new-one", `{"value":"x","exp":10,"nbf":20}`, 400, "BadParameter"},
		{"set secret value too large", http.MethodPut, "secrets/new-one", `{"value":"` + strings.Repeat("x", 26*1024) + `"}`, 400, "BadParameter"},
		{"set secret two objects", http.MethodPut, "secrets/new-one", `{"value":"x"}{"value":"y"}`, 400, "BadParameter"},
		{"disable", http.MethodPost, "secrets/db-user/disable", "", 200, ""},
		{"enable", http.MethodPost, "secrets/db-user/enable", "", 200, ""},
		{"disable unknown", http.MethodPost, "secrets/nope/disable", "", 404, "SecretNotFound"},
		{"disable with GET", http.MethodGet, "secrets/db-user/disable", "", 405, "MethodNotAllowed"},
		{"delete unknown", http.MethodDelete, "secrets/nope", "", 404, "SecretNotFound"},
		{"fault throttle", http.MethodPut, "faults", `{"mode":"throttle","retryAfterSeconds":4}`, 200, ""},
		{"fault none", http.MethodPut, "faults", `{"mode":"none"}`, 200, ""},
		{"fault unknown mode", http.MethodPut, "faults", `{"mode":"explode"}`, 400, "BadParameter"},
		{"fault negative retry", http.MethodPut, "faults", `{"mode":"throttle","retryAfterSeconds":-1}`, 400, "BadParameter"},
		{"fault bad json", http.MethodPut, "faults", `mode=throttle`, 400, "BadParameter"},
		{"identity fault outage", http.MethodPut, "identity-faults", `{"mode":"outage","count":2}`, 200, ""},
		{"identity fault read", http.MethodGet, "identity-faults", "", 200, ""},
		{"identity fault none", http.MethodPut, "identity-faults", `{"mode":"none"}`, 200, ""},
		{"identity fault negative count", http.MethodPut, "identity-faults", `{"mode":"outage","count":-1}`, 400, "BadParameter"},
		{"faults with POST", http.MethodPost, "faults", `{"mode":"none"}`, 405, "MethodNotAllowed"},
		{"requests", http.MethodGet, "requests", "", 200, ""},
		{"unknown path", http.MethodGet, "nothing", "", 404, "NotFound"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := do(t, hc, tc.method, admin+tc.path, map[string]string{"Content-Type": "application/json"}, tc.body)
			if status != tc.wantStatus {
				t.Fatalf("status = %d (%s), want %d", status, body, tc.wantStatus)
			}
			if tc.wantCode == "" {
				return
			}
			var eb kvErrorBody
			if err := json.Unmarshal(body, &eb); err != nil {
				t.Fatalf("error body %q is not JSON: %v", body, err)
			}
			if eb.Error.Code != tc.wantCode || eb.Error.Message == "" {
				t.Errorf("error = %+v, want code %q and a message", eb.Error, tc.wantCode)
			}
		})
	}

	t.Run("effects", func(t *testing.T) {
		status, _, body := do(t, hc, http.MethodPut, admin+"secrets/db-user", nil, `{"value":"test-user-2"}`)
		if status != 200 {
			t.Fatalf("set: %d %s", status, body)
		}
		var set struct{ Name, Version, ID string }
		if err := json.Unmarshal(body, &set); err != nil || len(set.Version) != 32 {
			t.Fatalf("set answer %s: %v", body, err)
		}
		client := newSecretsClient(t, e, appServiceCredential(t, e))
		got, err := client.GetSecret(t.Context(), "db-user", "", nil)
		if err != nil || *got.Value != "test-user-2" || got.ID.Version() != set.Version {
			t.Fatalf("after admin set: %v, want version %s", err, set.Version)
		}

		do(t, hc, http.MethodPut, admin+"faults", nil, `{"mode":"throttle","retryAfterSeconds":7}`)
		_, err = client.GetSecret(t.Context(), "db-user", "", nil)
		if re := respErr(t, err); re.StatusCode != 429 || re.RawResponse.Header.Get("Retry-After") != "7" {
			t.Errorf("with throttle fault: %v", err)
		}
		do(t, hc, http.MethodPut, admin+"faults", nil, `{"mode":"none"}`)

		do(t, hc, http.MethodPost, admin+"secrets/db-user/disable", nil, "")
		_, err = client.GetSecret(t.Context(), "db-user", "", nil)
		if re := respErr(t, err); re.StatusCode != 403 || innerCode(decodeKVError(t, re.RawResponse)) != "SecretDisabled" {
			t.Errorf("after disable: %v", err)
		}
		do(t, hc, http.MethodDelete, admin+"secrets/db-user", nil, "")
		_, err = client.GetSecret(t.Context(), "db-user", "", nil)
		if re := respErr(t, err); re.StatusCode != 404 {
			t.Errorf("after delete: %v", err)
		}

		status, _, body = do(t, hc, http.MethodGet, admin+"requests", nil, "")
		var reqs []kvemulator.Request
		if err := json.Unmarshal(body, &reqs); status != 200 || err != nil {
			t.Fatalf("requests: %d %v", status, err)
		}
		kinds := map[string]int{}
		for _, r := range reqs {
			kinds[r.Kind]++
			if r.Time.IsZero() || r.Status == 0 || r.Method == "" || r.Path == "" {
				t.Errorf("incomplete request record %+v", r)
			}
		}
		for _, k := range []string{"vault", "token", "admin"} {
			if kinds[k] == 0 {
				t.Errorf("no %q request recorded in %v", k, kinds)
			}
		}
	})
}

func TestEmulatorMethodsOnUnknownSecrets(t *testing.T) {
	e := start(t, kvemulator.Options{})
	for name, err := range map[string]error{
		"disable": e.DisableSecret("nope"),
		"enable":  e.EnableSecret("nope"),
		"delete":  e.DeleteSecret("nope"),
	} {
		if !errors.Is(err, kvemulator.ErrSecretNotFound) {
			t.Errorf("%s: error %v, want ErrSecretNotFound", name, err)
		}
	}
}

func TestStartValidatesOptions(t *testing.T) {
	tests := []struct {
		name string
		opts kvemulator.Options
		want string // substring of the error
	}{
		{"wildcard vault address", kvemulator.Options{VaultAddr: "0.0.0.0:0"}, "not a loopback address"},
		{"empty host", kvemulator.Options{IdentityAddr: ":0"}, "not a loopback address"},
		{"routable address", kvemulator.Options{VaultAddr: "10.1.2.3:8443"}, "not a loopback address"},
		{"no port", kvemulator.Options{VaultAddr: "127.0.0.1"}, "not host:port"},
		{"bad secret name", kvemulator.Options{Secrets: map[string]string{"a b": "x"}}, "invalid secret name"},
		{"bad tenant", kvemulator.Options{TenantID: "a/b"}, "invalid tenant"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := kvemulator.Start(tc.opts)
			if err == nil {
				e.Close()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
	t.Run("localhost accepted", func(t *testing.T) {
		e := start(t, kvemulator.Options{VaultAddr: "localhost:0", IdentityAddr: "[::1]:0"})
		if !strings.HasPrefix(e.VaultURL(), "https://127.0.0.1:") && !strings.HasPrefix(e.VaultURL(), "https://[::1]:") {
			t.Errorf("vault URL %q", e.VaultURL())
		}
	})
}

func TestFaultModeNames(t *testing.T) {
	for _, m := range []kvemulator.FaultMode{kvemulator.FaultNone, kvemulator.FaultOutage, kvemulator.FaultThrottle, kvemulator.FaultForbidden} {
		got, err := kvemulator.ParseFaultMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseFaultMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	if _, err := kvemulator.ParseFaultMode("OUTAGE"); err == nil {
		t.Error("ParseFaultMode accepted OUTAGE")
	}
}

// TestSecretsNeverLogged drives every path that handles a value or a
// credential and searches the logs and the request log for them.
func TestSecretsNeverLogged(t *testing.T) {
	capture := newCapture()
	e := start(t, kvemulator.Options{
		Secrets: map[string]string{"db-password": "test-password-seeded"},
		Logger:  slog.New(capture),
	})
	hc := e.HTTPClient()
	client := newSecretsClient(t, e, appServiceCredential(t, e))
	if _, err := client.GetSecret(t.Context(), "db-password", "", nil); err != nil {
		t.Fatal(err)
	}
	e.SetSecret("db-password", "test-password-set-method")
	do(t, hc, http.MethodPut, e.VaultURL()+"admin/secrets/db-password", nil, `{"value":"test-password-admin"}`)
	// A malformed body that contains a value must not echo it either.
	_, _, badBody := do(t, hc, http.MethodPut, e.VaultURL()+"admin/secrets/db-password", nil, `{"value":"test-password-broken`)
	_, _, badType := do(t, hc, http.MethodPut, e.VaultURL()+"admin/secrets/db-password", nil, `{"value":"test-password-typed","tags":"test-password-tag"}`)
	_, _, bodyX := do(t, hc, http.MethodPut, e.VaultURL()+"admin/secrets/db-password", nil, `{"value":Xtest-password-syntax}`)
	if _, err := client.GetSecret(t.Context(), "db-password", "", nil); err != nil {
		t.Fatal(err)
	}
	_, _, reqs := do(t, hc, http.MethodGet, e.VaultURL()+"admin/requests", nil, "")
	// Close so shutdown logs are in too.
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	logs := capture.text()
	if !strings.Contains(logs, "db-password") {
		t.Fatalf("logs do not mention the secret name at all; is the logger wired? logs:\n%s", logs)
	}
	for _, leaked := range []string{
		"test-password-seeded", "test-password-set-method", "test-password-admin", "test-password-broken",
		"test-password-typed", "test-password-tag", "test-password-syntax", "kvemu.", e.IdentityHeader(), e.FederatedToken(),
	} {
		for where, text := range map[string]string{
			"logs": logs, "request log": string(reqs), "bad body answer": string(badBody),
			"bad type answer": string(badType), "syntax answer": string(bodyX),
		} {
			if strings.Contains(text, leaked) {
				t.Errorf("%s contain %q", where, leaked)
			}
		}
	}
}

func TestRequestsRecordsTimeFromClock(t *testing.T) {
	at := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	e := start(t, kvemulator.Options{Now: func() time.Time { return at }})
	do(t, e.HTTPClient(), http.MethodGet, e.VaultURL()+"secrets/x/?api-version=2026-04-01", nil, "")
	want := []kvemulator.Request{{Time: at, Method: "GET", Path: "/secrets/x/", Status: 401, Kind: "vault"}}
	if d := cmp.Diff(want, e.Requests()); d != "" {
		t.Errorf("requests (-want +got):\n%s", d)
	}
	e.ResetRequests()
	if got := e.Requests(); len(got) != 0 {
		t.Errorf("after reset: %v", got)
	}
}
