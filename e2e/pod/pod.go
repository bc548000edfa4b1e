package pod

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Binaries are the three programs of the pod.
type Binaries struct {
	SecretProxy string
	KVEmulator  string
	OrderApp    string
}

// InDir names the binaries as `make build` lays them out in dir.
func InDir(dir string) Binaries {
	return Binaries{
		SecretProxy: filepath.Join(dir, "secret-proxy"),
		KVEmulator:  filepath.Join(dir, "kv-emulator"),
		OrderApp:    filepath.Join(dir, "orderapp"),
	}
}

// RepoRoot finds the repository root (the directory holding go.work) above dir.
func RepoRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.work above %s", dir)
		}
	}
}

// Build compiles the three programs into outDir with the workspace at root.
func Build(ctx context.Context, root, outDir string) (Binaries, error) {
	b := InDir(outDir)
	for _, t := range []struct{ module, pkg, out string }{
		{"sidecar", "./cmd/secret-proxy", b.SecretProxy},
		{"sidecar", "./cmd/kv-emulator", b.KVEmulator},
		{"orderapp", "./cmd/orderapp", b.OrderApp},
	} {
		// The same build as `make build` and the images: grpcnotrace drops
		// grpc's unused tracing code (smaller binary, less idle memory).
		cmd := exec.CommandContext(ctx, "go", "build", "-tags", "grpcnotrace", "-o", t.out, t.pkg)
		cmd.Dir = filepath.Join(root, t.module)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return Binaries{}, fmt.Errorf("go build %s: %w\n%s", t.pkg, err, out)
		}
	}
	return b, nil
}

// FreeAddr returns a free 127.0.0.1 address. (Another process may take it
// before it is used; the callers start their servers at once.)
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Emulator is a running kv-emulator process and what a client needs to use it.
type Emulator struct {
	*Process
	VaultURL         string
	CAFile           string
	IdentityEndpoint string
	IdentityHeader   string
	admin            *http.Client
}

// StartEmulator starts kv-emulator seeded with secrets (vault name -> value),
// with its files in dir, and waits until it is ready. vaultAddr may be
// "127.0.0.1:0"; restarting on the same address keeps the vault URL stable.
// extraArgs are more kv-emulator flags (e.g. --rate-limit 160/10s).
func StartEmulator(ctx context.Context, bin, dir, vaultAddr string, secrets map[string]string, output io.Writer, extraArgs ...string) (*Emulator, error) {
	seed := map[string]any{"secrets": secrets}
	raw, err := json.Marshal(seed)
	if err != nil {
		return nil, err
	}
	seedFile := filepath.Join(dir, "vault-seed.json")
	if err := os.WriteFile(seedFile, raw, 0o600); err != nil {
		return nil, err
	}
	e := &Emulator{CAFile: filepath.Join(dir, "emulator-ca.pem")}
	e.Process, err = Start(Spec{
		Name: "kv-emulator",
		Path: bin,
		Args: append([]string{"--vault-listen", vaultAddr, "--identity-listen", "127.0.0.1:0",
			"--seed", seedFile, "--ca-out", e.CAFile,
			"--identity-header-out", filepath.Join(dir, "identity-header.txt")}, extraArgs...),
		Output: output,
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := e.WaitFor(ctx, func(l string) bool { return l == "kv-emulator ready" }); err != nil {
		e.Stop(5 * time.Second)
		return nil, fmt.Errorf("kv-emulator: %w\n%s", err, e.Output())
	}
	for _, line := range strings.Split(e.Output(), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		switch {
		case ok && k == "IDENTITY_ENDPOINT":
			e.IdentityEndpoint = v
		case ok && k == "IDENTITY_HEADER":
			e.IdentityHeader = v
		case ok && k == "AZURE_KEYVAULT_URL":
			e.VaultURL = v
		}
	}
	if e.VaultURL == "" || e.IdentityEndpoint == "" || e.IdentityHeader == "" {
		e.Stop(5 * time.Second)
		return nil, fmt.Errorf("kv-emulator did not print the vault URL and identity environment:\n%s", e.Output())
	}
	if e.admin, err = adminClient(e.CAFile); err != nil {
		e.Stop(5 * time.Second)
		return nil, err
	}
	return e, nil
}

// ConnectEmulator reaches the admin API of an emulator started elsewhere (by
// `demo run`, for `demo rotate`).
func ConnectEmulator(vaultURL, caFile string) (*Emulator, error) {
	admin, err := adminClient(caFile)
	if err != nil {
		return nil, err
	}
	return &Emulator{VaultURL: vaultURL, CAFile: caFile, admin: admin}, nil
}

func adminClient(caFile string) (*http.Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read the emulator's CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}, nil
}

// ClientEnv is the environment a secret-proxy process needs to reach this
// emulator through the real managed-identity and Key Vault protocols.
func (e *Emulator) ClientEnv() []string {
	return []string{
		"SSL_CERT_FILE=" + e.CAFile,
		"IDENTITY_ENDPOINT=" + e.IdentityEndpoint,
		"IDENTITY_HEADER=" + e.IdentityHeader,
	}
}

func (e *Emulator) adminDo(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(e.VaultURL, "/")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.admin.Do(req)
	if err != nil {
		return fmt.Errorf("kv-emulator admin %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("kv-emulator admin %s %s: %s: %s", method, path, resp.Status, raw)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// SetSecret writes a new version of a vault secret and returns its version id.
func (e *Emulator) SetSecret(ctx context.Context, name, value string) (string, error) {
	var out struct {
		Version string `json:"version"`
	}
	err := e.adminDo(ctx, http.MethodPut, "/admin/secrets/"+name, map[string]any{"value": value}, &out)
	return out.Version, err
}

// SetFault switches the vault's fault mode: "none", "outage" or "throttle".
func (e *Emulator) SetFault(ctx context.Context, mode string, retryAfter time.Duration) error {
	return e.adminDo(ctx, http.MethodPut, "/admin/faults",
		map[string]any{"mode": mode, "retryAfterSeconds": int(retryAfter / time.Second)}, nil)
}

// RateSecond is one second of the emulator's rate-limit series.
type RateSecond struct {
	Second    int `json:"second"`
	Reads     int `json:"reads"`
	Throttled int `json:"throttled"`
}

// RateStats is the emulator's GET /admin/rate-limit (docs/reference/emulator.md).
type RateStats struct {
	Limit                           string       `json:"limit"`
	Reads                           int64        `json:"reads"`
	Throttled                       int64        `json:"throttled"`
	PeakWindowReads                 int          `json:"peakWindowReads"`
	PeakWindowRequests              int          `json:"peakWindowRequests"`
	FirstThrottle                   time.Time    `json:"firstThrottle"`
	PeakWindowRequestsAfterThrottle int          `json:"peakWindowRequestsAfterThrottle"`
	InsideRetryAfter                int64        `json:"insideRetryAfter"`
	InFlightAtThrottle              int64        `json:"inFlightAtThrottle"`
	Callers                         int          `json:"callers"`
	Start                           time.Time    `json:"start"`
	Seconds                         []RateSecond `json:"seconds"`
}

// RateStats reads what the emulator's rate limit saw.
func (e *Emulator) RateStats(ctx context.Context) (RateStats, error) {
	var out RateStats
	err := e.adminDo(ctx, http.MethodGet, "/admin/rate-limit", nil, &out)
	return out, err
}

// IssueNext makes the emulator's token endpoints issue token for the next
// token request for resource (e.g. a database's scope), so that a test can make
// a real database accept exactly the token the sidecar will be handed.
func (e *Emulator) IssueNext(ctx context.Context, resource, token string) error {
	return e.adminDo(ctx, http.MethodPut, "/admin/tokens",
		map[string]any{"next": []map[string]string{{"resource": resource, "token": token}}}, nil)
}

// VaultRequest is one request the emulator served.
type VaultRequest struct {
	Time   time.Time `json:"time"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Status int       `json:"status"`
	Kind   string    `json:"kind"`
}

// Requests lists the requests the emulator served.
func (e *Emulator) Requests(ctx context.Context) ([]VaultRequest, error) {
	var out []VaultRequest
	err := e.adminDo(ctx, http.MethodGet, "/admin/requests", nil, &out)
	return out, err
}

// WaitHTTP polls url until it answers 200 or ctx ends.
func WaitHTTP(ctx context.Context, url string) error {
	c := &http.Client{Timeout: 2 * time.Second}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("%s answered %s", url, resp.Status)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("waiting for %s: %w", url, ctx.Err()), last)
		case <-t.C:
		}
	}
}

// Metric reads one sample from the Prometheus text exposition at url: series
// is the name with its labels as printed, e.g.
// `secretproxy_secret_stale{secret="db-password"}`. An absent series is 0 (an
// unset counter child is not exposed).
func Metric(ctx context.Context, url, series string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, fmt.Errorf("metric %s: %w", series, err)
			}
			return f, nil
		}
	}
	return 0, nil
}
