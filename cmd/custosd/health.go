// The health listener for load balancers and probes: plain HTTP, no
// authentication, bound to [health] addr, serving only GET /livez and
// GET /readyz with a one-word body. It says nothing of the cluster (no
// node ids, leader, addresses or sizes): the mTLS GET /v1/sys/health on the
// API is the detailed check.

package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/custos-eu/custos/internal/connlimit"
)

// healthLimits are the health listener's bounds. Its requests are tiny and
// answered at once, so the bounds are tight: a client that does not finish
// its request, or does not read its answer, is cut off within seconds, and
// one address holds at most MaxConnsPerIP connections (a load balancer
// keeping a few alive is well under it).
type healthLimits struct {
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	MaxConnsPerIP                                             int
}

var defaultHealthLimits = healthLimits{
	ReadHeaderTimeout: 2 * time.Second,
	ReadTimeout:       5 * time.Second,
	WriteTimeout:      5 * time.Second,
	IdleTimeout:       30 * time.Second,
	MaxConnsPerIP:     32,
}

// readiness is what /readyz asks: *keysvc.Node's Ready, the check the mTLS
// /v1/sys/health answers with.
type readiness interface{ Ready() error }

// healthHandler answers GET or HEAD /livez (200 while the process serves)
// and /readyz (200 when r is ready, else 503). Any other path is 404 and
// any other method on those paths 405. Bodies are "ok", "ready" or "not
// ready" and never say why: the reason names raft states and indexes, which
// are for the authenticated health check.
func healthHandler(r readiness) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		var status int
		var body string
		switch req.URL.Path {
		case "/livez":
			status, body = http.StatusOK, "ok\n"
		case "/readyz":
			status, body = http.StatusOK, "ready\n"
			if r.Ready() != nil {
				status, body = http.StatusServiceUnavailable, "not ready\n"
			}
		default:
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.WriteHeader(status)
		if req.Method == http.MethodGet {
			_, _ = io.WriteString(w, body)
		}
	})
}

// healthServer is the health listener's server: HTTP/1.1 only, the limits'
// timeouts, small headers.
func healthServer(h http.Handler, lim healthLimits, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// serveHealth listens on addr and serves r's health there until Shutdown.
// An empty addr serves nothing and returns a nil server.
func serveHealth(addr string, r readiness, lim healthLimits, log *slog.Logger, fatal chan<- error) (*http.Server, net.Addr, error) {
	if addr == "" {
		return nil, nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, &configError{fmt.Errorf("health.addr %q: %w", addr, err)}
	}
	srv := healthServer(healthHandler(r), lim, log)
	go func() {
		if err := srv.Serve(connlimit.NewListener(ln, lim.MaxConnsPerIP)); !errors.Is(err, http.ErrServerClosed) {
			fatal <- fmt.Errorf("health server: %w", err)
		}
	}()
	log.Info("custosd: serving health for load balancers (GET /livez, /readyz)", slog.String("listen", ln.Addr().String()))
	return srv, ln.Addr(), nil
}
