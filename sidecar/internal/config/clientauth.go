package config

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/secretproxy/secretproxy/sidecar/internal/problem"
)

// ClientAuth says who may call the gRPC API.
type ClientAuth struct {
	TokenFile   string `yaml:"tokenFile"`
	AllowedUIDs []int  `yaml:"allowedUIDs"`
}

// maxUID is the largest uid: uids are 32 bits and 2^32-1 means "none".
const maxUID = 1<<32 - 2

// IsAllowedUID reports whether uid may call over the unix socket.
func (c *Config) IsAllowedUID(uid int) bool {
	return len(c.ClientAuth.AllowedUIDs) == 0 || slices.Contains(c.ClientAuth.AllowedUIDs, uid)
}

// validate checks the clientAuth section against the listeners it guards.
func (ca ClientAuth) validate(l Listen, ps *Problems) {
	if ca.TokenFile != "" && !strings.HasPrefix(ca.TokenFile, "/") {
		ps.add("clientAuth.tokenFile", "must be an absolute path, got %q", ca.TokenFile)
	}
	for i, uid := range ca.AllowedUIDs {
		if uid < 0 || uid > maxUID {
			ps.add(fmt.Sprintf("clientAuth.allowedUIDs[%d]", i), "must be a uid (0 to %d), got %d", maxUID, uid)
		}
	}
	switch {
	case len(ca.AllowedUIDs) == 0:
	case l.Unix == "":
		ps.add("clientAuth.allowedUIDs", "needs listen.unix: peer credentials exist only on the unix socket")
	case l.GRPC != "" && ca.TokenFile == "":
		// Every container of a pod shares loopback: a uid check that TCP
		// skips restricts nobody.
		ps.add("clientAuth.allowedUIDs", "restricts the unix socket only, and listen.grpc (%s) lets any process of the pod in without it: turn TCP off (listen.grpc: \"\" or --grpc-listen \"\"), or set clientAuth.tokenFile so that every caller needs the bearer token", l.GRPC)
	}
}

// checkEnvironment checks that the token file can be read and is not empty.
// The content is read to check it is not empty and then dropped; it never
// reaches a message.
func (ca ClientAuth) checkEnvironment(ps *Problems) {
	f := ca.TokenFile
	if f == "" {
		return
	}
	b, err := os.ReadFile(f)
	switch {
	case err != nil:
		ps.add("clientAuth.tokenFile", "cannot read %s: %v", f, problem.PathErr(err))
	case strings.TrimSpace(string(b)) == "":
		ps.add("clientAuth.tokenFile", "%s is empty: put the bearer token callers must send in it", f)
	}
}
