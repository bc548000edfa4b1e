package secretproxytest

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
)

// tokens is the fake sidecar's GetAccessToken state: the token each declared
// scope is answered with. Its own lock, so that RotateToken can hold it
// while the test changes the database.
type tokens struct {
	mu     sync.Mutex
	byName map[string]*secretproxyv1.GetAccessTokenResponse
	calls  map[string]int
}

func newTokens() *tokens {
	return &tokens{byName: map[string]*secretproxyv1.GetAccessTokenResponse{}, calls: map[string]int{}}
}

// SetToken declares scope and makes GetAccessToken answer token, expiring at exp.
func (s *Server) SetToken(scope, token string, exp time.Time) {
	t := s.tok
	t.mu.Lock()
	defer t.mu.Unlock()
	t.byName[scope] = &secretproxyv1.GetAccessTokenResponse{Token: token, ExpireTime: timestamppb.New(exp)}
}

// RotateToken runs during (the test makes the database accept the new token
// and refuse the old one), then answers token for scope; no GetAccessToken is
// answered in between, as when a real identity's new token becomes valid.
func (s *Server) RotateToken(scope, token string, exp time.Time, during func()) {
	t := s.tok
	t.mu.Lock()
	defer t.mu.Unlock()
	during()
	t.byName[scope] = &secretproxyv1.GetAccessTokenResponse{Token: token, ExpireTime: timestamppb.New(exp)}
}

// TokenCalls is how many GetAccessToken calls scope has had.
func (s *Server) TokenCalls(scope string) int {
	t := s.tok
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.calls[scope]
}

// GetAccessToken answers the token set for the scope; an undeclared scope is
// PERMISSION_DENIED, as from the real sidecar.
func (s *Server) GetAccessToken(_ context.Context, req *secretproxyv1.GetAccessTokenRequest) (*secretproxyv1.GetAccessTokenResponse, error) {
	t := s.tok
	t.mu.Lock()
	defer t.mu.Unlock()
	t.calls[req.GetScope()]++
	resp, ok := t.byName[req.GetScope()]
	if !ok {
		return nil, status.Errorf(codes.PermissionDenied, "scope %q is not in accessTokens.scopes of the sidecar's configuration: add it there", req.GetScope())
	}
	return &secretproxyv1.GetAccessTokenResponse{Token: resp.GetToken(), ExpireTime: resp.GetExpireTime()}, nil
}
