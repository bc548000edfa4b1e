// Package config holds the secret-proxy configuration: its defaults, the YAML
// file parser, the command-line overrides and the validation that reports every
// problem at once with its YAML path.
package config

import (
	"fmt"
	"net/url"
	"time"
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

// Auth modes accepted in auth.mode.
const (
	AuthDefault          = "default"
	AuthWorkloadIdentity = "workload-identity"
	AuthManagedIdentity  = "managed-identity"
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

// Vault says which Key Vault to read.
type Vault struct {
	URL                                  string `yaml:"url"`
	DisableChallengeResourceVerification bool   `yaml:"disableChallengeResourceVerification"`
}

// Auth says how the sidecar gets its Entra ID token.
type Auth struct {
	Mode                     string `yaml:"mode"`
	ClientID                 string `yaml:"clientId"`
	DisableInstanceDiscovery bool   `yaml:"disableInstanceDiscovery"`
}

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
		Auth: Auth{Mode: AuthDefault},
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

// VaultName returns the Key Vault name of a declared secret.
func (s Secret) VaultName() string {
	if s.VaultSecret != "" {
		return s.VaultSecret
	}
	return s.Name
}

// ValidName reports whether s is a Key Vault secret name: 1 to 127 of [0-9A-Za-z-].
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 127 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}

// Validate checks the whole configuration and returns every problem at once as
// Problems, or nil. Each section checks itself (a section that depends on
// another, like clientAuth on listen, is handed it).
func (c *Config) Validate() error {
	return c.problems().err()
}

func (c *Config) problems() Problems {
	var ps Problems
	c.validateVault(&ps)
	c.Refresh.validate(&ps)
	c.Listen.validate(&ps)
	c.ClientAuth.validate(c.Listen, &ps)
	c.AccessTokens.validate(&ps)
	c.Log.validate(&ps)
	return ps
}

// validateVault checks what the Key Vault adapter reads: vault, auth and secrets.
func (c *Config) validateVault(ps *Problems) {
	add := ps.add
	checkVaultURL(c.Vault.URL, add)

	switch c.Auth.Mode {
	case AuthDefault, AuthWorkloadIdentity, AuthManagedIdentity:
	default:
		add("auth.mode", "%q is not one of default, workload-identity, managed-identity", c.Auth.Mode)
	}

	switch {
	case len(c.Secrets) == 0:
		add("secrets", "declare at least one secret this pod may read")
	case len(c.Secrets) > MaxSecrets:
		add("secrets", "%d declared; a pod may declare at most %d (the API's largest message is sized for %d secrets of Key Vault's 25 KiB): split the secrets between pods", len(c.Secrets), MaxSecrets, MaxSecrets)
	}
	seen := make(map[string]int, len(c.Secrets))
	for i, s := range c.Secrets {
		p := fmt.Sprintf("secrets[%d]", i)
		switch {
		case s.Name == "":
			add(p+".name", "required")
		case !ValidName(s.Name):
			add(p+".name", "%q is not a Key Vault secret name (1-127 of [0-9A-Za-z-])", s.Name)
		default:
			if j, dup := seen[s.Name]; dup {
				add(p+".name", "%q is already declared at secrets[%d]", s.Name, j)
			} else {
				seen[s.Name] = i
			}
		}
		if s.VaultSecret != "" && !ValidName(s.VaultSecret) {
			add(p+".vaultSecret", "%q is not a Key Vault secret name (1-127 of [0-9A-Za-z-])", s.VaultSecret)
		}
		if s.Version != "" && !validVersion(s.Version) {
			add(p+".version", "%q is not a Key Vault version id (letters and digits)", s.Version)
		}
	}
}

// checkVaultURL checks vault.url without ever repeating it: a URL can carry a
// password, and these messages reach the log.
func checkVaultURL(raw string, add func(path, format string, args ...any)) {
	if raw == "" {
		add("vault.url", "required: the Key Vault URL, e.g. https://my-vault.vault.azure.net/")
		return
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		add("vault.url", "is not a valid URL; write it as https://<vault>.vault.azure.net/")
	case u.User != nil:
		add("vault.url", "must not carry a user or password (user:password@): the sidecar authenticates with Entra ID; remove them, and rotate that password since it was written in the configuration")
	case u.Scheme != "https":
		add("vault.url", "must be https (bearer tokens are never sent over %q)", u.Scheme)
	case u.Host == "":
		add("vault.url", "has no host")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		add("vault.url", "must not carry a query or fragment: write it as https://<vault>.vault.azure.net/")
	}
}

func validVersion(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return len(v) <= 64
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
