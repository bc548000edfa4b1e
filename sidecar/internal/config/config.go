// Package config holds the secret-proxy configuration: its defaults, the YAML
// file parser, the command-line overrides and the validation that reports every
// problem at once with its YAML path.
package config

import (
	"fmt"
	"time"

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

// Auth modes accepted in auth.mode (the Key Vault backend's).
const (
	AuthDefault          = kvconfig.AuthDefault
	AuthWorkloadIdentity = kvconfig.AuthWorkloadIdentity
	AuthManagedIdentity  = kvconfig.AuthManagedIdentity
)

// Config is the whole configuration of one sidecar.
type Config struct {
	Vault      Vault      `yaml:"vault"`
	Auth       Auth       `yaml:"auth"`
	Secrets    []Secret   `yaml:"secrets"`
	Refresh    Refresh    `yaml:"refresh"`
	Listen     Listen     `yaml:"listen"`
	ClientAuth ClientAuth `yaml:"clientAuth"`
	Log        Log        `yaml:"log"`
	// AccessTokens lets the application get Entra access tokens of the
	// sidecar's identity (GetAccessToken), for the scopes listed only.
	AccessTokens AccessTokens `yaml:"accessTokens"`
}

// Vault says which Key Vault to read. The Key Vault backend owns the section
// (its type and its checks); the file format names it here.
type Vault = kvconfig.Vault

// Auth says how the sidecar gets its Entra ID token (the Key Vault backend's section).
type Auth = kvconfig.Auth

// Secret declares one secret this pod may read.
type Secret struct {
	Name        string `yaml:"name"`
	VaultSecret string `yaml:"vaultSecret"`
	Version     string `yaml:"version"`
	Optional    bool   `yaml:"optional"`
}

// Duration is a time.Duration written as "5m" or "10s" in YAML.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Default returns the configuration used for every field the file leaves out.
func Default() Config {
	return Config{
		Auth: kvconfig.DefaultAuth(),
		Refresh: Refresh{
			Interval:    Duration(5 * time.Minute),
			Jitter:      0.1,
			MinInterval: Duration(10 * time.Second),
		},
		Listen: Listen{
			GRPC:              "127.0.0.1:50051",
			Ops:               "0.0.0.0:9090",
			MaxConnections:    DefaultMaxConnections,
			OpsMaxConnections: DefaultOpsMaxConnections,
		},
		Log:          Log{Level: "info", Format: "json"},
		AccessTokens: AccessTokens{RefreshBefore: Duration(5 * time.Minute)},
	}
}

// VaultName returns the backend's name of a declared secret.
func (s Secret) VaultName() string {
	if s.VaultSecret != "" {
		return s.VaultSecret
	}
	return s.Name
}

// Validate checks the whole configuration and returns every problem at once as
// Problems, or nil. Each section checks itself (a section that depends on
// another, like clientAuth on listen, is handed it).
func (c *Config) Validate() error {
	return c.problems().err()
}

func (c *Config) problems() Problems {
	var ps Problems
	// The backend's sections, checked by the backend.
	ps = append(ps, kvconfig.ValidateVault(c.Vault)...)
	ps = append(ps, kvconfig.ValidateAuth(c.Auth)...)
	c.validateSecrets(&ps)
	c.Refresh.validate(&ps)
	c.Listen.validate(&ps)
	c.ClientAuth.validate(c.Listen, &ps)
	c.AccessTokens.validate(&ps)
	c.Log.validate(&ps)
	return ps
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

// Overrides are the command-line flags that override the file. A nil field
// leaves the file's value.
type Overrides struct {
	VaultURL   *string
	GRPCListen *string
	UnixSocket *string
	OpsListen  *string
	LogLevel   *string
}

// Apply sets every override that was given.
func (o Overrides) Apply(c *Config) {
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = *src
		}
	}
	set(&c.Vault.URL, o.VaultURL)
	set(&c.Listen.GRPC, o.GRPCListen)
	set(&c.Listen.Unix, o.UnixSocket)
	set(&c.Listen.Ops, o.OpsListen)
	set(&c.Log.Level, o.LogLevel)
}

// DeclaredNames returns the declared names in configuration order.
func (c *Config) DeclaredNames() []string {
	names := make([]string, len(c.Secrets))
	for i, s := range c.Secrets {
		names[i] = s.Name
	}
	return names
}
