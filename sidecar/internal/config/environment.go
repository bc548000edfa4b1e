package config

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/secretproxy/secretproxy/sidecar/internal/keyvault/kvconfig"
	"github.com/secretproxy/secretproxy/sidecar/internal/problem"
)

// CheckEnvironment reports, as Problems, what start would refuse about the
// files and the environment a valid configuration points at: the socket's
// directory, whatever sits in the socket's place, the token file, and the
// workload identity environment. Both --check and start call it, so that they
// agree. A socket some process still listens on is left to start: that is a
// runtime conflict, not configuration. getenv nil means os.Getenv.
func (c *Config) CheckEnvironment(getenv func(string) string) error {
	if getenv == nil {
		getenv = os.Getenv
	}
	var ps Problems
	add := func(path, format string, args ...any) {
		ps = append(ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	if p := c.Listen.Unix; p != "" {
		dir := filepath.Dir(p)
		if fi, err := os.Stat(dir); err != nil {
			add("listen.unix", "directory %s: %v; create it (in Kubernetes, mount an emptyDir there)", dir, problem.PathErr(err))
		} else if !fi.IsDir() {
			add("listen.unix", "%s is not a directory", dir)
		}
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSocket == 0 {
			add("listen.unix", "%s exists and is not a socket; the sidecar will not remove it: remove it or choose another path", p)
		}
	}
	if f := c.ClientAuth.TokenFile; f != "" {
		// The content is read to check it is not empty and then dropped; it
		// never reaches a message.
		b, err := os.ReadFile(f)
		switch {
		case err != nil:
			add("clientAuth.tokenFile", "cannot read %s: %v", f, problem.PathErr(err))
		case strings.TrimSpace(string(b)) == "":
			add("clientAuth.tokenFile", "%s is empty: put the bearer token callers must send in it", f)
		}
	}
	// The backend's environment (workload identity), checked by the backend.
	ps = append(ps, kvconfig.CheckEnvironment(c.Auth, getenv)...)
	if len(ps) == 0 {
		return nil
	}
	return ps
}
