// KEK routes: the read API (/v1/keks…). Nodes deal, release and attest
// over the peer channel (keysvc/peer), never through this API.

package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/state"
)

// KEKService is what the KEK routes need; *keysvc.Node implements it.
type KEKService interface {
	KEKs() ([]state.KEK, error)
	KEK(id string) (state.KEK, bool, error)
	DestructionCertificate(id string, version uint32) (keysvc.DestructionCertificate, error)
	HoldEscrowShare(pid, officer string, share []byte) error
}

var _ KEKService = (*keysvc.Node)(nil)

func (a *api) kekService() (KEKService, error) {
	ks, ok := a.svc.(KEKService)
	if !ok {
		return nil, &apiError{http.StatusNotImplemented, errcode.NotSupportedYet, "this node does not serve keks"}
	}
	return ks, nil
}

func (a *api) kekRoutes(r chi.Router) {
	r.With(a.allow(anyRole...)).Get("/v1/keks", a.handle(a.listKEKs))
	r.With(a.allow(anyRole...)).Get("/v1/keks/{id}", a.handle(a.getKEK))
	r.With(a.allow(anyRole...)).Get("/v1/keks/{id}/versions/{v}/destruction-certificate", a.handle(a.destructionCertificate))
}

// catchUp makes sure, before a read answers "unknown", that this node has
// applied what the leader had committed (keysvc.Node.CatchUp): a lagging
// node answers 503 not_caught_up, never a 404 for what exists. Services
// without it (test fakes) are always caught up.
func (a *api) catchUp(r *http.Request) error {
	if c, ok := a.svc.(interface{ CatchUp(context.Context) error }); ok {
		return c.CatchUp(r.Context())
	}
	return nil
}

func wireKEK(k state.KEK) client.KEK {
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
	if err == nil && !found {
		if err := a.catchUp(r); err != nil {
			return err
		}
		k, found, err = ks.KEK(id)
	}
	if err != nil {
		return err
	}
	if !found {
		return &apiError{http.StatusNotFound, errcode.UnknownKEK, fmt.Sprintf("no kek %q", id)}
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
		return mapping{status: http.StatusNotFound, code: errcode.UnknownKEK, message: sentinelText(err), level: slog.LevelDebug}, true
	case errors.Is(err, keysvc.ErrNotDestroyed):
		return mapping{status: http.StatusConflict, code: errcode.NotDestroyed, message: sentinelText(err), level: slog.LevelDebug}, true
	case errors.Is(err, keysvc.ErrBadEscrowShare):
		return mapping{status: http.StatusBadRequest, code: errcode.BadEscrowShare, message: sentinelText(err), level: slog.LevelInfo}, true
	case errors.Is(err, keysvc.ErrSealRefused):
		return mapping{status: http.StatusForbidden, code: errcode.SealRefused, message: sentinelText(err), level: slog.LevelWarn}, true
	case errors.Is(err, keysvc.ErrReleaseRefused):
		return mapping{status: http.StatusForbidden, code: errcode.ReleaseRefused, message: sentinelText(err), level: slog.LevelWarn}, true
	case errors.Is(err, keysvc.ErrDiscardRefused):
		return mapping{status: http.StatusForbidden, code: errcode.DiscardRefused, message: sentinelText(err), level: slog.LevelWarn}, true
	case errors.Is(err, keysvc.ErrLiveShare):
		return mapping{status: http.StatusConflict, code: errcode.LiveShare, message: sentinelText(err), level: slog.LevelWarn}, true
	}
	return mapping{}, false
}
