package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/secretproxy/secretproxy/e2e/pod"
)

// A sidecarPod is kv-emulator and secret-proxy started through e2e/pod, the
// one process harness of the repository (the e2e tests and the demo use it too).
type sidecarPod struct {
	emu          *pod.Emulator
	proxy        *pod.Process
	grpcAddr     string
	opsAddr      string
	pprofAddr    string // "" unless profiling
	startToReady time.Duration
}

type podOptions struct {
	bins     pod.Binaries
	dir      string
	secrets  int
	interval time.Duration // refresh.interval; 0: the default
	pprof    bool          // serve /debug/pprof (the binary must be a -tags pprof build)
	output   io.Writer     // the programs' output, prefixed; nil discards it
}

// secretName is the vault and declared name of the i-th load secret.
func secretName(i int) string { return fmt.Sprintf("secret-%03d", i) }

func startPod(ctx context.Context, o podOptions) (*sidecarPod, error) {
	seed := make(map[string]string, o.secrets)
	decls := make([]pod.SecretDecl, o.secrets)
	for i := range o.secrets {
		seed[secretName(i)] = fmt.Sprintf("load-test-value-%03d-0123456789abcdef", i)
		decls[i] = pod.SecretDecl{Name: secretName(i)}
	}
	emu, err := pod.StartEmulator(ctx, o.bins.KVEmulator, o.dir, "127.0.0.1:0", seed, o.output)
	if err != nil {
		return nil, fmt.Errorf("start kv-emulator (run 'make build' first): %w", err)
	}
	p := &sidecarPod{emu: emu}
	ok := false
	defer func() {
		if !ok {
			p.stop()
		}
	}()
	for _, a := range []*string{&p.grpcAddr, &p.opsAddr} {
		if *a, err = pod.FreeAddr(); err != nil {
			return nil, err
		}
	}
	cfg := pod.SidecarConfig{VaultURL: emu.VaultURL, Secrets: decls, GRPC: p.grpcAddr, Ops: p.opsAddr,
		Interval: o.interval, LogLevel: "warn"}
	if o.interval > 0 && o.interval < 10*time.Second {
		cfg.MinInterval = o.interval
	}
	confFile := filepath.Join(o.dir, "secret-proxy.yaml")
	if err := cfg.WriteFile(confFile); err != nil {
		return nil, err
	}
	env := append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, emu.ClientEnv()...)
	if o.pprof {
		if p.pprofAddr, err = pod.FreeAddr(); err != nil {
			return nil, err
		}
		env = append(env, "SECRETPROXY_PPROF="+p.pprofAddr)
	}
	start := time.Now()
	p.proxy, err = pod.Start(pod.Spec{Name: "secret-proxy", Path: o.bins.SecretProxy,
		Args: []string{"--config", confFile}, Env: env, Output: o.output})
	if err != nil {
		return nil, fmt.Errorf("start secret-proxy (run 'make build' first): %w", err)
	}
	if p.startToReady, err = waitReady(ctx, "http://"+p.opsAddr+"/readyz", start, p.proxy); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, p.proxy.Output())
	}
	if o.pprof && !strings.Contains(p.proxy.Output(), "pprof on http://") {
		return nil, fmt.Errorf("%s serves no pprof: build it with -tags grpcnotrace,pprof (docs/benchmarks.md)", o.bins.SecretProxy)
	}
	ok = true
	return p, nil
}

// waitReady polls /readyz every 2 ms (finer than pod.WaitHTTP, since
// start-to-ready is one of the figures reported) and returns the time from
// start to the first 200.
func waitReady(ctx context.Context, url string, start time.Time, p *pod.Process) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, err
		}
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start), nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("secret-proxy not ready: %w", ctx.Err())
		case <-p.Done():
			return 0, fmt.Errorf("secret-proxy exited before it was ready: %v", p.ExitErr())
		case <-t.C:
		}
	}
}

func (p *sidecarPod) stop() {
	if p.proxy != nil {
		_ = p.proxy.Stop(10 * time.Second)
	}
	if p.emu != nil {
		_ = p.emu.Stop(10 * time.Second)
	}
}

// startBare starts this program again as the bare grpc-go server, through the
// same harness, and returns it with its address.
func startBare(ctx context.Context, respFile string, output io.Writer) (*pod.Process, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	p, err := pod.Start(pod.Spec{Name: "bare", Path: self, Args: []string{"bare", "--response", respFile}, Output: output})
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	line, err := p.WaitFor(ctx, func(l string) bool { return strings.HasPrefix(l, "listening ") })
	if err != nil {
		_ = p.Stop(5 * time.Second)
		return nil, "", fmt.Errorf("bare server: %w\n%s", err, p.Output())
	}
	return p, strings.TrimPrefix(line, "listening "), nil
}

// fetch saves an HTTP GET of url into file (a pprof profile).
func fetch(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
