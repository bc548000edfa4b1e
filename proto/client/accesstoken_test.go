package client_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/secretproxy/secretproxy/proto/client"
	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
)

// tokenSidecar answers GetAccessToken for one scope; the first unavailable
// calls answer UNAVAILABLE (the client retries those).
type tokenSidecar struct {
	secretproxyv1.UnimplementedSecretServiceServer
	scope       string
	exp         time.Time
	unavailable int
	calls       int
}

func (s *tokenSidecar) GetAccessToken(_ context.Context, req *secretproxyv1.GetAccessTokenRequest) (*secretproxyv1.GetAccessTokenResponse, error) {
	s.calls++
	if s.calls <= s.unavailable {
		return nil, status.Error(codes.Unavailable, "identity endpoint down")
	}
	if req.GetScope() != s.scope {
		return nil, status.Errorf(codes.PermissionDenied, "scope %q is not in accessTokens.scopes", req.GetScope())
	}
	return &secretproxyv1.GetAccessTokenResponse{Token: "test-token-abc", ExpireTime: timestamppb.New(s.exp)}, nil
}

func TestAccessToken(t *testing.T) {
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	f := &tokenSidecar{scope: client.ScopeAzureSQL, exp: exp, unavailable: 1}
	socket := socketPath(t)
	lis, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	secretproxyv1.RegisterSecretServiceServer(srv, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	c := dial(t, socket)

	tok, err := c.AccessToken(t.Context(), client.ScopeAzureSQL)
	if err != nil || tok.Token != "test-token-abc" || !tok.Expires.Equal(exp) {
		t.Fatalf("AccessToken = %v, %v; want the token and its expiry", tok, err)
	}
	if f.calls != 2 {
		t.Errorf("calls = %d, want 2 (UNAVAILABLE is retried)", f.calls)
	}
	for _, s := range []string{fmt.Sprint(tok), fmt.Sprintf("%+v %#v", tok, tok)} {
		if strings.Contains(s, "test-token-abc") {
			t.Errorf("formatting shows the token: %s", s)
		}
	}
	_, err = c.AccessToken(t.Context(), client.ScopeAzurePostgres)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), client.ScopeAzurePostgres) {
		t.Errorf("undeclared scope: %v", err)
	}
}
