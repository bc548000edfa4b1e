package config

import (
	"os"

	"github.com/secretproxy/secretproxy/sidecar/internal/keyvault/kvconfig"
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
	// The backend's environment (workload identity), checked by the backend.
	ps = append(ps, kvconfig.CheckEnvironment(c.Auth, getenv)...)
	return ps
}
