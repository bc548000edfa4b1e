package config

import (
	"errors"
	"io/fs"
	"os"
	"strings"
)

// Workload identity environment, injected by the AKS Workload Identity webhook.
const (
	EnvFederatedTokenFile = "AZURE_FEDERATED_TOKEN_FILE"
	EnvClientID           = "AZURE_CLIENT_ID"
	EnvTenantID           = "AZURE_TENANT_ID"
)

// CheckEnvironment reports, as Problems, what start would refuse about the
// files and the environment a valid configuration points at: the socket's
// directory, whatever sits in the socket's place, the token file, and the
// workload identity environment. Both --check and start call it, so that they
// agree. A socket some process still listens on is left to start: that is a
// runtime conflict, not configuration. getenv nil means os.Getenv.
func (c *Config) CheckEnvironment(getenv func(string) string) error {
	return c.checkEnvironment(getenv).err()
}

func (c *Config) checkEnvironment(getenv func(string) string) Problems {
	if getenv == nil {
		getenv = os.Getenv
	}
	var ps Problems
	c.Listen.checkEnvironment(&ps)
	c.ClientAuth.checkEnvironment(&ps)
	c.Auth.checkEnvironment(getenv, &ps)
	return ps
}

// checkEnvironment checks that workload identity finds what the webhook injects.
func (a Auth) checkEnvironment(getenv func(string) string, ps *Problems) {
	if a.Mode != AuthWorkloadIdentity {
		return
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
		ps.add("auth.mode", "workload-identity needs %s, which the AKS Workload Identity webhook injects: label the pod azure.workload.identity/use=true and annotate its service account with the client id", strings.Join(missing, ", "))
	default:
		if _, err := os.Stat(getenv(EnvFederatedTokenFile)); err != nil {
			ps.add("auth.mode", "workload-identity: %s %s: %v", EnvFederatedTokenFile, getenv(EnvFederatedTokenFile), pathErr(err))
		}
	}
}

// pathErr drops the path an *fs.PathError repeats, since the message names it already.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
