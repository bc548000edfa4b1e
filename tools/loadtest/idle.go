package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/secretproxy/secretproxy/e2e/pod"
)

// idleConfig drives `loadtest idle`: what each extra declared secret costs a
// sidecar that serves nothing, in memory and in refresh CPU.
type idleConfig struct {
	binDir     string
	counts     []int         // declared secrets, e.g. 100 and 1100
	rounds     int           // pods per count, interleaved
	interval   time.Duration // refresh.interval
	window     time.Duration // how long refresh CPU is measured
	profileDir string
	output     io.Writer
}

type idleSample struct {
	ready       time.Duration
	rss         int64 // kB, settled after the first load
	anon, file  int64 // kB: RssAnon (heap, stacks, runtime) and RssFile (the binary's pages)
	reads       int64 // vault reads in the window
	cpu         time.Duration
	cpuPerReads time.Duration // CPU per 1,000 vault reads
}

func runIdle(ctx context.Context, cfg idleConfig, logger *slog.Logger) error {
	results := map[int][]idleSample{}
	for round := range cfg.rounds {
		counts := cfg.counts
		if round%2 == 1 {
			counts = reversed(counts)
		}
		for _, n := range counts {
			logger.Info("idle", "round", round+1, "secrets", n, "interval", cfg.interval, "window", cfg.window)
			s, err := idleOnce(ctx, cfg, n, round)
			if err != nil {
				return fmt.Errorf("%d secrets: %w", n, err)
			}
			results[n] = append(results[n], s)
		}
	}
	w := os.Stdout
	fmt.Fprintf(w, "Idle sidecar (no calls), refresh.interval %s, refresh CPU over %s, %d interleaved rounds, medians.\n\n", cfg.interval, cfg.window, cfg.rounds)
	fmt.Fprintln(w, "| secrets | start to ready | idle RSS | of which anon / file | vault reads in window | CPU in window | CPU per 1,000 reads |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	type med struct {
		rss float64
		cpu time.Duration
	}
	meds := map[int]med{}
	for _, n := range cfg.counts {
		xs := results[n]
		ready := median(pickIdle(xs, func(s idleSample) time.Duration { return s.ready }))
		rss := median(pickIdle(xs, func(s idleSample) int64 { return s.rss }))
		reads := median(pickIdle(xs, func(s idleSample) int64 { return s.reads }))
		cpu := median(pickIdle(xs, func(s idleSample) time.Duration { return s.cpu }))
		per := median(pickIdle(xs, func(s idleSample) time.Duration { return s.cpuPerReads }))
		anon := median(pickIdle(xs, func(s idleSample) int64 { return s.anon }))
		file := median(pickIdle(xs, func(s idleSample) int64 { return s.file }))
		meds[n] = med{float64(rss) / 1024, per}
		fmt.Fprintf(w, "| %d | %s | %.1f MB | %.1f / %.1f MB | %d | %s | %s |\n", n, ready.Round(time.Millisecond), float64(rss)/1024,
			float64(anon)/1024, float64(file)/1024, reads, cpu.Round(time.Millisecond), per.Round(10*time.Microsecond))
	}
	if len(cfg.counts) >= 2 {
		lo, hi := cfg.counts[0], cfg.counts[len(cfg.counts)-1]
		if hi != lo {
			k := 1000 / float64(hi-lo)
			fmt.Fprintf(w, "\nEach extra 1,000 declared secrets (from %d to %d): %+.1f MB idle RSS; a refresh pass of 1,000 secrets costs %s of CPU (median of the two counts).\n",
				lo, hi, (meds[hi].rss-meds[lo].rss)*k, ((meds[hi].cpu + meds[lo].cpu) / 2).Round(10*time.Microsecond))
		}
	}
	return nil
}

func idleOnce(ctx context.Context, cfg idleConfig, n, round int) (idleSample, error) {
	dir, err := os.MkdirTemp("", "secret-proxy-idle")
	if err != nil {
		return idleSample{}, err
	}
	defer os.RemoveAll(dir)
	p, err := startPod(ctx, podOptions{bins: pod.InDir(cfg.binDir), dir: dir, secrets: n,
		interval: cfg.interval, pprof: cfg.profileDir != "", output: cfg.output})
	if err != nil {
		return idleSample{}, err
	}
	defer p.stop()
	s := idleSample{ready: p.startToReady}
	if s.rss, err = settledRSS(ctx, p.proxy.Pid()); err != nil {
		return s, err
	}
	s.anon, _ = procStatusKB(p.proxy.Pid(), "RssAnon")
	s.file, _ = procStatusKB(p.proxy.Pid(), "RssFile")
	if cfg.profileDir != "" && round == 0 {
		base := "http://" + p.pprofAddr + "/debug/pprof/"
		for file, url := range map[string]string{
			fmt.Sprintf("heap-idle-%d.pprof", n):    base + "heap?gc=1",
			fmt.Sprintf("heap-idle-%d.txt", n):      base + "heap?debug=1", // ends with runtime.MemStats
			fmt.Sprintf("goroutine-idle-%d.txt", n): base + "goroutine?debug=1",
		} {
			if err := fetch(ctx, url, filepath.Join(cfg.profileDir, file)); err != nil {
				return s, err
			}
		}
	}
	st0, err := p.emu.RateStats(ctx)
	if err != nil {
		return s, err
	}
	cpu0, err := procCPU(p.proxy.Pid())
	if err != nil {
		return s, err
	}
	select {
	case <-ctx.Done():
		return s, ctx.Err()
	case <-time.After(cfg.window):
	}
	cpu1, err := procCPU(p.proxy.Pid())
	if err != nil {
		return s, err
	}
	st1, err := p.emu.RateStats(ctx)
	if err != nil {
		return s, err
	}
	s.reads, s.cpu = st1.Reads-st0.Reads, cpu1-cpu0
	if s.reads > 0 {
		s.cpuPerReads = s.cpu * 1000 / time.Duration(s.reads)
	}
	return s, nil
}

func reversed(xs []int) []int {
	out := make([]int, len(xs))
	for i, x := range xs {
		out[len(xs)-1-i] = x
	}
	return out
}

func pickIdle[T any](xs []idleSample, f func(idleSample) T) []T {
	out := make([]T, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}
