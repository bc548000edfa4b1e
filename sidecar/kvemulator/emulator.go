// Package kvemulator is a local Azure Key Vault and identity emulator for tests
// and demos. It speaks the real protocols, so the real azidentity and
// azsecrets clients run against it unchanged:
//
//   - a Key Vault data plane over TLS (a CA generated at start) with the
//     challenge-based bearer authentication Key Vault uses, secret versions,
//     attributes and Key Vault-shaped error bodies;
//   - a managed-identity token endpoint over plain HTTP on loopback, speaking
//     both the App Service protocol (IDENTITY_ENDPOINT/IDENTITY_HEADER) and
//     the IMDS protocol (/metadata/identity/oauth2/token);
//   - an Entra ID authority on the TLS listener for workload identity
//     (OpenID configuration and the client-assertion token endpoint);
//   - an admin API under /admin to change secrets and inject faults.
//
// Only loopback addresses are accepted: the emulator hands out tokens to
// anyone who asks and must never be reachable from another machine.
package kvemulator

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// DefaultTenantID is the tenant the emulator uses when Options.TenantID is empty.
const DefaultTenantID = "00000000-0000-0000-0000-000000000001"

// DefaultTokenLifetime is how long issued access tokens stay valid. MSAL
// refetches a token with less than five minutes left on every call, so tokens
// must live well beyond that.
const DefaultTokenLifetime = time.Hour

// VaultResource is the resource (audience) of Key Vault access tokens, as the
// challenge announces it.
const VaultResource = "https://vault.azure.net"

// maxRequestLog bounds the request log so a long demo cannot grow it forever.
const maxRequestLog = 10000

// Options configures an Emulator. The zero value is usable.
type Options struct {
	// Secrets are the initial secrets: name -> value (the first version of each).
	Secrets map[string]string
	// TenantID is announced in the challenge and served by the authority;
	// default DefaultTenantID.
	TenantID string
	// VaultAddr and IdentityAddr are the listen addresses; default
	// "127.0.0.1:0". They must be loopback.
	VaultAddr, IdentityAddr string
	// Now is the clock for secret attributes and request times; default
	// time.Now. Token lifetimes and TLS certificates always use the real
	// clock, because the SDK checks them against the real clock.
	Now func() time.Time
	// Logger receives structured logs (names and versions, never values);
	// default: discard.
	Logger *slog.Logger
	// TokenLifetime is the lifetime of issued access tokens; default
	// DefaultTokenLifetime.
	TokenLifetime time.Duration
	// RateLimit is the vault-wide budget of vault requests; the zero value
	// is no limit (see RateLimit).
	RateLimit RateLimit
	// ThrottleGrace is how long after a 429 a request from the same caller
	// counts as already sent (RateStats.InFlightAtThrottle) rather than as
	// one inside Retry-After; default DefaultThrottleGrace.
	ThrottleGrace time.Duration
}

// FaultMode selects a fault the vault data plane injects.
type FaultMode int

const (
	// FaultNone serves normally.
	FaultNone FaultMode = iota
	// FaultOutage answers every vault request with 503 ServiceUnavailable,
	// before authentication, as an unreachable service would.
	FaultOutage
	// FaultThrottle answers authenticated vault requests with 429 Throttled
	// and a Retry-After header.
	FaultThrottle
	// FaultForbidden answers authenticated vault requests with 403 Forbidden,
	// inner code ForbiddenByRbac, as Key Vault does when the identity lacks a
	// role assignment.
	FaultForbidden
)

// String returns the mode's name as the admin API spells it.
func (m FaultMode) String() string {
	switch m {
	case FaultNone:
		return "none"
	case FaultOutage:
		return "outage"
	case FaultThrottle:
		return "throttle"
	case FaultForbidden:
		return "forbidden"
	}
	return "FaultMode(" + strconv.Itoa(int(m)) + ")"
}

// ParseFaultMode parses the admin API's spelling of a fault mode.
func ParseFaultMode(s string) (FaultMode, error) {
	for _, m := range []FaultMode{FaultNone, FaultOutage, FaultThrottle, FaultForbidden} {
		if m.String() == s {
			return m, nil
		}
	}
	return FaultNone, fmt.Errorf("unknown fault mode %q: want none, outage, throttle or forbidden", s)
}

// Fault is the fault the vault data plane injects.
type Fault struct {
	Mode FaultMode
	// RetryAfter is sent as Retry-After (whole seconds, rounded up) with
	// FaultThrottle; zero means one second.
	RetryAfter time.Duration
	// Count limits the fault to the next Count vault requests it applies
	// to; zero means until SetFault is called again. It lets a test inject
	// exactly one 429 without racing a clock.
	Count int
}

// Request is one request the emulator served.
type Request struct {
	Time   time.Time `json:"time"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Status int       `json:"status"`
	// Kind is "vault" (Key Vault data plane), "token" (managed identity
	// and Entra endpoints) or "admin".
	Kind string `json:"kind"`
}

// Emulator is a running Key Vault and identity emulator. Its methods are safe
// for concurrent use.
type Emulator struct {
	log *slog.Logger
	now func() time.Time
	// tokenNow is the clock for token lifetimes: the real clock, because
	// MSAL compares expires_on with it. Tests of expiry replace it.
	tokenNow func() time.Time
	tenantID string
	// tokenLifetime is guarded by mu (the admin API changes it).
	tokenLifetime time.Duration

	vaultURL       string
	identityAddr   string
	identityHeader string
	federatedToken string

	caPEM   []byte
	caPool  *x509.CertPool
	tlsCert tls.Certificate

	vaultSrv, identitySrv *http.Server
	serveErrs             chan error
	closeOnce             sync.Once
	connsMu               sync.Mutex
	newConns              map[net.Conn]struct{} // connections that have not sent a request yet
	closeErr              error

	mu       sync.Mutex
	secrets  map[string]*secret // key: lower-cased name (Key Vault names are case-insensitive)
	fault    Fault              // vault data plane
	idFault  Fault              // token endpoints (managed identity and Entra)
	requests []Request
	tokens   map[string]issuedToken
	// nextTokens are queued by IssueNext, per normalized resource.
	nextTokens map[string][]string
	rate       *rateLimiter
}

// Start starts both listeners; they are serving when it returns.
func Start(opts Options) (*Emulator, error) {
	e, err := newEmulator(opts)
	if err != nil {
		return nil, err
	}
	vaultAddr, identityAddr, err := listenAddrs(opts)
	if err != nil {
		return nil, err
	}
	if err := e.generateCredentials(); err != nil {
		return nil, err
	}
	vl, il, err := listenBoth(vaultAddr, identityAddr)
	if err != nil {
		return nil, err
	}
	e.vaultURL = "https://" + vl.Addr().String() + "/"
	e.identityAddr = il.Addr().String()

	// Seed after the vault URL is known: secret ids embed it.
	for name, value := range opts.Secrets {
		e.SetSecret(name, value)
	}

	e.buildServers()
	go func() { e.serveErrs <- e.vaultSrv.ServeTLS(vl, "", "") }()
	go func() { e.serveErrs <- e.identitySrv.Serve(il) }()

	e.log.Info("kv-emulator started", "vault_url", e.vaultURL, "identity_addr", e.identityAddr,
		"tenant_id", e.tenantID, "secrets", len(opts.Secrets), "rate_limit", e.rate.limit.String())
	return e, nil
}

// newEmulator applies the defaults for options left zero and rejects bad
// options, before any key is generated or port opened, so a mistake costs
// nothing and leaves nothing to clean up.
func newEmulator(opts Options) (*Emulator, error) {
	e := &Emulator{
		log:           opts.Logger,
		now:           opts.Now,
		tokenNow:      time.Now,
		tenantID:      opts.TenantID,
		tokenLifetime: opts.TokenLifetime,
		secrets:       map[string]*secret{},
		tokens:        map[string]issuedToken{},
		serveErrs:     make(chan error, 2),
		newConns:      map[net.Conn]struct{}{},
	}
	e.applyDefaults()
	if opts.RateLimit.Reads < 0 || opts.RateLimit.Window < 0 {
		return nil, fmt.Errorf("invalid rate limit %d/%s: use a positive number of requests per window, or zero for none", opts.RateLimit.Reads, opts.RateLimit.Window)
	}
	e.rate = newRateLimiter(opts.RateLimit, opts.ThrottleGrace, e.now())
	if !validTenant(e.tenantID) {
		return nil, fmt.Errorf("invalid tenant id %q: use letters, digits, '-' and '.' only", e.tenantID)
	}
	for name := range opts.Secrets {
		if err := validateSecretName(name); err != nil {
			return nil, fmt.Errorf("initial secrets: %w", err)
		}
	}
	return e, nil
}

// applyDefaults fills the fields a zero Options leaves empty, so that
// Start(Options{}) gives a working emulator with a silent log.
func (e *Emulator) applyDefaults() {
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.tenantID == "" {
		e.tenantID = DefaultTenantID
	}
	if e.tokenLifetime <= 0 {
		e.tokenLifetime = DefaultTokenLifetime
	}
}

// listenAddrs returns the two listen addresses, an ephemeral loopback port
// for each one not given, and refuses any address that is not loopback: the
// emulator hands out tokens to whoever asks, so it must not be reachable
// from another machine.
func listenAddrs(opts Options) (vaultAddr, identityAddr string, err error) {
	vaultAddr, identityAddr = opts.VaultAddr, opts.IdentityAddr
	if vaultAddr == "" {
		vaultAddr = "127.0.0.1:0"
	}
	if identityAddr == "" {
		identityAddr = "127.0.0.1:0"
	}
	if err := CheckLoopback(vaultAddr); err != nil {
		return "", "", fmt.Errorf("vault listen address: %w", err)
	}
	if err := CheckLoopback(identityAddr); err != nil {
		return "", "", fmt.Errorf("identity listen address: %w", err)
	}
	return vaultAddr, identityAddr, nil
}

// generateCredentials makes this instance's identity header, federated
// token and TLS CA afresh on every start: nothing of the kind is baked into
// the binary, and a client trusts only the one emulator it was given.
func (e *Emulator) generateCredentials() error {
	var err error
	if e.identityHeader, err = randomHex(16); err != nil {
		return err
	}
	if e.federatedToken, err = newFederatedToken(e.tenantID); err != nil {
		return err
	}
	if e.caPEM, e.caPool, e.tlsCert, err = newTLSMaterial(); err != nil {
		return fmt.Errorf("generate test ca: %w", err)
	}
	return nil
}

// listenBoth opens the vault and identity listeners, closing the first if
// the second fails so a failed Start leaks no port.
func listenBoth(vaultAddr, identityAddr string) (vl, il net.Listener, err error) {
	vl, err = net.Listen("tcp", vaultAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen vault: %w", err)
	}
	il, err = net.Listen("tcp", identityAddr)
	if err != nil {
		vl.Close()
		return nil, nil, fmt.Errorf("listen identity: %w", err)
	}
	return vl, il, nil
}

// buildServers configures the vault server (TLS) and the identity server
// (plain HTTP, as the real managed-identity endpoints are); both track new
// connections for Close.
func (e *Emulator) buildServers() {
	errLog := slog.NewLogLogger(e.log.Handler(), slog.LevelDebug)
	// HTTP/1.1 only: an HTTP/2 server's graceful shutdown waits a full
	// second for clients to hang up after GOAWAY, which would make every
	// test's Close take a second. The SDK speaks HTTP/1.1 to it just as well.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	e.vaultSrv = &http.Server{
		Handler:           e.vaultHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ConnState:         e.trackConn,
		TLSConfig: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{e.tlsCert},
		},
		ErrorLog:  errLog,
		Protocols: &protocols,
	}
	e.identitySrv = &http.Server{
		Handler:           e.identityHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ConnState:         e.trackConn,
		ErrorLog:          errLog,
	}
}

// Close stops both listeners, waiting up to five seconds per listener for
// requests in flight. It is safe to call more than once.
func (e *Emulator) Close() error {
	e.closeOnce.Do(func() {
		var errs []error
		for _, s := range []*http.Server{e.vaultSrv, e.identitySrv} {
			errs = append(errs, e.shutdown(s))
		}
		for range 2 {
			if err := <-e.serveErrs; err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs = append(errs, err)
			}
		}
		e.closeErr = errors.Join(errs...)
		e.log.Info("kv-emulator stopped")
	})
	return e.closeErr
}

// shutdown stops s gracefully within five seconds. http.Server.Shutdown
// waits up to 5 s for connections that never sent a request (the client
// transport dials spares under load); they carry nothing, so each round
// closes them, including any accepted while the listener was closing.
func (e *Emulator) shutdown(s *http.Server) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.connsMu.Lock()
		for c := range e.newConns {
			_ = c.Close()
		}
		e.connsMu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := s.Shutdown(ctx)
		cancel()
		switch {
		case err == nil || errors.Is(err, net.ErrClosed):
			return nil
		case !errors.Is(err, context.DeadlineExceeded):
			return errors.Join(err, s.Close())
		case time.Now().After(deadline):
			return errors.Join(fmt.Errorf("graceful shutdown: %w", err), s.Close())
		}
	}
}

// trackConn remembers connections in StateNew, for Close.

func (e *Emulator) trackConn(c net.Conn, st http.ConnState) {
	e.connsMu.Lock()
	defer e.connsMu.Unlock()
	if st == http.StateNew {
		e.newConns[c] = struct{}{}
	} else {
		delete(e.newConns, c)
	}
}

// VaultURL is the vault's URL, "https://127.0.0.1:PORT/".
func (e *Emulator) VaultURL() string { return e.vaultURL }

// AuthorityHost is the Entra authority for workload identity
// (AZURE_AUTHORITY_HOST); it is served on the TLS listener.
func (e *Emulator) AuthorityHost() string { return e.vaultURL }

// TenantID is the tenant announced in the challenge and served by the authority.
func (e *Emulator) TenantID() string { return e.tenantID }

// IdentityEndpoint is the App Service managed-identity endpoint, the value for
// IDENTITY_ENDPOINT.
func (e *Emulator) IdentityEndpoint() string { return "http://" + e.identityAddr + appServicePath }

// IdentityHeader is the value for IDENTITY_HEADER; requests without it are refused.
func (e *Emulator) IdentityHeader() string { return e.identityHeader }

// IdentityAddr is the identity listener's host:port. The IMDS path
// /metadata/identity/oauth2/token is served there too.
func (e *Emulator) IdentityAddr() string { return e.identityAddr }

// CACertPEM is the PEM of the CA that signed the vault's certificate.
func (e *Emulator) CACertPEM() []byte { return append([]byte(nil), e.caPEM...) }

// CertPool is a pool holding only the emulator's CA.
func (e *Emulator) CertPool() *x509.CertPool { return e.caPool.Clone() }

// HTTPClient returns a new client that trusts the emulator's CA.
func (e *Emulator) HTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: e.CertPool(), MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: t}
}

// FederatedToken is the client assertion the authority accepts; tests write it
// to the file named by AZURE_FEDERATED_TOKEN_FILE.
func (e *Emulator) FederatedToken() string { return e.federatedToken }

// SetFault sets the fault the vault data plane injects.
func (e *Emulator) SetFault(f Fault) {
	e.mu.Lock()
	e.fault = f
	e.mu.Unlock()
	e.log.Info("fault set", "mode", f.Mode.String(), "retry_after", f.RetryAfter, "count", f.Count)
}

// Requests returns a copy of the requests served so far, oldest first.
func (e *Emulator) Requests() []Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Request(nil), e.requests...)
}

// ResetRequests forgets the requests served so far.
func (e *Emulator) ResetRequests() {
	e.mu.Lock()
	e.requests = nil
	e.mu.Unlock()
}

func (e *Emulator) record(r *http.Request, status int, kind string) {
	e.mu.Lock()
	if len(e.requests) >= maxRequestLog {
		e.requests = append(e.requests[:0], e.requests[len(e.requests)-maxRequestLog/2:]...)
	}
	e.requests = append(e.requests, Request{Time: e.now(), Method: r.Method, Path: r.URL.Path, Status: status, Kind: kind})
	e.mu.Unlock()
	e.log.Debug("request", "kind", kind, "method", r.Method, "path", r.URL.Path, "status", status)
}

// SetIdentityFault sets the fault the token endpoints (App Service, IMDS
// and the Entra token endpoint) inject: FaultOutage answers 503,
// FaultThrottle 429 with Retry-After, FaultForbidden 400 "identity not
// found" (what IMDS answers for an identity not assigned to the VM). It is
// separate from SetFault so a test can fail token requests and vault reads
// independently.
func (e *Emulator) SetIdentityFault(f Fault) {
	e.mu.Lock()
	e.idFault = f
	e.mu.Unlock()
	e.log.Info("identity fault set", "mode", f.Mode.String(), "retry_after", f.RetryAfter, "count", f.Count)
}

// takeFault returns the active vault fault if its mode is one of modes,
// consuming one use of a counted fault.
func (e *Emulator) takeFault(modes ...FaultMode) (Fault, bool) {
	return e.take(&e.fault, modes)
}

// takeIdentityFault is takeFault for the token endpoints.
func (e *Emulator) takeIdentityFault() (Fault, bool) {
	return e.take(&e.idFault, []FaultMode{FaultOutage, FaultThrottle, FaultForbidden})
}

func (e *Emulator) take(slot *Fault, modes []FaultMode) (Fault, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f := *slot
	for _, m := range modes {
		if f.Mode != m || m == FaultNone {
			continue
		}
		if f.Count > 0 {
			slot.Count--
			if slot.Count == 0 {
				*slot = Fault{}
			}
		}
		return f, true
	}
	return Fault{}, false
}

// retryAfterSeconds is f's Retry-After in whole seconds, at least one.
func retryAfterSeconds(f Fault) int64 {
	secs := int64(math.Ceil(f.RetryAfter.Seconds()))
	if secs <= 0 {
		secs = 1
	}
	return secs
}

// CheckLoopback returns an error unless addr is host:port with a loopback host
// (an IP literal or "localhost").
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address: the emulator issues tokens to anyone and must listen on 127.0.0.1, ::1 or localhost only", addr)
	}
	return nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func validTenant(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
