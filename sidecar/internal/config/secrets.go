package config

import (
	"fmt"

	"github.com/secretproxy/secretproxy/sidecar/internal/keyvault/kvconfig"
)

// Bounds of the pod the sidecar accepts. The largest WatchSecrets or
// BatchGetSecrets message is MaxSecrets secrets of at most MaxSecretBytes each
// (Key Vault's 25 KiB value limit plus a generous allowance for the version,
// content type, 15 tags and timestamps); the API's message limit on both sides
// (grpcapi, proto/client) is chosen above MaxSecrets x MaxSecretBytes.
const (
	MaxSecrets     = 200
	MaxValueBytes  = 25 << 10
	MaxSecretBytes = MaxValueBytes + 15<<10
)

// Secret declares one secret this pod may read.
type Secret struct {
	Name        string `yaml:"name"`
	VaultSecret string `yaml:"vaultSecret"`
	Version     string `yaml:"version"`
	Optional    bool   `yaml:"optional"`
}

// VaultName returns the backend's name of a declared secret.
func (s Secret) VaultName() string {
	if s.VaultSecret != "" {
		return s.VaultSecret
	}
	return s.Name
}

// DeclaredNames returns the declared names in configuration order.
func (c *Config) DeclaredNames() []string {
	names := make([]string, len(c.Secrets))
	for i, s := range c.Secrets {
		names[i] = s.Name
	}
	return names
}

// validateSecrets checks the declared secrets: how many, names required and
// unique here; the backend checks the forms of name, vaultSecret and version.
func (c *Config) validateSecrets(ps *Problems) {
	add := ps.add
	switch {
	case len(c.Secrets) == 0:
		add("secrets", "declare at least one secret this pod may read")
	case len(c.Secrets) > MaxSecrets:
		add("secrets", "%d declared; a pod may declare at most %d (the API's largest message is sized for %d secrets of Key Vault's 25 KiB): split the secrets between pods", len(c.Secrets), MaxSecrets, MaxSecrets)
	}
	seen := make(map[string]int, len(c.Secrets))
	for i, s := range c.Secrets {
		p := fmt.Sprintf("secrets[%d]", i)
		backend := kvconfig.ValidateSecret(p, s.Name, s.VaultSecret, s.Version)
		switch {
		case s.Name == "":
			add(p+".name", "required")
		case backend.Has(p + ".name"): // a malformed name, reported below
		default:
			if j, dup := seen[s.Name]; dup {
				add(p+".name", "%q is already declared at secrets[%d]", s.Name, j)
			} else {
				seen[s.Name] = i
			}
		}
		*ps = append(*ps, backend...)
	}
}
