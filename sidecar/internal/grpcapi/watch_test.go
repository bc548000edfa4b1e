package grpcapi

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
	"github.com/secretproxy/secretproxy/sidecar/internal/cache"
	"github.com/secretproxy/secretproxy/sidecar/internal/config"
	"github.com/secretproxy/secretproxy/sidecar/internal/source"
)

// answerVault answers each vault name with a value or a settled error.
type answerVault map[string]error

func (v answerVault) Get(_ context.Context, name, _ string) (source.Secret, error) {
	if err := v[name]; err != nil {
		return source.Secret{}, err
	}
	return source.Secret{Value: "test-value-" + name, Version: "v1"}, nil
}

// TestWatchFirstMessageAndStatus checks docs/reference/api.md's WatchSecrets
// rules over gRPC: names are checked like BatchGet's, an optional secret
// absent or disabled is left out of the first message, a non-optional one
// ends the stream with NOT_FOUND or FAILED_PRECONDITION naming it.
func TestWatchFirstMessageAndStatus(t *testing.T) {
	cfg := config.Default()
	cfg.Secrets = []config.Secret{
		{Name: "a"}, {Name: "b"},
		{Name: "gone"}, {Name: "off"},
		{Name: "gone-opt", Optional: true}, {Name: "off-opt", Optional: true},
	}
	vault := answerVault{
		"gone": source.ErrNotFound, "gone-opt": source.ErrNotFound,
		"off": source.ErrDisabled, "off-opt": source.ErrDisabled,
	}
	c := cache.New(cfg, vault, cache.Options{})
	c.Pass(t.Context(), cache.AllSecrets)
	client := serve(t, ServerOptions{Cache: c})

	tests := []struct {
		name  string
		names []string
		code  codes.Code
		msg   string
		first []string // names in the first message, when OK
	}{
		{name: "optional absent and disabled left out", names: []string{"a", "gone-opt", "off-opt", "b"}, code: codes.OK, first: []string{"a", "b"}},
		{name: "non-optional absent", names: []string{"a", "gone"}, code: codes.NotFound, msg: `"gone"`},
		{name: "non-optional disabled", names: []string{"off", "a"}, code: codes.FailedPrecondition, msg: `"off"`},
		{name: "malformed", names: []string{"a", "bad name!"}, code: codes.InvalidArgument, msg: `"bad name!"`},
		{name: "malformed after undeclared still wins", names: []string{"nope", "bad name!"}, code: codes.InvalidArgument, msg: `"bad name!"`},
		{name: "undeclared", names: []string{"a", "nope"}, code: codes.PermissionDenied, msg: `"nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			stream, err := client.WatchSecrets(ctx, &secretproxyv1.WatchSecretsRequest{Names: tt.names})
			var resp *secretproxyv1.WatchSecretsResponse
			if err == nil {
				resp, err = stream.Recv()
			}
			assertStatus(t, err, tt.code, tt.msg)
			if tt.code != codes.OK {
				return
			}
			var got []string
			for _, s := range resp.GetSecrets() {
				got = append(got, s.GetName())
			}
			if diff := cmp.Diff(tt.first, got); diff != "" {
				t.Errorf("first message (-want +got):\n%s", diff)
			}
		})
	}
}
