package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/secretproxy/secretproxy/e2e/pod"
	"github.com/secretproxy/secretproxy/proto/client"
	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
)

const ordersPath = "/api/v1/clients/1/orders?limit=20"

func rotations(t *testing.T, p *testPod) float64 {
	return metric(t, p.appURL+"/metrics", `orderapp_credential_rotations_total{result="success"}`)
}

// rotatePassword changes the role's password in PostgreSQL, then publishes it
// in the vault, the order an operator follows.
func (p *testPod) rotatePassword(ctx context.Context, password string) {
	p.t.Helper()
	p.pg.SetPassword(p.t, dbUser, password)
	if _, err := p.emu.SetSecret(ctx, "sql-password", password); err != nil {
		p.t.Fatal(err)
	}
}

func assertNoSecretInOutput(t *testing.T, p *pod.Process, secrets ...string) {
	t.Helper()
	out := p.Output()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("%s printed a secret value in its logs", p.Name)
		}
	}
}

func TestAppStartedBeforeSidecarWaitsThenBecomesReady(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// migrate and seed need the sidecar; run them in a first pod, then start a
	// fresh app before a fresh sidecar on the same database.
	p := startPod(t, podOptions{})
	stopOrReport(t, p.app)
	stopOrReport(t, p.sidecar)
	if err := os.Remove(p.socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}

	p.startApp()
	// Without its credentials the app must wait, not crash, listening and
	// answering /readyz 503 with the reason. A refused connection (an app
	// that is not listening) fails here: "not ready" must be said by the app,
	// not concluded from its silence.
	code, body := firstAnswer(t, ctx, p, p.appURL+"/readyz")
	var e struct {
		Error struct{ Code, Message, Reason string } `json:"error"`
	}
	if code != http.StatusServiceUnavailable || json.Unmarshal([]byte(body), &e) != nil ||
		e.Error.Code != "unavailable" || e.Error.Reason != "waiting_for_credentials" || e.Error.Message == "" {
		t.Fatalf("orderapp /readyz without the sidecar: %d %s; want 503 with code unavailable and reason waiting_for_credentials", code, body)
	}

	// Still running (a crash would fail here), it becomes ready once the
	// sidecar is up.
	p.startSidecar(ctx)
	if err := pod.WaitHTTP(ctx, p.appURL+"/readyz"); err != nil {
		t.Fatalf("orderapp did not become ready once the sidecar was up: %v\n%s", err, pod.Tail(p.app.Output(), 30))
	}
	if code, body, err := get(ctx, p.appURL+ordersPath); err != nil || code != http.StatusOK {
		t.Fatalf("orders after start-up: %d %v %.200s", code, err, body)
	}
}

// firstAnswer polls url until the app answers it at all (any status) and
// returns that answer; the test fails when the app exits or has not answered
// within 10 s.
func firstAnswer(t *testing.T, ctx context.Context, p *testPod, url string) (int, string) {
	t.Helper()
	var code int
	var body string
	var lastErr error
	eventually(t, 10*time.Second, "orderapp listening on "+url, func() bool {
		select {
		case <-p.app.Done():
			t.Fatalf("orderapp exited: %v\n%s", p.app.ExitErr(), pod.Tail(p.app.Output(), 30))
		default:
		}
		var err error
		code, body, err = get(ctx, url)
		if err != nil && lastErr == nil {
			t.Logf("GET %s: %v (polling until it answers)", url, err)
		}
		lastErr = err
		return err == nil
	})
	return code, body
}

func TestRotationDuringContinuousRequests(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	p := startPod(t, podOptions{})
	before := rotations(t, p)

	stop := make(chan struct{})
	done := make(chan load, 1)
	var ok atomic.Int64
	go func() { done <- runLoad(ctx, p.appURL+ordersPath, 4, stop, &ok) }()
	// A warm pool before the rotation: one connection per worker, so that no
	// request needs a new login between the password's change in the
	// database and in the vault (which the rotation's order allows).
	eventually(t, 30*time.Second, "some requests before the rotation, on a pool of 4 connections", func() bool {
		return ok.Load() >= 40 && metric(t, p.appURL+"/metrics", `go_sql_open_connections{db_name="orderapp"}`) >= 4
	})
	const newPassword = "test-password-2"
	p.rotatePassword(ctx, newPassword)
	eventually(t, 30*time.Second, "orderapp reports a successful credential rotation", func() bool {
		return rotations(t, p) > before
	})
	// Keep the load on the new pool for a while (counted, not timed).
	after := ok.Load()
	eventually(t, 30*time.Second, "requests on the new pool", func() bool { return ok.Load() >= after+80 })
	close(stop)
	l := <-done

	if l.ok == 0 || l.failed != 0 {
		t.Errorf("during the rotation: %d requests succeeded, %d failed (first failure: %s); want all to succeed", l.ok, l.failed, l.firstErr)
	}
	t.Logf("requests during rotation: %d, all succeeded", l.ok)
	// The old password no longer works in the database, so a successful query
	// now proves the app is on the new pool.
	if code, _, err := get(ctx, p.appURL+ordersPath); err != nil || code != http.StatusOK {
		t.Errorf("orders after rotation: %d %v", code, err)
	}
	assertNoSecretInOutput(t, p.sidecar, dbPassword, newPassword)
	assertNoSecretInOutput(t, p.app, dbPassword, newPassword)
}

func TestVaultOutageAppKeepsServing(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	p := startPod(t, podOptions{})
	stale := `secretproxy_secret_stale{secret="db-password"}`

	if err := p.emu.SetFault(ctx, "outage", 0); err != nil {
		t.Fatal(err)
	}
	outageEnds := time.Now().Add(30 * time.Second)
	eventually(t, 20*time.Second, "the sidecar reports db-password stale during the outage", func() bool {
		return metric(t, p.opsURL+"/metrics", stale) == 1
	})
	// The app serves throughout; the sidecar stays ready (stale values are served).
	throughout(t, time.Until(outageEnds), 500*time.Millisecond, func() {
		if code, body, err := get(ctx, p.appURL+ordersPath); err != nil || code != http.StatusOK {
			t.Fatalf("orders during the vault outage: %d %v %.200s", code, err, body)
		}
		if code, _, err := get(ctx, p.opsURL+"/readyz"); err != nil || code != http.StatusOK {
			t.Fatalf("sidecar /readyz during the outage: %d %v; a vault outage must not take the pod out of its Service", code, err)
		}
	})
	if err := p.emu.SetFault(ctx, "none", 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the sidecar recovers (stale back to 0)", func() bool {
		return metric(t, p.opsURL+"/metrics", stale) == 0
	})
}

func TestThrottlingCausesNoRequestStorm(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	p := startPod(t, podOptions{})
	const retryAfter = 10 * time.Second
	if err := p.emu.SetFault(ctx, "throttle", retryAfter); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// Watch a window of 2.5 Retry-After periods while the app is busy.
	stop := make(chan struct{})
	done := make(chan load, 1)
	go func() { done <- runLoad(ctx, p.appURL+ordersPath, 2, stop, nil) }()
	// The window is what is measured (vault reads per Retry-After period),
	// not a wait for something to happen.
	select {
	case <-time.After(25 * time.Second):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	close(stop)
	l := <-done
	if err := p.emu.SetFault(ctx, "none", 0); err != nil {
		t.Fatal(err)
	}

	reqs, err := p.emu.Requests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var throttled, vaultReads int
	for _, r := range reqs {
		if r.Kind != "vault" || r.Time.Before(start) {
			continue
		}
		vaultReads++
		if r.Status == http.StatusTooManyRequests {
			throttled++
		}
	}
	// Four secrets; after a 429 the sidecar must wait Retry-After for the whole
	// vault. In 25 s with Retry-After 10 s that is at most 3 windows; allow each
	// window one pass over the 4 secrets plus azcore's single quick retry.
	if limit := 3 * 4 * 2; vaultReads > limit {
		t.Errorf("vault saw %d reads in 25 s while throttling with Retry-After %s, want at most %d (a request storm)", vaultReads, retryAfter, limit)
	}
	if throttled == 0 {
		t.Errorf("no read was throttled: the test did not exercise Retry-After")
	}
	if l.ok == 0 || l.failed != 0 {
		t.Errorf("app under vault throttling: %d ok, %d failed (%s); want no failures", l.ok, l.failed, l.firstErr)
	}
	t.Logf("vault reads in 25 s of throttling: %d (%d answered 429); app requests: %d ok", vaultReads, throttled, l.ok)
}

func TestSidecarKilledAndRestarted(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	p := startPod(t, podOptions{})
	before := rotations(t, p)

	// A crash, not a clean stop: the socket file stays behind.
	if err := p.sidecar.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.sidecar.Done()
	// The app keeps its pool and keeps serving without the sidecar.
	throughout(t, time.Second, 200*time.Millisecond, func() {
		if code, body, err := get(ctx, p.appURL+ordersPath); err != nil || code != http.StatusOK {
			t.Fatalf("orders while the sidecar is down: %d %v %.200s", code, err, body)
		}
	})
	// A rotation happens while the sidecar is down.
	p.rotatePassword(ctx, "test-password-3")

	p.startSidecar(ctx) // must replace the stale socket
	eventually(t, 30*time.Second, "the app picks up the rotation made while the sidecar was down", func() bool {
		return rotations(t, p) > before
	})
	if code, body, err := get(ctx, p.appURL+ordersPath); err != nil || code != http.StatusOK {
		t.Fatalf("orders after the sidecar restart: %d %v %.200s", code, err, body)
	}
}

func TestBadInputAtEveryDoor(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	p := startPod(t, podOptions{})

	t.Run("gRPC", func(t *testing.T) {
		c, err := client.Dial("unix://" + p.socket)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		api := c.SecretService()
		tests := []struct {
			name string
			call func() error
			want codes.Code
		}{
			{"malformed name", func() error {
				_, err := api.GetSecret(ctx, &secretproxyv1.GetSecretRequest{Name: "bad name!"})
				return err
			}, codes.InvalidArgument},
			{"empty name", func() error {
				_, err := api.GetSecret(ctx, &secretproxyv1.GetSecretRequest{})
				return err
			}, codes.InvalidArgument},
			{"undeclared name", func() error {
				_, err := api.GetSecret(ctx, &secretproxyv1.GetSecretRequest{Name: "nope"})
				return err
			}, codes.PermissionDenied},
			{"batch with a malformed name before an undeclared one", func() error {
				_, err := api.BatchGetSecrets(ctx, &secretproxyv1.BatchGetSecretsRequest{Names: []string{"db-user", "bad name!", "nope"}})
				return err
			}, codes.InvalidArgument},
			{"empty batch", func() error {
				_, err := api.BatchGetSecrets(ctx, &secretproxyv1.BatchGetSecretsRequest{})
				return err
			}, codes.InvalidArgument},
			{"refresh undeclared", func() error {
				_, err := api.RefreshSecret(ctx, &secretproxyv1.RefreshSecretRequest{Name: "nope"})
				return err
			}, codes.PermissionDenied},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := tt.call()
				if got := status.Code(err); got != tt.want {
					t.Fatalf("code = %v (%v), want %v", got, err, tt.want)
				}
				if msg := status.Convert(err).Message(); msg == "" || strings.Contains(msg, dbPassword) {
					t.Errorf("status message %q: want an actionable message without secret values", msg)
				}
			})
		}
	})

	t.Run("HTTP", func(t *testing.T) {
		tests := []struct {
			path     string
			status   int
			wantCode string
		}{
			{"/api/v1/clients/abc/orders", 400, "invalid_argument"},
			{"/api/v1/clients/1/orders?limit=0", 400, "invalid_argument"},
			{"/api/v1/clients/1/orders?limit=501", 400, "invalid_argument"},
			{"/api/v1/clients/1/orders?status=lost", 400, "invalid_argument"},
			{"/api/v1/clients/1/orders?from=2026-13-01", 400, "invalid_argument"},
			{"/api/v1/clients/1/orders?cursor=not-a-cursor", 400, "invalid_argument"},
			{"/api/v1/clients/1/orders?status=paid'%20OR%201=1--", 400, "invalid_argument"},
			{"/api/v1/clients/99999999/orders", 404, "not_found"},
			{"/api/v1/orders/99999999", 404, "not_found"},
			{"/api/v1/clients/99999999/summary", 404, "not_found"},
			{"/api/v1/clients/99999999999999999999999/summary", 400, "invalid_argument"},
		}
		for _, tt := range tests {
			t.Run(tt.path, func(t *testing.T) {
				code, body, err := get(ctx, p.appURL+tt.path)
				if err != nil {
					t.Fatal(err)
				}
				if code != tt.status {
					t.Fatalf("status %d, want %d; body %.300s", code, tt.status, body)
				}
				var e struct {
					Error struct{ Code, Message string } `json:"error"`
				}
				if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code != tt.wantCode || e.Error.Message == "" {
					t.Errorf("body %.300s: want {\"error\":{\"code\":%q,\"message\":...}}", body, tt.wantCode)
				}
			})
		}
	})

	t.Run("config", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		cfg := "vault:\n  url: http://vault.example\nsecrets:\n  - name: \"bad name!\"\nrefresh:\n  interval: soon\nunknownKey: 1\n"
		if err := os.WriteFile(bad, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.CommandContext(ctx, bins.SecretProxy, "--config", bad, "--check").CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() == 0 {
			t.Fatalf("--check on a bad config: err = %v, want a non-zero exit\n%s", err, out)
		}
		for _, path := range []string{"vault.url", "secrets[0].name", "refresh.interval", "unknownKey"} {
			if !strings.Contains(string(out), path) {
				t.Errorf("--check output does not name %s:\n%s", path, out)
			}
		}
	})

	// Every process is still up and serving after all that.
	for _, proc := range []*pod.Process{p.emu.Process, p.sidecar, p.app} {
		select {
		case <-proc.Done():
			t.Errorf("%s exited during the bad-input tests: %v", proc.Name, proc.ExitErr())
		default:
		}
	}
	if code, _, err := get(ctx, p.appURL+ordersPath); err != nil || code != http.StatusOK {
		t.Errorf("orders after bad input: %d %v", code, err)
	}
}
