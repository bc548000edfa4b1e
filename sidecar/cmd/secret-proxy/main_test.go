package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
	"github.com/secretproxy/secretproxy/sidecar/kvemulator"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCommandLine(t *testing.T) {
	valid := writeFile(t, "valid.yaml", "vault: {url: https://x.vault.azure.net/}\nsecrets: [{name: a}]\n")
	invalid := writeFile(t, "invalid.yaml", "vault: {url: http://x.vault.azure.net/}\nsecrets: [{name: a, optinal: true}]\nrefresh: {jitter: 2}\n")
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderr   []string
		noStderr string
	}{
		{"version", []string{"--version"}, 0, "secret-proxy dev " + runtime.Version(), nil, ""},
		{"check valid", []string{"--config", valid, "--check"}, 0, "configuration is valid (1 secrets declared)", nil, ""},
		{"check reports every problem with its path", []string{"--config", invalid, "--check"}, 2, "",
			[]string{"secrets[0].optinal: unknown key", "vault.url: must be https", "refresh.jitter:"}, ""},
		{"flag overrides the file", []string{"--config", valid, "--check", "--vault-url", "http://y/"}, 2, "", []string{"vault.url: must be https"}, ""},
		{"flag fixes the file", []string{"--config", invalid, "--check", "--vault-url", "https://y.vault.azure.net/"}, 2, "",
			[]string{"secrets[0].optinal"}, "vault.url"},
		{"empty grpc-listen turns TCP off", []string{"--config", valid, "--check", "--grpc-listen", ""}, 2, "", []string{"listen: set listen.grpc or listen.unix"}, ""},
		{"non-loopback refused", []string{"--config", valid, "--check", "--grpc-listen", "0.0.0.0:50051"}, 2, "", []string{"listen.grpc", "allowNonLoopback"}, ""},
		{"bad log level", []string{"--config", valid, "--check", "--log-level", "loud"}, 2, "", []string{"log.level"}, ""},
		{"unix socket flag", []string{"--config", valid, "--check", "--unix-socket", "relative"}, 2, "", []string{"listen.unix"}, ""},
		{"ops flag", []string{"--config", valid, "--check", "--ops-listen", "nope"}, 2, "", []string{"listen.ops"}, ""},
		{"config-only skips the environment", []string{"--config", writeFile(t, "env.yaml", "vault: {url: https://x.vault.azure.net/}\nsecrets: [{name: a}]\nclientAuth: {tokenFile: /nonexistent/token}\n"), "--check", "--config-only"},
			0, "configuration file is valid (its files and environment not checked)", nil, ""},
		{"config-only without check", []string{"--config", valid, "--config-only"}, 2, "", []string{"--config-only goes with --check"}, ""},
		{"no config", nil, 2, "", []string{"--config FILE is required"}, ""},
		{"missing file", []string{"--config", "/nonexistent/x.yaml"}, 2, "", []string{"no such file"}, ""},
		{"stray argument", []string{"--config", valid, "extra"}, 2, "", []string{"unexpected arguments"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.stdout) {
				t.Errorf("stdout %q lacks %q", stdout.String(), tt.stdout)
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr.String())
				}
			}
			if tt.noStderr != "" && strings.Contains(stderr.String(), tt.noStderr) {
				t.Errorf("stderr mentions %q:\n%s", tt.noStderr, stderr.String())
			}
		})
	}
}

// buildBinary builds secret-proxy into dir with version test-1.2.3.
func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "secret-proxy")
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the binary: %v", err)
	}
	build := exec.Command(gobin, "build", "-o", bin,
		"-ldflags", "-X main.version=test-1.2.3", ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startEmulator starts a kvemulator holding secrets until the test ends, and
// writes its CA into dir for the process's SSL_CERT_FILE (as a pod trusts it).
func startEmulator(t *testing.T, dir string, secrets map[string]string) (*kvemulator.Emulator, string) {
	t.Helper()
	e, err := kvemulator.Start(kvemulator.Options{Secrets: secrets})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, e.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return e, ca
}

// TestBinary builds secret-proxy, runs it as a process against the emulator
// (trusting its CA through SSL_CERT_FILE, as in a pod), reads a secret over
// the unix socket, sends SIGTERM and expects exit 0.
func TestBinary(t *testing.T) {
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	out, err := exec.Command(bin, "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "secret-proxy test-1.2.3 ") {
		t.Fatalf("--version = %q, %v", out, err)
	}

	e, ca := startEmulator(t, dir, map[string]string{"sql-password": "test-password-1"})
	sock := filepath.Join(dir, "grpc.sock")
	cfgPath := filepath.Join(dir, "config.yaml")
	cfg := fmt.Sprintf(`vault:
  url: %s
  disableChallengeResourceVerification: true
auth:
  mode: managed-identity
  clientId: binary-test
secrets:
  - name: db-password
    vaultSecret: sql-password
listen:
  grpc: ""
  unix: %s
  ops: 127.0.0.1:0
`, e.VaultURL(), sock)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	cmd := exec.Command(bin, "--config", cfgPath, "--log-level", "debug")
	cmd.Env = append(os.Environ(),
		"SSL_CERT_FILE="+ca,
		"IDENTITY_ENDPOINT="+e.IdentityEndpoint(),
		"IDENTITY_HEADER="+e.IdentityHeader(),
		"AZURE_FEDERATED_TOKEN_FILE=", "AZURE_CLIENT_ID=", "AZURE_TENANT_ID=",
	)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	}()

	cc, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	serving := poll(10*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		return err == nil && r.Status == healthpb.HealthCheckResponse_SERVING
	})
	if !serving {
		t.Fatalf("not SERVING; output:\n%s", logs.String())
	}
	t.Logf("start to SERVING as the client saw it (its reconnect back-off included): %s", time.Since(start))

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	got, err := secretproxyv1.NewSecretServiceClient(cc).GetSecret(ctx, &secretproxyv1.GetSecretRequest{Name: "db-password"})
	if err != nil || got.GetSecret().GetValue() != "test-password-1" {
		t.Fatalf("GetSecret: %v (right value: %v)", err, got.GetSecret().GetValue() == "test-password-1")
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v; output:\n%s", err, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10 s after SIGTERM; output:\n%s", logs.String())
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "startToReady") {
			t.Logf("sidecar log (its own start to ready): %s", line)
		}
	}
	if strings.Contains(logs.String(), "test-password-1") {
		t.Error("the secret value appears in the process output")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left after exit: %v", err)
	}
}

// TestCheckAgreesWithStart: whatever start refuses, --check reports, and both
// exit 2 naming the same field. Start runs with a context already cancelled,
// so one that wrongly accepts the configuration stops at once with 0.
func TestCheckAgreesWithStart(t *testing.T) {
	for _, k := range []string{"AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_ID", "AZURE_TENANT_ID"} {
		t.Setenv(k, "")
	}
	dir := t.TempDir()
	empty := writeFile(t, "empty-token", "\n")
	plain := writeFile(t, "plain", "not a socket")
	base := "vault: {url: https://x.vault.azure.net/}\nsecrets: [{name: a}]\nauth: {mode: managed-identity, clientId: c}\n"
	tests := []struct {
		name string
		yaml string
		want []string
		not  []string
	}{
		{"socket directory missing", base + "listen: {grpc: \"\", ops: \"127.0.0.1:0\", unix: " + filepath.Join(dir, "absent", "grpc.sock") + "}\n",
			[]string{"listen.unix: directory", "create it"}, nil},
		{"file in the socket's place", base + "listen: {grpc: \"\", ops: \"127.0.0.1:0\", unix: " + plain + "}\n",
			[]string{"listen.unix:", "is not a socket"}, nil},
		{"token file missing", base + "listen: {grpc: \"127.0.0.1:0\", ops: \"127.0.0.1:0\"}\nclientAuth: {tokenFile: " + filepath.Join(dir, "absent") + "}\n",
			[]string{"clientAuth.tokenFile: cannot read"}, nil},
		{"token file empty", base + "listen: {grpc: \"127.0.0.1:0\", ops: \"127.0.0.1:0\"}\nclientAuth: {tokenFile: " + empty + "}\n",
			[]string{"clientAuth.tokenFile:", "is empty"}, nil},
		{"workload identity without its environment", "vault: {url: https://x.vault.azure.net/}\nsecrets: [{name: a}]\nauth: {mode: workload-identity}\nlisten: {grpc: \"127.0.0.1:0\", ops: \"127.0.0.1:0\"}\n",
			[]string{"auth.mode: workload-identity needs AZURE_FEDERATED_TOKEN_FILE"}, nil},
		{"allowedUIDs with TCP and no token", base + "listen: {grpc: \"127.0.0.1:0\", ops: \"127.0.0.1:0\", unix: " + filepath.Join(dir, "uids.sock") + "}\nclientAuth: {allowedUIDs: [1000]}\n",
			[]string{"clientAuth.allowedUIDs: restricts the unix socket only", "listen.grpc", "clientAuth.tokenFile"}, nil},
		{"YAML syntax error alone", "vault: {url: https://x.vault.azure.net/\nsecrets: [\n",
			[]string{"not valid YAML"}, []string{"required", "secrets:", "vault.url"}},
		{"credentials in the vault URL never printed", "vault: {url: \"https://admin:hunter2@x.vault.azure.net/\"}\nsecrets: [{name: a}]\n",
			[]string{"vault.url: must not carry a user or password"}, []string{"hunter2", "admin"}},
	}
	for _, tt := range tests {
		cfg := writeFile(t, "config.yaml", tt.yaml)
		for _, mode := range []struct {
			name string
			args []string
		}{{"check", []string{"--config", cfg, "--check"}}, {"start", []string{"--config", cfg}}} {
			t.Run(tt.name+"/"+mode.name, func(t *testing.T) {
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				var stdout, stderr bytes.Buffer
				if code := run(ctx, mode.args, &stdout, &stderr); code != 2 {
					t.Errorf("exit code = %d, want 2; stderr:\n%s", code, stderr.String())
				}
				for _, s := range tt.want {
					if !strings.Contains(stderr.String(), s) {
						t.Errorf("stderr lacks %q:\n%s", s, stderr.String())
					}
				}
				for _, s := range tt.not {
					if strings.Contains(stderr.String(), s) {
						t.Errorf("stderr mentions %q:\n%s", s, stderr.String())
					}
				}
			})
		}
	}
}

// poll reports whether cond became true within bound, asking every 25 ms: the
// binary under test runs in real time.
func poll(bound time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(bound); ; time.Sleep(25 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}
