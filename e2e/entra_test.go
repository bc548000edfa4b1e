package e2e_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secretproxy/secretproxy/e2e/pod"
	"github.com/secretproxy/secretproxy/orderapp/pgtest"
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
	pg := pgtest.Start(t)
	pg.CreateRole(t, dbUser, token)
	pg.CreateDatabase(t, dbName, dbUser)

	dir := shortDir(t)
	emu, err := pod.StartEmulator(ctx, bins.KVEmulator, dir, "127.0.0.1:0", map[string]string{
		"sql-server-name": pg.Addr(), "sql-user": dbUser, "sql-database": dbName,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopOrReport(t, emu.Process) })
	if err := emu.IssueNext(ctx, pgScope, token); err != nil {
		t.Fatal(err)
	}

	socket := filepath.Join(dir, "grpc.sock")
	cfgFile := filepath.Join(dir, "secret-proxy.yaml")
	opsAddr := mustFreeAddr(t)
	cfg := pod.SidecarConfig{
		VaultURL: emu.VaultURL, Unix: socket, Ops: opsAddr, LogLevel: "debug",
		Secrets: []pod.SecretDecl{
			{Name: "db-server", VaultSecret: "sql-server-name"},
			{Name: "db-user", VaultSecret: "sql-user"},
			{Name: "db-name", VaultSecret: "sql-database"},
		},
		AccessTokenScopes: []string{pgScope},
	}
	if err := cfg.WriteFile(cfgFile); err != nil {
		t.Fatal(err)
	}
	sidecar := startReady(t, ctx, emu.SidecarSpec(bins.SecretProxy, cfgFile), "http://"+opsAddr+"/readyz")

	args := []string{"--sidecar", "unix://" + socket, "--db-driver", "postgres", "--db-auth", "entra"}
	for _, cmd := range [][]string{{"migrate"}, {"seed", "--clients", "5", "--orders-per-client", "4"}} {
		if err := pod.Run(ctx, pod.Spec{Name: "orderapp " + cmd[0], Path: bins.OrderApp, Args: append(cmd, args...)}); err != nil {
			t.Fatal(err)
		}
	}
	appAddr := mustFreeAddr(t)
	app := startReady(t, ctx, pod.Spec{Name: "orderapp", Path: bins.OrderApp, Args: append([]string{"serve", "--listen", appAddr}, args...)},
		"http://"+appAddr+"/readyz")
	code, body, err := get(ctx, "http://"+appAddr+"/api/v1/clients/1/orders?limit=2")
	if err != nil || code != 200 || !strings.Contains(body, `"orderId"`) {
		t.Fatalf("orders: %d %v %s", code, err, body)
	}
	// One token fetched (the sidecar's prefetch) served every connection of
	// three processes.
	if got := metric(t, "http://"+opsAddr+"/metrics", `secretproxy_access_token_fetches_total{result="success",scope="`+pgScope+`"}`); got != 1 {
		t.Errorf("token fetches = %v, want 1", got)
	}
	for _, p := range []*pod.Process{sidecar, app, emu.Process} {
		if strings.Contains(p.Output(), token) {
			t.Errorf("%s printed the access token", p.Name)
		}
	}
}
