// KEK routes: the read API (/v1/keks…), and the internal routes through
// which the leader deals shares to nodes and nodes attest destructions.

package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
)

const (
	sealPath    = "/v1/internal/kek/seal"
	discardPath = "/v1/internal/kek/discard"
	attestPath  = "/v1/internal/kek/attest"
	releasePath = "/v1/internal/kek/release"
)

// KEKService is what the KEK routes need; *keysvc.Node implements it.
type KEKService interface {
	KEKs() ([]keysvc.KEK, error)
	KEK(id string) (keysvc.KEK, bool, error)
	DestructionCertificate(id string, version uint32) (keysvc.DestructionCertificate, error)
	SealShare(ctx context.Context, from string, req keysvc.SealRequest) (keysvc.SealResponse, error)
	DiscardShare(ctx context.Context, from string, req keysvc.DiscardRequest) error
	Attest(ctx context.Context, from string, req keysvc.AttestRequest, actor ledger.Actor) error
	HoldEscrowShare(pid, officer string, share []byte) error
	ReleaseShare(ctx context.Context, from string, req keysvc.ReleaseRequest) (keysvc.ReleaseResponse, error)
}

var _ KEKService = (*keysvc.Node)(nil)

func (a *api) kekService() (KEKService, error) {
	ks, ok := a.svc.(KEKService)
	if !ok {
		return nil, &apiError{http.StatusNotImplemented, client.CodeNotSupportedYet, "this node does not serve keks"}
	}
	return ks, nil
}

func (a *api) kekRoutes(r chi.Router) {
	r.With(a.allow(anyRole...)).Get("/v1/keks", a.handle(a.listKEKs))
	r.With(a.allow(anyRole...)).Get("/v1/keks/{id}", a.handle(a.getKEK))
	r.With(a.allow(anyRole...)).Get("/v1/keks/{id}/versions/{v}/destruction-certificate", a.handle(a.destructionCertificate))
	r.With(a.allow(identity.RoleNode)).Post(sealPath, a.handle(a.internalSeal))
	r.With(a.allow(identity.RoleNode)).Post(discardPath, a.handle(a.internalDiscard))
	r.With(a.allow(identity.RoleNode)).Post(attestPath, a.handle(a.internalAttest))
	r.With(a.allow(identity.RoleNode)).Post(releasePath, a.handle(a.internalRelease))
}

func wireKEK(k keysvc.KEK) client.KEK {
	pol, _ := k.Policy.MarshalJSON() // strings and integers: cannot fail
	out := client.KEK{ID: k.ID, Policy: pol, Created: k.Created, Versions: make([]client.KEKVersion, 0, len(k.Versions))}
	if h := k.LegalHold; h != nil {
		out.LegalHold = &client.LegalHold{Reason: h.Reason, Ceremony: h.Ceremony, Entry: h.Entry}
	}
	for _, v := range k.Versions {
		wv := client.KEKVersion{Version: v.Version, State: v.State, Threshold: v.Threshold, PublicKey: v.PublicKey,
			Commitments: v.Commitments, Created: v.Created, Ceremony: v.Ceremony, Recovered: v.Recovered,
			Destroyed: v.Destroyed, DestroyCeremony: v.DestroyCeremony, Shares: make([]client.KEKShare, 0, len(v.Shares))}
		for _, s := range v.Shares {
			wv.Shares = append(wv.Shares, client.KEKShare{Node: s.Node, Index: s.Index, Sealed: s.Sealed, Statement: string(s.Statement)})
		}
		for _, d := range v.Destructions {
			wv.Attested = append(wv.Attested, d.Node)
		}
		if e := v.Escrow; e != nil {
			wv.Escrow = &client.KEKEscrow{Cluster: e.Cluster, M: e.M, Officers: e.Officers, Commitments: e.Commitments, Link: e.Link, Sealed: e.Sealed}
		}
		out.Versions = append(out.Versions, wv)
	}
	return out
}

// GET /v1/keks.
func (a *api) listKEKs(w http.ResponseWriter, r *http.Request) error {
	ks, err := a.kekService()
	if err != nil {
		return err
	}
	list, err := ks.KEKs()
	if err != nil {
		return err
	}
	out := client.KEKs{KEKs: make([]client.KEK, 0, len(list))}
	for _, k := range list {
		out.KEKs = append(out.KEKs, wireKEK(k))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// GET /v1/keks/{id}.
func (a *api) getKEK(w http.ResponseWriter, r *http.Request) error {
	ks, err := a.kekService()
	if err != nil {
		return err
	}
	id := chi.URLParam(r, "id")
	k, found, err := ks.KEK(id)
	if err != nil {
		return err
	}
	if !found {
		return &apiError{http.StatusNotFound, client.CodeUnknownKEK, fmt.Sprintf("no kek %q", id)}
	}
	writeJSON(w, http.StatusOK, wireKEK(k))
	return nil
}

// GET /v1/keks/{id}/versions/{v}/destruction-certificate.
func (a *api) destructionCertificate(w http.ResponseWriter, r *http.Request) error {
	ks, err := a.kekService()
	if err != nil {
		return err
	}
	v, err := strconv.ParseUint(chi.URLParam(r, "v"), 10, 32)
	if err != nil || v == 0 {
		return badRequest("version must be a number from 1")
	}
	dc, err := ks.DestructionCertificate(chi.URLParam(r, "id"), uint32(v))
	if err != nil {
		return err
	}
	out := client.DestructionCertificate{Cluster: dc.Cluster, KEKID: dc.KEKID, Version: dc.Version, PublicKey: dc.PublicKey,
		Ceremony: dc.Ceremony, Approvers: dc.Approvers, Destroyed: dc.Destroyed, Complete: dc.Complete,
		EscrowOfficers: dc.EscrowOfficers, EscrowM: dc.EscrowM}
	for _, h := range dc.Holders {
		out.Holders = append(out.Holders, client.DestroyedHolder{Node: h.Node, Attested: h.Attested, Statement: string(h.Statement), Entry: h.Entry})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// internalRequest is the start of every internal KEK route: the service,
// the calling node (a registered member, else refused) and its request
// decoded into req.
func (a *api) internalRequest(w http.ResponseWriter, r *http.Request, req any) (KEKService, string, error) {
	ks, err := a.kekService()
	if err != nil {
		return nil, "", err
	}
	from, err := a.memberNode(r)
	if err != nil {
		return nil, "", err
	}
	return ks, from, decodeJSON(w, r, maxJSONBody, req, false)
}

// memberNode returns the internal caller's node id, refusing a non-member.
func (a *api) memberNode(r *http.Request) (string, error) {
	c := callerOf(r.Context())
	if !a.isMember(c.id.Name) {
		return "", forbidden(fmt.Sprintf("node %q is not a registered member of the cluster", c.id.Name))
	}
	return c.id.Name, nil
}

// POST /v1/internal/kek/seal (node): the leader hands this node its share.
func (a *api) internalSeal(w http.ResponseWriter, r *http.Request) error {
	var req keysvc.SealRequest
	ks, from, err := a.internalRequest(w, r, &req)
	if err != nil {
		return err
	}
	defer clear(req.Share)
	resp, err := ks.SealShare(r.Context(), from, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// POST /v1/internal/kek/discard (node): destroy an uncommitted dealt key.
func (a *api) internalDiscard(w http.ResponseWriter, r *http.Request) error {
	var req keysvc.DiscardRequest
	ks, from, err := a.internalRequest(w, r, &req)
	if err != nil {
		return err
	}
	if err := ks.DiscardShare(r.Context(), from, req); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

// POST /v1/internal/kek/attest (node): a node's destruction statement. Leader.
func (a *api) internalAttest(w http.ResponseWriter, r *http.Request) error {
	var req keysvc.AttestRequest
	ks, from, err := a.internalRequest(w, r, &req)
	if err != nil {
		return err
	}
	if err := ks.Attest(r.Context(), from, req, callerOf(r.Context()).actor); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

// POST /v1/internal/kek/release (node): a peer's activation asks for this
// node's share; the node checks the activation, the client's signature,
// membership, state and policy itself.
func (a *api) internalRelease(w http.ResponseWriter, r *http.Request) error {
	var req keysvc.ReleaseRequest
	ks, from, err := a.internalRequest(w, r, &req)
	if err != nil {
		return err
	}
	resp, err := ks.ReleaseShare(r.Context(), from, req)
	if err != nil {
		return err
	}
	// The share is sealed to the requester's node KEM key: only its HSM opens it.
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// holdEscrowShare passes an officer's escrow share sent with a proposal or
// approval to the leader's memory.
func (a *api) holdEscrowShare(pid, officer string, share []byte) error {
	if len(share) == 0 {
		return nil
	}
	defer clear(share)
	ks, err := a.kekService()
	if err != nil {
		return err
	}
	return ks.HoldEscrowShare(pid, officer, share)
}

// classifyKEK maps the errors of the KEK routes; ok is false for others.
func classifyKEK(err error) (mapping, bool) {
	switch {
	case errors.Is(err, keysvc.ErrUnknownKEK):
		return mapping{status: http.StatusNotFound, code: client.CodeUnknownKEK, message: sentinelText(err), level: slog.LevelDebug}, true
	case errors.Is(err, keysvc.ErrNotDestroyed):
		return mapping{status: http.StatusConflict, code: client.CodeNotDestroyed, message: sentinelText(err), level: slog.LevelDebug}, true
	case errors.Is(err, keysvc.ErrBadEscrowShare):
		return mapping{status: http.StatusBadRequest, code: client.CodeBadEscrowShare, message: sentinelText(err), level: slog.LevelInfo}, true
	case errors.Is(err, keysvc.ErrSealRefused):
		return mapping{status: http.StatusForbidden, code: client.CodeSealRefused, message: sentinelText(err), level: slog.LevelWarn}, true
	case errors.Is(err, keysvc.ErrReleaseRefused):
		return mapping{status: http.StatusForbidden, code: client.CodeReleaseRefused, message: sentinelText(err), level: slog.LevelWarn}, true
	case errors.Is(err, keysvc.ErrDiscardRefused):
		return mapping{status: http.StatusForbidden, code: client.CodeDiscardRefused, message: sentinelText(err), level: slog.LevelWarn}, true
	case errors.Is(err, keysvc.ErrLiveShare):
		return mapping{status: http.StatusConflict, code: client.CodeLiveShare, message: sentinelText(err), level: slog.LevelWarn}, true
	}
	return mapping{}, false
}

// post sends body to path on the node at api and decodes a 200 answer
// into out (if not nil); any other answer is an error naming its code.
func (f *Forwarder) post(ctx context.Context, api, path string, body, out any) error {
	u, err := url.Parse(api)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("httpapi: peer API address %q is not an https URL", api)
	}
	base := strings.TrimSuffix(api, "/")
	var buf bytes.Buffer
	// Seal requests and release answers carry shares: clear both buffers.
	defer func() { clear(buf.Bytes()[:buf.Cap()]) }()
	if err := json.NewEncoder(&buf).Encode(body); err != nil {
		return err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, &buf)
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := f.hc.Do(hr)
	if err != nil {
		return fmt.Errorf("peer %s: %w", base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	defer clear(b)
	if err != nil {
		return fmt.Errorf("peer %s: reading the answer: %w", base, err)
	}
	if resp.StatusCode == http.StatusOK {
		if out == nil {
			return nil
		}
		return json.Unmarshal(b, out)
	}
	var eb client.ErrorBody
	_ = json.Unmarshal(b, &eb)
	err = fmt.Errorf("peer %s: HTTP %d %s: %s (request %s)", base, resp.StatusCode, eb.Error.Code, eb.Error.Message, eb.Error.RequestID)
	switch eb.Error.Code {
	case client.CodeSealRefused:
		return fmt.Errorf("%w: %w", keysvc.ErrSealRefused, err)
	case client.CodeLiveShare:
		return fmt.Errorf("%w: %w", keysvc.ErrLiveShare, err)
	case client.CodeDiscardRefused:
		return fmt.Errorf("%w: %w", keysvc.ErrDiscardRefused, err)
	case client.CodeNotLeader, client.CodeNoLeader:
		return &keysvc.NotLeaderError{LeaderID: resp.Header.Get(client.HeaderLeaderID), LeaderAPI: resp.Header.Get(client.HeaderLeader)}
	}
	return err
}

// SealShare hands req to the node at peerAPI (keysvc.Forwarder).
func (f *Forwarder) SealShare(ctx context.Context, peerAPI string, req keysvc.SealRequest) (keysvc.SealResponse, error) {
	var resp keysvc.SealResponse
	return resp, f.post(ctx, peerAPI, sealPath, req, &resp)
}

// DiscardShare asks the node at peerAPI to discard an uncommitted dealt key.
func (f *Forwarder) DiscardShare(ctx context.Context, peerAPI string, req keysvc.DiscardRequest) error {
	return f.post(ctx, peerAPI, discardPath, req, nil)
}

// ReleaseShare asks the node at peerAPI for its share (keysvc.Forwarder).
func (f *Forwarder) ReleaseShare(ctx context.Context, peerAPI string, req keysvc.ReleaseRequest) (keysvc.ReleaseResponse, error) {
	var resp keysvc.ReleaseResponse
	return resp, f.post(ctx, peerAPI, releasePath, req, &resp)
}

// ForwardAttest sends this node's destruction statement to the leader.
func (f *Forwarder) ForwardAttest(ctx context.Context, leaderAPI string, req keysvc.AttestRequest) error {
	return f.post(ctx, leaderAPI, attestPath, req, nil)
}
