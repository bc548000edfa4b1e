package grpcapi

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/secretproxy/secretproxy/sidecar/internal/cache"
)

// TestToStatus checks every cache error against docs/reference/api.md's status
// codes, and that each message names the secret and says what to do.
func TestToStatus(t *testing.T) {
	tests := []struct {
		err    error
		code   codes.Code
		action string // a part of the message that tells the caller what to do
	}{
		{cache.ErrUndeclared, codes.PermissionDenied, "add it to the sidecar's secrets list"},
		{cache.ErrNotFound, codes.NotFound, "create it, or fix vaultSecret"},
		{cache.ErrDisabled, codes.FailedPrecondition, "enable it"},
		{cache.ErrExpired, codes.FailedPrecondition, "set a new version"},
		{cache.ErrNotYetValid, codes.FailedPrecondition, "refuseExpired is on"},
		{cache.ErrTooStale, codes.Unavailable, "retry later"},
		{cache.ErrUnavailable, codes.Unavailable, "retry with backoff"},
		{cache.ErrShuttingDown, codes.Unavailable, "reconnect and retry"},
		{&cache.NameError{Name: "db-password", Err: cache.ErrDisabled}, codes.FailedPrecondition, "enable it"},
		{fmt.Errorf("wrapped: %w", cache.ErrNotFound), codes.NotFound, "create it"},
		{errors.New("something unexpected"), codes.Internal, "see the sidecar's logs"},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			st := status.Convert(toStatus("db-password", tt.err))
			if st.Code() != tt.code {
				t.Errorf("code = %s, want %s", st.Code(), tt.code)
			}
			if !strings.Contains(st.Message(), tt.action) {
				t.Errorf("message %q does not say %q", st.Message(), tt.action)
			}
			if !errors.Is(tt.err, cache.ErrShuttingDown) && !strings.Contains(st.Message(), `"db-password"`) {
				t.Errorf("message %q does not name the secret", st.Message())
			}
		})
	}
}

// assertStatus fails t unless err has the code and a message containing msg,
// and holds no secret value (test values all start with "test-value").
func assertStatus(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != code || !strings.Contains(st.Message(), msg) {
		t.Fatalf("got %s %q, want %s containing %q", st.Code(), st.Message(), code, msg)
	}
	if strings.Contains(st.Message(), "test-value") {
		t.Errorf("message %q holds a secret value", st.Message())
	}
}
