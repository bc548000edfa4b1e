package config

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// valid returns a configuration that passes Validate, for tests to break one field of.
func valid() Config {
	cfg := Default()
	cfg.Vault.URL = "https://x.vault.azure.net/"
	cfg.Secrets = []Secret{{Name: "a"}}
	return cfg
}

// TestValidateRanges checks what each field can hold, not only its type:
// non-finite and out-of-range numbers, credentials in the vault URL, a
// maxStale that leaves no stale window, the bounds on the pod's size.
func TestValidateRanges(t *testing.T) {
	many := make([]Secret, MaxSecrets+1)
	for i := range many {
		many[i] = Secret{Name: "s" + strings.Repeat("x", i%100) + string(rune('a'+i%26)) + string(rune('a'+i/26))}
	}
	tests := []struct {
		name string
		mod  func(*Config)
		want []string
	}{
		{"valid", func(*Config) {}, nil},
		{"jitter NaN", func(c *Config) { c.Refresh.Jitter = math.NaN() }, []string{"refresh.jitter"}},
		{"jitter +Inf", func(c *Config) { c.Refresh.Jitter = math.Inf(1) }, []string{"refresh.jitter"}},
		{"jitter -Inf", func(c *Config) { c.Refresh.Jitter = math.Inf(-1) }, []string{"refresh.jitter"}},
		{"interval beyond a day", func(c *Config) { c.Refresh.Interval = Duration(25 * time.Hour) }, []string{"refresh.interval"}},
		{"maxStale inside one interval", func(c *Config) { c.Refresh.MaxStale = Duration(5 * time.Minute) }, []string{"refresh.maxStale"}},
		{"maxStale just beyond one interval", func(c *Config) { c.Refresh.MaxStale = Duration(301 * time.Second) }, nil},
		{"vault url with user and password", func(c *Config) { c.Vault.URL = "https://admin:hunter2@x.vault.azure.net/" }, []string{"vault.url"}},
		{"vault url with user only", func(c *Config) { c.Vault.URL = "https://admin@x.vault.azure.net/" }, []string{"vault.url"}},
		{"vault url with a query", func(c *Config) { c.Vault.URL = "https://x.vault.azure.net/?sig=abc" }, []string{"vault.url"}},
		{"vault url unparsable", func(c *Config) { c.Vault.URL = "https://x.vault.azure.net:port/" }, []string{"vault.url"}},
		{"vault url unparsable with credentials", func(c *Config) { c.Vault.URL = "https://admin:hunter2@x.vault.azure.net:port/" }, []string{"vault.url"}},
		{"vault url with credentials over http", func(c *Config) { c.Vault.URL = "http://admin:hunter2@x.vault.azure.net/" }, []string{"vault.url"}},
		{"uid beyond 32 bits", func(c *Config) {
			c.Listen.GRPC, c.Listen.Unix, c.ClientAuth.AllowedUIDs = "", "/run/sp/grpc.sock", []int{1 << 32}
		}, []string{"clientAuth.allowedUIDs[0]"}},
		{"too many secrets", func(c *Config) { c.Secrets = many }, []string{"secrets"}},
		{"unix path too long for a socket", func(c *Config) { c.Listen.Unix = "/" + strings.Repeat("d", 120) + "/grpc.sock" }, []string{"listen.unix"}},
		{"token file relative", func(c *Config) { c.ClientAuth.TokenFile = "token" }, []string{"clientAuth.tokenFile"}},
		{"negative connections", func(c *Config) { c.Listen.MaxConnections = -1 }, []string{"listen.maxConnections"}},
		{"zero connections reads as the default", func(c *Config) { c.Listen.MaxConnections, c.Listen.OpsMaxConnections = 0, 0 }, nil},
		{"too many connections", func(c *Config) { c.Listen.MaxConnections = maxConnectionsLimit + 1 }, []string{"listen.maxConnections"}},
		{"no ops connections allowed", func(c *Config) { c.Listen.OpsMaxConnections = -1 }, []string{"listen.opsMaxConnections"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			tt.mod(&cfg)
			err := cfg.Validate()
			if !wantProblems(t, err, tt.want) {
				return
			}
			// Credentials in the URL never reach an error (and so never a log).
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "admin") || strings.Contains(err.Error(), "sig=abc") {
				t.Errorf("error repeats the URL's credentials: %v", err)
			}
		})
	}
}

// TestParseNonFinite: YAML's .nan and .inf reach Validate and are refused there.
func TestParseNonFinite(t *testing.T) {
	for _, v := range []string{".nan", ".inf", "-.inf"} {
		t.Run(v, func(t *testing.T) {
			cfg, err := Parse([]byte("vault: {url: https://x.vault.azure.net/}\nsecrets: [{name: a}]\nrefresh: {jitter: " + v + "}\n"))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff([]string{"refresh.jitter"}, paths(t, cfg.Validate())); diff != "" {
				t.Errorf("problem paths (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAllowedUIDsOverTCP: allowedUIDs restricts the unix socket only; with
// the TCP listener on too, any process of the pod would read every secret over
// 127.0.0.1, so the combination needs the bearer token.
func TestAllowedUIDsOverTCP(t *testing.T) {
	tests := []struct {
		name  string
		grpc  string
		token string
		want  []string
	}{
		{"uids and TCP without a token", "127.0.0.1:50051", "", []string{"clientAuth.allowedUIDs"}},
		{"uids and TCP with a token", "127.0.0.1:50051", "/etc/sp/token", nil},
		{"uids with TCP off", "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			cfg.Listen.GRPC, cfg.Listen.Unix = tt.grpc, "/run/sp/grpc.sock"
			cfg.ClientAuth.AllowedUIDs, cfg.ClientAuth.TokenFile = []int{1000}, tt.token
			err := cfg.Validate()
			if !wantProblems(t, err, tt.want) {
				return
			}
			for _, hint := range []string{"listen.grpc", "clientAuth.tokenFile"} {
				if !strings.Contains(err.Error(), hint) {
					t.Errorf("message does not say to change %s: %v", hint, err)
				}
			}
		})
	}
}

// TestParseSyntaxErrorAlone: a YAML syntax error is the only problem reported.
func TestParseSyntaxErrorAlone(t *testing.T) {
	_, err := Parse([]byte("vault: {url: https://x.vault.azure.net/\nsecrets: [\n"))
	if !isSyntaxError(err) {
		t.Fatalf("Parse = %v, want a syntax error", err)
	}
	if !strings.Contains(err.Error(), "not valid YAML") {
		t.Errorf("error %q does not say the YAML is invalid", err)
	}
	_, err = Parse([]byte("valut: {}\n"))
	if err == nil || isSyntaxError(err) {
		t.Errorf("an unknown key is not a syntax error: %v", err)
	}
}

// TestCheckEnvironment: what start would refuse about the files and the
// environment, --check reports too.
func TestCheckEnvironment(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	empty := filepath.Join(dir, "empty")
	notSocket := filepath.Join(dir, "plain-file")
	for p, content := range map[string]string{token: "t0ken\n", empty: " \n", notSocket: "x"} {
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	wi := map[string]string{"AZURE_FEDERATED_TOKEN_FILE": token, "AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c"}
	tests := []struct {
		name string
		mod  func(*Config)
		env  map[string]string
		want []string
	}{
		{"fine", func(c *Config) {
			c.Listen.Unix, c.ClientAuth.TokenFile = filepath.Join(dir, "grpc.sock"), token
		}, nil, nil},
		{"socket directory missing", func(c *Config) { c.Listen.Unix = filepath.Join(dir, "absent", "grpc.sock") }, nil, []string{"listen.unix"}},
		{"file in the socket's place", func(c *Config) { c.Listen.Unix = notSocket }, nil, []string{"listen.unix"}},
		{"token file missing", func(c *Config) { c.ClientAuth.TokenFile = filepath.Join(dir, "absent") }, nil, []string{"clientAuth.tokenFile"}},
		{"token file empty", func(c *Config) { c.ClientAuth.TokenFile = empty }, nil, []string{"clientAuth.tokenFile"}},
		{"workload identity with its environment", func(c *Config) { c.Auth.Mode = AuthWorkloadIdentity }, wi, nil},
		{"workload identity without its environment", func(c *Config) { c.Auth.Mode = AuthWorkloadIdentity }, nil, []string{"auth.mode"}},
		{"workload identity, token file absent", func(c *Config) { c.Auth.Mode = AuthWorkloadIdentity },
			map[string]string{"AZURE_FEDERATED_TOKEN_FILE": filepath.Join(dir, "absent"), "AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c"}, []string{"auth.mode"}},
		{"workload identity, client id from the file", func(c *Config) { c.Auth.Mode, c.Auth.ClientID = AuthWorkloadIdentity, "c" },
			map[string]string{"AZURE_FEDERATED_TOKEN_FILE": token, "AZURE_TENANT_ID": "t"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			tt.mod(&cfg)
			err := cfg.CheckEnvironment(func(k string) string { return tt.env[k] })
			if !wantProblems(t, err, tt.want) {
				return
			}
			if strings.Contains(err.Error(), "t0ken") {
				t.Errorf("error repeats the token: %v", err)
			}
		})
	}
}
