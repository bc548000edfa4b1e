package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bojand/ghz/runner"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/secretproxy/secretproxy/e2e/pod"
	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
)

type runConfig struct {
	binDir     string
	duration   time.Duration
	rounds     int
	levels     []int
	secrets    int
	beforeDir  string    // "": no second sidecar to compare with
	profileDir string    // "": no profiles
	output     io.Writer // the programs' output; nil discards it
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

// sampleSecret is the declared secret every call asks for.
var sampleSecret = secretName(42)

// loadTarget is one server under load: a sidecar, or the bare server.
type loadTarget struct {
	name    string
	addr    string
	pid     int
	pprof   string        // "": not profiled
	ready   time.Duration // start to ready; zero for the bare server
	idleRSS int64         // kB before any load; zero for the bare server
}

// runLoad starts the sidecar(s) and a bare server that answers the same
// bytes, loads each in turn at every concurrency level, and prints the report.
func runLoad(ctx context.Context, cfg runConfig, logger *slog.Logger) error {
	dir, err := os.MkdirTemp("", "secret-proxy-load")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	servers, stopSidecars, err := startSidecars(ctx, cfg, dir, logger)
	defer stopSidecars()
	if err != nil {
		return err
	}

	req, err := proto.Marshal(&secretproxyv1.GetSecretRequest{Name: sampleSecret})
	if err != nil {
		return err
	}
	bare, bareTarget, err := startBareTarget(ctx, cfg, dir, servers[0].addr)
	if err != nil {
		return err
	}
	defer func() { _ = bare.Stop(10 * time.Second) }()
	servers = append([]*loadTarget{bareTarget}, servers...)

	protoset, err := protosetBytes()
	if err != nil {
		return err
	}
	results, err := runRounds(ctx, cfg, servers, req, protoset, logger)
	if err != nil {
		return err
	}
	names, mem := memoryReport(servers)
	printReport(os.Stdout, cfg, names, results, mem)
	return nil
}

// startSidecars starts the sidecar under test and, when asked, the "before"
// one to compare with. The returned stop, to be called even on error, stops
// every pod started, last first.
func startSidecars(ctx context.Context, cfg runConfig, dir string, logger *slog.Logger) ([]*loadTarget, func(), error) {
	sidecars := []struct{ name, binDir string }{{"sidecar", cfg.binDir}}
	if cfg.beforeDir != "" {
		sidecars = append(sidecars, struct{ name, binDir string }{"before", cfg.beforeDir})
	}
	var servers []*loadTarget
	var pods []*sidecarPod
	stop := func() {
		for _, p := range slices.Backward(pods) {
			p.stop()
		}
	}
	for _, sc := range sidecars {
		podDir := filepath.Join(dir, sc.name)
		if err := os.Mkdir(podDir, 0o700); err != nil {
			return nil, stop, err
		}
		p, err := startPod(ctx, podOptions{bins: pod.InDir(sc.binDir), dir: podDir, secrets: cfg.secrets,
			pprof: cfg.profileDir != "" && sc.name == "sidecar", output: cfg.output})
		if err != nil {
			return nil, stop, fmt.Errorf("%s: %w", sc.name, err)
		}
		pods = append(pods, p)
		logger.Info("secret-proxy ready", "server", sc.name, "start_to_ready", p.startToReady)
		s, err := idleTarget(ctx, cfg, sc.name, p)
		if err != nil {
			return nil, stop, err
		}
		servers = append(servers, s)
	}
	return servers, stop, nil
}

// idleTarget records a started sidecar's memory before any load: its RSS
// once settled and, when profiling, a heap profile, the baseline the report
// and the later profiles are read against.
func idleTarget(ctx context.Context, cfg runConfig, name string, p *sidecarPod) (*loadTarget, error) {
	s := &loadTarget{name: name, addr: p.grpcAddr, pid: p.proxy.Pid(), pprof: p.pprofAddr, ready: p.startToReady}
	var err error
	if s.idleRSS, err = settledRSS(ctx, s.pid); err != nil {
		return nil, err
	}
	if s.pprof != "" {
		if err := fetch(ctx, "http://"+s.pprof+"/debug/pprof/heap?gc=1", filepath.Join(cfg.profileDir, fmt.Sprintf("heap-idle-%d.pprof", cfg.secrets))); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// startBareTarget captures one real response from the sidecar at addr and
// starts the bare server that replays it, so the two differ only in what the
// sidecar does per call.
func startBareTarget(ctx context.Context, cfg runConfig, dir, addr string) (*pod.Process, *loadTarget, error) {
	respFile := filepath.Join(dir, "response.bin")
	if err := captureResponse(ctx, addr, respFile); err != nil {
		return nil, nil, err
	}
	bare, bareAddr, err := startBare(ctx, respFile, cfg.output)
	if err != nil {
		return nil, nil, err
	}
	return bare, &loadTarget{name: "bare", addr: bareAddr, pid: bare.Pid()}, nil
}

// runRounds loads every server at every level, cfg.rounds times, and returns
// the samples by server name and concurrency.
func runRounds(ctx context.Context, cfg runConfig, servers []*loadTarget, req, protoset []byte, logger *slog.Logger) (map[string]map[int][]sample, error) {
	results := map[string]map[int][]sample{}
	for _, s := range servers {
		results[s.name] = map[int][]sample{}
	}
	for round := range cfg.rounds {
		for _, level := range cfg.levels {
			// Interleave: each round starts with another server, so drift on
			// a shared machine hits all alike.
			for k := range servers {
				s := servers[(k+round)%len(servers)]
				logger.Info("load", "round", round+1, "server", s.name, "concurrency", level, "duration", cfg.duration)
				smp, err := measure(ctx, s.addr, s.pid, level, cfg.duration, req, protoset, cpuProfiler(cfg, s, level, round))
				if err != nil {
					return nil, fmt.Errorf("%s at concurrency %d: %w", s.name, level, err)
				}
				results[s.name][level] = append(results[s.name][level], smp)
			}
		}
	}
	return results, nil
}

// cpuProfiler returns what measure calls to take a CPU profile of s during
// one run, or nil when s is not profiled.
func cpuProfiler(cfg runConfig, s *loadTarget, level, round int) func(context.Context) error {
	if s.pprof == "" {
		return nil
	}
	file := filepath.Join(cfg.profileDir, fmt.Sprintf("cpu-c%d-r%d.pprof", level, round+1))
	// A whole-second profile inside the run, started once
	// the load has begun.
	secs := max(1, int(cfg.duration/time.Second)-1)
	return func(ctx context.Context) error {
		return fetch(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.pprof, secs), file)
	}
}

// memoryReport returns the server names in load order and one memory line
// per server, read after the load so the peak RSS includes it.
func memoryReport(servers []*loadTarget) (names, mem []string) {
	for _, s := range servers {
		names = append(names, s.name)
		peak, _ := procStatusKB(s.pid, "VmHWM")
		if s.name == "bare" {
			mem = append(mem, fmt.Sprintf("bare server: peak RSS %.1f MB", float64(peak)/1024))
			continue
		}
		mem = append(mem, fmt.Sprintf("%s: start to ready %s, RSS idle %.1f MB, peak RSS (VmHWM) after load %.1f MB",
			s.name, s.ready.Round(time.Millisecond), float64(s.idleRSS)/1024, float64(peak)/1024))
	}
	return names, mem
}

// settledRSS waits for start-up garbage to be collected and returned (the
// runtime's scavenger works in the background), then reads VmRSS.
func settledRSS(ctx context.Context, pid int) (int64, error) {
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(2 * time.Second):
	}
	return procStatusKB(pid, "VmRSS")
}

// measure runs ghz against one server. profile, when not nil, runs beside the
// load (a CPU profile of the server) and must end before it.
func measure(ctx context.Context, addr string, pid, concurrency int, d time.Duration, req, protoset []byte, profile func(context.Context) error) (sample, error) {
	if err := ctx.Err(); err != nil {
		return sample{}, err
	}
	cpu0, err := procCPU(pid)
	if err != nil {
		return sample{}, err
	}
	profErr := make(chan error, 1)
	if profile != nil {
		go func() {
			select {
			case <-ctx.Done():
				profErr <- ctx.Err()
				return
			case <-time.After(500 * time.Millisecond):
			}
			profErr <- profile(ctx)
		}()
	} else {
		profErr <- nil
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
	if err := <-profErr; err != nil {
		return sample{}, fmt.Errorf("cpu profile: %w", err)
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

func captureResponse(ctx context.Context, addr, file string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := secretproxyv1.NewSecretServiceClient(conn).GetSecret(ctx, &secretproxyv1.GetSecretRequest{Name: sampleSecret})
	if err != nil {
		return fmt.Errorf("sample GetSecret: %w", err)
	}
	raw, err := proto.Marshal(resp)
	if err != nil {
		return err
	}
	return os.WriteFile(file, raw, 0o600)
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

func printReport(w io.Writer, cfg runConfig, names []string, results map[string]map[int][]sample, mem []string) {
	fmt.Fprintf(w, "GetSecret cache hits, 1 HTTP/2 connection, %s per level and server, %d interleaved rounds, medians across rounds.\n\n", cfg.duration, cfg.rounds)
	fmt.Fprintln(w, "| concurrency | server | req/s | p50 | p99 | CPU/req | errors |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	type ratio struct {
		level         int
		name          string
		rps, p99, cpu float64
	}
	var ratios []ratio
	for _, level := range cfg.levels {
		med := map[string][3]float64{}
		for _, name := range names {
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
		b := med["bare"]
		for _, name := range names[1:] {
			s := med[name]
			ratios = append(ratios, ratio{level, name, s[0] / b[0], s[1] / b[1], s[2] / b[2]})
		}
	}
	fmt.Fprintln(w, "\nRatios to bare (targets, issue 13: throughput >= 0.95, p99 <= 1.15, CPU per request <= 1.1):")
	fmt.Fprintln(w, "\n| concurrency | server | throughput | p99 | CPU/req |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, r := range ratios {
		fmt.Fprintf(w, "| %d | %s | %.2f | %.2f | %.2f |\n", r.level, r.name, r.rps, r.p99, r.cpu)
	}
	fmt.Fprintf(w, "\nsecret-proxy with %d declared secrets. %s.\n", cfg.secrets, strings.Join(mem, "; "))
}
