// Attestations: what a backup agent did outside the cluster, logged.

package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/custos-eu/custos/keysvc/ledger"
)

// Attestation types: the SDK's names for the log's backup entry types
// (keysvc/ledger/types.go says which details each carries).
const (
	// AttestTransfer: an archive left for a target. Details archive,
	// dataset, sha256 (of the ciphertext), size, target, region,
	// decision (the policy's reason it may go there).
	AttestTransfer = ledger.TypeTransfer
	// AttestDrill: a restore drill. Details archive, dataset, result
	// ("ok" or why not), restore_seconds; and, from agents of this
	// release on, target (where the archive was read from) and
	// rto_seconds (the dataset's RTO the drill was measured against,
	// absent when the agent's policy sets none).
	AttestDrill = ledger.TypeDrill
	// AttestPrune: an archive deleted under retention. Details archive,
	// dataset, target, reason.
	AttestPrune = ledger.TypePrune
)

// AttestRequest is POST /v1/attestations (agent or operator): an entry of
// Type by the caller, with Details (each at most 1 KiB of text; at most 64).
type AttestRequest struct {
	Type       string            `json:"type"`
	KEKID      string            `json:"kek_id,omitempty"`
	KEKVersion uint32            `json:"kek_version,omitempty"`
	Details    map[string]string `json:"details"`
}

// Attest logs an attestation and returns its log index (a receipt).
func (c *Client) Attest(ctx context.Context, req AttestRequest) (uint64, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return 0, err
	}
	resp, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/attestations", body: body})
	if err != nil {
		return 0, err
	}
	var li LogIndex
	return li.LogIndex, resp.decode("attestation", &li)
}

// Drills is the answer of GET /v1/attestations/drills (agent, operator,
// auditor, officer): the newest backup.drill entry of each dataset, sorted
// by dataset.
type Drills struct {
	Drills []DrillRecord `json:"drills"`
}

// Attested is the answer of GET /v1/attestations/{index}: one of the
// caller's own attestation entries.
type Attested struct {
	LogIndex uint64 `json:"log_index"`
	Entry    []byte `json:"entry"` // canonical bytes
}

// Attestation returns the caller's own attestation entry at log index
// (a transfer it logged, say), parsed, with its canonical bytes. Another
// identity's entry, another kind of entry or an index beyond the log is an
// *APIError not_found.
func (c *Client) Attestation(ctx context.Context, index uint64) (ledger.Entry, []byte, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/attestations/" + strconv.FormatUint(index, 10)})
	if err != nil {
		return ledger.Entry{}, nil, err
	}
	var a Attested
	if err := resp.decode("attestation", &a); err != nil {
		return ledger.Entry{}, nil, err
	}
	e, err := ledger.ParseEntry(a.Entry)
	switch {
	case err != nil:
		return ledger.Entry{}, nil, fmt.Errorf("custos api %s: attestation %d: %v", resp.endpoint, index, err)
	case e.Index != index || a.LogIndex != index:
		return ledger.Entry{}, nil, fmt.Errorf("custos api %s: asked for attestation %d, got entry %d", resp.endpoint, index, e.Index)
	}
	return e, a.Entry, nil
}

// DrillRecord is one dataset's newest drill: its log index and the entry's
// canonical bytes (base64 in JSON).
type DrillRecord struct {
	Dataset  string `json:"dataset"`
	LogIndex uint64 `json:"log_index"`
	Entry    []byte `json:"entry"`
}

// Drill is a dataset's newest restore drill, checked and parsed by Drills.
type Drill struct {
	Dataset  string
	LogIndex uint64
	Entry    ledger.Entry // Type AttestDrill; Details carry archive, result, restore_seconds
	Raw      []byte       // the canonical entry bytes, for ledger.VerifyInclusion
}

// Drills returns the newest drill attestation (whatever its result) of
// every dataset, sorted by dataset, or of dataset alone when not empty
// (none if it has had no drill). The node answers from its committed state,
// not by scanning the log. Each record is checked: its entry must parse,
// be a drill of that dataset and sit at the log index given.
func (c *Client) Drills(ctx context.Context, dataset string) ([]Drill, error) {
	var q url.Values
	if dataset != "" {
		q = url.Values{"dataset": {dataset}}
	}
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/attestations/drills", query: q})
	if err != nil {
		return nil, err
	}
	var ds Drills
	if err := resp.decode("drills", &ds); err != nil {
		return nil, err
	}
	out := make([]Drill, 0, len(ds.Drills))
	for i, d := range ds.Drills {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("custos api %s: drills: record %d (dataset %q): %s", resp.endpoint, i, d.Dataset, fmt.Sprintf(format, args...))
		}
		e, err := ledger.ParseEntry(d.Entry)
		switch {
		case err != nil:
			return nil, bad("%v", err)
		case e.Type != AttestDrill:
			return nil, bad("entry type %q, want %s", e.Type, AttestDrill)
		case e.Index != d.LogIndex:
			return nil, bad("entry index %d, record says %d", e.Index, d.LogIndex)
		case e.Details["dataset"] != d.Dataset:
			return nil, bad("entry is a drill of dataset %q", e.Details["dataset"])
		case dataset != "" && d.Dataset != dataset:
			return nil, bad("asked for dataset %q", dataset)
		case i > 0 && d.Dataset <= ds.Drills[i-1].Dataset:
			return nil, bad("not sorted by dataset")
		}
		out = append(out, Drill{Dataset: d.Dataset, LogIndex: d.LogIndex, Entry: e, Raw: d.Entry})
	}
	return out, nil
}
