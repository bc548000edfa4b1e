package grpcapi

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/secretproxy/secretproxy/proto/client"
	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
	"github.com/secretproxy/secretproxy/sidecar/internal/accesstoken"
	"github.com/secretproxy/secretproxy/sidecar/internal/cache"
	"github.com/secretproxy/secretproxy/sidecar/internal/metrics"
	"github.com/secretproxy/secretproxy/sidecar/internal/source"
)

// serviceName is the health service name of the API.
const serviceName = "secretproxy.v1.SecretService"

// streamWorkers is how many goroutines serve calls (grpc.NumStreamWorkers):
// enough for 64 calls at once over one connection, the load of
// docs/benchmarks.md (16 left a third of the stack growth there). Each idle
// one holds a few KiB of stack.
const streamWorkers = 64

// ServerOptions configure the gRPC server.
type ServerOptions struct {
	Cache *cache.Cache
	// Names is the backend's rule for secret names (required).
	Names source.NameRule
	// Tokens serves GetAccessToken; nil: every scope is refused as undeclared.
	Tokens  *accesstoken.Cache
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	// Token, when not empty, is the bearer token every caller must send.
	Token string
	// Auth, when set, decides on the bearer token instead of Token: it is
	// given the whole authorization header value ("Bearer <token>").
	Auth interface {
		Allow(authorization string) bool
	}
	// AllowedUIDs, when not empty, are the only peer uids accepted on the unix socket.
	AllowedUIDs []int
	// Reflection turns on gRPC server reflection.
	Reflection bool
}

// Server is the gRPC server with its health service.
type Server struct {
	*grpc.Server
	Health    *health.Server
	drain     chan struct{}
	drainOnce sync.Once
}

// NewServer assembles the gRPC server: the API, grpc.health.v1 (NOT_SERVING
// until SetReady), and one interceptor per kind that does, in a fixed order,
// recovery, metrics, logging and auth.
func NewServer(o ServerOptions) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	ic := &interceptors{m: o.Metrics, log: o.Logger, allowedUIDs: o.AllowedUIDs, auth: o.Auth}
	if ic.auth == nil && o.Token != "" {
		ic.auth = staticToken([]byte("Bearer " + o.Token))
	}
	s := grpc.NewServer(
		grpc.Creds(peerCredentials()),
		grpc.MaxRecvMsgSize(256<<10),
		// What the project's client accepts: a larger message fails the
		// call RESOURCE_EXHAUSTED on this side, where it is counted,
		// instead of on the client's.
		grpc.MaxSendMsgSize(client.MaxMessageBytes),
		// A connection that has not finished its HTTP/2 handshake after
		// this is closed (default 120 s): local clients take milliseconds,
		// and each connection holds a slot of listen.maxConnections.
		grpc.ConnectionTimeout(10*time.Second),
		// Clients are local and hold watch streams for hours: let them
		// keep connections alive with pings (the default would GOAWAY a
		// client that pings more often than every 5 minutes).
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.UnaryInterceptor(ic.unary),
		grpc.StreamInterceptor(ic.stream),
		// Calls run on long-lived goroutines whose stacks have already
		// grown, instead of a new goroutine per call that grows its stack
		// (runtime.morestack, a stack copy) on every call: 8-15 % of the
		// sidecar's CPU under load in the profile of docs/benchmarks.md.
		// Above streamWorkers calls at once, grpc falls back to a
		// goroutine per call.
		grpc.NumStreamWorkers(streamWorkers),
	)
	secretproxyv1.RegisterSecretServiceServer(s, newService(o.Cache, o.Names).WithTokens(o.Tokens))
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	hs.SetServingStatus(serviceName, healthpb.HealthCheckResponse_NOT_SERVING)
	drain := make(chan struct{})
	healthpb.RegisterHealthServer(s, drainingHealth{Server: hs, drain: drain})
	if o.Reflection {
		reflection.Register(s)
	}
	if o.Metrics != nil {
		for svc, info := range s.GetServiceInfo() {
			for _, m := range info.Methods {
				o.Metrics.InitMethod("/"+svc+"/"+m.Name, m.IsServerStream)
			}
		}
	}
	return &Server{Server: s, Health: hs, drain: drain}
}

// Drain sets every health status to NOT_SERVING for good and ends health
// Watch streams with UNAVAILABLE, so that GracefulStop waits only for calls
// that finish on their own.
func (s *Server) Drain() {
	s.Health.Shutdown()
	s.drainOnce.Do(func() { close(s.drain) })
}

// SetReady flips both health services.
func (s *Server) SetReady(ready bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ready {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.Health.SetServingStatus("", st)
	s.Health.SetServingStatus(serviceName, st)
}

type interceptors struct {
	m    *metrics.Metrics
	log  *slog.Logger
	auth interface {
		Allow(authorization string) bool
	}
	allowedUIDs []int
}

// staticToken accepts one bearer token.
type staticToken []byte

func (s staticToken) Allow(authorization string) bool {
	return subtle.ConstantTimeCompare([]byte(authorization), s) == 1
}

func (ic *interceptors) recovered(method string) error {
	// The stack names code, not values; the panic value itself is left out
	// because it could carry request or secret data.
	ic.log.Error("panic in gRPC handler", "method", method, "stack", string(debug.Stack()))
	return status.Error(codes.Internal, "internal error in secret-proxy; see its logs")
}

func (ic *interceptors) method(full string) *metrics.Method {
	if ic.m == nil {
		return nil
	}
	return ic.m.Method(full)
}

// unary is recovery, metrics, logging and auth in that order, written as one
// function rather than four chained ones: grpc's chaining allocates a closure
// per interceptor per call, which the cache-hit path cannot afford.
// Per-call logs are at debug only: a line per call would cost more than the call.
func (ic *interceptors) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	mm := ic.method(info.FullMethod)
	debugLog := ic.log.Enabled(ctx, slog.LevelDebug)
	var start time.Time
	if mm != nil || debugLog {
		start = time.Now()
	}
	defer func() {
		if r := recover(); r != nil {
			resp, err = nil, ic.recovered(info.FullMethod)
		}
		if mm != nil {
			mm.Done(status.Code(err), time.Since(start).Seconds())
		}
		if debugLog {
			ic.log.LogAttrs(ctx, slog.LevelDebug, "grpc call", slog.String("method", info.FullMethod),
				slog.String("code", status.Code(err).String()), slog.Duration("duration", time.Since(start)))
		}
	}()
	if err := ic.authorize(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

// stream is unary's counterpart for streams.
func (ic *interceptors) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	ctx := ss.Context()
	mm := ic.method(info.FullMethod)
	debugLog := ic.log.Enabled(ctx, slog.LevelDebug)
	start := time.Now()
	if debugLog {
		ic.log.LogAttrs(ctx, slog.LevelDebug, "grpc stream started", slog.String("method", info.FullMethod))
	}
	defer func() {
		if r := recover(); r != nil {
			err = ic.recovered(info.FullMethod)
		}
		if mm != nil {
			mm.Done(status.Code(err), time.Since(start).Seconds())
		}
		if debugLog {
			ic.log.LogAttrs(ctx, slog.LevelDebug, "grpc stream ended", slog.String("method", info.FullMethod),
				slog.String("code", status.Code(err).String()), slog.Duration("duration", time.Since(start)))
		}
	}()
	if err := ic.authorize(ctx, info.FullMethod); err != nil {
		return err
	}
	return h(srv, ss)
}

// authorize checks the caller's peer uid (unix socket) and bearer token.
// Health is open to all: kubelet probes carry no token, and it reveals nothing.
func (ic *interceptors) authorize(ctx context.Context, method string) error {
	if strings.HasPrefix(method, "/grpc.health.v1.Health/") {
		return nil
	}
	if len(ic.allowedUIDs) > 0 {
		if p, ok := peer.FromContext(ctx); ok {
			if pi, ok := p.AuthInfo.(peerInfo); ok && pi.Unix && (!pi.HasCred || !slices.Contains(ic.allowedUIDs, pi.UID)) {
				ic.log.Warn("refused a unix-socket caller whose uid is not in clientAuth.allowedUIDs", "uid", pi.UID, "pid", pi.PID)
				return status.Error(codes.Unauthenticated, "this process's uid may not call secret-proxy: add it to clientAuth.allowedUIDs")
			}
		}
	}
	if ic.auth == nil {
		return nil
	}
	vals := metadata.ValueFromIncomingContext(ctx, "authorization")
	if len(vals) != 1 {
		return status.Error(codes.Unauthenticated, `missing bearer token: send "authorization: Bearer <token>" with the token from the sidecar's clientAuth.tokenFile`)
	}
	if !ic.auth.Allow(vals[0]) {
		return status.Error(codes.Unauthenticated, "wrong bearer token: use the token from the sidecar's clientAuth.tokenFile")
	}
	return nil
}
