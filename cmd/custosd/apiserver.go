// The API's listener and server, built from the node configuration: its
// timeouts, its cap on connections per client address, and the listener's
// figures in /metrics.

package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/custos-eu/custos/internal/connlimit"
	"github.com/custos-eu/custos/keysvc/nodecfg"
)

// listenAPI listens on c.Listen with at most c.MaxConnsPerIP connections open
// per client IP address: one more is closed at accept, and the others go on
// being served.
func listenAPI(c nodecfg.APIListener) (*connlimit.Listener, error) {
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return nil, fmt.Errorf("api listen: %w", err)
	}
	return connlimit.NewListener(ln, c.MaxConnsPerIP), nil
}

// apiServer is the API's server: h over tc (served with ServeTLS, so HTTP/1.1
// and HTTP/2) with c's timeouts. WriteTimeout cuts off a client that does not
// read its answer: over HTTP/1.1, counted from the end of a request's headers,
// the handler's writes fail, it returns and the connection is closed; over
// HTTP/2 it resets the stream, and WriteByteTimeout, set to it too, closes a
// connection on which nothing could be written for that long, since a client
// with open flow-control windows can otherwise block the connection's writer,
// and the reset with it.
func apiServer(c nodecfg.APIListener, h http.Handler, tc *tls.Config, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		TLSConfig:         tc,
		ReadHeaderTimeout: c.ReadHeaderTimeout.Duration,
		ReadTimeout:       c.ReadTimeout.Duration,
		WriteTimeout:      c.WriteTimeout.Duration,
		IdleTimeout:       c.IdleTimeout.Duration,
		HTTP2:             &http.HTTP2Config{WriteByteTimeout: c.WriteTimeout.Duration},
		MaxHeaderBytes:    64 << 10,
		// TLS handshake failures (a client without a valid certificate) are
		// worth seeing, not worth an error.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelInfo),
	}
}

// apiRegistry is the registry GET /metrics serves: the Go runtime and process
// collectors (what httpapi adds to a registry of its own) and the API
// listener's connections.
func apiRegistry(ln *connlimit.Listener) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "custos_http_open_connections",
			Help: "API connections open: accepted and not yet closed.",
		}, func() float64 { return float64(ln.Open()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "custos_http_connections_refused_total",
			Help: "API connections closed at accept because their IP address had api.max_conns_per_ip open.",
		}, func() float64 { return float64(ln.Refused()) }),
	)
	return reg
}
