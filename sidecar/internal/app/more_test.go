package app_test

import (
	"errors"
	"io"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
	"github.com/secretproxy/secretproxy/sidecar/internal/config"
)

func TestColdReadsOneVaultGet(t *testing.T) {
	e := startEmulator(t, map[string]string{"sql-password": "test-password-1"})
	cfg := baseConfig(e, config.Secret{Name: "db-password", VaultSecret: "sql-password"})
	v := startApp(t, e, cfg)
	c := client(t, v)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 100 {
		wg.Go(func() {
			r, err := c.GetSecret(callCtx(t), &secretproxyv1.GetSecretRequest{Name: "db-password"})
			if err == nil && r.GetSecret().GetValue() != "test-password-1" {
				err = status.Error(codes.Internal, "wrong value")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("cold read: %v", err)
		}
	}
	gets := 0
	for _, r := range e.Requests() {
		if r.Kind == "vault" && r.Path == "/secrets/sql-password/" && r.Status == 200 {
			gets++
		}
	}
	if gets != 1 {
		t.Errorf("vault GETs answered 200 = %d, want 1 for 100 concurrent cold reads", gets)
	}
}

func TestReflection(t *testing.T) {
	e := startEmulator(t, map[string]string{"a": "test-value-a"})
	for _, on := range []bool{false, true} {
		cfg := baseConfig(e, config.Secret{Name: "a"})
		cfg.Listen.Reflection = on
		v := startApp(t, e, cfg)
		rc := reflectionpb.NewServerReflectionClient(dial(t, v.a.GRPCAddr()))
		stream, err := rc.ServerReflectionInfo(callCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		err = stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
		var resp *reflectionpb.ServerReflectionResponse
		// A server that refuses the stream may close it before Send returns: Send then
		// says io.EOF and the refusal's status is Recv's to give.
		if err == nil || errors.Is(err, io.EOF) {
			resp, err = stream.Recv()
		}
		if !on {
			if status.Code(err) != codes.Unimplemented {
				t.Errorf("reflection off: %v, want UNIMPLEMENTED", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("reflection on: %v", err)
		}
		found := false
		for _, s := range resp.GetListServicesResponse().GetService() {
			found = found || s.GetName() == "secretproxy.v1.SecretService"
		}
		if !found {
			t.Errorf("reflection lists %v, want secretproxy.v1.SecretService", resp.GetListServicesResponse().GetService())
		}
	}
}
