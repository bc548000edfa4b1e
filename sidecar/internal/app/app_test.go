package app_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
	"github.com/secretproxy/secretproxy/sidecar/internal/app"
	"github.com/secretproxy/secretproxy/sidecar/internal/config"
	"github.com/secretproxy/secretproxy/sidecar/internal/keyvault"
	"github.com/secretproxy/secretproxy/sidecar/internal/logbuf"
	"github.com/secretproxy/secretproxy/sidecar/kvemulator"
)

var seq atomic.Int64

type env struct {
	e      *kvemulator.Emulator
	a      *app.App
	reg    *prometheus.Registry
	logs   *logbuf.Buffer
	cancel context.CancelFunc
	done   chan error
}

// startEmulator starts a kvemulator and points managed identity at it.
func startEmulator(t *testing.T, secrets map[string]string) *kvemulator.Emulator {
	t.Helper()
	return startEmulatorWith(t, kvemulator.Options{Secrets: secrets})
}

// startEmulatorWith is startEmulator with every option.
func startEmulatorWith(t *testing.T, opts kvemulator.Options) *kvemulator.Emulator {
	t.Helper()
	e, err := kvemulator.Start(opts)
	if err != nil {
		t.Fatalf("start emulator: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	for _, k := range []string{"MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_ID", "AZURE_TENANT_ID"} {
		t.Setenv(k, "")
	}
	t.Setenv("IDENTITY_ENDPOINT", e.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", e.IdentityHeader())
	return e
}

func baseConfig(e *kvemulator.Emulator, secrets ...config.Secret) config.Config {
	cfg := config.Default()
	cfg.Vault = config.Vault{URL: e.VaultURL(), DisableChallengeResourceVerification: true}
	// A distinct client id per test: MSAL's managed identity token cache is
	// global to the process.
	cfg.Auth = config.Auth{Mode: config.AuthManagedIdentity, ClientID: fmt.Sprintf("app-test-%d", seq.Add(1))}
	cfg.Secrets = secrets
	cfg.Listen = config.Listen{GRPC: "127.0.0.1:0", Ops: "127.0.0.1:0"}
	cfg.Refresh.Interval = config.Duration(time.Hour)
	cfg.Refresh.MinInterval = config.Duration(time.Second)
	cfg.Log.Level = "debug"
	return cfg
}

// startApp runs the sidecar in the test process until the test ends.
func startApp(t *testing.T, e *kvemulator.Emulator, cfg config.Config) *env {
	t.Helper()
	return startAppWith(t, e, cfg, app.Options{})
}

// startAppWith is startApp with options of the test's own; the version, the
// log buffer, the registry and the emulator's transport are always the
// harness's.
func startAppWith(t *testing.T, e *kvemulator.Emulator, cfg config.Config, o app.Options) *env {
	t.Helper()
	reg := prometheus.NewRegistry()
	logs := &logbuf.Buffer{}
	o.Version, o.LogOutput, o.Registry = "test", logs, reg
	o.KeyVault.Transport = e.HTTPClient()
	a, err := app.New(cfg, o)
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	v := &env{e: e, a: a, reg: reg, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { v.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		if err := v.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return v
}

var errStopTimeout = errors.New("the app did not return from Run within 15 s of the stop")

func (v *env) stop() error {
	v.cancel()
	select {
	case err := <-v.done:
		v.done <- err // a second stop sees the same result
		return err
	case <-time.After(15 * time.Second):
		return errStopTimeout
	}
}

func dial(t *testing.T, target string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func client(t *testing.T, v *env) secretproxyv1.SecretServiceClient {
	return secretproxyv1.NewSecretServiceClient(dial(t, v.a.GRPCAddr()))
}

// poll reports whether cond became true within bound, asking every 10 ms
// (the sidecar runs in real time here: sockets and the emulator).
func poll(bound time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(bound); ; time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

func waitReady(t *testing.T, v *env) {
	t.Helper()
	hc := healthpb.NewHealthClient(dial(t, v.a.GRPCAddr()))
	serving := poll(10*time.Second, func() bool {
		r, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "secretproxy.v1.SecretService"})
		return err == nil && r.Status == healthpb.HealthCheckResponse_SERVING
	})
	if !serving {
		t.Fatalf("not SERVING after 10 s; logs:\n%s", v.logs)
	}
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestStatusCodes(t *testing.T) {
	e := startEmulator(t, map[string]string{"sql-user": "test-user-1", "db-password": "test-password-1", "off": "test-off"})
	if err := e.DisableSecret("off"); err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(e,
		config.Secret{Name: "db-user", VaultSecret: "sql-user"},
		config.Secret{Name: "db-password"},
		config.Secret{Name: "extra-optional", Optional: true},
		config.Secret{Name: "gone", Optional: true},
		config.Secret{Name: "off", Optional: true},
	)
	v := startApp(t, e, cfg)
	waitReady(t, v)
	c := client(t, v)

	got, err := c.GetSecret(callCtx(t), &secretproxyv1.GetSecretRequest{Name: "db-user"})
	if err != nil || got.GetSecret().GetValue() != "test-user-1" || got.GetSecret().GetName() != "db-user" || got.GetSecret().GetStale() {
		t.Fatalf("GetSecret(db-user) = %v, %v", err, got.GetSecret().GetName())
	}

	tests := []struct {
		name string
		call func(ctx context.Context) error
		code codes.Code
		msg  string // a part of the message
	}{
		{"get malformed", func(ctx context.Context) error {
			_, err := c.GetSecret(ctx, &secretproxyv1.GetSecretRequest{Name: "bad name!"})
			return err
		}, codes.InvalidArgument, `"bad name!"`},
		{"get empty name", func(ctx context.Context) error {
			_, err := c.GetSecret(ctx, &secretproxyv1.GetSecretRequest{})
			return err
		}, codes.InvalidArgument, "1-127"},
		{"get undeclared", func(ctx context.Context) error {
			_, err := c.GetSecret(ctx, &secretproxyv1.GetSecretRequest{Name: "nope"})
			return err
		}, codes.PermissionDenied, `"nope" is not declared`},
		{"get case-sensitive", func(ctx context.Context) error {
			_, err := c.GetSecret(ctx, &secretproxyv1.GetSecretRequest{Name: "DB-USER"})
			return err
		}, codes.PermissionDenied, "DB-USER"},
		{"get absent", func(ctx context.Context) error {
			_, err := c.GetSecret(ctx, &secretproxyv1.GetSecretRequest{Name: "gone"})
			return err
		}, codes.NotFound, `"gone"`},
		{"get disabled", func(ctx context.Context) error {
			_, err := c.GetSecret(ctx, &secretproxyv1.GetSecretRequest{Name: "off"})
			return err
		}, codes.FailedPrecondition, "disabled"},
		{"refresh undeclared", func(ctx context.Context) error {
			_, err := c.RefreshSecret(ctx, &secretproxyv1.RefreshSecretRequest{Name: "nope"})
			return err
		}, codes.PermissionDenied, "nope"},
		{"batch malformed first", func(ctx context.Context) error {
			_, err := c.BatchGetSecrets(ctx, &secretproxyv1.BatchGetSecretsRequest{Names: []string{"db-user", "bad name!", "nope"}})
			return err
		}, codes.InvalidArgument, "bad name!"},
		{"batch undeclared", func(ctx context.Context) error {
			_, err := c.BatchGetSecrets(ctx, &secretproxyv1.BatchGetSecretsRequest{Names: []string{"db-user", "extra-optional", "nope"}})
			return err
		}, codes.PermissionDenied, "nope"},
		{"batch first unservable decides", func(ctx context.Context) error {
			_, err := c.BatchGetSecrets(ctx, &secretproxyv1.BatchGetSecretsRequest{Names: []string{"db-user", "off", "gone"}})
			return err
		}, codes.FailedPrecondition, `"off"`},
		{"batch empty", func(ctx context.Context) error {
			_, err := c.BatchGetSecrets(ctx, &secretproxyv1.BatchGetSecretsRequest{})
			return err
		}, codes.InvalidArgument, "empty"},
		{"batch too many", func(ctx context.Context) error {
			names := make([]string, 101)
			for i := range names {
				names[i] = "db-user"
			}
			_, err := c.BatchGetSecrets(ctx, &secretproxyv1.BatchGetSecretsRequest{Names: names})
			return err
		}, codes.InvalidArgument, "at most 100"},
		{"watch undeclared", func(ctx context.Context) error {
			s, err := c.WatchSecrets(ctx, &secretproxyv1.WatchSecretsRequest{Names: []string{"db-user", "nope"}})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, codes.PermissionDenied, "nope"},
		{"watch optional disabled left out", func(ctx context.Context) error {
			s, err := c.WatchSecrets(ctx, &secretproxyv1.WatchSecretsRequest{Names: []string{"db-user", "off"}})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, codes.OK, ""}, // "off" is optional: left out, so the stream starts
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(callCtx(t))
			st := status.Convert(err)
			if st.Code() != tt.code || !strings.Contains(st.Message(), tt.msg) {
				t.Errorf("got %s %q, want %s containing %q", st.Code(), st.Message(), tt.code, tt.msg)
			}
		})
	}

	batch, err := c.BatchGetSecrets(callCtx(t), &secretproxyv1.BatchGetSecretsRequest{Names: []string{"db-password", "db-user", "db-password"}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range batch.GetSecrets() {
		names = append(names, s.GetName())
	}
	if diff := cmp.Diff([]string{"db-password", "db-user", "db-password"}, names); diff != "" {
		t.Errorf("batch order (-want +got):\n%s", diff)
	}

	list, err := c.ListSecrets(callCtx(t), &secretproxyv1.ListSecretsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	names = nil
	for _, s := range list.GetSecrets() {
		if s.GetValue() != "" {
			t.Errorf("ListSecrets holds a value for %s", s.GetName())
		}
		names = append(names, s.GetName())
	}
	if diff := cmp.Diff(cfg.DeclaredNames(), names); diff != "" {
		t.Errorf("ListSecrets names (-want +got):\n%s", diff)
	}
}

func TestBearerToken(t *testing.T) {
	e := startEmulator(t, map[string]string{"a": "test-value-a"})
	cfg := baseConfig(e, config.Secret{Name: "a"})
	cfg.ClientAuth.TokenFile = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(cfg.ClientAuth.TokenFile, []byte("test-token-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	v := startApp(t, e, cfg)
	waitReady(t, v) // health is not behind the token
	c := client(t, v)
	tests := []struct {
		name string
		md   []string
		code codes.Code
	}{
		{"no token", nil, codes.Unauthenticated},
		{"wrong token", []string{"authorization", "Bearer test-token-2"}, codes.Unauthenticated},
		{"not bearer", []string{"authorization", "test-token-1"}, codes.Unauthenticated},
		{"right token", []string{"authorization", "Bearer test-token-1"}, codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := callCtx(t)
			if tt.md != nil {
				ctx = metadata.AppendToOutgoingContext(ctx, tt.md...)
			}
			_, err := c.GetSecret(ctx, &secretproxyv1.GetSecretRequest{Name: "a"})
			if got := status.Code(err); got != tt.code {
				t.Errorf("GetSecret = %v, want %s", err, tt.code)
			}
			s, err := c.WatchSecrets(ctx, &secretproxyv1.WatchSecretsRequest{})
			if err == nil {
				_, err = s.Recv()
			}
			if got := status.Code(err); got != tt.code {
				t.Errorf("WatchSecrets = %v, want %s", err, tt.code)
			}
		})
	}
	if strings.Contains(v.logs.String(), "test-token-1") {
		t.Error("the bearer token appears in the logs")
	}
}

func TestUnixSocket(t *testing.T) {
	e := startEmulator(t, map[string]string{"a": "test-value-a"})
	dir := t.TempDir()
	tests := []struct {
		name string
		uids []int
		code codes.Code
	}{
		{"own uid allowed", []int{os.Getuid()}, codes.OK},
		{"uid not allowed", []int{os.Getuid() + 4242}, codes.Unauthenticated},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := filepath.Join(dir, fmt.Sprintf("grpc-%d.sock", i))
			// A stale socket from an earlier run: a socket file nobody listens on.
			l, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			l.Close()

			cfg := baseConfig(e, config.Secret{Name: "a"})
			cfg.Listen.GRPC = ""
			cfg.Listen.Unix = sock
			cfg.ClientAuth.AllowedUIDs = tt.uids
			v := startApp(t, e, cfg)
			fi, err := os.Stat(sock)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
				t.Errorf("socket mode = %v, want a socket with 0660", fi.Mode())
			}
			if v.a.GRPCAddr() != "" {
				t.Errorf("TCP listener open at %s with listen.grpc off", v.a.GRPCAddr())
			}
			c := secretproxyv1.NewSecretServiceClient(dial(t, "unix://"+sock))
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			_, err = c.GetSecret(ctx, &secretproxyv1.GetSecretRequest{Name: "a"})
			if got := status.Code(err); got != tt.code {
				t.Errorf("GetSecret over the socket = %v, want %s", err, tt.code)
			}
			if err := v.stop(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("socket left behind after shutdown: %v", err)
			}
		})
	}

	t.Run("refuses to replace a file that is not a socket", func(t *testing.T) {
		path := filepath.Join(dir, "not-a-socket")
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := baseConfig(e, config.Secret{Name: "a"})
		cfg.Listen.Unix = path
		_, err := app.New(cfg, app.Options{LogOutput: io.Discard, KeyVault: keyvault.Options{Transport: e.HTTPClient()}})
		if err == nil || !strings.Contains(err.Error(), "not a socket") {
			t.Fatalf("New = %v, want a refusal", err)
		}
		if b, _ := os.ReadFile(path); string(b) != "x" {
			t.Error("the file was touched")
		}
	})
}

func TestLoopbackRefused(t *testing.T) {
	e := startEmulator(t, map[string]string{"a": "test-value-a"})
	cfg := baseConfig(e, config.Secret{Name: "a"})
	cfg.Listen.GRPC = "0.0.0.0:0"
	_, err := app.New(cfg, app.Options{LogOutput: io.Discard})
	var ps config.Problems
	if !errors.As(err, &ps) || ps[0].Path != "listen.grpc" {
		t.Fatalf("New = %v, want a listen.grpc problem", err)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestReadinessAndShutdown(t *testing.T) {
	e := startEmulator(t, map[string]string{"a": "test-value-a", "b": "test-value-b"})
	e.SetFault(kvemulator.Fault{Mode: kvemulator.FaultOutage})
	cfg := baseConfig(e, config.Secret{Name: "a"}, config.Secret{Name: "b"})
	v := startApp(t, e, cfg)
	ops := "http://" + v.a.OpsAddr()

	if code, _ := get(t, ops+"/livez"); code != 200 {
		t.Errorf("/livez = %d, want 200", code)
	}
	hc := healthpb.NewHealthClient(dial(t, v.a.GRPCAddr()))
	for _, svc := range []string{"", "secretproxy.v1.SecretService"} {
		r, err := hc.Check(callCtx(t), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || r.Status != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("health %q during the outage at start = %v %v, want NOT_SERVING", svc, r.GetStatus(), err)
		}
	}
	if code, body := get(t, ops+"/readyz"); code != 503 || !strings.Contains(body, "a, b") {
		t.Errorf("/readyz = %d %q, want 503 naming a, b", code, body)
	}
	// A read of a secret not loaded yet waits, then answers UNAVAILABLE
	// before the caller's deadline, not DEADLINE_EXCEEDED.
	c := client(t, v)
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	_, err := c.GetSecret(ctx, &secretproxyv1.GetSecretRequest{Name: "a"})
	cancel()
	if status.Code(err) != codes.Unavailable {
		t.Errorf("GetSecret before the first load = %v, want UNAVAILABLE", err)
	}

	e.SetFault(kvemulator.Fault{})
	waitReady(t, v) // the back-off retry (minInterval 1s) loads them
	if code, _ := get(t, ops+"/readyz"); code != 200 {
		t.Errorf("/readyz after the load = %d, want 200", code)
	}

	// An outage after the load keeps the pod ready and serves stale values.
	e.SetFault(kvemulator.Fault{Mode: kvemulator.FaultOutage})
	time.Sleep(1100 * time.Millisecond) // let minInterval pass so RefreshSecret reads the vault
	r, err := c.RefreshSecret(callCtx(t), &secretproxyv1.RefreshSecretRequest{Name: "a"})
	if err != nil || !r.GetSecret().GetStale() || r.GetSecret().GetValue() != "test-value-a" {
		t.Fatalf("RefreshSecret during an outage = %v stale %v, want the stale value", err, r.GetSecret().GetStale())
	}
	if code, _ := get(t, ops+"/readyz"); code != 200 {
		t.Errorf("/readyz during an outage after the load = %d, want 200", code)
	}

	// SIGTERM: watch streams (secrets and health) end UNAVAILABLE, health
	// says NOT_SERVING, Run returns nil without needing the hard stop.
	w, err := c.WatchSecrets(t.Context(), &secretproxyv1.WatchSecretsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatal(err)
	}
	hw, err := hc.Watch(t.Context(), &healthpb.HealthCheckRequest{Service: "secretproxy.v1.SecretService"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := hw.Recv(); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health watch: %v %v, want SERVING", r.GetStatus(), err)
	}
	if err := v.stop(); err != nil {
		t.Fatalf("Run after the stop: %v", err)
	}
	if _, err := w.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("watch after the stop = %v, want UNAVAILABLE", err)
	}
	var last error
	for range 3 { // at most a NOT_SERVING message, then the end of the stream
		r, err := hw.Recv()
		if err != nil {
			last = err
			break
		}
		if r.Status != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("health watch during shutdown = %v, want NOT_SERVING", r.Status)
		}
	}
	if status.Code(last) != codes.Unavailable {
		t.Errorf("health watch after the stop = %v, want UNAVAILABLE", last)
	}
	if strings.Contains(v.logs.String(), "graceful stop timed out") {
		t.Error("shutdown needed the hard stop: a stream held GracefulStop")
	}
}

func TestRotationReachesWatcher(t *testing.T) {
	e := startEmulator(t, map[string]string{"sql-user": "test-user-1", "sql-password": "test-password-1"})
	cfg := baseConfig(e, config.Secret{Name: "db-user", VaultSecret: "sql-user"}, config.Secret{Name: "db-password", VaultSecret: "sql-password"})
	cfg.Refresh.Interval = config.Duration(time.Second)
	cfg.Refresh.Jitter = 0
	v := startApp(t, e, cfg)
	c := client(t, v)
	w, err := c.WatchSecrets(t.Context(), &secretproxyv1.WatchSecretsRequest{Names: []string{"db-user", "db-password"}})
	if err != nil {
		t.Fatal(err)
	}
	first, err := w.Recv()
	if err != nil || len(first.GetSecrets()) != 2 {
		t.Fatalf("first message: %v, %d secrets", err, len(first.GetSecrets()))
	}
	u := e.SetSecret("sql-user", "test-user-2")
	p := e.SetSecret("sql-password", "test-password-2")
	got, err := w.Recv()
	if err != nil {
		t.Fatal(err)
	}
	versions := map[string]string{}
	for _, s := range got.GetSecrets() {
		versions[s.GetName()] = s.GetVersion()
	}
	// Both changed in one pass normally; if the pass fell between the two
	// SetSecret calls, the second message carries the rest.
	if len(versions) == 1 {
		more, err := w.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range more.GetSecrets() {
			versions[s.GetName()] = s.GetVersion()
		}
	}
	if diff := cmp.Diff(map[string]string{"db-user": u, "db-password": p}, versions); diff != "" {
		t.Errorf("rotated versions (-want +got):\n%s", diff)
	}
}
