package pod

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// SecretDecl is one secret the sidecar may serve.
type SecretDecl struct {
	Name        string // what the application asks for
	VaultSecret string // the Key Vault name
	Optional    bool
}

// SidecarConfig is the part of secret-proxy's configuration
// (docs/reference/config.md) that the demo and the tests choose.
type SidecarConfig struct {
	VaultURL    string
	Secrets     []SecretDecl
	GRPC        string // "" turns TCP off
	Unix        string
	Ops         string
	Interval    time.Duration
	MinInterval time.Duration
	MaxStale    time.Duration
	TokenFile   string
	// ClientID selects a user-assigned managed identity (auth.clientId);
	// the emulator tells callers apart by it.
	ClientID  string
	LogLevel  string
	LogFormat string
	// AccessTokenScopes is accessTokens.scopes (GetAccessToken's allowlist).
	AccessTokenScopes []string
}

// DatabaseSecrets are the order application's four credentials as the
// company's vault names them.
var DatabaseSecrets = []SecretDecl{
	{Name: "db-server", VaultSecret: "sql-server-name"},
	{Name: "db-user", VaultSecret: "sql-user"},
	{Name: "db-password", VaultSecret: "sql-password"},
	{Name: "db-name", VaultSecret: "sql-database"},
}

// YAML renders the configuration file.
func (c SidecarConfig) YAML() string {
	var b strings.Builder
	fmt.Fprintf(&b, "vault:\n  url: %q\n  disableChallengeResourceVerification: true\n", c.VaultURL)
	b.WriteString("auth:\n  mode: managed-identity\n  disableInstanceDiscovery: true\n")
	if c.ClientID != "" {
		fmt.Fprintf(&b, "  clientId: %q\n", c.ClientID)
	}
	b.WriteString("secrets:\n")
	for _, s := range c.Secrets {
		fmt.Fprintf(&b, "  - name: %q\n", s.Name)
		if s.VaultSecret != "" {
			fmt.Fprintf(&b, "    vaultSecret: %q\n", s.VaultSecret)
		}
		if s.Optional {
			b.WriteString("    optional: true\n")
		}
	}
	// A setting left zero is left out of the file: the sidecar's own default
	// applies, written in the sidecar only (sidecar/internal/config).
	b.WriteString("refresh:\n")
	if c.Interval > 0 {
		fmt.Fprintf(&b, "  interval: %s\n", c.Interval)
	}
	if c.MinInterval > 0 {
		fmt.Fprintf(&b, "  minInterval: %s\n", c.MinInterval)
	}
	if c.MaxStale > 0 {
		fmt.Fprintf(&b, "  maxStale: %s\n", c.MaxStale)
	}
	fmt.Fprintf(&b, "listen:\n  grpc: %q\n  unix: %q\n  ops: %q\n", c.GRPC, c.Unix, c.Ops)
	if c.TokenFile != "" {
		fmt.Fprintf(&b, "clientAuth:\n  tokenFile: %q\n", c.TokenFile)
	}
	if len(c.AccessTokenScopes) > 0 {
		b.WriteString("accessTokens:\n  scopes:\n")
		for _, s := range c.AccessTokenScopes {
			fmt.Fprintf(&b, "    - %q\n", s)
		}
	}
	if c.LogLevel != "" || c.LogFormat != "" {
		b.WriteString("log:\n")
	}
	if c.LogLevel != "" {
		fmt.Fprintf(&b, "  level: %s\n", c.LogLevel)
	}
	if c.LogFormat != "" {
		fmt.Fprintf(&b, "  format: %s\n", c.LogFormat)
	}
	return b.String()
}

// WriteFile writes the configuration to path.
func (c SidecarConfig) WriteFile(path string) error {
	return os.WriteFile(path, []byte(c.YAML()), 0o600)
}

// SidecarSpec is how to start secret-proxy with the configuration file
// cfgFile, reaching this emulator through the real managed-identity and Key
// Vault protocols (ClientEnv). Set Name or Output on the result as needed.
func (e *Emulator) SidecarSpec(bin, cfgFile string) Spec {
	return Spec{
		Name: "secret-proxy", Path: bin, Args: []string{"--config", cfgFile},
		Env: append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, e.ClientEnv()...),
	}
}
