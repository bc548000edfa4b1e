package main

import (
	"fmt"
	"strings"
	"time"
)

// svg draws the vault's requests per second over the run: served reads and
// 429s stacked, the limit as a rate (limit / 10 per second), the served reads
// averaged over the trailing 10 s, and the phases. Hand-written SVG: no
// plotting dependency.
func (r *report) svg() string {
	const (
		w, h                   = 960.0, 420.0
		left, right, top, bott = 60.0, 20.0, 40.0, 50.0
	)
	n := len(r.series)
	if n == 0 {
		return `<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>`
	}
	rate := float64(r.limit) / 10
	ymax := rate * 2
	for _, s := range r.series {
		ymax = max(ymax, float64(s.Reads+s.Throttled))
	}
	ymax = niceCeil(ymax)
	pw, ph := w-left-right, h-top-bott
	x := func(sec float64) float64 { return left + sec/float64(n)*pw }
	y := func(v float64) float64 { return top + ph - v/ymax*ph }
	bw := max(pw/float64(n), 0.5)

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="11">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%.0f" height="%.0f" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%.0f" y="18" font-size="14">Vault requests per second: %d secret-proxy processes x %d secrets, limit %d per 10 s</text>`+"\n", left, r.pods, r.o.secrets, r.limit)
	// Axes and grid.
	for i := 0; i <= 4; i++ {
		v := ymax * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, w-right, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%.0f</text>`+"\n", left-6, y(v)+4, v)
	}
	step := tickStep(n)
	for s := 0; s < n; s += step {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%ds</text>`+"\n", x(float64(s)), h-bott+16, s)
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">seconds since the kv-emulator started</text>`+"\n", left+pw/2, h-10)
	// Phases.
	for _, p := range []struct {
		at   time.Duration
		name string
	}{
		{0, "rollout"}, {r.steadyStart, "steady + rotation"}, {r.outageStart, "outage"}, {r.recovered, "recovery"},
	} {
		sec := (p.at - r.seriesStart).Seconds()
		if sec < 0 || sec > float64(n) {
			continue
		}
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#888" stroke-dasharray="2,3"/>`+"\n", x(sec), x(sec), top, top+ph)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", x(sec)+3, top+10, p.name)
	}
	// Bars: served (green) and throttled (red) stacked.
	for i, s := range r.series {
		if s.Reads > 0 {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.2f" height="%.1f" fill="#4a9a5b"/>`+"\n", x(float64(i)), y(float64(s.Reads)), bw, y(0)-y(float64(s.Reads)))
		}
		if s.Throttled > 0 {
			top := float64(s.Reads + s.Throttled)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.2f" height="%.1f" fill="#d0473c"/>`+"\n", x(float64(i)), y(top), bw, y(float64(s.Reads))-y(top))
		}
	}
	// Trailing 10 s average of served reads.
	var pts []string
	sum := 0
	for i, s := range r.series {
		sum += s.Reads
		if i >= 10 {
			sum -= r.series[i-10].Reads
		}
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(float64(i)+1), y(float64(sum)/10)))
	}
	fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="#1f4e8c" stroke-width="1.5"/>`+"\n", strings.Join(pts, " "))
	// The limit as a rate.
	fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="black" stroke-width="1.5" stroke-dasharray="6,4"/>`+"\n", left, w-right, y(rate), y(rate))
	// Legend.
	lx, ly := w-right-300, top+22
	legend := []struct{ color, text string }{
		{"#4a9a5b", "reads served"}, {"#d0473c", "answered 429 (throttled)"},
		{"#1f4e8c", "reads served, trailing 10 s average"}, {"black", fmt.Sprintf("limit: %d per 10 s = %.1f/s", r.limit, rate)},
	}
	for i, l := range legend {
		yy := ly + float64(i)*15
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="12" height="10" fill="%s"/><text x="%.1f" y="%.1f">%s</text>`+"\n", lx, yy-9, l.color, lx+16, yy, l.text)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	p := 1.0
	for p*10 < v {
		p *= 10
	}
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return v
}

func tickStep(n int) int {
	for _, s := range []int{10, 30, 60, 120, 300} {
		if n/s <= 12 {
			return s
		}
	}
	return 600
}
