// Attestations by backup agents: what the agent did with data outside the
// cluster (a transfer to a target, a restore drill, a prune), recorded in
// the key-op log so that auditors see it beside the key operations.

package httpapi

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
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
	if err := decodeJSON(w, r, maxJSONBody, &req, false); err != nil {
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
