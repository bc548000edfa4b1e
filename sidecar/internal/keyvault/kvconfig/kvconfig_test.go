package kvconfig_test

import (
	"strings"
	"testing"

	"github.com/secretproxy/secretproxy/sidecar/internal/keyvault/kvconfig"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"db-password", true}, {"A", true}, {strings.Repeat("a", 127), true},
		{"", false}, {strings.Repeat("a", 128), false}, {"bad name!", false}, {"a_b", false}, {"ü", false}, {"a/b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := kvconfig.ValidName(tt.name); got != tt.want {
				t.Errorf("ValidName(%q) = %v, want %v", tt.name, got, tt.want)
			}
			if got := kvconfig.Names.Valid(tt.name); got != tt.want {
				t.Errorf("Names.Valid(%q) = %v, want %v", tt.name, got, tt.want)
			}
		})
	}
}

// FuzzValidName checks the name rule against a plain restatement of it.
func FuzzValidName(f *testing.F) {
	for _, s := range []string{"db-password", "", "bad name!", strings.Repeat("x", 127), strings.Repeat("x", 128), "a\x00b", "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := len(s) >= 1 && len(s) <= 127 && strings.Trim(s, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-") == ""
		if got := kvconfig.ValidName(s); got != want {
			t.Fatalf("ValidName(%q) = %v, want %v", s, got, want)
		}
	})
}

// TestValidateSections: each check of the backend's sections reports its
// problems at their full YAML path, with the messages operators act on.
func TestValidateSections(t *testing.T) {
	tests := []struct {
		name string
		got  func() []string
		want []string
	}{
		{"vault ok", func() []string {
			return strs(kvconfig.ValidateVault(kvconfig.Vault{URL: "https://v.vault.azure.net/"}))
		}, nil},
		{"vault missing", func() []string { return strs(kvconfig.ValidateVault(kvconfig.Vault{})) },
			[]string{"vault.url: required: the Key Vault URL, e.g. https://my-vault.vault.azure.net/"}},
		{"vault with a password never repeats it", func() []string {
			return strs(kvconfig.ValidateVault(kvconfig.Vault{URL: "https://u:test-secret-pw@v.vault.azure.net/"}))
		}, []string{"vault.url: must not carry a user or password (user:password@): the sidecar authenticates with Entra ID; remove them, and rotate that password since it was written in the configuration"}},
		{"vault over http", func() []string { return strs(kvconfig.ValidateVault(kvconfig.Vault{URL: "http://v/"})) },
			[]string{`vault.url: must be https (bearer tokens are never sent over "http")`}},
		{"auth default", func() []string { return strs(kvconfig.ValidateAuth(kvconfig.DefaultAuth())) }, nil},
		{"auth unknown", func() []string { return strs(kvconfig.ValidateAuth(kvconfig.Auth{Mode: "magic"})) },
			[]string{`auth.mode: "magic" is not one of default, workload-identity, managed-identity`}},
		{"secret ok", func() []string { return strs(kvconfig.ValidateSecret("secrets[0]", "a", "b", "0123abc")) }, nil},
		{"secret name left to the caller when empty", func() []string { return strs(kvconfig.ValidateSecret("secrets[0]", "", "", "")) }, nil},
		{"secret all wrong", func() []string { return strs(kvconfig.ValidateSecret("secrets[2]", "a_b", "c d", "v-1")) }, []string{
			`secrets[2].name: "a_b" is not a Key Vault secret name (1-127 of [0-9A-Za-z-])`,
			`secrets[2].vaultSecret: "c d" is not a Key Vault secret name (1-127 of [0-9A-Za-z-])`,
			`secrets[2].version: "v-1" is not a Key Vault version id (letters and digits)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.got()
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func strs[T interface{ String() string }](ps []T) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

// auth.mode default is workload identity only when all three variables the
// AKS webhook injects are set; an explicit mode ignores the environment.
func TestModeSelection(t *testing.T) {
	all := map[string]string{
		kvconfig.EnvFederatedTokenFile: "/var/run/secrets/azure/tokens/azure-identity-token",
		kvconfig.EnvClientID:           "00000000-0000-0000-0000-000000000001",
		kvconfig.EnvTenantID:           "00000000-0000-0000-0000-000000000002",
	}
	without := func(key string) map[string]string {
		m := map[string]string{}
		for k, v := range all {
			if k != key {
				m[k] = v
			}
		}
		return m
	}
	tests := []struct {
		name string
		mode string
		env  map[string]string
		want string
	}{
		{"default, all three set", kvconfig.AuthDefault, all, kvconfig.AuthWorkloadIdentity},
		{"default, no token file", kvconfig.AuthDefault, without(kvconfig.EnvFederatedTokenFile), kvconfig.AuthManagedIdentity},
		{"default, no client id", kvconfig.AuthDefault, without(kvconfig.EnvClientID), kvconfig.AuthManagedIdentity},
		{"default, no tenant id", kvconfig.AuthDefault, without(kvconfig.EnvTenantID), kvconfig.AuthManagedIdentity},
		{"default, nothing set", kvconfig.AuthDefault, nil, kvconfig.AuthManagedIdentity},
		{"managed identity ignores the environment", kvconfig.AuthManagedIdentity, all, kvconfig.AuthManagedIdentity},
		{"workload identity without the environment", kvconfig.AuthWorkloadIdentity, nil, kvconfig.AuthWorkloadIdentity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := kvconfig.Mode(kvconfig.Auth{Mode: tt.mode}, func(k string) string { return tt.env[k] })
			if got != tt.want {
				t.Errorf("Mode(%q) = %q, want %q", tt.mode, got, tt.want)
			}
		})
	}
}
