package main

import "testing"

func TestPprofAddrLoopbackOnly(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:6060", true},
		{"127.0.0.1:0", true},
		{"[::1]:6060", true},
		{"0.0.0.0:6060", false},
		{":6060", false},
		{"10.0.0.5:6060", false},
		{"localhost:6060", false}, // a name could resolve anywhere
		{"127.0.0.1", false},
	} {
		err := checkPprofAddr(tc.addr)
		if (err == nil) != tc.ok {
			t.Errorf("checkPprofAddr(%q) = %v, want ok=%v", tc.addr, err, tc.ok)
		}
	}
}
