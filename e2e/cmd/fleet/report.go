package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/secretproxy/secretproxy/e2e/pod"
)

// phaseStats is what the vault saw in one phase. Windows are 10 s long and
// start on whole seconds of the emulator's series.
type phaseStats struct {
	seconds            time.Duration
	reads, throttled   int
	peakReads          int // most reads served in one window
	peakRequests       int // most requests (served + throttled) in one window
	peakAfterThrottle  int // the same over windows from the phase's first 429 on
	insideRetryAfter   int64
	inFlightAtThrottle int64
}

type report struct {
	o     options
	pods  int
	limit int // per 10 s

	startSpan  time.Duration // first to last sidecar start
	readyTimes []time.Duration
	rolloutEnd time.Duration // since the first start
	rollout    phaseStats

	steady                 phaseStats
	steadyWarnings         int
	steadyStart, steadyEnd time.Duration
	rotatedAt              time.Duration
	rotation               []time.Duration
	outageStart, recovered time.Duration
	staleAtRecovery        int
	fresh                  []time.Duration
	recovery               phaseStats
	mem                    []memory
	emuMem                 memory
	series                 []pod.RateSecond
	seriesStart            time.Duration // the series' second 0, since the first start
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

func pct(n, of int) string {
	if of == 0 {
		return "-"
	}
	return fmt.Sprintf("%d%%", (100*n+of/2)/of)
}

// table renders the results as Markdown.
func (r *report) table() string {
	o := r.o
	var b strings.Builder
	total := r.pods * o.secrets
	least := time.Duration(float64(total) / float64(r.limit) * float64(10*time.Second))
	ready := slices.Clone(r.readyTimes)
	fmt.Fprintf(&b, "Fleet: %d secret-proxy processes x %d secrets, one kv-emulator limited to %d requests per 10 s (the first load needs %dx that), refresh.interval %s (jitter 0.1), minInterval %s, outage %s.\n\n",
		r.pods, o.secrets, r.limit, o.factor, o.interval, o.minInterval, o.outage)
	b.WriteString("| phase | measure | value | target |\n|---|---|---|---|\n")
	row := func(phase, what, value, target string) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", phase, what, value, target)
	}
	row("rollout", "sidecars started within", secs(r.startSpan), "10 s")
	row("rollout", "time to ready: median / p99 / max", fmt.Sprintf("%s / %s / %s", secs(quantile(ready, 0.5)), secs(quantile(ready, 0.99)), secs(quantile(ready, 1))), "")
	row("rollout", "every sidecar ready, since the first start", fmt.Sprintf("%s (%.2fx the least possible %s = %d reads / %d per 10 s)", secs(r.rolloutEnd), r.rolloutEnd.Seconds()/least.Seconds(), secs(least), total, r.limit), "within 1.5x")
	row("rollout", "vault reads served / answered 429", fmt.Sprintf("%d / %d", r.rollout.reads, r.rollout.throttled), "")
	row("rollout", "reads sent inside a Retry-After", fmt.Sprintf("%d (plus %d already in flight when the 429 left)", r.rollout.insideRetryAfter, r.rollout.inFlightAtThrottle), "0")
	row("rollout", "peak reads served per 10 s", fmt.Sprintf("%d (%s of the limit)", r.rollout.peakReads, pct(r.rollout.peakReads, r.limit)), "<= limit")
	row("rollout", "peak requests per 10 s (served + 429), windows from the first 429 on", fmt.Sprintf("%d (%s of the limit)", r.rollout.peakAfterThrottle, pct(r.rollout.peakAfterThrottle, r.limit)), "<= 110%")
	row("steady", fmt.Sprintf("reads over 2 intervals (%s)", secs(r.steady.seconds)), fmt.Sprintf("%d; %.1f per 10 s on average", r.steady.reads, float64(r.steady.reads)*10/r.steady.seconds.Seconds()), "")
	row("steady", "peak reads per 10 s", fmt.Sprintf("%d (%s of the limit)", r.steady.peakRequests, pct(r.steady.peakRequests, r.limit)), "< 50%")
	row("steady", "429s / steady-state throttle warnings", fmt.Sprintf("%d / %d", r.steady.throttled, r.steadyWarnings), "0 / 0")
	rot := slices.Clone(r.rotation)
	row("rotation", "new version on every sidecar: median / max", fmt.Sprintf("%s / %s", secs(quantile(rot, 0.5)), secs(quantile(rot, 1))), "max <= interval ("+secs(o.interval)+")")
	fr := slices.Clone(r.fresh)
	row("outage", "sidecars holding a stale secret when the vault came back", fmt.Sprintf("%d of %d", r.staleAtRecovery, r.pods), "")
	row("outage", "every secret fresh again after recovery: median / max", fmt.Sprintf("%s / %s", secs(quantile(fr, 0.5)), secs(quantile(fr, 1))), "")
	row("outage", "after recovery: reads / 429s / peak requests per 10 s", fmt.Sprintf("%d / %d / %d (%s of the limit)", r.recovery.reads, r.recovery.throttled, r.recovery.peakRequests, pct(r.recovery.peakRequests, r.limit)), "<= 100%")
	row("outage", "reads sent inside a Retry-After", fmt.Sprintf("%d", r.recovery.insideRetryAfter+r.steady.insideRetryAfter), "0")
	var rss, pss []int64
	var sumRSS, sumPSS int64
	for _, m := range r.mem {
		rss, pss = append(rss, m.rss), append(pss, m.pss)
		sumRSS += m.rss
		sumPSS += m.pss
	}
	slices.Sort(rss)
	slices.Sort(pss)
	if len(rss) > 0 {
		row("memory", "one sidecar: RSS median / max; PSS median", fmt.Sprintf("%s / %s; %s", mib(rss[len(rss)/2]), mib(rss[len(rss)-1]), mib(pss[len(pss)/2])), "")
		row("memory", "whole fleet: RSS sum / PSS sum (shared pages counted once)", fmt.Sprintf("%s / %s", mib(sumRSS), mib(sumPSS)), "")
	}
	row("memory", "kv-emulator RSS", mib(r.emuMem.rss), "")
	return b.String()
}
