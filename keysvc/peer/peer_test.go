package peer_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/peer"
)

// pipeConn is one end of a net.Pipe certified as id.
type pipeConn struct {
	net.Conn
	id string
}

func (c pipeConn) NodeID() string { return c.id }

// pipeNet is an in-memory network: listeners by address, each connection
// certified as the dialling node on the server side and as the listener's
// node on the client side.
type pipeNet struct {
	mu sync.Mutex
	ls map[string]*pipeListener
}

type pipeListener struct {
	id    string
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr { return &net.UnixAddr{Name: l.id} }

func (n *pipeNet) listen(addr, id string) *pipeListener {
	n.mu.Lock()
	defer n.mu.Unlock()
	l := &pipeListener{id: id, conns: make(chan net.Conn), done: make(chan struct{})}
	n.ls[addr] = l
	return l
}

func (n *pipeNet) dialer(from string) peer.Dialer {
	return func(ctx context.Context, addr string) (peer.Conn, error) {
		n.mu.Lock()
		l := n.ls[addr]
		n.mu.Unlock()
		if l == nil {
			return nil, errors.New("no one there")
		}
		a, b := net.Pipe()
		select {
		case l.conns <- pipeConn{b, from}:
			return pipeConn{a, l.id}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

var errNope = errors.New("nope")

func setup(t *testing.T) (*pipeNet, *peer.Client) {
	t.Helper()
	pn := &pipeNet{ls: map[string]*pipeListener{}}
	l := pn.listen("10.0.0.2:7000", "n2")
	srv := peer.Serve(l, map[string]peer.Handler{
		"echo": func(ctx context.Context, from string, body []byte) (any, error) {
			var in map[string]string
			if err := json.Unmarshal(body, &in); err != nil {
				return nil, err
			}
			in["from"] = from
			return in, nil
		},
		"fail": func(context.Context, string, []byte) (any, error) { return nil, errNope },
	}, func(err error) peer.Answer {
		if errors.Is(err, errNope) {
			return peer.Answer{Code: "nope", Message: "refused", LeaderID: "n3"}
		}
		return peer.Answer{Code: "internal", Message: err.Error()}
	}, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { srv.Close() })
	cli := peer.NewClient(pn.dialer("n1"))
	t.Cleanup(cli.Close)
	return pn, cli
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestCallNamesTheCaller: the handler sees the certified caller, never one
// the message names.
func TestCallNamesTheCaller(t *testing.T) {
	_, cli := setup(t)
	var out map[string]string
	if err := cli.Call(ctxT(t), "n2", "10.0.0.2:7000", "echo", map[string]string{"from": "n9", "x": "1"}, &out); err != nil {
		t.Fatal(err)
	}
	if out["from"] != "n1" || out["x"] != "1" {
		t.Errorf("answer %v, want from n1", out)
	}
}

// TestRefusalsKeepTheirCode: a handler's refusal reaches the caller as an
// *Error with its code; an unknown call is refused.
func TestRefusalsKeepTheirCode(t *testing.T) {
	_, cli := setup(t)
	err := cli.Call(ctxT(t), "n2", "10.0.0.2:7000", "fail", struct{}{}, nil)
	var pe *peer.Error
	if !errors.As(err, &pe) || pe.Code != "nope" || pe.LeaderID != "n3" || pe.Node != "n2" {
		t.Errorf("fail: %v", err)
	}
	err = cli.Call(ctxT(t), "n2", "10.0.0.2:7000", "nosuch", struct{}{}, nil)
	if !errors.As(err, &pe) || pe.Code != "unknown_call" {
		t.Errorf("unknown call: %v", err)
	}
}

// TestClientChecksWhoAnswers: a node at the address that is not the node
// meant is refused before anything is sent.
func TestClientChecksWhoAnswers(t *testing.T) {
	_, cli := setup(t)
	err := cli.Call(ctxT(t), "n3", "10.0.0.2:7000", "echo", map[string]string{}, nil)
	var pe *peer.Error
	if !errors.As(err, &pe) || pe.Code != "" || !strings.Contains(err.Error(), `is node "n2", not "n3"`) {
		t.Errorf("call to n3 answered by n2: %v", err)
	}
}

// TestUncertifiedConnectionRefused: a connection that is not a certified
// peer connection gets no call served.
func TestUncertifiedConnectionRefused(t *testing.T) {
	pn := &pipeNet{ls: map[string]*pipeListener{}}
	l := pn.listen("a", "n2")
	called := false
	srv := peer.Serve(l, map[string]peer.Handler{"echo": func(context.Context, string, []byte) (any, error) {
		called = true
		return struct{}{}, nil
	}}, func(error) peer.Answer { return peer.Answer{} }, slog.New(slog.DiscardHandler))
	defer srv.Close()
	cli := peer.NewClient(func(ctx context.Context, addr string) (peer.Conn, error) {
		a, b := net.Pipe()
		l.conns <- b // a bare net.Conn: no certified identity
		return pipeConn{a, "n2"}, nil
	})
	defer cli.Close()
	err := cli.Call(ctxT(t), "n2", "a", "echo", struct{}{}, nil)
	var pe *peer.Error
	if !errors.As(err, &pe) || pe.Code != "unauthenticated" || called {
		t.Errorf("uncertified call: %v (served: %v)", err, called)
	}
}

// idListener certifies every connection it accepts as node id.
type idListener struct {
	net.Listener
	id string
}

func (l idListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return pipeConn{c, l.id}, nil
}

// TestBodyOverMaxBody: a call body over MaxBody is refused too_large
// before any handler sees it, and the server keeps serving. (Over TCP on
// the loopback: 32 MiB through a net.Pipe is slow under the race
// detector.)
func TestBodyOverMaxBody(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var called atomic.Int32
	srv := peer.Serve(idListener{l, "n1"}, map[string]peer.Handler{"echo": func(_ context.Context, _ string, body []byte) (any, error) {
		called.Add(1)
		return json.RawMessage(body), nil
	}}, func(err error) peer.Answer { return peer.Answer{Code: "internal", Message: err.Error()} }, slog.New(slog.DiscardHandler))
	defer srv.Close()
	cli := peer.NewClient(func(ctx context.Context, addr string) (peer.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return pipeConn{c, "n2"}, nil
	})
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = cli.Call(ctx, "n2", l.Addr().String(), "echo", make([]byte, peer.MaxBody/4*3+1), nil) // over MaxBody in base64
	var pe *peer.Error
	if !errors.As(err, &pe) || pe.Code != "too_large" || called.Load() != 0 {
		t.Errorf("a body over %d bytes: %v (handler called %d times)", peer.MaxBody, err, called.Load())
	}
	var out string
	if err := cli.Call(ctx, "n2", l.Addr().String(), "echo", "x", &out); err != nil || out != "x" || called.Load() != 1 {
		t.Errorf("after: %q %v", out, err)
	}
}
