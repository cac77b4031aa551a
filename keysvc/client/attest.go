// Attestations: what a backup agent did outside the cluster, logged.

package client

import (
	"context"
	"encoding/json"
	"net/http"
)

// Attestation types (entry types) and the details each requires.
const (
	// AttestTransfer: an archive left for a target. Details archive,
	// dataset, sha256 (of the ciphertext), size, target, region,
	// decision (the policy's reason it may go there).
	AttestTransfer = "backup.transfer"
	// AttestDrill: a restore drill. Details archive, dataset, result
	// ("ok" or why not), restore_seconds.
	AttestDrill = "backup.drill"
	// AttestPrune: an archive deleted under retention. Details archive,
	// dataset, target, reason.
	AttestPrune = "backup.prune"
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
