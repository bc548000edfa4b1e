// Package client is the application's side of the secret-proxy API: it dials the
// sidecar in the same pod, over a unix socket or loopback TCP, with defaults that
// suit a sidecar that may still be starting (wait for ready, retry UNAVAILABLE),
// and offers Watch, which keeps a WatchSecrets stream open across sidecar restarts.
package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
)

// MaxMessageBytes is the largest message the client accepts, and the sidecar
// sends: the first WatchSecrets message of the largest pod the sidecar accepts
// (200 declared secrets of Key Vault's 25 KiB limit, with their metadata) is
// about 8 MiB at most, over gRPC's 4 MiB default.
const MaxMessageBytes = 16 << 20

// DefaultTarget is where the sidecar listens on TCP by default.
const DefaultTarget = "127.0.0.1:50051"

// serviceConfig makes every call wait for the sidecar to accept connections
// (it may start after the application) and retries UNAVAILABLE, which the
// sidecar answers while a secret is not loaded yet. Retries apply to unary calls
// and to a stream until its first message; Watch handles the rest itself.
const serviceConfig = `{
  "methodConfig": [{
    "name": [{"service": "secretproxy.v1.SecretService"}],
    "waitForReady": true,
    "retryPolicy": {
      "maxAttempts": 4,
      "initialBackoff": "0.1s",
      "maxBackoff": "1s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`

// Client is a connection to the sidecar. It is safe for concurrent use.
type Client struct {
	conn       *grpc.ClientConn
	api        secretproxyv1.SecretServiceClient
	logger     *slog.Logger
	minBackoff time.Duration
	maxBackoff time.Duration
}

type settings struct {
	token      string
	tokenFile  string
	logger     *slog.Logger
	minBackoff time.Duration
	maxBackoff time.Duration
	dialOpts   []grpc.DialOption
}

// Option configures Dial.
type Option func(*settings)

// WithToken sends "authorization: Bearer <token>" with every call.
func WithToken(token string) Option { return func(s *settings) { s.token = token } }

// WithTokenFile sends the token read from path with every call. The file is
// read again on each call, so a token rotated by Kubernetes is picked up.
func WithTokenFile(path string) Option { return func(s *settings) { s.tokenFile = path } }

// WithLogger sets the logger Watch reports reconnects to (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *settings) { s.logger = l } }

// WithBackoff sets the reconnect back-off bounds (default 100 ms to 5 s) of
// Watch's loop and of the connection's own connect attempts, so a watch is
// back within about maxDelay of the sidecar being back, whatever the outage.
func WithBackoff(minDelay, maxDelay time.Duration) Option {
	return func(s *settings) { s.minBackoff, s.maxBackoff = minDelay, maxDelay }
}

// WithDialOptions adds grpc dial options, for tests and special transports.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(s *settings) { s.dialOpts = append(s.dialOpts, opts...) }
}

// Dial prepares a connection to the sidecar at target: "unix:///path/to/grpc.sock"
// or "host:port" (normally 127.0.0.1:50051). It does not wait for the sidecar;
// calls do, until their context ends.
func Dial(target string, opts ...Option) (*Client, error) {
	s := settings{logger: slog.Default(), minBackoff: 100 * time.Millisecond, maxBackoff: 5 * time.Second}
	for _, o := range opts {
		o(&s)
	}
	if err := validateTarget(target); err != nil {
		return nil, err
	}
	if s.token != "" && s.tokenFile != "" {
		return nil, errors.New("client: set either a token or a token file, not both")
	}
	if s.minBackoff <= 0 || s.maxBackoff < s.minBackoff {
		return nil, fmt.Errorf("client: invalid back-off bounds %v..%v", s.minBackoff, s.maxBackoff)
	}
	dialOpts := []grpc.DialOption{
		// The sidecar is in the same pod: a unix socket or loopback, never the network.
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithConnectParams(connectParams(s.minBackoff, s.maxBackoff)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes)),
	}
	if s.token != "" || s.tokenFile != "" {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(bearer{token: s.token, file: s.tokenFile}))
	}
	dialOpts = append(dialOpts, s.dialOpts...)
	conn, err := grpc.NewClient(target, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("client: dial %q: %w", target, err)
	}
	return &Client{
		conn:       conn,
		api:        secretproxyv1.NewSecretServiceClient(conn),
		logger:     s.logger,
		minBackoff: s.minBackoff,
		maxBackoff: s.maxBackoff,
	}, nil
}

// connectParams bounds gRPC's own reconnect back-off by the client's. Calls
// wait for the connection to be ready (waitForReady), so after a sidecar outage
// a watch comes back only when the channel's next connect attempt succeeds;
// gRPC's default back-off (1 s growing by 1.6 up to 120 s) would let that
// attempt come up to two minutes after the sidecar is back. With the client's
// bounds (default 100 ms to 5 s, plus gRPC's 20 % jitter) the next attempt is
// at most 6 s away. A connect attempt to a sidecar in the same pod takes
// milliseconds; one that hangs is given up after 5 s at least (or maxDelay).
func connectParams(minDelay, maxDelay time.Duration) grpc.ConnectParams {
	return grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: minDelay, Multiplier: 1.6, Jitter: 0.2, MaxDelay: maxDelay},
		MinConnectTimeout: max(maxDelay, 5*time.Second),
	}
}

func validateTarget(target string) error {
	switch {
	case target == "":
		return errors.New("client: empty sidecar address: want unix:///path/grpc.sock or 127.0.0.1:50051")
	case strings.HasPrefix(target, "unix://"):
		if p := strings.TrimPrefix(target, "unix://"); !strings.HasPrefix(p, "/") {
			return fmt.Errorf("client: sidecar address %q: a unix socket needs an absolute path (unix:///path/grpc.sock)", target)
		}
		return nil
	case strings.Contains(target, "://"):
		return fmt.Errorf("client: sidecar address %q: only unix:// or host:port are supported", target)
	}
	if _, _, err := net.SplitHostPort(target); err != nil {
		return fmt.Errorf("client: sidecar address %q: want host:port: %w", target, err)
	}
	return nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// SecretService returns the generated API client on this connection.
func (c *Client) SecretService() secretproxyv1.SecretServiceClient { return c.api }

// Get returns one secret from the sidecar's cache.
func (c *Client) Get(ctx context.Context, name string) (*secretproxyv1.Secret, error) {
	resp, err := c.api.GetSecret(ctx, &secretproxyv1.GetSecretRequest{Name: name})
	if err != nil {
		return nil, fmt.Errorf("get secret %q: %w", name, err)
	}
	return resp.GetSecret(), nil
}

// Refresh asks the sidecar to read a secret from the vault now (rate-limited by
// the sidecar), for when the cached value stopped working.
func (c *Client) Refresh(ctx context.Context, name string) (*secretproxyv1.Secret, error) {
	resp, err := c.api.RefreshSecret(ctx, &secretproxyv1.RefreshSecretRequest{Name: name})
	if err != nil {
		return nil, fmt.Errorf("refresh secret %q: %w", name, err)
	}
	return resp.GetSecret(), nil
}

// bearer sends the caller's token. The sidecar is reached over a unix socket or
// loopback, so the token is allowed without transport security.
type bearer struct {
	token string
	file  string
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	tok := b.token
	if b.file != "" {
		raw, err := os.ReadFile(b.file)
		if err != nil {
			return nil, fmt.Errorf("read sidecar token file: %w", err)
		}
		tok = strings.TrimSpace(string(raw))
		if tok == "" {
			return nil, fmt.Errorf("sidecar token file %s is empty", b.file)
		}
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }
