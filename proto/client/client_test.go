package client_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/secretproxy/secretproxy/proto/client"
	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
)

// fakeSidecar is a SecretService on a real unix socket whose answers the test
// scripts: each WatchSecrets stream takes its messages from streams.
type fakeSidecar struct {
	secretproxyv1.UnimplementedSecretServiceServer

	mu         sync.Mutex
	auth       []string // authorization metadata of every call
	getErrs    []error  // errors GetSecret returns, in order, before it answers
	getCalls   int
	watchNames [][]string
	streams    chan fakeStream
}

// fakeStream is what one WatchSecrets stream sends, then how it ends.
type fakeStream struct {
	msgs []*secretproxyv1.WatchSecretsResponse
	end  error // nil: wait for the client to go away
}

func (f *fakeSidecar) record(ctx context.Context) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auth = append(f.auth, strings.Join(md.Get("authorization"), ","))
}

func (f *fakeSidecar) GetSecret(ctx context.Context, req *secretproxyv1.GetSecretRequest) (*secretproxyv1.GetSecretResponse, error) {
	f.record(ctx)
	f.mu.Lock()
	f.getCalls++
	var err error
	if len(f.getErrs) > 0 {
		err, f.getErrs = f.getErrs[0], f.getErrs[1:]
	}
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return &secretproxyv1.GetSecretResponse{Secret: &secretproxyv1.Secret{Name: req.GetName(), Value: "test-value-" + req.GetName(), Version: "v1"}}, nil
}

func (f *fakeSidecar) RefreshSecret(ctx context.Context, req *secretproxyv1.RefreshSecretRequest) (*secretproxyv1.RefreshSecretResponse, error) {
	f.record(ctx)
	return &secretproxyv1.RefreshSecretResponse{Secret: &secretproxyv1.Secret{Name: req.GetName(), Version: "v2"}}, nil
}

func (f *fakeSidecar) WatchSecrets(req *secretproxyv1.WatchSecretsRequest, stream grpc.ServerStreamingServer[secretproxyv1.WatchSecretsResponse]) error {
	f.record(stream.Context())
	f.mu.Lock()
	f.watchNames = append(f.watchNames, req.GetNames())
	f.mu.Unlock()
	var script fakeStream
	select {
	case script = <-f.streams:
	case <-stream.Context().Done():
		return stream.Context().Err()
	}
	for _, m := range script.msgs {
		if err := stream.Send(m); err != nil {
			return err
		}
	}
	if script.end != nil {
		return script.end
	}
	<-stream.Context().Done()
	return nil
}

// serve starts a gRPC server for f on socket and returns a function that stops it.
func serve(t *testing.T, f *fakeSidecar, socket string) (stop func()) {
	t.Helper()
	lis, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatalf("listen on %s: %v", socket, err)
	}
	srv := grpc.NewServer()
	secretproxyv1.RegisterSecretServiceServer(srv, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis) // returns when stopped
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			srv.Stop()
			<-done
		})
	}
	t.Cleanup(stop)
	return stop
}

func newFake() *fakeSidecar { return &fakeSidecar{streams: make(chan fakeStream, 8)} }

func socketPath(t *testing.T) string {
	// Unix socket paths are limited to 108 bytes; t.TempDir() can be long.
	dir, err := os.MkdirTemp("", "spc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "grpc.sock")
}

func dial(t *testing.T, socket string, opts ...client.Option) *client.Client {
	t.Helper()
	opts = append([]client.Option{client.WithBackoff(10*time.Millisecond, 50*time.Millisecond)}, opts...)
	c, err := client.Dial("unix://"+socket, opts...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func secret(name, version string) *secretproxyv1.Secret {
	return &secretproxyv1.Secret{Name: name, Version: version, Value: "test-value-" + version}
}

func msg(secrets ...*secretproxyv1.Secret) *secretproxyv1.WatchSecretsResponse {
	return &secretproxyv1.WatchSecretsResponse{Secrets: secrets}
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
			f := newFake()
			sock := socketPath(t)
			serve(t, f, sock)
			c := dial(t, sock, tt.opts...)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if _, err := c.Get(ctx, "db-user"); err != nil {
				t.Fatalf("Get: %v", err)
			}
			if _, err := c.Refresh(ctx, "db-user"); err != nil {
				t.Fatalf("Refresh: %v", err)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if diff := cmp.Diff([]string{tt.want, tt.want}, f.auth); diff != "" {
				t.Errorf("authorization metadata (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTokenFileMissingFailsTheCall(t *testing.T) {
	f := newFake()
	sock := socketPath(t)
	serve(t, f, sock)
	c := dial(t, sock, client.WithTokenFile(filepath.Join(t.TempDir(), "absent")))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := c.Get(ctx, "db-user")
	if err == nil || !strings.Contains(err.Error(), "token file") {
		t.Fatalf("Get with a missing token file: err = %v, want one naming the token file", err)
	}
}

func TestGetRetriesUnavailable(t *testing.T) {
	f := newFake()
	f.getErrs = []error{status.Error(codes.Unavailable, "not loaded yet"), status.Error(codes.Unavailable, "not loaded yet")}
	sock := socketPath(t)
	serve(t, f, sock)
	c := dial(t, sock)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := c.Get(ctx, "db-user")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if s.GetName() != "db-user" {
		t.Errorf("Get returned secret %q, want db-user", s.GetName())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.getCalls != 3 {
		t.Errorf("server saw %d GetSecret calls, want 3 (two UNAVAILABLE, then success)", f.getCalls)
	}
}

func TestGetDoesNotRetryPermissionDenied(t *testing.T) {
	f := newFake()
	f.getErrs = []error{status.Error(codes.PermissionDenied, "not declared")}
	sock := socketPath(t)
	serve(t, f, sock)
	c := dial(t, sock)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := c.Get(ctx, "nope")
	if status.Code(errors.Unwrap(err)) != codes.PermissionDenied {
		t.Fatalf("Get: err = %v, want PERMISSION_DENIED", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.getCalls != 1 {
		t.Errorf("server saw %d calls, want 1", f.getCalls)
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
	f := newFake()
	sock := socketPath(t)
	serve(t, f, sock)
	// First stream: snapshot, one change, then the sidecar drops the stream.
	f.streams <- fakeStream{
		msgs: []*secretproxyv1.WatchSecretsResponse{
			msg(secret("db-user", "v1"), secret("db-password", "v1")),
			msg(secret("db-user", "v2"), secret("db-password", "v2")),
		},
		end: status.Error(codes.Unavailable, "sidecar shutting down"),
	}
	// Second stream: a fresh snapshot carrying what changed meanwhile.
	f.streams <- fakeStream{msgs: []*secretproxyv1.WatchSecretsResponse{
		msg(secret("db-user", "v3"), secret("db-password", "v3")),
	}}
	c := dial(t, sock)
	updates, result, cancel := collect(t, c, []string{"db-user", "db-password"})

	type got struct {
		Initial  bool
		Versions []string
	}
	var seen []got
	for range 3 {
		u := next(t, updates)
		seen = append(seen, got{u.Initial, versions(u)})
	}
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
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.watchNames) != 2 {
		t.Fatalf("server saw %d WatchSecrets calls, want 2", len(f.watchNames))
	}
	for i, names := range f.watchNames {
		if diff := cmp.Diff([]string{"db-user", "db-password"}, names); diff != "" {
			t.Errorf("stream %d requested names (-want +got):\n%s", i, diff)
		}
	}
}

func TestWatchReconnectsAfterSidecarRestart(t *testing.T) {
	sock := socketPath(t)
	first := newFake()
	stop := serve(t, first, sock)
	first.streams <- fakeStream{msgs: []*secretproxyv1.WatchSecretsResponse{msg(secret("db-password", "v1"))}}
	c := dial(t, sock)
	updates, _, _ := collect(t, c, nil)
	if u := next(t, updates); !u.Initial || versions(u)[0] != "db-password@v1" {
		t.Fatalf("first update = %+v, want initial db-password@v1", versions(u))
	}

	// The sidecar process dies; a new one comes up on the same socket with a
	// rotation that happened while it was down.
	stop()
	if err := os.Remove(sock); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	second := newFake()
	second.streams <- fakeStream{msgs: []*secretproxyv1.WatchSecretsResponse{msg(secret("db-password", "v2"))}}
	serve(t, second, sock)

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
			f := newFake()
			sock := socketPath(t)
			serve(t, f, sock)
			f.streams <- fakeStream{end: status.Error(tt.code, "refused")}
			c := dial(t, sock)
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
	f := newFake()
	sock := socketPath(t)
	serve(t, f, sock)
	f.streams <- fakeStream{msgs: []*secretproxyv1.WatchSecretsResponse{msg(secret("db-user", "v1"))}}
	c := dial(t, sock)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	boom := errors.New("cannot apply credentials")
	err := c.Watch(ctx, nil, func(context.Context, client.Update) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Watch = %v, want the callback's error", err)
	}
}
