// Key-operation routes for backup agents: wrap, unwrap, datakey, rewrap,
// their batch forms, and KEK version public keys. Any node serves them; the
// KEK's policy decides who may do what, and keysvc logs every operation,
// refusals included.

package httpapi

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/custos-eu/custos/keysvc/errcode"

	"github.com/go-chi/chi/v5"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/reqsig"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// KeyOpService is what the key-operation routes need; a Service that also
// implements it (*keysvc.Node does) serves them, and any other answers them
// 501 not_supported_yet.
type KeyOpService interface {
	Wrap(ctx context.Context, caller keysvc.Caller, kekID string, c wrapkey.Context, plaintext []byte, requestID string) (keysvc.Wrapped, error)
	Unwrap(ctx context.Context, caller keysvc.Caller, kekID string, c wrapkey.Context, blob []byte, requestID string) ([]byte, uint64, error)
	DataKey(ctx context.Context, caller keysvc.Caller, kekID string, c wrapkey.Context, wrappedOnly bool, requestID string) ([]byte, keysvc.Wrapped, error)
	Rewrap(ctx context.Context, caller keysvc.Caller, kekID string, c wrapkey.Context, blob []byte, requestID string) (keysvc.Wrapped, error)
	WrapBatch(ctx context.Context, caller keysvc.Caller, kekID string, items []keysvc.WrapItem, requestID string) []keysvc.ItemResult
	UnwrapBatch(ctx context.Context, caller keysvc.Caller, kekID string, items []keysvc.UnwrapItem, requestID string) []keysvc.ItemResult
	PublicKey(kekID string, version uint32) (pub []byte, state string, created uint64, err error)
}

var _ KeyOpService = (*keysvc.Node)(nil)

// keyOpRoles may call the key operations: every role but node (nodes never
// use the agent API). The KEK's policy then decides, and logs a refusal.
var keyOpRoles = []identity.Role{identity.RoleAgent, identity.RoleOfficer, identity.RoleAuditor, identity.RoleOperator}

// Key-operation route patterns.
const (
	wrapRoute        = "/v1/keks/{id}/wrap"
	unwrapRoute      = "/v1/keks/{id}/unwrap"
	dataKeyRoute     = "/v1/keks/{id}/datakey"
	rewrapRoute      = "/v1/keks/{id}/rewrap"
	wrapBatchRoute   = "/v1/keks/{id}/wrap/batch"
	unwrapBatchRoute = "/v1/keks/{id}/unwrap/batch"
	publicKeyRoute   = "/v1/keks/{id}/versions/{v}/public"
)

func (a *api) keyOps() (KeyOpService, error) {
	ks, ok := a.svc.(KeyOpService)
	if !ok {
		return nil, &apiError{http.StatusNotImplemented, errcode.NotSupportedYet, "this node does not serve key operations"}
	}
	return ks, nil
}

func (a *api) keyOpRoutes(r chi.Router) {
	ops := r.With(a.allow(keyOpRoles...))
	ops.Post(wrapRoute, a.handle(a.wrap))
	ops.Post(unwrapRoute, a.handle(a.unwrap))
	ops.Post(dataKeyRoute, a.handle(a.dataKey))
	ops.Post(rewrapRoute, a.handle(a.rewrap))
	ops.Post(wrapBatchRoute, a.handle(a.wrapBatch))
	ops.Post(unwrapBatchRoute, a.handle(a.unwrapBatch))
	r.With(a.allow(anyRole...)).Get(publicKeyRoute, a.handle(a.publicKey))
}

// signatureRequired reports whether op needs a signed request: the
// operations that may activate a key (open a blob). The others are checked
// when they carry one.
func signatureRequired(op string) bool {
	switch op {
	case reqsig.OpUnwrap, reqsig.OpRewrap, reqsig.OpUnwrapBatch:
		return true
	}
	return false
}

// signedCaller is the request's caller as keysvc sees it, with its signed
// request (see verifySignature) for a single-item operation on a body whose
// hash is body, under context c.
func (a *api) signedCaller(r *http.Request, op string, version uint32, body [32]byte, c map[string]string) (keysvc.Caller, error) {
	if r.Header.Get(reqsig.Header) == "" {
		return a.verifySignature(r, reqsig.Request{Op: op}) // unsigned: allowed, or refused as missing
	}
	ch, err := reqsig.ContextHash(wrapkey.Context(c))
	if err != nil {
		return keysvc.Caller{}, &apiError{http.StatusBadRequest, errcode.InvalidContext, "context: " + contextReason(err)}
	}
	return a.verifySignature(r, reqsig.Request{Op: op, Version: version, Body: body, Context: ch})
}

// signedBatchCaller is signedCaller for a batch of n items, each a body
// and a context.
func (a *api) signedBatchCaller(r *http.Request, op string, n int, item func(i int) ([]byte, map[string]string)) (keysvc.Caller, error) {
	if r.Header.Get(reqsig.Header) == "" {
		return a.verifySignature(r, reqsig.Request{Op: op}) // unsigned: allowed, or refused as missing
	}
	items := make([]reqsig.Item, n)
	for i := range items {
		body, c := item(i)
		ch, err := reqsig.ContextHash(wrapkey.Context(c))
		if err != nil {
			return keysvc.Caller{}, &apiError{http.StatusBadRequest, errcode.InvalidContext,
				"item " + strconv.Itoa(i) + ": context: " + contextReason(err)}
		}
		items[i] = reqsig.Item{Body: reqsig.BodyHash(body), Context: ch}
	}
	empty, _ := reqsig.ContextHash(nil) // the empty context always encodes
	return a.verifySignature(r, reqsig.Request{Op: op, Body: reqsig.BatchHash(items), Context: empty})
}

// contextReason is why a context cannot be hashed (wrapkey's bounds), for
// the client.
func contextReason(err error) string {
	var e *reqsig.Error
	if errors.As(err, &e) {
		return strings.TrimPrefix(e.Reason, "wrapkey: ")
	}
	return "does not encode"
}

// verifySignature checks the request's Custos-Request-Signature header, if
// it has one or op requires one, and returns the caller with the signed
// request keysvc gets. The header must be signed with the key of the
// certificate the TLS connection presented, chain to the cluster CA, be
// within reqsig.MaxSkew of this node's clock, and describe the request
// received: want (op, version, body and context hashes), the KEK in the
// path and the caller's cluster. Replays are keysvc's to refuse: it sees
// every node's requests through the log. Errors are *reqsig.Error, which
// classify maps.
func (a *api) verifySignature(r *http.Request, want reqsig.Request) (keysvc.Caller, error) {
	c := callerOf(r.Context())
	caller := keysvc.Caller{ID: c.id, Actor: c.actor}
	h := r.Header.Get(reqsig.Header)
	if h == "" && !signatureRequired(want.Op) {
		return caller, nil
	}
	if h == "" {
		return caller, &reqsig.Error{Code: reqsig.CodeMissing, Reason: want.Op + " requires a " + reqsig.Header +
			" header: sign the request with the client certificate's key as docs/agent-api.md describes (the custos SDK does)"}
	}
	msg, sig, err := reqsig.DecodeHeader(h)
	if err != nil {
		return caller, err
	}
	s := reqsig.Signed{Message: msg, Signature: sig, Cert: r.TLS.PeerCertificates[0].Raw}
	o := reqsig.Options{Cluster: c.id.Cluster, Roots: a.clientCAs(r), Now: time.Now()}
	if a.clientRoots == nil {
		// The roots are those the TLS handshake verified this very
		// certificate against: only the signature is left to check.
		o.Leaf = r.TLS.PeerCertificates[0]
	}
	v, err := s.Verify(o)
	if err != nil {
		return caller, err
	}
	want.Cluster, want.KEKID = c.id.Cluster, chi.URLParam(r, "id")
	if err := v.Request.Matches(want); err != nil {
		return caller, err
	}
	caller.Signed = &s
	return caller, nil
}

// clientCAs is the pool client certificates are checked against:
// Options.ClientCAs, or the root that verified this connection's client
// chain (which the TLS configuration took from its ClientCAs).
func (a *api) clientCAs(r *http.Request) *x509.CertPool {
	if a.clientRoots != nil {
		return a.clientRoots
	}
	p := x509.NewCertPool()
	if ch := r.TLS.VerifiedChains; len(ch) > 0 && len(ch[0]) > 0 {
		p.AddCert(ch[0][len(ch[0])-1])
	}
	return p
}

// POST /v1/keks/{id}/wrap.
func (a *api) wrap(w http.ResponseWriter, r *http.Request) error {
	ks, err := a.keyOps()
	if err != nil {
		return err
	}
	var req client.WrapRequest
	defer func() { clear(req.Plaintext) }()
	if err := decodeJSON(w, r, maxWrapBody, &req, false); err != nil {
		return err
	}
	caller, err := a.signedCaller(r, reqsig.OpWrap, 0, reqsig.BodyHash(req.Plaintext), req.Context)
	if err != nil {
		return err
	}
	wr, err := ks.Wrap(r.Context(), caller, chi.URLParam(r, "id"), wrapkey.Context(req.Context), req.Plaintext, requestID(r.Context()))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, client.WrapResponse{Wrapped: wr.Blob, KEKVersion: wr.Version, LogIndex: wr.LogIndex})
	return nil
}

// POST /v1/keks/{id}/unwrap.
func (a *api) unwrap(w http.ResponseWriter, r *http.Request) error {
	ks, err := a.keyOps()
	if err != nil {
		return err
	}
	var req client.UnwrapRequest
	if err := decodeJSON(w, r, maxUnwrapBody, &req, false); err != nil {
		return err
	}
	caller, err := a.signedCaller(r, reqsig.OpUnwrap, reqsig.BlobVersion(req.Wrapped), reqsig.BodyHash(req.Wrapped), req.Context)
	if err != nil {
		return err
	}
	dek, idx, err := ks.Unwrap(r.Context(), caller, chi.URLParam(r, "id"), wrapkey.Context(req.Context), req.Wrapped, requestID(r.Context()))
	if err != nil {
		return err
	}
	defer clear(dek)
	var b secretJSON
	defer b.wipe()
	b.str(`{"plaintext":`)
	b.b64(dek)
	b.str(`,"log_index":`)
	b.uint(idx)
	b.str("}\n")
	writeSecret(w, &b)
	return nil
}

// POST /v1/keks/{id}/datakey.
func (a *api) dataKey(w http.ResponseWriter, r *http.Request) error {
	ks, err := a.keyOps()
	if err != nil {
		return err
	}
	var req client.DataKeyRequest
	if err := decodeJSON(w, r, maxDataKeyBody, &req, false); err != nil {
		return err
	}
	caller, err := a.signedCaller(r, reqsig.OpDataKey, 0, reqsig.BodyHash(nil), req.Context)
	if err != nil {
		return err
	}
	dek, wr, err := ks.DataKey(r.Context(), caller, chi.URLParam(r, "id"), wrapkey.Context(req.Context), req.WrappedOnly, requestID(r.Context()))
	if err != nil {
		return err
	}
	defer clear(dek)
	if req.WrappedOnly || dek == nil {
		writeJSON(w, http.StatusOK, client.DataKeyResponse{Wrapped: wr.Blob, KEKVersion: wr.Version, LogIndex: wr.LogIndex})
		return nil
	}
	var b secretJSON
	defer b.wipe()
	b.str(`{"plaintext":`)
	b.b64(dek)
	b.str(`,"wrapped":`)
	b.b64(wr.Blob)
	b.str(`,"kek_version":`)
	b.uint(uint64(wr.Version))
	b.str(`,"log_index":`)
	b.uint(wr.LogIndex)
	b.str("}\n")
	writeSecret(w, &b)
	return nil
}

// POST /v1/keks/{id}/rewrap.
func (a *api) rewrap(w http.ResponseWriter, r *http.Request) error {
	ks, err := a.keyOps()
	if err != nil {
		return err
	}
	var req client.RewrapRequest
	if err := decodeJSON(w, r, maxUnwrapBody, &req, false); err != nil {
		return err
	}
	caller, err := a.signedCaller(r, reqsig.OpRewrap, reqsig.BlobVersion(req.Wrapped), reqsig.BodyHash(req.Wrapped), req.Context)
	if err != nil {
		return err
	}
	wr, err := ks.Rewrap(r.Context(), caller, chi.URLParam(r, "id"), wrapkey.Context(req.Context), req.Wrapped, requestID(r.Context()))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, client.WrapResponse{Wrapped: wr.Blob, KEKVersion: wr.Version, LogIndex: wr.LogIndex})
	return nil
}

// checkBatch checks a batch's item count.
func checkBatch(n int) error {
	switch {
	case n == 0:
		return badRequest("a batch needs at least one item")
	case n > keysvc.MaxBatchItems:
		return tooLarge("a batch holds at most " + strconv.Itoa(keysvc.MaxBatchItems) + " items, not " + strconv.Itoa(n))
	}
	return nil
}

// POST /v1/keks/{id}/wrap/batch.
func (a *api) wrapBatch(w http.ResponseWriter, r *http.Request) error {
	ks, err := a.keyOps()
	if err != nil {
		return err
	}
	var req client.WrapBatchRequest
	defer func() {
		for _, it := range req.Items {
			clear(it.Plaintext)
		}
	}()
	if err := decodeJSON(w, r, maxWrapBatchBody, &req, false); err != nil {
		return err
	}
	if err := checkBatch(len(req.Items)); err != nil {
		return err
	}
	caller, err := a.signedBatchCaller(r, reqsig.OpWrapBatch, len(req.Items), func(i int) ([]byte, map[string]string) {
		return req.Items[i].Plaintext, req.Items[i].Context
	})
	if err != nil {
		return err
	}
	items := make([]keysvc.WrapItem, len(req.Items))
	for i, it := range req.Items {
		items[i] = keysvc.WrapItem{Context: wrapkey.Context(it.Context), Plaintext: it.Plaintext}
	}
	res := ks.WrapBatch(r.Context(), caller, chi.URLParam(r, "id"), items, requestID(r.Context()))
	if err := batchFailed(res); err != nil {
		return err
	}
	out := client.WrapBatchResponse{Results: make([]client.WrapResult, len(res))}
	var failed batchFailures
	for i, ir := range res {
		if ir.Err != nil {
			out.Results[i].Error = failed.item(ir)
			continue
		}
		out.Results[i] = client.WrapResult{Wrapped: ir.Wrapped.Blob, KEKVersion: ir.Wrapped.Version, LogIndex: ir.Wrapped.LogIndex}
	}
	failed.log(a, r)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// POST /v1/keks/{id}/unwrap/batch.
func (a *api) unwrapBatch(w http.ResponseWriter, r *http.Request) error {
	ks, err := a.keyOps()
	if err != nil {
		return err
	}
	var req client.UnwrapBatchRequest
	if err := decodeJSON(w, r, maxUnwrapBatchBody, &req, false); err != nil {
		return err
	}
	if err := checkBatch(len(req.Items)); err != nil {
		return err
	}
	caller, err := a.signedBatchCaller(r, reqsig.OpUnwrapBatch, len(req.Items), func(i int) ([]byte, map[string]string) {
		return req.Items[i].Wrapped, req.Items[i].Context
	})
	if err != nil {
		return err
	}
	items := make([]keysvc.UnwrapItem, len(req.Items))
	for i, it := range req.Items {
		items[i] = keysvc.UnwrapItem{Context: wrapkey.Context(it.Context), Blob: it.Wrapped}
	}
	res := ks.UnwrapBatch(r.Context(), caller, chi.URLParam(r, "id"), items, requestID(r.Context()))
	defer func() {
		for _, ir := range res {
			clear(ir.Plaintext)
		}
	}()
	if err := batchFailed(res); err != nil {
		return err
	}
	var failed batchFailures
	var b secretJSON
	defer b.wipe()
	b.str(`{"results":[`)
	for i, ir := range res {
		if i > 0 {
			b.str(",")
		}
		if ir.Err != nil {
			e, _ := json.Marshal(failed.item(ir)) // strings and an integer: cannot fail
			b.str(`{"error":`)
			b.raw(e)
			b.str("}")
			continue
		}
		b.str(`{"plaintext":`)
		b.b64(ir.Plaintext)
		b.str(`,"log_index":`)
		b.uint(ir.LogIndex)
		b.str("}")
	}
	b.str("]}\n")
	failed.log(a, r)
	writeSecret(w, &b)
	return nil
}

// GET /v1/keks/{id}/versions/{v}/public.
func (a *api) publicKey(w http.ResponseWriter, r *http.Request) error {
	ks, err := a.keyOps()
	if err != nil {
		return err
	}
	v, err := strconv.ParseUint(chi.URLParam(r, "v"), 10, 32)
	if err != nil || v == 0 {
		return badRequest("version must be a number from 1")
	}
	id := chi.URLParam(r, "id")
	pub, state, created, err := ks.PublicKey(id, uint32(v))
	if err != nil {
		return err
	}
	// The entry that dealt the version, so that a caller who cannot read
	// the log checks the key against it (with an inclusion proof).
	es, err := a.svc.Entries(created, 1)
	if err != nil {
		return err
	}
	if len(es) != 1 {
		return errors.New("httpapi: the entry that created the kek version is not in this node's log")
	}
	writeJSON(w, http.StatusOK, client.PublicKeyResponse{KEKID: id, KEKVersion: uint32(v), PublicKey: pub, State: state, LogIndex: created, Entry: es[0]})
	return nil
}

// batchFailed returns the error that failed a whole batch before anything
// was logged (its entry did not commit, the KEK could not be read): every
// item failed with an error that is no refusal, and none has a receipt.
// The request then fails with that error, as a single operation would.
func batchFailed(res []keysvc.ItemResult) error {
	var ke *keysvc.KeyOpError
	for _, ir := range res {
		if ir.Err == nil || ir.LogIndex != 0 || errors.As(ir.Err, &ke) {
			return nil
		}
	}
	return res[0].Err
}

// batchFailures collects a batch's failed items: refusals become item
// errors with the index of the entry that logged them; any other cause (an
// activation that could not finish, an internal failure) is classified
// like a request's error and logged once for the batch.
type batchFailures struct {
	n     int
	first error
	level slog.Level
}

func (f *batchFailures) item(ir keysvc.ItemResult) *client.ItemError {
	err := ir.Err
	var ke *keysvc.KeyOpError
	if errors.As(err, &ke) {
		idx := ke.Entry
		if idx == 0 {
			idx = ir.LogIndex
		}
		return &client.ItemError{Code: ke.Code, Message: ke.Reason, LogIndex: idx}
	}
	m := classify(err)
	if f.n == 0 || m.level > f.level {
		f.first, f.level = err, m.level
	}
	f.n++
	code := m.code
	if m.leader != nil {
		// A redirect means nothing inside a batch's answer.
		code = errcode.NoLeader
	}
	return &client.ItemError{Code: code, Message: m.message, LogIndex: ir.LogIndex}
}

func (f *batchFailures) log(a *api, r *http.Request) {
	if f.n == 0 {
		return
	}
	a.log.Log(r.Context(), f.level, "batch items failed",
		slog.String("request_id", requestID(r.Context())), slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("failed", f.n), slog.Any("cause", f.first))
}

// classifyKeyOp maps a refused key operation to its status; the code is
// keysvc's and the message its reason (which names the KEK, version,
// region or context field, never key material).
func classifyKeyOp(err error) (mapping, bool) {
	var ke *keysvc.KeyOpError
	if !errors.As(err, &ke) {
		return mapping{}, false
	}
	level := slog.LevelInfo
	if ke.Code == errcode.SharesUnavailable {
		level = slog.LevelWarn
	}
	return mapping{status: keyOpStatus(ke.Code), code: ke.Code, message: ke.Reason, level: level}, true
}

func keyOpStatus(code string) int {
	switch code {
	case errcode.AccessDenied, errcode.RegionDenied:
		return http.StatusForbidden
	case errcode.ContextMissing, errcode.InvalidContext, errcode.InvalidPlaintext,
		errcode.MalformedBlob, errcode.WrongKEK, errcode.UnwrapFailed:
		return http.StatusBadRequest
	case errcode.UnknownKEK, errcode.UnknownVersion:
		return http.StatusNotFound
	case errcode.KEKDisabled, errcode.NoActiveVersion:
		return http.StatusConflict
	case errcode.KEKDestroyed:
		return http.StatusGone
	case errcode.SharesUnavailable, errcode.NotCaughtUp:
		return http.StatusServiceUnavailable
	}
	if st, ok := reqsigStatus(code); ok {
		return st
	}
	return http.StatusForbidden // a refusal this version does not know more about
}

// reqsigStatus is the status of a signed-request refusal, by its reqsig
// code: the request does not describe itself (400), is not authenticated
// by a fresh valid signature (401), comes from a certificate that may not
// sign (403: revoked, or a key that cannot sign), or was seen before (409).
func reqsigStatus(code string) (int, bool) {
	switch code {
	case reqsig.CodeMalformed, reqsig.CodeMismatch:
		return http.StatusBadRequest, true
	case reqsig.CodeMissing, reqsig.CodeInvalid, reqsig.CodeStale:
		return http.StatusUnauthorized, true
	case reqsig.CodeUntrusted:
		return http.StatusForbidden, true
	case reqsig.CodeReplayed:
		return http.StatusConflict, true
	}
	return 0, false
}

// classifyReqsig maps a *reqsig.Error (from the API's checks, or from
// keysvc's, which repeat them and add the replay check) to its status; the
// code is reqsig's and the message its reason (names, times, hashes; no
// key material).
func classifyReqsig(err error) (mapping, bool) {
	var e *reqsig.Error
	if !errors.As(err, &e) {
		return mapping{}, false
	}
	st, ok := reqsigStatus(e.Code)
	if !ok {
		st = http.StatusUnauthorized // a code this version does not know: refuse as unauthenticated
	}
	return mapping{status: st, code: e.Code, message: e.Reason, level: slog.LevelInfo}, true
}

// secretJSON builds a JSON answer that holds key material in a buffer it
// owns, so that the bytes can be cleared once written (encoding/json keeps
// its buffers in a pool). A growth clears the buffer it leaves.
type secretJSON struct{ b []byte }

func (s *secretJSON) grow(n int) {
	if cap(s.b)-len(s.b) >= n {
		return
	}
	nb := make([]byte, len(s.b), 2*cap(s.b)+n+256)
	copy(nb, s.b)
	clear(s.b)
	s.b = nb
}

func (s *secretJSON) str(x string) {
	s.grow(len(x))
	s.b = append(s.b, x...)
}

func (s *secretJSON) raw(x []byte) {
	s.grow(len(x))
	s.b = append(s.b, x...)
}

// b64 appends p as a JSON string in standard base64 with padding, as
// encoding/json encodes a []byte.
func (s *secretJSON) b64(p []byte) {
	s.grow(base64.StdEncoding.EncodedLen(len(p)) + 2)
	s.b = append(s.b, '"')
	s.b = base64.StdEncoding.AppendEncode(s.b, p)
	s.b = append(s.b, '"')
}

func (s *secretJSON) uint(v uint64) {
	s.grow(20)
	s.b = strconv.AppendUint(s.b, v, 10)
}

func (s *secretJSON) wipe() { clear(s.b[:cap(s.b)]) }

// writeSecret answers b with 200, as writeJSON would.
func writeSecret(w http.ResponseWriter, b *secretJSON) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(b.b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.b) // the client may be gone; nothing to do about it
}
