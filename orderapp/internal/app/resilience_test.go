package app_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/secretproxy/secretproxy/orderapp/internal/poll"
	"github.com/secretproxy/secretproxy/orderapp/pgtest"
)

// errorJSON is the API's error shape; readyz adds a reason.
type errorJSON struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Reason  string `json:"reason"`
	} `json:"error"`
}

// readyzReason polls /readyz until it answers 503 with a reason and returns it.
func (h *harness) waitUnready(t *testing.T, reason string) errorJSON {
	t.Helper()
	var got errorJSON
	var last string
	poll.Until(t, "/readyz 503 with reason "+reason, func() bool {
		code, body, err := h.getBody(t.Context(), "/readyz")
		last = body
		if err != nil || code != http.StatusServiceUnavailable {
			return false
		}
		got = errorJSON{}
		return json.Unmarshal([]byte(body), &got) == nil && got.Error.Reason == reason
	})
	if got.Error.Code != "unavailable" || got.Error.Message == "" {
		t.Errorf("/readyz body %s: want code unavailable and a message", last)
	}
	t.Logf("/readyz: %s", strings.TrimSpace(last))
	assertNoSecrets(t, h, last, "/readyz")
	for _, v := range []string{appUser, h.pg.Addr(), database + `"`} {
		if strings.Contains(last, v) {
			t.Errorf("/readyz holds the credential value %q: %s", v, last)
		}
	}
	return got
}

// TestFirstCredentialsRetriedUntilRoleExists: the sidecar serves a login the
// database does not know yet (the role is created a minute later). The
// application keeps trying the same credential set with back-off, says why in
// /readyz, and becomes ready once the role exists, with no new version from
// the sidecar.
func TestFirstCredentialsRetriedUntilRoleExists(t *testing.T) {
	pg := pgtest.Start(t)
	h := startApp(t, pg, pw1)
	h.waitUnready(t, "credentials_rejected")
	if code, err := h.get(t.Context(), "/livez"); err != nil || code != http.StatusOK {
		t.Errorf("/livez: %d %v, want 200", code, err)
	}
	watches := h.sc.Calls("WatchSecrets")
	createOrders(t, pg)
	h.waitReady(t)
	if code, err := h.get(t.Context(), "/api/v1/clients/1/orders"); err != nil || code != http.StatusOK {
		t.Errorf("API once the role exists: %d %v", code, err)
	}
	if got := h.sc.Calls("WatchSecrets"); got != watches {
		t.Errorf("WatchSecrets calls went from %d to %d: the same set should have been retried, not re-read", watches, got)
	}
	if got := rotations(t, h.app.Registry(), "failure"); got < 1 {
		t.Errorf("rotation failures = %v, want at least 1", got)
	}
	assertNoSecrets(t, h, h.logs.String(), "the log")
}

// TestFirstCredentialsRetriedUntilDatabaseStarts: the database is down when
// the application starts; it is ready once the database is up.
func TestFirstCredentialsRetriedUntilDatabaseStarts(t *testing.T) {
	pg := pgtest.Start(t)
	createOrders(t, pg)
	pg.Stop(t)
	h := startApp(t, pg, pw1)
	h.waitUnready(t, "database_unreachable")
	pg.Restart(t)
	h.waitReady(t)
	if code, err := h.get(t.Context(), "/api/v1/orders/101"); err != nil || code != http.StatusOK {
		t.Errorf("API once the database is up: %d %v", code, err)
	}
}

// TestDatabaseOutageIs503: requests during a database outage answer 503 in
// the JSON error shape (retryable), not 500; /livez stays 200; after the
// outage the same pool serves again.
func TestDatabaseOutageIs503(t *testing.T) {
	h := start(t, pw1)
	h.waitReady(t)
	h.pg.Stop(t)
	for _, p := range []string{"/api/v1/clients/1/orders", "/api/v1/orders/101", "/api/v1/clients/1/summary", "/readyz"} {
		code, body, err := h.getBody(t.Context(), p)
		var e errorJSON
		if err != nil || code != http.StatusServiceUnavailable || json.Unmarshal([]byte(body), &e) != nil || e.Error.Code != "unavailable" {
			t.Errorf("%s during the outage: %d %s %v, want 503 with code unavailable", p, code, body, err)
		}
		assertNoSecrets(t, h, body, p)
	}
	if code, err := h.get(t.Context(), "/livez"); err != nil || code != http.StatusOK {
		t.Errorf("/livez during the outage: %d %v, want 200", code, err)
	}
	h.pg.Restart(t)
	h.waitReady(t)
	if code, err := h.get(t.Context(), "/api/v1/clients/1/summary"); err != nil || code != http.StatusOK {
		t.Errorf("API after the outage: %d %v", code, err)
	}
}

// TestLoginFailureBurstRefreshesOnce: the password changed in the database
// under a live pool whose idle connections are gone, and many requests arrive
// at once: each needs a new connection and each login fails. The burst costs
// one refresh (one RefreshSecret of the user and one of the password), whether
// the vault has the new password (every request then succeeds on the new
// pool) or is stale too (every request gets a retryable 503).
func TestLoginFailureBurstRefreshesOnce(t *testing.T) {
	const burst = 16
	tests := []struct {
		name       string
		vaultHasPW bool
		want       int
	}{
		{"vault has the new password", true, http.StatusOK},
		{"vault is stale too", false, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, pw1)
			h.waitReady(t)
			if tt.vaultHasPW {
				h.sc.SetVault("db-password", pw2)
			}
			h.pg.SetPassword(t, appUser, pw2)
			h.app.Manager().DB().SetMaxIdleConns(0) // every request needs a new connection, which must log in
			before := h.sc.Calls("RefreshSecret")

			codes := make(chan int, burst)
			var ready, wg sync.WaitGroup
			ready.Add(burst)
			fire := make(chan struct{})
			for range burst {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ready.Done()
					<-fire
					code, err := h.get(t.Context(), "/api/v1/clients/1/summary")
					if err != nil {
						t.Errorf("request: %v", err)
					}
					codes <- code
				}()
			}
			ready.Wait()
			close(fire)
			wg.Wait()
			close(codes)
			for code := range codes {
				if code != tt.want {
					t.Errorf("request in the burst answered %d, want %d", code, tt.want)
				}
			}
			if got := h.sc.Calls("RefreshSecret") - before; got != 2 {
				t.Errorf("RefreshSecret calls for the burst = %d, want 2 (one refresh: user and password)", got)
			}
			assertNoSecrets(t, h, h.logs.String(), "the log")
		})
	}
}
