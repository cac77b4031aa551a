// Package connlimit caps what one client IP address may hold on a server: a
// Counter counts anything per address (open connections, handshakes in
// progress) up to a cap, and a Listener uses one to close, at accept, the
// connection that would pass it.
//
//	ln, err := net.Listen("tcp", addr)
//	capped := connlimit.NewListener(ln, 256) // at most 256 open connections per IP
//	err = srv.Serve(capped)
//
// Addresses are compared as IPs, ports ignored; an IPv4-mapped IPv6 address
// counts as its IPv4 address. A remote address that is not an IP (a Unix
// socket, a pipe) is never counted nor refused. Each IPv6 address counts
// alone: a client holding a whole prefix is bounded only by the caller's
// other limits.
package connlimit

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Counter counts, per IP address, things in progress, up to a cap. It is safe
// for concurrent use.
type Counter struct {
	max     int
	mu      sync.Mutex
	n       map[netip.Addr]int
	total   atomic.Int64
	refused atomic.Uint64
}

// NewCounter returns a Counter allowing max at once per IP address; max < 1
// means no cap (everything is still counted).
func NewCounter(max int) *Counter {
	return &Counter{max: max, n: make(map[netip.Addr]int)}
}

// Acquire counts one more for the IP of addr. At the cap it counts a refusal
// and returns ok false; otherwise release uncounts it: call it once the thing
// ends (later calls do nothing).
func (c *Counter) Acquire(addr net.Addr) (release func(), ok bool) {
	ip, counted := ipOf(addr)
	if !counted {
		return func() {}, true
	}
	c.mu.Lock()
	if c.max > 0 && c.n[ip] >= c.max {
		c.mu.Unlock()
		c.refused.Add(1)
		return nil, false
	}
	c.n[ip]++
	c.mu.Unlock()
	c.total.Add(1)
	var once atomic.Bool
	return func() {
		if once.Swap(true) {
			return
		}
		c.mu.Lock()
		if c.n[ip]--; c.n[ip] <= 0 {
			delete(c.n, ip)
		}
		c.mu.Unlock()
		c.total.Add(-1)
	}, true
}

// Count returns how many are counted for the IP of addr now.
func (c *Counter) Count(addr net.Addr) int {
	ip, ok := ipOf(addr)
	if !ok {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[ip]
}

// Total returns how many are counted now, all addresses together.
func (c *Counter) Total() int { return int(c.total.Load()) }

// Refused returns how many Acquire calls were refused so far.
func (c *Counter) Refused() uint64 { return c.refused.Load() }

// ipOf is the IP of a TCP (or other IP:port) address, unmapped.
func ipOf(addr net.Addr) (netip.Addr, bool) {
	switch a := addr.(type) {
	case nil:
		return netip.Addr{}, false
	case *net.TCPAddr:
		ip, ok := netip.AddrFromSlice(a.IP)
		return ip.Unmap(), ok
	}
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// Listener is a net.Listener whose Accept returns only connections whose IP
// address has fewer than its cap open (accepted and not yet closed): a
// connection over the cap is closed at once, unread, and counted in Refused,
// and Accept goes on to the next one, so one address never holds up the
// others. Closing a returned connection frees its place. Safe for concurrent
// use, like the listener it wraps.
type Listener struct {
	net.Listener
	open *Counter
}

// NewListener wraps l with a cap of max open connections per IP address (max <
// 1: no cap, connections still counted).
func NewListener(l net.Listener, max int) *Listener {
	return &Listener{Listener: l, open: NewCounter(max)}
}

// Accept waits for the next connection within the cap. Errors are the wrapped
// listener's.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		release, ok := l.open.Acquire(c.RemoteAddr())
		if !ok {
			Refuse(c)
			continue
		}
		return &conn{Conn: c, release: release}, nil
	}
}

// Open returns how many accepted connections are not closed yet.
func (l *Listener) Open() int { return l.open.Total() }

// Refused returns how many connections were closed at accept for their
// address's cap.
func (l *Listener) Refused() uint64 { return l.open.Refused() }

// Refuse closes c without reading it. A TCP connection is reset rather than
// closed gracefully, so a flood of refusals leaves no TIME_WAIT sockets behind.
func Refuse(c net.Conn) {
	if tc, ok := c.(interface{ SetLinger(int) error }); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// conn frees its place in the count when closed.
type conn struct {
	net.Conn
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}
