package grpcapi

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
	"github.com/secretproxy/secretproxy/sidecar/internal/cache"
	"github.com/secretproxy/secretproxy/sidecar/internal/config"
	"github.com/secretproxy/secretproxy/sidecar/internal/source"
)

// TestBatchGetRules checks docs/reference/api.md's BatchGetSecrets rules at the
// service: the size limits, names checked in request order (every name for
// malformedness first, then every name for declaration), then the first
// name that cannot be served decides; repeated names are served twice.
func TestBatchGetRules(t *testing.T) {
	cfg := config.Default()
	for _, n := range []string{"a", "b", "gone"} {
		cfg.Secrets = append(cfg.Secrets, config.Secret{Name: n})
	}
	vault := staticVault{"a": "test-value-a", "b": "test-value-b"} // "gone" is absent
	c := cache.New(cfg, vault, cache.Options{})
	c.Pass(t.Context(), cache.AllSecrets)
	s := newService(c, testNames)

	repeat := func(n int) []string {
		names := make([]string, n)
		for i := range names {
			names[i] = []string{"a", "b"}[i%2]
		}
		return names
	}
	tests := []struct {
		name  string
		names []string
		code  codes.Code
		msg   string   // a part of the message, when not OK
		want  []string // the names served, when OK
	}{
		{name: "empty", names: nil, code: codes.InvalidArgument, msg: "empty"},
		{name: "100 names is the limit", names: repeat(100), code: codes.OK, want: repeat(100)},
		{name: "101 names", names: repeat(101), code: codes.InvalidArgument, msg: "at most 100"},
		{name: "malformed before undeclared", names: []string{"a", "bad name!", "nope"}, code: codes.InvalidArgument, msg: `"bad name!"`},
		{name: "malformed after undeclared still wins", names: []string{"nope", "a", "bad name!"}, code: codes.InvalidArgument, msg: `"bad name!"`},
		{name: "first malformed is named", names: []string{"bad_1", "bad_2"}, code: codes.InvalidArgument, msg: `"bad_1"`},
		{name: "first undeclared is named", names: []string{"a", "nope-1", "nope-2"}, code: codes.PermissionDenied, msg: `"nope-1"`},
		{name: "undeclared before unservable", names: []string{"gone", "nope"}, code: codes.PermissionDenied, msg: `"nope"`},
		{name: "case-sensitive", names: []string{"a", "A"}, code: codes.PermissionDenied, msg: `"A"`},
		{name: "first unservable decides", names: []string{"a", "gone", "b"}, code: codes.NotFound, msg: `"gone"`},
		{name: "order kept, repeats served twice", names: []string{"b", "a", "b"}, code: codes.OK, want: []string{"b", "a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			resp, err := s.BatchGetSecrets(ctx, &secretproxyv1.BatchGetSecretsRequest{Names: tt.names})
			assertStatus(t, err, tt.code, tt.msg)
			if tt.code != codes.OK {
				return
			}
			var got []string
			for _, sec := range resp.GetSecrets() {
				got = append(got, sec.GetName())
				if want := "test-value-" + sec.GetName(); sec.GetValue() != want {
					t.Errorf("value of %s is not its own", sec.GetName())
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("names served (-want +got):\n%s", diff)
			}
		})
	}
}

// outageVault answers every read with a transient error.
type outageVault struct{}

func (outageVault) Get(context.Context, string, string) (source.Secret, error) {
	return source.Secret{}, &source.TransientError{Err: errors.New("backend answered 503")}
}

// A batch without a deadline waits for a first load as long as one read
// would (5 s), then answers UNAVAILABLE naming the secret. It runs in a
// testing/synctest bubble: the 5 s pass on the bubble's clock.
func TestBatchGetWaitsFiveSecondsWithoutDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config.Default()
		cfg.Secrets = []config.Secret{{Name: "a"}, {Name: "b"}}
		c := cache.New(cfg, outageVault{}, cache.Options{})
		c.Pass(t.Context(), cache.AllSecrets)
		s := newService(c, testNames)

		start := time.Now()
		done := make(chan error, 1)
		go func() {
			_, err := s.BatchGetSecrets(context.Background(), &secretproxyv1.BatchGetSecretsRequest{Names: []string{"a", "b"}})
			done <- err
		}()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("the batch answered %v at once, want it to wait for a first load", err)
		default:
		}
		err := <-done // the bubble's clock moves to the end of the wait
		if d := time.Since(start); d > 5*time.Second || d < 4*time.Second {
			t.Errorf("the batch waits %s for a first load, want 5 s", d)
		}
		if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), `"a"`) {
			t.Errorf("got %s %q, want UNAVAILABLE naming a", st.Code(), st.Message())
		}
	})
}
