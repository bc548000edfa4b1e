package main

import (
	"fmt"
	"net"
)

// checkPprofAddr accepts only a loopback host:port for the profiling switch of
// a `-tags pprof` build (pprof.go): a profile shows memory that may hold
// secret values. It lives outside the tagged file so that the default build's
// tests cover it.
func checkPprofAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("SECRETPROXY_PPROF=%q is not host:port: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("SECRETPROXY_PPROF=%q is not a loopback address: use 127.0.0.1:PORT", addr)
	}
	return nil
}
