package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bojand/ghz/runner"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
)

type runConfig struct {
	binDir   string
	duration time.Duration
	rounds   int
	levels   []int
	secrets  int
}

// sample is one ghz run against one server at one concurrency.
type sample struct {
	rps        float64
	p50, p99   time.Duration
	cpuPerReq  time.Duration
	count      uint64
	errorCount int
}

const method = "secretproxy.v1.SecretService.GetSecret"

func runLoad(ctx context.Context, cfg runConfig, logger *slog.Logger) error {
	dir, err := os.MkdirTemp("", "secret-proxy-load")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	emu, env, err := startEmulator(ctx, cfg, dir, logger)
	if err != nil {
		return err
	}
	defer stopProcess(emu)

	sidecar, grpcAddr, startToReady, err := startSidecar(ctx, cfg, dir, env, logger)
	if err != nil {
		return err
	}
	defer stopProcess(sidecar)
	time.Sleep(2 * time.Second) // let start-up garbage be collected before reading idle RSS
	idleRSS, _ := procStatusKB(sidecar.Process.Pid, "VmRSS")

	req, err := proto.Marshal(&secretproxyv1.GetSecretRequest{Name: "secret-042"})
	if err != nil {
		return err
	}
	respFile := filepath.Join(dir, "response.bin")
	if err := captureResponse(ctx, grpcAddr, respFile); err != nil {
		return err
	}
	bare, bareAddr, err := startBare(ctx, respFile)
	if err != nil {
		return err
	}
	defer stopProcess(bare)

	protoset, err := protosetBytes()
	if err != nil {
		return err
	}
	servers := []struct {
		name string
		addr string
		pid  int
	}{{"bare", bareAddr, bare.Process.Pid}, {"sidecar", grpcAddr, sidecar.Process.Pid}}

	results := map[string]map[int][]sample{"bare": {}, "sidecar": {}}
	for round := range cfg.rounds {
		order := []int{0, 1}
		if round%2 == 1 {
			order = []int{1, 0} // interleave, so drift on a shared machine hits both alike
		}
		for _, level := range cfg.levels {
			for _, i := range order {
				s := servers[i]
				logger.Info("load", "round", round+1, "server", s.name, "concurrency", level, "duration", cfg.duration)
				smp, err := measure(ctx, s.addr, s.pid, level, cfg.duration, req, protoset)
				if err != nil {
					return fmt.Errorf("%s at concurrency %d: %w", s.name, level, err)
				}
				results[s.name][level] = append(results[s.name][level], smp)
			}
		}
	}
	peakRSS, _ := procStatusKB(sidecar.Process.Pid, "VmHWM")
	bareIdle, _ := procStatusKB(bare.Process.Pid, "VmHWM")
	printReport(os.Stdout, cfg, results, startToReady, idleRSS, peakRSS, bareIdle)
	return nil
}

func measure(ctx context.Context, addr string, pid, concurrency int, d time.Duration, req, protoset []byte) (sample, error) {
	if err := ctx.Err(); err != nil {
		return sample{}, err
	}
	cpu0, err := procCPU(pid)
	if err != nil {
		return sample{}, err
	}
	rep, err := runner.Run(method, addr,
		runner.WithProtosetBinary(protoset),
		runner.WithInsecure(true),
		runner.WithConnections(1),
		runner.WithConcurrency(uint(concurrency)),
		runner.WithRunDuration(d),
		// Let calls in flight at the deadline finish, so they are not counted as errors.
		runner.WithDurationStopAction("wait"),
		runner.WithTotalRequests(0),
		runner.WithBinaryData(req),
		runner.WithTimeout(5*time.Second),
		runner.WithDisableTemplateFuncs(true),
		runner.WithDisableTemplateData(true),
	)
	if err != nil {
		return sample{}, err
	}
	cpu1, err := procCPU(pid)
	if err != nil {
		return sample{}, err
	}
	s := sample{rps: rep.Rps, count: rep.Count}
	for _, n := range rep.ErrorDist {
		s.errorCount += n
	}
	for _, l := range rep.LatencyDistribution {
		switch l.Percentage {
		case 50:
			s.p50 = l.Latency
		case 99:
			s.p99 = l.Latency
		}
	}
	if rep.Count > 0 {
		s.cpuPerReq = (cpu1 - cpu0) / time.Duration(rep.Count)
	}
	return s, nil
}

func startEmulator(ctx context.Context, cfg runConfig, dir string, logger *slog.Logger) (*exec.Cmd, []string, error) {
	var seed strings.Builder
	seed.WriteString("secrets:\n")
	for i := range cfg.secrets {
		fmt.Fprintf(&seed, "  secret-%03d: \"load-test-value-%03d-0123456789abcdef\"\n", i, i)
	}
	seedFile := filepath.Join(dir, "seed.yaml")
	if err := os.WriteFile(seedFile, []byte(seed.String()), 0o600); err != nil {
		return nil, nil, err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(cfg.binDir, "kv-emulator"),
		"--vault-listen", "127.0.0.1:0", "--identity-listen", "127.0.0.1:0",
		"--seed", seedFile, "--ca-out", filepath.Join(dir, "ca.pem"),
		"--identity-header-out", filepath.Join(dir, "identity-header.txt"))
	cmd.Stderr = io.Discard
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start kv-emulator (run 'make build' first): %w", err)
	}
	var env []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "kv-emulator ready" {
			go io.Copy(io.Discard, out)
			logger.Info("kv-emulator ready", "env", len(env))
			return cmd, env, nil
		}
		if k, v, ok := strings.Cut(line, "="); ok && !strings.ContainsAny(k, " \t") {
			env = append(env, k+"="+v)
		}
	}
	stopProcess(cmd)
	return nil, nil, errors.New("kv-emulator exited before it was ready")
}

func lookupEnv(env []string, key string) string {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v
		}
	}
	return ""
}

func vaultURL(env []string) string {
	return lookupEnv(env, "AZURE_KEYVAULT_URL")
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func startSidecar(ctx context.Context, cfg runConfig, dir string, emuEnv []string, logger *slog.Logger) (*exec.Cmd, string, time.Duration, error) {
	grpcAddr, err := freePort()
	if err != nil {
		return nil, "", 0, err
	}
	opsAddr, err := freePort()
	if err != nil {
		return nil, "", 0, err
	}
	vault := vaultURL(emuEnv)
	if vault == "" {
		return nil, "", 0, errors.New("kv-emulator printed no vault URL")
	}
	var c strings.Builder
	fmt.Fprintf(&c, "vault:\n  url: %s\n  disableChallengeResourceVerification: true\n", vault)
	c.WriteString("auth:\n  mode: managed-identity\nsecrets:\n")
	for i := range cfg.secrets {
		fmt.Fprintf(&c, "  - name: secret-%03d\n", i)
	}
	fmt.Fprintf(&c, "listen:\n  grpc: %s\n  ops: %s\nlog:\n  level: warn\n", grpcAddr, opsAddr)
	confFile := filepath.Join(dir, "secret-proxy.yaml")
	if err := os.WriteFile(confFile, []byte(c.String()), 0o600); err != nil {
		return nil, "", 0, err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(cfg.binDir, "secret-proxy"), "--config", confFile)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for _, k := range []string{"SSL_CERT_FILE", "IDENTITY_ENDPOINT", "IDENTITY_HEADER"} {
		cmd.Env = append(cmd.Env, k+"="+lookupEnv(emuEnv, k))
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, "", 0, fmt.Errorf("start secret-proxy (run 'make build' first): %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	hc := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		resp, err := hc.Get("http://" + opsAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ready := time.Since(start)
				logger.Info("secret-proxy ready", "start_to_ready", ready)
				return cmd, grpcAddr, ready, nil
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	stopProcess(cmd)
	return nil, "", 0, errors.New("secret-proxy not ready within 30s")
}

func captureResponse(ctx context.Context, addr, file string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := secretproxyv1.NewSecretServiceClient(conn).GetSecret(ctx, &secretproxyv1.GetSecretRequest{Name: "secret-042"})
	if err != nil {
		return fmt.Errorf("sample GetSecret: %w", err)
	}
	raw, err := proto.Marshal(resp)
	if err != nil {
		return err
	}
	return os.WriteFile(file, raw, 0o600)
}

func startBare(ctx context.Context, respFile string) (*exec.Cmd, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.CommandContext(ctx, self, "bare", "--response", respFile)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	sc := bufio.NewScanner(out)
	if sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
			go io.Copy(io.Discard, out)
			return cmd, addr, nil
		}
	}
	stopProcess(cmd)
	return nil, "", errors.New("bare server did not report its address")
}

func stopProcess(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// protosetBytes builds the descriptor set ghz needs from the compiled-in API,
// so the harness never parses .proto files at run time.
func protosetBytes() ([]byte, error) {
	set := &descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{
		protodesc.ToFileDescriptorProto(timestamppb.File_google_protobuf_timestamp_proto),
		protodesc.ToFileDescriptorProto(secretproxyv1.File_secretproxy_v1_secret_service_proto),
	}}
	return proto.Marshal(set)
}

// procCPU is the user+system CPU time the process has used.
func procCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; the fields we need follow its ')'.
	rest := string(raw[strings.LastIndexByte(string(raw), ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond, nil
}

func procStatusKB(pid int, field string) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

func median[T int64 | float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func pick[T any](xs []sample, f func(sample) T) []T {
	out := make([]T, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

func printReport(w io.Writer, cfg runConfig, results map[string]map[int][]sample, ready time.Duration, idleKB, peakKB, bareKB int64) {
	fmt.Fprintf(w, "GetSecret cache hits, 1 HTTP/2 connection, %s per level and server, %d interleaved rounds, medians across rounds.\n\n", cfg.duration, cfg.rounds)
	fmt.Fprintln(w, "| concurrency | server | req/s | p50 | p99 | CPU/req | errors |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	type ratio struct {
		level         int
		rps, p99, cpu float64
	}
	var ratios []ratio
	for _, level := range cfg.levels {
		med := map[string][3]float64{}
		for _, name := range []string{"bare", "sidecar"} {
			xs := results[name][level]
			errs := 0
			for _, x := range xs {
				errs += x.errorCount
			}
			rps := median(pick(xs, func(s sample) float64 { return s.rps }))
			p50 := median(pick(xs, func(s sample) time.Duration { return s.p50 }))
			p99 := median(pick(xs, func(s sample) time.Duration { return s.p99 }))
			cpu := median(pick(xs, func(s sample) time.Duration { return s.cpuPerReq }))
			med[name] = [3]float64{rps, float64(p99), float64(cpu)}
			fmt.Fprintf(w, "| %d | %s | %.0f | %s | %s | %.1f µs | %d |\n", level, name, rps,
				p50.Round(time.Microsecond), p99.Round(time.Microsecond), float64(cpu)/float64(time.Microsecond), errs)
		}
		b, s := med["bare"], med["sidecar"]
		ratios = append(ratios, ratio{level, s[0] / b[0], s[1] / b[1], s[2] / b[2]})
	}
	fmt.Fprintln(w, "\nRatios sidecar/bare (targets: throughput >= 0.85, p99 <= 1.25, CPU per request <= 1.2):")
	fmt.Fprintln(w, "\n| concurrency | throughput | p99 | CPU/req |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, r := range ratios {
		fmt.Fprintf(w, "| %d | %.2f | %.2f | %.2f |\n", r.level, r.rps, r.p99, r.cpu)
	}
	fmt.Fprintf(w, "\nsecret-proxy with %d declared secrets: start to ready %s; RSS idle %.1f MB; peak RSS (VmHWM) after load %.1f MB; bare server peak RSS %.1f MB.\n",
		cfg.secrets, ready.Round(time.Millisecond), float64(idleKB)/1024, float64(peakKB)/1024, float64(bareKB)/1024)
}
