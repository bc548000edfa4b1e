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
	renew  map[string]renewal
}

// renewal is how a scope's token renews itself (RenewTokenBefore).
type renewal struct {
	before time.Duration
	next   func() (string, time.Time)
}

func newTokens() *tokens {
	return &tokens{byName: map[string]*secretproxyv1.GetAccessTokenResponse{}, calls: map[string]int{}, renew: map[string]renewal{}}
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

// RenewTokenBefore makes scope's token renew itself as the real sidecar's
// does, which refreshes a token ahead of its expiry and never hands one out
// in its last minute: whenever GetAccessToken would answer a token that
// expires within before, it first calls next and answers next's token
// instead. next runs with no GetAccessToken answered meanwhile (it makes the
// database accept the new token, as RotateToken's during does) and must not
// call the Server's token methods. Without it, a test whose tokens live
// seconds hands out a nearly dead token whenever the test's own goroutine
// that rotates them is held up by a loaded machine.
func (s *Server) RenewTokenBefore(scope string, before time.Duration, next func() (token string, exp time.Time)) {
	t := s.tok
	t.mu.Lock()
	defer t.mu.Unlock()
	t.renew[scope] = renewal{before: before, next: next}
}

// RenewToken renews scope's token now with the next given to
// RenewTokenBefore; no GetAccessToken is answered in between.
func (s *Server) RenewToken(scope string) {
	t := s.tok
	t.mu.Lock()
	defer t.mu.Unlock()
	t.renewLocked(scope)
}

// renewLocked replaces scope's token with the next one; t.mu is held.
func (t *tokens) renewLocked(scope string) {
	r, ok := t.renew[scope]
	if !ok {
		panic("secretproxytest: RenewToken of scope " + scope + " without RenewTokenBefore")
	}
	tok, exp := r.next()
	t.byName[scope] = &secretproxyv1.GetAccessTokenResponse{Token: tok, ExpireTime: timestamppb.New(exp)}
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
	if r, ok := t.renew[req.GetScope()]; ok {
		if cur, ok := t.byName[req.GetScope()]; !ok || time.Until(cur.GetExpireTime().AsTime()) < r.before {
			t.renewLocked(req.GetScope())
		}
	}
	resp, ok := t.byName[req.GetScope()]
	if !ok {
		return nil, status.Errorf(codes.PermissionDenied, "scope %q is not in accessTokens.scopes of the sidecar's configuration: add it there", req.GetScope())
	}
	return &secretproxyv1.GetAccessTokenResponse{Token: resp.GetToken(), ExpireTime: resp.GetExpireTime()}, nil
}
