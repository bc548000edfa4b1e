package clock

import (
	"testing"
	"time"
)

func fired(t Timer) bool {
	select {
	case <-t.C():
		return true
	default:
		return false
	}
}

func TestFake(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := NewFake(start)
	created := f.TimerCreated()
	a := f.NewTimer(10 * time.Second)
	b := f.NewTimer(30 * time.Second)
	c := f.NewTimer(20 * time.Second)
	select {
	case <-created:
	default:
		t.Fatal("TimerCreated not closed by NewTimer")
	}
	if next, ok := f.NextDeadline(); !ok || !next.Equal(start.Add(10*time.Second)) {
		t.Errorf("NextDeadline = %v %v, want +10s", next, ok)
	}
	if !c.Stop() || c.Stop() {
		t.Error("Stop of a pending timer must report true once")
	}
	f.Advance(9 * time.Second)
	if fired(a) || fired(b) {
		t.Fatal("a timer fired early")
	}
	f.Advance(time.Second)
	if !fired(a) || fired(b) {
		t.Fatal("want exactly the 10 s timer fired at +10s")
	}
	if got := f.Now(); !got.Equal(start.Add(10 * time.Second)) {
		t.Errorf("Now = %v", got)
	}
	if f.Pending() != 1 {
		t.Errorf("Pending = %d, want 1", f.Pending())
	}
	f.Advance(time.Hour)
	if !fired(b) || fired(c) {
		t.Error("want the 30 s timer fired and the stopped one not")
	}
	if z := f.NewTimer(0); !fired(z) {
		t.Error("a zero timer must fire at once")
	}
}
