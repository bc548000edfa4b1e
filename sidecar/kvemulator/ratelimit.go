package kvemulator

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultRateWindow is the span of Key Vault's service limits: "transactions
// per 10 seconds, per vault".
const DefaultRateWindow = 10 * time.Second

// DefaultThrottleGrace is how long after a 429 a read from the same caller is
// still taken as one it had sent before the 429 reached it (see
// RateStats.InFlightAtThrottle).
const DefaultThrottleGrace = 250 * time.Millisecond

// maxRateSeconds bounds the per-second series the admin API reports (an hour).
const maxRateSeconds = 3600

// RateLimit is a vault-wide budget of vault requests, shared by every caller,
// as Key Vault applies its service limits per vault. Reads is the budget per
// Window; zero turns the limit off.
//
// The window slides: at any instant, at most Reads requests were served in
// the Window before it. A request over the budget gets 429 Throttled and a
// Retry-After of the whole seconds until the oldest served request in the
// window leaves it, which is when the next one can be served. (A fixed
// window would let 2 x Reads through across a boundary; Key Vault documents
// only "per 10 seconds", and the sliding window is the stricter reading.)
//
// Only authenticated data-plane requests count: the bearer challenge (the
// unauthenticated first request of every client), the token endpoints and
// the admin API do not.
type RateLimit struct {
	Reads  int
	Window time.Duration // default DefaultRateWindow
}

// String is the flag spelling, "N/10s", or "off".
func (l RateLimit) String() string {
	if l.Reads <= 0 {
		return "off"
	}
	w := l.Window
	if w <= 0 {
		w = DefaultRateWindow
	}
	return strconv.Itoa(l.Reads) + "/" + w.String()
}

// ParseRateLimit parses "N/10s" (N requests per 10 seconds; any Go duration
// after the slash) or "off".
func ParseRateLimit(s string) (RateLimit, error) {
	if s == "" || s == "off" || s == "0" {
		return RateLimit{}, nil
	}
	n, w, ok := strings.Cut(s, "/")
	if !ok {
		return RateLimit{}, fmt.Errorf("rate limit %q: want N/10s (N requests per 10 seconds) or off", s)
	}
	reads, err := strconv.Atoi(n)
	if err != nil || reads < 1 {
		return RateLimit{}, fmt.Errorf("rate limit %q: N must be a whole number of at least 1", s)
	}
	window, err := time.ParseDuration(w)
	if err != nil || window < 100*time.Millisecond || window > time.Hour {
		return RateLimit{}, fmt.Errorf("rate limit %q: the window must be a duration from 100ms to 1h, e.g. 10s", s)
	}
	return RateLimit{Reads: reads, Window: window}, nil
}

// RateSecond is one second of the per-second series.
type RateSecond struct {
	// Second counts from the emulator's start (or the last ResetRateStats).
	Second    int `json:"second"`
	Reads     int `json:"reads"`     // vault requests served
	Throttled int `json:"throttled"` // vault requests answered 429 by the rate limit
}

// RateStats is what the rate limit saw since the emulator started or
// ResetRateStats was last called. Reads are counted whether or not a limit is
// set, so a run without one still reports its load.
type RateStats struct {
	// Limit is the budget, "N/10s" or "off".
	Limit string `json:"limit"`
	// Reads are vault requests served (authenticated, not throttled).
	Reads int64 `json:"reads"`
	// Throttled are vault requests answered 429 by the rate limit.
	Throttled int64 `json:"throttled"`
	// PeakWindowReads is the most requests served in one window, over
	// windows that start on a whole second; it never exceeds the limit.
	PeakWindowReads int `json:"peakWindowReads"`
	// PeakWindowRequests is the same for every request that counted against
	// the budget, served or throttled: the load the callers put on the vault.
	PeakWindowRequests int `json:"peakWindowRequests"`
	// FirstThrottle is when the first 429 went out, zero if none did.
	FirstThrottle time.Time `json:"firstThrottle,omitzero"`
	// PeakWindowRequestsAfterThrottle is PeakWindowRequests over the windows
	// that start at or after the first 429's second.
	PeakWindowRequestsAfterThrottle int `json:"peakWindowRequestsAfterThrottle"`
	// InsideRetryAfter counts requests from a caller that arrived after the
	// Retry-After it was given (plus the grace) and before that Retry-After
	// had passed: a caller that does not honour Retry-After. Callers are told
	// apart by the client id of their access token.
	InsideRetryAfter int64 `json:"insideRetryAfter"`
	// InFlightAtThrottle counts requests from a throttled caller that arrived
	// within the grace after its 429 was sent: reads it had already sent.
	InFlightAtThrottle int64 `json:"inFlightAtThrottle"`
	// Callers is the number of distinct client ids seen.
	Callers int `json:"callers"`
	// Seconds is the per-second series, oldest first (at most the last hour).
	Seconds []RateSecond `json:"seconds"`
	// Start is the time Second 0 begins.
	Start time.Time `json:"start"`
}

// callerState is what the limiter remembers about one client id.
type callerState struct {
	throttledAt time.Time // when the last 429 was sent to it
	until       time.Time // when that 429's Retry-After passes
}

// rateLimiter is the vault-wide budget and its counters; Emulator.mu guards it.
type rateLimiter struct {
	limit RateLimit
	grace time.Duration

	served []time.Time // times of served requests in the window, a ring of limit.Reads
	head   int         // index of the oldest
	n      int

	start   time.Time
	first   int // Second of the first entry in seconds
	seconds []RateSecond
	stats   RateStats
	callers map[string]*callerState
}

func newRateLimiter(l RateLimit, grace time.Duration, now time.Time) *rateLimiter {
	if l.Reads > 0 && l.Window <= 0 {
		l.Window = DefaultRateWindow
	}
	if grace <= 0 {
		grace = DefaultThrottleGrace
	}
	r := &rateLimiter{limit: l, grace: grace, callers: map[string]*callerState{}}
	if l.Reads > 0 {
		r.served = make([]time.Time, l.Reads)
	}
	r.reset(now)
	return r
}

func (r *rateLimiter) reset(now time.Time) {
	r.start = now
	r.first = 0
	r.seconds = nil
	r.stats = RateStats{}
	clear(r.callers)
}

// admit decides one authenticated vault request from caller at now. It
// returns 0 when the request may be served, else the Retry-After to send.
func (r *rateLimiter) admit(caller string, now time.Time) time.Duration {
	c := r.callers[caller]
	if c == nil {
		c = &callerState{}
		r.callers[caller] = c
	}
	if now.Before(c.until) {
		if now.Sub(c.throttledAt) <= r.grace {
			r.stats.InFlightAtThrottle++
		} else {
			r.stats.InsideRetryAfter++
		}
	}

	var wait time.Duration
	if r.limit.Reads > 0 {
		// Drop served requests that have left the window.
		for r.n > 0 && !now.Before(r.served[r.head].Add(r.limit.Window)) {
			r.head = (r.head + 1) % len(r.served)
			r.n--
		}
		if r.n == len(r.served) {
			wait = r.served[r.head].Add(r.limit.Window).Sub(now)
		} else {
			r.served[(r.head+r.n)%len(r.served)] = now
			r.n++
		}
	}

	sec := r.second(now)
	if wait > 0 {
		// Whole seconds, rounded up, so that a caller that waits exactly
		// Retry-After finds the budget free.
		secs := time.Duration(math.Ceil(wait.Seconds())) * time.Second
		c.throttledAt, c.until = now, now.Add(secs)
		sec.Throttled++
		r.stats.Throttled++
		if r.stats.FirstThrottle.IsZero() {
			r.stats.FirstThrottle = now
		}
		r.updatePeaks(sec.Second)
		return secs
	}
	sec.Reads++
	r.stats.Reads++
	r.updatePeaks(sec.Second)
	return 0
}

// second returns the series entry of now, adding entries (and dropping the
// oldest beyond an hour) as time passes.
func (r *rateLimiter) second(now time.Time) *RateSecond {
	s := max(int(now.Sub(r.start)/time.Second), 0)
	if len(r.seconds) == 0 {
		r.first = s
	}
	for r.first+len(r.seconds) <= s {
		r.seconds = append(r.seconds, RateSecond{Second: r.first + len(r.seconds)})
	}
	if over := len(r.seconds) - maxRateSeconds; over > 0 {
		r.seconds = append(r.seconds[:0], r.seconds[over:]...)
		r.first += over
	}
	if s < r.first {
		s = r.first // a clock that went back: count it in the oldest second kept
	}
	return &r.seconds[s-r.first]
}

// updatePeaks recomputes the windows that end with second s.
func (r *rateLimiter) updatePeaks(s int) {
	w := int(r.window() / time.Second)
	firstThrottle := -1
	if !r.stats.FirstThrottle.IsZero() {
		firstThrottle = int(r.stats.FirstThrottle.Sub(r.start) / time.Second)
	}
	// Every window [b, b+w) that contains s.
	for b := max(s-w+1, r.first); b <= s; b++ {
		reads, all := 0, 0
		for i := b; i < b+w && i-r.first < len(r.seconds); i++ {
			reads += r.seconds[i-r.first].Reads
			all += r.seconds[i-r.first].Reads + r.seconds[i-r.first].Throttled
		}
		r.stats.PeakWindowReads = max(r.stats.PeakWindowReads, reads)
		r.stats.PeakWindowRequests = max(r.stats.PeakWindowRequests, all)
		if firstThrottle >= 0 && b >= firstThrottle {
			r.stats.PeakWindowRequestsAfterThrottle = max(r.stats.PeakWindowRequestsAfterThrottle, all)
		}
	}
}

// window is the span peaks are measured over: the limit's window, or 10 s
// without a limit; at least one second.
func (r *rateLimiter) window() time.Duration {
	w := r.limit.Window
	if w <= 0 {
		w = DefaultRateWindow
	}
	return max(w, time.Second)
}

func (r *rateLimiter) snapshot() RateStats {
	s := r.stats
	s.Limit = r.limit.String()
	s.Callers = len(r.callers)
	s.Start = r.start
	s.Seconds = append([]RateSecond{}, r.seconds...)
	return s
}

// RateStats returns what the rate limit saw since Start or ResetRateStats.
func (e *Emulator) RateStats() RateStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rate.snapshot()
}

// ResetRateStats starts the counters, the peaks and the per-second series
// again from now. The budget itself (requests served in the current window)
// is kept: resetting a statistic must not hand out budget.
func (e *Emulator) ResetRateStats() {
	e.mu.Lock()
	e.rate.reset(e.now())
	e.mu.Unlock()
}

// throttle applies the rate limit to an authenticated vault request; it
// writes the 429 and returns its status when the budget is spent.
func (e *Emulator) throttle(w http.ResponseWriter, authz string) (int, bool) {
	caller := e.callerOf(authz)
	e.mu.Lock()
	wait := e.rate.admit(caller, e.now())
	e.mu.Unlock()
	if wait == 0 {
		return 0, false
	}
	secs := strconv.FormatInt(int64(wait/time.Second), 10)
	w.Header().Set("Retry-After", secs)
	// Key Vault's own 429 body: code Throttled, no inner error.
	return kvError(w, http.StatusTooManyRequests, "Throttled",
		"", "Request was not processed because too many requests were received. Try again in "+secs+" seconds. (kv-emulator rate limit "+e.rateLimitString()+")"), true
}

func (e *Emulator) rateLimitString() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rate.limit.String()
}

// callerOf is the client id of the bearer token in authz ("" if unknown),
// which tells the callers of a fleet apart.
func (e *Emulator) callerOf(authz string) string {
	tok, ok := strings.CutPrefix(authz, "Bearer ")
	if !ok {
		return ""
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tokens[tok].clientID
}
