package connlimit_test

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/custos-eu/custos/internal/connlimit"
)

func tcpAddr(ip string, port int) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: port} }

func TestCounterCapsEachAddress(t *testing.T) {
	c := connlimit.NewCounter(2)
	var releases []func()
	for port := range 2 {
		r, ok := c.Acquire(tcpAddr("192.0.2.1", 1000+port))
		if !ok {
			t.Fatalf("acquire %d refused under the cap", port)
		}
		releases = append(releases, r)
	}
	// The port does not matter, nor the IPv4-mapped form.
	if _, ok := c.Acquire(tcpAddr("::ffff:192.0.2.1", 9)); ok {
		t.Fatal("third acquire for one address allowed")
	}
	if got := c.Refused(); got != 1 {
		t.Errorf("Refused = %d, want 1", got)
	}
	other, ok := c.Acquire(tcpAddr("192.0.2.2", 1))
	if !ok {
		t.Fatal("another address refused")
	}
	if got := c.Count(tcpAddr("192.0.2.1", 0)); got != 2 {
		t.Errorf("Count = %d, want 2", got)
	}
	if got := c.Total(); got != 3 {
		t.Errorf("Total = %d, want 3", got)
	}
	releases[0]()
	releases[0]() // a second release does nothing
	if got := c.Count(tcpAddr("192.0.2.1", 0)); got != 1 {
		t.Errorf("Count after one release (twice) = %d, want 1", got)
	}
	if _, ok := c.Acquire(tcpAddr("192.0.2.1", 5)); !ok {
		t.Error("acquire after a release refused")
	}
	other()
	if got := c.Total(); got != 2 {
		t.Errorf("Total = %d, want 2", got)
	}
}

func TestCounterIgnoresNonIPAddresses(t *testing.T) {
	c := connlimit.NewCounter(1)
	unix := &net.UnixAddr{Name: "/run/x.sock", Net: "unix"}
	for range 3 {
		if _, ok := c.Acquire(unix); !ok {
			t.Fatal("unix address refused")
		}
	}
	if _, ok := c.Acquire(nil); !ok {
		t.Fatal("nil address refused")
	}
	if c.Total() != 0 || c.Refused() != 0 {
		t.Errorf("Total %d, Refused %d; want nothing counted", c.Total(), c.Refused())
	}
}

func TestCounterNoCap(t *testing.T) {
	c := connlimit.NewCounter(0)
	for i := range 100 {
		if _, ok := c.Acquire(tcpAddr("192.0.2.1", i)); !ok {
			t.Fatalf("acquire %d refused without a cap", i)
		}
	}
	if got := c.Total(); got != 100 {
		t.Errorf("Total = %d, want 100", got)
	}
}

// Many goroutines on few addresses: no address ever holds more than the cap,
// and every place is given back.
func TestCounterConcurrent(t *testing.T) {
	const max = 3
	c := connlimit.NewCounter(max)
	addrs := []net.Addr{tcpAddr("192.0.2.1", 1), tcpAddr("192.0.2.2", 1), tcpAddr("2001:db8::1", 1)}
	held := make([]atomic.Int32, len(addrs))
	var over atomic.Bool
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 500 {
				k := (g + i) % len(addrs)
				release, ok := c.Acquire(addrs[k])
				if !ok {
					continue
				}
				if held[k].Add(1) > max {
					over.Store(true)
				}
				held[k].Add(-1)
				release()
			}
		})
	}
	wg.Wait()
	if over.Load() {
		t.Error("an address held more than the cap")
	}
	if c.Total() != 0 {
		t.Errorf("Total = %d after every release, want 0", c.Total())
	}
	for _, a := range addrs {
		if n := c.Count(a); n != 0 {
			t.Errorf("Count(%v) = %d after every release", a, n)
		}
	}
}

// dialFrom dials addr from the loopback address local.
func dialFrom(t *testing.T, local, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", local, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// refusedAtDial dials addr from local and wants the connection closed by
// the server: a reset may already end the dial itself (the server accepted
// and reset it before the dialer looked), or come at the first read.
func refusedAtDial(t *testing.T, local, addr string) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if errors.Is(err, syscall.ECONNRESET) {
		return
	}
	if err != nil {
		t.Fatalf("dial from %s: %v", local, err)
	}
	defer c.Close()
	closedByServer(t, c)
}

// closedByServer waits (a safety bound, not a timing check) for c to be closed
// by the other end: EOF or a reset, not a timeout.
func closedByServer(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection from %v not closed by the server: %v", c.LocalAddr(), err)
	}
}

// A real TCP listener: the (cap+1)th connection from one address is closed at
// once, another address still gets in, Accept never stalls on the refused one,
// and closing a connection frees its place.
func TestListener(t *testing.T) {
	const max = 3
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := connlimit.NewListener(raw, max)
	defer ln.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	next := func(want string) net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			if c == nil {
				t.Fatal("listener closed")
			}
			if got := c.RemoteAddr().(*net.TCPAddr).IP.String(); got != want {
				t.Fatalf("accepted a connection from %s, want %s", got, want)
			}
			return c
		case <-time.After(10 * time.Second):
			t.Fatalf("no connection from %s accepted", want)
			return nil
		}
	}
	addr := raw.Addr().String()
	var mine []net.Conn
	for range max {
		dialFrom(t, "127.0.0.1", addr)
		mine = append(mine, next("127.0.0.1"))
	}
	refusedAtDial(t, "127.0.0.1", addr)
	if got := ln.Refused(); got != 1 {
		t.Errorf("Refused = %d, want 1", got)
	}
	dialFrom(t, "127.0.0.2", addr)
	next("127.0.0.2")
	if got := ln.Open(); got != max+1 {
		t.Errorf("Open = %d, want %d", got, max+1)
	}

	mine[0].Close()
	mine[0].Close()
	if got := ln.Open(); got != max {
		t.Errorf("Open after a close = %d, want %d", got, max)
	}
	dialFrom(t, "127.0.0.1", addr)
	next("127.0.0.1")
	if got := ln.Refused(); got != 1 {
		t.Errorf("Refused = %d, want still 1", got)
	}
}
