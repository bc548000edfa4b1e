package app_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	spclient "github.com/secretproxy/secretproxy/proto/client"
	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
	"github.com/secretproxy/secretproxy/sidecar/internal/clientauth/kubeletvolume"
	"github.com/secretproxy/secretproxy/sidecar/internal/config"
)

// TestLargestPodReachesClient declares the most secrets a pod may
// (config.MaxSecrets), each holding a value of Key Vault's largest size, and
// watches them all with the project's own client: the first message, over
// gRPC's 4 MiB default, must arrive. A client with a smaller limit fails its
// stream, and the server must not count that stream OK.
func TestLargestPodReachesClient(t *testing.T) {
	values := make(map[string]string, config.MaxSecrets)
	secrets := make([]config.Secret, config.MaxSecrets)
	for i := range config.MaxSecrets {
		name := fmt.Sprintf("big-%03d", i)
		values[name] = strings.Repeat(string(rune('a'+i%26)), config.MaxValueBytes)
		secrets[i] = config.Secret{Name: name}
	}
	e := startEmulator(t, values)
	v := startApp(t, e, baseConfig(e, secrets...))
	waitReady(t, v)

	c, err := spclient.Dial(v.a.GRPCAddr(), spclient.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	errFirst := errors.New("first message received")
	var got, size int
	err = c.Watch(ctx, nil, func(_ context.Context, u spclient.Update) error {
		got = len(u.Secrets)
		for _, s := range u.Secrets {
			size += len(s.GetValue())
		}
		return errFirst
	})
	if !errors.Is(err, errFirst) {
		t.Fatalf("Watch = %v, want the first message", err)
	}
	if got != config.MaxSecrets || size != config.MaxSecrets*config.MaxValueBytes {
		t.Errorf("first message: %d secrets, %d value bytes; want %d, %d", got, size, config.MaxSecrets, config.MaxSecrets*config.MaxValueBytes)
	}

	// A client whose receive limit is below the message fails its stream.
	cc, err := grpc.NewClient(v.a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<20)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	sctx, scancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer scancel()
	stream, err := secretproxyv1.NewSecretServiceClient(cc).WatchSecrets(sctx, &secretproxyv1.WatchSecretsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("Recv with a 1 MiB limit = %v, want RESOURCE_EXHAUSTED", err)
	}
	scancel()

	// Both streams ended on the client's side: neither is OK.
	var byCode map[string]float64
	poll(5*time.Second, func() bool {
		byCode = watchHandled(t, v.reg)
		return byCode["Canceled"] >= 2
	})
	if byCode["OK"] != 0 || byCode["Canceled"] != 2 {
		t.Errorf("grpc_server_handled_total for WatchSecrets by code = %v, want Canceled 2 and OK 0", byCode)
	}
}

// watchHandled returns grpc_server_handled_total of WatchSecrets by code.
func watchHandled(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, s := range counterSeries(t, reg, "grpc_server_handled_total") {
		if s.labels["grpc_method"] == "WatchSecrets" {
			out[s.labels["grpc_code"]] = s.value
		}
	}
	return out
}

// series is one series of a counter: its labels and value.
type series struct {
	labels map[string]string
	value  float64
}

// counterSeries gathers reg and returns every series of the counter name.
func counterSeries(t *testing.T, reg *prometheus.Registry, name string) []series {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []series
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			out = append(out, series{labels, m.GetCounter().GetValue()})
		}
	}
	return out
}

// TestBearerTokenRotation rotates clientAuth.tokenFile the way the kubelet
// updates a mounted Secret (an atomic swap of the "..data" symlink) while the
// sidecar runs: a caller with the new token is served at once, one still
// holding the previous token is served during the overlap, and the project's
// client, which reads the same file on each call, never fails.
func TestBearerTokenRotation(t *testing.T) {
	e := startEmulator(t, map[string]string{"a": "test-value-a"})
	cfg := baseConfig(e, config.Secret{Name: "a"})
	path, swap := kubeletvolume.New(t, "test-token-1\n")
	cfg.ClientAuth.TokenFile = path
	v := startApp(t, e, cfg)
	waitReady(t, v)
	raw := client(t, v)
	get := func(token string) error {
		ctx := metadata.AppendToOutgoingContext(callCtx(t), "authorization", "Bearer "+token)
		_, err := raw.GetSecret(ctx, &secretproxyv1.GetSecretRequest{Name: "a"})
		return err
	}
	app, err := spclient.Dial(v.a.GRPCAddr(), spclient.WithTokenFile(path), spclient.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if _, err := app.Get(callCtx(t), "a"); err != nil {
		t.Fatalf("client before the rotation: %v", err)
	}

	swap("test-token-2\n")
	if _, err := app.Get(callCtx(t), "a"); err != nil {
		t.Errorf("client right after the rotation (it sends the new token): %v", err)
	}
	for _, tt := range []struct {
		token string
		code  codes.Code
	}{{"test-token-2", codes.OK}, {"test-token-1", codes.OK}, {"test-token-3", codes.Unauthenticated}} {
		if err := get(tt.token); status.Code(err) != tt.code {
			t.Errorf("GetSecret with %s after the rotation = %v, want %s", tt.token, err, tt.code)
		}
	}
	if strings.Contains(v.logs.String(), "test-token-") {
		t.Error("a bearer token appears in the logs")
	}
}
