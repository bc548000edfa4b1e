// Package app wires the sidecar together: configuration, credential, vault
// client, cache and refresher, gRPC and ops listeners, all under one errgroup
// with a graceful shutdown.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/secretproxy/secretproxy/sidecar/internal/accesstoken"
	"github.com/secretproxy/secretproxy/sidecar/internal/cache"
	"github.com/secretproxy/secretproxy/sidecar/internal/clientauth"
	"github.com/secretproxy/secretproxy/sidecar/internal/config"
	"github.com/secretproxy/secretproxy/sidecar/internal/connlimit"
	"github.com/secretproxy/secretproxy/sidecar/internal/grpcapi"
	"github.com/secretproxy/secretproxy/sidecar/internal/keyvault"
	"github.com/secretproxy/secretproxy/sidecar/internal/keyvault/kvconfig"
	"github.com/secretproxy/secretproxy/sidecar/internal/metrics"
	"github.com/secretproxy/secretproxy/sidecar/internal/ops"
	"github.com/secretproxy/secretproxy/sidecar/internal/source"
)

// Options are what the binary and the tests inject.
type Options struct {
	// Version goes into secretproxy_build_info and the start log.
	Version string
	// Logger; nil builds one from cfg.Log writing to LogOutput (stderr when nil).
	Logger    *slog.Logger
	LogOutput io.Writer
	// KeyVault carries the HTTP transport (tests trust the emulator's CA with it).
	KeyVault keyvault.Options
	// Registry receives the metrics; nil makes a private one.
	Registry *prometheus.Registry
	// ThrottleSpread is the cache's first spread after a 429 (cache.Options);
	// default 10 s. Tests shorten it.
	ThrottleSpread time.Duration
	// ShutdownTimeout bounds the graceful stop of the gRPC server. Default 8 s,
	// inside Kubernetes' default 30 s grace period and the 10 s docs/reference/api.md promises.
	ShutdownTimeout time.Duration
}

// App is a sidecar with its listeners open.
type App struct {
	cfg      config.Config
	o        Options
	log      *slog.Logger
	reg      *prometheus.Registry
	cache    *cache.Cache
	tokens   *accesstoken.Cache
	grpc     *grpcapi.Server
	tcp      net.Listener
	unix     net.Listener
	opsLis   net.Listener
	ops      *http.Server
	bearer   *clientauth.Tokens // nil without clientAuth.tokenFile
	backend  backend
	draining atomic.Bool
	start    time.Time
}

// newLogger builds the slog logger of cfg.Log.
func newLogger(l config.Log, w io.Writer) (*slog.Logger, error) {
	lvl, err := config.ParseLevel(l.Level)
	if err != nil {
		return nil, err
	}
	ho := &slog.HandlerOptions{Level: lvl}
	if l.Format == "text" {
		return slog.New(slog.NewTextHandler(w, ho)), nil
	}
	return slog.New(slog.NewJSONHandler(w, ho)), nil
}

// New validates cfg, builds every part and opens the listeners. Nothing is
// served until Run.
func New(cfg config.Config, o Options) (a *App, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.CheckEnvironment(o.KeyVault.Getenv); err != nil {
		return nil, err
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 8 * time.Second
	}
	log := o.Logger
	if log == nil {
		w := o.LogOutput
		if w == nil {
			w = os.Stderr
		}
		if log, err = newLogger(cfg.Log, w); err != nil {
			return nil, err
		}
	}
	reg := o.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	a = &App{cfg: cfg, o: o, log: log, reg: reg, start: time.Now()}
	if err := a.build(metrics.New(reg, cfg.DeclaredNames(), o.Version)); err != nil {
		return nil, err
	}
	if err := a.listen(); err != nil {
		a.closeListeners()
		return nil, err
	}
	return a, nil
}

// build makes every part: the bearer token follower, the backend, the cache,
// the access-token cache, the gRPC server and the ops server.
func (a *App) build(m *metrics.Metrics) (err error) {
	cfg, o, log := a.cfg, a.o, a.log
	if cfg.ClientAuth.TokenFile != "" {
		// Followed for rotation: Kubernetes swaps a mounted Secret in place.
		if a.bearer, err = clientauth.New(cfg.ClientAuth.TokenFile, clientauth.Options{Logger: log}); err != nil {
			return err
		}
	}
	if a.backend, err = openBackend(cfg, o, m); err != nil {
		return err
	}
	a.cache = cache.New(cfg, a.backend.source, cache.Options{Metrics: m, Logger: log, ThrottleSpread: o.ThrottleSpread})
	a.tokens = accesstoken.New(a.backend.tokens, accesstoken.Options{
		Scopes: cfg.AccessTokens.Scopes, RefreshBefore: cfg.AccessTokens.RefreshBefore.D(),
		Metrics: m, Logger: log, Reason: a.backend.tokenFailure,
	})
	var auth interface{ Allow(string) bool }
	if a.bearer != nil {
		auth = a.bearer
	}
	a.grpc = grpcapi.NewServer(grpcapi.ServerOptions{Auth: auth,
		Cache: a.cache, Names: a.backend.names, Tokens: a.tokens, Metrics: m, Logger: log,
		AllowedUIDs: cfg.ClientAuth.AllowedUIDs, Reflection: cfg.Listen.Reflection,
	})
	a.ops = &http.Server{
		Handler:           ops.Handler(a.reg, a.ready),
		ReadHeaderTimeout: 5 * time.Second,
		// Accept errors and the like go to the structured log, not stderr as text.
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 30 * time.Second,
	}
	return nil
}

// listen opens the listeners. On an error, the caller closes those opened.
// Each listener has its own bound, so that a flood of one (every process of
// the pod can reach the gRPC listeners) never takes the file descriptors the
// kubelet's probes need on the ops listener.
func (a *App) listen() error {
	l, log := a.cfg.Listen, a.log
	maxGRPC, maxOps := l.ConnectionLimits()
	if l.GRPC != "" {
		tcp, err := net.Listen("tcp", l.GRPC)
		if err != nil {
			return fmt.Errorf("listen on listen.grpc: %w", err)
		}
		a.tcp = connlimit.Wrap(tcp, maxGRPC, "grpc", log)
	}
	if l.Unix != "" {
		unix, err := listenUnix(l.Unix)
		if err != nil {
			return err
		}
		a.unix = connlimit.Wrap(unix, maxGRPC, "unix", log)
	}
	if l.Ops != "" {
		ol, err := net.Listen("tcp", l.Ops)
		if err != nil {
			return fmt.Errorf("listen on listen.ops: %w", err)
		}
		a.opsLis = connlimit.Wrap(ol, maxOps, "ops", log)
	}
	return nil
}

// backend is what the app takes from the secret backend.
type backend struct {
	source source.Source
	// names is the backend's rule for secret names, checked by the API.
	names source.NameRule
	// tokens fetches GetAccessToken's tokens with the backend's identity;
	// tokenFailure says why a fetch failed, in words a caller may see.
	tokens       accesstoken.Source
	tokenFailure func(error) string
	// describe is what the start log says about the backend.
	describe []any
}

// openBackend builds the secret backend the configuration names. It is the
// one place that knows which backends exist: a second one is a package beside
// internal/keyvault (a source.Source, its name rule, its configuration
// section) and one case here.
func openBackend(cfg config.Config, o Options, m *metrics.Metrics) (backend, error) {
	switch {
	case cfg.Vault.URL != "":
		return openKeyVault(cfg.Vault, cfg.Auth, o.KeyVault, m)
	default:
		// Validation requires vault.url; this says so if a caller skipped it.
		return backend{}, errors.New("no secret backend configured: set vault.url")
	}
}

// openKeyVault builds the Key Vault backend: one credential for the vault
// client and for GetAccessToken's tokens.
func openKeyVault(v kvconfig.Vault, auth kvconfig.Auth, kvo keyvault.Options, m *metrics.Metrics) (backend, error) {
	kvo.Metrics = m
	cred, err := keyvault.NewCredential(auth, kvo)
	if err != nil {
		return backend{}, err
	}
	kv, err := keyvault.NewWithCredential(v, cred, kvo)
	if err != nil {
		return backend{}, err
	}
	return backend{
		source: kv, names: kvconfig.Names,
		tokens: keyvault.AccessTokenSource(cred), tokenFailure: keyvault.TokenFailureReason,
		describe: []any{"vault", v.URL, "auth", kvconfig.Mode(auth, kvo.Getenv)},
	}, nil
}

// listenUnix creates the socket with mode 0660: the umask is tightened while
// the socket file is created so that it is never world-accessible, even for an
// instant; the group (the pod's fsGroup) lets the application container in.
func listenUnix(path string) (net.Listener, error) {
	if err := removeStale(path); err != nil {
		return nil, err
	}
	old := syscall.Umask(0o117)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on listen.unix: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("chmod listen.unix: %w", err)
	}
	return l, nil
}

// removeStale removes a socket left by a previous run; it refuses to remove
// anything that is not a socket, or a socket something still listens on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check listen.unix: %w", err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("listen.unix %s exists and is not a socket: refusing to remove it", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("listen.unix %s is in use by another process", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove stale socket listen.unix: %w", err)
	}
	return nil
}

// GRPCAddr is the TCP address of the API, "" when off.
func (a *App) GRPCAddr() string { return addr(a.tcp) }

// UnixPath is the unix socket of the API, "" when off.
func (a *App) UnixPath() string { return addr(a.unix) }

// OpsAddr is the address of the ops listener, "" when off.
func (a *App) OpsAddr() string { return addr(a.opsLis) }

func addr(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

func (a *App) closeListeners() {
	for _, l := range []net.Listener{a.tcp, a.unix, a.opsLis} {
		if l != nil {
			l.Close()
		}
	}
}

func (a *App) ready() (bool, string) {
	if a.draining.Load() {
		return false, "shutting down"
	}
	ok, waiting := a.cache.Ready()
	if ok {
		return true, ""
	}
	return false, "waiting for secrets (not loaded, or older than maxStale): " + strings.Join(waiting, ", ")
}

// Run serves until ctx ends (SIGTERM), then shuts down gracefully: health
// NOT_SERVING, watch streams end UNAVAILABLE, unary calls finish. A serve
// error ends it too and is returned.
func (a *App) Run(ctx context.Context) error {
	attrs := append([]any{"version", a.o.Version}, a.backend.describe...)
	a.log.Info("secret-proxy starting", append(attrs, "secrets", len(a.cfg.Secrets), "accessTokenScopes", len(a.cfg.AccessTokens.Scopes),
		"grpc", a.GRPCAddr(), "unix", a.UnixPath(), "ops", a.OpsAddr())...)

	g, gctx := errgroup.WithContext(context.Background())
	rctx, stopRefresher := context.WithCancel(context.Background())
	defer stopRefresher()

	g.Go(func() error { return a.cache.Run(rctx) })
	g.Go(func() error { return a.tokens.Run(rctx) })
	for _, l := range []net.Listener{a.tcp, a.unix} {
		if l == nil {
			continue
		}
		g.Go(func() error {
			// ErrServerStopped: a shutdown came before this listener started.
			if err := a.grpc.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				return fmt.Errorf("serve gRPC on %s: %w", l.Addr(), err)
			}
			return nil
		})
	}
	if a.opsLis != nil {
		g.Go(func() error {
			if err := a.ops.Serve(a.opsLis); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve ops on %s: %w", a.opsLis.Addr(), err)
			}
			return nil
		})
	}
	stopping := make(chan struct{})
	g.Go(func() error { a.watchReadiness(stopping); return nil })
	if a.bearer != nil {
		g.Go(func() error { a.bearer.Run(stopping); return nil })
	}
	g.Go(func() error {
		select {
		case <-ctx.Done():
			a.log.Info("shutting down", "reason", "signal")
		case <-gctx.Done():
			a.log.Error("shutting down after a listener failed")
		}
		close(stopping)
		a.shutdown()
		stopRefresher()
		return nil
	})
	err := g.Wait()
	if a.unix != nil {
		os.Remove(a.cfg.Listen.Unix)
	}
	if err != nil {
		return err
	}
	a.log.Info("secret-proxy stopped")
	return nil
}

func (a *App) shutdown() {
	a.draining.Store(true)
	a.grpc.Drain()   // health NOT_SERVING for good; health watches end
	a.cache.Drain()  // secret watch streams end UNAVAILABLE
	a.tokens.Drain() // calls waiting for a token fetch end UNAVAILABLE
	done := make(chan struct{})
	go func() {
		a.grpc.GracefulStop() // unary calls in flight finish
		close(done)
	}()
	t := time.NewTimer(a.o.ShutdownTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		a.log.Warn("graceful stop timed out; closing the remaining connections", "timeout", a.o.ShutdownTimeout)
		a.grpc.Stop()
		<-done
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := a.ops.Shutdown(ctx); err != nil {
		a.ops.Close()
	}
}

// releaseStartupMemory runs once, when the pod first becomes ready: start-up
// (TLS handshakes, JSON, the first read of every secret) leaves megabytes of
// garbage and free heap that the runtime would otherwise hand back to the OS
// only slowly, so idle RSS would stay high for minutes (docs/benchmarks.md).
// One forced collection then costs about a millisecond. Tests replace it.
var releaseStartupMemory = debug.FreeOSMemory

// watchReadiness keeps the health service in step with the cache. It wakes on
// every change and once a second, since maxStale expires with time alone.
func (a *App) watchReadiness(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	was := false
	var released sync.Once
	for {
		ch := a.cache.Changed()
		ok, waiting := a.cache.Ready()
		if ok != was {
			if a.draining.Load() {
				return
			}
			a.grpc.SetReady(ok)
			if ok {
				a.log.Info("ready: every declared secret is loaded", "startToReady", time.Since(a.start))
				released.Do(releaseStartupMemory)
			} else {
				a.log.Warn("not ready", "waiting", waiting)
			}
			was = ok
		}
		select {
		case <-ch:
		case <-t.C:
		case <-stop:
			return
		}
	}
}
