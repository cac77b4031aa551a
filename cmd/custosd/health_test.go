package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// switchable is a readiness an attacker's test can flip.
type switchable struct{ notReady atomic.Pointer[string] }

func (s *switchable) Ready() error {
	if p := s.notReady.Load(); p != nil {
		return errors.New(*p)
	}
	return nil
}

func (s *switchable) set(reason string) {
	if reason == "" {
		s.notReady.Store(nil)
		return
	}
	s.notReady.Store(&reason)
}

// startHealth serves r on a loopback port with lim and returns its address.
func startHealth(t *testing.T, r readiness, lim healthLimits) string {
	t.Helper()
	fatal := make(chan error, 1)
	srv, addr, err := serveHealth("127.0.0.1:0", r, lim, slog.New(slog.DiscardHandler), fatal)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Close()
		select {
		case err := <-fatal:
			t.Errorf("health server: %v", err)
		default:
		}
	})
	return addr.String()
}

func get(t *testing.T, method, url string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// The health listener answers only /livez and /readyz, with GET or HEAD;
// /readyz follows readiness both ways; no body or header carries the
// reason or any cluster detail.
func TestHealthEndpoints(t *testing.T) {
	secret := "no leader known (raft state Follower) node-7 at 10.1.2.3:8201 leader node-2 log 4711"
	r := &switchable{}
	base := "http://" + startHealth(t, r, defaultHealthLimits)

	check := func(method, path string, wantStatus int, wantBody string) {
		t.Helper()
		status, h, body := get(t, method, base+path)
		if status != wantStatus || body != wantBody {
			t.Errorf("%s %s: %d %q, want %d %q", method, path, status, body, wantStatus, wantBody)
		}
		all := body
		for k, v := range h {
			all += k + ": " + strings.Join(v, ",") + "\n"
		}
		for _, leak := range []string{"node-", "10.1.2.3", "8201", "leader", "raft", "4711", "Follower"} {
			if strings.Contains(all, leak) {
				t.Errorf("%s %s leaks %q:\n%s", method, path, leak, all)
			}
		}
	}
	check("GET", "/livez", 200, "ok\n")
	check("GET", "/readyz", 200, "ready\n")
	check("HEAD", "/readyz", 200, "")
	r.set(secret)
	check("GET", "/readyz", 503, "not ready\n")
	check("HEAD", "/readyz", 503, "")
	check("GET", "/livez", 200, "ok\n") // alive, if not ready
	r.set("")
	check("GET", "/readyz", 200, "ready\n")

	r.set(secret)
	for _, p := range []string{"/", "/v1/sys/health", "/v1/sys/cluster", "/metrics", "/readyz/", "/livez/x", "/READYZ",
		"/debug/pprof/", "/readyz/../v1/sys/cluster", "//readyz", "/%72eadyz/.."} {
		check("GET", p, 404, "not found\n")
	}
	for _, m := range []string{"POST", "PUT", "DELETE", "OPTIONS", "PATCH"} {
		status, h, _ := get(t, m, base+"/readyz")
		if status != 405 || h.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s /readyz: %d, Allow %q; want 405, GET, HEAD", m, status, h.Get("Allow"))
		}
	}
	// A raw request with an absolute URI and a query reaches the same handler.
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET http://evil.example/readyz?verbose=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || string(b) != "not ready\n" {
		t.Errorf("absolute-URI /readyz?verbose=1: %d %q", resp.StatusCode, b)
	}
}

// A client that sends half a request, or holds connections open, cannot
// keep the listener from others: its connection is closed after the
// header timeout, and one address holds at most MaxConnsPerIP.
func TestHealthSlowClients(t *testing.T) {
	lim := healthLimits{ReadHeaderTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond,
		WriteTimeout: 200 * time.Millisecond, IdleTimeout: 200 * time.Millisecond, MaxConnsPerIP: 3}
	addr := startHealth(t, &switchable{}, lim)

	// Half a request: the server closes the connection (bounded wait, not timed).
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /readyz HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadAll(c); isTimeout(err) {
		t.Fatal("a connection with an unfinished request was held for 30s")
	}

	// An idle keep-alive connection is closed too.
	k, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	io.WriteString(k, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(k)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("keep-alive request: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	k.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadAll(br); isTimeout(err) {
		t.Fatal("an idle keep-alive connection was held for 30s")
	}

	// The cap: with 3 connections held (each sending a byte now and then
	// would not help: the header timeout ends them), a 4th from the same
	// address is closed at accept.
	big := healthLimits{ReadHeaderTimeout: time.Hour, ReadTimeout: time.Hour, WriteTimeout: time.Hour, IdleTimeout: time.Hour, MaxConnsPerIP: 3}
	addr = startHealth(t, &switchable{}, big)
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	waitFor(t, 10*time.Second, func() error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return nil // reset while connecting: refused
		}
		defer c.Close()
		io.WriteString(c, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil || isTimeout(err) {
			return fmt.Errorf("a 4th connection from one address was served or kept (%v)", err)
		}
		return nil
	})
	held[0].Close()
	held = held[1:]
	waitFor(t, 10*time.Second, func() error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		io.WriteString(c, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}

// With [health] addr unset nothing listens.
func TestHealthOffWhenUnset(t *testing.T) {
	srv, addr, err := serveHealth("", &switchable{}, defaultHealthLimits, slog.New(slog.DiscardHandler), make(chan error, 1))
	if srv != nil || addr != nil || err != nil {
		t.Fatalf("unset addr: server %v at %v, err %v", srv, addr, err)
	}
	// A busy address is a configuration error naming the setting.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, _, err = serveHealth(l.Addr().String(), &switchable{}, defaultHealthLimits, slog.New(slog.DiscardHandler), make(chan error, 1))
	var ce *configError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "health.addr") {
		t.Fatalf("busy address: %v", err)
	}
}
