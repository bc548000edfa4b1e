package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/secretproxy/secretproxy/e2e/pod"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantErr   string
		wantLimit int
	}{
		{name: "defaults", wantLimit: 160},
		{name: "smaller fleet", args: []string{"--pods", "20", "--secrets", "3"}, wantLimit: 12},
		{name: "factor", args: []string{"--budget-factor", "2"}, wantLimit: 400},
		{name: "no pods", args: []string{"--pods", "0"}, wantErr: "--pods"},
		{name: "short interval", args: []string{"--interval", "1s"}, wantErr: "--interval"},
		{name: "positional", args: []string{"x"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := o.limit(); got != tt.wantLimit {
				t.Errorf("limit() = %d, want %d", got, tt.wantLimit)
			}
		})
	}
}

// TestPhase: a phase sums the seconds it covers, finds the busiest 10 s
// window, and takes the cumulative counters as differences.
func TestPhase(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var series []pod.RateSecond
	for s := range 30 {
		rs := pod.RateSecond{Second: s, Reads: 1}
		if s >= 12 && s < 15 {
			rs.Reads, rs.Throttled = 5, 10
		}
		series = append(series, rs)
	}
	now := pod.RateStats{Start: start, Seconds: series, InsideRetryAfter: 3, InFlightAtThrottle: 7}
	prev := pod.RateStats{InsideRetryAfter: 1, InFlightAtThrottle: 2}
	p := (&fleet{}).phase(now, prev, start.Add(10*time.Second), start.Add(20*time.Second))
	if p.reads != 8+15 || p.throttled != 30 {
		t.Errorf("reads %d throttled %d, want 23 and 30", p.reads, p.throttled)
	}
	if p.peakReads != 7+15 || p.peakRequests != 7+45 {
		t.Errorf("peaks %d / %d, want 22 / 52 (seconds 10-19 or later windows holding 12-14)", p.peakReads, p.peakRequests)
	}
	if p.peakAfterThrottle != 7+45 {
		t.Errorf("peak after the first 429 = %d, want 52 (the window starting at second 12)", p.peakAfterThrottle)
	}
	if p.insideRetryAfter != 2 || p.inFlightAtThrottle != 5 {
		t.Errorf("counters %d / %d, want the differences 2 / 5", p.insideRetryAfter, p.inFlightAtThrottle)
	}
}

func TestQuantileAndChartScale(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3}
	if q := quantile(ds, 0.5); q != 3 {
		t.Errorf("median = %d, want 3", q)
	}
	if q := quantile(ds, 1); q != 5 {
		t.Errorf("max = %d, want 5", q)
	}
	for in, want := range map[float64]float64{7: 10, 16: 20, 32: 50, 180: 200, 240: 250} {
		if got := niceCeil(in); got != want {
			t.Errorf("niceCeil(%v) = %v, want %v", in, got, want)
		}
	}
	r := &report{o: options{secrets: 4}, pods: 2, limit: 8, series: []pod.RateSecond{{Second: 0, Reads: 1, Throttled: 2}}}
	if svg := r.svg(); !strings.HasPrefix(svg, "<svg") || !strings.Contains(svg, "limit: 8 per 10 s") {
		t.Errorf("the chart lacks its svg element or the limit:\n%s", svg)
	}
}
