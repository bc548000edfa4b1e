package secretproxytest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
	"github.com/secretproxy/secretproxy/proto/secretproxytest"
)

func api(t *testing.T, s *secretproxytest.Server) secretproxyv1.SecretServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(s.Target(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return secretproxyv1.NewSecretServiceClient(conn)
}

func names(secrets []*secretproxyv1.Secret) []string {
	var out []string
	for _, s := range secrets {
		out = append(out, s.GetName()+"@"+s.GetVersion()+"="+s.GetValue())
	}
	return out
}

// TestWatchOrderAndRefresh: a watch of every secret gets them sorted by name;
// a change lists them in that order too; SetVault is served only after a
// RefreshSecret, which sends the new version to the watcher.
func TestWatchOrderAndRefresh(t *testing.T) {
	s := secretproxytest.Start(t, map[string]string{"b": "1", "a": "1"})
	c := api(t, s)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	stream, err := c.WatchSecrets(ctx, &secretproxyv1.WatchSecretsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	recv := func() []string {
		t.Helper()
		m, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return names(m.GetSecrets())
	}
	if diff := cmp.Diff([]string{"a@v1=1", "b@v1=1"}, recv()); diff != "" {
		t.Errorf("snapshot (-want +got):\n%s", diff)
	}
	s.Publish(map[string]string{"b": "2", "a": "2"})
	if diff := cmp.Diff([]string{"a@v2=2", "b@v2=2"}, recv()); diff != "" {
		t.Errorf("change (-want +got):\n%s", diff)
	}
	s.SetVault("a", "3")
	got, err := c.GetSecret(ctx, &secretproxyv1.GetSecretRequest{Name: "a"})
	if err != nil || got.GetSecret().GetValue() != "2" {
		t.Errorf("GetSecret after SetVault = %v, %v; want the cached 2", got, err)
	}
	if _, err := c.RefreshSecret(ctx, &secretproxyv1.RefreshSecretRequest{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a@v3=3"}, recv()); diff != "" {
		t.Errorf("change after RefreshSecret (-want +got):\n%s", diff)
	}
	if n := s.Calls("RefreshSecret"); n != 1 {
		t.Errorf("Calls(RefreshSecret) = %d, want 1", n)
	}
}

// TestInterruptHoldsCalls: Interrupt ends the open stream with its error and
// holds a new call until resume; FailNext answers before the normal answer.
func TestInterruptHoldsCalls(t *testing.T) {
	s := secretproxytest.Start(t, map[string]string{"a": "1"})
	c := api(t, s)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	stream, err := c.WatchSecrets(ctx, &secretproxyv1.WatchSecretsRequest{Names: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	resume := s.Interrupt(status.Error(codes.Unavailable, "going away"))
	if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("stream after Interrupt: %v, want UNAVAILABLE", err)
	}
	answered := make(chan error, 1)
	go func() {
		_, err := c.GetSecret(ctx, &secretproxyv1.GetSecretRequest{Name: "a"})
		answered <- err
	}()
	// The call is received (counted) and held: no answer until resume.
	for s.Calls("GetSecret") == 0 {
		select {
		case err := <-answered:
			t.Fatalf("GetSecret answered while interrupted: %v", err)
		case <-ctx.Done():
			t.Fatal("GetSecret never reached the fake")
		case <-time.After(5 * time.Millisecond):
		}
	}
	select {
	case err := <-answered:
		t.Fatalf("GetSecret answered while interrupted: %v", err)
	default:
	}
	resume()
	if err := <-answered; err != nil {
		t.Errorf("GetSecret after resume: %v", err)
	}

	s.FailNext("GetSecret", status.Error(codes.PermissionDenied, "no"))
	if _, err := c.GetSecret(ctx, &secretproxyv1.GetSecretRequest{Name: "a"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("GetSecret after FailNext: %v, want PERMISSION_DENIED", err)
	}
	if _, err := c.GetSecret(ctx, &secretproxyv1.GetSecretRequest{Name: "a"}); err != nil {
		t.Errorf("GetSecret after the failure was used: %v", err)
	}
	if diff := cmp.Diff([][]string{{"a"}}, s.WatchNames()); diff != "" {
		t.Errorf("WatchNames (-want +got):\n%s", diff)
	}
}

// TestRenewTokenBefore: GetAccessToken answers the token it holds while that
// has more than before left, and otherwise first renews it with next; so does
// RenewToken at once.
func TestRenewTokenBefore(t *testing.T) {
	const scope = "https://example.test/.default"
	for _, tc := range []struct {
		name    string
		set     bool
		left    time.Duration
		want    string
		renewed int
	}{
		{name: "plenty left", set: true, left: time.Hour, want: "held", renewed: 0},
		{name: "within before", set: true, left: 30 * time.Second, want: "new-1", renewed: 1},
		{name: "expired", set: true, left: -time.Second, want: "new-1", renewed: 1},
		{name: "none yet", want: "new-1", renewed: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := secretproxytest.Start(t, nil)
			c := api(t, s)
			if tc.set {
				s.SetToken(scope, "held", time.Now().Add(tc.left))
			}
			renewed := 0
			s.RenewTokenBefore(scope, time.Minute, func() (string, time.Time) {
				renewed++
				return fmt.Sprintf("new-%d", renewed), time.Now().Add(time.Hour)
			})
			got, err := c.GetAccessToken(t.Context(), &secretproxyv1.GetAccessTokenRequest{Scope: scope})
			if err != nil {
				t.Fatal(err)
			}
			if got.GetToken() != tc.want || renewed != tc.renewed {
				t.Errorf("GetAccessToken = %q after %d renewals, want %q after %d", got.GetToken(), renewed, tc.want, tc.renewed)
			}
			s.RenewToken(scope)
			got, err = c.GetAccessToken(t.Context(), &secretproxyv1.GetAccessTokenRequest{Scope: scope})
			if want := fmt.Sprintf("new-%d", tc.renewed+1); err != nil || got.GetToken() != want {
				t.Errorf("GetAccessToken after RenewToken = %q, %v; want %q", got.GetToken(), err, want)
			}
		})
	}
}
