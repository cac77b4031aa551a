// Officers and ceremonies: cluster init and the proposal and approval routes.

package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/state"
)

// CeremonyService is what the officer and ceremony routes need; a Service
// that also implements it (*keysvc.Node does) serves them, and any other
// answers them 501 not_supported_yet.
type CeremonyService interface {
	Init(ctx context.Context, in state.Init, actor ledger.Actor) error
	Propose(ctx context.Context, proposal []byte, officer string, sig []byte, actor ledger.Actor) (state.Ceremony, error)
	Approve(ctx context.Context, id, officer string, sig []byte, actor ledger.Actor) (state.Ceremony, error)
	Initialized() (bool, error)
	Ceremonies() ([]state.Ceremony, error)
	Ceremony(id string) (state.Ceremony, bool, error)
	Officers() ([]state.Officer, error)
}

var _ CeremonyService = (*keysvc.Node)(nil)

func (a *api) ceremonies() (CeremonyService, error) {
	cs, ok := a.svc.(CeremonyService)
	if !ok {
		return nil, &apiError{http.StatusNotImplemented, errcode.NotSupportedYet, "this node does not serve ceremonies"}
	}
	return cs, nil
}

// POST /v1/sys/init (operator): name the officers, once. Leader.
func (a *api) init(w http.ResponseWriter, r *http.Request) error {
	cs, err := a.ceremonies()
	if err != nil {
		return err
	}
	var in client.InitRequest
	if err := decodeJSON(w, r, maxInitBody, &in, false); err != nil {
		return err
	}
	err = cs.Init(r.Context(), state.Init{Officers: in.Officers, Quorum: in.Quorum, DefaultThreshold: in.DefaultThreshold, Regions: in.Regions}, callerOf(r.Context()).actor)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

// POST /v1/ceremonies (officer, the proposer). Leader.
func (a *api) propose(w http.ResponseWriter, r *http.Request) error {
	cs, err := a.ceremonies()
	if err != nil {
		return err
	}
	var pr client.ProposeRequest
	if err := decodeJSON(w, r, maxProposeBody, &pr, false); err != nil {
		return err
	}
	c := callerOf(r.Context())
	var sig []byte
	if pr.Signature != "" {
		sig = []byte(pr.Signature)
	}
	if len(pr.EscrowShare) > 0 {
		// The proposal must be recorded before the leader holds a share for it.
		defer clear(pr.EscrowShare)
	}
	cer, err := cs.Propose(r.Context(), []byte(pr.Proposal), c.id.Name, sig, c.actor)
	if err == nil && len(pr.EscrowShare) > 0 {
		err = a.holdEscrowShare(cer.ID, c.id.Name, pr.EscrowShare)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.wireCeremony(cer))
	return nil
}

// POST /v1/ceremonies/{id}/approvals (officer named in the body). Leader.
func (a *api) approve(w http.ResponseWriter, r *http.Request) error {
	cs, err := a.ceremonies()
	if err != nil {
		return err
	}
	var ar client.ApproveRequest
	defer func() { clear(ar.EscrowShare) }()
	if err := decodeJSON(w, r, maxApproveBody, &ar, false); err != nil {
		return err
	}
	c := callerOf(r.Context())
	if ar.Officer != c.id.Name {
		return forbidden("the certificate names officer " + c.id.Name + ", the approval " + ar.Officer)
	}
	if err := a.holdEscrowShare(chi.URLParam(r, "id"), c.id.Name, ar.EscrowShare); err != nil {
		return err
	}
	cer, err := cs.Approve(r.Context(), chi.URLParam(r, "id"), c.id.Name, []byte(ar.Signature), c.actor)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.wireCeremony(cer))
	return nil
}

// GET /v1/ceremonies.
func (a *api) listCeremonies(w http.ResponseWriter, r *http.Request) error {
	cs, err := a.initialized()
	if err != nil {
		return err
	}
	list, err := cs.Ceremonies()
	if err != nil {
		return err
	}
	out := client.Ceremonies{Ceremonies: make([]client.Ceremony, 0, len(list))}
	for _, c := range list {
		out.Ceremonies = append(out.Ceremonies, a.wireCeremony(c))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// GET /v1/officers: every officer ever recorded, with key bundles.
func (a *api) listOfficers(w http.ResponseWriter, r *http.Request) error {
	cs, err := a.initialized()
	if err != nil {
		return err
	}
	list, err := cs.Officers()
	if err != nil {
		return err
	}
	out := client.Officers{Officers: make([]client.Officer, 0, len(list))}
	for _, o := range list {
		out.Officers = append(out.Officers, client.Officer{ID: o.ID, Bundle: o.Bundle, Fingerprint: o.Fingerprint, Active: o.Active, Added: o.Added, Removed: o.Removed})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// GET /v1/ceremonies/{id}.
func (a *api) getCeremony(w http.ResponseWriter, r *http.Request) error {
	cs, err := a.initialized()
	if err != nil {
		return err
	}
	c, found, err := cs.Ceremony(chi.URLParam(r, "id"))
	if err == nil && !found {
		if err := a.catchUp(r); err != nil {
			return err
		}
		c, found, err = cs.Ceremony(chi.URLParam(r, "id"))
	}
	if err != nil {
		return err
	}
	if !found {
		return &apiError{http.StatusNotFound, errcode.UnknownProposal, "no proposal with that id"}
	}
	writeJSON(w, http.StatusOK, a.wireCeremony(c))
	return nil
}

func (a *api) initialized() (CeremonyService, error) {
	cs, err := a.ceremonies()
	if err != nil {
		return nil, err
	}
	if ok, err := cs.Initialized(); err != nil {
		return nil, err
	} else if !ok {
		return nil, keysvc.ErrNotInitialized
	}
	return cs, nil
}

func (a *api) wireCeremony(c state.Ceremony) client.Ceremony {
	out := client.Ceremony{ID: c.ID, Proposal: c.Proposal, Status: c.Status, Code: c.Code, Reason: c.Reason,
		Approvals: make([]client.Approval, 0, len(c.Approvals)), Proposed: c.Proposed, Closed: c.Closed}
	for _, ap := range c.Approvals {
		out.Approvals = append(out.Approvals, client.Approval{Officer: ap.Officer, Entry: ap.Entry, Signature: string(ap.Signature)})
	}
	if p, err := ceremony.ParseProposal([]byte(c.Proposal)); err == nil {
		out.Operation, out.Proposer = string(p.Operation()), p.Proposer
		quorum := c.Quorum // M when it closed; the current M while open
		if quorum == 0 {
			quorum = a.svc.Status().Quorum
		}
		out.Description = ceremony.Describe(p, quorum)
	}
	return out
}

// refusalStatus is the HTTP status of a ceremony refusal code.
func refusalStatus(code string) int {
	switch code {
	case errcode.UnknownProposal:
		return http.StatusNotFound
	case errcode.NotProposer, string(ceremony.CodeUnknownOfficer), string(ceremony.CodeBadSignature):
		return http.StatusForbidden
	case string(ceremony.CodeExpired), string(ceremony.CodeSuperseded), string(ceremony.CodeClosed),
		string(ceremony.CodeDuplicateApprover), errcode.ProposalExists:
		return http.StatusConflict
	}
	return http.StatusBadRequest
}

// classifyCeremony maps the errors of init and ceremonies; ok is false for
// any other error.
func classifyCeremony(err error) (mapping, bool) {
	var cr *state.CeremonyRefusal
	switch {
	case errors.As(err, &cr):
		return mapping{status: refusalStatus(cr.Code), code: cr.Code, message: cr.Reason, level: slog.LevelInfo}, true
	case errors.Is(err, keysvc.ErrNotInitialized):
		return mapping{status: http.StatusConflict, code: errcode.NotInitialized,
			message: "the cluster has no officers yet: an operator must run custos operator init", level: slog.LevelInfo}, true
	case errors.Is(err, keysvc.ErrAlreadyInitialized):
		return mapping{status: http.StatusConflict, code: errcode.Conflict, message: "the cluster is already initialized", level: slog.LevelInfo}, true
	case errors.Is(err, keysvc.ErrInvalidInit):
		return mapping{status: http.StatusBadRequest, code: errcode.BadRequest, message: sentinelText(err), level: slog.LevelInfo}, true
	}
	return mapping{}, false
}
