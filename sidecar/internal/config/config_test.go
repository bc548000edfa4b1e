package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const minimal = `
vault:
  url: https://hermas-keys.vault.azure.net/
secrets:
  - name: db-password
`

func TestParseDefaults(t *testing.T) {
	got, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := Default()
	want.Vault.URL = "https://hermas-keys.vault.azure.net/"
	want.Secrets = []Secret{{Name: "db-password"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestParseFull(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := Config{
		Vault: Vault{URL: "https://hermas-keys.vault.azure.net/", DisableChallengeResourceVerification: true},
		Auth:  Auth{Mode: AuthManagedIdentity, ClientID: "11111111-2222-3333-4444-555555555555", DisableInstanceDiscovery: true},
		Secrets: []Secret{
			{Name: "db-server", VaultSecret: "sql-server-name"},
			{Name: "db-password", Version: "0123456789abcdef0123456789abcdef"},
			{Name: "extra-optional", Optional: true},
		},
		Refresh: Refresh{Interval: Duration(2 * time.Minute), Jitter: 0.2, MinInterval: Duration(5 * time.Second),
			MaxStale: Duration(time.Hour), RefuseExpired: true},
		Listen: Listen{GRPC: "", Reflection: true, Unix: "/var/run/secret-proxy/grpc.sock", Ops: "0.0.0.0:9090",
			MaxConnections: 64, OpsMaxConnections: 8},
		ClientAuth: ClientAuth{TokenFile: "/etc/secret-proxy/token", AllowedUIDs: []int{1000, 65532}},
		Log:        Log{Level: "debug", Format: "text"},
		AccessTokens: AccessTokens{
			Scopes:        []string{"https://database.windows.net/.default", "https://ossrdbms-aad.database.windows.net/.default"},
			RefreshBefore: Duration(10 * time.Minute),
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if got := got.Secrets[0].VaultName(); got != "sql-server-name" {
		t.Errorf("VaultName = %q, want sql-server-name", got)
	}
	if got := got.Secrets[1].VaultName(); got != "db-password" {
		t.Errorf("VaultName default = %q, want the declared name", got)
	}
}

// paths returns the YAML paths of a Problems error, in order.
// wantProblems checks that err holds exactly the problem paths want (nil: no
// error at all), and reports whether there is an error left to inspect.
func wantProblems(t *testing.T, err error, want []string) bool {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("unexpected problems: %v", err)
		}
		return false
	}
	if diff := cmp.Diff(want, paths(t, err)); diff != "" {
		t.Errorf("problem paths (-want +got):\n%s\nerror: %v", diff, err)
	}
	return true
}

func paths(t *testing.T, err error) []string {
	t.Helper()
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error %v (%T) is not Problems", err, err)
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Path
	}
	return out
}

func TestParseErrorsNameTheirPath(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"unknown top-level key", "vault: {url: https://x.vault.azure.net/}\nvalut: {}\n", []string{"valut"}},
		{"unknown nested keys all at once", `
vault: {url: https://x.vault.azure.net/, urll: x}
refresh: {intervall: 5m}
secrets:
  - name: a
    optinal: true
`, []string{"vault.urll", "refresh.intervall", "secrets[0].optinal"}},
		{"wrong types", `
refresh: {interval: five, jitter: lots, refuseExpired: maybe}
secrets: {name: a}
clientAuth: {allowedUIDs: [x]}
`, []string{"refresh.interval", "refresh.jitter", "refresh.refuseExpired", "secrets", "clientAuth.allowedUIDs[0]"}},
		{"unquoted number as string", "secrets:\n  - name: a\n    version: 1234\n", []string{"secrets[0].version"}},
		{"duplicate key", "log: {level: info, level: debug}\n", []string{"log.level"}},
		{"not a mapping", "- a\n- b\n", []string{"(root)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatal("Parse: no error")
			}
			if diff := cmp.Diff(tt.want, paths(t, err)); diff != "" {
				t.Errorf("problem paths (-want +got):\n%s\nerror: %v", diff, err)
			}
		})
	}
}

func TestParseInvalidYAML(t *testing.T) {
	_, err := Parse([]byte("vault: [\n"))
	if err == nil || !strings.Contains(err.Error(), "not valid YAML") {
		t.Fatalf("Parse = %v, want a 'not valid YAML' problem", err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	cfg := Default()
	cfg.Vault.URL = "http://x.vault.azure.net/"
	cfg.Auth.Mode = "magic"
	cfg.Secrets = []Secret{{Name: "ok"}, {Name: "bad name!"}, {Name: "ok"}, {Name: ""}, {Name: "v", VaultSecret: "no_underscores", Version: "x/y"}}
	cfg.Refresh.Interval = Duration(500 * time.Millisecond)
	cfg.Refresh.Jitter = 1.5
	cfg.Refresh.MinInterval = 0
	cfg.Refresh.MaxStale = Duration(-time.Second)
	cfg.Listen.GRPC = "0.0.0.0:50051"
	cfg.Listen.Unix = "relative.sock"
	cfg.Listen.Ops = "nope"
	cfg.ClientAuth.AllowedUIDs = []int{-1}
	cfg.Log = Log{Level: "loud", Format: "xml"}
	want := []string{
		"vault.url", "auth.mode", "secrets[1].name", "secrets[2].name", "secrets[3].name",
		"secrets[4].vaultSecret", "secrets[4].version",
		"refresh.interval", "refresh.jitter", "refresh.minInterval", "refresh.maxStale",
		"listen.grpc", "listen.unix", "listen.ops", "clientAuth.allowedUIDs[0]", "clientAuth.allowedUIDs", "log.level", "log.format",
	}
	if diff := cmp.Diff(want, paths(t, cfg.Validate())); diff != "" {
		t.Errorf("problem paths (-want +got):\n%s", diff)
	}
}

func TestValidateListen(t *testing.T) {
	tests := []struct {
		name   string
		listen Listen
		uids   []int
		want   []string
	}{
		{"loopback v4", Listen{GRPC: "127.0.0.1:50051"}, nil, nil},
		{"loopback v6", Listen{GRPC: "[::1]:50051"}, nil, nil},
		{"localhost", Listen{GRPC: "localhost:50051"}, nil, nil},
		{"wildcard refused", Listen{GRPC: ":50051"}, nil, []string{"listen.grpc"}},
		{"routable refused", Listen{GRPC: "10.0.0.5:50051"}, nil, []string{"listen.grpc"}},
		{"routable allowed", Listen{GRPC: "0.0.0.0:50051", AllowNonLoopback: true}, nil, nil},
		{"unix only", Listen{Unix: "/run/sp/grpc.sock"}, nil, nil},
		{"nothing serves", Listen{}, nil, []string{"listen"}},
		{"uids need the socket", Listen{GRPC: "127.0.0.1:1"}, []int{1000}, []string{"clientAuth.allowedUIDs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Default()
			cfg.Vault.URL = "https://x.vault.azure.net/"
			cfg.Secrets = []Secret{{Name: "a"}}
			tt.listen.MaxConnections, tt.listen.OpsMaxConnections = defaultMaxConnections, defaultOpsMaxConnections
			cfg.Listen = tt.listen
			cfg.ClientAuth.AllowedUIDs = tt.uids
			err := cfg.Validate()
			wantProblems(t, err, tt.want)
		})
	}
}

func TestOverrides(t *testing.T) {
	cfg := Default()
	vault, empty, level := "https://other.vault.azure.net/", "", "debug"
	Overrides{VaultURL: &vault, GRPCListen: &empty, LogLevel: &level}.Apply(&cfg)
	if cfg.Vault.URL != vault || cfg.Listen.GRPC != "" || cfg.Log.Level != "debug" || cfg.Listen.Ops != "0.0.0.0:9090" {
		t.Errorf("after Apply: vault %q grpc %q level %q ops %q", cfg.Vault.URL, cfg.Listen.GRPC, cfg.Log.Level, cfg.Listen.Ops)
	}
}

func TestLoadFileMissing(t *testing.T) {
	_, err := LoadFile(filepath.Join(t.TempDir(), "absent.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LoadFile = %v, want ErrNotExist", err)
	}
}

// TestChartRenderedConfig parses the configuration in the shape the Helm
// chart renders it, so that a change on either side is caught.
func TestChartRenderedConfig(t *testing.T) {
	cfg, err := LoadFile(filepath.Join("testdata", "chart-rendered.yaml"))
	if err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if cfg.Listen.GRPC != "" || cfg.Listen.Unix != "/var/run/secret-proxy/grpc.sock" || cfg.Auth.Mode != AuthWorkloadIdentity ||
		!cmp.Equal(cfg.ClientAuth.AllowedUIDs, []int{1000}) || cfg.Refresh.MinInterval.D() != 10*time.Second {
		t.Errorf("unexpected result: %+v", cfg)
	}
}
