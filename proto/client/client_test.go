package client_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/secretproxy/secretproxy/proto/client"
	"github.com/secretproxy/secretproxy/proto/secretproxytest"
)

// values are what the fake sidecar serves in these tests (test data, not credentials).
var values = map[string]string{"db-user": "test-value-db-user", "db-password": "test-value-db-password"}

func dial(t *testing.T, f *secretproxytest.Server, opts ...client.Option) *client.Client {
	t.Helper()
	opts = append([]client.Option{client.WithBackoff(10*time.Millisecond, 50*time.Millisecond)}, opts...)
	c, err := client.Dial(f.Target(), opts...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDialValidatesTarget(t *testing.T) {
	tests := []struct {
		name    string
		target  string
		opts    []client.Option
		wantErr string
	}{
		{name: "empty", target: "", wantErr: "empty sidecar address"},
		{name: "relative unix path", target: "unix://grpc.sock", wantErr: "absolute path"},
		{name: "other scheme", target: "dns:///sidecar:50051", wantErr: "only unix:// or host:port"},
		{name: "no port", target: "127.0.0.1", wantErr: "want host:port"},
		{name: "token and token file", target: "127.0.0.1:50051", opts: []client.Option{client.WithToken("a"), client.WithTokenFile("/x")}, wantErr: "not both"},
		{name: "bad back-off", target: "127.0.0.1:50051", opts: []client.Option{client.WithBackoff(time.Second, time.Millisecond)}, wantErr: "back-off"},
		{name: "tcp ok", target: "127.0.0.1:50051"},
		{name: "unix ok", target: "unix:///var/run/secret-proxy/grpc.sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := client.Dial(tt.target, tt.opts...)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Dial(%q) = %v, want no error", tt.target, err)
				}
				c.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Dial(%q) error = %v, want one containing %q", tt.target, err, tt.wantErr)
			}
		})
	}
}

func TestTokenHeaderSent(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("test-token-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts []client.Option
		want string
	}{
		{name: "no token", want: ""},
		{name: "token", opts: []client.Option{client.WithToken("test-token-1")}, want: "Bearer test-token-1"},
		{name: "token file", opts: []client.Option{client.WithTokenFile(tokenFile)}, want: "Bearer test-token-from-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := secretproxytest.Start(t, values)
			c := dial(t, f, tt.opts...)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if _, err := c.Get(ctx, "db-user"); err != nil {
				t.Fatalf("Get: %v", err)
			}
			if _, err := c.Refresh(ctx, "db-user"); err != nil {
				t.Fatalf("Refresh: %v", err)
			}
			if diff := cmp.Diff([]string{tt.want, tt.want}, f.Authorization()); diff != "" {
				t.Errorf("authorization metadata (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTokenFileMissingFailsTheCall(t *testing.T) {
	f := secretproxytest.Start(t, values)
	c := dial(t, f, client.WithTokenFile(filepath.Join(t.TempDir(), "absent")))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := c.Get(ctx, "db-user")
	if err == nil || !strings.Contains(err.Error(), "token file") {
		t.Fatalf("Get with a missing token file: err = %v, want one naming the token file", err)
	}
}

func TestGetRetriesUnavailable(t *testing.T) {
	f := secretproxytest.Start(t, values)
	f.FailNext("GetSecret", status.Error(codes.Unavailable, "not loaded yet"), status.Error(codes.Unavailable, "not loaded yet"))
	c := dial(t, f)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := c.Get(ctx, "db-user")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if s.GetName() != "db-user" {
		t.Errorf("Get returned secret %q, want db-user", s.GetName())
	}
	if n := f.Calls("GetSecret"); n != 3 {
		t.Errorf("server saw %d GetSecret calls, want 3 (two UNAVAILABLE, then success)", n)
	}
}

func TestGetDoesNotRetryPermissionDenied(t *testing.T) {
	f := secretproxytest.Start(t, values)
	f.FailNext("GetSecret", status.Error(codes.PermissionDenied, "not declared"))
	c := dial(t, f)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := c.Get(ctx, "nope")
	if status.Code(errors.Unwrap(err)) != codes.PermissionDenied {
		t.Fatalf("Get: err = %v, want PERMISSION_DENIED", err)
	}
	if n := f.Calls("GetSecret"); n != 1 {
		t.Errorf("server saw %d calls, want 1", n)
	}
}

// collect runs Watch in the background and hands its updates to the test.
func collect(t *testing.T, c *client.Client, names []string) (updates <-chan client.Update, result <-chan error, cancel func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	ch := make(chan client.Update, 16)
	res := make(chan error, 1)
	go func() {
		res <- c.Watch(ctx, names, func(_ context.Context, u client.Update) error {
			ch <- u
			return nil
		})
	}()
	t.Cleanup(cancel)
	return ch, res, cancel
}

func next(t *testing.T, updates <-chan client.Update) client.Update {
	t.Helper()
	select {
	case u := <-updates:
		return u
	case <-time.After(10 * time.Second):
		t.Fatal("no watch update within 10s")
		return client.Update{}
	}
}

func versions(u client.Update) []string {
	var out []string
	for _, s := range u.Secrets {
		out = append(out, s.GetName()+"@"+s.GetVersion())
	}
	return out
}

func TestWatchResumesWithFreshSnapshot(t *testing.T) {
	f := secretproxytest.Start(t, values)
	c := dial(t, f)
	updates, result, cancel := collect(t, c, []string{"db-user", "db-password"})

	type got struct {
		Initial  bool
		Versions []string
	}
	var seen []got
	see := func() {
		u := next(t, updates)
		seen = append(seen, got{u.Initial, versions(u)})
	}
	// First stream: snapshot, one change, then the sidecar drops the stream.
	see()
	f.Publish(map[string]string{"db-user": "test-value-2", "db-password": "test-value-2"})
	see()
	resume := f.Interrupt(status.Error(codes.Unavailable, "sidecar shutting down"))
	// Second stream: a fresh snapshot carrying what changed meanwhile.
	f.Publish(map[string]string{"db-user": "test-value-3", "db-password": "test-value-3"})
	resume()
	see()
	want := []got{
		{true, []string{"db-user@v1", "db-password@v1"}},
		{false, []string{"db-user@v2", "db-password@v2"}},
		{true, []string{"db-user@v3", "db-password@v3"}},
	}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("watch updates (-want +got):\n%s", diff)
	}
	cancel()
	if err := <-result; !errors.Is(err, context.Canceled) {
		t.Errorf("Watch returned %v after cancel, want context.Canceled", err)
	}
	watchNames := f.WatchNames()
	if len(watchNames) != 2 {
		t.Fatalf("server saw %d WatchSecrets calls, want 2", len(watchNames))
	}
	for i, names := range watchNames {
		if diff := cmp.Diff([]string{"db-user", "db-password"}, names); diff != "" {
			t.Errorf("stream %d requested names (-want +got):\n%s", i, diff)
		}
	}
}

func TestWatchReconnectsAfterSidecarRestart(t *testing.T) {
	f := secretproxytest.Start(t, map[string]string{"db-password": "test-value-1"})
	c := dial(t, f)
	updates, _, _ := collect(t, c, nil)
	if u := next(t, updates); !u.Initial || versions(u)[0] != "db-password@v1" {
		t.Fatalf("first update = %+v, want initial db-password@v1", versions(u))
	}

	// The sidecar process dies; it comes up again on the same socket with a
	// rotation that happened while it was down.
	f.Stop()
	f.Publish(map[string]string{"db-password": "test-value-2"})
	if err := f.Listen(f.Socket()); err != nil {
		t.Fatal(err)
	}

	u := next(t, updates)
	if !u.Initial {
		t.Errorf("update after restart has Initial=false, want a fresh snapshot")
	}
	if diff := cmp.Diff([]string{"db-password@v2"}, versions(u)); diff != "" {
		t.Errorf("update after restart (-want +got):\n%s", diff)
	}
}

func TestWatchStopsOnPermanentErrors(t *testing.T) {
	tests := []struct {
		code codes.Code
	}{
		{codes.PermissionDenied},
		{codes.InvalidArgument},
		{codes.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.code.String(), func(t *testing.T) {
			f := secretproxytest.Start(t, values)
			f.FailNext("WatchSecrets", status.Error(tt.code, "refused"))
			c := dial(t, f)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			err := c.Watch(ctx, []string{"nope"}, func(context.Context, client.Update) error { return nil })
			if status.Code(errors.Unwrap(err)) != tt.code {
				t.Fatalf("Watch = %v, want %v", err, tt.code)
			}
		})
	}
}

func TestWatchReturnsCallbackError(t *testing.T) {
	f := secretproxytest.Start(t, map[string]string{"db-user": "test-value-1"})
	c := dial(t, f)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	boom := errors.New("cannot apply credentials")
	err := c.Watch(ctx, nil, func(context.Context, client.Update) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Watch = %v, want the callback's error", err)
	}
}
