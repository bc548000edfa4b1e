//go:build pprof

package main

// The profiling switch of docs/benchmarks.md. It exists only in a binary built
// with `-tags pprof` (never in `make build`, the images or the e2e tests), so a
// production sidecar carries neither net/http/pprof nor a debug listener. In
// such a binary, SECRETPROXY_PPROF=127.0.0.1:PORT serves /debug/pprof/ on that
// loopback address; any other host is refused, because a profile shows memory
// that may hold secret values.

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
)

func init() {
	addr := os.Getenv("SECRETPROXY_PPROF")
	if addr == "" {
		return
	}
	if err := servePprof(addr); err != nil {
		fmt.Fprintf(os.Stderr, "secret-proxy: SECRETPROXY_PPROF: %v\n", err)
		os.Exit(2)
	}
}

func servePprof(addr string) error {
	if err := checkPprofAddr(addr); err != nil {
		return err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	fmt.Fprintf(os.Stderr, "secret-proxy: pprof on http://%s/debug/pprof/ (a -tags pprof build)\n", l.Addr())
	go func() { _ = http.Serve(l, mux) }()
	return nil
}
