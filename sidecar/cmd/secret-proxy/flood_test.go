package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
	"github.com/secretproxy/secretproxy/sidecar/internal/logbuf"
)

// floodPerListener idle connections are opened on each gRPC listener, more
// than the process's file descriptor limit (fdLimit) can hold without the
// bound; the bound (listen.maxConnections) keeps the process well under it.
const (
	fdLimit           = 160
	floodPerListener  = 150
	floodBound        = 40
	floodOpsBound     = 8
	http2ClientOpener = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + "\x00\x00\x00\x04\x00\x00\x00\x00\x00"
)

// TestConnectionFlood runs the binary with a low file descriptor limit, holds
// floodPerListener idle HTTP/2 connections open on each gRPC listener (the
// client preface and SETTINGS sent, then nothing, as a misbehaving local
// process would), and checks that the kubelet's probes still answer, that a
// new gRPC client is refused at once (UNAVAILABLE, not a hang until its
// deadline), and that service resumes when the flood ends.
func TestConnectionFlood(t *testing.T) {
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	e, ca := startEmulator(t, dir, map[string]string{"db-password": "test-password-1"})
	sock := filepath.Join(dir, "grpc.sock")
	cfgPath := filepath.Join(dir, "config.yaml")
	cfg := fmt.Sprintf(`vault: {url: %s, disableChallengeResourceVerification: true}
auth: {mode: managed-identity, clientId: flood-test}
secrets: [{name: db-password}]
listen: {grpc: "127.0.0.1:0", unix: %s, ops: "127.0.0.1:0", maxConnections: %d, opsMaxConnections: %d}
`, e.VaultURL(), sock, floodBound, floodOpsBound)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &logbuf.Buffer{}
	// The shell lowers both the soft and the hard limit, so the Go runtime
	// cannot raise it again.
	cmd := exec.Command("/bin/sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$0" --config "$1"`, fdLimit), bin, cfgPath)
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+ca, "IDENTITY_ENDPOINT="+e.IdentityEndpoint(),
		"IDENTITY_HEADER="+e.IdentityHeader(), "AZURE_FEDERATED_TOKEN_FILE=", "AZURE_CLIENT_ID=", "AZURE_TENANT_ID=")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		}
	}()

	grpcAddr, opsAddr := listenAddrs(t, logs)
	probe := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) (int, error) {
		resp, err := probe.Get("http://" + opsAddr + path)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	ready := poll(10*time.Second, func() bool {
		code, _ := get("/readyz")
		return code == http.StatusOK
	})
	if !ready {
		t.Fatalf("never ready; output:\n%s", logs)
	}

	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	for _, target := range []struct{ network, addr string }{{"tcp", grpcAddr}, {"unix", sock}} {
		for range floodPerListener {
			c, err := net.DialTimeout(target.network, target.addr, 5*time.Second)
			if err != nil {
				t.Fatalf("flood dial %s: %v", target.network, err)
			}
			flood = append(flood, c)
			// Written without waiting: a connection closed at the bound
			// may already be gone, which is the point.
			c.SetWriteDeadline(time.Now().Add(time.Second))
			c.Write([]byte(http2ClientOpener))
		}
	}

	for _, path := range []string{"/livez", "/readyz"} {
		if code, err := get(path); err != nil || code != http.StatusOK {
			t.Errorf("probe %s during the flood: %d, %v (want 200); output:\n%s", path, code, err, logs)
		}
	}

	call := func(target string) error {
		cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		_, err = secretproxyv1.NewSecretServiceClient(cc).GetSecret(ctx, &secretproxyv1.GetSecretRequest{Name: "db-password"})
		return err
	}
	for _, target := range []string{grpcAddr, "unix://" + sock} {
		if err := call(target); err != nil && status.Code(err) != codes.Unavailable {
			t.Errorf("new client on %s during the flood: %v; want served or refused at once (UNAVAILABLE), not left waiting", target, err)
		}
	}
	if !strings.Contains(logs.String(), "connection bound reached") {
		t.Errorf("no warning about the connection bound; output:\n%s", logs)
	}

	for _, c := range flood {
		c.Close()
	}
	flood = nil
	for _, target := range []string{grpcAddr, "unix://" + sock} {
		var err error
		poll(5*time.Second, func() bool {
			err = call(target)
			return err == nil
		})
		if err != nil {
			t.Errorf("client on %s after the flood: %v", target, err)
		}
	}
	if strings.Contains(logs.String(), "test-password-1") {
		t.Error("the secret value appears in the process output")
	}
}

// listenAddrs reads the listeners' addresses from the start log line.
func listenAddrs(t *testing.T, logs *logbuf.Buffer) (grpcAddr, opsAddr string) {
	t.Helper()
	found := poll(10*time.Second, func() bool {
		for line := range strings.Lines(logs.String()) {
			var rec struct{ Msg, GRPC, Ops string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "secret-proxy starting" {
				grpcAddr, opsAddr = rec.GRPC, rec.Ops
				return true
			}
		}
		return false
	})
	if !found {
		t.Fatalf("no start log line; output:\n%s", logs)
	}
	return grpcAddr, opsAddr
}
