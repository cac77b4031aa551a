// The handler: what it needs from the node, its options, its routes and the
// middleware every request passes through.

package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/custos-eu/custos/internal/strictjson"
	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/state"
)

// Service is what the handlers need from a node; *keysvc.Node implements
// it. Its methods must be safe for concurrent use.
type Service interface {
	Info() state.NodeInfo
	Leader() keysvc.Leader
	Status() keysvc.Status
	Ready() error
	Checkpoint(ctx context.Context) ([]byte, error)
	Entries(start uint64, limit int) ([][]byte, error)
	ProveInclusion(index, size uint64) (ledger.InclusionProof, error)
	ProveConsistency(oldSize, newSize uint64) (ledger.ConsistencyProof, error)
	NodeKeys() ([]ledger.NodeKey, error)
	Append(ctx context.Context, e ledger.Entry) (uint64, error)
	AppendBatch(ctx context.Context, entries []ledger.Entry) (uint64, error)
	AddNode(ctx context.Context, info state.NodeInfo, actor ledger.Actor) error
	Metrics() keysvc.Metrics
	// Revoked reports whether the certificate with fingerprint held by id
	// is revoked (by fingerprint, or by id's role and name). It is called
	// on every request, so it must be cheap.
	Revoked(id identity.Identity, fingerprint string) (state.Revocation, bool)
}

var _ Service = (*keysvc.Node)(nil)

// Options configure the handler. The zero value is usable.
type Options struct {
	// Logger receives one line per failed request (with its request id and
	// cause) and panics; nil means slog.Default().
	Logger *slog.Logger
	// Registry receives the API's request metrics and the node's metrics,
	// and is what GET /metrics serves. nil means a new registry that also
	// holds the Go runtime and process collectors. New panics if the
	// registry already holds these metrics (New called twice with one
	// registry), as prometheus' MustRegister does.
	Registry *prometheus.Registry
	// ClientCAs is the cluster CA pool the certificates of signed key-op
	// requests are checked against: custosd passes its server TLS
	// configuration's ClientCAs. nil means the root that verified the
	// request's TLS client chain, which that configuration took from its
	// ClientCAs: the same check, one root at a time.
	ClientCAs *x509.CertPool
	// RateLimits are the per-identity limits of each route class; the zero
	// value takes DefaultRateLimits.
	RateLimits RateLimits
}

// Entries paging: a page holds at most maxPageEntries entries and stops
// once it passes pageBytes of canonical bytes (it always holds one).
const (
	defaultPageEntries = 100
	maxPageEntries     = 1000
	pageBytes          = 4 << 20
)

// Roles allowed on each group of routes.
var (
	anyRole        = identity.Roles()
	ledgerReader   = []identity.Role{identity.RoleAuditor, identity.RoleOperator, identity.RoleOfficer, identity.RoleNode}
	metricsRoles   = []identity.Role{identity.RoleOperator, identity.RoleAuditor}
	ceremonyReader = []identity.Role{identity.RoleOfficer, identity.RoleAuditor, identity.RoleOperator}
)

// api is the handler's state.
type api struct {
	svc     Service
	log     *slog.Logger
	reg     *prometheus.Registry
	metrics *httpMetrics
	nodeID  string
	// clientRoots is Options.ClientCAs.
	clientRoots *x509.CertPool
	limits      *limiter

	promHandler http.Handler
}

// New returns the API handler of a node. It must be served with a TLS
// configuration from identity.ServerConfig (client certificates required
// and verified against the cluster CA): a request without a verified client
// certificate is answered 401 and never reaches a route. See the package
// documentation for routes, roles and error codes.
func New(svc Service, opts Options) http.Handler {
	a := &api{svc: svc, log: opts.Logger, reg: opts.Registry, nodeID: svc.Info().ID, clientRoots: opts.ClientCAs,
		limits: newLimiter(opts.RateLimits, time.Now)}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.reg == nil {
		a.reg = prometheus.NewRegistry()
		a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	a.metrics = newHTTPMetrics(a.reg)
	a.reg.MustRegister(newNodeCollector(svc))
	a.promHandler = promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	})

	r := chi.NewRouter()
	r.Use(a.begin, a.authenticate, a.limit)
	r.NotFound(a.handle(func(http.ResponseWriter, *http.Request) error { return notFound("no such route") }))
	r.MethodNotAllowed(a.handle(func(http.ResponseWriter, *http.Request) error {
		return &apiError{http.StatusMethodNotAllowed, errcode.MethodNotAllowed, "method not allowed on this route"}
	}))

	r.With(a.allow(anyRole...)).Get("/v1/sys/health", a.handle(a.health))
	r.With(a.allow(anyRole...)).Get("/v1/sys/cluster", a.handle(a.cluster))
	r.With(a.allow(identity.RoleOperator)).Post("/v1/sys/canary", a.handle(a.canary))
	r.With(a.allow(attestRoles...)).Post("/v1/attestations", a.handle(a.attest))
	r.With(a.allow(drillReaders...)).Get("/v1/attestations/drills", a.handle(a.drills))
	r.With(a.allow(attestRoles...)).Get("/v1/attestations/{index}", a.handle(a.attestation))
	r.Post("/v1/sys/join", a.handle(a.join)) // checks roles itself, to log refusals
	r.With(a.allow(identity.RoleOperator)).Post("/v1/sys/init", a.handle(a.init))
	r.With(a.allow(identity.RoleOfficer)).Post("/v1/ceremonies", a.handle(a.propose))
	r.With(a.allow(identity.RoleOfficer)).Post("/v1/ceremonies/{id}/approvals", a.handle(a.approve))
	r.With(a.allow(ceremonyReader...)).Get("/v1/ceremonies", a.handle(a.listCeremonies))
	r.With(a.allow(ceremonyReader...)).Get("/v1/ceremonies/{id}", a.handle(a.getCeremony))
	r.With(a.allow(ceremonyReader...)).Get("/v1/officers", a.handle(a.listOfficers))

	r.With(a.allow(anyRole...)).Get("/v1/ledger/checkpoint", a.handle(a.checkpoint))
	r.With(a.allow(ledgerReader...)).Get("/v1/ledger/entries", a.handle(a.entries))
	r.With(a.allow(anyRole...)).Get("/v1/ledger/proof/inclusion", a.handle(a.inclusion))
	r.With(a.allow(anyRole...)).Get("/v1/ledger/proof/consistency", a.handle(a.consistency))
	r.With(a.allow(anyRole...)).Get("/v1/ledger/keys", a.handle(a.keys))

	a.kekRoutes(r)
	a.keyOpRoutes(r)
	r.With(a.allow(anyRole...)).Get("/v1/openapi.yaml", a.handle(a.openAPI))

	r.With(a.allow(metricsRoles...)).Get("/metrics", a.handle(a.serveMetrics))
	return r
}

// handle adapts a handler that returns an error; the error is answered by
// writeError, the one place errors become statuses.
func (a *api) handle(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			a.writeError(w, r, err)
		}
	}
}

// Context values set by the middleware.
type (
	ridKey    struct{}
	callerKey struct{}
)

// caller is the verified client of a request.
type caller struct {
	id    identity.Identity
	actor ledger.Actor
}

func requestID(ctx context.Context) string { s, _ := ctx.Value(ridKey{}).(string); return s }

func callerOf(ctx context.Context) caller { c, _ := ctx.Value(callerKey{}).(caller); return c }

// newRequestID returns 16 random bytes in hex. Request ids are never taken
// from the client: they name the node's log lines.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail
	return hex.EncodeToString(b[:])
}

// begin gives the request its id, recovers a panicking handler and records
// the request's metrics under its route pattern.
func (a *api) begin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rid := newRequestID()
		w.Header().Set(client.HeaderRequestID, rid)
		r = r.WithContext(context.WithValue(r.Context(), ridKey{}, rid))
		sw := &statusWriter{ResponseWriter: w, logSize: a.logSize}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				a.log.Error("handler panic", slog.String("request_id", rid), slog.String("path", r.URL.Path),
					slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
				if !sw.wroteHeader {
					a.writeError(sw, r, fmt.Errorf("panic: %v", p))
				}
			}
			route := "unmatched"
			if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
				route = rc.RoutePattern()
			}
			a.metrics.observe(route, r.Method, sw.status(), time.Since(start))
		}()
		if err := a.catchUpTo(r); err != nil {
			a.writeError(sw, r, err)
			return
		}
		next.ServeHTTP(sw, r)
	})
}

// authenticate reads the verified client certificate's identity. The TLS
// configuration already refused connections without one; this refuses a
// request that somehow arrives without (plain HTTP, a misconfigured server).
// A revoked certificate, or a certificate of a revoked identity, is refused
// 403 certificate_revoked on every route, reads included, from the moment
// this node has applied the revocation: a connection made before it does
// not keep access.
func (a *api) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			a.writeError(w, r, &apiError{http.StatusUnauthorized, errcode.Unauthenticated, "mutual TLS with a cluster client certificate is required"})
			return
		}
		id, err := identity.PeerIdentity(*r.TLS)
		if err != nil {
			a.writeError(w, r, &apiError{http.StatusUnauthorized, errcode.Unauthenticated, "no verified custos client certificate"})
			return
		}
		c := caller{id: id, actor: keysvc.Actor(id, r.TLS.VerifiedChains[0][0])}
		if rv, revoked := a.svc.Revoked(id, c.actor.CertFingerprint); revoked {
			err := &keysvc.RevokedError{Identity: id, Fingerprint: c.actor.CertFingerprint, Revocation: rv}
			a.writeError(w, r, &apiError{http.StatusForbidden, errcode.CertRevoked, err.Error()})
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
	})
}

// allow refuses callers whose certificate role is not among roles.
func (a *api) allow(roles ...identity.Role) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := checkRole(callerOf(r.Context()), roles); err != nil {
				a.writeError(w, r, err)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func checkRole(c caller, roles []identity.Role) error {
	for _, role := range roles {
		if c.id.Role == role {
			return nil
		}
	}
	return forbidden(fmt.Sprintf("role %q may not use this route (allowed: %v)", c.id.Role, roles))
}

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
	logSize     func() (uint64, bool) // for client.HeaderLogSize
}

func (w *statusWriter) header() {
	if w.logSize != nil {
		if size, ok := w.logSize(); ok {
			w.ResponseWriter.Header().Set(client.HeaderLogSize, strconv.FormatUint(size, 10))
		}
	}
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.code, w.wroteHeader = code, true
		w.header()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.code, w.wroteHeader = http.StatusOK, true
		w.header()
	}
	return w.ResponseWriter.Write(b)
}

// logTracker is what read-your-writes needs of the node (*keysvc.Node).
type logTracker interface {
	KnownLogSize() uint64
	WaitLogged(ctx context.Context, size uint64) error
}

// logSize is the log size the node knows committed, for every answer.
func (a *api) logSize() (uint64, bool) {
	if t, ok := a.svc.(logTracker); ok {
		return t.KnownLogSize(), true
	}
	return 0, false
}

// catchUpTo waits, up to 2 s, until this node has applied the log size the
// client says it has seen (client.HeaderMinLogSize), so that the client
// reads its own writes here; a node that cannot is 503 not_caught_up.
func (a *api) catchUpTo(r *http.Request) error {
	v := r.Header.Get(client.HeaderMinLogSize)
	t, ok := a.svc.(logTracker)
	if v == "" || !ok {
		return nil
	}
	size, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return badRequest(client.HeaderMinLogSize + " is not a decimal log size")
	}
	// What this node knows committed (its own acknowledged appends
	// included) needs no wait: only a size learnt from another node does.
	if t.KnownLogSize() >= size {
		return nil
	}
	if err := t.WaitLogged(r.Context(), size); err != nil {
		return fmt.Errorf("%w: this node has not applied the %d log entries the client has seen", keysvc.ErrNotCaughtUp, size)
	}
	return nil
}

func (w *statusWriter) status() int {
	if !w.wroteHeader {
		return http.StatusOK
	}
	return w.code
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client may be gone; nothing to do about it
}

// decodeJSON reads a JSON body of at most limit bytes into v, strictly
// (internal/strictjson): a body over limit is 413 too_large; one that is
// not one well-formed JSON object in valid UTF-8 (a syntax error, invalid
// UTF-8, a lone surrogate escape, data after the object, no body) is 400
// malformed_request; a well-formed one with unknown fields or values of
// the wrong type is 400 bad_request. An empty body decodes as {} when
// emptyOK. The body's bytes are cleared once decoded: they may hold keys.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any, emptyOK bool) error {
	body, err := readBody(http.MaxBytesReader(w, r.Body, limit), r.ContentLength, limit)
	defer clear(body)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return tooLarge(fmt.Sprintf("body over %d bytes", limit))
	case err != nil:
		return malformedRequest("the body could not be read")
	case len(bytes.Trim(body, " \t\r\n")) == 0 && emptyOK:
		return nil
	case len(bytes.Trim(body, " \t\r\n")) == 0:
		return malformedRequest("a JSON body is required")
	}
	err = strictjson.Decode(body, v)
	var me *strictjson.MalformedError
	switch {
	case errors.As(err, &me):
		return malformedRequest(me.Error())
	case err != nil:
		return badRequest(err.Error())
	}
	return nil
}

// readBody reads all of body, whose announced length is size (-1 if
// unknown), clearing the buffers it outgrows. It trusts size up to 1 MiB
// (no growth below that), so that a client announcing a large body does
// not make the node allocate it before sending it.
func readBody(body io.Reader, size, limit int64) ([]byte, error) {
	n := int64(512)
	if size >= 0 {
		n = min(size, limit, 1<<20) + 1 // room for the EOF read
	}
	b := make([]byte, 0, n)
	for {
		if len(b) == cap(b) {
			nb := make([]byte, len(b), 2*cap(b))
			copy(nb, b)
			clear(b)
			b = nb
		}
		m, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		if errors.Is(err, io.EOF) {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}
