package grpcapi

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
	"github.com/secretproxy/secretproxy/sidecar/internal/cache"
	"github.com/secretproxy/secretproxy/sidecar/internal/config"
	"github.com/secretproxy/secretproxy/sidecar/internal/metrics"
	"github.com/secretproxy/secretproxy/sidecar/internal/source"
)

// staticVault is a hand-written source.Source with fixed answers, the
// backend of these tests; the Key Vault backend is tested in keyvault and app.
type staticVault map[string]string

// testNames is the name rule of the tests' backend: letters, digits, '-' and
// '.' (which Key Vault refuses), 1 to 63 of them. The API knows no backend's
// rule but the one it is given.
var testNames = source.NameRule{
	Valid: func(s string) bool {
		if len(s) == 0 || len(s) > 63 {
			return false
		}
		for _, c := range s {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
				return false
			}
		}
		return true
	},
	Hint: "a test secret name: use 1-63 of [A-Za-z0-9.-]",
}

func (v staticVault) Get(_ context.Context, name, _ string) (source.Secret, error) {
	val, ok := v[name]
	if !ok {
		return source.Secret{}, source.ErrNotFound
	}
	return source.Secret{Value: val, Version: "v1"}, nil
}

func loadedCache(tb testing.TB, m *metrics.Metrics, names ...string) *cache.Cache {
	tb.Helper()
	cfg := config.Default()
	vault := staticVault{}
	for _, n := range names {
		cfg.Secrets = append(cfg.Secrets, config.Secret{Name: n})
		vault[n] = "test-value-of-" + n
	}
	c := cache.New(cfg, vault, cache.Options{Metrics: m})
	c.Pass(context.Background(), cache.AllSecrets)
	return c
}

func newInterceptors(m *metrics.Metrics, token string) *interceptors {
	ic := &interceptors{m: m, log: slog.New(slog.NewJSONHandler(discard{}, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	if token != "" {
		ic.auth = staticToken("Bearer " + token)
	}
	return ic
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

const getMethod = "/secretproxy.v1.SecretService/GetSecret"

func TestHitAllocatesOnlyTheResponse(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry(), []string{"db-password"}, "test")
	m.InitMethod(getMethod, false)
	c := loadedCache(t, m, "db-password")
	svc := newService(c, testNames)
	ic := newInterceptors(m, "")
	info := &grpc.UnaryServerInfo{FullMethod: getMethod}
	req := &secretproxyv1.GetSecretRequest{Name: "db-password"}
	h := func(ctx context.Context, r any) (any, error) {
		return svc.GetSecret(ctx, r.(*secretproxyv1.GetSecretRequest))
	}
	ctx := context.Background()

	if n := testing.AllocsPerRun(1000, func() { c.Get(ctx, "db-password") }); n != 0 {
		t.Errorf("cache hit allocates %v times, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { ic.unary(ctx, req, info, h) }); n != 1 {
		t.Errorf("GetSecret hit through the interceptors allocates %v times, want 1 (the response)", n)
	}
	if hits := testutil.ToFloat64(m.ReadHitCounter); hits < 2000 {
		t.Errorf("hits counted = %v, want every call", hits)
	}
}

func TestRecoveryInterceptor(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry(), nil, "test")
	m.InitMethod(getMethod, false)
	ic := newInterceptors(m, "")
	_, err := ic.unary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: getMethod}, func(context.Context, any) (any, error) {
		panic("test-panic-value-1")
	})
	st := status.Convert(err)
	if st.Code() != codes.Internal || strings.Contains(st.Message(), "test-panic-value-1") {
		t.Errorf("after a panic: %s %q, want INTERNAL without the panic value", st.Code(), st.Message())
	}
	if n := testutil.ToFloat64(m.GRPCHandled.WithLabelValues("unary", "secretproxy.v1.SecretService", "GetSecret", "Internal")); n != 1 {
		t.Errorf("handled{Internal} = %v after a panic, want 1", n)
	}
}

func TestAuthInterceptor(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry(), nil, "test")
	m.InitMethod(getMethod, false)
	ic := newInterceptors(m, "test-token-1")
	ok := func(context.Context, any) (any, error) { return "ok", nil }
	tests := []struct {
		name   string
		ctx    context.Context
		method string
		code   codes.Code
	}{
		{"right token", metadataCtx("Bearer test-token-1"), getMethod, codes.OK},
		{"wrong token", metadataCtx("Bearer test-token-2"), getMethod, codes.Unauthenticated},
		{"no metadata", context.Background(), getMethod, codes.Unauthenticated},
		{"health needs no token", context.Background(), "/grpc.health.v1.Health/Check", codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ic.unary(tt.ctx, nil, &grpc.UnaryServerInfo{FullMethod: tt.method}, ok)
			if status.Code(err) != tt.code {
				t.Errorf("got %v, want %s", err, tt.code)
			}
		})
	}
}

// serve starts the real gRPC server on 127.0.0.1 and returns a client.
func serve(tb testing.TB, o ServerOptions) secretproxyv1.SecretServiceClient {
	tb.Helper()
	if o.Names.Valid == nil {
		o.Names = testNames
	}
	s := NewServer(o)
	s.SetReady(true)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go s.Serve(l)
	tb.Cleanup(s.Stop)
	cc, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cc.Close() })
	return secretproxyv1.NewSecretServiceClient(cc)
}

func TestServerMetricsPreinitialised(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, []string{"a"}, "test")
	c := serve(t, ServerOptions{Cache: loadedCache(t, m, "a"), Metrics: m})
	if _, err := c.GetSecret(t.Context(), &secretproxyv1.GetSecretRequest{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetSecret(t.Context(), &secretproxyv1.GetSecretRequest{Name: "b"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("undeclared: %v", err)
	}
	for code, want := range map[string]float64{"OK": 1, "PermissionDenied": 1, "NotFound": 0} {
		got := testutil.ToFloat64(m.GRPCHandled.WithLabelValues("unary", "secretproxy.v1.SecretService", "GetSecret", code))
		if got != want {
			t.Errorf("grpc_server_handled_total{GetSecret,%s} = %v, want %v", code, got, want)
		}
	}
	// Every method of both services has its series before any call.
	if n := testutil.CollectAndCount(m.GRPCHandled); n < 7*17 {
		t.Errorf("grpc_server_handled_total has %d series, want every method x code pre-initialised", n)
	}
}

func BenchmarkCacheGetHit(b *testing.B) {
	c := loadedCache(b, metrics.New(prometheus.NewRegistry(), []string{"db-password"}, "bench"), "db-password")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Get(ctx, "db-password"); err != nil {
			b.Fatal(err)
		}
	}
}

// benchUnaryHit runs GetSecret hits through the service and the interceptor,
// without a transport; token is the bearer token the server wants ("" for
// none) and ctx carries what the caller sends.
func benchUnaryHit(b *testing.B, token string, ctx context.Context) {
	m := metrics.New(prometheus.NewRegistry(), []string{"db-password"}, "bench")
	m.InitMethod(getMethod, false)
	svc := newService(loadedCache(b, m, "db-password"), testNames)
	ic := newInterceptors(m, token)
	info := &grpc.UnaryServerInfo{FullMethod: getMethod}
	req := &secretproxyv1.GetSecretRequest{Name: "db-password"}
	h := func(ctx context.Context, r any) (any, error) {
		return svc.GetSecret(ctx, r.(*secretproxyv1.GetSecretRequest))
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ic.unary(ctx, req, info, h); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetSecretHit(b *testing.B) { benchUnaryHit(b, "", context.Background()) }

func BenchmarkGetSecretHitWithToken(b *testing.B) {
	benchUnaryHit(b, "test-token-1", metadataCtx("Bearer test-token-1"))
}

// BenchmarkGetSecretHitLoopback is the whole call over a real loopback
// connection, gRPC framing included.
func BenchmarkGetSecretHitLoopback(b *testing.B) {
	m := metrics.New(prometheus.NewRegistry(), []string{"db-password"}, "bench")
	c := serve(b, ServerOptions{Cache: loadedCache(b, m, "db-password"), Metrics: m})
	ctx := context.Background()
	req := &secretproxyv1.GetSecretRequest{Name: "db-password"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.GetSecret(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

func metadataCtx(auth string) context.Context {
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", auth))
}

// TestConcurrentHitsShareOneMessage runs concurrent calls that marshal the
// same cached message; under -race it checks that sharing it is safe.
func TestConcurrentHitsShareOneMessage(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry(), []string{"a", "b"}, "test")
	c := serve(t, ServerOptions{Cache: loadedCache(t, m, "a", "b"), Metrics: m})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for range 50 {
				r, err := c.GetSecret(t.Context(), &secretproxyv1.GetSecretRequest{Name: "a"})
				if err != nil || r.GetSecret().GetValue() != "test-value-of-a" {
					errs <- fmt.Errorf("GetSecret: %v", err)
					return
				}
				if _, err := c.ListSecrets(t.Context(), &secretproxyv1.ListSecretsRequest{}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if hits := testutil.ToFloat64(m.ReadHitCounter); hits != 16*50 {
		t.Errorf("hits = %v, want %d", hits, 16*50)
	}
}

// bareService answers GetSecret with a constant message: the floor the
// sidecar's hit path is compared with.
type bareService struct {
	secretproxyv1.UnimplementedSecretServiceServer
	resp *secretproxyv1.GetSecretResponse
}

func (b *bareService) GetSecret(context.Context, *secretproxyv1.GetSecretRequest) (*secretproxyv1.GetSecretResponse, error) {
	return b.resp, nil
}

func loopbackClient(b *testing.B, s *grpc.Server) secretproxyv1.SecretServiceClient {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(l)
	b.Cleanup(s.Stop)
	cc, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cc.Close() })
	return secretproxyv1.NewSecretServiceClient(cc)
}

func runParallel(b *testing.B, c secretproxyv1.SecretServiceClient) {
	req := &secretproxyv1.GetSecretRequest{Name: "db-password"}
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.GetSecret(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkLoopbackParallel compares the sidecar's GetSecret hit with a bare
// (sub-benchmarks server=sidecar and server=bare: `benchstat -col /server`)
// grpc-go server over one loopback connection, 8 callers on 2 cores.
func BenchmarkLoopbackParallel(b *testing.B) {
	b.Run("server=sidecar", func(b *testing.B) {
		m := metrics.New(prometheus.NewRegistry(), []string{"db-password"}, "bench")
		s := NewServer(ServerOptions{Cache: loadedCache(b, m, "db-password"), Metrics: m, Names: testNames})
		s.SetReady(true)
		runParallel(b, loopbackClient(b, s.Server))
	})
	b.Run("server=bare", func(b *testing.B) {
		c := loadedCache(b, metrics.New(prometheus.NewRegistry(), []string{"db-password"}, "bench"), "db-password")
		sec, err := c.Get(context.Background(), "db-password")
		if err != nil {
			b.Fatal(err)
		}
		s := grpc.NewServer()
		secretproxyv1.RegisterSecretServiceServer(s, &bareService{resp: &secretproxyv1.GetSecretResponse{Secret: sec}})
		runParallel(b, loopbackClient(b, s))
	})
}

// TestNameRuleIsTheBackends: the API checks a caller's name with the rule the
// backend supplied, and says that rule in the message: a name the rule
// refuses is INVALID_ARGUMENT with the rule's hint; a name it accepts (here
// "a.b", which Key Vault would refuse) is only undeclared.
func TestNameRuleIsTheBackends(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry(), []string{"a"}, "test")
	client := serve(t, ServerOptions{Cache: loadedCache(t, m, "a"), Names: testNames})
	tests := []struct {
		name string
		code codes.Code
		msg  string
	}{
		{"a_b", codes.InvalidArgument, `"a_b" is not a test secret name: use 1-63 of [A-Za-z0-9.-]`},
		{"a.b", codes.PermissionDenied, `secret "a.b" is not declared for this pod`},
		{"a", codes.OK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.GetSecret(t.Context(), &secretproxyv1.GetSecretRequest{Name: tt.name})
			assertStatus(t, err, tt.code, tt.msg)
			_, err = client.BatchGetSecrets(t.Context(), &secretproxyv1.BatchGetSecretsRequest{Names: []string{"a", tt.name}})
			assertStatus(t, err, tt.code, tt.msg)
		})
	}
	if !panics(func() { newService(loadedCache(t, m, "a"), source.NameRule{}) }) {
		t.Error("newService without a name rule must refuse to build")
	}
}

func panics(f func()) (p bool) {
	defer func() { p = recover() != nil }()
	f()
	return false
}
