package app_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/secretproxy/secretproxy/sidecar/internal/app"
	"github.com/secretproxy/secretproxy/sidecar/internal/config"
	"github.com/secretproxy/secretproxy/sidecar/kvemulator"
)

// The start-up garbage is handed back to the OS once, when the pod first
// becomes ready (docs/benchmarks.md: idle RSS), not before.
func TestStartupMemoryReleasedOnceWhenReady(t *testing.T) {
	var calls atomic.Int32
	released := make(chan struct{}, 10)
	t.Cleanup(app.SetReleaseStartupMemory(func() {
		calls.Add(1)
		released <- struct{}{}
	}))
	e := startEmulator(t, map[string]string{"a": "test-value-a"})
	e.SetFault(kvemulator.Fault{Mode: kvemulator.FaultOutage})
	v := startApp(t, e, baseConfig(e, config.Secret{Name: "a"}))

	if code, _ := get(t, "http://"+v.a.OpsAddr()+"/readyz"); code != 503 {
		t.Fatalf("/readyz during the outage = %d, want 503", code)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("released %d times before the pod was ready, want 0", n)
	}
	e.SetFault(kvemulator.Fault{})
	waitReady(t, v)
	select {
	case <-released:
	case <-time.After(10 * time.Second):
		t.Fatal("start-up memory not released within 10 s of readiness")
	}
	if err := v.stop(); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("released %d times, want once", n)
	}
}
