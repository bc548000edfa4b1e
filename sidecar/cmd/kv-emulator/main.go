// Command kv-emulator runs the local Key Vault and identity emulator (package
// kvemulator) for `make demo` and the end-to-end tests.
//
//	kv-emulator --vault-listen 127.0.0.1:8443 --identity-listen 127.0.0.1:8081 \
//	            --seed secrets.yaml --ca-out ca.pem --identity-header-out header.txt \
//	            [--rate-limit 4000/10s]
//
// Once both listeners serve, it prints the environment a client needs, one
// KEY=value per line on stdout, then "kv-emulator ready". Logs go to stderr.
// SIGTERM or SIGINT stops it with exit status 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/secretproxy/secretproxy/sidecar/kvemulator"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "kv-emulator:", err)
		os.Exit(1)
	}
}

type config struct {
	vaultListen, identityListen string
	seed, caOut, headerOut      string
	federatedTokenOut, tenantID string
	logLevel, logFormat         string
	rateLimit                   kvemulator.RateLimit
	tokenLifetime               time.Duration
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("kv-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.vaultListen, "vault-listen", "127.0.0.1:8443", "Key Vault, Entra authority and admin API (TLS) listen address; loopback only")
	fs.StringVar(&c.identityListen, "identity-listen", "127.0.0.1:8081", "managed identity endpoint (plain HTTP) listen address; loopback only")
	fs.StringVar(&c.seed, "seed", "", "YAML or JSON file `secrets: {name: value, ...}` with the initial secrets")
	fs.StringVar(&c.caOut, "ca-out", "", "write the emulator's CA certificate (PEM) here; default: a temporary file removed on exit")
	fs.StringVar(&c.headerOut, "identity-header-out", "", "write the IDENTITY_HEADER value here (mode 0600)")
	fs.StringVar(&c.federatedTokenOut, "federated-token-out", "", "write the workload identity federated token here (mode 0600), for AZURE_FEDERATED_TOKEN_FILE")
	fs.StringVar(&c.tenantID, "tenant-id", kvemulator.DefaultTenantID, "tenant id announced in the Key Vault challenge and served by the authority")
	fs.DurationVar(&c.tokenLifetime, "token-lifetime", kvemulator.DefaultTokenLifetime, "lifetime of issued access tokens (1s to 24h); the admin API can change it (PUT /admin/tokens)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug | info | warn | error")
	fs.StringVar(&c.logFormat, "log-format", "text", "text | json")
	rate := fs.String("rate-limit", "off", "vault-wide budget `N/10s` (N vault requests per sliding 10 s window, shared by every caller; over it: 429 Throttled with Retry-After), or off")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q: every option is a flag", fs.Args())
	}
	var problems []error
	var err error
	if err := kvemulator.CheckLoopback(c.vaultListen); err != nil {
		problems = append(problems, fmt.Errorf("--vault-listen: %w", err))
	}
	if err := kvemulator.CheckLoopback(c.identityListen); err != nil {
		problems = append(problems, fmt.Errorf("--identity-listen: %w", err))
	}
	if c.tokenLifetime < kvemulator.MinTokenLifetime || c.tokenLifetime > kvemulator.MaxTokenLifetime {
		problems = append(problems, fmt.Errorf("--token-lifetime %s: want %s to %s", c.tokenLifetime, kvemulator.MinTokenLifetime, kvemulator.MaxTokenLifetime))
	}
	if c.logFormat != "text" && c.logFormat != "json" {
		problems = append(problems, fmt.Errorf("--log-format %q: want text or json", c.logFormat))
	}
	if c.rateLimit, err = kvemulator.ParseRateLimit(*rate); err != nil {
		problems = append(problems, fmt.Errorf("--rate-limit: %w", err))
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.logLevel)); err != nil {
		problems = append(problems, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.logLevel))
	}
	return c, errors.Join(problems...)
}

func newLogger(c config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.logLevel)) // validated in parseFlags
	opts := &slog.HandlerOptions{Level: lvl}
	if c.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// loadSeed reads `secrets: {name: value}`; YAML is a superset of JSON, so one
// decoder reads both. Unknown keys are errors, so a typo does not silently
// start an empty vault.
func loadSeed(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open seed: %w", err)
	}
	defer f.Close()
	var doc struct {
		Secrets map[string]string `yaml:"secrets"`
	}
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		// yaml's messages quote lines and types, not values of valid
		// documents; still name only the file.
		return nil, fmt.Errorf("parse seed %s: want `secrets: {name: value, ...}`: %w", path, err)
	}
	return doc.Secrets, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	log := newLogger(c, stderr)
	var seed map[string]string
	if c.seed != "" {
		if seed, err = loadSeed(c.seed); err != nil {
			return err
		}
	}
	e, err := kvemulator.Start(kvemulator.Options{
		Secrets:       seed,
		TenantID:      c.tenantID,
		VaultAddr:     c.vaultListen,
		IdentityAddr:  c.identityListen,
		Logger:        log,
		TokenLifetime: c.tokenLifetime,
		RateLimit:     c.rateLimit,
	})
	if err != nil {
		return err
	}
	defer e.Close()

	caPath := c.caOut
	if caPath == "" {
		dir, err := os.MkdirTemp("", "kv-emulator-")
		if err != nil {
			return fmt.Errorf("temporary directory for the ca: %w", err)
		}
		defer os.RemoveAll(dir)
		caPath = filepath.Join(dir, "ca.pem")
	}
	if caPath, err = writeFile(caPath, e.CACertPEM(), 0o644); err != nil {
		return fmt.Errorf("--ca-out: %w", err)
	}
	env := []string{
		"SSL_CERT_FILE=" + caPath,
		"IDENTITY_ENDPOINT=" + e.IdentityEndpoint(),
		"IDENTITY_HEADER=" + e.IdentityHeader(),
		"AZURE_KEYVAULT_URL=" + e.VaultURL(),
		"AZURE_AUTHORITY_HOST=" + e.AuthorityHost(),
		"AZURE_TENANT_ID=" + e.TenantID(),
	}
	if c.headerOut != "" {
		if _, err := writeFile(c.headerOut, []byte(e.IdentityHeader()), 0o600); err != nil {
			return fmt.Errorf("--identity-header-out: %w", err)
		}
	}
	if c.federatedTokenOut != "" {
		p, err := writeFile(c.federatedTokenOut, []byte(e.FederatedToken()), 0o600)
		if err != nil {
			return fmt.Errorf("--federated-token-out: %w", err)
		}
		env = append(env, "AZURE_FEDERATED_TOKEN_FILE="+p)
	}
	if _, err := fmt.Fprintln(stdout, strings.Join(env, "\n")+"\nkv-emulator ready"); err != nil {
		return fmt.Errorf("write environment to stdout: %w", err)
	}

	<-ctx.Done()
	log.Info("signal received, stopping")
	return e.Close()
}

// writeFile writes data to path and returns the absolute path, which is what
// a client in another working directory needs.
func writeFile(path string, data []byte, mode os.FileMode) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", path, err)
	}
	if err := os.WriteFile(abs, data, mode); err != nil {
		return "", fmt.Errorf("write %s: %w", abs, err)
	}
	// WriteFile keeps the mode of an existing file; force ours.
	if err := os.Chmod(abs, mode); err != nil {
		return "", fmt.Errorf("chmod %s: %w", abs, err)
	}
	return abs, nil
}
