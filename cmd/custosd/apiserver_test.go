package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-eu/custos/internal/testwait"

	"github.com/custos-eu/custos/internal/connlimit"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/httpapi/httpapitest"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/nodecfg"
)

// -nonreading=300 measures what 300 non-reading clients hold, as in issue 14.
var nonReading = flag.Int("nonreading", 20, "clients of TestNonReadingClientsCutOff")

// apiEnv is an API server built as custosd builds it (listenAPI, apiServer),
// serving a test handler, and the TLS of its clients.
type apiEnv struct {
	srv    *http.Server
	ln     *connlimit.Listener
	addr   string
	client *tls.Config
	closed atomic.Int64 // connections the server closed (ConnState)
}

// serveAPI serves h with cfg (its Listen ignored: a free loopback port).
func serveAPI(t *testing.T, cfg nodecfg.APIListener, h http.Handler) *apiEnv {
	t.Helper()
	pki := httpapitest.NewPKI(t, "test")
	serverTLS, err := identity.ServerConfig(pki.Issue(t, identity.RoleNode, "n1", "DE"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = "127.0.0.1:0"
	ln, err := listenAPI(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &apiEnv{ln: ln, addr: ln.Addr().String(), client: pki.ClientTLS(t, pki.Issue(t, identity.RoleAgent, "a", "DE"))}
	e.srv = apiServer(cfg, h, serverTLS, slog.New(slog.DiscardHandler))
	e.srv.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			e.closed.Add(1)
		}
	}
	go e.srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { e.srv.Close() })
	return e
}

// dial opens a TLS connection from the loopback address from, offering
// protos (ALPN), with the handshake done.
func (e *apiEnv) dial(from string, protos ...string) (*tls.Conn, error) {
	conf := e.client.Clone()
	conf.NextProtos = protos
	d := tls.Dialer{NetDialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}, Config: conf}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", e.addr)
	if err != nil {
		return nil, err
	}
	return c.(*tls.Conn), nil
}

// apiDefaults is nodecfg's defaults, which Load fills in.
func apiDefaults() nodecfg.APIListener {
	d := func(v time.Duration) nodecfg.Duration { return nodecfg.Duration{Duration: v} }
	return nodecfg.APIListener{ReadHeaderTimeout: d(10 * time.Second), ReadTimeout: d(time.Minute),
		WriteTimeout: d(30 * time.Second), IdleTimeout: d(2 * time.Minute), MaxConnsPerIP: 512}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, 30*time.Second, what, cond) // a safety bound, not a timing check
}

// held is the goroutines and the heap and stack memory in use, after a GC.
func held() (goroutines int, bytes uint64) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return runtime.NumGoroutine(), m.HeapInuse + m.StackInuse
}

// h2Request starts HTTP/2 on c and sends GET path as stream 1, by hand: the
// client never reads, which no HTTP/2 client library allows. It opens its
// flow-control windows to the largest, so that only the socket buffers hold
// the server back.
func h2Request(c net.Conn, path string) error {
	frame := func(typ, flags byte, stream uint32, payload []byte) []byte {
		n := len(payload)
		b := []byte{byte(n >> 16), byte(n >> 8), byte(n), typ, flags,
			byte(stream >> 24), byte(stream >> 16), byte(stream >> 8), byte(stream)}
		return append(b, payload...)
	}
	// HPACK: :method GET, :scheme https (static table), :authority and
	// :path as literals with indexed names, without indexing.
	hdr := []byte{0x82, 0x87, 0x01, 1, 'x', 0x04, byte(len(path))}
	hdr = append(hdr, path...)
	msg := []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	const maxWindow = 1<<31 - 1
	u32 := func(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }
	msg = append(msg, frame(0x4, 0, 0, append([]byte{0, 4}, u32(maxWindow)...))...) // SETTINGS_INITIAL_WINDOW_SIZE
	msg = append(msg, frame(0x8, 0, 0, u32(maxWindow-65535))...)                    // WINDOW_UPDATE of the connection
	msg = append(msg, frame(0x1, 0x5, 1, hdr)...)                                   // HEADERS, END_STREAM|END_HEADERS
	_, err := c.Write(msg)
	return err
}

// A client that asks for an answer larger than the socket buffers and never
// reads it is cut off after WriteTimeout: the handler's writes fail, it
// returns, the server closes the connection and the goroutines settle back.
// Over HTTP/2 WriteTimeout resets the stream; the connection, idle then, is
// closed after IdleTimeout (1 s here).
func TestNonReadingClientsCutOff(t *testing.T) {
	for _, proto := range []string{"http/1.1", "h2"} {
		t.Run(proto, func(t *testing.T) {
			n := *nonReading
			var entered, returned, failed atomic.Int64
			chunk := make([]byte, 64<<10)
			big := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				entered.Add(1)
				defer returned.Add(1)
				for range 1 << 12 { // up to 256 MiB, far more than the buffers
					if _, err := w.Write(chunk); err != nil {
						failed.Add(1)
						return
					}
				}
			})
			cfg := apiDefaults()
			// Long enough for every client to be connected and blocked before
			// the first cut-off, so that the figures show what they hold.
			cfg.WriteTimeout.Duration = time.Second + time.Duration(n)*20*time.Millisecond
			cfg.IdleTimeout.Duration = time.Second
			e := serveAPI(t, cfg, big)

			g0, b0 := held()
			var conns []*tls.Conn
			t.Cleanup(func() {
				for _, c := range conns {
					c.Close()
				}
			})
			for i := range n {
				c, err := e.dial("127.0.0.1", proto)
				if err != nil {
					t.Fatalf("client %d: %v", i, err)
				}
				conns = append(conns, c)
				if got := c.ConnectionState().NegotiatedProtocol; got != proto && !(proto == "http/1.1" && got == "") {
					t.Fatalf("negotiated %q, want %q", got, proto)
				}
				if proto == "h2" {
					err = h2Request(c, "/big")
				} else {
					_, err = io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			waitUntil(t, "every handler to start", func() bool { return entered.Load() == int64(n) })
			g1, b1 := held()
			early := returned.Load()

			waitUntil(t, "every handler to return", func() bool { return returned.Load() == int64(n) })
			if f := failed.Load(); f != int64(n) {
				t.Errorf("%d of %d handlers saw their writes fail; the others wrote 256 MiB into a client that reads nothing", f, n)
			}
			waitUntil(t, "the server to close every connection", func() bool { return e.closed.Load() == int64(n) && e.ln.Open() == 0 })
			var g2 int
			var b2 uint64
			waitUntil(t, "the goroutines to settle", func() bool { g2, b2 = held(); return g2 <= g0+2 })
			for _, c := range conns {
				c.SetReadDeadline(time.Now().Add(30 * time.Second))
				if _, err := io.Copy(io.Discard, c); isTimeout(err) {
					t.Fatalf("connection %v still open: %v", c.LocalAddr(), err)
				}
				c.Close()
			}
			conns = nil
			g3, b3 := held()
			// The clients run in this process: their connections' memory is in
			// every figure until they are closed. What the server held is what
			// the cut-off freed (b1-b2); clients hold no goroutines.
			t.Logf("%d non-reading %s clients: the server held %+d goroutines and %.1f MiB (heap and stacks) while their "+
				"answers were blocked (without a WriteTimeout, for good; %d cut off before this count); after the cut-off "+
				"(WriteTimeout %s) and the clients' close: %+d goroutines, %+.1f MiB against before the clients",
				n, proto, g1-g0, mib(b1, b2), early, cfg.WriteTimeout.Duration, g3-g0, mib(b3, b0))
		})
	}
}

func mib(b, base uint64) float64 { return (float64(b) - float64(base)) / (1 << 20) }

// The (cap+1)th connection from one address is closed at accept, before any
// TLS; another address still connects; closing a connection frees its place.
func TestAPIConnectionsCappedPerAddress(t *testing.T) {
	const max = 3
	cfg := apiDefaults()
	cfg.MaxConnsPerIP = max
	e := serveAPI(t, cfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	get := func(c *tls.Conn) error {
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 200") || !strings.HasSuffix(string(buf[:n]), "ok") {
			return fmt.Errorf("answer %q", buf[:n])
		}
		return nil
	}
	var mine []*tls.Conn
	for i := range max {
		c, err := e.dial("127.0.0.1")
		if err == nil {
			err = get(c)
		}
		if err != nil {
			t.Fatalf("connection %d of %d: %v", i+1, max, err)
		}
		defer c.Close()
		mine = append(mine, c)
	}
	if c, err := e.dial("127.0.0.1"); err == nil {
		c.Close()
		t.Fatalf("connection %d from one address accepted", max+1)
	} else {
		t.Logf("connection %d refused: %v", max+1, err)
	}
	other, err := e.dial("127.0.0.2")
	if err == nil {
		err = get(other)
	}
	if err != nil {
		t.Fatalf("another address refused: %v", err)
	}
	other.Close()

	mine[0].Close()
	waitUntil(t, "the closed connection's place to be freed", func() bool { return e.ln.Open() == max-1 })
	c, err := e.dial("127.0.0.1")
	if err == nil {
		err = get(c)
	}
	if err != nil {
		t.Fatalf("after a close: %v", err)
	}
	c.Close()

	// The listener's figures reach /metrics.
	mfs, err := apiRegistry(e.ln).Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				got[mf.GetName()] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[mf.GetName()] = m.GetGauge().GetValue()
			}
		}
	}
	if got["custos_http_connections_refused_total"] != 1 {
		t.Errorf("custos_http_connections_refused_total = %v, want 1", got["custos_http_connections_refused_total"])
	}
	if v, ok := got["custos_http_open_connections"]; !ok || v < 1 {
		t.Errorf("custos_http_open_connections = %v (present %v)", v, ok)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// A daemon applies its configuration's connection limits: api.max_conns_per_ip
// on the API port, raft.max_handshakes_per_ip and raft.first_bytes_timeout on
// the raft port.
func TestDaemonConnectionLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a daemon")
	}
	n, cfg, pki := startOneNode(t, func(cfg *nodecfg.Config) {
		cfg.API.MaxConnsPerIP = 2
		cfg.Raft.MaxHandshakesPerIP = 1
		cfg.Raft.FirstBytesTimeout.Duration = time.Hour // idle raft connections stay for the test
	})
	ops, err := client.New(client.Config{Endpoints: []string{n.api}, TLSFiles: pki.Issue(t, identity.RoleOperator, "ops", "DE"),
		Timeout: 10 * time.Second, MaxIdleConnsPerHost: 1})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, func() error { _, err := ops.Canary(context.Background()); return err })
	ops.Close()
	if !strings.Contains(n.log.String(), `"first_bytes_timeout":3600000000000,"max_handshakes_per_ip":1`) {
		t.Error("the raft configuration logged at open lacks raft.first_bytes_timeout and raft.max_handshakes_per_ip")
	}

	// API: two connections, not three.
	agent := pki.ClientTLS(t, pki.Issue(t, identity.RoleAgent, "a", "DE"))
	e := &apiEnv{addr: cfg.API.Listen, client: agent}
	waitFor(t, 10*time.Second, func() error { // the operator's connection closes
		var conns []*tls.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for i := range 2 {
			c, err := e.dial("127.0.0.1")
			if err != nil {
				return fmt.Errorf("connection %d: %w", i+1, err)
			}
			conns = append(conns, c)
		}
		if c, err := e.dial("127.0.0.1"); err == nil {
			c.Close()
			t.Fatal("a third API connection from one address was accepted")
		}
		return nil
	})

	// Raft: one idle connection holds the address's only handshake place;
	// the next is closed at once.
	first, err := net.Dial("tcp", cfg.Raft.Listen)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	waitFor(t, 10*time.Second, func() error {
		second, err := net.Dial("tcp", cfg.Raft.Listen)
		if err != nil {
			return nil // reset while connecting: refused
		}
		defer second.Close()
		second.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := second.Read(make([]byte, 1)); isTimeout(err) {
			return errors.New("a second idle raft connection from one address is kept")
		}
		return nil
	})
	first.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := first.Read(make([]byte, 1)); !isTimeout(err) {
		t.Errorf("the first idle raft connection was closed: %v", err)
	}
}
