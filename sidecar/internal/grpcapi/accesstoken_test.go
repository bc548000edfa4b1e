package grpcapi

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
	"github.com/secretproxy/secretproxy/sidecar/internal/accesstoken"
	"github.com/secretproxy/secretproxy/sidecar/internal/metrics"
)

const (
	sqlScope       = "https://database.windows.net/.default"
	pgScope        = "https://ossrdbms-aad.database.windows.net/.default"
	tokenMethod    = "/secretproxy.v1.SecretService/GetAccessToken"
	testTokenValue = "test-token-VALUE-never-printed"
)

// tokenCache answers every declared scope with testTokenValue for an hour,
// except scopes in failing, whose fetch fails with the given error.
func tokenCache(m *metrics.Metrics, failing map[string]error, scopes ...string) *accesstoken.Cache {
	src := accesstoken.SourceFunc(func(_ context.Context, scope string) (accesstoken.Token, error) {
		if err := failing[scope]; err != nil {
			return accesstoken.Token{}, err
		}
		return accesstoken.Token{Value: testTokenValue, Expires: time.Now().Add(time.Hour)}, nil
	})
	return accesstoken.New(src, accesstoken.Options{Scopes: scopes, Metrics: m})
}

// TestGetAccessTokenStatuses runs GetAccessToken over the real server: every
// answer's code, a message that says what to do, and never the token.
func TestGetAccessTokenStatuses(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry(), []string{"a"}, "test")
	failing := map[string]error{pgScope: errors.New("the identity endpoint answered HTTP 400 invalid_request")}
	on := serve(t, ServerOptions{Cache: loadedCache(t, m, "a"), Tokens: tokenCache(m, failing, sqlScope, pgScope), Metrics: m})
	off := serve(t, ServerOptions{Cache: loadedCache(t, m, "a")})
	for _, tc := range []struct {
		name   string
		c      secretproxyv1.SecretServiceClient
		scope  string
		code   codes.Code
		action string
	}{
		{"declared", on, sqlScope, codes.OK, ""},
		{"undeclared", on, "https://management.azure.com/.default", codes.PermissionDenied, "is not in accessTokens.scopes of the sidecar's configuration: add it there"},
		{"malformed", on, "https://database.windows.net/", codes.InvalidArgument, "ending in /.default"},
		{"whitespace", on, "https://database.windows.net/.default\n", codes.InvalidArgument, "no spaces"},
		{"endpoint fails", on, pgScope, codes.Unavailable, "HTTP 400 invalid_request; retry with backoff"},
		{"allowlist empty", off, sqlScope, codes.PermissionDenied, "accessTokens.scopes is empty"},
		{"allowlist empty, malformed", off, "nope", codes.InvalidArgument, "ending in /.default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := tc.c.GetAccessToken(t.Context(), &secretproxyv1.GetAccessTokenRequest{Scope: tc.scope})
			if tc.code == codes.OK {
				if err != nil || resp.GetToken() != testTokenValue || time.Until(resp.GetExpireTime().AsTime()) < 59*time.Minute {
					t.Fatalf("got %v, %v; want the token with its expiry", resp, err)
				}
				return
			}
			st := status.Convert(err)
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.action) {
				t.Errorf("got %s %q, want %s containing %q", st.Code(), st.Message(), tc.code, tc.action)
			}
			if strings.Contains(st.Message(), testTokenValue) {
				t.Errorf("message holds the token: %q", st.Message())
			}
		})
	}
}

// TestGetAccessTokenNeedsCallerAuth: the same bearer token as every other
// RPC, checked by the same interceptor.
func TestGetAccessTokenNeedsCallerAuth(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry(), []string{"a"}, "test")
	c := serve(t, ServerOptions{Cache: loadedCache(t, m, "a"), Tokens: tokenCache(m, nil, sqlScope), Metrics: m, Token: "test-client-token"})
	_, err := c.GetAccessToken(t.Context(), &secretproxyv1.GetAccessTokenRequest{Scope: sqlScope})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("without the bearer token: %v, want Unauthenticated", err)
	}
	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer test-client-token")
	if resp, err := c.GetAccessToken(ctx, &secretproxyv1.GetAccessTokenRequest{Scope: sqlScope}); err != nil || resp.GetToken() != testTokenValue {
		t.Fatalf("with the bearer token: %v, %v", resp, err)
	}
}

func TestTokenStatusTable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code codes.Code
	}{
		{accesstoken.ErrMalformed, codes.InvalidArgument},
		{accesstoken.ErrUndeclared, codes.PermissionDenied},
		{&accesstoken.FetchError{Scope: sqlScope, Reason: "r"}, codes.Unavailable},
		{accesstoken.ErrShuttingDown, codes.Unavailable},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{context.Canceled, codes.Canceled},
		{errors.New("other"), codes.Internal},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			if got := status.Code(tokenStatus(sqlScope, tc.err)); got != tc.code {
				t.Errorf("code = %s, want %s", got, tc.code)
			}
		})
	}
}

// BenchmarkGetAccessTokenHit is BenchmarkGetSecretHit's twin: a cached token
// through the service and the interceptor, without a transport.
func BenchmarkGetAccessTokenHit(b *testing.B) {
	m := metrics.New(prometheus.NewRegistry(), []string{"db-password"}, "bench")
	m.InitMethod(tokenMethod, false)
	svc := newService(loadedCache(b, m, "db-password"), testNames).WithTokens(tokenCache(m, nil, sqlScope))
	ic := newInterceptors(m, "")
	info := &grpc.UnaryServerInfo{FullMethod: tokenMethod}
	req := &secretproxyv1.GetAccessTokenRequest{Scope: sqlScope}
	h := func(ctx context.Context, r any) (any, error) {
		return svc.GetAccessToken(ctx, r.(*secretproxyv1.GetAccessTokenRequest))
	}
	ctx := context.Background()
	if _, err := ic.unary(ctx, req, info, h); err != nil { // the first fetch
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ic.unary(ctx, req, info, h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetAccessTokenHitLoopback is the whole call over loopback, beside
// BenchmarkGetSecretHitLoopback.
func BenchmarkGetAccessTokenHitLoopback(b *testing.B) {
	m := metrics.New(prometheus.NewRegistry(), []string{"db-password"}, "bench")
	c := serve(b, ServerOptions{Cache: loadedCache(b, m, "db-password"), Tokens: tokenCache(m, nil, sqlScope), Metrics: m})
	ctx := context.Background()
	req := &secretproxyv1.GetAccessTokenRequest{Scope: sqlScope}
	if _, err := c.GetAccessToken(ctx, req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.GetAccessToken(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
