package config

import "time"

// Refresh tunes the refresher.
type Refresh struct {
	Interval      Duration `yaml:"interval"`
	Jitter        float64  `yaml:"jitter"`
	MinInterval   Duration `yaml:"minInterval"`
	MaxStale      Duration `yaml:"maxStale"`
	RefuseExpired bool     `yaml:"refuseExpired"`
}

// maxInterval bounds refresh.interval: a day between reads is already long for a secret.
const maxInterval = 24 * time.Hour

// validate checks the refresh section.
func (r Refresh) validate(ps *Problems) {
	switch {
	case r.Interval.D() < time.Second:
		ps.add("refresh.interval", "must be at least 1s, got %s", r.Interval.D())
	case r.Interval.D() > maxInterval:
		ps.add("refresh.interval", "must be at most %s (a day), got %s", maxInterval, r.Interval.D())
	}
	// Written so that NaN, which fails every comparison, fails it too.
	if !(r.Jitter >= 0 && r.Jitter < 1) {
		ps.add("refresh.jitter", "must be a number in [0, 1), got %v", r.Jitter)
	}
	if r.MinInterval.D() <= 0 {
		ps.add("refresh.minInterval", "must be positive, got %s", r.MinInterval.D())
	} else if r.Interval.D() >= time.Second && r.MinInterval.D() > r.Interval.D() {
		ps.add("refresh.minInterval", "must not exceed refresh.interval (%s), got %s", r.Interval.D(), r.MinInterval.D())
	}
	switch {
	case r.MaxStale.D() < 0:
		ps.add("refresh.maxStale", "must be 0 (serve stale for ever) or positive, got %s", r.MaxStale.D())
	case r.MaxStale.D() > 0 && r.MaxStale.D() <= r.Interval.D():
		// A value is stale only after a refresh failed, and the refresh
		// comes up to one interval after the last success (jitter only
		// shortens it): a maxStale within that serves nothing stale at all,
		// and every vault hiccup makes the pod unready at once.
		ps.add("refresh.maxStale", "%s leaves no stale window: it must exceed refresh.interval (%s), or be 0 (serve stale for ever)", r.MaxStale.D(), r.Interval.D())
	}
}
