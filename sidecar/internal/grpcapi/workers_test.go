package grpcapi

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
	"github.com/secretproxy/secretproxy/sidecar/internal/metrics"
)

// Calls run on streamWorkers long-lived goroutines (server.go). Watch streams
// that hold more than all of them for hours must not keep a unary call from
// being served, nor many calls at once: grpc falls back to a goroutine per call.
func TestWatchStreamsBeyondWorkersDoNotStarveCalls(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry(), []string{"db-password"}, "test")
	client := serve(t, ServerOptions{Cache: loadedCache(t, m, "db-password"), Metrics: m})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	for i := range streamWorkers + 4 {
		stream, err := client.WatchSecrets(ctx, &secretproxyv1.WatchSecretsRequest{Names: []string{"db-password"}})
		if err == nil {
			_, err = stream.Recv() // the stream is now held open by a handler
		}
		if err != nil {
			t.Fatalf("watch %d: %v", i, err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4*streamWorkers)
	for range 4 * streamWorkers {
		wg.Go(func() {
			r, err := client.GetSecret(ctx, &secretproxyv1.GetSecretRequest{Name: "db-password"})
			if err == nil && r.GetSecret().GetValue() != "test-value-of-db-password" {
				t.Errorf("GetSecret answered another value")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("GetSecret with every worker held by a watch stream: %v", err)
		}
	}
}
