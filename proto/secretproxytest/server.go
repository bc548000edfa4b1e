// Package secretproxytest is a fake secret-proxy sidecar for the tests of any
// application that uses the sidecar's gRPC API (secretproxy.v1.SecretService),
// and of package client. It speaks the real protocol on a real unix socket, so
// the application's own client code runs unchanged.
//
// The test decides what the "vault" holds and how the fake behaves:
//   - Publish pushes new versions to watchers at once, as a refresh pass that
//     finds a change does; SetVault changes only the vault, so that a value is
//     served from the cache until RefreshSecret reads it (a rotation the
//     sidecar has not noticed yet).
//   - SetToken and RotateToken set what GetAccessToken answers;
//     RenewTokenBefore makes a short-lived token renew itself before expiry.
//   - FailNext makes the next calls of a method answer chosen errors;
//     Interrupt ends the open watch streams and holds new calls until the
//     test resumes it; Stop and Listen again are a sidecar restart.
//   - Calls, Watchers, WatchNames and Authorization tell what it was asked.
package secretproxytest

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
)

// Server is a fake sidecar.
type Server struct {
	secretproxyv1.UnimplementedSecretServiceServer

	mu       sync.Mutex
	cache    map[string]*secretproxyv1.Secret // what reads and watches serve
	vault    map[string]string                // what RefreshSecret finds
	versions map[string]int
	watchers map[*watcher]struct{}
	calls    map[string]int
	failNext map[string][]error // per method, answered before anything else
	auth     []string           // authorization metadata of every call
	names    [][]string         // names of every WatchSecrets call
	held     chan struct{}      // non-nil while interrupted: closed by resume
	tok      *tokens            // GetAccessToken (tokens.go)

	grpc *grpc.Server
	path string
}

// watcher is one open WatchSecrets stream.
type watcher struct {
	names []string
	msgs  chan []*secretproxyv1.Secret
	end   chan error // Interrupt's error for this stream
}

// New returns a server whose cache and vault hold values (name to value),
// each at version "v1".
func New(values map[string]string) *Server {
	s := &Server{
		cache:    map[string]*secretproxyv1.Secret{},
		vault:    map[string]string{},
		versions: map[string]int{},
		watchers: map[*watcher]struct{}{},
		calls:    map[string]int{},
		failNext: map[string][]error{},
		tok:      newTokens(),
	}
	for n, v := range values {
		s.vault[n] = v
		s.cache[n] = s.newVersionLocked(n, v)
	}
	return s
}

// Start serves a new server on a unix socket in a new temporary directory
// until t ends.
func Start(t testing.TB, values map[string]string) *Server {
	t.Helper()
	s := New(values)
	if err := s.Listen(SocketPath(t)); err != nil {
		t.Fatalf("secretproxytest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// SocketPath is a path for a unix socket in a new directory removed when t
// ends. A socket path is limited to 108 bytes, which t.TempDir() under a long
// test name can exceed, so the directory is made directly in the system's
// temporary directory.
func SocketPath(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "spt")
	if err != nil {
		t.Fatalf("secretproxytest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "grpc.sock")
}

// Listen serves on a unix socket at path (created with mode 0600). After
// Stop, Listen again is the sidecar coming back: the vault, the cache and the
// counts are kept.
func (s *Server) Listen(path string) error {
	_ = os.Remove(path) // a socket left by a stopped server, as the real sidecar does
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	// WaitForHandlers: Stop returns once every stream has ended, so that a
	// test that stops and changes the vault knows no old stream sees it.
	srv := grpc.NewServer(grpc.WaitForHandlers(true),
		grpc.UnaryInterceptor(s.unary), grpc.StreamInterceptor(s.stream))
	secretproxyv1.RegisterSecretServiceServer(srv, s)
	s.mu.Lock()
	s.path, s.grpc = path, srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(l) }() // Serve returns when Stop is called
	return nil
}

// Socket is the path of the unix socket.
func (s *Server) Socket() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.path
}

// Target is the address the client dials: "unix:///path/grpc.sock".
func (s *Server) Target() string { return "unix://" + s.Socket() }

// Stop ends every call and closes the listener, as a sidecar process that
// goes away; the socket file is removed.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.grpc
	s.mu.Unlock()
	if srv != nil {
		srv.Stop() // cancels every call, those Interrupt holds too
	}
}

// FailNext makes the next len(errs) calls of method ("GetSecret",
// "WatchSecrets", "GetAccessToken", ...) answer errs, in order, before the
// fake answers that method normally again.
func (s *Server) FailNext(method string, errs ...error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext[method] = append(s.failNext[method], errs...)
}

// Interrupt ends every open WatchSecrets stream with err and holds every new
// call until resume is called, as a sidecar that drops its streams and comes
// back: what the test changes in between (Publish, SetVault) is in the
// snapshot of the next watch, not sent as a change.
func (s *Server) Interrupt(err error) (resume func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	held := make(chan struct{})
	s.held = held
	for w := range s.watchers {
		select {
		case w.end <- err:
		default: // already ended by an earlier Interrupt
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			if s.held == held {
				s.held = nil
			}
			s.mu.Unlock()
			close(held)
		})
	}
}

// admit records a call, waits while the server is interrupted, and returns
// the error FailNext queued for it, if any.
func (s *Server) admit(ctx context.Context, fullMethod string) error {
	method := fullMethod[strings.LastIndex(fullMethod, "/")+1:]
	md, _ := metadata.FromIncomingContext(ctx)
	s.mu.Lock()
	s.calls[method]++
	s.auth = append(s.auth, strings.Join(md.Get("authorization"), ","))
	held := s.held
	s.mu.Unlock()
	if held != nil {
		select {
		case <-held:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if errs := s.failNext[method]; len(errs) > 0 {
		s.failNext[method] = errs[1:]
		return errs[0]
	}
	return nil
}

func (s *Server) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := s.admit(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (s *Server) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := s.admit(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}

func (s *Server) newVersionLocked(name, value string) *secretproxyv1.Secret {
	s.versions[name]++
	now := timestamppb.Now()
	return &secretproxyv1.Secret{Name: name, Value: value, Version: "v" + strconv.Itoa(s.versions[name]), UpdateTime: now, RefreshTime: now}
}

// Publish stores new versions in the vault and the cache and sends them to
// every watcher of any of them, in one message, as one refresh pass would.
func (s *Server) Publish(values map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var changed []*secretproxyv1.Secret
	for n, v := range values {
		s.vault[n] = v
		sec := s.newVersionLocked(n, v)
		s.cache[n] = sec
		changed = append(changed, sec)
	}
	s.notifyLocked(changed)
}

// notifyLocked sends each watcher the changed secrets it watches, in the
// order it named them (by name when it watches all).
func (s *Server) notifyLocked(changed []*secretproxyv1.Secret) {
	for w := range s.watchers {
		var msg []*secretproxyv1.Secret
		for _, c := range changed {
			if len(w.names) == 0 || slices.Contains(w.names, c.GetName()) {
				msg = append(msg, proto.Clone(c).(*secretproxyv1.Secret))
			}
		}
		if len(msg) == 0 {
			continue
		}
		slices.SortFunc(msg, func(a, b *secretproxyv1.Secret) int {
			if len(w.names) > 0 {
				return slices.Index(w.names, a.GetName()) - slices.Index(w.names, b.GetName())
			}
			return strings.Compare(a.GetName(), b.GetName())
		})
		w.msgs <- msg
	}
}

// SetVault changes the vault only: reads keep serving the cached value until a
// RefreshSecret of that name.
func (s *Server) SetVault(name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vault[name] = value
}

// Calls is how many calls of method ("GetSecret", "WatchSecrets",
// "RefreshSecret", ...) the fake received, failed ones included.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// Watchers is the number of open WatchSecrets streams.
func (s *Server) Watchers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.watchers)
}

// WatchNames is the names requested by each WatchSecrets stream served, in order.
func (s *Server) WatchNames() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.names)
}

// Authorization is the authorization metadata of every call received, in
// order ("" for a call without it).
func (s *Server) Authorization() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.auth)
}

func (s *Server) lookupLocked(name string) (*secretproxyv1.Secret, error) {
	sec, ok := s.cache[name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "secret %q is not in the vault", name)
	}
	return proto.Clone(sec).(*secretproxyv1.Secret), nil
}

// GetSecret serves the cached value.
func (s *Server) GetSecret(_ context.Context, req *secretproxyv1.GetSecretRequest) (*secretproxyv1.GetSecretResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.lookupLocked(req.GetName())
	if err != nil {
		return nil, err
	}
	return &secretproxyv1.GetSecretResponse{Secret: sec}, nil
}

// RefreshSecret reads the "vault"; a new value becomes a new version, is
// cached and sent to watchers, as the real sidecar does.
func (s *Server) RefreshSecret(_ context.Context, req *secretproxyv1.RefreshSecretRequest) (*secretproxyv1.RefreshSecretResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := req.GetName()
	v, ok := s.vault[n]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "secret %q is not in the vault", n)
	}
	if cur := s.cache[n]; cur == nil || cur.GetValue() != v {
		sec := s.newVersionLocked(n, v)
		s.cache[n] = sec
		s.notifyLocked([]*secretproxyv1.Secret{sec})
	}
	sec, err := s.lookupLocked(n)
	if err != nil {
		return nil, err
	}
	sec.RefreshTime = timestamppb.Now()
	return &secretproxyv1.RefreshSecretResponse{Secret: sec}, nil
}

// WatchSecrets sends the snapshot, then every change of the named secrets
// (of all secrets when no name is given), until the client goes away or
// Interrupt ends the stream.
func (s *Server) WatchSecrets(req *secretproxyv1.WatchSecretsRequest, stream grpc.ServerStreamingServer[secretproxyv1.WatchSecretsResponse]) error {
	w := &watcher{names: req.GetNames(), msgs: make(chan []*secretproxyv1.Secret, 64), end: make(chan error, 1)}
	first, err := s.register(w)
	if err != nil {
		return err
	}
	defer func() {
		s.mu.Lock()
		delete(s.watchers, w)
		s.mu.Unlock()
	}()
	if err := stream.Send(&secretproxyv1.WatchSecretsResponse{Secrets: first}); err != nil {
		return err
	}
	for {
		select {
		case <-stream.Context().Done():
			return status.FromContextError(stream.Context().Err()).Err()
		case err := <-w.end:
			return err
		case msg := <-w.msgs:
			if err := stream.Send(&secretproxyv1.WatchSecretsResponse{Secrets: msg}); err != nil {
				return err
			}
		}
	}
}

// register takes the snapshot of w's names and adds w to the watchers under
// one lock, so that no change falls between the two.
func (s *Server) register(w *watcher) ([]*secretproxyv1.Secret, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.names = append(s.names, w.names)
	var first []*secretproxyv1.Secret
	for _, n := range w.names {
		sec, err := s.lookupLocked(n)
		if err != nil {
			return nil, err
		}
		first = append(first, sec)
	}
	if len(w.names) == 0 {
		for _, n := range slices.Sorted(maps.Keys(s.cache)) {
			sec, _ := s.lookupLocked(n)
			first = append(first, sec)
		}
	}
	s.watchers[w] = struct{}{}
	return first, nil
}
