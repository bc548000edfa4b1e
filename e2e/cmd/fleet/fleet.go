package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/secretproxy/secretproxy/e2e/pod"
	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
)

// What secret-proxy logs once every declared secret is loaded, and when a
// refresh is throttled once everything is loaded.
const (
	readyLine     = "ready: every declared secret is loaded"
	steadyWarning = "throttling refreshes in steady state"
)

// sidecar is one secret-proxy process of the fleet.
type sidecar struct {
	id      int
	proc    *pod.Process
	socket  string
	started time.Time
	ready   time.Time // zero until its ready line
	conn    *grpc.ClientConn
	api     secretproxyv1.SecretServiceClient
}

type fleet struct {
	o        options
	out      io.Writer
	emu      *pod.Emulator
	sidecars []*sidecar
	names    []string // vault secret names
	t0       time.Time
	mu       sync.Mutex
}

// startFleet starts the emulator and every sidecar, spread over o.rollout.
// The fleet it returns (also on error) must be stopped.
func startFleet(ctx context.Context, o options, out io.Writer) (*fleet, error) {
	dir, err := freshDir(o.dir)
	if err != nil {
		return nil, err
	}
	f := &fleet{o: o, out: out}
	seed := f.declareSecrets()
	limit := fmt.Sprintf("%d/10s", o.limit())
	fmt.Fprintf(out, "fleet: %d sidecars x %d secrets = %d first reads against a vault limit of %s (%dx the budget); refresh every %s\n",
		o.pods, o.secrets, o.pods*o.secrets, limit, o.factor, o.interval)
	f.emu, err = pod.StartEmulator(ctx, filepath.Join(o.bin, "kv-emulator"), dir, "127.0.0.1:0", seed, nil,
		"--rate-limit", limit, "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	// Configuration files first, so the rollout measures starting processes only.
	if err := f.writeConfigs(dir); err != nil {
		return f, err
	}
	return f, f.startSidecars(ctx, dir)
}

// freshDir empties dir (a previous run's sockets and logs would mislead)
// and returns its absolute path, which the sidecars' configurations need.
func freshDir(dir string) (string, error) {
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return filepath.Abs(dir)
}

// declareSecrets names the secrets every sidecar declares and returns the
// vault's initial values for them.
func (f *fleet) declareSecrets() map[string]string {
	seed := map[string]string{}
	for i := range f.o.secrets {
		n := fmt.Sprintf("fleet-secret-%d", i)
		f.names = append(f.names, n)
		seed[n] = fmt.Sprintf("fleet-value-%d-v1", i)
	}
	return seed
}

// writeConfigs writes one pod directory with a configuration per sidecar and
// records the sidecars (not yet started).
func (f *fleet) writeConfigs(dir string) error {
	for i := range f.o.pods {
		pdir := filepath.Join(dir, fmt.Sprintf("pod-%04d", i))
		if err := os.MkdirAll(pdir, 0o755); err != nil {
			return err
		}
		cfg := pod.SidecarConfig{
			VaultURL:    f.emu.VaultURL,
			Unix:        filepath.Join(pdir, "grpc.sock"),
			Interval:    f.o.interval,
			MinInterval: f.o.minInterval,
			ClientID:    fmt.Sprintf("fleet-pod-%04d", i),
			LogLevel:    "info",
		}
		for _, n := range f.names {
			cfg.Secrets = append(cfg.Secrets, pod.SecretDecl{Name: n})
		}
		if err := cfg.WriteFile(filepath.Join(pdir, "config.yaml")); err != nil {
			return err
		}
		f.sidecars = append(f.sidecars, &sidecar{id: i, socket: cfg.Unix})
	}
	return nil
}

// startSidecars starts the sidecars evenly spread over o.rollout and returns
// once every start was attempted.
func (f *fleet) startSidecars(ctx context.Context, dir string) error {
	o := f.o
	fmt.Fprintf(f.out, "fleet: starting %d sidecars within %s\n", o.pods, o.rollout)
	gap := time.Duration(0)
	if o.pods > 1 {
		gap = o.rollout / time.Duration(o.pods)
	}
	// Each start on its own goroutine at its own time: one exec waiting for
	// a busy machine must not push back every start after it.
	f.t0 = time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(f.sidecars))
	for i, s := range f.sidecars {
		wg.Go(func() {
			if err := sleep(ctx, time.Until(f.t0.Add(time.Duration(i)*gap))); err != nil {
				errs[i] = err
				return
			}
			spec := f.emu.SidecarSpec(filepath.Join(o.bin, "secret-proxy"), filepath.Join(dir, fmt.Sprintf("pod-%04d", i), "config.yaml"))
			spec.Name = fmt.Sprintf("pod-%04d", i)
			p, err := pod.Start(spec)
			f.mu.Lock()
			s.proc, s.started, errs[i] = p, time.Now(), err
			f.mu.Unlock()
			if err == nil {
				go f.watchReady(ctx, s)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (f *fleet) watchReady(ctx context.Context, s *sidecar) {
	if _, err := s.proc.WaitFor(ctx, func(l string) bool { return strings.Contains(l, readyLine) }); err != nil {
		return
	}
	f.mu.Lock()
	s.ready = time.Now()
	f.mu.Unlock()
}

// stop ends every process, sidecars first, all at once.
func (f *fleet) stop(out io.Writer) {
	var wg sync.WaitGroup
	failed := 0
	var mu sync.Mutex
	for _, s := range f.sidecars {
		if s.conn != nil {
			s.conn.Close()
		}
		if s.proc == nil {
			continue
		}
		wg.Go(func() {
			if err := s.proc.Stop(10 * time.Second); err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
			}
			// Kept for a look at what one sidecar did (names and versions only).
			_ = os.WriteFile(filepath.Join(filepath.Dir(s.socket), "secret-proxy.log"), []byte(s.proc.Output()), 0o644)
		})
	}
	wg.Wait()
	if f.emu != nil {
		_ = f.emu.Stop(10 * time.Second)
	}
	if failed > 0 {
		fmt.Fprintf(out, "fleet: %d sidecars did not exit cleanly\n", failed)
	}
}

// measure runs the phases after the start, each on the emulator's counters
// as the previous phase left them.
func (f *fleet) measure(ctx context.Context) (*report, error) {
	o := f.o
	r := &report{o: o, pods: o.pods, limit: o.limit()}
	for _, s := range f.sidecars {
		r.startSpan = max(r.startSpan, s.started.Sub(f.t0))
	}
	rollout, err := f.measureRollout(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := f.connect(); err != nil {
		return nil, err
	}
	steady, err := f.measureSteady(ctx, r, rollout)
	if err != nil {
		return nil, err
	}
	after, err := f.measureOutage(ctx, r, steady)
	if err != nil {
		return nil, err
	}
	if err := f.measureMemory(r); err != nil {
		return nil, err
	}
	r.series = after.Seconds
	r.seriesStart = after.Start.Sub(f.t0)
	return r, nil
}

// measureRollout (phase 1) waits until every sidecar is ready, bounded by
// half the timeout (and the context) so the later phases keep their time,
// and returns the emulator's counters at its end.
func (f *fleet) measureRollout(ctx context.Context, r *report) (pod.RateStats, error) {
	fmt.Fprintln(f.out, "fleet: rollout: waiting for every sidecar to be ready")
	deadline := time.Now().Add(f.o.timeout / 2)
	for {
		n := f.readyCount()
		if n == len(f.sidecars) {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return pod.RateStats{}, fmt.Errorf("rollout: only %d of %d sidecars ready after %s", n, len(f.sidecars), time.Since(f.t0).Round(time.Second))
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return pod.RateStats{}, err
		}
	}
	f.mu.Lock()
	for _, s := range f.sidecars {
		r.readyTimes = append(r.readyTimes, s.ready.Sub(s.started))
		r.rolloutEnd = max(r.rolloutEnd, s.ready.Sub(f.t0))
	}
	f.mu.Unlock()
	rollout, err := f.emu.RateStats(ctx)
	if err != nil {
		return pod.RateStats{}, err
	}
	r.rollout = f.phase(rollout, pod.RateStats{}, f.t0, f.t0.Add(r.rolloutEnd))
	fmt.Fprintf(f.out, "fleet: rollout done in %s\n", r.rolloutEnd.Round(100*time.Millisecond))
	return rollout, nil
}

// connect opens a gRPC client to every sidecar: the later phases ask each
// one what it serves.
func (f *fleet) connect() error {
	for _, s := range f.sidecars {
		var err error
		s.conn, err = grpc.NewClient("unix://"+s.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		s.api = secretproxyv1.NewSecretServiceClient(s.conn)
	}
	return nil
}

// measureSteady (phases 2 and 3) runs the steady state for two intervals
// with a rotation at its start, and returns the emulator's counters at its
// end.
func (f *fleet) measureSteady(ctx context.Context, r *report, rollout pod.RateStats) (pod.RateStats, error) {
	o := f.o
	steadyStart := time.Now()
	warningsBefore := f.countLines(steadyWarning)
	fmt.Fprintf(f.out, "fleet: steady state for %s, rotating %s at its start\n", 2*o.interval, f.names[0])
	version, err := f.emu.SetSecret(ctx, f.names[0], "fleet-value-0-v2")
	if err != nil {
		return pod.RateStats{}, err
	}
	rotatedAt := time.Now()
	r.rotation, err = f.until(ctx, o.interval*3/2, rotatedAt, func(l []*secretproxyv1.Secret) bool {
		for _, s := range l {
			if s.GetName() == f.names[0] {
				return s.GetVersion() == version
			}
		}
		return false
	})
	if err != nil {
		return pod.RateStats{}, fmt.Errorf("rotation: %w", err)
	}
	if err := sleep(ctx, time.Until(steadyStart.Add(2*o.interval))); err != nil {
		return pod.RateStats{}, err
	}
	steadyEnd := time.Now()
	steady, err := f.emu.RateStats(ctx)
	if err != nil {
		return pod.RateStats{}, err
	}
	r.steady = f.phase(steady, rollout, steadyStart, steadyEnd)
	r.steadyWarnings = f.countLines(steadyWarning) - warningsBefore
	r.steadyStart, r.steadyEnd, r.rotatedAt = steadyStart.Sub(f.t0), steadyEnd.Sub(f.t0), rotatedAt.Sub(f.t0)
	return steady, nil
}

// measureOutage (phase 4) takes the vault down for o.outage, waits until no
// sidecar serves a stale secret, keeps counting for a window after that, and
// returns the emulator's counters at the end.
func (f *fleet) measureOutage(ctx context.Context, r *report, steady pod.RateStats) (pod.RateStats, error) {
	o := f.o
	fmt.Fprintf(f.out, "fleet: vault outage for %s\n", o.outage)
	outageStart := time.Now()
	if err := f.emu.SetFault(ctx, "outage", 0); err != nil {
		return pod.RateStats{}, err
	}
	if err := sleep(ctx, o.outage); err != nil {
		return pod.RateStats{}, err
	}
	if err := f.emu.SetFault(ctx, "none", 0); err != nil {
		return pod.RateStats{}, err
	}
	recovered := time.Now()
	r.staleAtRecovery = f.staleCount(ctx)
	fmt.Fprintf(f.out, "fleet: vault back; %d sidecars hold a stale secret; waiting until none does\n", r.staleAtRecovery)
	var err error
	r.fresh, err = f.until(ctx, 2*o.interval, recovered, func(l []*secretproxyv1.Secret) bool {
		for _, s := range l {
			if s.GetStale() {
				return false
			}
		}
		return true
	})
	if err != nil {
		return pod.RateStats{}, fmt.Errorf("recovery: %w", err)
	}
	// Keep counting for a window after the last one is fresh.
	if err := sleep(ctx, 10*time.Second); err != nil {
		return pod.RateStats{}, err
	}
	after, err := f.emu.RateStats(ctx)
	if err != nil {
		return pod.RateStats{}, err
	}
	r.recovery = f.phase(after, steady, recovered, time.Now())
	r.outageStart, r.recovered = outageStart.Sub(f.t0), recovered.Sub(f.t0)
	return after, nil
}

// measureMemory (phase 5) reads every process's memory while all still run.
func (f *fleet) measureMemory(r *report) error {
	for _, s := range f.sidecars {
		m, err := readMemory(s.proc.Pid())
		if err != nil {
			return err
		}
		r.mem = append(r.mem, m)
	}
	var err error
	r.emuMem, err = readMemory(f.emu.Pid())
	return err
}

// phase sums what the emulator saw between from and to; prev is the snapshot
// at the end of the previous phase (for the cumulative counters).
func (f *fleet) phase(now, prev pod.RateStats, from, to time.Time) phaseStats {
	first := int(from.Sub(now.Start) / time.Second)
	last := int(to.Sub(now.Start) / time.Second)
	p := phaseStats{
		insideRetryAfter:   now.InsideRetryAfter - prev.InsideRetryAfter,
		inFlightAtThrottle: now.InFlightAtThrottle - prev.InFlightAtThrottle,
		seconds:            to.Sub(from),
	}
	byS := map[int]pod.RateSecond{}
	for _, s := range now.Seconds {
		byS[s.Second] = s
	}
	firstThrottle := -1
	for s := first; s <= last; s++ {
		p.reads += byS[s].Reads
		p.throttled += byS[s].Throttled
		if byS[s].Throttled > 0 && firstThrottle < 0 {
			firstThrottle = s
		}
	}
	for b := first; b <= last; b++ {
		reads, all := 0, 0
		for s := b; s < b+10; s++ {
			reads += byS[s].Reads
			all += byS[s].Reads + byS[s].Throttled
		}
		p.peakReads = max(p.peakReads, reads)
		p.peakRequests = max(p.peakRequests, all)
		if firstThrottle >= 0 && b >= firstThrottle {
			p.peakAfterThrottle = max(p.peakAfterThrottle, all)
		}
	}
	return p
}

func (f *fleet) readyCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, s := range f.sidecars {
		if !s.ready.IsZero() {
			n++
		}
	}
	return n
}

func (f *fleet) countLines(substr string) int {
	n := 0
	for _, s := range f.sidecars {
		n += strings.Count(s.proc.Output(), substr)
	}
	return n
}

// until asks every sidecar (ListSecrets, no values) every o.poll until done
// holds for each, and returns how long after since each one took.
func (f *fleet) until(ctx context.Context, limit time.Duration, since time.Time, done func([]*secretproxyv1.Secret) bool) ([]time.Duration, error) {
	took := make([]time.Duration, len(f.sidecars))
	left := len(f.sidecars)
	deadline := since.Add(limit)
	for left > 0 {
		var mu sync.Mutex
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for i, s := range f.sidecars {
			if took[i] != 0 {
				continue
			}
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				resp, err := s.api.ListSecrets(cctx, &secretproxyv1.ListSecretsRequest{})
				if err != nil || !done(resp.GetSecrets()) {
					return
				}
				mu.Lock()
				took[i] = max(time.Since(since), time.Millisecond)
				left--
				mu.Unlock()
			})
		}
		wg.Wait()
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			return took, fmt.Errorf("%d of %d sidecars not there after %s", left, len(f.sidecars), limit)
		}
		if err := sleep(ctx, f.o.poll); err != nil {
			return took, err
		}
	}
	return took, nil
}

// staleCount is the number of sidecars serving some secret marked stale.
func (f *fleet) staleCount(ctx context.Context) int {
	n := 0
	for _, s := range f.sidecars {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := s.api.ListSecrets(cctx, &secretproxyv1.ListSecretsRequest{})
		cancel()
		if err != nil {
			continue
		}
		for _, sec := range resp.GetSecrets() {
			if sec.GetStale() {
				n++
				break
			}
		}
	}
	return n
}

// memory is one process's resident memory, in bytes: RSS counts shared pages
// (the binary's text) in full in every process, PSS divides them among the
// processes that share them, so the fleet's PSS adds up to what it costs.
type memory struct{ rss, pss int64 }

func readMemory(pid int) (memory, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return memory{}, fmt.Errorf("memory of pid %d: %w", pid, err)
	}
	var m memory
	for _, line := range strings.Split(string(raw), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		kb, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "Rss:":
			m.rss = kb << 10
		case "Pss:":
			m.pss = kb << 10
		}
	}
	return m, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// quantile of ds (sorted in place), q in [0, 1].
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	i := int(q*float64(len(ds)-1) + 0.5)
	return ds[min(i, len(ds)-1)]
}
