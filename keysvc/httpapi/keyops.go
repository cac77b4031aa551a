// Key-operation routes for backup agents: wrap, unwrap, datakey, rewrap,
// their batch forms, and KEK version public keys. Any node serves them; the
// KEK's policy decides who may do what, and keysvc logs every operation,
// refusals included.

package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/identity"
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

// Body limits of the key-operation routes.
const (
	maxKeyOpBody = 64 << 10 // one wrap, unwrap, datakey or rewrap
	maxBatchBody = 8 << 20  // a batch of at most keysvc.MaxBatchItems items
)

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
		return nil, &apiError{http.StatusNotImplemented, client.CodeNotSupportedYet, "this node does not serve key operations"}
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

// keyOpCaller is the request's caller as keysvc sees it.
func keyOpCaller(r *http.Request) keysvc.Caller {
	c := callerOf(r.Context())
	return keysvc.Caller{ID: c.id, Actor: c.actor}
}

// POST /v1/keks/{id}/wrap.
func (a *api) wrap(w http.ResponseWriter, r *http.Request) error {
	ks, err := a.keyOps()
	if err != nil {
		return err
	}
	var req client.WrapRequest
	defer func() { clear(req.Plaintext) }()
	if err := decodeJSON(w, r, maxKeyOpBody, &req, false); err != nil {
		return err
	}
	wr, err := ks.Wrap(r.Context(), keyOpCaller(r), chi.URLParam(r, "id"), wrapkey.Context(req.Context), req.Plaintext, requestID(r.Context()))
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
	if err := decodeJSON(w, r, maxKeyOpBody, &req, false); err != nil {
		return err
	}
	dek, idx, err := ks.Unwrap(r.Context(), keyOpCaller(r), chi.URLParam(r, "id"), wrapkey.Context(req.Context), req.Wrapped, requestID(r.Context()))
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
	if err := decodeJSON(w, r, maxKeyOpBody, &req, false); err != nil {
		return err
	}
	dek, wr, err := ks.DataKey(r.Context(), keyOpCaller(r), chi.URLParam(r, "id"), wrapkey.Context(req.Context), req.WrappedOnly, requestID(r.Context()))
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
	if err := decodeJSON(w, r, maxKeyOpBody, &req, false); err != nil {
		return err
	}
	wr, err := ks.Rewrap(r.Context(), keyOpCaller(r), chi.URLParam(r, "id"), wrapkey.Context(req.Context), req.Wrapped, requestID(r.Context()))
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
	if err := decodeJSON(w, r, maxBatchBody, &req, false); err != nil {
		return err
	}
	if err := checkBatch(len(req.Items)); err != nil {
		return err
	}
	items := make([]keysvc.WrapItem, len(req.Items))
	for i, it := range req.Items {
		items[i] = keysvc.WrapItem{Context: wrapkey.Context(it.Context), Plaintext: it.Plaintext}
	}
	res := ks.WrapBatch(r.Context(), keyOpCaller(r), chi.URLParam(r, "id"), items, requestID(r.Context()))
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
	if err := decodeJSON(w, r, maxBatchBody, &req, false); err != nil {
		return err
	}
	if err := checkBatch(len(req.Items)); err != nil {
		return err
	}
	items := make([]keysvc.UnwrapItem, len(req.Items))
	for i, it := range req.Items {
		items[i] = keysvc.UnwrapItem{Context: wrapkey.Context(it.Context), Blob: it.Wrapped}
	}
	res := ks.UnwrapBatch(r.Context(), keyOpCaller(r), chi.URLParam(r, "id"), items, requestID(r.Context()))
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
		code = client.CodeNoLeader
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
	if ke.Code == keysvc.CodeSharesUnavailable {
		level = slog.LevelWarn
	}
	return mapping{status: keyOpStatus(ke.Code), code: ke.Code, message: ke.Reason, level: level}, true
}

func keyOpStatus(code string) int {
	switch code {
	case keysvc.CodeAccessDenied, keysvc.CodeRegionDenied:
		return http.StatusForbidden
	case keysvc.CodeContextMissing, keysvc.CodeInvalidContext, keysvc.CodeInvalidPlaintext,
		keysvc.CodeMalformedBlob, keysvc.CodeWrongKEK, keysvc.CodeUnwrapFailed:
		return http.StatusBadRequest
	case keysvc.CodeUnknownKEK, keysvc.CodeUnknownVersion:
		return http.StatusNotFound
	case keysvc.CodeKEKDisabled, keysvc.CodeNoActiveVersion:
		return http.StatusConflict
	case keysvc.CodeKEKDestroyed:
		return http.StatusGone
	case keysvc.CodeSharesUnavailable, keysvc.CodeNotCaughtUp:
		return http.StatusServiceUnavailable
	}
	return http.StatusForbidden // a refusal this version does not know more about
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
