// Client, its configuration, and the one request path every call takes:
// endpoint failover, one leader redirect, error decoding.

package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/custos-eu/custos/internal/atomicfile"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/reqsig"
)

// maxResponse bounds a response body the client reads (the server pages
// entries well below it).
const maxResponse = 32 << 20

// Config configures a Client.
type Config struct {
	// Endpoints are API base URLs of cluster nodes, "https://host:port";
	// at least one. Order is the order tried.
	Endpoints []string
	// TLSFiles are the client's certificate and key and the cluster CA,
	// loaded with identity.ClientConfig. Set this or TLS.
	TLSFiles identity.TLSFiles
	// TLS is a ready client configuration instead of TLSFiles (a node uses
	// its own, for example). It should come from identity.ClientConfig.
	TLS *tls.Config
	// Timeout bounds each HTTP exchange, body included; default 30s. A
	// context deadline applies as well.
	Timeout time.Duration
	// MaxIdleConnsPerHost is how many idle keep-alive connections the client
	// keeps to each node; default 64. Raise it to the concurrency of a
	// load generator so that no request waits for a new TLS handshake.
	MaxIdleConnsPerHost int
	// SeenFile, if set, keeps the largest key-op log size the client has
	// seen (HeaderLogSize) across processes: read by New, written by Close
	// when it grew. The CLI sets it, so that one command reads what the
	// previous one wrote on any node.
	SeenFile string
	// MaxRateLimitWait is the longest Retry-After of a 429 rate_limited
	// answer the client waits out before sending again (up to three
	// times); default 5s, negative never waits (a load generator or a test
	// that wants to see the 429s).
	MaxRateLimitWait time.Duration
}

// Client calls one cluster's API. It is safe for concurrent use.
type Client struct {
	endpoints []string
	pref      atomic.Int32 // index of the endpoint that answered last
	hc        *http.Client
	signer    signer
	seen      atomic.Uint64 // largest log size seen in an answer (HeaderLogSize)
	seenFile  string
	seenAtNew uint64
	rateWait  time.Duration // Config.MaxRateLimitWait
}

// New checks cfg, loads the TLS material and returns a Client. It does not
// connect.
func New(cfg Config) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("client: no endpoints")
	}
	var eps []string
	for _, e := range cfg.Endpoints {
		base, err := baseURL(e)
		if err != nil {
			return nil, fmt.Errorf("client: endpoint %q: %w", e, err)
		}
		eps = append(eps, base)
	}
	tlsFilesSet := !cfg.TLSFiles.IsZero()
	var tc *tls.Config
	switch {
	case cfg.TLS != nil && tlsFilesSet:
		return nil, errors.New("client: set TLS or TLSFiles, not both")
	case cfg.TLS != nil:
		tc = cfg.TLS.Clone()
	case tlsFilesSet:
		var err error
		if tc, err = identity.ClientConfig(cfg.TLSFiles); err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
	default:
		return nil, errors.New("client: TLS or TLSFiles is required (the API takes only mutual TLS)")
	}
	if cfg.Timeout < 0 || cfg.MaxIdleConnsPerHost < 0 {
		return nil, errors.New("client: Timeout and MaxIdleConnsPerHost must not be negative")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.MaxIdleConnsPerHost == 0 {
		cfg.MaxIdleConnsPerHost = 64
	}
	if cfg.MaxRateLimitWait == 0 {
		cfg.MaxRateLimitWait = defaultRateWait
	}
	tr := &http.Transport{
		Proxy:               nil, // cluster traffic never goes through a proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:     90 * time.Second,
	}
	c := &Client{
		endpoints: eps,
		rateWait:  cfg.MaxRateLimitWait,
		signer:    newSigner(tc),
		hc: &http.Client{
			Transport: tr,
			Timeout:   cfg.Timeout,
			// Redirects are the leader's; do follows them itself, once.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		seenFile: cfg.SeenFile,
	}
	if c.seenFile != "" {
		if b, err := os.ReadFile(c.seenFile); err == nil {
			if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
				c.Saw(v)
			}
		}
		c.seenAtNew = c.seen.Load()
	}
	return c, nil
}

// Endpoints returns the endpoints the client was given, normalised.
func (c *Client) Endpoints() []string { return append([]string(nil), c.endpoints...) }

// Close closes idle connections, and keeps the log size seen in SeenFile
// if it grew (best effort: a failure to write only loses the hint). The
// Client stays usable.
func (c *Client) Close() {
	c.hc.CloseIdleConnections()
	if seen := c.seen.Load(); c.seenFile != "" && seen > c.seenAtNew {
		if os.MkdirAll(filepath.Dir(c.seenFile), 0o700) == nil &&
			atomicfile.Write(c.seenFile, []byte(strconv.FormatUint(seen, 10)+"\n"), 0o600) == nil {
			c.seenAtNew = seen
		}
	}
}

// baseURL checks an API base URL and returns it without a trailing slash.
func baseURL(s string) (string, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", err
	case u.Scheme != "https":
		return "", errors.New("not an https URL")
	case u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return "", errors.New("want a base URL, https://host:port")
	}
	return "https://" + u.Host, nil
}

// response is an answer read whole.
type response struct {
	endpoint string
	status   int
	header   http.Header
	body     []byte
}

// request is one API call.
type request struct {
	method string
	path   string // starting with /v1/
	query  url.Values
	body   []byte // JSON, for POST
	accept string
	// endpoint pins the call to one node: no failover, no redirect.
	endpoint string
	// signature is the reqsig.Header value of a key operation. The
	// failover and the redirect of do send it again: they are the same
	// attempt of the same call (a failover only when the request never
	// left; a redirect only from a node that did not serve it).
	signature string
}

// do sends req and returns a 2xx answer, or an *APIError, or a transport
// error. See the package documentation for failover and redirects.
func (c *Client) do(ctx context.Context, req request) (*response, error) {
	if req.endpoint != "" {
		resp, err := c.send(ctx, req.endpoint, req)
		if err != nil {
			return nil, err
		}
		return resp, resp.err()
	}
	n := len(c.endpoints)
	start := int(c.pref.Load())
	var lastErr error
	for i := range n {
		idx := (start + i) % n
		resp, err := c.send(ctx, c.endpoints[idx], req)
		if err != nil {
			lastErr = err
			var se *sendError
			if ctx.Err() != nil || !errors.As(err, &se) || !se.retryable(req.method) {
				return nil, err
			}
			continue
		}
		c.pref.Store(int32(idx))
		if leader := resp.leader(); leader != "" {
			if resp, err = c.send(ctx, leader, req); err != nil {
				return nil, err
			}
		}
		return resp, resp.err()
	}
	return nil, lastErr
}

// sendError is a failed exchange with one node.
type sendError struct {
	endpoint string
	wrote    bool // the request's headers were written to a connection
	err      error
}

func (e *sendError) Error() string { return "custos api " + e.endpoint + ": " + e.err.Error() }
func (e *sendError) Unwrap() error { return e.err }

// retryable reports whether the exchange may be tried at another node: a
// read always, a write only if it never left (no connection, or a failed
// handshake), since a write that reached a node may have been carried out.
func (e *sendError) retryable(method string) bool {
	return method == http.MethodGet || !e.wrote
}

// Rate limits: a 429 rate_limited answer asking to wait at most
// Config.MaxRateLimitWait is waited out and the request sent again to the
// same node, at most rateRetries times; a longer wait is the caller's
// (APIError.RetryAfter). The request was not carried out, so sending it
// again is safe.
const (
	defaultRateWait = 5 * time.Second
	rateRetries     = 3
)

// send makes an exchange with the node at base, waiting out short rate
// limits.
func (c *Client) send(ctx context.Context, base string, req request) (*response, error) {
	for attempt := 0; ; attempt++ {
		resp, err := c.sendOnce(ctx, base, req)
		if err != nil || resp.status != http.StatusTooManyRequests || attempt == rateRetries {
			return resp, err
		}
		wait := retryAfter(resp.header)
		if wait <= 0 || wait > c.rateWait {
			return resp, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return resp, nil
		case <-t.C:
		}
	}
}

// retryAfter reads a Retry-After header in seconds; 0 if absent or not
// seconds.
func retryAfter(h http.Header) time.Duration {
	secs, err := strconv.ParseUint(h.Get("Retry-After"), 10, 16)
	if err != nil {
		return 0
	}
	return time.Duration(secs) * time.Second
}

// sendOnce makes one exchange with the node at base.
func (c *Client) sendOnce(ctx context.Context, base string, req request) (*response, error) {
	u := base + req.path
	if len(req.query) > 0 {
		u += "?" + req.query.Encode()
	}
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("custos api %s: %w", base, err)
	}
	if req.body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	accept := req.accept
	if accept == "" {
		accept = "application/json"
	}
	hr.Header.Set("Accept", accept)
	hr.Header.Set("User-Agent", "custos-client/1")
	if req.signature != "" {
		hr.Header.Set(reqsig.Header, req.signature)
	}
	if seen := c.seen.Load(); seen > 0 {
		hr.Header.Set(HeaderMinLogSize, strconv.FormatUint(seen, 10))
	}
	var wrote atomic.Bool
	hr = hr.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteHeaders: func() { wrote.Store(true) }}))
	resp, err := c.hc.Do(hr)
	if err != nil {
		return nil, &sendError{endpoint: base, wrote: wrote.Load(), err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("custos api %s: %s %s: reading the answer: %w", base, req.method, req.path, err)
	}
	if len(b) > maxResponse {
		return nil, fmt.Errorf("custos api %s: %s %s: answer over %d bytes", base, req.method, req.path, maxResponse)
	}
	if v, err := strconv.ParseUint(resp.Header.Get(HeaderLogSize), 10, 64); err == nil {
		c.Saw(v)
	}
	return &response{endpoint: base, status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// Saw records that the key-op log held at least size entries (from a
// node's answer, or a size the caller kept from an earlier client): later
// requests ask nodes to have caught up to it. Safe for concurrent use.
func (c *Client) Saw(size uint64) {
	for {
		old := c.seen.Load()
		if size <= old || c.seen.CompareAndSwap(old, size) {
			return
		}
	}
}

// Seen is the largest key-op log size this client has seen.
func (c *Client) Seen() uint64 { return c.seen.Load() }

// leader returns the leader's base URL if r is a not_leader answer naming one.
func (r *response) leader() string {
	if r.status != http.StatusTemporaryRedirect && r.status != http.StatusPermanentRedirect {
		return ""
	}
	l := r.header.Get(HeaderLeader)
	if l == "" {
		return ""
	}
	base, err := baseURL(l)
	if err != nil || base == r.endpoint {
		return ""
	}
	return base
}

// err returns nil for a 2xx answer and an *APIError otherwise.
func (r *response) err() error {
	if r.status >= 200 && r.status <= 299 {
		return nil
	}
	e := &APIError{Status: r.status, Endpoint: r.endpoint, RequestID: r.header.Get(HeaderRequestID), Leader: r.header.Get(HeaderLeader)}
	e.LogIndex, _ = strconv.ParseUint(r.header.Get(HeaderLogIndex), 10, 64)
	if r.status == http.StatusTooManyRequests {
		e.RetryAfter = retryAfter(r.header)
	}
	var body ErrorBody
	if json.Unmarshal(r.body, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message = body.Error.Code, body.Error.Message
		if body.Error.RequestID != "" {
			e.RequestID = body.Error.RequestID
		}
		return e
	}
	// Not one of ours (a proxy, a load balancer): keep a readable excerpt.
	msg := strings.TrimSpace(string(r.body))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	e.Message = msg
	return e
}

// decode unmarshals a JSON answer into v.
func (r *response) decode(what string, v any) error {
	if err := json.Unmarshal(r.body, v); err != nil {
		return fmt.Errorf("custos api %s: %s: malformed answer: %w", r.endpoint, what, err)
	}
	return nil
}

// IsCode reports whether err is an *APIError with one of codes.
func IsCode(err error, codes ...string) bool {
	var ae *APIError
	if !errors.As(err, &ae) {
		return false
	}
	for _, c := range codes {
		if ae.Code == c {
			return true
		}
	}
	return false
}
