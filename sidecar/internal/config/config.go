// Package config holds the secret-proxy configuration: its defaults, the YAML
// file parser, the command-line overrides and the validation that reports every
// problem at once with its YAML path.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/secretproxy/secretproxy/sidecar/internal/keyvault/kvconfig"
	"github.com/secretproxy/secretproxy/sidecar/internal/problem"
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

// Connection bounds of the listeners (listen.maxConnections, listen.opsMaxConnections).
const (
	DefaultMaxConnections    = 256
	DefaultOpsMaxConnections = 32
	MaxConnectionsLimit      = 10000
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

// Refresh tunes the refresher.
type Refresh struct {
	Interval      Duration `yaml:"interval"`
	Jitter        float64  `yaml:"jitter"`
	MinInterval   Duration `yaml:"minInterval"`
	MaxStale      Duration `yaml:"maxStale"`
	RefuseExpired bool     `yaml:"refuseExpired"`
}

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

// ClientAuth says who may call the gRPC API.
type ClientAuth struct {
	TokenFile   string `yaml:"tokenFile"`
	AllowedUIDs []int  `yaml:"allowedUIDs"`
}

// AccessTokens configures GetAccessToken.
type AccessTokens struct {
	// Scopes is the allowlist; empty turns GetAccessToken off.
	Scopes []string `yaml:"scopes"`
	// RefreshBefore is how long before a token's expiry the sidecar fetches
	// the next one in the background.
	RefreshBefore Duration `yaml:"refreshBefore"`
}

// Bounds of accessTokens.
const (
	// MinRefreshBefore keeps the background refresh ahead of the 1-minute
	// window in which a token is no longer served, with a minute to spare.
	MinRefreshBefore = 2 * time.Minute
	// MaxRefreshBefore: Entra access tokens live 60 to 90 minutes, so
	// refreshing more than an hour ahead would refresh on every fetch.
	MaxRefreshBefore = time.Hour
	// MaxScopes bounds the allowlist (and with it the metric series per scope).
	MaxScopes = 20
	// MaxScopeLen bounds one scope.
	MaxScopeLen = 256
)

// ValidScope reports whether s is a scope the sidecar accepts: an Entra
// client-credentials scope, that is an https:// resource URI with a host, or
// an api:// application ID URI, ending in "/.default"; at most 256 bytes of
// printable ASCII, no whitespace, no query or fragment.
func ValidScope(s string) bool {
	if len(s) == 0 || len(s) > MaxScopeLen || !strings.HasSuffix(s, "/.default") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f || s[i] == '?' || s[i] == '#' {
			return false
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "https":
		return u.Host != "" && u.User == nil
	case "api":
		return u.Host != "" || u.Opaque != ""
	}
	return false
}

// Log configures log/slog.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
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

// Problem is one configuration error, located by its YAML path.
type Problem = problem.Problem

// Problems is every configuration error found at once.
type Problems = problem.List

// Validate checks the whole configuration and returns every problem at once as
// Problems, or nil.
func (c *Config) Validate() error {
	var ps Problems
	add := func(path, format string, args ...any) {
		ps = append(ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}

	// The backend's sections, checked by the backend.
	ps = append(ps, kvconfig.ValidateVault(c.Vault)...)
	ps = append(ps, kvconfig.ValidateAuth(c.Auth)...)

	switch {
	case len(c.Secrets) == 0:
		add("secrets", "declare at least one secret this pod may read")
	case len(c.Secrets) > MaxSecrets:
		add("secrets", "%d declared; a pod may declare at most %d (the API's largest message is sized for %d secrets of Key Vault's 25 KiB): split the secrets between pods", len(c.Secrets), MaxSecrets, MaxSecrets)
	}
	seen := make(map[string]int, len(c.Secrets))
	for i, s := range c.Secrets {
		p := fmt.Sprintf("secrets[%d]", i)
		// The backend's rule for names, vaultSecret and version.
		backend := kvconfig.ValidateSecret(p, s.Name, s.VaultSecret, s.Version)
		switch {
		case s.Name == "":
			add(p+".name", "required")
		case backend.Has(p + ".name"):
		default:
			if j, dup := seen[s.Name]; dup {
				add(p+".name", "%q is already declared at secrets[%d]", s.Name, j)
			} else {
				seen[s.Name] = i
			}
		}
		ps = append(ps, backend...)
	}

	r := c.Refresh
	switch {
	case r.Interval.D() < time.Second:
		add("refresh.interval", "must be at least 1s, got %s", r.Interval.D())
	case r.Interval.D() > MaxInterval:
		add("refresh.interval", "must be at most %s (a day), got %s", MaxInterval, r.Interval.D())
	}
	// Written so that NaN, which fails every comparison, fails it too.
	if !(r.Jitter >= 0 && r.Jitter < 1) {
		add("refresh.jitter", "must be a number in [0, 1), got %v", r.Jitter)
	}
	if r.MinInterval.D() <= 0 {
		add("refresh.minInterval", "must be positive, got %s", r.MinInterval.D())
	} else if r.Interval.D() >= time.Second && r.MinInterval.D() > r.Interval.D() {
		add("refresh.minInterval", "must not exceed refresh.interval (%s), got %s", r.Interval.D(), r.MinInterval.D())
	}
	switch {
	case r.MaxStale.D() < 0:
		add("refresh.maxStale", "must be 0 (serve stale for ever) or positive, got %s", r.MaxStale.D())
	case r.MaxStale.D() > 0 && r.MaxStale.D() <= r.Interval.D():
		// A value is stale only after a refresh failed, and the refresh
		// comes up to one interval after the last success (jitter only
		// shortens it): a maxStale within that serves nothing stale at all,
		// and every vault hiccup makes the pod unready at once.
		add("refresh.maxStale", "%s leaves no stale window: it must exceed refresh.interval (%s), or be 0 (serve stale for ever)", r.MaxStale.D(), r.Interval.D())
	}

	l := c.Listen
	if l.GRPC == "" && l.Unix == "" {
		add("listen", "set listen.grpc or listen.unix: nothing would serve the API")
	}
	if l.GRPC != "" {
		if msg := checkTCP(l.GRPC, !l.AllowNonLoopback); msg != "" {
			add("listen.grpc", "%s", msg)
		}
	}
	switch {
	case l.Unix == "":
	case !strings.HasPrefix(l.Unix, "/"):
		add("listen.unix", "must be an absolute path, got %q", l.Unix)
	case len(l.Unix) > maxSocketPath:
		add("listen.unix", "is %d bytes; a unix socket path holds at most %d: choose a shorter directory", len(l.Unix), maxSocketPath)
	}
	if l.MaxConnections < 0 || l.MaxConnections > MaxConnectionsLimit {
		add("listen.maxConnections", "must be 1 to %d (0: the default %d), got %d", MaxConnectionsLimit, DefaultMaxConnections, l.MaxConnections)
	}
	if l.OpsMaxConnections < 0 || l.OpsMaxConnections > MaxConnectionsLimit {
		add("listen.opsMaxConnections", "must be 1 to %d (0: the default %d), got %d", MaxConnectionsLimit, DefaultOpsMaxConnections, l.OpsMaxConnections)
	}
	if l.Ops != "" {
		if msg := checkTCP(l.Ops, false); msg != "" {
			add("listen.ops", "%s", msg)
		}
	}

	ca := c.ClientAuth
	if ca.TokenFile != "" && !strings.HasPrefix(ca.TokenFile, "/") {
		add("clientAuth.tokenFile", "must be an absolute path, got %q", ca.TokenFile)
	}
	for i, uid := range ca.AllowedUIDs {
		if uid < 0 || uid > maxUID {
			add(fmt.Sprintf("clientAuth.allowedUIDs[%d]", i), "must be a uid (0 to %d), got %d", maxUID, uid)
		}
	}
	switch {
	case len(ca.AllowedUIDs) == 0:
	case l.Unix == "":
		add("clientAuth.allowedUIDs", "needs listen.unix: peer credentials exist only on the unix socket")
	case l.GRPC != "" && ca.TokenFile == "":
		// Every container of a pod shares loopback: a uid check that TCP
		// skips restricts nobody.
		add("clientAuth.allowedUIDs", "restricts the unix socket only, and listen.grpc (%s) lets any process of the pod in without it: turn TCP off (listen.grpc: \"\" or --grpc-listen \"\"), or set clientAuth.tokenFile so that every caller needs the bearer token", l.GRPC)
	}

	c.validateAccessTokens(add)

	if _, err := ParseLevel(c.Log.Level); err != nil {
		add("log.level", "%v", err)
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		add("log.format", "%q is not one of json, text", c.Log.Format)
	}
	if len(ps) == 0 {
		return nil
	}
	return ps
}

func (c *Config) validateAccessTokens(add func(path, format string, args ...any)) {
	at := c.AccessTokens
	if len(at.Scopes) > MaxScopes {
		add("accessTokens.scopes", "at most %d scopes, got %d", MaxScopes, len(at.Scopes))
	}
	seen := make(map[string]int, len(at.Scopes))
	for i, s := range at.Scopes {
		p := fmt.Sprintf("accessTokens.scopes[%d]", i)
		if !ValidScope(s) {
			add(p, "%q is not a scope: use an https:// resource or api:// application ID URI ending in /.default, e.g. https://database.windows.net/.default (at most %d characters, no spaces)", truncateScope(s), MaxScopeLen)
			continue
		}
		if j, dup := seen[s]; dup {
			add(p, "%q is already declared at accessTokens.scopes[%d]", s, j)
			continue
		}
		seen[s] = i
	}
	if rb := at.RefreshBefore.D(); rb < MinRefreshBefore || rb > MaxRefreshBefore {
		add("accessTokens.refreshBefore", "must be from %s to %s (tokens are not served in their last minute), got %s", MinRefreshBefore, MaxRefreshBefore, rb)
	}
}

func truncateScope(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// MaxInterval bounds refresh.interval: a day between reads is already long for a secret.
const MaxInterval = 24 * time.Hour

// maxUID is the largest uid: uids are 32 bits and 2^32-1 means "none".
const maxUID = 1<<32 - 2

// maxSocketPath is what sockaddr_un's 108-byte sun_path holds with its NUL.
const maxSocketPath = 107

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

// ConnectionLimits returns listen.maxConnections and listen.opsMaxConnections
// with 0 read as the default.
func (l Listen) ConnectionLimits() (grpc, ops int) {
	grpc, ops = l.MaxConnections, l.OpsMaxConnections
	if grpc == 0 {
		grpc = DefaultMaxConnections
	}
	if ops == 0 {
		ops = DefaultOpsMaxConnections
	}
	return grpc, ops
}

// DeclaredNames returns the declared names in configuration order.
func (c *Config) DeclaredNames() []string {
	names := make([]string, len(c.Secrets))
	for i, s := range c.Secrets {
		names[i] = s.Name
	}
	return names
}

// IsAllowedUID reports whether uid may call over the unix socket.
func (c *Config) IsAllowedUID(uid int) bool {
	return len(c.ClientAuth.AllowedUIDs) == 0 || slices.Contains(c.ClientAuth.AllowedUIDs, uid)
}

var errLevel = errors.New("not one of debug, info, warn, error")
