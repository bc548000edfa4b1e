package e2e_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/secretproxy/secretproxy/e2e/pod"
)

const pgScope = "https://ossrdbms-aad.database.windows.net/.default"

// TestEntraPod runs the passwordless chain with every real part: kv-emulator
// issues the token it was told to, secret-proxy fetches it with the real
// azidentity managed identity credential and serves it over GetAccessToken,
// orderapp --db-auth entra logs in to a real PostgreSQL whose role's password
// is exactly that token. No password secret exists anywhere.
func TestEntraPod(t *testing.T) {
	const token = "test-token-e2e-entra-7f3a"
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	p := startPod(t, podOptions{entraToken: token})
	code, body, err := get(ctx, p.appURL+"/api/v1/clients/1/orders?limit=2")
	if err != nil || code != 200 || !strings.Contains(body, `"orderId"`) {
		t.Fatalf("orders: %d %v %s", code, err, body)
	}
	// One token fetched (the sidecar's prefetch) served every connection of
	// three processes.
	if got := metric(t, p.opsURL+"/metrics", `secretproxy_access_token_fetches_total{result="success",scope="`+pgScope+`"}`); got != 1 {
		t.Errorf("token fetches = %v, want 1", got)
	}
	for _, proc := range []*pod.Process{p.sidecar, p.app, p.emu.Process} {
		if strings.Contains(proc.Output(), token) {
			t.Errorf("%s printed the access token", proc.Name)
		}
	}
}
