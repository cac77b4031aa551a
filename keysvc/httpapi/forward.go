// Forwarding log appends from followers to the leader:
// POST /v1/internal/ledger/append on the leader, and the Forwarder a
// follower's keysvc.Node calls.

package httpapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/ledger"
)

const appendPath = "/v1/internal/ledger/append"

// appendRequest is the body of a forwarded batch. Entries are sent as
// fields, not canonical bytes, because the leader assigns their indexes
// and times.
type appendRequest struct {
	Entries []wireEntry `json:"entries"`
}

type appendResponse struct {
	First uint64 `json:"first"` // index of the first entry; the rest follow in order
}

type wireEntry struct {
	Time       time.Time         `json:"time,omitzero"`
	Type       string            `json:"type"`
	Actor      wireActor         `json:"actor"`
	Node       string            `json:"node,omitempty"`
	KEKID      string            `json:"kek_id,omitempty"`
	KEKVersion uint32            `json:"kek_version,omitempty"`
	RequestID  string            `json:"request_id,omitempty"`
	Outcome    string            `json:"outcome"`
	Reason     string            `json:"reason,omitempty"`
	Details    map[string]string `json:"details,omitempty"`
}

type wireActor struct {
	Identity        string `json:"identity"`
	Role            string `json:"role,omitempty"`
	Region          string `json:"region,omitempty"`
	CertFingerprint string `json:"cert_fingerprint,omitempty"`
}

func toWire(e ledger.Entry) wireEntry {
	return wireEntry{
		Time: e.Time, Type: e.Type, Actor: wireActor(e.Actor), Node: e.Node, KEKID: e.KEKID, KEKVersion: e.KEKVersion,
		RequestID: e.RequestID, Outcome: string(e.Outcome), Reason: e.Reason, Details: e.Details,
	}
}

func (w wireEntry) entry() ledger.Entry {
	return ledger.Entry{
		Time: w.Time, Type: w.Type, Actor: ledger.Actor(w.Actor), Node: w.Node, KEKID: w.KEKID, KEKVersion: w.KEKVersion,
		RequestID: w.RequestID, Outcome: ledger.Outcome(w.Outcome), Reason: w.Reason, Details: w.Details,
	}
}

// POST /v1/internal/ledger/append (node): a follower's forwarded batch.
// The caller must be a registered member, and may log entries only as
// served by itself: an entry's node is the caller's id (filled in when
// empty, refused when another).
func (a *api) internalAppend(w http.ResponseWriter, r *http.Request) error {
	c := callerOf(r.Context())
	if !a.isMember(c.id.Name) {
		return forbidden(fmt.Sprintf("node %q is not a registered member of the cluster", c.id.Name))
	}
	var req appendRequest
	if err := decodeJSON(w, r, maxAppendBody, &req, false); err != nil {
		return err
	}
	if len(req.Entries) == 0 {
		return badRequest("no entries")
	}
	if len(req.Entries) > keysvc.MaxAppendBatch {
		return tooLarge(fmt.Sprintf("%d entries, at most %d", len(req.Entries), keysvc.MaxAppendBatch))
	}
	entries := make([]ledger.Entry, len(req.Entries))
	for i, we := range req.Entries {
		e := we.entry()
		switch e.Node {
		case "":
			e.Node = c.id.Name
		case c.id.Name:
		default:
			return forbidden(fmt.Sprintf("entry %d is attributed to node %q; node %q may forward only its own", i, e.Node, c.id.Name))
		}
		if cf, ok := a.svc.(interface {
			CheckForwarded(string, ledger.Entry) error
		}); ok {
			if err := cf.CheckForwarded(c.id.Name, e); err != nil {
				return forbidden(fmt.Sprintf("entry %d: %v", i, err))
			}
		}
		check := e // the leader stamps index and time; the rest must be valid now
		check.Index, check.Time = 0, time.Unix(0, 0)
		if _, err := check.Marshal(); err != nil {
			return badRequest(fmt.Sprintf("entry %d: %v", i, err))
		}
		entries[i] = e
	}
	first, err := a.svc.AppendBatch(r.Context(), entries)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, appendResponse{First: first})
	return nil
}

// isMember reports whether id is a registered node of the cluster.
func (a *api) isMember(id string) bool {
	if m, ok := a.svc.(interface{ IsMember(string) bool }); ok {
		return m.IsMember(id)
	}
	return slices.ContainsFunc(a.svc.Status().Members, func(m keysvc.Member) bool { return m.ID == id && m.Registered })
}

// Forwarder sends a follower's batches to the leader over mutual TLS; it
// implements keysvc.Forwarder. One Forwarder keeps its connections alive
// across batches; it is safe for concurrent use.
type Forwarder struct {
	hc *http.Client
}

// NewForwarder returns a Forwarder that connects with tc, the node's client
// configuration (identity.ClientConfig with the node's own certificate).
func NewForwarder(tc *tls.Config) *Forwarder {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tc.Clone(),
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}
	return &Forwarder{hc: &http.Client{
		Transport:     tr,
		Timeout:       time.Minute, // a backstop; the caller's context decides
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Close closes idle connections.
func (f *Forwarder) Close() { f.hc.CloseIdleConnections() }

// ForwardAppend sends entries to the leader at leaderAPI and returns the
// index of the first. Errors, for the node to report:
//   - a *keysvc.NotLeaderError if leaderAPI is no longer the leader
//     (naming the new one when it knows) or knows no leader; nothing was
//     appended;
//   - an error matching keysvc.ErrNoQuorum if the outcome is unknown: the
//     leader could not be reached or answered, or reported no quorum;
//   - keysvc.ErrBatchTooLarge, or another error naming the leader's refusal.
func (f *Forwarder) ForwardAppend(ctx context.Context, leaderAPI string, entries []ledger.Entry) (uint64, error) {
	u, err := url.Parse(leaderAPI)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return 0, fmt.Errorf("httpapi: forward: leader API address %q is not an https URL", leaderAPI)
	}
	base := strings.TrimSuffix(leaderAPI, "/")
	req := appendRequest{Entries: make([]wireEntry, len(entries))}
	for i, e := range entries {
		req.Entries[i] = toWire(e)
	}
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(req); err != nil {
		return 0, fmt.Errorf("httpapi: forward: %w", err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, base+appendPath, &body)
	if err != nil {
		return 0, fmt.Errorf("httpapi: forward: %w", err)
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := f.hc.Do(hr)
	if err != nil {
		return 0, fmt.Errorf("%w: forward to leader %s: %w", keysvc.ErrNoQuorum, base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("%w: forward to leader %s: reading the answer: %w", keysvc.ErrNoQuorum, base, err)
	}
	if resp.StatusCode == http.StatusOK {
		var ar appendResponse
		if err := json.Unmarshal(b, &ar); err != nil {
			return 0, fmt.Errorf("%w: forward to leader %s: malformed answer: %w", keysvc.ErrNoQuorum, base, err)
		}
		return ar.First, nil
	}
	var eb client.ErrorBody
	_ = json.Unmarshal(b, &eb)
	code, msg, rid := eb.Error.Code, eb.Error.Message, eb.Error.RequestID
	switch code {
	case client.CodeNotLeader:
		return 0, &keysvc.NotLeaderError{LeaderID: resp.Header.Get(client.HeaderLeaderID), LeaderAPI: resp.Header.Get(client.HeaderLeader)}
	case client.CodeNoLeader:
		return 0, &keysvc.NotLeaderError{}
	case client.CodeTooLarge:
		return 0, fmt.Errorf("%w: leader %s: %s", keysvc.ErrBatchTooLarge, base, msg)
	case client.CodeNoQuorum, client.CodeRequestCanceled, client.CodeUnavailable, client.CodeInternal, "":
		// The leader may have proposed the batch: the outcome is unknown.
		return 0, fmt.Errorf("%w: forward to leader %s: HTTP %d %s: %s (request %s)", keysvc.ErrNoQuorum, base, resp.StatusCode, code, msg, rid)
	}
	return 0, fmt.Errorf("httpapi: forward to leader %s refused: HTTP %d %s: %s (request %s)", base, resp.StatusCode, code, msg, rid)
}

var _ keysvc.Forwarder = (*Forwarder)(nil)
