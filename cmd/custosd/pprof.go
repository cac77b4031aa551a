package main

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"
)

// servePprof serves Go's profiler on CUSTOS_PPROF_ADDR when it is set: a
// loopback address only (it is unauthenticated), for operators and
// benchmarks profiling a node. Profiles hold no key material, but goroutine
// dumps show request paths and identities, so it stays off by default.
func servePprof(log *slog.Logger) {
	addr := os.Getenv("CUSTOS_PPROF_ADDR")
	if addr == "" {
		return
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		log.Error("custosd: CUSTOS_PPROF_ADDR must be a loopback host:port; profiler not started", slog.String("addr", addr))
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr) // port 0: any free port, logged
	if err != nil {
		log.Error("custosd: profiler", slog.Any("err", err))
		return
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Info("custosd: profiler listening", slog.String("addr", ln.Addr().String()))
	go func() { _ = srv.Serve(ln) }()
}
