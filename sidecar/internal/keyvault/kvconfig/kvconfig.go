// Package kvconfig is the Key Vault backend's slice of the configuration: the
// vault and auth sections, their checks, and Key Vault's rule for secret
// names and versions. It imports no Azure SDK, so the configuration package
// can hold these sections without pulling the vault client into everything
// that reads a configuration; internal/keyvault builds its client from them.
package kvconfig

import (
	"net/url"
	"os"
	"strings"

	"github.com/secretproxy/secretproxy/sidecar/internal/problem"
	"github.com/secretproxy/secretproxy/sidecar/internal/source"
)

// Vault says which Key Vault to read (the vault section).
type Vault struct {
	URL                                  string `yaml:"url"`
	DisableChallengeResourceVerification bool   `yaml:"disableChallengeResourceVerification"`
}

// Auth says how the sidecar gets its Entra ID token (the auth section).
type Auth struct {
	Mode                     string `yaml:"mode"`
	ClientID                 string `yaml:"clientId"`
	DisableInstanceDiscovery bool   `yaml:"disableInstanceDiscovery"`
}

// Auth modes accepted in auth.mode.
const (
	AuthDefault          = "default"
	AuthWorkloadIdentity = "workload-identity"
	AuthManagedIdentity  = "managed-identity"
)

// Workload identity environment, injected by the AKS Workload Identity webhook.
const (
	EnvFederatedTokenFile = "AZURE_FEDERATED_TOKEN_FILE"
	EnvClientID           = "AZURE_CLIENT_ID"
	EnvTenantID           = "AZURE_TENANT_ID"
)

// DefaultAuth is the auth section a file leaves out.
func DefaultAuth() Auth { return Auth{Mode: AuthDefault} }

// Names is Key Vault's rule for secret names, as the API states it to a caller.
var Names = source.NameRule{Valid: ValidName, Hint: "a Key Vault secret name: use 1-127 characters of [0-9A-Za-z-]"}

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

// validVersion reports whether v is a Key Vault version id ("" is the latest).
func validVersion(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return len(v) <= 64
}

// ValidateVault checks the vault section. It never repeats vault.url: a URL
// can carry a password, and these messages reach the log.
func ValidateVault(v Vault) problem.List {
	var ps problem.List
	const path = "vault.url"
	if v.URL == "" {
		ps.Add(path, "required: the Key Vault URL, e.g. https://my-vault.vault.azure.net/")
		return ps
	}
	u, err := url.Parse(v.URL)
	switch {
	case err != nil:
		ps.Add(path, "is not a valid URL; write it as https://<vault>.vault.azure.net/")
	case u.User != nil:
		ps.Add(path, "must not carry a user or password (user:password@): the sidecar authenticates with Entra ID; remove them, and rotate that password since it was written in the configuration")
	case u.Scheme != "https":
		ps.Add(path, "must be https (bearer tokens are never sent over %q)", u.Scheme)
	case u.Host == "":
		ps.Add(path, "has no host")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		ps.Add(path, "must not carry a query or fragment: write it as https://<vault>.vault.azure.net/")
	}
	return ps
}

// ValidateAuth checks the auth section.
func ValidateAuth(a Auth) problem.List {
	var ps problem.List
	switch a.Mode {
	case AuthDefault, AuthWorkloadIdentity, AuthManagedIdentity:
	default:
		ps.Add("auth.mode", "%q is not one of default, workload-identity, managed-identity", a.Mode)
	}
	return ps
}

// ValidateSecret checks what Key Vault requires of one declared secret at
// path (e.g. "secrets[0]"): a name ("" is left to the caller, who reports it
// as required) and vaultSecret that are Key Vault secret names, and a version
// id.
func ValidateSecret(path, name, vaultSecret, version string) problem.List {
	var ps problem.List
	if name != "" && !ValidName(name) {
		ps.Add(path+".name", "%q is not a Key Vault secret name (1-127 of [0-9A-Za-z-])", name)
	}
	if vaultSecret != "" && !ValidName(vaultSecret) {
		ps.Add(path+".vaultSecret", "%q is not a Key Vault secret name (1-127 of [0-9A-Za-z-])", vaultSecret)
	}
	if version != "" && !validVersion(version) {
		ps.Add(path+".version", "%q is not a Key Vault version id (letters and digits)", version)
	}
	return ps
}

// CheckEnvironment reports what start would refuse about the environment auth
// needs: workload identity's variables and token file. getenv nil means
// os.Getenv.
func CheckEnvironment(a Auth, getenv func(string) string) problem.List {
	if getenv == nil {
		getenv = os.Getenv
	}
	var ps problem.List
	if a.Mode != AuthWorkloadIdentity {
		return nil
	}
	var missing []string
	for _, k := range []string{EnvFederatedTokenFile, EnvTenantID} {
		if getenv(k) == "" {
			missing = append(missing, k)
		}
	}
	if a.ClientID == "" && getenv(EnvClientID) == "" {
		missing = append(missing, EnvClientID+" (or auth.clientId)")
	}
	switch {
	case len(missing) > 0:
		ps.Add("auth.mode", "workload-identity needs %s, which the AKS Workload Identity webhook injects: label the pod azure.workload.identity/use=true and annotate its service account with the client id", strings.Join(missing, ", "))
	default:
		if _, err := os.Stat(getenv(EnvFederatedTokenFile)); err != nil {
			ps.Add("auth.mode", "workload-identity: %s %s: %v", EnvFederatedTokenFile, getenv(EnvFederatedTokenFile), problem.PathErr(err))
		}
	}
	return ps
}

// Mode resolves auth.mode "default" to the mode actually used: workload
// identity when the AKS webhook injected its three variables, else managed
// identity. getenv nil means os.Getenv.
func Mode(a Auth, getenv func(string) string) string {
	if getenv == nil {
		getenv = os.Getenv
	}
	if a.Mode != AuthDefault {
		return a.Mode
	}
	if getenv(EnvFederatedTokenFile) != "" && getenv(EnvClientID) != "" && getenv(EnvTenantID) != "" {
		return AuthWorkloadIdentity
	}
	return AuthManagedIdentity
}
