// Attestations by backup agents: what the agent did with data outside the
// cluster (a transfer to a target, a restore drill, a prune), recorded in
// the key-op log so that auditors see it beside the key operations.

package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/state"
)

// attestationKinds are the entry types agents may attest, with the detail
// fields each must carry (others may be added, within the ledger's limits).
var attestationKinds = map[string][]string{
	client.AttestTransfer: {"archive", "dataset", "sha256", "size", "target", "region", "decision"},
	client.AttestDrill:    {"archive", "dataset", "result", "restore_seconds"},
	client.AttestPrune:    {"archive", "dataset", "target", "reason"},
}

// POST /v1/attestations (agent, operator): log what an agent did.
func (a *api) attest(w http.ResponseWriter, r *http.Request) error {
	var req client.AttestRequest
	if err := decodeJSON(w, r, maxAttestBody, &req, false); err != nil {
		return err
	}
	need, ok := attestationKinds[req.Type]
	if !ok {
		kinds := make([]string, 0, len(attestationKinds))
		for k := range attestationKinds {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		return badRequest(fmt.Sprintf("type %q: want one of %s", req.Type, strings.Join(kinds, ", ")))
	}
	for _, k := range need {
		if req.Details[k] == "" {
			return badRequest(fmt.Sprintf("%s needs detail %q (required: %s)", req.Type, k, strings.Join(need, ", ")))
		}
	}
	outcome := ledger.OutcomeOK
	if req.Type == client.AttestDrill && req.Details["result"] != "ok" {
		outcome = ledger.OutcomeError
	}
	c := callerOf(r.Context())
	e := ledger.Entry{Type: req.Type, Actor: c.actor, Node: a.nodeID, RequestID: requestID(r.Context()),
		KEKID: req.KEKID, KEKVersion: req.KEKVersion, Outcome: outcome, Details: req.Details}
	check := e // the node stamps index and time; the rest must be valid now
	check.Time = time.Unix(0, 0)
	if _, err := check.Marshal(); err != nil {
		return badRequest(err.Error())
	}
	i, err := a.svc.Append(r.Context(), e)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, client.LogIndex{LogIndex: i})
	return nil
}

var attestRoles = []identity.Role{identity.RoleAgent, identity.RoleOperator}

// DrillService is what GET /v1/attestations/drills needs; a Service that
// also implements it (*keysvc.Node does) serves it, and any other answers
// 501 not_supported_yet.
type DrillService interface {
	Drills(ctx context.Context, dataset string) ([]state.Drill, error)
}

var _ DrillService = (*keysvc.Node)(nil)

// drillReaders may read the newest drill of each dataset: the agents that
// run `custos backup status`, and those who may read the log anyway.
var drillReaders = []identity.Role{identity.RoleAgent, identity.RoleOperator, identity.RoleAuditor, identity.RoleOfficer}

// GET /v1/attestations/drills[?dataset=NAME] (agent, operator, auditor,
// officer): the newest backup.drill entry of each dataset (or of NAME),
// sorted by dataset, from this node's committed state (a follower's may lag
// the leader's, as for the log routes).
func (a *api) drills(w http.ResponseWriter, r *http.Request) error {
	ds, ok := a.svc.(DrillService)
	if !ok {
		return &apiError{http.StatusNotImplemented, errcode.NotSupportedYet, "this node does not serve drills"}
	}
	q := r.URL.Query()
	dataset := q.Get("dataset")
	if q.Has("dataset") && (dataset == "" || len(dataset) > ledger.MaxFieldLen || !utf8.ValidString(dataset)) {
		return badRequest(fmt.Sprintf("dataset must be 1..%d bytes of UTF-8", ledger.MaxFieldLen))
	}
	list, err := ds.Drills(r.Context(), dataset)
	if err != nil {
		return err
	}
	out := client.Drills{Drills: make([]client.DrillRecord, 0, len(list))}
	for _, d := range list {
		out.Drills = append(out.Drills, client.DrillRecord{Dataset: d.Dataset, LogIndex: d.LogIndex, Entry: d.Entry})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
