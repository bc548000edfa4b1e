package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/google/go-cmp/cmp"

	"github.com/secretproxy/secretproxy/sidecar/internal/logbuf"
)

func TestLoadSeed(t *testing.T) {
	tests := []struct {
		name, text string
		want       map[string]string
		wantErr    string
	}{
		{"yaml", "secrets:\n  sql-user: test-user-1\n  sql-password: \"test-password-1\"\n", map[string]string{"sql-user": "test-user-1", "sql-password": "test-password-1"}, ""},
		{"json", `{"secrets": {"sql-user": "test-user-1"}}`, map[string]string{"sql-user": "test-user-1"}, ""},
		{"empty file", "", nil, ""},
		{"unknown key", "secret:\n  a: b\n", nil, "field secret not found"},
		{"not a map", "secrets: [a, b]\n", nil, "parse seed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "seed.yaml")
			if err := os.WriteFile(p, []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := loadSeed(p)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("seed (-want +got):\n%s", d)
			}
		})
	}
	if _, err := loadSeed(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("missing seed file accepted")
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"defaults", nil, ""},
		{"wildcard vault", []string{"--vault-listen", "0.0.0.0:8443"}, "--vault-listen"},
		{"routable identity", []string{"--identity-listen", "192.168.1.10:8081"}, "--identity-listen"},
		{"bad log level", []string{"--log-level", "loud"}, "--log-level"},
		{"bad log format", []string{"--log-format", "xml"}, "--log-format"},
		{"token lifetime too short", []string{"--token-lifetime", "0s"}, "--token-lifetime"},
		{"positional", []string{"extra"}, "unexpected arguments"},
		{"rate limit", []string{"--rate-limit", "4000/10s"}, ""},
		{"rate limit off", []string{"--rate-limit", "off"}, ""},
		{"rate limit without window", []string{"--rate-limit", "4000"}, "--rate-limit"},
		{"rate limit zero", []string{"--rate-limit", "0/10s"}, "--rate-limit"},
		{"unknown flag", []string{"--vault", "x"}, "flag provided but not defined"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlags(tc.args, io.Discard)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("parseFlags: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kv-emulator")
	out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startProcess starts the binary and returns its printed environment once it
// says it is ready.
func startProcess(t *testing.T, bin string, args ...string) (*exec.Cmd, map[string]string, *logbuf.Buffer) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stderr := &logbuf.Buffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	type result struct {
		env map[string]string
		err error
	}
	done := make(chan result, 1)
	go func() {
		env := map[string]string{}
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if line == "kv-emulator ready" {
				done <- result{env: env}
				_, _ = io.Copy(io.Discard, stdout)
				return
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				done <- result{err: errors.New("stdout line is not KEY=value: " + line)}
				return
			}
			env[k] = v
		}
		done <- result{err: errors.New("stdout ended before the ready line")}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("%v; stderr:\n%s", r.err, stderr.String())
		}
		return cmd, r.env, stderr
	case <-time.After(30 * time.Second):
		t.Fatalf("no ready line within 30s; stderr:\n%s", stderr.String())
	}
	return nil, nil, nil
}

func TestBinary(t *testing.T) {
	bin := buildBinary(t)

	t.Run("serves the real SDK and stops on SIGTERM", func(t *testing.T) {
		dir := t.TempDir()
		seed := filepath.Join(dir, "secrets.yaml")
		if err := os.WriteFile(seed, []byte("secrets:\n  sql-user: test-user-1\n  sql-password: test-password-1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		caOut := filepath.Join(dir, "ca.pem")
		headerOut := filepath.Join(dir, "header.txt")
		tokenOut := filepath.Join(dir, "token")
		cmd, env, stderr := startProcess(t, bin, "--vault-listen", "127.0.0.1:0", "--identity-listen", "127.0.0.1:0",
			"--seed", seed, "--ca-out", caOut, "--identity-header-out", headerOut, "--federated-token-out", tokenOut,
			"--log-level", "debug")

		for _, k := range []string{"SSL_CERT_FILE", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "AZURE_KEYVAULT_URL", "AZURE_AUTHORITY_HOST", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE"} {
			if env[k] == "" {
				t.Errorf("printed environment lacks %s: %v", k, env)
			}
		}
		if env["SSL_CERT_FILE"] != caOut || env["AZURE_FEDERATED_TOKEN_FILE"] != tokenOut {
			t.Errorf("file paths %q %q, want %q %q", env["SSL_CERT_FILE"], env["AZURE_FEDERATED_TOKEN_FILE"], caOut, tokenOut)
		}
		header, err := os.ReadFile(headerOut)
		if err != nil || string(header) != env["IDENTITY_HEADER"] {
			t.Errorf("header file %q (%v), want the printed IDENTITY_HEADER", header, err)
		}
		if fi, err := os.Stat(headerOut); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("header file mode: %v %v, want 0600", fi.Mode(), err)
		}

		pem, err := os.ReadFile(env["SSL_CERT_FILE"])
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			t.Fatal("SSL_CERT_FILE holds no certificate")
		}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}

		t.Setenv("IDENTITY_ENDPOINT", env["IDENTITY_ENDPOINT"])
		t.Setenv("IDENTITY_HEADER", env["IDENTITY_HEADER"])
		cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
			// MSAL's managed-identity token cache is global to the process: an id
			// of its own per run keeps a token from an earlier run's emulator
			// (go test -count=N) from being sent to this one.
			ID:            azidentity.ClientID(fmt.Sprintf("binary-test-client-%d", time.Now().UnixNano())),
			ClientOptions: azcore.ClientOptions{Transport: hc},
		})
		if err != nil {
			t.Fatal(err)
		}
		client, err := azsecrets.NewClient(env["AZURE_KEYVAULT_URL"], cred, &azsecrets.ClientOptions{
			ClientOptions:                        azcore.ClientOptions{Transport: hc, Retry: policy.RetryOptions{MaxRetries: 1, RetryDelay: time.Millisecond}},
			DisableChallengeResourceVerification: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := client.GetSecret(t.Context(), "sql-password", "", nil)
		if err != nil {
			t.Fatalf("GetSecret: %v\nstderr:\n%s", err, stderr.String())
		}
		if *got.Value != "test-password-1" {
			t.Errorf("value = %q, want the seeded value", *got.Value)
		}

		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, env["AZURE_KEYVAULT_URL"]+"admin/secrets/sql-password",
			strings.NewReader(`{"value":"test-password-2"}`))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("admin set: %d", resp.StatusCode)
		}
		got, err = client.GetSecret(t.Context(), "sql-password", "", nil)
		if err != nil || *got.Value != "test-password-2" {
			t.Fatalf("after admin set: %v", err)
		}

		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		waitErr := make(chan error, 1)
		go func() { waitErr <- cmd.Wait() }()
		select {
		case err := <-waitErr:
			if err != nil {
				t.Errorf("exit after SIGTERM: %v, want status 0; stderr:\n%s", err, stderr.String())
			}
		case <-time.After(15 * time.Second):
			t.Fatal("still running 15s after SIGTERM")
		}
		logs := stderr.String()
		if !strings.Contains(logs, "sql-password") {
			t.Errorf("debug logs do not mention the secret name; logging not wired? stderr:\n%s", logs)
		}
		for _, v := range []string{"test-password-1", "test-password-2", "test-user-1", env["IDENTITY_HEADER"]} {
			if strings.Contains(logs, v) {
				t.Errorf("stderr contains %q", v)
			}
		}
	})

	t.Run("refuses a non-loopback address", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "--vault-listen", "0.0.0.0:8443").CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("exit: %v, want status 1; output:\n%s", err, out)
		}
		if !strings.Contains(string(out), "not a loopback address") {
			t.Errorf("output does not explain the refusal:\n%s", out)
		}
	})
}
