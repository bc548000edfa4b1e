package kvemulator

import "time"

// SetTokenClock replaces the clock of token lifetimes, so a test can expire a
// token without waiting an hour.
func SetTokenClock(e *Emulator, now func() time.Time) {
	e.mu.Lock()
	e.tokenNow = now
	e.mu.Unlock()
}
