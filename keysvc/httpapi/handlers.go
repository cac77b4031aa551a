// Route handlers: each parses its input, calls the node, and returns an
// error for writeError or writes its answer.

package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/state"
)

// GET /v1/sys/health: 200 when the node is ready, else 503 not_ready.
func (a *api) health(w http.ResponseWriter, r *http.Request) error {
	if err := a.svc.Ready(); err != nil {
		if errors.Is(err, keysvc.ErrNotReady) {
			return &apiError{http.StatusServiceUnavailable, errcode.NotReady, sentinelText(err)}
		}
		return err
	}
	writeJSON(w, http.StatusOK, client.Health{Status: "ok", Node: a.nodeID, Leader: a.svc.Leader().ID})
	return nil
}

// GET /v1/sys/cluster: the node's view of the cluster.
func (a *api) cluster(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, wireStatus(a.svc.Status()))
	return nil
}

// wireStatus is the JSON shape of a keysvc.Status.
func wireStatus(st keysvc.Status) client.Status {
	out := client.Status{
		NodeID: st.NodeID, Region: st.Region, Cluster: st.Cluster,
		Leader:         client.Leader(st.Leader),
		Members:        make([]client.Member, 0, len(st.Members)),
		LogSize:        st.LogSize,
		AllowedRegions: append([]string{}, st.AllowedRegions...),
		Raft: client.RaftStats{
			State: st.Raft.State, Term: st.Raft.Term, LastLogIndex: st.Raft.LastLogIndex,
			CommitIndex: st.Raft.CommitIndex, AppliedIndex: st.Raft.AppliedIndex,
			LastSnapshotIndex: st.Raft.LastSnapshotIndex, LastContact: st.Raft.LastContact,
		},
		NotReady:    st.NotReady,
		Initialized: st.Initialized, Officers: st.Officers, Quorum: st.Quorum,
		DefaultThreshold: st.DefaultThreshold, StateVersion: st.StateVersion,
	}
	for _, m := range st.Members {
		out.Members = append(out.Members, client.Member(m))
	}
	return out
}

// GET /v1/ledger/checkpoint: the leader's signed checkpoint. A follower
// answers 307 to the leader's same URL (see writeError).
func (a *api) checkpoint(w http.ResponseWriter, r *http.Request) error {
	note, err := a.svc.Checkpoint(r.Context())
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(note)
	return nil
}

// GET /v1/ledger/entries?start=S&limit=N
func (a *api) entries(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	start, err := uintParam(q, "start", false)
	if err != nil {
		return err
	}
	limit := uint64(defaultPageEntries)
	if q.Has("limit") {
		if limit, err = uintParam(q, "limit", true); err != nil {
			return err
		}
		if limit < 1 {
			return badRequest("limit must be at least 1")
		}
		limit = min(limit, maxPageEntries)
	}
	es, err := a.svc.Entries(start, int(limit))
	if err != nil {
		return err
	}
	n := 0
	for i, e := range es {
		if i > 0 && n+len(e) > pageBytes {
			es = es[:i]
			break
		}
		n += len(e)
	}
	if es == nil {
		es = [][]byte{}
	}
	writeJSON(w, http.StatusOK, client.Entries{Start: start, Entries: es})
	return nil
}

// GET /v1/ledger/proof/inclusion?index=I&size=N
func (a *api) inclusion(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	index, err := uintParam(q, "index", true)
	if err != nil {
		return err
	}
	size, err := uintParam(q, "size", true)
	if err != nil {
		return err
	}
	if index >= size {
		return badRequest(fmt.Sprintf("index %d must be below size %d", index, size))
	}
	a.waitLogged(r, size)
	p, err := a.svc.ProveInclusion(index, size)
	if err != nil {
		return err
	}
	return writeMarshaler(w, p)
}

// GET /v1/ledger/proof/consistency?old=M&new=N
func (a *api) consistency(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	oldSize, err := uintParam(q, "old", true)
	if err != nil {
		return err
	}
	newSize, err := uintParam(q, "new", true)
	if err != nil {
		return err
	}
	if oldSize > newSize {
		return badRequest(fmt.Sprintf("old size %d is above new size %d", oldSize, newSize))
	}
	a.waitLogged(r, newSize)
	p, err := a.svc.ProveConsistency(oldSize, newSize)
	if err != nil {
		return err
	}
	return writeMarshaler(w, p)
}

// writeMarshaler answers a proof in the ledger package's exact JSON.
func writeMarshaler(w http.ResponseWriter, m interface{ MarshalJSON() ([]byte, error) }) error {
	b, err := m.MarshalJSON()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
	return nil
}

// GET /v1/ledger/keys: every registered node's checkpoint keys, two
// verifier key lines per node (ledger.ParseNodeKeys reads them).
func (a *api) keys(w http.ResponseWriter, r *http.Request) error {
	keys, err := a.svc.NodeKeys()
	if err != nil {
		return err
	}
	var out []byte
	for _, k := range keys {
		b, err := k.MarshalText()
		if err != nil {
			return fmt.Errorf("node key %q: %w", k.Name, err)
		}
		out = append(out, b...)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(out)
	return nil
}

// POST /v1/sys/canary (operator): append a sys.canary entry, answer its index.
func (a *api) canary(w http.ResponseWriter, r *http.Request) error {
	var body struct{}
	if err := decodeJSON(w, r, maxCanaryBody, &body, true); err != nil {
		return err
	}
	c := callerOf(r.Context())
	i, err := a.svc.Append(r.Context(), ledger.Entry{
		Type: ledger.TypeCanary, Actor: c.actor, Node: a.nodeID,
		RequestID: requestID(r.Context()), Outcome: ledger.OutcomeOK,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, client.LogIndex{LogIndex: i})
	return nil
}

// POST /v1/sys/join (node): add the calling node to the cluster. Its
// certificate must name the node id and region of the body. A follower
// answers 307 to the leader.
func (a *api) join(w http.ResponseWriter, r *http.Request) error {
	c := callerOf(r.Context())
	if err := checkRole(c, []identity.Role{identity.RoleNode}); err != nil {
		a.logDenied(r, ledger.TypeJoin, "role "+string(c.id.Role)+" may not join nodes", nil)
		return err
	}
	var info client.NodeInfo
	if err := decodeJSON(w, r, maxJoinBody, &info, false); err != nil {
		return err
	}
	if info.ID != c.id.Name || info.Region != c.id.Region {
		reason := fmt.Sprintf("certificate names node %q in %s, the request node %q in %s", c.id.Name, c.id.Region, info.ID, info.Region)
		a.logDenied(r, ledger.TypeJoin, reason, map[string]string{"node.id": info.ID, "node.region": info.Region})
		return forbidden(reason)
	}
	if err := a.svc.AddNode(r.Context(), state.NodeInfo(info), c.actor); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, client.JoinResult{Node: info.ID, Leader: a.nodeID})
	return nil
}

// denialLogger is how a node (*keysvc.Node) logs refusals, folding repeats.
type denialLogger interface {
	LogDenial(ctx context.Context, e ledger.Entry) (uint64, error)
}

// logDenied appends a denied entry for a refused request that touches
// membership, as the design asks of every such refusal. It is best effort:
// the refusal stands whether or not the entry commits.
func (a *api) logDenied(r *http.Request, typ, reason string, details map[string]string) {
	if len(reason) > ledger.MaxFieldLen {
		reason = reason[:ledger.MaxFieldLen]
	}
	for k, v := range details {
		if len(v) > ledger.MaxFieldLen || v == "" {
			delete(details, k)
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	c := callerOf(r.Context())
	e := ledger.Entry{
		Type: typ, Actor: c.actor, Node: a.nodeID, RequestID: requestID(r.Context()),
		Outcome: ledger.OutcomeDenied, Reason: reason, Details: details,
	}
	var err error
	if d, ok := a.svc.(denialLogger); ok {
		_, err = d.LogDenial(ctx, e) // repeats folded into one entry
	} else {
		_, err = a.svc.Append(ctx, e)
	}
	if err != nil {
		a.log.Warn("could not log a refused request", slog.String("request_id", requestID(r.Context())),
			slog.String("type", typ), slog.Any("cause", err))
	}
}

// GET /metrics (operator, auditor): Prometheus exposition.
func (a *api) serveMetrics(w http.ResponseWriter, r *http.Request) error {
	a.promHandler.ServeHTTP(w, r)
	return nil
}

// uintParam reads a decimal query parameter; required ones must be present.
func uintParam(q url.Values, name string, required bool) (uint64, error) {
	if !q.Has(name) {
		if required {
			return 0, badRequest("query parameter " + name + " is required")
		}
		return 0, nil
	}
	s := q.Get(name)
	v, err := strconv.ParseUint(s, 10, 63)
	if err != nil || (len(s) > 1 && s[0] == '0') {
		return 0, badRequest(fmt.Sprintf("query parameter %s=%q: want a decimal integer below 2^63", name, s))
	}
	return v, nil
}

// waitLogged gives a node that lags the tree size a client asks about (a
// size from the leader's checkpoint, say) a moment to apply it, so that a
// proof asked of any node right after a checkpoint can be answered.
func (a *api) waitLogged(r *http.Request, size uint64) {
	if w, ok := a.svc.(interface {
		WaitLogged(ctx context.Context, size uint64) error
	}); ok && size > 0 {
		_ = w.WaitLogged(r.Context(), size) // a node still behind answers not_found, as before
	}
}
