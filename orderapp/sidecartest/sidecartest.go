// Package sidecartest is a stand-in for the secret-proxy sidecar that speaks
// its gRPC API (secretproxy.v1.SecretService) on a unix socket, for tests and
// load runs of the order application. The test decides what the "vault" holds:
// Publish pushes new versions to watchers at once (like a refresh pass finding
// a change), SetVault changes only the vault, so that a value is served from the
// cache until RefreshSecret reads it (like a rotation the sidecar has not
// noticed yet). It counts the calls it answers.
package sidecartest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
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
	watchers map[chan []*secretproxyv1.Secret][]string
	calls    map[string]int
	tok      *tokens // GetAccessToken (tokens.go)

	grpc *grpc.Server
	path string
}

// New returns a server whose cache and vault hold values (name to value).
func New(values map[string]string) *Server {
	s := &Server{
		cache:    map[string]*secretproxyv1.Secret{},
		vault:    map[string]string{},
		versions: map[string]int{},
		watchers: map[chan []*secretproxyv1.Secret][]string{},
		calls:    map[string]int{},
		tok:      newTokens(),
	}
	for n, v := range values {
		s.vault[n] = v
		s.cache[n] = s.newVersionLocked(n, v)
	}
	return s
}

// Start serves a new server on a unix socket in t.TempDir() until t ends.
func Start(t testing.TB, values map[string]string) *Server {
	t.Helper()
	s := New(values)
	if err := s.Listen(filepath.Join(t.TempDir(), "grpc.sock")); err != nil {
		t.Fatalf("sidecartest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Listen serves on a unix socket at path (created with mode 0600).
func (s *Server) Listen(path string) error {
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	s.path = path
	s.grpc = grpc.NewServer()
	secretproxyv1.RegisterSecretServiceServer(s.grpc, s)
	go func() { _ = s.grpc.Serve(l) }() // Serve returns when Stop is called
	return nil
}

// Target is the address the client dials: "unix:///path/grpc.sock".
func (s *Server) Target() string { return "unix://" + s.path }

// Stop ends every stream and closes the listener.
func (s *Server) Stop() {
	if s.grpc != nil {
		s.grpc.Stop()
	}
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

func (s *Server) notifyLocked(changed []*secretproxyv1.Secret) {
	for ch, names := range s.watchers {
		var msg []*secretproxyv1.Secret
		for _, c := range changed {
			if wants(names, c.GetName()) {
				msg = append(msg, proto.Clone(c).(*secretproxyv1.Secret))
			}
		}
		if len(msg) > 0 {
			ch <- msg
		}
	}
}

// SetVault changes the vault only: reads keep serving the cached value until a
// RefreshSecret of that name.
func (s *Server) SetVault(name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vault[name] = value
}

// Calls is how many calls of method ("GetSecret", "WatchSecrets", "RefreshSecret", ...) were answered.
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

func wants(names []string, n string) bool {
	if len(names) == 0 {
		return true
	}
	for _, x := range names {
		if x == n {
			return true
		}
	}
	return false
}

func (s *Server) count(method string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[method]++
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
	s.count("GetSecret")
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
	s.count("RefreshSecret")
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

// WatchSecrets sends the snapshot, then every change of the named secrets.
func (s *Server) WatchSecrets(req *secretproxyv1.WatchSecretsRequest, stream grpc.ServerStreamingServer[secretproxyv1.WatchSecretsResponse]) error {
	s.count("WatchSecrets")
	names := req.GetNames()
	ch := make(chan []*secretproxyv1.Secret, 64)
	s.mu.Lock()
	var first []*secretproxyv1.Secret
	for _, n := range names {
		sec, err := s.lookupLocked(n)
		if err != nil {
			s.mu.Unlock()
			return err
		}
		first = append(first, sec)
	}
	if len(names) == 0 {
		for n := range s.cache {
			sec, _ := s.lookupLocked(n)
			first = append(first, sec)
		}
	}
	s.watchers[ch] = names
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.watchers, ch)
		s.mu.Unlock()
	}()
	if err := stream.Send(&secretproxyv1.WatchSecretsResponse{Secrets: first}); err != nil {
		return err
	}
	for {
		select {
		case <-stream.Context().Done():
			return status.FromContextError(stream.Context().Err()).Err()
		case msg := <-ch:
			if err := stream.Send(&secretproxyv1.WatchSecretsResponse{Secrets: msg}); err != nil {
				return err
			}
		}
	}
}
