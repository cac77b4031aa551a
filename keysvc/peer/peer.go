// Package peer is the node-to-node channel, both ends: named calls with JSON
// bodies, carried by HTTP/1.1 over the raft listener's "custos-peer/1"
// connections (TLS 1.3, X25519MLKEM768 only, a current member's certificate
// on both sides, checked by the raft package before a connection reaches
// this package). It moves bytes and names the caller; what each call means
// is the node's (keysvc), which registers the handlers and decides.
//
// A caller learns who it reached: Client checks that the node answering at
// an address is the node it meant, and Server hands every handler the node
// id the connection was certified for. Neither end takes a node id from a
// message.
package peer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custos-eu/custos/internal/strictjson"
)

// MaxBody bounds a call's request and answer bodies.
const MaxBody = 32 << 20

// Conn is a certified peer connection: the raft package's *raft.PeerConn.
type Conn interface {
	net.Conn
	// NodeID is the node id the connection's certificate names.
	NodeID() string
}

// Dialer opens a certified connection to the node at a raft address.
type Dialer func(ctx context.Context, addr string) (Conn, error)

// Handler serves one call from node from, with the request body (up to
// MaxBody bytes, as sent: the handler decodes it, strictly); it returns
// the answer (encoded as JSON) or an error, which the caller receives as an
// *Error with the code that Server's Codes gives it.
type Handler func(ctx context.Context, from string, body []byte) (any, error)

// Error is a call the other node answered with a refusal or a failure.
type Error struct {
	Node    string // the node that answered
	Code    string // stable, from Server's Codes; "" when the call never got an answer
	Message string
	// LeaderID and LeaderAddr: where the leader is, for not-leader answers.
	LeaderID, LeaderAddr string
	// Sent reports whether the call reached the other node's connection:
	// false when it was never written (the node could not be dialled), so
	// it certainly had no effect there.
	Sent bool
}

func (e *Error) Error() string {
	return fmt.Sprintf("peer %s: %s: %s", e.Node, e.Code, e.Message)
}

// Answer is how a Server describes an error to the caller.
type Answer struct {
	Code                 string
	Message              string
	LeaderID, LeaderAddr string
}

type errorBody struct {
	Code       string `json:"code"`
	Message    string `json:"message"`
	LeaderID   string `json:"leader_id,omitempty"`
	LeaderAddr string `json:"leader_addr,omitempty"`
}

// Server serves calls on a listener of certified connections.
type Server struct {
	srv      *http.Server
	l        net.Listener
	handlers map[string]Handler
	codes    func(error) Answer
	log      *slog.Logger
	done     chan struct{}
}

type fromKey struct{}

// Serve starts serving handlers (by call name) on l, whose connections are
// Conns. codes describes a handler's error to the caller; log records
// failures. Close stops it.
func Serve(l net.Listener, handlers map[string]Handler, codes func(error) Answer, log *slog.Logger) *Server {
	s := &Server{l: l, handlers: handlers, codes: codes, log: log, done: make(chan struct{})}
	s.srv = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if pc, ok := c.(Conn); ok {
				return context.WithValue(ctx, fromKey{}, pc.NodeID())
			}
			return ctx
		},
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			log.Warn("peer: serving stopped", "err", err)
		}
	}()
	return s
}

// Close stops the server and closes its connections.
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.done
	return err
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	from, _ := r.Context().Value(fromKey{}).(string)
	name := strings.TrimPrefix(r.URL.Path, "/")
	fail := func(status int, a Answer) {
		b, _ := json.Marshal(errorBody{Code: a.Code, Message: a.Message, LeaderID: a.LeaderID, LeaderAddr: a.LeaderAddr})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(b)
	}
	h := s.handlers[name]
	switch {
	case from == "":
		fail(http.StatusForbidden, Answer{Code: "unauthenticated", Message: "the connection is not a certified peer connection"})
		return
	case r.Method != http.MethodPost || h == nil:
		fail(http.StatusNotFound, Answer{Code: "unknown_call", Message: fmt.Sprintf("no call %q", name)})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	defer clear(body) // bodies may carry shares
	if err != nil || len(body) > MaxBody {
		fail(http.StatusRequestEntityTooLarge, Answer{Code: "too_large", Message: fmt.Sprintf("a call body is at most %d bytes", MaxBody)})
		return
	}
	out, err := h(r.Context(), from, body)
	if err != nil {
		a := s.codes(err)
		s.log.Info("peer: call refused", "call", name, "from", from, "code", a.Code, "err", err)
		fail(http.StatusConflict, a)
		return
	}
	var buf bytes.Buffer
	defer func() { clear(buf.Bytes()[:buf.Cap()]) }()
	if err := json.NewEncoder(&buf).Encode(out); err != nil {
		fail(http.StatusInternalServerError, Answer{Code: "internal", Message: "cannot encode the answer"})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(buf.Bytes())
}

// Client makes calls to other nodes. It keeps connections alive across calls
// and is safe for concurrent use.
type Client struct {
	hc    *http.Client
	mu    sync.Mutex
	addrs map[string]string // node id -> its raft address
}

// NewClient returns a Client that connects with dial.
func NewClient(dial Dialer) *Client {
	c := &Client{addrs: map[string]string{}}
	tr := &http.Transport{
		Proxy: nil,
		// Requests name the node by id (http://<id>/<call>); the connection
		// goes to its raft address and must be certified as that node.
		DialContext: func(ctx context.Context, _, hostport string) (net.Conn, error) {
			id, _, err := net.SplitHostPort(hostport)
			if err != nil {
				return nil, err
			}
			c.mu.Lock()
			addr := c.addrs[id]
			c.mu.Unlock()
			if addr == "" {
				return nil, fmt.Errorf("peer: no address for node %q", id)
			}
			conn, err := dial(ctx, addr)
			if err != nil {
				return nil, err
			}
			if got := conn.NodeID(); got != id {
				conn.Close()
				return nil, fmt.Errorf("peer: %s is node %q, not %q", addr, got, id)
			}
			return conn, nil
		},
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: time.Minute,
		DisableCompression:    true,
	}
	c.hc = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return c
}

// Close closes idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Call sends body (encoded as JSON) as call name to node id at raft address
// addr, and decodes its answer into out (if not nil). A refusal or failure
// the node answered is an *Error with its code; a call that got no answer
// is an *Error without a code, wrapping nothing: its outcome is unknown.
func (c *Client) Call(ctx context.Context, id, addr, name string, body, out any) error {
	c.mu.Lock()
	if old, ok := c.addrs[id]; ok && old != addr {
		c.hc.CloseIdleConnections() // the node moved
	}
	c.addrs[id] = addr
	c.mu.Unlock()
	var buf bytes.Buffer
	defer func() { clear(buf.Bytes()[:buf.Cap()]) }()
	if err := json.NewEncoder(&buf).Encode(body); err != nil {
		return fmt.Errorf("peer: encode %s: %w", name, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+id+"/"+name, &buf)
	if err != nil {
		return fmt.Errorf("peer: %s: %w", name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	var sent atomic.Bool
	req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteHeaders: func() { sent.Store(true) },
	}))
	resp, err := c.hc.Do(req)
	if err != nil {
		return &Error{Node: id, Message: fmt.Sprintf("%s: %v", name, err), Sent: sent.Load()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	defer clear(b)
	if err != nil || len(b) > MaxBody {
		return &Error{Node: id, Message: fmt.Sprintf("%s: reading the answer: %v", name, err), Sent: true}
	}
	if resp.StatusCode != http.StatusOK {
		var eb errorBody
		if strictjson.Check(b) != nil || json.Unmarshal(b, &eb) != nil || eb.Code == "" {
			eb.Code, eb.Message = "internal", fmt.Sprintf("HTTP %d", resp.StatusCode)
		}
		return &Error{Node: id, Code: eb.Code, Message: eb.Message, LeaderID: eb.LeaderID, LeaderAddr: eb.LeaderAddr, Sent: true}
	}
	if out == nil {
		return nil
	}
	// Answers are read as strictly as calls, unknown fields aside (a newer
	// node may add some).
	if err := strictjson.Check(b); err != nil {
		return &Error{Node: id, Code: "internal", Message: fmt.Sprintf("%s: malformed answer: %v", name, err), Sent: true}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return &Error{Node: id, Code: "internal", Message: fmt.Sprintf("%s: malformed answer: %v", name, err), Sent: true}
	}
	return nil
}
