package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/secretproxy/secretproxy/proto/secretproxytest"
)

// TestNoAzureSDK: the binary must not link the Azure SDK (go-mssqldb's azuread
// subpackage would pull it in). It checks the package list the build uses.
func TestNoAzureSDK(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the binary's dependencies: %v", err)
	}
	out, err := exec.CommandContext(t.Context(), goBin, "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 || !slices.Contains(deps, "github.com/microsoft/go-mssqldb") {
		t.Fatalf("go list -deps gave %d packages without go-mssqldb: the check would prove nothing", len(deps))
	}
	for _, p := range deps {
		lp := strings.ToLower(p)
		if strings.Contains(lp, "azure") || strings.Contains(lp, "azuread") || strings.Contains(lp, "microsoft-authentication-library") {
			t.Errorf("orderapp links %s", p)
		}
	}
}

func runCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), args, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

// TestCommands runs migrate, seed and export against SQLite with the database
// path served by a fake sidecar.
func TestCommands(t *testing.T) {
	dbFile := filepath.Join(t.TempDir(), "orders.db")
	// sqlite uses only db-name, but the app watches all four, as with every driver.
	sc := secretproxytest.Start(t, map[string]string{
		"db-server": "localhost", "db-user": "orders_app", "db-password": "test-password-1", "db-name": dbFile,
	})
	common := []string{"--sidecar", sc.Target(), "--db-driver", "sqlite", "--log-format", "text"}
	do := func(args ...string) string {
		t.Helper()
		stdout, stderr, err := runCmd(t, append(args[:1:1], append(common, args[1:]...)...)...)
		if err != nil {
			t.Fatalf("orderapp %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		return stdout
	}
	do("migrate")
	do("migrate") // a second run changes nothing
	do("seed", "--clients", "3", "--orders-per-client", "40", "--seed", "7")
	out := do("export", "--client", "2", "--format", "csv")
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"order_id", "client_id", "order_date", "status", "currency", "total_amount"}, rows[0]); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
	if len(rows) != 41 {
		t.Errorf("%d data rows, want 40", len(rows)-1)
	}
	for _, r := range rows[1:] {
		if r[1] != "2" {
			t.Errorf("row of client %s in client 2's export", r[1])
		}
	}
	js := do("export", "--client", "2", "--format", "json", "--from", "2024-01-01", "--to", "2024-12-31")
	for _, l := range strings.Split(strings.TrimSpace(js), "\n") {
		if !strings.HasPrefix(l, `{"orderId":`) || !strings.Contains(l, `"orderDate":"2024-`) {
			t.Errorf("unexpected JSON line %s", l)
		}
	}
	if got := sc.Calls("WatchSecrets"); got != 5 {
		t.Errorf("WatchSecrets calls = %d, want one per command (5)", got)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "missing command"},
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"serve", "--db-driver", "oracle"}, "unknown database driver"},
		{[]string{"migrate", "--secret-user", "db-password"}, "name the same secret"},
		{[]string{"migrate", "--secret-name", ""}, "--secret-name must not be empty"},
		{[]string{"migrate", "--sidecar", "http://x"}, "only unix:// or host:port"},
		{[]string{"seed", "--clients", "0"}, "clients must be between"},
		{[]string{"export", "--format", "xml"}, "--client must be a positive client id; --format"},
		{[]string{"export", "--client", "1"}, "--format is required: csv or json"},
		{[]string{"export", "--client", "1", "--format", "csv", "--from", "2026-02-30"}, "--from must be a date"},
		{[]string{"export", "--client", "1", "--format", "csv", "--from", "2026-02-01", "--to", "2026-01-01"}, "is after to"},
		{[]string{"export", "--client", "1", "--format", "csv", "--to", "0001-01-01"}, "--to must be a date"},
		{[]string{"migrate", "extra"}, "unexpected arguments"},
		{[]string{"migrate", "--log-level", "loud"}, "--log-level"},
		{[]string{"migrate", "--db-auth", "kerberos"}, `--db-auth "kerberos": use password or entra`},
		{[]string{"migrate", "--db-token-scope", "https://database.windows.net/.default"}, "--db-token-scope is for --db-auth entra only"},
		{[]string{"migrate", "--db-auth", "entra", "--db-token-scope", "https://database.windows.net/"}, "want a scope ending in /.default"},
		{[]string{"check"}, "--url must be the application's base URL"},
		{[]string{"check", "--url", "http://orders:80", "--client", "0", "--sidecar-ops", "ops"}, "--client must be a positive client id; --sidecar-ops must be host:port"},
		{[]string{"check", "--sidecar", "unix:///x"}, "flag provided but not defined: -sidecar"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, _, err := runCmd(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestConnectTimeout: a one-shot command gives up when the sidecar never answers.
func TestConnectTimeout(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "nobody.sock")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stderr bytes.Buffer
	err := run(ctx, []string{"migrate", "--sidecar", "unix://" + sock, "--db-driver", "sqlite", "--connect-timeout", "300ms"}, &bytes.Buffer{}, &stderr)
	if err == nil || !strings.Contains(err.Error(), "connect to the database") {
		t.Errorf("error = %v, want a connect failure", err)
	}
}

// flagDefaults runs "orderapp <cmd> -h" and reads the flag set's own listing:
// every flag the command takes, with its default ("" when it has none).
func flagDefaults(t *testing.T, cmd string) map[string]string {
	t.Helper()
	_, stderr, err := runCmd(t, cmd, "-h")
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("orderapp %s -h: %v, want flag.ErrHelp", cmd, err)
	}
	out := map[string]string{}
	name := ""
	for _, l := range strings.Split(stderr, "\n") {
		if f, ok := strings.CutPrefix(l, "  -"); ok {
			name, _, _ = strings.Cut(f, " ")
			out[name] = ""
			continue
		}
		if name == "" {
			continue
		}
		if _, def, ok := strings.Cut(l, "(default "); ok {
			out[name] = strings.Trim(strings.TrimSuffix(def, ")"), `"`)
		}
	}
	return out
}

// TestFlagDefaults pins the command line of docs/reference/orderapp.md: the flags of
// every subcommand and their defaults.
func TestFlagDefaults(t *testing.T) {
	common := map[string]string{
		"sidecar":            "127.0.0.1:50051",
		"sidecar-token-file": "",
		"db-driver":          "sqlserver",
		"db-auth":            "password",
		"db-token-scope":     "",
		"secret-server":      "db-server",
		"secret-user":        "db-user",
		"secret-password":    "db-password",
		"secret-name":        "db-name",
		"log-level":          "info",
		"log-format":         "json",
		"connect-timeout":    "2m0s",
	}
	with := func(extra map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range common {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		cmd  string
		want map[string]string
	}{
		{"serve", with(map[string]string{"listen": "127.0.0.1:8080"})},
		{"migrate", with(nil)},
		{"seed", with(map[string]string{"clients": "100", "orders-per-client": "20", "seed": "1"})},
		// --client and --format are required: no default.
		{"export", with(map[string]string{"client": "", "from": "", "to": "", "format": ""})},
		// check takes none of the common flags: no database, no sidecar socket.
		{"check", map[string]string{"url": "", "client": "1", "sidecar-ops": "", "secret": "", "timeout": "2m0s"}},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, flagDefaults(t, tt.cmd)); diff != "" {
				t.Errorf("flags of orderapp %s (-want +got):\n%s", tt.cmd, diff)
			}
		})
	}
}

// TestEnvironmentSetsFlags: ORDERAPP_<FLAG> sets a flag; the command line wins.
func TestEnvironmentSetsFlags(t *testing.T) {
	t.Setenv("ORDERAPP_DB_AUTH", "kerberos")
	if _, _, err := runCmd(t, "migrate"); err == nil || !strings.Contains(err.Error(), `--db-auth "kerberos"`) {
		t.Errorf("with ORDERAPP_DB_AUTH=kerberos: %v, want the --db-auth error", err)
	}
	_, _, err := runCmd(t, "migrate", "--db-auth", "entra", "--secret-name", "")
	if err == nil || strings.Contains(err.Error(), "--db-auth") || !strings.Contains(err.Error(), "--secret-name") {
		t.Errorf("with --db-auth entra on the command line: %v, want only the --secret-name error", err)
	}
}

// TestCommandsEntraSQLite: --db-auth entra with sqlite (no login) still asks
// the sidecar for a token per connection, of Azure SQL's scope, and needs no
// password secret (the fake sidecar has none).
func TestCommandsEntraSQLite(t *testing.T) {
	dbFile := filepath.Join(t.TempDir(), "orders.db")
	sc := secretproxytest.Start(t, map[string]string{"db-server": "localhost", "db-name": dbFile})
	sc.SetToken("https://database.windows.net/.default", "test-token-demo", time.Now().Add(time.Hour))
	_, stderr, err := runCmd(t, "migrate", "--sidecar", sc.Target(), "--db-driver", "sqlite", "--db-auth", "entra", "--log-format", "text")
	if err != nil {
		t.Fatalf("migrate: %v\n%s", err, stderr)
	}
	if n := sc.TokenCalls("https://database.windows.net/.default"); n < 1 {
		t.Errorf("token requests = %d, want at least one", n)
	}
	if !strings.Contains(stderr, "sqlite has no login") || strings.Contains(stderr, "test-token-demo") {
		t.Errorf("log should say sqlite has no login and never show the token:\n%s", stderr)
	}
}

// TestCheckCommand runs `orderapp check` against an HTTP server answering like
// the application behind its Service (the sidecar part is covered in
// internal/check, which resolves a headless Service).
func TestCheckCommand(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, `{"status":"ready"}`) })
	mux.HandleFunc("GET /api/v1/clients/3/orders", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"orders":[{"orderId":30,"clientId":3}]}`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	stdout, _, err := runCmd(t, "check", "--url", srv.URL, "--client", "3", "--timeout", "30s")
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	for _, want := range []string{"ok: application ready", "ok: client orders served", "1 orders", "check passed"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
}
