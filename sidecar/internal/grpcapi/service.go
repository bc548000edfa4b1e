// Package grpcapi serves secretproxy.v1.SecretService from the cache, plus the
// interceptors (recovery, metrics, logging, auth) and the peer-credential
// transport of the unix socket.
package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
	"github.com/secretproxy/secretproxy/sidecar/internal/accesstoken"
	"github.com/secretproxy/secretproxy/sidecar/internal/cache"
	"github.com/secretproxy/secretproxy/sidecar/internal/config"
	"github.com/secretproxy/secretproxy/sidecar/internal/source"
)

// maxBatch is the most names one BatchGetSecrets may ask for.
const maxBatch = 100

// batchWait bounds a batch without a deadline: the cache answers 100 ms
// before a deadline, so this gives the same 5 s as a single read.
const batchWait = 5*time.Second + 100*time.Millisecond

// Service implements secretproxyv1.SecretServiceServer over the cache.
type Service struct {
	secretproxyv1.UnimplementedSecretServiceServer
	c *cache.Cache
	// names is the backend's rule for secret names: a name it refuses is
	// malformed (INVALID_ARGUMENT), any other undeclared name is refused
	// as undeclared (PERMISSION_DENIED).
	names source.NameRule
	// tokens serves GetAccessToken; nil answers as an empty allowlist.
	tokens *accesstoken.Cache
}

// newService returns the API over c, checking names with the backend's rule.
func newService(c *cache.Cache, names source.NameRule) *Service {
	if names.Valid == nil {
		panic("grpcapi: the backend's name rule is required")
	}
	return &Service{c: c, names: names}
}

// WithTokens returns s serving GetAccessToken from t.
func (s *Service) WithTokens(t *accesstoken.Cache) *Service {
	s.tokens = t
	return s
}

// checkName returns the status of a malformed or undeclared name, or nil.
func (s *Service) checkName(name string) error {
	if !s.names.Valid(name) {
		return status.Errorf(codes.InvalidArgument, "%q is not %s", truncate(name), s.names.Hint)
	}
	if !s.c.Declared(name) {
		return status.Errorf(codes.PermissionDenied, "secret %q is not declared for this pod: add it to the sidecar's secrets list", name)
	}
	return nil
}

// truncate keeps a malformed name short in messages and logs.
func truncate(s string) string {
	if len(s) > 140 {
		return s[:140] + "..."
	}
	return s
}

// GetSecret answers one secret from the cache.
func (s *Service) GetSecret(ctx context.Context, req *secretproxyv1.GetSecretRequest) (*secretproxyv1.GetSecretResponse, error) {
	sec, err := s.c.Get(ctx, req.GetName())
	if err != nil {
		// Validate only on failure: a declared name is valid, so the hit path
		// skips the character scan.
		if nerr := s.checkName(req.GetName()); nerr != nil {
			return nil, nerr
		}
		return nil, toStatus(req.GetName(), err)
	}
	return &secretproxyv1.GetSecretResponse{Secret: sec}, nil
}

// BatchGetSecrets answers several secrets, all or nothing.
func (s *Service) BatchGetSecrets(ctx context.Context, req *secretproxyv1.BatchGetSecretsRequest) (*secretproxyv1.BatchGetSecretsResponse, error) {
	names := req.GetNames()
	switch {
	case len(names) == 0:
		return nil, status.Error(codes.InvalidArgument, "names is empty: ask for 1 to 100 declared secrets")
	case len(names) > maxBatch:
		return nil, status.Errorf(codes.InvalidArgument, "%d names asked for: ask for at most %d per call", len(names), maxBatch)
	}
	for _, n := range names {
		if !s.names.Valid(n) {
			return nil, s.checkName(n)
		}
	}
	for _, n := range names {
		if err := s.checkName(n); err != nil {
			return nil, err
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		// Without a deadline the whole batch waits at most as long as one
		// read would (5 s), not 5 s per secret not loaded yet.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, batchWait)
		defer cancel()
	}
	out := make([]*secretproxyv1.Secret, len(names))
	for i, n := range names {
		sec, err := s.c.Get(ctx, n)
		if err != nil {
			return nil, toStatus(n, err)
		}
		out[i] = sec
	}
	return &secretproxyv1.BatchGetSecretsResponse{Secrets: out}, nil
}

// ListSecrets describes every declared secret without values.
func (s *Service) ListSecrets(context.Context, *secretproxyv1.ListSecretsRequest) (*secretproxyv1.ListSecretsResponse, error) {
	return &secretproxyv1.ListSecretsResponse{Secrets: s.c.List()}, nil
}

// WatchSecrets streams the first values and then every change.
func (s *Service) WatchSecrets(req *secretproxyv1.WatchSecretsRequest, stream grpc.ServerStreamingServer[secretproxyv1.WatchSecretsResponse]) error {
	for _, n := range req.GetNames() {
		if !s.names.Valid(n) {
			return s.checkName(n)
		}
	}
	for _, n := range req.GetNames() {
		if err := s.checkName(n); err != nil {
			return err
		}
	}
	var sendErr error
	err := s.c.Watch(stream.Context(), req.GetNames(), func(secs []*secretproxyv1.Secret) error {
		sendErr = stream.Send(&secretproxyv1.WatchSecretsResponse{Secrets: secs})
		return sendErr
	})
	switch {
	case err == nil && stream.Context().Err() != nil:
		// The client went away (it cancelled, or it failed to take a
		// message): the stream did not succeed and must not count as OK.
		return status.FromContextError(stream.Context().Err()).Err()
	case err == nil:
		return nil
	case sendErr != nil:
		return sendErr // the client went away; grpc already has the status
	}
	var ne *cache.NameError
	if errors.As(err, &ne) {
		return toStatus(ne.Name, ne.Err)
	}
	return toStatus("", err)
}

// RefreshSecret reads a secret from the vault now (within minInterval: the cache).
func (s *Service) RefreshSecret(ctx context.Context, req *secretproxyv1.RefreshSecretRequest) (*secretproxyv1.RefreshSecretResponse, error) {
	if err := s.checkName(req.GetName()); err != nil {
		return nil, err
	}
	sec, err := s.c.Refresh(ctx, req.GetName())
	if err != nil {
		return nil, toStatus(req.GetName(), err)
	}
	return &secretproxyv1.RefreshSecretResponse{Secret: sec}, nil
}

// GetAccessToken answers an access token of the sidecar's identity for a
// declared scope. The token is in the response only: never in a status message.
func (s *Service) GetAccessToken(ctx context.Context, req *secretproxyv1.GetAccessTokenRequest) (*secretproxyv1.GetAccessTokenResponse, error) {
	scope := req.GetScope()
	if s.tokens == nil || !s.tokens.Enabled() {
		if !config.ValidScope(scope) {
			return nil, tokenStatus(scope, accesstoken.ErrMalformed)
		}
		return nil, status.Error(codes.PermissionDenied, "access tokens are off for this pod: accessTokens.scopes is empty in the sidecar's configuration; add the scope to it")
	}
	resp, err := s.tokens.Get(ctx, scope)
	if err != nil {
		return nil, tokenStatus(scope, err)
	}
	return resp, nil
}

// tokenStatus translates an access token error; messages name the scope and
// what to do.
func tokenStatus(scope string, err error) error {
	var fe *accesstoken.FetchError
	switch {
	case errors.Is(err, accesstoken.ErrMalformed):
		return status.Errorf(codes.InvalidArgument, "%q is not a scope: use an https:// resource or api:// application ID URI ending in /.default, e.g. https://database.windows.net/.default (at most %d characters, no spaces)", truncate(scope), config.MaxScopeLen)
	case errors.Is(err, accesstoken.ErrUndeclared):
		return status.Errorf(codes.PermissionDenied, "scope %q is not in accessTokens.scopes of the sidecar's configuration: add it there", scope)
	case errors.As(err, &fe):
		return status.Errorf(codes.Unavailable, "no valid access token for scope %q and fetching one failed: %s; retry with backoff", scope, fe.Reason)
	case errors.Is(err, accesstoken.ErrShuttingDown):
		return status.Error(codes.Unavailable, "secret-proxy is shutting down: reconnect and retry")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Errorf(codes.DeadlineExceeded, "no access token for scope %q before the call's deadline: the identity endpoint is slow; retry", scope)
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "call canceled")
	}
	return status.Errorf(codes.Internal, "scope %q: internal error; see the sidecar's logs", scope)
}

// toStatus translates a cache error into the status of docs/reference/api.md.
// Messages name the secret and say what to do; they never hold a value.
func toStatus(name string, err error) error {
	var code codes.Code
	var msg string
	switch {
	case errors.Is(err, cache.ErrUndeclared):
		code, msg = codes.PermissionDenied, "secret %q is not declared for this pod: add it to the sidecar's secrets list"
	case errors.Is(err, cache.ErrNotFound):
		code, msg = codes.NotFound, "secret %q is declared but absent from the vault: create it, or fix vaultSecret in the sidecar's configuration"
	case errors.Is(err, cache.ErrDisabled):
		code, msg = codes.FailedPrecondition, "secret %q is disabled in the vault: an operator must enable it"
	case errors.Is(err, cache.ErrExpired):
		code, msg = codes.FailedPrecondition, "secret %q has expired in the vault and refuseExpired is on: set a new version"
	case errors.Is(err, cache.ErrNotYetValid):
		code, msg = codes.FailedPrecondition, "secret %q is not valid yet (its not-before time is in the future) and refuseExpired is on"
	case errors.Is(err, cache.ErrTooStale):
		code, msg = codes.Unavailable, "secret %q could not be refreshed for longer than refresh.maxStale: the vault is unreachable; retry later"
	case errors.Is(err, cache.ErrShuttingDown):
		return status.Error(codes.Unavailable, "secret-proxy is shutting down: reconnect and retry")
	case errors.Is(err, cache.ErrUnavailable):
		code, msg = codes.Unavailable, "secret %q is not loaded yet and the vault cannot be reached: retry with backoff"
	default:
		return status.Error(codes.Internal, fmt.Sprintf("secret %q: internal error; see the sidecar's logs", name))
	}
	return status.Errorf(code, msg, name)
}
