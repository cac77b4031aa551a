// Reading one's own attestations back: a backup agent proves an archive
// against the transfer entry it logged, without reading the whole log.

package httpapi

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// GET /v1/attestations/{index} (agent, operator): the attestation entry
// at log index, if the caller's identity made it; otherwise 404, whether
// the entry is another kind, another identity's or beyond the log (an
// agent learns nothing of entries that are not its own).
func (a *api) attestation(w http.ResponseWriter, r *http.Request) error {
	s := chi.URLParam(r, "index")
	index, err := strconv.ParseUint(s, 10, 63)
	if err != nil || (len(s) > 1 && s[0] == '0') {
		return badRequest(fmt.Sprintf("log index %q: want a decimal integer", s))
	}
	a.waitLogged(r, index+1)
	notYours := notFound(fmt.Sprintf("no attestation of yours at log index %d", index))
	es, err := a.svc.Entries(index, 1)
	if err != nil || len(es) != 1 {
		return notYours
	}
	e, err := ledger.ParseEntry(es[0])
	if err != nil || e.Index != index || attestationKinds[e.Type] == nil || e.Actor.Identity != callerOf(r.Context()).actor.Identity {
		return notYours
	}
	writeJSON(w, http.StatusOK, client.Attested{LogIndex: index, Entry: es[0]})
	return nil
}
