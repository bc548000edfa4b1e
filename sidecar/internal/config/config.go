// Package config holds the secret-proxy configuration: its defaults, the YAML
// file parser, the command-line overrides and the validation that reports every
// problem at once with its YAML path.
package config

import (
	"time"

	"github.com/secretproxy/secretproxy/sidecar/internal/keyvault/kvconfig"
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
			MaxConnections:    defaultMaxConnections,
			OpsMaxConnections: defaultOpsMaxConnections,
		},
		Log:          Log{Level: "info", Format: "json"},
		AccessTokens: AccessTokens{RefreshBefore: Duration(5 * time.Minute)},
	}
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
