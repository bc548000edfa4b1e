package config

import (
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/secretproxy/secretproxy/sidecar/internal/problem"
)

// Listen says where the sidecar serves.
type Listen struct {
	GRPC             string `yaml:"grpc"`
	Reflection       bool   `yaml:"reflection"`
	AllowNonLoopback bool   `yaml:"allowNonLoopback"`
	Unix             string `yaml:"unix"`
	Ops              string `yaml:"ops"`
	// MaxConnections bounds the open connections of each gRPC listener (TCP
	// and unix socket alike); OpsMaxConnections those of the ops listener,
	// separately, so that probes are answered whatever the API suffers.
	MaxConnections    int `yaml:"maxConnections"`
	OpsMaxConnections int `yaml:"opsMaxConnections"`
}

// Connection bounds of the listeners (listen.maxConnections, listen.opsMaxConnections).
const (
	defaultMaxConnections    = 256
	defaultOpsMaxConnections = 32
	maxConnectionsLimit      = 10000
)

// maxSocketPath is what sockaddr_un's 108-byte sun_path holds with its NUL.
const maxSocketPath = 107

// ConnectionLimits returns listen.maxConnections and listen.opsMaxConnections
// with 0 read as the default.
func (l Listen) ConnectionLimits() (grpc, ops int) {
	grpc, ops = l.MaxConnections, l.OpsMaxConnections
	if grpc == 0 {
		grpc = defaultMaxConnections
	}
	if ops == 0 {
		ops = defaultOpsMaxConnections
	}
	return grpc, ops
}

// validate checks the listen section.
func (l Listen) validate(ps *Problems) {
	if l.GRPC == "" && l.Unix == "" {
		ps.add("listen", "set listen.grpc or listen.unix: nothing would serve the API")
	}
	if l.GRPC != "" {
		if msg := checkTCP(l.GRPC, !l.AllowNonLoopback); msg != "" {
			ps.add("listen.grpc", "%s", msg)
		}
	}
	switch {
	case l.Unix == "":
	case !strings.HasPrefix(l.Unix, "/"):
		ps.add("listen.unix", "must be an absolute path, got %q", l.Unix)
	case len(l.Unix) > maxSocketPath:
		ps.add("listen.unix", "is %d bytes; a unix socket path holds at most %d: choose a shorter directory", len(l.Unix), maxSocketPath)
	}
	if l.MaxConnections < 0 || l.MaxConnections > maxConnectionsLimit {
		ps.add("listen.maxConnections", "must be 1 to %d (0: the default %d), got %d", maxConnectionsLimit, defaultMaxConnections, l.MaxConnections)
	}
	if l.OpsMaxConnections < 0 || l.OpsMaxConnections > maxConnectionsLimit {
		ps.add("listen.opsMaxConnections", "must be 1 to %d (0: the default %d), got %d", maxConnectionsLimit, defaultOpsMaxConnections, l.OpsMaxConnections)
	}
	if l.Ops != "" {
		if msg := checkTCP(l.Ops, false); msg != "" {
			ps.add("listen.ops", "%s", msg)
		}
	}
}

// checkEnvironment checks the socket's directory and whatever sits in the
// socket's place. A socket some process still listens on is left to start.
func (l Listen) checkEnvironment(ps *Problems) {
	p := l.Unix
	if p == "" {
		return
	}
	dir := filepath.Dir(p)
	if fi, err := os.Stat(dir); err != nil {
		ps.add("listen.unix", "directory %s: %v; create it (in Kubernetes, mount an emptyDir there)", dir, problem.PathErr(err))
	} else if !fi.IsDir() {
		ps.add("listen.unix", "%s is not a directory", dir)
	}
	if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSocket == 0 {
		ps.add("listen.unix", "%s exists and is not a socket; the sidecar will not remove it: remove it or choose another path", p)
	}
}

// checkTCP returns why addr is not a usable host:port, or "".
func checkTCP(addr string, loopbackOnly bool) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("%q is not host:port: %v", addr, err)
	}
	if _, err := net.LookupPort("tcp", port); err != nil || port == "" {
		return fmt.Sprintf("%q has no valid port", addr)
	}
	if !loopbackOnly {
		return ""
	}
	if host == "localhost" {
		return ""
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Sprintf("%q is not a loopback address; secrets are served on 127.0.0.1 or ::1 only unless listen.allowNonLoopback is true", addr)
	}
	return ""
}
