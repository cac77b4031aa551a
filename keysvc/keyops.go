// Key operations for backup agents: wrap, unwrap, datakey, rewrap and their
// batch forms, each checked against the KEK's policy and answered only once
// its log entry has committed (denials are logged too).

package keysvc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/reqsig"
	"github.com/custos-eu/custos/keysvc/state"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// KeyOpError is a refused key operation, logged as a denied entry.
type KeyOpError struct {
	Code   string
	Reason string
	Entry  uint64 // log index of the denied entry
}

func (e *KeyOpError) Error() string {
	return fmt.Sprintf("keysvc: refused (%s): %s (logged as entry %d)", e.Code, e.Reason, e.Entry)
}

// Caller is who asks for a key operation, as its certificate says.
type Caller struct {
	ID    identity.Identity
	Actor ledger.Actor
	// Signed is the client's signed request, which the API layer has checked
	// against the request it came with and the caller's certificate. An
	// operation that must activate a key refuses without it: peers release
	// shares only for a signed request.
	Signed *reqsig.Signed
}

// Wrapped is a wrapped data key and the receipt of its log entry.
type Wrapped struct {
	Blob     []byte
	Version  uint32
	LogIndex uint64
}

// denyErr is a refusal before logging.
type denyErr struct{ code, reason string }

func (d *denyErr) Error() string { return d.code + ": " + d.reason }

func deny(code, format string, a ...any) *denyErr {
	return &denyErr{code, fmt.Sprintf(format, a...)}
}

// allowed decides whether who may do op (wrap or unwrap access) on a KEK
// with policy p, with context c: granted to its role or identity, from one
// of the regions, with every required context field.
func allowed(p ceremony.Policy, unwrap bool, who identity.Identity, c wrapkey.Context) *denyErr {
	if d := allowedIdentity(p, unwrap, who); d != nil {
		return d
	}
	for _, f := range p.Context {
		if c[f] == "" {
			return deny(errcode.ContextMissing, "context field %q is required by the kek's policy", f)
		}
	}
	if err := c.Validate(); err != nil {
		return deny(errcode.InvalidContext, "%v", err)
	}
	return nil
}

// allowedIdentity is allowed without the context: the role or identity,
// and the region.
func allowedIdentity(p ceremony.Policy, unwrap bool, who identity.Identity) *denyErr {
	a, what := p.Wrap, "wrap"
	if unwrap {
		a, what = p.Unwrap, "unwrap"
	}
	role := string(who.Role)
	if !a.Grants(role, who.Name) {
		return deny(errcode.AccessDenied, "the kek's policy does not let %s/%s %s", role, who.Name, what)
	}
	if !a.InRegion(who.Region) {
		return deny(errcode.RegionDenied, "the kek's policy does not allow %s from region %s", what, who.Region)
	}
	return nil
}

// lookup returns KEK id's record, or a denial.
func (n *Node) lookup(ctx context.Context, id string) (state.KEK, *denyErr, error) {
	if err := wrapkey.ValidateKEKID(id); err != nil {
		return state.KEK{}, deny(errcode.UnknownKEK, "%q is not a kek id", id), nil
	}
	k, found, err := n.cachedKEK(id)
	if err != nil {
		return state.KEK{}, nil, err
	}
	if !found {
		// Not here yet, or not at all: only a node that has applied what
		// the leader committed may say "unknown".
		if err := n.CatchUp(ctx); err != nil {
			return state.KEK{}, deny(errcode.NotCaughtUp, "kek %q is not known to this node, which could not catch up with the leader to be sure (%v); retry", id, err), nil
		}
		if k, found, err = n.cachedKEK(id); err != nil {
			return state.KEK{}, nil, err
		}
	}
	if !found {
		return state.KEK{}, deny(errcode.UnknownKEK, "no kek %q", id), nil
	}
	return k, nil, nil
}

// kekCache keeps decoded KEK records for the key operations, dropped
// whenever a command that may change them is applied.
type kekCache struct {
	mu   sync.Mutex
	gen  uint64
	recs map[string]state.KEK
}

// generation changes whenever this node applies a command that may change
// KEK records.
func (c *kekCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *kekCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.recs = nil
}

// cachedKEK is KEK, from the cache when it can. The record's slices are
// shared: callers must not modify them.
func (n *Node) cachedKEK(id string) (state.KEK, bool, error) {
	c := &n.kekRecs
	c.mu.Lock()
	k, ok := c.recs[id]
	gen := c.gen
	c.mu.Unlock()
	if ok {
		return k, true, nil
	}
	k, found, err := n.KEK(id)
	if err != nil || !found {
		return k, found, err
	}
	c.mu.Lock()
	if c.gen == gen {
		if c.recs == nil {
			c.recs = map[string]state.KEK{}
		}
		c.recs[id] = k
	}
	c.mu.Unlock()
	return k, true, nil
}

// latestActive returns the highest active version of k.
func latestActive(k *state.KEK) (*state.KEKVersion, *denyErr) {
	for i := len(k.Versions) - 1; i >= 0; i-- {
		if k.Versions[i].State == ledger.KEKActive {
			return &k.Versions[i], nil
		}
	}
	return nil, deny(errcode.NoActiveVersion, "kek %q has no active version", k.ID)
}

// usable returns version ver of k if it may unwrap.
func usable(k *state.KEK, ver uint32) (*state.KEKVersion, *denyErr) {
	v, ok := k.Version(ver)
	switch {
	case !ok:
		return nil, deny(errcode.UnknownVersion, "kek %q has no version %d", k.ID, ver)
	case v.State == ledger.KEKDisabled:
		return nil, deny(errcode.KEKDisabled, "kek %q v%d is disabled", k.ID, ver)
	case v.State == ledger.KEKDestroyed:
		return nil, deny(errcode.KEKDestroyed, "kek %q v%d is destroyed", k.ID, ver)
	}
	return v, nil
}

func contextHash(c wrapkey.Context) string {
	info, err := wrapkey.Info("x", 1, c)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(info)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func blobHash(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// opEntry is the log entry of one key operation.
func opEntry(typ string, caller Caller, requestID, kekID string, ver uint32, c wrapkey.Context) ledger.Entry {
	e := ledger.Entry{Type: typ, Actor: caller.Actor, RequestID: requestID, Outcome: ledger.OutcomeOK,
		Details: map[string]string{}}
	if wrapkey.ValidateKEKID(kekID) == nil {
		e.KEKID = kekID
	}
	e.KEKVersion = ver
	if h := contextHash(c); h != "" {
		e.Details["context"] = h
	}
	return e
}

// logDenial logs d and returns it as a *KeyOpError, or the logging error
// (fail closed: a denial that cannot be logged is not answered as one). A
// repeat of a denial logged lately is folded (denials.go); its Entry is the
// one that opened the fold.
func (n *Node) logDenial(ctx context.Context, e ledger.Entry, d *denyErr) error {
	e.Outcome, e.Reason = ledger.OutcomeDenied, state.Clip(d.code+": "+d.reason)
	i, err := n.denials.logDenial(ctx, e)
	if err != nil {
		return err
	}
	n.m.keyOpDenied.Add(1)
	return &KeyOpError{Code: d.code, Reason: d.reason, Entry: i}
}

// Wrap wraps plaintext (a data key, 1..4096 bytes) to the latest active
// version of KEK id under context c, for caller.
func (n *Node) Wrap(ctx context.Context, caller Caller, id string, c wrapkey.Context, plaintext []byte, requestID string) (Wrapped, error) {
	w, err := n.wrapOne(ctx, ledger.TypeWrap, caller, id, c, plaintext, requestID, nil)
	return w, err
}

// wrapOne wraps and logs an entry of type typ; extra adds details.
func (n *Node) wrapOne(ctx context.Context, typ string, caller Caller, id string, c wrapkey.Context, plaintext []byte, requestID string, extra map[string]string) (Wrapped, error) {
	e := opEntry(typ, caller, requestID, id, 0, c)
	for k, v := range extra {
		e.Details[k] = v
	}
	gen := n.kekRecs.generation()
	k, d, err := n.lookup(ctx, id)
	if err != nil {
		return Wrapped{}, err
	}
	var v *state.KEKVersion
	if d == nil {
		d = allowed(k.Policy, false, caller.ID, c)
	}
	if d == nil {
		v, d = latestActive(&k)
	}
	if d == nil && (len(plaintext) < wrapkey.MinDEKSize || len(plaintext) > wrapkey.MaxDEKSize) {
		d = deny(errcode.InvalidPlaintext, "a data key must be %d..%d bytes, not %d", wrapkey.MinDEKSize, wrapkey.MaxDEKSize, len(plaintext))
	}
	if d != nil {
		if v != nil {
			e.KEKVersion = v.Version
		}
		return Wrapped{}, n.logDenial(ctx, e, d)
	}
	blob, err := wrapkey.Wrap(rand.Reader, v.PublicKey, id, v.Version, c, plaintext)
	if err != nil {
		return Wrapped{}, n.logDenial(ctx, e, deny(errcode.InvalidContext, "%v", err))
	}
	e.KEKVersion = v.Version
	e.Details["wrapped"] = blobHash(blob)
	i, err := n.Append(ctx, e)
	if err != nil {
		return Wrapped{}, err
	}
	if err := n.confirm(ctx, e, i, gen, func() *denyErr { return n.recheck(caller, id, v.Version, false, c) }); err != nil {
		return Wrapped{}, err
	}
	return Wrapped{Blob: blob, Version: v.Version, LogIndex: i}, nil
}

// confirm stands by an answer whose entry e committed at index i after
// checks made against KEK generation gen: once this node has applied i, if
// no KEK record changed meanwhile the answer stands; otherwise check decides
// again, and a refusal withdraws the answer (a disable, destroy or policy
// change committed between the check and the entry wins), logged as a
// denied entry naming i.
func (n *Node) confirm(ctx context.Context, e ledger.Entry, i, gen uint64, check func() *denyErr) error {
	var d *denyErr
	if err := n.waitLogged(ctx, i); err != nil {
		d = deny(errcode.NotCaughtUp, "this node has not applied the operation's entry %d yet, so it cannot confirm it; retry", i)
	} else if n.kekRecs.generation() != gen {
		d = check()
	}
	if d == nil {
		return nil
	}
	e.Details = maps.Clone(e.Details)
	e.Details["withdraws"] = strconv.FormatUint(i, 10)
	d.reason = "withdrawn after entry " + strconv.FormatUint(i, 10) + ": " + d.reason
	return n.logDenial(ctx, e, d)
}

// recheck decides again whether caller may wrap (or unwrap) with version
// ver of KEK id under context c, on this node's current state.
func (n *Node) recheck(caller Caller, id string, ver uint32, unwrap bool, c wrapkey.Context) *denyErr {
	k, d, err := n.lookup(context.Background(), id)
	if err != nil {
		return deny(errcode.NotCaughtUp, "cannot read kek %q: %v", id, err)
	}
	if d != nil {
		return d
	}
	if d := allowed(k.Policy, unwrap, caller.ID, c); d != nil {
		return d
	}
	_, d = usable(&k, ver)
	return d
}

// DataKey makes a fresh 32-byte data key and wraps it like Wrap; the
// caller gets both (or, when wrappedOnly, the wrapped form alone and the
// plaintext is zeroised).
func (n *Node) DataKey(ctx context.Context, caller Caller, id string, c wrapkey.Context, wrappedOnly bool, requestID string) ([]byte, Wrapped, error) {
	dek := make([]byte, 32)
	if _, err := rand.Read(dek); err != nil {
		return nil, Wrapped{}, err
	}
	w, err := n.wrapOne(ctx, ledger.TypeDataKey, caller, id, c, dek, requestID, map[string]string{"wrapped_only": strconv.FormatBool(wrappedOnly)})
	if err != nil || wrappedOnly {
		clear(dek)
		return nil, w, err
	}
	return dek, w, nil
}

// Unwrap opens blob under context c with KEK id, for caller: the blob's
// version must be active and the policy must let caller unwrap from its
// region with the required context.
func (n *Node) Unwrap(ctx context.Context, caller Caller, id string, c wrapkey.Context, blob []byte, requestID string) ([]byte, uint64, error) {
	e := opEntry(ledger.TypeUnwrap, caller, requestID, id, 0, c)
	e.Details["wrapped"] = blobHash(blob)
	gen := n.kekRecs.generation()
	dek, err := n.unwrapChecked(ctx, caller, id, c, blob, &e)
	if err != nil {
		return nil, 0, err
	}
	i, err := n.Append(ctx, e)
	if err == nil {
		err = n.confirm(ctx, e, i, gen, func() *denyErr { return n.recheck(caller, id, e.KEKVersion, true, c) })
	}
	if err != nil {
		clear(dek)
		return nil, 0, err
	}
	return dek, i, nil
}

// unwrapChecked checks and opens blob, filling e's version; a refusal is
// logged with e and returned.
func (n *Node) unwrapChecked(ctx context.Context, caller Caller, id string, c wrapkey.Context, blob []byte, e *ledger.Entry) ([]byte, error) {
	k, d, err := n.lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	var dek []byte
	if d == nil {
		dek, e.KEKVersion, d, err = n.unwrapCore(ctx, caller, &k, c, blob, nil)
		if err != nil {
			return nil, err
		}
	}
	if d != nil {
		return nil, n.logDenial(ctx, *e, d)
	}
	return dek, nil
}

// unwrapCore checks and opens blob with KEK k, logging nothing: the
// blob's version (0 if it does not parse), the data key or a refusal.
func (n *Node) unwrapCore(ctx context.Context, caller Caller, k *state.KEK, c wrapkey.Context, blob []byte, bk *batchKeys) ([]byte, uint32, *denyErr, error) {
	b, err := wrapkey.Parse(blob)
	if err != nil {
		return nil, 0, deny(errcode.MalformedBlob, "%v", err), nil
	}
	if b.KEKID != k.ID {
		return nil, 0, deny(errcode.WrongKEK, "the blob is wrapped with kek %q, not %q", b.KEKID, k.ID), nil
	}
	if d := allowed(k.Policy, true, caller.ID, c); d != nil {
		return nil, b.KEKVersion, d, nil
	}
	v, d := usable(k, b.KEKVersion)
	if d != nil {
		return nil, b.KEKVersion, d, nil
	}
	dek, err := n.withKey(ctx, caller, k, v, c, bk, func(key *wrapkey.Key) ([]byte, error) { return key.Unwrap(blob, c) })
	var de *denyErr
	switch {
	case errors.As(err, &de):
		return nil, v.Version, de, nil
	case errors.Is(err, wrapkey.ErrOpen):
		return nil, v.Version, deny(errcode.UnwrapFailed, "the blob does not open with kek %q v%d under this context: it was modified, or wrapped under another context", k.ID, v.Version), nil
	case err != nil:
		return nil, v.Version, nil, err
	}
	return dek, v.Version, nil, nil
}

// Rewrap opens blob as Unwrap does and wraps its data key to the latest
// active version, without returning it. One entry records both.
func (n *Node) Rewrap(ctx context.Context, caller Caller, id string, c wrapkey.Context, blob []byte, requestID string) (Wrapped, error) {
	e := opEntry(ledger.TypeRewrap, caller, requestID, id, 0, c)
	e.Details["from"] = blobHash(blob)
	gen := n.kekRecs.generation()
	k, d, err := n.lookup(ctx, id)
	if err != nil {
		return Wrapped{}, err
	}
	if d == nil {
		d = allowed(k.Policy, false, caller.ID, c)
	}
	if d != nil {
		return Wrapped{}, n.logDenial(ctx, e, d)
	}
	dek, err := n.unwrapChecked(ctx, caller, id, c, blob, &e)
	if err != nil {
		return Wrapped{}, err
	}
	defer clear(dek)
	from := e.KEKVersion
	v, d := latestActive(&k)
	if d != nil {
		return Wrapped{}, n.logDenial(ctx, e, d)
	}
	out, err := wrapkey.Wrap(rand.Reader, v.PublicKey, id, v.Version, c, dek)
	if err != nil {
		return Wrapped{}, err
	}
	e.KEKVersion = v.Version
	e.Details["from_version"] = strconv.FormatUint(uint64(from), 10)
	e.Details["wrapped"] = blobHash(out)
	i, err := n.Append(ctx, e)
	if err != nil {
		return Wrapped{}, err
	}
	if err := n.confirm(ctx, e, i, gen, func() *denyErr {
		if d := n.recheck(caller, id, from, true, c); d != nil {
			return d
		}
		return n.recheck(caller, id, v.Version, false, c)
	}); err != nil {
		return Wrapped{}, err
	}
	return Wrapped{Blob: out, Version: v.Version, LogIndex: i}, nil
}

// WrapItem and UnwrapItem are one element of a batch.
type WrapItem struct {
	Context   wrapkey.Context
	Plaintext []byte
}

type UnwrapItem struct {
	Context wrapkey.Context
	Blob    []byte
}

// ItemResult is one element's outcome: Err is a *KeyOpError or the error
// that stopped it.
type ItemResult struct {
	Wrapped   Wrapped
	Plaintext []byte
	LogIndex  uint64
	Err       error
}

// MaxBatchItems bounds a batch.
const MaxBatchItems = 1000

// forEach runs fn for each of n items, 32 at a time.
func forEach(n int, fn func(i int)) {
	sem := make(chan struct{}, 32)
	done := make(chan struct{})
	for i := range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; done <- struct{}{} }()
			fn(i)
		}()
	}
	for range n {
		<-done
	}
}

// Batches are logged as one entry (type kek.wrap or kek.unwrap) whose
// details count the items, the refusals by code, and hash the items'
// blobs in order: each item's receipt is that entry. The entry commits
// before any result is returned; if it cannot, every item fails.

// WrapBatch wraps each item as Wrap does.
func (n *Node) WrapBatch(ctx context.Context, caller Caller, id string, items []WrapItem, requestID string) []ItemResult {
	out := make([]ItemResult, len(items))
	gen := n.kekRecs.generation()
	k, d, err := n.lookup(ctx, id)
	if err == nil && d == nil {
		var v *state.KEKVersion
		v, d = latestActive(&k)
		if d == nil {
			forEach(len(items), func(i int) {
				it := items[i]
				if d := allowed(k.Policy, false, caller.ID, it.Context); d != nil {
					out[i].Err = d
					return
				}
				if len(it.Plaintext) < wrapkey.MinDEKSize || len(it.Plaintext) > wrapkey.MaxDEKSize {
					out[i].Err = deny(errcode.InvalidPlaintext, "a data key must be %d..%d bytes, not %d", wrapkey.MinDEKSize, wrapkey.MaxDEKSize, len(it.Plaintext))
					return
				}
				blob, err := wrapkey.Wrap(rand.Reader, v.PublicKey, id, v.Version, it.Context, it.Plaintext)
				if err != nil {
					out[i].Err = deny(errcode.InvalidContext, "%v", err)
					return
				}
				out[i].Wrapped = Wrapped{Blob: blob, Version: v.Version}
			})
		}
	}
	n.logBatch(ctx, ledger.TypeWrap, caller, id, requestID, out, err, d, func(i int) []byte { return out[i].Wrapped.Blob }, gen,
		func(i int) *denyErr { return n.recheck(caller, id, out[i].Wrapped.Version, false, items[i].Context) })
	return out
}

// UnwrapBatch unwraps each item as Unwrap does.
func (n *Node) UnwrapBatch(ctx context.Context, caller Caller, id string, items []UnwrapItem, requestID string) []ItemResult {
	out := make([]ItemResult, len(items))
	vers := make([]uint32, len(items))
	var bk batchKeys
	defer bk.destroy()
	gen := n.kekRecs.generation()
	k, d, err := n.lookup(ctx, id)
	if err == nil && d == nil {
		forEach(len(items), func(i int) {
			dek, ver, d, err := n.unwrapCore(ctx, caller, &k, items[i].Context, items[i].Blob, &bk)
			vers[i] = ver
			switch {
			case err != nil:
				out[i].Err = err
			case d != nil:
				out[i].Err = d
			default:
				out[i].Plaintext = dek
			}
		})
	}
	n.logBatch(ctx, ledger.TypeUnwrap, caller, id, requestID, out, err, d, func(i int) []byte { return items[i].Blob }, gen,
		func(i int) *denyErr { return n.recheck(caller, id, vers[i], true, items[i].Context) })
	return out
}

// logBatch logs one entry for a batch's results and sets each result's
// receipt, turning refusals into *KeyOpError. err or d, when set, failed
// the whole batch before any item ran. blobOf gives the blob an item
// hashes into the entry.
func (n *Node) logBatch(ctx context.Context, typ string, caller Caller, id, requestID string, out []ItemResult, err error, d *denyErr, blobOf func(int) []byte,
	gen uint64, recheck func(int) *denyErr) {
	failAll := func(err error) {
		for i := range out {
			clear(out[i].Plaintext)
			out[i] = ItemResult{Err: err}
		}
	}
	if err != nil {
		failAll(err)
		return
	}
	e := opEntry(typ, caller, requestID, id, 0, nil)
	delete(e.Details, "context")
	e.Details["items"] = strconv.Itoa(len(out))
	if d != nil {
		failAll(n.logDenial(ctx, e, d))
		return
	}
	codes := map[string]int{}
	var (
		ok     int
		failed error
	)
	h := sha256.New()
	for i := range out {
		h.Write([]byte(blobHash(blobOf(i))))
		var de *denyErr
		switch {
		case errors.As(out[i].Err, &de):
			codes[de.code]++
		case out[i].Err != nil:
			failed = out[i].Err
		default:
			ok++
		}
	}
	e.Details["ok"] = strconv.Itoa(ok)
	if len(codes) > 0 {
		var parts []string
		for _, c := range slices.Sorted(maps.Keys(codes)) {
			parts = append(parts, c+":"+strconv.Itoa(codes[c]))
		}
		e.Details["denied"] = strings.Join(parts, ",")
	}
	if failed != nil {
		e.Details["failed"] = "1+"
	}
	e.Details["items_sha256"] = "sha256:" + hex.EncodeToString(h.Sum(nil))
	if ok == 0 {
		e.Outcome, e.Reason = ledger.OutcomeDenied, state.Clip("no item succeeded: "+e.Details["denied"])
	}
	idx, err := n.Append(ctx, e)
	if err != nil {
		failAll(err)
		return
	}
	if len(codes) > 0 {
		n.m.keyOpDenied.Add(uint64(len(out) - ok))
	}
	for i := range out {
		out[i].LogIndex = idx
		out[i].Wrapped.LogIndex = idx
		var de *denyErr
		if errors.As(out[i].Err, &de) {
			out[i].Err = &KeyOpError{Code: de.code, Reason: de.reason, Entry: idx}
		}
	}
	// As confirm does for one operation: items a KEK change committed in
	// between no longer allows are withdrawn, in one denied entry.
	stale := n.waitLogged(ctx, idx) != nil
	if !stale && n.kekRecs.generation() == gen {
		return
	}
	withdrawn := map[int]*denyErr{}
	for i := range out {
		if out[i].Err != nil {
			continue
		}
		if stale {
			withdrawn[i] = deny(errcode.NotCaughtUp, "this node has not applied the batch's entry %d yet, so it cannot confirm it; retry", idx)
		} else if d := recheck(i); d != nil {
			withdrawn[i] = d
		}
	}
	if len(withdrawn) == 0 {
		return
	}
	w := opEntry(typ, caller, requestID, id, 0, nil)
	delete(w.Details, "context")
	w.Details["withdraws"] = strconv.FormatUint(idx, 10)
	w.Details["items"] = strconv.Itoa(len(withdrawn))
	w.Outcome, w.Reason = ledger.OutcomeDenied, state.Clip("withdrawn after entry "+strconv.FormatUint(idx, 10)+": a kek change committed meanwhile")
	widx, err := n.Append(ctx, w)
	for i, d := range withdrawn {
		clear(out[i].Plaintext)
		out[i] = ItemResult{LogIndex: widx, Err: err}
		if err == nil {
			out[i].Err = &KeyOpError{Code: d.code, Reason: "withdrawn after entry " + strconv.FormatUint(idx, 10) + ": " + d.reason, Entry: widx}
		}
	}
}

// PublicKey returns version ver of KEK id's public key, its state and the
// log index of the ceremony.execute entry that created (dealt) it.
func (n *Node) PublicKey(id string, ver uint32) (pub []byte, kstate string, created uint64, err error) {
	err = n.state.view(func(tx *bbolt.Tx) error {
		k, found, err := state.GetKEK(tx, id)
		if err != nil {
			return err
		}
		v, ok := k.Version(ver)
		if !found || !ok {
			return fmt.Errorf("%w: kek %q v%d", ErrUnknownKEK, id, ver)
		}
		pub, kstate, created = v.PublicKey, v.State, v.Created
		return nil
	})
	return pub, kstate, created, err
}
