package main

import (
	"runtime/debug"
	"testing"
)

func TestTuneRuntimeGOGC(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want int
	}{
		{"binary's choice", nil, gcPercent},
		{"operator's GOGC wins", map[string]string{"GOGC": "50"}, 77},
		{"operator's GOGC=off wins", map[string]string{"GOGC": "off"}, 77},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// 77 stands for whatever the runtime took from the environment.
			old := debug.SetGCPercent(77)
			defer debug.SetGCPercent(old)
			tuneRuntime(func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
			if got := debug.SetGCPercent(77); got != tc.want {
				t.Errorf("GC percent = %d, want %d", got, tc.want)
			}
		})
	}
}
