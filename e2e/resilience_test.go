package e2e_test

import (
	"net/http"
	"sync"
	"testing"

	"github.com/secretproxy/secretproxy/e2e/pod"
)

// refreshSecretOK is the sidecar's count of RefreshSecret calls answered OK.
const refreshSecretOK = `grpc_server_handled_total{grpc_code="OK",grpc_method="RefreshSecret",grpc_service="secretproxy.v1.SecretService",grpc_type="unary"}`

// TestLoginFailureBurstCostsOneRefresh: the real sidecar and vault emulator.
// The password changes in the database only (the vault, and so the sidecar,
// stay stale) and the app's sessions are ended, so each request of a burst
// needs a new connection whose login fails. The burst costs the sidecar one
// refresh of the login (one RefreshSecret of the user, one of the password),
// not one per failing request, and every request answers a retryable 503.
func TestLoginFailureBurstCostsOneRefresh(t *testing.T) {
	p := startPod(t, podOptions{})
	before := metric(t, p.opsURL+"/metrics", refreshSecretOK)
	p.pg.SetPassword(t, dbUser, "test-password-not-in-the-vault")
	p.pg.Exec(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", dbUser)

	const burst = 16
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
			code, _, err := get(t.Context(), p.appURL+ordersPath)
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
		if code != http.StatusServiceUnavailable {
			t.Errorf("request in the burst answered %d, want 503", code)
		}
	}
	if got := metric(t, p.opsURL+"/metrics", refreshSecretOK) - before; got != 2 {
		t.Errorf("RefreshSecret calls for the burst = %v, want 2 (one refresh: user and password)\n%s", got, pod.Tail(p.app.Output(), 20))
	}
	assertNoSecretInOutput(t, p.app, "test-password-not-in-the-vault", dbPassword)
}
